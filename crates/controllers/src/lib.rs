//! portico-controllers: the cluster's control loops (EndpointSlices and Endpoints,
//! Deployments → ReplicaSets → Pods, scheduler, node lifecycle and podCIDRs, LoadBalancer
//! addresses, garbage collection and namespaces), talking to the API server only through
//! the Kubernetes API with kube-rs, exactly as against a real kube-apiserver.
//!
//! # Layout
//! Each controller is a pure planning module (observed objects in, desired writes out,
//! unit-tested without a server) plus a thin loop: shared [`informer`]s (watch + reflector
//! store) fill a per-controller [`queue::WorkQueue`]; workers read the caches, call the
//! planner and write through the API. Events go through a deduplicating [`recorder`].

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};

pub mod cache;
pub mod client;
pub mod deployment;
pub mod endpoints;
pub mod expectations;
pub mod gc;
pub mod index;
pub mod informer;
pub mod lb;
pub mod node;
pub mod queue;
pub mod recorder;
pub mod replicaset;
pub mod scheduler;
pub mod util;

use informer::Informer;
use recorder::Recorder;

/// Settings of the controllers (from `portico server` / `portico up` flags).
#[derive(Debug, Clone)]
pub struct ControllersConfig {
    /// Pod network (`--cluster-cidr`, default `10.244.0.0/16`) split into per-node ranges.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's podCIDR (default 24).
    pub node_cidr_prefix: u8,
    /// LoadBalancer address pools (`--lb-pool CIDR[,CIDR]`); empty means none.
    pub lb_pools: Vec<ipnet::IpNet>,
    /// A node whose Lease is older than this turns `Ready=Unknown` (default 40 s).
    pub node_lease_timeout: Duration,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        Self {
            cluster_cidr: ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16)
                .unwrap_or_default(),
            node_cidr_prefix: 24,
            lb_pools: Vec::new(),
            node_lease_timeout: Duration::from_secs(40),
        }
    }
}

/// Errors of the controllers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// The configuration cannot work (e.g. node prefix not longer than the cluster CIDR's).
    #[error("invalid controller configuration: {0}")]
    Config(String),
    /// A call to the API server failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A cache could not start (its watcher stopped).
    #[error("cache not ready: {0}")]
    Cache(String),
    /// Serialising a patch failed.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// `kubectl apply`'s record of the last applied object (as large as the object itself).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The shared informers every controller registers its handlers on.
pub(crate) struct Informers {
    pub pods: Informer<Pod>,
    pub services: Informer<Service>,
    pub nodes: Informer<Node>,
    pub slices: Informer<EndpointSlice>,
    pub endpoints: Informer<Endpoints>,
    pub deployments: Informer<Deployment>,
    pub replicasets: Informer<ReplicaSet>,
    pub leases: Informer<Lease>,
    pub namespaces: Informer<Namespace>,
}

impl Informers {
    fn new(client: &Client) -> Self {
        let wc = watcher::Config::default;
        Self {
            pods: Informer::new(Api::all(client.clone()), wc()),
            // Read only (never written back whole): `kubectl apply`'s copy of the object can
            // go, as can managedFields (dropped for every kind).
            services: Informer::compact(Api::all(client.clone()), wc()).with_slim(|s| {
                if let Some(a) = s.metadata.annotations.as_mut() {
                    a.remove(LAST_APPLIED);
                    if a.is_empty() {
                        s.metadata.annotations = None;
                    }
                }
            }),
            nodes: Informer::new(Api::all(client.clone()), wc()),
            slices: Informer::compact(Api::all(client.clone()), wc()),
            endpoints: Informer::compact(Api::all(client.clone()), wc()),
            deployments: Informer::new(Api::all(client.clone()), wc()),
            replicasets: Informer::new(Api::all(client.clone()), wc()),
            leases: Informer::new(Api::namespaced(client.clone(), "kube-node-lease"), wc()),
            namespaces: Informer::new(Api::all(client.clone()), wc()),
        }
    }

    fn into_tasks(self) -> Vec<BoxFuture<'static, ()>> {
        vec![
            Box::pin(self.pods.run()),
            Box::pin(self.services.run()),
            Box::pin(self.nodes.run()),
            Box::pin(self.slices.run()),
            Box::pin(self.endpoints.run()),
            Box::pin(self.deployments.run()),
            Box::pin(self.replicasets.run()),
            Box::pin(self.leases.run()),
            Box::pin(self.namespaces.run()),
        ]
    }
}

/// What every controller gets: the client, the event recorder, the configuration.
#[derive(Clone)]
pub(crate) struct Shared {
    pub client: Client,
    pub recorder: Recorder,
    pub config: ControllersConfig,
}

/// Checks a configuration before anything starts.
pub fn validate_config(config: &ControllersConfig) -> Result<(), ControllerError> {
    if config.node_cidr_prefix < config.cluster_cidr.prefix_len() || config.node_cidr_prefix > 30 {
        return Err(ControllerError::Config(format!(
            "node CIDR prefix /{} does not fit in cluster CIDR {}",
            config.node_cidr_prefix, config.cluster_cidr
        )));
    }
    Ok(())
}

/// Runs every controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: ControllersConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    validate_config(&config)?;
    let (recorder, publisher) = Recorder::new(client.clone());
    let shared = Shared {
        client: client.clone(),
        recorder,
        config,
    };
    let mut inf = Informers::new(&client);
    let controllers: Vec<BoxFuture<'static, ()>> = vec![
        endpoints::setup(&mut inf, &shared),
        replicaset::setup(&mut inf, &shared),
        deployment::setup(&mut inf, &shared),
        scheduler::setup(&mut inf, &shared),
        node::setup(&mut inf, &shared),
        lb::setup(&mut inf, &shared),
        gc::setup(&mut inf, &shared),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(publisher);
    for t in inf.into_tasks().into_iter().chain(controllers) {
        tasks.spawn(t);
    }
    shutdown.await;
    tasks.shutdown().await;
    Ok(())
}
