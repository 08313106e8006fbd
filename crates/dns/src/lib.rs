//! portico-dns: cluster DNS for one node — a pure record planner over Services,
//! EndpointSlices and Pods, and a UDP/TCP server answering from an in-memory
//! zone snapshot, forwarding everything else to the node's upstream resolvers.
//!
//! # Layout
//! - [`model`]: compact views of the watched API objects.
//! - [`planner`]: objects → compact [`zone::Zone`], incrementally (pure).
//! - [`answer`]: zone + question → response as data (pure).
//! - [`wire`]: DNS messages ⇄ bytes (hickory-proto), truncation, EDNS.
//! - [`server`]: UDP and TCP listeners answering from an `ArcSwap` snapshot
//!   (UDP on dedicated `SO_REUSEPORT` threads with `recvmmsg`/`sendmmsg`,
//!   common questions answered by an allocation-free fast path);
//!   [`forward`]/[`cache`]: upstream forwarding with a small cache.
//! - `watch`: kube-rs watchers feeding the planner; `nodelocal`: the
//!   kube-dns ClusterIP on a local interface of the node's namespace.
//! - [`run`] / [`start`] / [`start_bound`] compose it all.

pub mod answer;
pub mod cache;
mod fast;
pub mod forward;
pub mod metrics;
pub mod model;
mod nodelocal;
pub mod planner;
mod querystats;
pub mod server;
mod udp;
mod watch;
pub mod wire;
pub mod zone;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use answer::{answer, Outcome, Response};
pub use metrics::DnsMetrics;
pub use nodelocal::{
    prepare_node_local_address, remove_node_local_address, INTERFACE as NODE_LOCAL_INTERFACE,
};
pub use planner::{plan, Change, Planner};
pub use server::{udp_workers, BoundSockets, DnsServer, Handler};
pub use zone::Zone;

/// Errors of the DNS component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// A configured or derived name is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {reason}")]
    Name {
        /// The offending text.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A socket could not be bound or served.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid DNS configuration: {0}")]
    Config(String),
    /// The node-local address could not be prepared.
    #[error("preparing the node-local DNS address: {0}")]
    NodeLocal(String),
    /// Watching the Kubernetes API ended.
    #[error("watching the Kubernetes API: {0}")]
    Watch(String),
}

/// Configuration of the node-local cluster DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// Addresses to serve on, UDP and TCP each (e.g. `10.96.0.10:53`).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// TTL of every cluster record, in seconds (5).
    pub ttl: u32,
    /// Upstream resolvers; empty means the node's `/etc/resolv.conf`.
    pub upstreams: Vec<SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([10, 96, 0, 10], 53))],
            cluster_domain: "cluster.local".into(),
            ttl: 5,
            upstreams: Vec::new(),
        }
    }
}

/// Runs the node's cluster DNS until `shutdown` resolves: binds the listeners,
/// watches Services, EndpointSlices and Pods, and serves. Metrics are kept but
/// not registered anywhere; use [`run_with_metrics`] to expose them.
pub async fn run(
    client: kube::Client,
    config: DnsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    run_with_metrics(client, config, DnsMetrics::default(), shutdown).await
}

/// [`run`] with metrics the caller has registered (see [`DnsMetrics::new`]).
pub async fn run_with_metrics(
    client: kube::Client,
    config: DnsConfig,
    metrics: DnsMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    start(client, config, metrics).await?.wait(shutdown).await
}

/// Binds `config.listen` (in the calling thread's network namespace) and
/// starts the watches; returns once serving (cluster names get SERVFAIL until
/// the first complete listing is in).
pub async fn start(
    client: kube::Client,
    config: DnsConfig,
    metrics: DnsMetrics,
) -> Result<RunningDns, DnsError> {
    let sockets = config
        .listen
        .iter()
        .map(|addr| BoundSockets::bind(*addr))
        .collect::<Result<Vec<_>, _>>()?;
    start_bound(client, config, metrics, sockets)
}

/// [`start`] on sockets bound beforehand (see [`BoundSockets::bind`]), e.g.
/// from a thread inside the node's network namespace; `config.listen` is then
/// only used to keep the server from forwarding to itself.
pub fn start_bound(
    client: kube::Client,
    config: DnsConfig,
    metrics: DnsMetrics,
    sockets: Vec<BoundSockets>,
) -> Result<RunningDns, DnsError> {
    let mut upstreams = if config.upstreams.is_empty() {
        forward::system_upstreams()
    } else {
        config.upstreams.clone()
    };
    // Forwarding to ourselves would loop until every query times out.
    upstreams.retain(|u| !config.listen.contains(u));
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolvers: names outside the cluster get SERVFAIL");
    }
    let planner = Planner::new(&config.cluster_domain, config.ttl)?;
    let handler = Arc::new(Handler::unsynced(
        planner.zone().clone(),
        upstreams,
        metrics,
    ));
    let server = DnsServer::start_bound(sockets, handler.clone())?;
    let watch = tokio::spawn(watch::run(client, planner, handler));
    Ok(RunningDns { server, watch })
}

/// A running cluster DNS (see [`start`]).
#[derive(Debug)]
pub struct RunningDns {
    server: DnsServer,
    watch: tokio::task::JoinHandle<Result<(), DnsError>>,
}

impl RunningDns {
    /// The bound addresses (UDP and TCP each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.server.local_addrs()
    }

    /// Serves until `shutdown` resolves (or the watches fail), then stops.
    pub async fn wait(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DnsError> {
        let result = tokio::select! {
            () = shutdown => Ok(()),
            joined = &mut self.watch => match joined {
                Ok(result) => result,
                Err(e) => Err(DnsError::Watch(e.to_string())),
            },
        };
        self.watch.abort();
        self.server.shutdown().await;
        result
    }
}
