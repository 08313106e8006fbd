//! Scheduler: binds pending pods to nodes through the `pods/binding` subresource, one
//! decision at a time so spreading sees its own previous choices.
//!
//! Like kube-scheduler's binding cycle, the bind request runs in a task of
//! its own once the placement is assumed: the next decision does not wait
//! for the API round trip, so a burst of pods is bound with many requests in
//! flight (the store commits them in groups) instead of one write at a time.

pub mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, PodCondition};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Semaphore;

use crate::queue::{run_workers, WorkQueue};
use crate::recorder::Recorder;
use crate::util::{self, key_of, split_key};
use crate::{ControllerError, Informers, Shared};

/// Name pods use to ask for this scheduler.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Bind requests in flight at once: enough to keep the API server's group
/// commit busy during a burst, few enough not to flood it.
const MAX_BINDS_IN_FLIGHT: usize = 32;

#[derive(Default)]
struct Counts {
    per_node: HashMap<String, usize>,
    per_owner: HashMap<(String, String), usize>,
    /// Pods bound by us but not yet seen bound in the cache: key -> (node, owner).
    assumed: HashMap<String, (String, String)>,
    /// Pods waiting for a node (retried when nodes change).
    pending: HashSet<String>,
}

impl Counts {
    fn add(&mut self, node: &str, owner: &str, delta: isize) {
        for slot in [
            self.per_node.entry(node.to_string()).or_default(),
            self.per_owner
                .entry((owner.to_string(), node.to_string()))
                .or_default(),
        ] {
            *slot = slot.saturating_add_signed(delta);
        }
    }
}

fn placement(p: &Pod) -> Option<(String, String)> {
    let node = p.spec.as_ref()?.node_name.clone()?;
    if util::is_terminal(p) {
        return None;
    }
    let owner = util::controller_ref(&p.metadata)
        .map(|r| r.uid.clone())
        .unwrap_or_default();
    Some((node, owner))
}

fn wants_scheduling(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    spec.and_then(|s| s.node_name.as_ref()).is_none()
        && p.metadata.deletion_timestamp.is_none()
        && !util::is_terminal(p)
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n == SCHEDULER_NAME)
}

struct Ctl {
    client: Client,
    recorder: Recorder,
    pods: Store<Pod>,
    nodes: Store<Node>,
    counts: Arc<Mutex<Counts>>,
    queue: WorkQueue,
    binds: Arc<Semaphore>,
}

/// Registers handlers and returns the scheduler loop.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    let counts = Arc::new(Mutex::new(Counts::default()));
    {
        let (q, counts) = (queue.clone(), counts.clone());
        inf.pods.on_change(move |old, new| {
            let Some(any) = new.or(old) else {
                return;
            };
            let key = key_of(any);
            let Ok(mut c) = counts.lock() else {
                return;
            };
            let before = old.and_then(placement);
            let after = new.and_then(placement);
            if before != after {
                if let Some((n, o)) = &before {
                    c.add(n, o, -1);
                }
                if let Some((n, o)) = &after {
                    match c.assumed.remove(&key) {
                        Some(assumed) if assumed == (n.clone(), o.clone()) => {}
                        Some((an, ao)) => {
                            c.add(&an, &ao, -1);
                            c.add(n, o, 1);
                        }
                        None => c.add(n, o, 1),
                    }
                }
            }
            if new.is_none() {
                if let Some((an, ao)) = c.assumed.remove(&key) {
                    c.add(&an, &ao, -1);
                }
            }
            if new.is_some_and(wants_scheduling) {
                c.pending.insert(key.clone());
                drop(c);
                q.add(key);
            } else {
                c.pending.remove(&key);
            }
        });
    }
    {
        let (q, counts) = (queue.clone(), counts.clone());
        inf.nodes.on_change(move |old, new| {
            let relevant = |n: &Node| {
                (
                    plan::node_ready(n),
                    n.spec.as_ref().map(|s| (s.unschedulable, s.taints.clone())),
                    n.metadata.labels.clone(),
                )
            };
            let changed = match (old, new) {
                (Some(o), Some(n)) => relevant(o) != relevant(n),
                _ => true,
            };
            if changed {
                if let Ok(c) = counts.lock() {
                    for k in &c.pending {
                        q.add(k.clone());
                    }
                }
            }
        });
    }
    let ready = vec![inf.pods.ready(), inf.nodes.ready()];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        recorder: shared.recorder.for_component(SCHEDULER_NAME),
        pods: inf.pods.store(),
        nodes: inf.nodes.store(),
        counts,
        queue: queue.clone(),
        binds: Arc::new(Semaphore::new(MAX_BINDS_IN_FLIGHT)),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        // One worker: each decision must see the previous one.
        run_workers("scheduler", queue, 1, move |key| {
            let ctl = ctl.clone();
            async move { Arc::clone(&ctl).reconcile(&key).await }
        })
        .await;
    })
}

impl Ctl {
    async fn reconcile(self: Arc<Self>, key: &str) -> Result<Option<Duration>, ControllerError> {
        let (Some(ns), name) = split_key(key) else {
            return Ok(None);
        };
        let Some(pod) = self.pods.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        if !wants_scheduling(&pod) {
            return Ok(None);
        }
        let owner = util::controller_ref(&pod.metadata)
            .map(|r| r.uid.clone())
            .unwrap_or_default();
        let mut nodes: Vec<Arc<Node>> = self.nodes.state();
        nodes.sort_by_key(|n| n.name_any());
        let choice = {
            let Ok(c) = self.counts.lock() else {
                return Ok(None);
            };
            if c.assumed.contains_key(key) {
                return Ok(None);
            }
            let candidates: Vec<plan::Candidate<'_>> = nodes
                .iter()
                .map(|n| {
                    let nn = n.name_any();
                    plan::Candidate {
                        node: n,
                        pods: c.per_node.get(&nn).copied().unwrap_or(0),
                        owner_pods: if owner.is_empty() {
                            0
                        } else {
                            c.per_owner.get(&(owner.clone(), nn)).copied().unwrap_or(0)
                        },
                    }
                })
                .collect();
            plan::choose_node(&pod, &candidates)
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod_ref = pod.object_ref(&());
        match choice {
            Ok(node) => {
                // Assume the placement before binding: the watch event of the
                // bound pod can arrive before bind() returns, and counting it
                // only afterwards would count it twice.
                if let Ok(mut c) = self.counts.lock() {
                    c.assumed
                        .insert(key.to_string(), (node.clone(), owner.clone()));
                    c.add(&node, &owner, 1);
                }
                // The binding cycle: the next decision already sees this
                // placement (assumed), so it need not wait for the bind.
                // While the bind is in flight a requeued key finds the
                // assumption and does nothing; a failed bind drops it and
                // retries the pod.
                let Ok(permit) = Arc::clone(&self.binds).acquire_owned().await else {
                    return Ok(None);
                };
                let (ctl, key, ns) = (Arc::clone(&self), key.to_string(), ns.to_string());
                tokio::spawn(async move {
                    let result = ctl.bind(&api, &pod, &node).await;
                    drop(permit);
                    match result {
                        Ok(()) => {
                            if let Ok(mut c) = ctl.counts.lock() {
                                c.pending.remove(&key);
                            }
                            ctl.recorder.normal(
                                &pod_ref,
                                "Scheduled",
                                format!("Successfully assigned {ns}/{} to {node}", pod.name_any()),
                            );
                        }
                        Err(e) => {
                            tracing::debug!(key = %key, error = %e, "binding failed, retrying");
                            if let Ok(mut c) = ctl.counts.lock() {
                                if c.assumed.remove(&key).is_some() {
                                    c.add(&node, &owner, -1);
                                }
                            }
                            ctl.queue.retry(&key);
                        }
                    }
                });
                Ok(None)
            }
            Err(msg) => {
                let mut conds: Vec<PodCondition> = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.clone())
                    .unwrap_or_default();
                let already = conds.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.message.as_deref() == Some(msg.as_str())
                });
                if !already {
                    conds.retain(|c| c.type_ != "PodScheduled");
                    conds.push(PodCondition {
                        type_: "PodScheduled".into(),
                        status: "False".into(),
                        reason: Some("Unschedulable".into()),
                        message: Some(msg.clone()),
                        last_transition_time: Some(util::now_time()),
                        ..Default::default()
                    });
                    let patch = serde_json::json!({"status": {"conditions": conds}});
                    util::ignore_not_found(
                        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await,
                    )?;
                }
                // After the condition is written: whoever sees the Event
                // also finds the pod marked Unschedulable.
                self.recorder.warning(&pod_ref, "FailedScheduling", msg);
                // Node changes requeue pending pods; the timer covers anything else.
                Ok(Some(Duration::from_secs(15)))
            }
        }
    }

    async fn bind(&self, api: &Api<Pod>, pod: &Pod, node: &str) -> Result<(), ControllerError> {
        let name = pod.name_any();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: pod.namespace(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                ..Default::default()
            },
        };
        let res: Result<serde_json::Value, kube::Error> = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        match res {
            Ok(_) => Ok(()),
            // No binding subresource on this server: set spec.nodeName directly.
            Err(e)
                if matches!(util::api_code(&e), Some(404) | Some(405))
                    && self.pods.get(&ObjectRef::from_obj(pod)).is_some() =>
            {
                let patch = serde_json::json!({"spec": {"nodeName": node}});
                util::ignore_not_found(
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}
