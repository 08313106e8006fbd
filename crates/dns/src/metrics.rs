//! Prometheus metrics of the DNS server: queries by type and response code,
//! answer latency, upstream forwarding and cache hits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::querystats::{QueryCollector, QueryStats};

/// The DNS server's metrics. Cheap to clone (handles share the values).
#[derive(Clone, Default)]
pub struct DnsMetrics {
    /// Per-query counters and latency, striped per thread (`querystats`).
    queries: Arc<QueryStats>,
    cache_hits: Counter,
    cache_misses: Counter,
    forwarded: Counter,
    forward_errors: Counter,
    services: Gauge,
}

impl fmt::Debug for DnsMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsMetrics").finish_non_exhaustive()
    }
}

impl DnsMetrics {
    /// Metrics registered in `registry` (names prefixed `portico_dns_`).
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        metrics.register(registry);
        metrics
    }

    /// Registers these metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("portico_dns");
        // `queries` and `request_duration_seconds`, summed over threads.
        r.register_collector(Box::new(QueryCollector(self.queries.clone())));
        r.register(
            "cache_hits",
            "Upstream answers served from the cache",
            self.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Forwarded questions not in the cache",
            self.cache_misses.clone(),
        );
        r.register(
            "forwarded_queries",
            "Queries sent to upstream resolvers",
            self.forwarded.clone(),
        );
        r.register(
            "forward_errors",
            "Upstream exchanges that failed or timed out",
            self.forward_errors.clone(),
        );
        r.register(
            "services",
            "Services with records in the zone",
            self.services.clone(),
        );
    }

    /// Counts one answered query and its latency.
    pub fn query(&self, qtype: RecordType, rcode: ResponseCode, tcp: bool, elapsed: Duration) {
        self.queries
            .record(type_index(qtype), rcode_index(rcode), tcp, elapsed);
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.inc();
    }
    pub(crate) fn cache_miss(&self) {
        self.cache_misses.inc();
    }
    pub(crate) fn forwarded(&self) {
        self.forwarded.inc();
    }
    pub(crate) fn forward_error(&self) {
        self.forward_errors.inc();
    }
    pub(crate) fn set_services(&self, count: usize) {
        self.services.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Queries counted so far with these labels (for tests and debugging).
    pub fn query_count(&self, qtype: RecordType, rcode: ResponseCode, tcp: bool) -> u64 {
        self.queries
            .count(type_index(qtype), rcode_index(rcode), tcp)
    }

    /// Services with records in the published zone.
    pub fn service_count(&self) -> i64 {
        self.services.get()
    }

    /// Cache hits so far.
    pub fn cache_hit_count(&self) -> u64 {
        self.cache_hits.get()
    }

    /// Upstream exchanges so far.
    pub fn forwarded_count(&self) -> u64 {
        self.forwarded.get()
    }
}

/// Index into `querystats::TYPES`.
fn type_index(qtype: RecordType) -> usize {
    match qtype {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::SRV => 2,
        RecordType::PTR => 3,
        RecordType::TXT => 4,
        RecordType::CNAME => 5,
        RecordType::SOA => 6,
        RecordType::NS => 7,
        RecordType::MX => 8,
        RecordType::HTTPS => 9,
        RecordType::ANY => 10,
        _ => 11,
    }
}

/// Index into `querystats::RCODES`.
fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let mut registry = Registry::default();
        let m = DnsMetrics::new(&mut registry);
        m.query(
            RecordType::A,
            ResponseCode::NXDomain,
            false,
            Duration::from_micros(30),
        );
        m.cache_hit();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"portico_dns_queries_total{type="A",rcode="NXDOMAIN",proto="udp"} 1"#),
            "{text}"
        );
        assert!(text.contains("portico_dns_cache_hits_total 1"), "{text}");
        assert!(
            text.contains("portico_dns_request_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"portico_dns_request_duration_seconds_bucket{le="0.00004"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE portico_dns_queries counter"),
            "{text}"
        );
        assert_eq!(crate::querystats::TYPES[type_index(RecordType::SRV)], "SRV");
        assert_eq!(
            crate::querystats::RCODES[rcode_index(ResponseCode::Refused)],
            "REFUSED"
        );
    }

    /// The exposition before per-thread striping: a `Family` of counters and
    /// a `Histogram` (10 µs doubling 16 times), as `register` used to build it.
    fn legacy_exposition(queries: &[(RecordType, ResponseCode, bool, Duration)]) -> String {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        let label = |qtype: RecordType, rcode: ResponseCode, tcp: bool| {
            [
                ("type", crate::querystats::TYPES[type_index(qtype)]),
                ("rcode", crate::querystats::RCODES[rcode_index(rcode)]),
                ("proto", if tcp { "tcp" } else { "udp" }),
            ]
        };
        let family = Family::<[(&'static str, &'static str); 3], Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.000_01, 2.0, 16));
        for &(qtype, rcode, tcp, elapsed) in queries {
            family.get_or_create(&label(qtype, rcode, tcp)).inc();
            latency.observe(elapsed.as_secs_f64());
        }
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("portico_dns");
        r.register(
            "queries",
            "DNS queries answered, by query type, response code and transport",
            family,
        );
        r.register(
            "request_duration_seconds",
            "Time from receiving a query to having its response",
            latency,
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// Lines of `text` about queries and latency, sorted (series order is not
    /// part of the format), the `_sum` parsed separately (float rounding).
    fn query_lines(text: &str) -> (Vec<String>, f64) {
        let mut lines = Vec::new();
        let mut sum = f64::NAN;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("portico_dns_request_duration_seconds_sum ") {
                sum = v.parse().unwrap();
            } else if line.contains("portico_dns_queries")
                || line.contains("portico_dns_request_duration_seconds")
            {
                lines.push(line.to_owned());
            }
        }
        lines.sort();
        (lines, sum)
    }

    #[test]
    fn exposition_is_the_same_as_before_striping() {
        use std::time::Duration as D;
        let queries = [
            (
                RecordType::A,
                ResponseCode::NoError,
                false,
                D::from_micros(3),
            ),
            (
                RecordType::A,
                ResponseCode::NoError,
                false,
                D::from_micros(10),
            ),
            (
                RecordType::A,
                ResponseCode::NXDomain,
                false,
                D::from_micros(25),
            ),
            (
                RecordType::AAAA,
                ResponseCode::NoError,
                true,
                D::from_micros(700),
            ),
            (
                RecordType::SRV,
                ResponseCode::NoError,
                false,
                D::from_millis(40),
            ),
            (
                RecordType::PTR,
                ResponseCode::ServFail,
                true,
                D::from_secs(2),
            ),
            (
                RecordType::CAA,
                ResponseCode::BADVERS,
                false,
                D::from_micros(90),
            ),
            (
                RecordType::ANY,
                ResponseCode::Refused,
                false,
                D::from_micros(5),
            ),
            (
                RecordType::HTTPS,
                ResponseCode::NotImp,
                false,
                D::from_millis(300),
            ),
        ];
        let mut registry = Registry::default();
        let m = DnsMetrics::new(&mut registry);
        // From several threads, as the UDP workers record.
        std::thread::scope(|s| {
            for chunk in queries.chunks(2) {
                let m = &m;
                s.spawn(move || {
                    for &(qtype, rcode, tcp, elapsed) in chunk {
                        m.query(qtype, rcode, tcp, elapsed);
                    }
                });
            }
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let (new, new_sum) = query_lines(&text);
        let (old, old_sum) = query_lines(&legacy_exposition(&queries));
        assert_eq!(new, old, "striped:\n{text}");
        assert!((new_sum - old_sum).abs() < 1e-9, "{new_sum} vs {old_sum}");
        assert!(new
            .iter()
            .any(|l| l.contains(r#"type="other",rcode="other""#)));
    }
}
