//! portico-agent: the node agent and the pod runtime.
//!
//! # Layout
//! - [`run`]: the agent: registers the Node, renews its Lease, sets the node
//!   network up once the podCIDR is known (`node`), runs the pods bound to the
//!   node and writes their status (`pods`).
//! - [`Runtime`]: pods as processes in their own network/UTS/mount
//!   namespaces (`runtime`, `container`, `process`, `netops`, `probe`).
//! - Pure logic: `envvars`, `podfiles`, `ipam`, `status`, `image`, `names`.
//! - [`agnhost_main`]: the built-in agnhost-compatible test server.
//! - [`log_router`]: the agent's kubelet-style log endpoint (`logs`).

mod agnhost;
mod container;
mod envvars;
mod error;
mod events;
mod image;
mod init;
mod ipam;
mod logs;
mod names;
mod netops;
mod node;
mod podfiles;
mod pods;
mod probe;
mod process;
mod rtnl;
mod runtime;
mod sandbox;
mod status;
mod svcenv;

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use agnhost::agnhost_main;
pub use envvars::{expand, service_env};
pub use error::AgentError;
pub use logs::{find_log, log_router, tail_lines};
pub use podfiles::resolv_conf;
pub use process::pids_in_netns;
pub use runtime::{log_path, PodEvent, Runtime, RuntimeConfig};
pub use sandbox::{stats as sandbox_stats, SandboxStats};
pub use status::{pod_status, CState, ContainerRt, PodRt};

/// Configuration of one node agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    /// Per node state: pod dirs, logs, IP allocations.
    pub data_dir: PathBuf,
    /// Cluster DNS address written to pods' resolv.conf (10.96.0.10).
    pub cluster_dns: Ipv4Addr,
    /// cluster.local
    pub cluster_domain: String,
    /// The pod bridge (portico0).
    pub bridge_name: String,
    /// Port of the agent's log endpoint on `node_ip` (the kubelet's 10250),
    /// reported in the Node's `daemonEndpoints`; 0 serves nothing.
    pub kubelet_port: u16,
    /// Bearer token the log endpoint requires (the node token the API
    /// server also holds); `None` leaves it open.
    pub endpoint_token: Option<String>,
}

/// The kubelet's port, where the API server expects the agent's endpoint.
pub const KUBELET_PORT: u16 = 10250;

/// Default node IP: the IPv4 address of the interface holding the default
/// route in the current network namespace.
pub fn detect_node_ip() -> Result<Ipv4Addr, AgentError> {
    netops::default_route_ipv4()
}

/// Runs the agent until `shutdown` resolves, then stops every pod and removes
/// the namespaces, interfaces and routes it made.
///
/// On start it removes whatever an earlier agent with the same data dir left
/// (processes, netns, veths) and recreates the node's pods from the API: a
/// pod that was running gets a new IP.
pub async fn run(
    client: kube::Client,
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let exe =
        std::env::current_exe().map_err(|e| AgentError::io("finding the agent's own binary", e))?;
    run_with_exe(client, config, exe, shutdown).await
}

/// [`run`] with an explicit binary for agnhost containers (`<exe> agnhost
/// <args>`); `run` uses its own executable. Tests, whose executable is the
/// test harness, pass a helper binary.
pub async fn run_with_exe(
    client: kube::Client,
    config: AgentConfig,
    agnhost_exe: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let runtime = Runtime::new(RuntimeConfig {
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        data_dir: config.data_dir.clone(),
        cluster_dns: config.cluster_dns,
        cluster_domain: config.cluster_domain.clone(),
        bridge_name: config.bridge_name.clone(),
        agnhost_exe,
    })?;
    runtime.cleanup_leftovers().await;
    let endpoint = serve_endpoint(&config).await?;
    let mut shutdown = std::pin::pin!(shutdown);
    let result = tokio::select! {
        r = serve(client, config, std::sync::Arc::clone(&runtime)) => r,
        r = endpoint => r,
        () = &mut shutdown => Ok(()),
    };
    tracing::info!("node agent stopping: removing pods, bridge and routes");
    runtime.shutdown(SHUTDOWN_GRACE).await;
    result
}

/// Binds the log endpoint on `node_ip:kubelet_port` (so a bind failure fails
/// the start) and returns the future serving it.
///
/// Plain HTTP with the node token as Bearer auth, not the kubelet's HTTPS:
/// the endpoint listens only on the node's own address, so the traffic stays
/// on the node LAN (or, single node, on the machine), and the token keeps
/// anyone else there from reading logs.
async fn serve_endpoint(
    config: &AgentConfig,
) -> Result<impl Future<Output = Result<(), AgentError>> + Send + 'static, AgentError> {
    let listener = if config.kubelet_port == 0 {
        None
    } else {
        let addr = std::net::SocketAddr::from((config.node_ip, config.kubelet_port));
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| AgentError::io(format!("binding the log endpoint on {addr}"), e))?;
        tracing::info!(%addr, "log endpoint listening");
        Some(l)
    };
    let app = log_router(config.data_dir.clone(), config.endpoint_token.clone());
    Ok(async move {
        match listener {
            Some(l) => axum::serve(l, app)
                .await
                .map_err(|e| AgentError::io("serving the log endpoint", e)),
            // Nothing to serve: never finish, so the agent runs on.
            None => std::future::pending().await,
        }
    })
}

/// The longest a pod gets to stop when the agent shuts down (`portico up`
/// gives an agent 40 s in all).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(25);

/// Registration, heartbeat, node network, routes and pods; runs until an
/// unrecoverable error (the caller's shutdown cancels it).
async fn serve(
    client: kube::Client,
    config: AgentConfig,
    runtime: std::sync::Arc<Runtime>,
) -> Result<(), AgentError> {
    let ready_since = jiff::Timestamp::now();
    let node_uid = loop {
        match node::register(&client, &config, ready_since).await {
            Ok(uid) => break uid,
            Err(e) => {
                tracing::warn!(error = %e, "registering the node; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    let heartbeat = {
        let (client, config) = (client.clone(), config.clone());
        async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
            let mut ready_since = ready_since;
            let mut lease = tokio::time::interval(node::LEASE_RENEW);
            let mut status = tokio::time::interval(node::STATUS_PERIOD);
            loop {
                tokio::select! {
                    _ = lease.tick() => {
                        if let Err(e) = node::renew_lease(&client, &config.node_name, &node_uid).await {
                            tracing::warn!(error = %e, "renewing the node lease");
                        }
                        // Like the kubelet, repost at once when the status
                        // differs from ours (e.g. the node controller set
                        // Ready=Unknown while we were unreachable).
                        if let Ok(n) = api.get(&config.node_name).await {
                            if !node::reports_ready(&n) {
                                ready_since = jiff::Timestamp::now();
                                if let Err(e) = node::report_status(&api, &config, ready_since).await {
                                    tracing::warn!(error = %e, "node status");
                                }
                            }
                        }
                    }
                    _ = status.tick() => {
                        if let Err(e) = node::report_status(&api, &config, ready_since).await {
                            // Someone deleted our Node: register it again, like the kubelet.
                            if matches!(&e, AgentError::Kube(kube::Error::Api(s)) if s.code == 404) {
                                let _ = node::register(&client, &config, ready_since).await;
                            }
                            tracing::warn!(error = %e, "node status heartbeat");
                        }
                    }
                }
            }
        }
    };
    let work = async {
        let cidr = node::wait_pod_cidr(&client, &config.node_name).await;
        runtime.setup_node(cidr).await?;
        tracing::info!(node = %config.node_name, %cidr, bridge = %config.bridge_name, "node network ready");
        if let Some(rx) = runtime.take_events() {
            tokio::spawn(events::publish(
                client.clone(),
                config.node_name.clone(),
                rx,
            ));
        }
        tokio::join!(
            node::sync_routes(client.clone(), config.node_name.clone()),
            pods::run(client.clone(), std::sync::Arc::clone(&runtime)),
        );
        Ok::<(), AgentError>(())
    };
    tokio::select! {
        () = heartbeat => Ok(()),
        r = work => r,
    }
}
