//! Pure ReplicaSet decisions: which pods it owns, how many to create, which to delete
//! (Kubernetes' deletion ranking), adoption/release, and the status it should report.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::util;

/// Upper bound of pods created or deleted in one pass (Kubernetes' burstReplicas).
pub const BURST: usize = 500;

/// What a ReplicaSet should do now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RsPlan {
    /// Number of pods to create.
    pub create: usize,
    /// Names of pods to delete, in deletion order.
    pub delete: Vec<String>,
    /// Orphan pods matching the selector to adopt.
    pub adopt: Vec<String>,
    /// Owned pods that no longer match the selector, to release.
    pub release: Vec<String>,
    /// Status to report.
    pub status: ReplicaSetStatus,
    /// When pods become available later (minReadySeconds), re-check after this many seconds.
    pub recheck_after_secs: Option<i64>,
}

fn matches(rs: &ReplicaSet, pod: &Pod) -> bool {
    rs.spec.as_ref().is_some_and(|s| {
        util::label_selector_matches(
            &s.selector,
            pod.metadata.labels.as_ref().unwrap_or(&Default::default()),
        )
    })
}

/// Plans one ReplicaSet given the pods of its namespace that either match its selector or
/// are controlled by it.
pub fn plan_replicaset(rs: &ReplicaSet, pods: &[&Pod], now: jiff::Timestamp) -> RsPlan {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut plan = RsPlan::default();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match util::controller_ref(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches(rs, pod) {
                    owned.push(pod);
                } else if !deleting {
                    plan.release.push(name);
                }
            }
            Some(_) => {}
            None => {
                if matches(rs, pod) && !deleting && util::is_pod_active(pod) {
                    plan.adopt.push(name);
                    owned.push(pod);
                }
            }
        }
    }
    let spec = rs.spec.clone().unwrap_or_default();
    let replicas = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let active: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| util::is_pod_active(p))
        .collect();

    if !deleting {
        if active.len() < replicas {
            plan.create = (replicas - active.len()).min(BURST);
        } else if active.len() > replicas {
            let n = (active.len() - replicas).min(BURST);
            plan.delete = pods_to_delete(&active, n, now);
        }
    }

    // Status reflects the pods observed now, as Kubernetes' calculateStatus does.
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| util::is_pod_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| util::is_pod_available(p, min_ready, now))
        .count();
    if min_ready > 0 {
        plan.recheck_after_secs = active
            .iter()
            .filter(|p| util::is_pod_ready(p) && !util::is_pod_available(p, min_ready, now))
            .filter_map(|p| {
                util::pod_condition(p, "Ready")?
                    .last_transition_time
                    .clone()
            })
            .map(|t| {
                let at = t.0 + jiff::SignedDuration::from_secs(i64::from(min_ready));
                (at - now).get_seconds().max(0) + 1
            })
            .min();
    }
    let mut status = rs.status.clone().unwrap_or_default();
    status.replicas = count(active.len());
    status.fully_labeled_replicas = Some(count(fully_labeled));
    status.ready_replicas = Some(count(ready));
    status.available_replicas = Some(count(available));
    status.observed_generation = rs.metadata.generation;
    plan.status = status;
    plan
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Kubernetes' deletion preference (controller.ActivePodsWithRanks): unscheduled before
/// scheduled, pending before running, not ready before ready, pods doubled up on a node
/// before lone ones, recently ready before long ready, more restarts first, newer first.
pub fn pods_to_delete(active: &[&Pod], n: usize, now: jiff::Timestamp) -> Vec<String> {
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in active {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let mut ranked: Vec<(_, String)> = active
        .iter()
        .map(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let assigned = node.is_some();
            let phase_rank = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
                Some("Pending") | None => 0,
                Some("Running") => 2,
                _ => 1,
            };
            let ready = util::is_pod_ready(p);
            let colocated = node.and_then(|n| per_node.get(&n).copied()).unwrap_or(0);
            let ready_since = util::pod_condition(p, "Ready")
                .filter(|_| ready)
                .and_then(|c| c.last_transition_time.clone())
                .map(|t| t.0)
                .unwrap_or(now);
            let restarts: i32 = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(now);
            // Smaller tuple = deleted first. Reverse() turns "later/more" into "first".
            let key = (
                assigned,
                phase_rank,
                ready,
                std::cmp::Reverse(colocated),
                std::cmp::Reverse(ready_since),
                std::cmp::Reverse(restarts),
                std::cmp::Reverse(created),
            );
            (key, p.metadata.name.clone().unwrap_or_default())
        })
        .collect();
    ranked.sort();
    ranked.into_iter().take(n).map(|(_, name)| name).collect()
}

/// A pod from the ReplicaSet's template: `<rs>-<5 random chars>` (generateName), with the
/// controller owner reference.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let spec = rs.spec.clone().unwrap_or_default();
    let template = spec.template.unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let prefix: String = format!("{rs_name}-").chars().take(58).collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}{}", util::random_suffix())),
            generate_name: Some(prefix),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![util::controller_owner_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use std::collections::BTreeMap;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "nginx".to_string())])
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("nginx-7c5ddbdf54".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels()),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, node: Option<&str>, ready: bool, owned: bool) -> Pod {
        let mut p = pod_from_template(&rs(1));
        p.metadata.name = Some(name.into());
        if !owned {
            p.metadata.owner_references = None;
        }
        p.spec.get_or_insert_with(Default::default).node_name = node.map(str::to_string);
        p.status = Some(PodStatus {
            phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn creates_missing_pods_and_reports_status() {
        let now = jiff::Timestamp::now();
        let a = pod("a", Some("n1"), true, true);
        let plan = plan_replicaset(&rs(3), &[&a], now);
        assert_eq!(plan.create, 2);
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.ready_replicas, Some(1));
        assert_eq!(plan.status.available_replicas, Some(1));
        assert_eq!(plan.status.observed_generation, Some(3));
        let p = pod_from_template(&rs(3));
        let name = p.metadata.name.unwrap();
        assert!(
            name.starts_with("nginx-7c5ddbdf54-") && name.len() == "nginx-7c5ddbdf54-".len() + 5
        );
        let owner = &p.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("ReplicaSet", Some(true), Some(true))
        );
    }

    #[test]
    fn scales_down_unready_and_unscheduled_first() {
        let now = jiff::Timestamp::now();
        let a = pod("a", Some("n1"), true, true);
        let b = pod("b", Some("n2"), false, true);
        let c = pod("c", None, false, true);
        let d = pod("d", Some("n3"), true, true);
        let plan = plan_replicaset(&rs(2), &[&a, &b, &c, &d], now);
        assert_eq!(plan.delete, ["c", "b"]);
        assert_eq!(plan.create, 0);
    }

    #[test]
    fn adopts_orphans_and_releases_non_matching() {
        let now = jiff::Timestamp::now();
        let orphan = pod("o", Some("n1"), true, false);
        let mut stray = pod("s", Some("n1"), true, true);
        stray.metadata.labels = Some(BTreeMap::from([("app".to_string(), "other".to_string())]));
        let plan = plan_replicaset(&rs(1), &[&orphan, &stray], now);
        assert_eq!(plan.adopt, ["o"]);
        assert_eq!(plan.release, ["s"]);
        assert_eq!(plan.create, 0);
    }
}
