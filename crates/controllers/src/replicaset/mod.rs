//! ReplicaSet controller: keeps the number of pods of each ReplicaSet at `spec.replicas` and
//! reports its status.

pub mod plan;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use crate::expectations::Expectations;
use crate::index::{LabelIndex, OwnerIndex};
use crate::queue::{run_workers, WorkQueue};
use crate::recorder::Recorder;
use crate::util::{self, ignore_not_found, key_of, split_key};
use crate::{ControllerError, Informers, Shared};

struct Ctl {
    client: Client,
    recorder: Recorder,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    pod_labels: Arc<LabelIndex>,
    pod_owners: Arc<OwnerIndex>,
    expectations: Expectations,
}

/// Registers handlers and returns the controller loop.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    let pod_labels = Arc::new(LabelIndex::new());
    let pod_owners = Arc::new(OwnerIndex::new());
    {
        let q = queue.clone();
        inf.replicasets.on_change(move |old, new| {
            if let Some(rs) = new.or(old) {
                q.add(key_of(rs));
            }
        });
    }
    {
        let (q, labels, owners) = (queue.clone(), pod_labels.clone(), pod_owners.clone());
        let rs_store = inf.replicasets.store();
        inf.pods.on_change(move |old, new| {
            for pod in [old, new].into_iter().flatten() {
                let ns = pod.namespace().unwrap_or_default();
                match util::controller_ref(&pod.metadata) {
                    Some(r) if r.kind == "ReplicaSet" => q.add(format!("{ns}/{}", r.name)),
                    Some(_) => {}
                    None => {
                        // An orphan: any ReplicaSet selecting it may adopt it.
                        for rs in rs_store.state() {
                            if rs.namespace().as_deref() == Some(ns.as_str())
                                && rs.spec.as_ref().is_some_and(|s| {
                                    util::label_selector_matches(&s.selector, pod.labels())
                                })
                            {
                                q.add(key_of(&*rs));
                            }
                        }
                    }
                }
            }
            match (old, new) {
                (_, Some(p)) => {
                    labels.set(
                        &p.namespace().unwrap_or_default(),
                        &p.name_any(),
                        p.labels(),
                    );
                    owners.set(
                        &key_of(p),
                        p.owner_references().iter().map(|r| r.uid.clone()).collect(),
                    );
                }
                (Some(p), None) => {
                    labels.remove(&p.namespace().unwrap_or_default(), &p.name_any());
                    owners.remove(&key_of(p));
                }
                (None, None) => {}
            }
        });
    }
    let ready = vec![inf.replicasets.ready(), inf.pods.ready()];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        recorder: shared.recorder.for_component("replicaset-controller"),
        replicasets: inf.replicasets.store(),
        pods: inf.pods.store(),
        pod_labels,
        pod_owners,
        expectations: Expectations::new(),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        run_workers("replicaset", queue, 4, move |key| {
            let ctl = ctl.clone();
            async move { ctl.reconcile(&key).await }
        })
        .await;
    })
}

impl Ctl {
    fn pod(&self, ns: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.get(&ObjectRef::new(name).within(ns))
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ControllerError> {
        let (Some(ns), name) = split_key(key) else {
            return Ok(None);
        };
        let Some(rs) = self.replicasets.get(&ObjectRef::new(name).within(ns)) else {
            self.expectations.clear(key);
            return Ok(None);
        };
        let synced = self.expectations.satisfied(
            key,
            |n| self.pod(ns, n).is_some(),
            |n| {
                self.pod(ns, n)
                    .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            },
        );
        if !synced {
            tracing::debug!(rs = key, "waiting for pod cache to catch up");
            return Ok(Some(Duration::from_secs(1)));
        }
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let mut names: HashSet<String> = self
            .pod_owners
            .dependents(&uid)
            .into_iter()
            .map(|k| split_key(&k).1.to_string())
            .collect();
        if let Some(ml) = rs
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
        {
            names.extend(self.pod_labels.containing(ns, ml));
        }
        let pods: Vec<Arc<Pod>> = names.iter().filter_map(|n| self.pod(ns, n)).collect();
        let refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        let now = jiff::Timestamp::now();
        let plan = plan::plan_replicaset(&rs, &refs, now);
        tracing::debug!(
            rs = key,
            create = plan.create,
            delete = plan.delete.len(),
            owned = pods.len(),
            "replicaset sync"
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let rs_ref = rs.object_ref(&());

        for pod_name in &plan.adopt {
            if let Some(p) = self.pod(ns, pod_name) {
                let mut refs = p.owner_references().to_vec();
                refs.push(util::controller_owner_ref(&*rs));
                let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "resourceVersion": p.resource_version()}});
                ignore_not_found(
                    api.patch(pod_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
            }
        }
        for pod_name in &plan.release {
            if let Some(p) = self.pod(ns, pod_name) {
                let refs: Vec<_> = p
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != uid)
                    .cloned()
                    .collect();
                let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "resourceVersion": p.resource_version()}});
                ignore_not_found(
                    api.patch(pod_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
            }
        }

        let mut first_err: Option<kube::Error> = None;
        if plan.create > 0 {
            let new_pods: Vec<Pod> = (0..plan.create)
                .map(|_| plan::pod_from_template(&rs))
                .collect();
            let new_names: Vec<String> = new_pods.iter().map(|p| p.name_any()).collect();
            self.expectations.expect(key, &new_names, &[]);
            let results: Vec<(String, Result<Pod, kube::Error>)> = futures::stream::iter(new_pods)
                .map(|p| {
                    let api = api.clone();
                    async move { (p.name_any(), api.create(&PostParams::default(), &p).await) }
                })
                .buffer_unordered(32)
                .collect()
                .await;
            for (pod_name, r) in results {
                match r {
                    Ok(_) => self.recorder.normal(
                        &rs_ref,
                        "SuccessfulCreate",
                        format!("Created pod: {pod_name}"),
                    ),
                    Err(e) => {
                        self.expectations.forget_name(key, &pod_name);
                        self.recorder.warning(
                            &rs_ref,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        );
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        if !plan.delete.is_empty() {
            self.expectations.expect(key, &[], &plan.delete);
            for pod_name in &plan.delete {
                match ignore_not_found(api.delete(pod_name, &DeleteParams::background()).await) {
                    Ok(()) => self.recorder.normal(
                        &rs_ref,
                        "SuccessfulDelete",
                        format!("Deleted pod: {pod_name}"),
                    ),
                    Err(e) => {
                        self.expectations.forget_name(key, pod_name);
                        self.recorder.warning(
                            &rs_ref,
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        first_err.get_or_insert(e);
                    }
                }
            }
        }

        if !status_equal(rs.status.as_ref(), &plan.status) {
            let mut next = (*rs).clone();
            next.status = Some(plan.status.clone());
            let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
            match rs_api
                .replace_status(name, &PostParams::default(), &next)
                .await
            {
                Ok(_) => {}
                Err(e) if util::api_code(&e) == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(e) = first_err {
            return Err(e.into());
        }
        Ok(plan
            .recheck_after_secs
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(1))))
    }
}

/// Status equality treating absent counters as zero (the API omits zero values).
fn status_equal(
    cur: Option<&k8s_openapi::api::apps::v1::ReplicaSetStatus>,
    want: &k8s_openapi::api::apps::v1::ReplicaSetStatus,
) -> bool {
    let Some(cur) = cur else {
        return false;
    };
    let z = |v: Option<i32>| v.unwrap_or(0);
    cur.replicas == want.replicas
        && z(cur.ready_replicas) == z(want.ready_replicas)
        && z(cur.available_replicas) == z(want.available_replicas)
        && z(cur.fully_labeled_replicas) == z(want.fully_labeled_replicas)
        && cur.observed_generation == want.observed_generation
}
