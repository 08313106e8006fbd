//! Prometheus metrics of the DNS server: queries by type and response code,
//! answer latency, upstream forwarding and cache hits.

use std::fmt;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type QueryLabels = [(&'static str, &'static str); 3];

/// The DNS server's metrics. Cheap to clone (handles share the values).
#[derive(Clone)]
pub struct DnsMetrics {
    queries: Family<QueryLabels, Counter>,
    latency: Histogram,
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

impl Default for DnsMetrics {
    fn default() -> Self {
        Self {
            queries: Family::default(),
            // 10 µs .. ~0.33 s
            latency: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            forwarded: Counter::default(),
            forward_errors: Counter::default(),
            services: Gauge::default(),
        }
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
        r.register(
            "queries",
            "DNS queries answered, by query type, response code and transport",
            self.queries.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from receiving a query to having its response",
            self.latency.clone(),
        );
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
        let labels = [
            ("type", type_label(qtype)),
            ("rcode", rcode_label(rcode)),
            ("proto", if tcp { "tcp" } else { "udp" }),
        ];
        self.queries.get_or_create(&labels).inc();
        self.latency.observe(elapsed.as_secs_f64());
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
        let labels = [
            ("type", type_label(qtype)),
            ("rcode", rcode_label(rcode)),
            ("proto", if tcp { "tcp" } else { "udp" }),
        ];
        self.queries.get_or_create(&labels).get()
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

fn type_label(qtype: RecordType) -> &'static str {
    match qtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::SRV => "SRV",
        RecordType::PTR => "PTR",
        RecordType::TXT => "TXT",
        RecordType::CNAME => "CNAME",
        RecordType::SOA => "SOA",
        RecordType::NS => "NS",
        RecordType::MX => "MX",
        RecordType::HTTPS => "HTTPS",
        RecordType::ANY => "ANY",
        _ => "other",
    }
}

fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "other",
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
    }
}
