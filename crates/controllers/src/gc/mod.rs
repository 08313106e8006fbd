//! Garbage collector (ownerReferences: background, foreground, orphan) and namespace
//! controller (empties a terminating namespace, then finalizes it).
//!
//! The ownership graph is fed by the shared informers of the kinds Portico's controllers
//! create and own (Deployments, ReplicaSets, Pods, Services, EndpointSlices, Endpoints).
//! Owners of other kinds are checked with a live GET, as Kubernetes' collector does before
//! deleting anything.

pub mod graph;
mod namespace;
pub mod store;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::informer::Informer;
use crate::queue::{run_workers, WorkQueue};
use crate::util;
use crate::{ControllerError, Informers, Shared};
use graph::{DependentAction, OwnerAction};
use store::{Graph, GraphNode};

struct Ctl {
    client: Client,
    graph: Arc<Graph>,
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

fn track<K>(inf: &mut Informer<K>, graph: Arc<Graph>, queue: WorkQueue)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug
        + Send
        + Sync
        + 'static,
{
    let resource = Arc::new(ApiResource::erase::<K>(&()));
    inf.on_change(move |old, new| match new {
        Some(obj) => {
            let uid = obj.uid().unwrap_or_default();
            let node = GraphNode {
                resource: resource.clone(),
                namespace: obj.namespace(),
                name: obj.name_any(),
                owners: obj.owner_references().to_vec(),
                finalizers: obj.finalizers().to_vec(),
                deleting: obj.meta().deletion_timestamp.is_some(),
            };
            let interesting = !node.owners.is_empty()
                || (node.deleting
                    && node
                        .finalizers
                        .iter()
                        .any(|f| f == graph::FOREGROUND || f == graph::ORPHAN));
            if node.deleting {
                // A dependent going away may let a foreground owner finish.
                node.owners.iter().for_each(|o| queue.add(o.uid.clone()));
            }
            graph.observe(&uid, node);
            if interesting {
                queue.add(uid);
            }
        }
        None => {
            if let Some(obj) = old {
                let uid = obj.uid().unwrap_or_default();
                graph.forget(&uid);
                for d in graph.dependents(&uid) {
                    queue.add(d);
                }
                obj.owner_references()
                    .iter()
                    .for_each(|o| queue.add(o.uid.clone()));
            }
        }
    });
}

/// Registers handlers and returns the collector and namespace loops.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    let graph = Arc::new(Graph::default());
    track(&mut inf.deployments, graph.clone(), queue.clone());
    track(&mut inf.replicasets, graph.clone(), queue.clone());
    track(&mut inf.pods, graph.clone(), queue.clone());
    track(&mut inf.services, graph.clone(), queue.clone());
    track(&mut inf.slices, graph.clone(), queue.clone());
    track(&mut inf.endpoints, graph.clone(), queue.clone());
    let stores_ready = crate::informer::all_ready(vec![
        inf.deployments.ready(),
        inf.replicasets.ready(),
        inf.pods.ready(),
        inf.services.ready(),
        inf.slices.ready(),
        inf.endpoints.ready(),
    ]);
    let ns_loop = namespace::setup(inf, shared);
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        graph,
        kinds: Mutex::new(HashMap::new()),
    });
    Box::pin(async move {
        let gc = async move {
            if !stores_ready.await {
                return;
            }
            run_workers("garbage-collector", queue, 4, move |uid| {
                let ctl = ctl.clone();
                async move { ctl.process(&uid).await }
            })
            .await;
        };
        futures::join!(gc, ns_loop);
    })
}

impl Ctl {
    fn node(&self, uid: &str) -> Option<GraphNode> {
        self.graph.node(uid)
    }

    fn api(&self, resource: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    /// The resource of `apiVersion`/`kind` and whether it is namespaced (discovery, cached).
    async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), kube::Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.kinds.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(r);
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        let namespaced = caps.scope == kube::discovery::Scope::Namespaced;
        if let Ok(mut m) = self.kinds.lock() {
            m.insert(key, (ar.clone(), namespaced));
        }
        Ok((ar, namespaced))
    }

    /// Whether the owner still exists (same UID), from the graph or a live read.
    async fn owner_exists(
        &self,
        owner: &OwnerReference,
        ns: Option<&str>,
    ) -> Result<bool, ControllerError> {
        if self.graph.exists(&owner.uid) {
            return Ok(true);
        }
        let (resource, namespaced) = match self.resolve(&owner.api_version, &owner.kind).await {
            Ok(r) => r,
            // The server does not serve that kind: no such owner can exist.
            Err(kube::Error::Discovery(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let api = self.api(&resource, if namespaced { ns } else { None });
        match api.get_opt(&owner.name).await {
            Ok(Some(obj)) => Ok(obj.uid().as_deref() == Some(owner.uid.as_str())),
            Ok(None) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn process(&self, uid: &str) -> Result<Option<Duration>, ControllerError> {
        let Some(node) = self.node(uid) else {
            return Ok(None);
        };
        let api = self.api(&node.resource, node.namespace.as_deref());
        let deps: Vec<(String, GraphNode)> = self
            .graph
            .dependents(uid)
            .into_iter()
            .filter_map(|d| self.node(&d).map(|n| (d, n)))
            .collect();
        match graph::owner_action(&node.finalizers, node.deleting, deps.len()) {
            OwnerAction::Orphan => {
                for (_, dep) in &deps {
                    let refs: Vec<&OwnerReference> =
                        dep.owners.iter().filter(|o| o.uid != uid).collect();
                    let patch = serde_json::json!({"metadata": {"ownerReferences": refs}});
                    let dapi = self.api(&dep.resource, dep.namespace.as_deref());
                    util::ignore_not_found(
                        dapi.patch(&dep.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await,
                    )?;
                }
                self.drop_finalizer(&api, &node, graph::ORPHAN).await?;
                return Ok(None);
            }
            OwnerAction::DeleteDependents => {
                for (_, dep) in deps.iter().filter(|(_, d)| !d.deleting) {
                    let dapi = self.api(&dep.resource, dep.namespace.as_deref());
                    util::ignore_not_found(
                        dapi.delete(&dep.name, &DeleteParams::foreground()).await,
                    )?;
                }
                return Ok(Some(Duration::from_millis(500)));
            }
            OwnerAction::Finish => {
                self.drop_finalizer(&api, &node, graph::FOREGROUND).await?;
                return Ok(None);
            }
            OwnerAction::None => {}
        }
        if node.owners.is_empty() || node.deleting {
            return Ok(None);
        }
        let mut exists = Vec::with_capacity(node.owners.len());
        for o in &node.owners {
            exists.push(self.owner_exists(o, node.namespace.as_deref()).await?);
        }
        match graph::dependent_action(&node.owners, &exists) {
            DependentAction::Keep => {}
            DependentAction::Delete => {
                util::ignore_not_found(api.delete(&node.name, &DeleteParams::background()).await)?;
            }
            DependentAction::Rewrite(refs) => {
                let patch = serde_json::json!({"metadata": {"ownerReferences": refs}});
                util::ignore_not_found(
                    api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
            }
        }
        Ok(None)
    }

    async fn drop_finalizer(
        &self,
        api: &Api<DynamicObject>,
        node: &GraphNode,
        finalizer: &str,
    ) -> Result<(), ControllerError> {
        let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = serde_json::json!({"metadata": {"finalizers": rest}});
        util::ignore_not_found(
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )?;
        Ok(())
    }
}
