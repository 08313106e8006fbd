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
}
