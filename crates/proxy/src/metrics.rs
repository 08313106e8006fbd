//! Sync metrics (prometheus-client): duration histogram, rule count, last
//! sync time, failures.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Handles to the proxy's metrics; clones share the same values.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    /// Seconds per sync (full and incremental).
    pub sync_duration: Histogram,
    /// Rules in the table after the last successful sync.
    pub rules: Gauge,
    /// Unix time of the last successful sync, in seconds.
    pub last_sync: Gauge<f64, AtomicU64>,
    /// Failed syncs.
    pub sync_errors: Counter,
    /// Full syncs.
    pub full_syncs: Counter,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            sync_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            rules: Gauge::default(),
            last_sync: Gauge::default(),
            sync_errors: Counter::default(),
            full_syncs: Counter::default(),
        }
    }
}

impl ProxyMetrics {
    /// New, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the metrics under the `portico_proxy` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("portico_proxy");
        r.register(
            "sync_duration_seconds",
            "Time to program one sync",
            self.sync_duration.clone(),
        );
        r.register("rules", "nftables rules programmed", self.rules.clone());
        r.register(
            "last_sync_timestamp_seconds",
            "Unix time of the last successful sync",
            self.last_sync.clone(),
        );
        r.register("sync_errors", "Failed syncs", self.sync_errors.clone());
        r.register(
            "full_syncs",
            "Syncs that rewrote the whole table",
            self.full_syncs.clone(),
        );
    }
}
