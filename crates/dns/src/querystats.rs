//! Query counters and the latency histogram, striped per thread: every
//! answered query bumps two counters, so at 100,000+ queries per second the
//! counters must not be shared. A `prometheus_client` `Family` takes a read
//! lock and hashes the labels per call and its `Histogram` takes a mutex per
//! observation; both put one cache line (and, when a holder is preempted, a
//! parked thread) between the serving threads. Here each thread owns a stripe
//! of plain atomics; a scrape sums the stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

/// Query types with their own label value; everything else is "other".
pub(crate) const TYPES: [&str; 12] = [
    "A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "SOA", "NS", "MX", "HTTPS", "ANY", "other",
];
/// Response codes with their own label value; everything else is "other".
pub(crate) const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];
const PROTOS: [&str; 2] = ["udp", "tcp"];
const CELLS: usize = TYPES.len() * RCODES.len() * PROTOS.len();
/// Latency bucket upper bounds: 10 µs doubling 16 times (to ~0.33 s), then +Inf.
const BOUNDS: usize = 16;
const FIRST_BOUND_NANOS: u64 = 10_000;
/// Stripes; threads beyond this share stripes (still correct, just shared).
const STRIPES: usize = 16;

/// One thread's counters, on cache lines of their own.
#[repr(align(128))]
struct Stripe {
    queries: [AtomicU64; CELLS],
    buckets: [AtomicU64; BOUNDS + 1],
    sum_nanos: AtomicU64,
}

impl Default for Stripe {
    fn default() -> Self {
        Self {
            queries: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// Counters of answered queries by (type, rcode, transport) and their latency.
pub(crate) struct QueryStats {
    stripes: Box<[Stripe; STRIPES]>,
}

impl Default for QueryStats {
    fn default() -> Self {
        Self {
            stripes: Box::new(std::array::from_fn(|_| Stripe::default())),
        }
    }
}

impl std::fmt::Debug for QueryStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStats").finish_non_exhaustive()
    }
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// This thread's stripe, handed out round-robin on first use so the
    /// serving threads (started one after another) get distinct stripes.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe_index() -> usize {
    STRIPE.with(|slot| {
        let mut i = slot.get();
        if i == usize::MAX {
            i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
            slot.set(i);
        }
        i
    })
}

fn cell(ty: usize, rcode: usize, tcp: bool) -> usize {
    (ty * RCODES.len() + rcode) * PROTOS.len() + usize::from(tcp)
}

fn bucket(nanos: u64) -> usize {
    let mut bound = FIRST_BOUND_NANOS;
    for i in 0..BOUNDS {
        if nanos <= bound {
            return i;
        }
        bound = bound.saturating_mul(2);
    }
    BOUNDS
}

impl QueryStats {
    /// Counts one query; `ty` and `rcode` index [`TYPES`] and [`RCODES`].
    pub(crate) fn record(&self, ty: usize, rcode: usize, tcp: bool, elapsed: Duration) {
        let Some(stripe) = self.stripes.get(stripe_index()) else {
            return;
        };
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if let Some(c) = stripe.queries.get(cell(ty, rcode, tcp)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = stripe.buckets.get(bucket(nanos)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        stripe.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Queries counted with these label indices, over all threads.
    pub(crate) fn count(&self, ty: usize, rcode: usize, tcp: bool) -> u64 {
        let i = cell(ty, rcode, tcp);
        self.stripes
            .iter()
            .filter_map(|s| s.queries.get(i))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn histogram(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets = Vec::with_capacity(BOUNDS + 1);
        let mut bound = FIRST_BOUND_NANOS as f64 / 1e9;
        for i in 0..=BOUNDS {
            let n: u64 = self
                .stripes
                .iter()
                .filter_map(|s| s.buckets.get(i))
                .map(|c| c.load(Ordering::Relaxed))
                .sum();
            // The text encoder prints only f64::INFINITY as `le="+Inf"`.
            let upper = if i == BOUNDS { f64::INFINITY } else { bound };
            buckets.push((upper, n));
            bound *= 2.0;
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        let nanos: u64 = self
            .stripes
            .iter()
            .map(|s| s.sum_nanos.load(Ordering::Relaxed))
            .sum();
        (nanos as f64 / 1e9, count, buckets)
    }
}

/// Exposes [`QueryStats`] as `queries` (counter family) and
/// `request_duration_seconds` (histogram) at scrape time.
#[derive(Debug)]
pub(crate) struct QueryCollector(pub(crate) std::sync::Arc<QueryStats>);

impl Collector for QueryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "queries",
                // `Registry::register` appends the period; collectors must add it.
                "DNS queries answered, by query type, response code and transport.",
                None,
                MetricType::Counter,
            )?;
            for (t, ty) in TYPES.iter().enumerate() {
                for (r, rcode) in RCODES.iter().enumerate() {
                    for (p, proto) in PROTOS.iter().enumerate() {
                        let n = self.0.count(t, r, p == 1);
                        if n == 0 {
                            continue;
                        }
                        let labels = [("type", *ty), ("rcode", *rcode), ("proto", *proto)];
                        let metric = family.encode_family(&labels)?;
                        prometheus_client::metrics::counter::ConstCounter::new(n).encode(metric)?;
                    }
                }
            }
        }
        let (sum, count, buckets) = self.0.histogram();
        let mut metric = encoder.encode_descriptor(
            "request_duration_seconds",
            "Time from receiving a query to having its response.",
            None,
            MetricType::Histogram,
        )?;
        metric
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(10_000), 0);
        assert_eq!(bucket(10_001), 1);
        assert_eq!(bucket(20_000), 1);
        assert_eq!(bucket(10_000 << 15), 15);
        assert_eq!(bucket((10_000 << 15) + 1), BOUNDS);
    }

    #[test]
    fn threads_sum_at_scrape() {
        let stats = std::sync::Arc::new(QueryStats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stats.record(0, 3, false, Duration::from_micros(15));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(stats.count(0, 3, false), 4000);
        assert_eq!(stats.count(0, 3, true), 0);
        let (sum, count, buckets) = stats.histogram();
        assert_eq!(count, 4000);
        assert_eq!(buckets[1].1, 4000);
        assert!((sum - 0.06).abs() < 1e-9, "{sum}");
    }
}
