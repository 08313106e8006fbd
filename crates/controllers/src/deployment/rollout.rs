//! Pure rollout decisions (Kubernetes' rolling.go / recreate.go / sync.go): how far to scale
//! the new ReplicaSet up and the old ones down in one step, honouring maxSurge and
//! maxUnavailable, and which old ReplicaSets the history limit removes.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::template::revision_of;

/// One scaling write: ReplicaSet `name` from `from` to `to` replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// ReplicaSet name.
    pub name: String,
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
}

/// Desired replicas of the Deployment.
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Spec replicas of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Resolves an int-or-percent against `total` (percentages round up or down).
fn scaled(v: Option<&IntOrString>, default_pct: i32, total: i32, round_up: bool) -> i32 {
    let pct = |p: i32| {
        let x = i64::from(total) * i64::from(p);
        let r = if round_up { (x + 99) / 100 } else { x / 100 };
        i32::try_from(r).unwrap_or(i32::MAX)
    };
    match v {
        None => pct(default_pct),
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i32>().ok())
            .map(pct)
            .unwrap_or(0),
    }
}

/// (maxSurge, maxUnavailable) as numbers; both zero would deadlock, so unavailable becomes 1.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let replicas = desired(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), 25, replicas, true).max(0);
    let mut unavailable = scaled(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        25,
        replicas,
        false,
    )
    .max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// Replicas the new ReplicaSet should have now (Kubernetes' NewRSNewReplicas).
pub fn new_rs_replicas(d: &Deployment, new_current: i32, all: &[&ReplicaSet]) -> i32 {
    let replicas = desired(d);
    if is_recreate(d) {
        return replicas;
    }
    let (surge, _) = fenceposts(d);
    let current: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let max_total = replicas.saturating_add(surge);
    if current >= max_total {
        return new_current;
    }
    let up = (max_total - current).min(replicas - new_current).max(0);
    new_current + up
}

/// One rolling-update step. `new` is the ReplicaSet running the current template (already
/// created), `old` the others. Returns the scaling writes, new ReplicaSet first.
pub fn rolling_step(d: &Deployment, new: &ReplicaSet, old: &[&ReplicaSet]) -> Vec<Scale> {
    let replicas = desired(d);
    let new_name = new.metadata.name.clone().unwrap_or_default();
    let new_cur = rs_replicas(new);
    let mut all: Vec<&ReplicaSet> = old.to_vec();
    all.push(new);
    // Scale the new ReplicaSet first; old ones wait for the next step (as Kubernetes does).
    let target = if new_cur > replicas {
        replicas
    } else {
        new_rs_replicas(d, new_cur, &all)
    };
    if target != new_cur {
        return vec![Scale {
            name: new_name,
            from: new_cur,
            to: target,
        }];
    }

    let old_count: i32 = old.iter().map(|rs| rs_replicas(rs)).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let (_, max_unavailable) = fenceposts(d);
    let all_count: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let min_available = replicas - max_unavailable;
    let new_unavailable = new_cur - rs_available(new);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut olds: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| rs_replicas(rs) > 0)
        .collect();
    olds.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
            rs.metadata.name.clone(),
        )
    });
    let mut out: Vec<Scale> = Vec::new();
    let current = |name: &str, rs: &ReplicaSet, out: &[Scale]| {
        out.iter()
            .rev()
            .find(|s| s.name == name)
            .map(|s| s.to)
            .unwrap_or_else(|| rs_replicas(rs))
    };
    // First remove unhealthy old replicas (they do not count as available anyway).
    let mut budget = max_scaled_down;
    let mut cleaned = 0;
    for rs in &olds {
        if budget <= 0 {
            break;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let cur = current(&name, rs, &out);
        let unhealthy = (cur - rs_available(rs)).max(0);
        let n = budget.min(unhealthy);
        if n > 0 {
            out.push(Scale {
                name,
                from: cur,
                to: cur - n,
            });
            budget -= n;
            cleaned += n;
        }
    }
    // Then scale down healthy old replicas while availability stays above the minimum.
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let mut total_down = available - min_available;
    let _ = cleaned;
    for rs in &olds {
        if total_down <= 0 {
            break;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let cur = current(&name, rs, &out);
        let n = total_down.min(cur);
        if n > 0 {
            if let Some(s) = out.iter_mut().find(|s| s.name == name) {
                s.to = cur - n;
            } else {
                out.push(Scale {
                    name,
                    from: cur,
                    to: cur - n,
                });
            }
            total_down -= n;
        }
    }
    out
}

/// One Recreate step: scale every old ReplicaSet to 0, wait until their pods are gone, then
/// scale the new one to the desired count. `new` is `None` when it is not created yet; the
/// bool says whether it may be created/scaled now.
pub fn recreate_step(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    old: &[&ReplicaSet],
) -> (Vec<Scale>, bool) {
    let downs: Vec<Scale> = old
        .iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .map(|rs| Scale {
            name: rs.metadata.name.clone().unwrap_or_default(),
            from: rs_replicas(rs),
            to: 0,
        })
        .collect();
    if !downs.is_empty() {
        return (downs, false);
    }
    let old_running = old
        .iter()
        .any(|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0) > 0);
    if old_running {
        return (Vec::new(), false);
    }
    match new {
        Some(rs) if rs_replicas(rs) != desired(d) => (
            vec![Scale {
                name: rs.metadata.name.clone().unwrap_or_default(),
                from: rs_replicas(rs),
                to: desired(d),
            }],
            true,
        ),
        _ => (Vec::new(), true),
    }
}

/// Old ReplicaSets beyond `revisionHistoryLimit` (default 10) that can be deleted: fully
/// scaled down, oldest revision first.
pub fn history_to_delete(d: &Deployment, old: &[&ReplicaSet]) -> Vec<String> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0);
    let mut dead: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| {
            rs_replicas(rs) == 0
                && rs.status.as_ref().map(|s| s.replicas).unwrap_or(0) == 0
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = dead
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    dead.sort_by_key(|rs| {
        (
            revision_of(&rs.metadata),
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
        )
    });
    dead.into_iter()
        .take(excess)
        .filter_map(|rs| rs.metadata.name.clone())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn deploy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("nginx".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn rs(name: &str, replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: available,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn percentages_resolve_like_kubernetes() {
        let d = deploy(
            10,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        );
        assert_eq!(fenceposts(&d), (3, 2));
        let d = deploy(2, IntOrString::Int(0), IntOrString::Int(0));
        assert_eq!(fenceposts(&d), (0, 1));
    }

    /// Simulates a rollout where each step's pods become available at once, checking the
    /// ready count never drops below the desired count with maxUnavailable 0.
    #[test]
    fn max_unavailable_zero_never_drops_below_desired() {
        let d = deploy(3, IntOrString::Int(1), IntOrString::Int(0));
        let mut new = rs("new", 0, 0);
        let mut old = rs("old", 3, 3);
        for _ in 0..20 {
            let steps = rolling_step(&d, &new, &[&old]);
            if steps.is_empty() {
                break;
            }
            for s in steps {
                let target = if s.name == "new" { &mut new } else { &mut old };
                target.spec.as_mut().unwrap().replicas = Some(s.to);
            }
            // Worst case: scaled-down pods vanish at once, new ones are not ready yet.
            let avail = |r: &ReplicaSet| {
                r.status
                    .as_ref()
                    .unwrap()
                    .available_replicas
                    .unwrap()
                    .min(rs_replicas(r))
            };
            assert!(
                avail(&new) + avail(&old) >= 3,
                "availability dropped below desired"
            );
            // Pods converge: availability follows spec.
            for r in [&mut new, &mut old] {
                let n = rs_replicas(r);
                r.status = Some(ReplicaSetStatus {
                    replicas: n,
                    available_replicas: Some(n),
                    ready_replicas: Some(n),
                    ..Default::default()
                });
            }
            let total = rs_replicas(&new) + rs_replicas(&old);
            assert!((3..=4).contains(&total), "surge bounded by maxSurge");
        }
        assert_eq!((rs_replicas(&new), rs_replicas(&old)), (3, 0));
    }

    #[test]
    fn surge_first_then_scale_down() {
        let d = deploy(
            2,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        );
        // surge 1, unavailable 0 -> 1
        let new = rs("new", 0, 0);
        let old = rs("old", 2, 2);
        assert_eq!(
            rolling_step(&d, &new, &[&old]),
            vec![Scale {
                name: "new".into(),
                from: 0,
                to: 1
            }]
        );
        let new = rs("new", 1, 0);
        // New pod not yet available: old scales down by at most maxUnavailable-derived room.
        assert_eq!(rolling_step(&d, &new, &[&old]), vec![]);
        let new = rs("new", 1, 1);
        assert_eq!(
            rolling_step(&d, &new, &[&old]),
            vec![Scale {
                name: "old".into(),
                from: 2,
                to: 1
            }]
        );
    }

    #[test]
    fn history_limit_deletes_oldest_revisions() {
        let mut d = deploy(1, IntOrString::Int(1), IntOrString::Int(0));
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let mut a = rs("a", 0, 0);
        a.status.as_mut().unwrap().replicas = 0;
        a.metadata.annotations = Some(
            [(
                super::super::template::REVISION.to_string(),
                "1".to_string(),
            )]
            .into(),
        );
        let mut b = a.clone();
        b.metadata.name = Some("b".into());
        b.metadata.annotations = Some(
            [(
                super::super::template::REVISION.to_string(),
                "2".to_string(),
            )]
            .into(),
        );
        assert_eq!(history_to_delete(&d, &[&b, &a]), ["a"]);
    }
}
