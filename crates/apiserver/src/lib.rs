//! portico-apiserver: a Kubernetes-compatible HTTPS API server over the Portico store.
//!
//! # Layout
//! - [`prepare`] / [`run`]: the entry points (data dir, TLS material, kubeconfig, serving);
//! - `pki`: CA, serving certificate, tokens, kubeconfig;
//! - `serve`: TLS listeners and HTTP/1.1 + h2 connections;
//! - `http`: authentication, routing, metrics, response encoding;
//! - `rest`, `delete`, `list`, `watch`, `subresource`: the REST verbs;
//! - `podlog`: `pods/log`, proxied to the node agent;
//! - `alloc` (pure) and `services`: ClusterIP/NodePort allocation in the write txn;
//! - `objects` (pure): keys and the metadata Kubernetes manages;
//! - `hooks`: the seams into `portico_api` (validation, defaulting, patch, tables);
//! - `bootstrap`: namespaces and the `kubernetes`/`kube-dns` Services on first start.

// `portico_api::status::ApiError` (shared, ~130 bytes) is the error of every
// handler; errors are the cold path, so boxing it everywhere buys nothing.
#![allow(clippy::result_large_err)]

mod alloc;
mod bootstrap;
mod delete;
mod hooks;
mod http;
mod list;
mod metrics;
mod objects;
mod path;
mod pki;
mod podlog;
mod ports;
mod protobuf;
mod rawjson;
mod rest;
mod serve;
mod services;
mod subresource;
mod watch;

use std::future::Future;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use portico_store::{RedbStore, SharedStore};

pub use podlog::NodeDialer;

/// How to run the API server.
pub struct ServerConfig {
    /// Directory for the store, PKI, tokens and kubeconfig.
    pub data_dir: PathBuf,
    /// Pre-bound listeners (possibly in other network namespaces); each serves HTTPS.
    pub listeners: Vec<std::net::TcpListener>,
    /// URL written into the kubeconfig, e.g. `https://127.0.0.1:6443`.
    pub advertise_url: String,
    /// `--service-cluster-ip-range` (default 10.96.0.0/12).
    pub service_cluster_ip_range: ipnet::IpNet,
    /// `--service-node-port-range` (default 30000-32767).
    pub service_node_port_range: RangeInclusive<u16>,
    /// Extra SANs for the serving certificate (host names or IPs).
    pub extra_sans: Vec<String>,
    /// How to reach node agents (`pods/log`) when the nodes are not in this
    /// process's network namespace; `None` connects directly.
    pub node_dialer: Option<NodeDialer>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("listeners", &self.listeners)
            .field("advertise_url", &self.advertise_url)
            .field("service_cluster_ip_range", &self.service_cluster_ip_range)
            .field("service_node_port_range", &self.service_node_port_range)
            .field("extra_sans", &self.extra_sans)
            .field("node_dialer", &self.node_dialer.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl ServerConfig {
    /// A config with Kubernetes' default ranges and no listeners.
    pub fn new(data_dir: impl Into<PathBuf>, advertise_url: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listeners: Vec::new(),
            advertise_url: advertise_url.into(),
            service_cluster_ip_range: ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            ),
            service_node_port_range: 30000..=32767,
            extra_sans: Vec::new(),
            node_dialer: None,
        }
    }
}

/// What `prepare` produced: where clients find credentials.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `DATA_DIR/kubeconfig.yaml` (admin, cluster/context/user `portico`).
    pub kubeconfig_path: PathBuf,
    /// The CA certificate clients must trust.
    pub ca_cert_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// `DATA_DIR/node-token`: the token agents join with.
    pub node_token_path: PathBuf,
}

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// File system trouble under the data dir.
    #[error("io: {0}")]
    Io(String),
    /// Certificate or TLS configuration trouble.
    #[error("tls: {0}")]
    Tls(String),
    /// The store failed to open or write.
    #[error("store: {0}")]
    Store(#[from] portico_store::StoreError),
    /// First-start objects could not be created.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// Creates the data dir, CA + serving cert (SANs: localhost, 127.0.0.1, the
/// advertise host, `extra_sans`), tokens, `DIR/kubeconfig.yaml` and `DIR/node-token`.
/// Idempotent: reuses existing files.
pub fn prepare(config: &ServerConfig) -> Result<Prepared, ServerError> {
    let m = pki::ensure(&config.data_dir, &config.advertise_url, &config.extra_sans)?;
    let files = pki::Files::new(&config.data_dir);
    Ok(Prepared {
        kubeconfig_path: files.kubeconfig,
        ca_cert_pem: m.ca_cert_pem,
        admin_token: m.admin_token,
        node_token_path: files.node_token,
    })
}

/// Serves until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let material = pki::ensure(&config.data_dir, &config.advertise_url, &config.extra_sans)?;
    let files = pki::Files::new(&config.data_dir);
    let store: SharedStore = Arc::new(RedbStore::open(&files.store_dir)?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(http::AppState::new(store, &config, &material, stop_rx));
    bootstrap::run(&state, &config.advertise_url).await?;
    let served = serve::serve(state.clone(), config.listeners, &material, shutdown).await;
    // End watches and wait for connection tasks to drop their state, so the
    // store is closed (file lock released) when run() returns.
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while Arc::strong_count(&state) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if Arc::strong_count(&state) > 1 {
        tracing::warn!("server state still referenced after shutdown; store closes when released");
    }
    drop(state);
    served
}
