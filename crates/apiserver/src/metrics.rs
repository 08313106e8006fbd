//! Prometheus metrics of the API server: request counts by verb/resource/code and latency.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The server's metric registry.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "apiserver_request",
            "API requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "API request latency by verb and resource",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }

    /// Records one finished request.
    pub(crate) fn observe(&self, verb: &str, resource: &str, code: u16, seconds: f64) {
        let base = vec![
            ("verb".to_string(), verb.to_string()),
            ("resource".to_string(), resource.to_string()),
        ];
        let mut with_code = base.clone();
        with_code.push(("code".to_string(), code.to_string()));
        self.requests.get_or_create(&with_code).inc();
        // Watches last minutes; their duration would only drown the histogram.
        if verb != "WATCH" {
            self.latency.get_or_create(&base).observe(seconds);
        }
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histogram() {
        let m = Metrics::new();
        m.observe("GET", "services", 200, 0.001);
        m.observe("GET", "services", 200, 0.002);
        let text = m.render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"GET\",resource=\"services\",code=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "apiserver_request_duration_seconds_count{verb=\"GET\",resource=\"services\"} 2"
            ),
            "{text}"
        );
    }
}
