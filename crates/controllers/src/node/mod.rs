//! Node controllers: podCIDR allocation on registration (IPAM) and the node lifecycle
//! (Lease heartbeats → `Ready=Unknown`, pods on the node marked not ready).

pub mod ipam;
pub mod lifecycle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use crate::queue::{run_workers, WorkQueue};
use crate::recorder::Recorder;
use crate::util;
use crate::{ControllerError, ControllersConfig, Informers, Shared};

struct Ctl {
    client: Client,
    recorder: Recorder,
    config: ControllersConfig,
    nodes: Store<Node>,
    pods: Store<Pod>,
    leases: Store<Lease>,
    /// Ranges reserved but not yet seen on their Node in the cache.
    inflight: Mutex<ipam::Reservations>,
    /// When this controller first saw each node (a grace period after startup).
    first_seen: Mutex<HashMap<String, jiff::Timestamp>>,
}

/// Registers handlers and returns the IPAM worker and lifecycle loop.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    {
        let q = queue.clone();
        inf.nodes.on_change(move |_old, new| {
            if let Some(n) = new {
                if n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none() {
                    q.add(n.name_any());
                }
            }
        });
    }
    let ready = vec![inf.nodes.ready(), inf.pods.ready(), inf.leases.ready()];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        recorder: shared.recorder.for_component("node-controller"),
        config: shared.config.clone(),
        nodes: inf.nodes.store(),
        pods: inf.pods.store(),
        leases: inf.leases.store(),
        inflight: Mutex::new(ipam::Reservations::default()),
        first_seen: Mutex::new(HashMap::new()),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        let lifecycle = {
            let ctl = ctl.clone();
            async move {
                let period = (ctl.config.node_lease_timeout / 4)
                    .clamp(Duration::from_millis(100), Duration::from_secs(5));
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    if let Err(e) = ctl.check_heartbeats().await {
                        tracing::debug!(error = %e, "node lifecycle pass failed");
                    }
                }
            }
        };
        let ipam = {
            let ctl = ctl.clone();
            run_workers("node-ipam", queue, 1, move |key| {
                let ctl = ctl.clone();
                async move { ctl.allocate(&key).await }
            })
        };
        futures::join!(lifecycle, ipam);
    })
}

impl Ctl {
    async fn allocate(&self, name: &str) -> Result<Option<Duration>, ControllerError> {
        let Some(node) = self.nodes.get(&ObjectRef::new(name)) else {
            return Ok(None);
        };
        if node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_ref())
            .is_some()
        {
            return Ok(None);
        }
        let mut alloc =
            ipam::CidrAllocator::new(self.config.cluster_cidr, self.config.node_cidr_prefix);
        for n in self.nodes.state() {
            if let Some(spec) = &n.spec {
                spec.pod_cidr
                    .iter()
                    .chain(spec.pod_cidrs.iter().flatten())
                    .for_each(|c| alloc.occupy(c));
            }
        }
        let reserved = match self.inflight.lock() {
            Ok(mut inflight) => inflight.reserve(name, alloc, |n| {
                self.nodes.get(&ObjectRef::new(n)).is_some_and(|node| {
                    node.spec
                        .as_ref()
                        .and_then(|s| s.pod_cidr.as_ref())
                        .is_none()
                })
            }),
            Err(_) => return Ok(Some(Duration::from_secs(1))),
        };
        let Some(cidr) = reserved else {
            self.recorder.warning(
                &node.object_ref(&()),
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            return Ok(Some(Duration::from_secs(30)));
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        util::ignore_not_found(
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )?;
        Ok(None)
    }

    async fn check_heartbeats(&self) -> Result<(), ControllerError> {
        let now = jiff::Timestamp::now();
        let nodes = self.nodes.state();
        let mut stale_nodes = Vec::new();
        {
            let Ok(mut seen) = self.first_seen.lock() else {
                return Ok(());
            };
            seen.retain(|n, _| self.nodes.get(&ObjectRef::new(n)).is_some());
            for node in &nodes {
                let name = node.name_any();
                let first = *seen.entry(name.clone()).or_insert(now);
                let lease = self
                    .leases
                    .get(&ObjectRef::new(&name).within("kube-node-lease"))
                    .and_then(|l| {
                        l.spec
                            .as_ref()
                            .and_then(|s| s.renew_time.as_ref())
                            .map(|t| t.0)
                    });
                let last = [Some(first), lease, lifecycle::ready_heartbeat(node)]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(first);
                if lifecycle::is_stale(last, now, self.config.node_lease_timeout)
                    && lifecycle::ready_status(node) != Some("Unknown")
                {
                    stale_nodes.push(node.clone());
                }
            }
        }
        for node in stale_nodes {
            self.mark_unknown(&node, now).await?;
        }
        Ok(())
    }

    async fn mark_unknown(&self, node: &Node, now: jiff::Timestamp) -> Result<(), ControllerError> {
        let name = node.name_any();
        let api: Api<Node> = Api::all(self.client.clone());
        let conds = lifecycle::unknown_conditions(node, now);
        let patch = serde_json::json!({"status": {"conditions": conds}});
        util::ignore_not_found(
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )?;
        self.recorder.normal(
            &node.object_ref(&()),
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        // Pods on the node stop being ready, so their endpoints turn not ready.
        for pod in self.pods.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(name.as_str())
                || !util::is_pod_ready(&pod)
            {
                continue;
            }
            let mut conds = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in conds
                .iter_mut()
                .filter(|c| c.type_ == "Ready" || c.type_ == "ContainersReady")
            {
                c.status = "False".into();
                c.last_transition_time = Some(util::now_time());
            }
            let patch = serde_json::json!({"status": {"conditions": conds}});
            let pods: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            util::ignore_not_found(
                pods.patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await,
            )?;
            self.recorder.normal(
                &pod.object_ref(&()),
                "NodeNotReady",
                "Node is not ready".to_string(),
            );
        }
        Ok(())
    }
}
