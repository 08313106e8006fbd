//! Deployment controller: creates the ReplicaSet of the current template, rolls pods over
//! from old ReplicaSets (RollingUpdate or Recreate), keeps revisions and history, and
//! reports status.

pub mod rollout;
pub mod status;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use crate::queue::{run_workers, WorkQueue};
use crate::recorder::Recorder;
use crate::util::{self, ignore_not_found, key_of, split_key};
use crate::{ControllerError, Informers, Shared};
use rollout::Scale;
use status::Progress;
use template::{revision_of, DESIRED_REPLICAS, MAX_REPLICAS, REVISION, REVISION_HISTORY};

struct Ctl {
    client: Client,
    recorder: Recorder,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
}

/// Registers handlers and returns the controller loop.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    {
        let q = queue.clone();
        inf.deployments.on_change(move |old, new| {
            if let Some(d) = new.or(old) {
                q.add(key_of(d));
            }
        });
    }
    {
        let q = queue.clone();
        inf.replicasets.on_change(move |old, new| {
            for rs in [old, new].into_iter().flatten() {
                if let Some(r) =
                    util::controller_ref(&rs.metadata).filter(|r| r.kind == "Deployment")
                {
                    q.add(format!("{}/{}", rs.namespace().unwrap_or_default(), r.name));
                }
            }
        });
    }
    let ready = vec![inf.deployments.ready(), inf.replicasets.ready()];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        recorder: shared.recorder.for_component("deployment-controller"),
        deployments: inf.deployments.store(),
        replicasets: inf.replicasets.store(),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        run_workers("deployment", queue, 4, move |key| {
            let ctl = ctl.clone();
            async move { ctl.reconcile(&key).await }
        })
        .await;
    })
}

impl Ctl {
    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ControllerError> {
        let (Some(ns), name) = split_key(key) else {
            return Ok(None);
        };
        let Some(d) = self.deployments.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        // Adopt orphaned ReplicaSets the selector matches (e.g. after an orphan delete and
        // re-create), as Kubernetes' controller ref manager does.
        if d.metadata.deletion_timestamp.is_none() {
            let selector = d
                .spec
                .as_ref()
                .map(|s| s.selector.clone())
                .unwrap_or_default();
            let orphans: Vec<Arc<ReplicaSet>> = self
                .replicasets
                .state()
                .into_iter()
                .filter(|rs| {
                    rs.namespace().as_deref() == Some(ns)
                        && util::controller_ref(&rs.metadata).is_none()
                        && rs.metadata.deletion_timestamp.is_none()
                        && !selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && util::label_selector_matches(&selector, rs.labels())
                })
                .collect();
            for rs in &orphans {
                let mut refs = rs.owner_references().to_vec();
                refs.push(util::controller_owner_ref(&*d));
                let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.resource_version()}});
                ignore_not_found(
                    rs_api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await,
                )?;
            }
            if !orphans.is_empty() {
                // Continue once the cache shows the adoption.
                return Ok(Some(Duration::from_millis(100)));
            }
        }
        let mut rss: Vec<ReplicaSet> = self
            .replicasets
            .state()
            .into_iter()
            .filter(|rs| {
                rs.namespace().as_deref() == Some(ns) && util::is_controlled_by(&rs.metadata, &uid)
            })
            .map(|rs| (*rs).clone())
            .collect();
        rss.sort_by_key(|rs| {
            (
                rs.metadata.creation_timestamp.clone().map(|t| t.0),
                rs.name_any(),
            )
        });
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let d_ref = d.object_ref(&());
        let mut progress = Progress::Idle;
        let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);

        let mut new_idx = rss.iter().position(|rs| template::template_matches(rs, &d));
        let max_old_rev = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, rs)| revision_of(&rs.metadata))
            .max()
            .unwrap_or(0);
        let (surge, _) = rollout::fenceposts(&d);
        let want = rollout::desired(&d);
        let recreate = d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");

        if d.metadata.deletion_timestamp.is_none() && !paused {
            // Make sure the new ReplicaSet exists (Recreate waits for old pods to be gone).
            if new_idx.is_none() {
                let olds: Vec<&ReplicaSet> = rss.iter().collect();
                let (may_create, replicas) = if recreate {
                    let (downs, may) = rollout::recreate_step(&d, None, &olds);
                    self.apply_scales(&rs_api, &d, &d_ref, &mut rss, &downs)
                        .await?;
                    if !downs.is_empty() {
                        progress = Progress::Updated;
                    }
                    (may, want)
                } else {
                    (true, rollout::new_rs_replicas(&d, 0, &olds))
                };
                if may_create {
                    let collision = d.status.as_ref().and_then(|s| s.collision_count);
                    let hash = template::pod_template_hash(
                        &d.spec.clone().unwrap_or_default().template,
                        collision,
                    );
                    let rs = template::new_replicaset(&d, &hash, replicas, max_old_rev + 1, surge);
                    match rs_api.create(&PostParams::default(), &rs).await {
                        Ok(created) => {
                            self.recorder.normal(
                                &d_ref,
                                "ScalingReplicaSet",
                                format!(
                                    "Scaled up replica set {} from 0 to {replicas}",
                                    created.name_any()
                                ),
                            );
                            rss.push(created);
                            new_idx = Some(rss.len() - 1);
                            progress = Progress::Created;
                        }
                        Err(e) if util::api_code(&e) == Some(409) => {
                            // A ReplicaSet of that name exists: ours (cache lag) or a hash
                            // collision. Kubernetes bumps collisionCount for the latter.
                            let existing = rs_api.get(&rs.name_any()).await?;
                            if !(template::template_matches(&existing, &d)
                                && util::is_controlled_by(&existing.metadata, &uid))
                            {
                                let mut next = (*d).clone();
                                let st = next.status.get_or_insert_with(Default::default);
                                st.collision_count = Some(collision.unwrap_or(0).saturating_add(1));
                                Api::<Deployment>::namespaced(self.client.clone(), ns)
                                    .replace_status(name, &PostParams::default(), &next)
                                    .await?;
                            }
                            return Ok(Some(Duration::from_millis(100)));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            } else if let Some(i) = new_idx {
                // Rollout undo or re-apply of an old template: the old ReplicaSet becomes
                // the new one and takes the next revision.
                let rs = &rss[i];
                let rev = revision_of(&rs.metadata);
                if rev <= max_old_rev {
                    let mut history: Vec<String> = rs
                        .annotations()
                        .get(REVISION_HISTORY)
                        .map(|h| h.split(',').map(str::to_string).collect())
                        .unwrap_or_default();
                    if rev > 0 {
                        history.push(rev.to_string());
                    }
                    let patch = serde_json::json!({"metadata": {"annotations": {
                        REVISION: (max_old_rev + 1).to_string(),
                        REVISION_HISTORY: history.join(","),
                    }}});
                    let updated = rs_api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await?;
                    rss[i] = updated;
                }
                let new = rss[i].clone();
                let olds: Vec<&ReplicaSet> = rss
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, r)| r)
                    .collect();
                let scales = if recreate {
                    rollout::recreate_step(&d, Some(&new), &olds).0
                } else {
                    rollout::rolling_step(&d, &new, &olds)
                };
                if !scales.is_empty() {
                    progress = Progress::Updated;
                }
                self.apply_scales(&rs_api, &d, &d_ref, &mut rss, &scales)
                    .await?;
                // History cleanup once the rollout is done.
                let done = scales.is_empty()
                    && rss
                        .iter()
                        .enumerate()
                        .all(|(j, r)| j == i || rollout::rs_replicas(r) == 0);
                if done {
                    let olds: Vec<&ReplicaSet> = rss
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, r)| r)
                        .collect();
                    for victim in rollout::history_to_delete(&d, &olds) {
                        ignore_not_found(
                            rs_api.delete(&victim, &DeleteParams::background()).await,
                        )?;
                    }
                }
            }
        }

        let new = new_idx.and_then(|i| rss.get(i));
        // The Deployment carries the revision of its new ReplicaSet.
        if let Some(new) = new {
            let rev = revision_of(&new.metadata);
            if rev > 0 && revision_of(&d.metadata) != rev {
                let patch =
                    serde_json::json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
                let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                ignore_not_found(
                    d_api
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
            }
        }
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let status = status::calculate_status(&d, new, &all, progress, jiff::Timestamp::now());
        if !status::status_equal(d.status.as_ref(), &status) {
            let d_api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
            // Re-read: the annotation patch above changed the resourceVersion.
            match d_api.get_status(name).await {
                Ok(mut cur) => {
                    cur.status = Some(status);
                    match d_api
                        .replace_status(name, &PostParams::default(), &cur)
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(util::api_code(&e), Some(404) | Some(409)) => {
                            return Ok(Some(Duration::from_millis(50)));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if util::api_code(&e) == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    async fn apply_scales(
        &self,
        api: &Api<ReplicaSet>,
        d: &Deployment,
        d_ref: &k8s_openapi::api::core::v1::ObjectReference,
        rss: &mut [ReplicaSet],
        scales: &[Scale],
    ) -> Result<(), ControllerError> {
        let (surge, _) = rollout::fenceposts(d);
        let want = rollout::desired(d);
        for s in scales {
            let patch = serde_json::json!({
                "metadata": {"annotations": {
                    DESIRED_REPLICAS: want.to_string(),
                    MAX_REPLICAS: want.saturating_add(surge).to_string(),
                }},
                "spec": {"replicas": s.to},
            });
            let updated = api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let dir = if s.to > s.from { "up" } else { "down" };
            self.recorder.normal(
                d_ref,
                "ScalingReplicaSet",
                format!(
                    "Scaled {dir} replica set {} from {} to {}",
                    s.name, s.from, s.to
                ),
            );
            if let Some(slot) = rss.iter_mut().find(|r| r.name_any() == s.name) {
                *slot = updated;
            }
        }
        Ok(())
    }
}
