//! portico-proxy: the Service proxy. Services and EndpointSlices (watched
//! through the Kubernetes API) are planned into nftables objects by pure code
//! ([`model`], [`plan`], [`render`]) and programmed into the `ip portico`
//! table of the current network namespace by the [`apply::Proxier`], one
//! atomic `nft` transaction per sync, incrementally after the first.

pub mod apply;
pub mod cache;
pub mod health;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Api;
use prometheus_client::registry::Registry;

pub use crate::apply::{Conntrack, ConntrackCli, Nft, NftCli, Proxier, SyncStats};
pub use crate::metrics::ProxyMetrics;
use crate::plan::{Base, HealthCheck, ServicePlan};

/// Shortest time between a change and the sync that programs it: changes that
/// arrive together (a rollout touching many slices) share one transaction.
pub const MIN_SYNC_PERIOD: Duration = Duration::from_millis(20);

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A helper program could not be run.
    #[error("running {program}: {source}")]
    Spawn {
        /// Program name.
        program: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// `nft` rejected a transaction.
    #[error("nft: {0}")]
    Nft(String),
    /// The configuration cannot be used.
    #[error("invalid proxy configuration: {0}")]
    Config(String),
    /// Binding the health/metrics listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A watch on the API ended for good.
    #[error("watch of {0} ended")]
    WatchEnded(&'static str),
}

/// Configuration of one node's proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This node's name (endpoints with this `nodeName` are local).
    pub node_name: String,
    /// This node's addresses.
    pub node_ips: Vec<IpAddr>,
    /// `--nodeport-addresses`: local addresses inside these CIDRs serve
    /// NodePorts; empty means every local address.
    pub nodeport_addresses: Vec<IpNet>,
    /// Pod network (e.g. 10.244.0.0/16): sources inside it are pods.
    pub cluster_cidr: IpNet,
    /// Where to serve `/healthz` and `/metrics`, if anywhere.
    pub healthz_bind: Option<SocketAddr>,
    /// Metrics handles to update (register them in your registry first);
    /// `None` keeps private ones (still served on `healthz_bind`).
    pub metrics: Option<ProxyMetrics>,
}

impl ProxyConfig {
    /// The node-level planner input. IPv6 CIDRs are ignored: only the `ip`
    /// family table is programmed.
    pub fn base(&self) -> Result<Base, ProxyError> {
        let IpNet::V4(cluster_cidr) = self.cluster_cidr else {
            return Err(ProxyError::Config(format!("cluster CIDR {} is not IPv4", self.cluster_cidr)));
        };
        let nodeport_addresses: Vec<Ipv4Net> = self
            .nodeport_addresses
            .iter()
            .filter_map(|n| match n {
                IpNet::V4(n) => Some(*n),
                IpNet::V6(_) => None,
            })
            .collect();
        Ok(Base { cluster_cidr, nodeport_addresses })
    }
}

/// Removes Portico's tables from the current netns (used on shutdown of `portico up`).
pub fn cleanup() -> Result<(), ProxyError> {
    apply::delete_table(&mut NftCli::default())
}

/// Runs the proxy until `shutdown` completes. The rules stay in place on
/// return (call [`cleanup`] to remove them), so a restarted agent takes over
/// without disturbing traffic.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    let base = config.base()?;
    let metrics = config.metrics.clone().unwrap_or_default();
    let healthz = health::Healthz::default();
    let admin = match config.healthz_bind {
        Some(addr) => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })?;
            let mut registry = Registry::default();
            metrics.register(&mut registry);
            Some(health::serve_admin(listener, healthz.clone(), Arc::new(registry)))
        }
        None => None,
    };

    let services = watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff();
    let slices = watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default().labels(model::SERVICE_NAME_LABEL),
    )
    .default_backoff();
    let proxier = Proxier::new(NftCli::default(), ConntrackCli::default(), base.clone());
    let mut lp = SyncLoop::new(proxier, base, config.node_name.clone(), metrics, healthz);
    let result = lp.run(services, slices, shutdown).await;
    if let Some(a) = admin {
        a.abort();
    }
    result
}

/// The event loop: watch events in, debounced syncs out.
struct SyncLoop<N, C> {
    proxier: Option<Proxier<N, C>>,
    base: Base,
    node_name: String,
    cache: cache::Cache,
    desired: BTreeMap<String, Arc<ServicePlan>>,
    dirty: BTreeSet<String>,
    metrics: ProxyMetrics,
    healthz: health::Healthz,
    health_servers: health::HealthServers,
}

impl<N: Nft + 'static, C: Conntrack + 'static> SyncLoop<N, C> {
    fn new(proxier: Proxier<N, C>, base: Base, node_name: String, metrics: ProxyMetrics, healthz: health::Healthz) -> Self {
        SyncLoop {
            proxier: Some(proxier),
            base,
            node_name,
            cache: cache::Cache::default(),
            desired: BTreeMap::new(),
            dirty: BTreeSet::new(),
            metrics,
            healthz,
            health_servers: health::HealthServers::default(),
        }
    }

    async fn run(
        &mut self,
        services: impl futures::Stream<Item = Result<watcher::Event<Service>, watcher::Error>>,
        slices: impl futures::Stream<Item = Result<watcher::Event<EndpointSlice>, watcher::Error>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        let mut services = std::pin::pin!(services);
        let mut slices = std::pin::pin!(slices);
        let mut shutdown = std::pin::pin!(shutdown);
        // When the pending changes get programmed; None while nothing is pending.
        let mut deadline: Option<tokio::time::Instant> = None;
        // Retry after failures, and come back for deferred deletions.
        let mut retry: Option<tokio::time::Instant> = None;
        let result = loop {
            let wake = match (deadline, retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                ev = services.next() => match ev {
                    Some(Ok(ev)) => { let d = self.cache.service_event(ev); self.mark(d, &mut deadline); }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching Services"),
                    None => break Err(ProxyError::WatchEnded("Services")),
                },
                ev = slices.next() => match ev {
                    Some(Ok(ev)) => { let d = self.cache.slice_event(ev); self.mark(d, &mut deadline); }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching EndpointSlices"),
                    None => break Err(ProxyError::WatchEnded("EndpointSlices")),
                },
                () = sleep_until(wake), if wake.is_some() && self.cache.ready() => {
                    deadline = None;
                    retry = self.sync().await;
                }
            }
        };
        self.health_servers.stop();
        result
    }

    fn mark(&mut self, keys: BTreeSet<String>, deadline: &mut Option<tokio::time::Instant>) {
        if keys.is_empty() {
            return;
        }
        self.dirty.extend(keys);
        if deadline.is_none() {
            *deadline = Some(tokio::time::Instant::now() + MIN_SYNC_PERIOD);
        }
    }

    /// Re-plans the dirty Services and programs the difference. Returns when
    /// to come back (after a failure, or for deferred deletions).
    async fn sync(&mut self) -> Option<tokio::time::Instant> {
        let started = Instant::now();
        let dirty = std::mem::take(&mut self.dirty);
        for key in &dirty {
            match self.cache.plan(key, &self.node_name, &self.base) {
                Some(p) => self.desired.insert(key.clone(), Arc::new(p)),
                None => self.desired.remove(key),
            };
        }
        let mut proxier = self.proxier.take()?;
        let desired = std::mem::take(&mut self.desired);
        // nft runs as a child process: keep it off the async workers.
        let joined = tokio::task::spawn_blocking(move || {
            let r = proxier.sync(&desired, &dirty, Instant::now());
            (proxier, desired, dirty, r)
        })
        .await;
        let Ok((proxier, desired, dirty, result)) = joined else {
            tracing::error!("proxy sync task failed");
            return None;
        };
        let pending = proxier.has_pending_deletes();
        self.proxier = Some(proxier);
        self.desired = desired;
        let elapsed = started.elapsed();
        self.metrics.sync_duration.observe(elapsed.as_secs_f64());
        let ok = result.is_ok();
        self.healthz.record(ok);
        match result {
            Ok(stats) => {
                tracing::debug!(?stats, ?elapsed, "proxy sync");
                self.metrics.rules.set(i64::try_from(stats.rules).unwrap_or(i64::MAX));
                let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                self.metrics.last_sync.set(now.as_secs_f64());
                if stats.full {
                    self.metrics.full_syncs.inc();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "proxy sync failed; retrying with a full sync");
                self.metrics.sync_errors.inc();
                // The next sync is a full one and must see every Service.
                self.dirty.extend(dirty);
            }
        }
        let wanted: BTreeMap<u16, HealthCheck> =
            self.desired.values().flat_map(|p| p.health.iter().map(|(k, v)| (*k, v.clone()))).collect();
        self.health_servers.update(&wanted).await;
        if !ok {
            return Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
        pending.then(|| tokio::time::Instant::now() + apply::DELETE_DELAY)
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
