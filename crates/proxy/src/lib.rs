//! portico-proxy: the Service proxy. Services and EndpointSlices (watched
//! through the Kubernetes API) are planned into nftables objects by pure code
//! ([`model`], [`plan`], [`render`]) and programmed into the `ip portico`
//! table and its shard tables `ip portico-NN` of the current network
//! namespace by the [`apply::Proxier`], one
//! atomic transaction per sync, incrementally after the first: an nf_tables
//! netlink batch ([`netlink`]) by default, or `nft -f` text ([`NftCli`]).

pub mod apply;
pub mod cache;
pub mod health;
pub mod metrics;
pub mod model;
pub mod netlink;
pub mod nl;
pub mod nlexpr;
mod nlfull;
pub mod nlmsg;
pub mod nlskel;
pub mod plan;
pub mod render;
mod syncloop;
pub mod vecmap;
pub mod view;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Api;
use prometheus_client::registry::Registry;

pub use crate::apply::{Conntrack, ConntrackCli, Nft, NftCli, Proxier, SyncStats, Txn};
pub use crate::metrics::ProxyMetrics;
pub use crate::netlink::NftNetlink;
use crate::plan::Base;

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
    /// The kernel rejected a netlink transaction, or the socket failed.
    #[error("nf_tables netlink: {0}")]
    Netlink(String),
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
    /// `--masquerade-fully-random`: kube-proxy's `masquerade fully-random`
    /// instead of plain `masquerade` (see [`plan::Base`]).
    pub masquerade_fully_random: bool,
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
            return Err(ProxyError::Config(format!(
                "cluster CIDR {} is not IPv4",
                self.cluster_cidr
            )));
        };
        let nodeport_addresses: Vec<Ipv4Net> = self
            .nodeport_addresses
            .iter()
            .filter_map(|n| match n {
                IpNet::V4(n) => Some(*n),
                IpNet::V6(_) => None,
            })
            .collect();
        Ok(Base {
            cluster_cidr,
            nodeport_addresses,
            shards: plan::DEFAULT_SHARDS,
            masquerade_fully_random: self.masquerade_fully_random,
        })
    }
}

/// Environment variable choosing the applier: `nft` programs through the
/// `nft` command; anything else (or unset) uses netlink directly.
pub const APPLIER_ENV: &str = "PORTICO_PROXY_APPLIER";

/// The applier for the current network namespace: netlink unless
/// [`APPLIER_ENV`] says `nft` (or the netlink socket cannot be opened).
pub fn default_applier() -> Box<dyn Nft> {
    if std::env::var(APPLIER_ENV).is_ok_and(|v| v == "nft") {
        return Box::new(NftCli::default());
    }
    match NftNetlink::open() {
        Ok(n) => Box::new(n),
        Err(e) => {
            tracing::warn!(error = %e, "nf_tables netlink unavailable; using the nft command");
            Box::new(NftCli::default())
        }
    }
}

/// Removes all of Portico's tables from the current netns (used on shutdown of `portico up`).
pub fn cleanup() -> Result<(), ProxyError> {
    apply::delete_table(&mut *default_applier())
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
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind { addr, source })?;
            let mut registry = Registry::default();
            metrics.register(&mut registry);
            Some(health::serve_admin(
                listener,
                healthz.clone(),
                Arc::new(registry),
            ))
        }
        None => None,
    };

    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff();
    let slices = watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default().labels(model::SERVICE_NAME_LABEL),
    )
    .default_backoff();
    let proxier = Proxier::new(default_applier(), ConntrackCli::default(), base.clone());
    let mut lp = syncloop::SyncLoop::new(proxier, base, config.node_name.clone(), metrics, healthz);
    let result = lp.run(services, slices, shutdown).await;
    if let Some(a) = admin {
        a.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `portico up` runs the proxy inside `tokio::try_join!` on a spawned
    /// task, so the future must be `Send` (checked at compile time).
    #[allow(dead_code)]
    fn run_future_is_send(client: kube::Client, config: ProxyConfig) {
        fn is_send<T: Send>(_: &T) {}
        let fut = run(client, config, async {});
        is_send(&fut);
    }

    #[test]
    fn config_rejects_an_ipv6_cluster_cidr_and_drops_ipv6_nodeport_cidrs() {
        let mut config = ProxyConfig {
            node_name: "n1".into(),
            node_ips: vec![],
            nodeport_addresses: vec![
                "192.168.0.0/24".parse().unwrap(),
                "fd00::/64".parse().unwrap(),
            ],
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            masquerade_fully_random: false,
            healthz_bind: None,
            metrics: None,
        };
        assert_eq!(
            config.base().unwrap().nodeport_addresses,
            vec!["192.168.0.0/24".parse::<Ipv4Net>().unwrap()]
        );
        config.cluster_cidr = "fd00:10::/64".parse().unwrap();
        assert!(matches!(config.base(), Err(ProxyError::Config(_))));
    }
}
