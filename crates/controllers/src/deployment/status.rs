//! Pure Deployment status: counters from its ReplicaSets and the Available / Progressing
//! conditions with Kubernetes' reasons and messages (what `kubectl rollout status` reads).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rollout::{desired, fenceposts, rs_replicas};

/// What happened to the new ReplicaSet in this sync (drives the Progressing reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The new ReplicaSet was created now.
    Created,
    /// Some ReplicaSet was scaled now.
    Updated,
    /// Nothing changed.
    Idle,
}

fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) {
    let existing = conds.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c)
            if c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str()) => {}
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
            c.last_update_time = Some(Time(now));
        }
        None => conds.push(DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        }),
    }
}

/// The status a Deployment should report given its ReplicaSets (after this sync's writes).
pub fn calculate_status(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    progress: Progress,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let prev = d.status.clone().unwrap_or_default();
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let replicas: i32 = all.iter().map(|rs| st(rs).replicas).sum();
    let updated = new.map(|rs| st(rs).replicas).unwrap_or(0);
    let ready: i32 = all
        .iter()
        .map(|rs| st(rs).ready_replicas.unwrap_or(0))
        .sum();
    let available: i32 = all
        .iter()
        .map(|rs| st(rs).available_replicas.unwrap_or(0))
        .sum();
    let total_spec: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let want = desired(d);
    let mut conds = prev.conditions.clone().unwrap_or_default();
    let (_, max_unavailable) = fenceposts(d);
    if available >= want - max_unavailable {
        set_condition(
            &mut conds,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        );
    } else {
        set_condition(
            &mut conds,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        );
    }
    if let Some(new) = new {
        let name = new.metadata.name.clone().unwrap_or_default();
        let complete =
            updated == want && replicas == want && available == want && rs_replicas(new) == want;
        if complete {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{name}\" has successfully progressed."),
                now,
            );
        } else if progress == Progress::Created {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                now,
            );
        } else if progress == Progress::Updated || !conds.iter().any(|c| c.type_ == "Progressing") {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
                now,
            );
        }
    }
    // Kubernetes lists Available before Progressing.
    conds.sort_by_key(|c| match c.type_.as_str() {
        "Available" => 0,
        "Progressing" => 1,
        _ => 2,
    });
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: prev.collision_count,
        conditions: Some(conds),
        terminating_replicas: prev.terminating_replicas,
    }
}

/// Status equality ignoring condition timestamps and zero-vs-absent counters.
pub fn status_equal(a: Option<&DeploymentStatus>, b: &DeploymentStatus) -> bool {
    let Some(a) = a else {
        return false;
    };
    let z = |v: Option<i32>| v.unwrap_or(0);
    let conds = |s: &DeploymentStatus| {
        s.conditions
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    a.observed_generation == b.observed_generation
        && z(a.replicas) == z(b.replicas)
        && z(a.updated_replicas) == z(b.updated_replicas)
        && z(a.ready_replicas) == z(b.ready_replicas)
        && z(a.available_replicas) == z(b.available_replicas)
        && z(a.unavailable_replicas) == z(b.unavailable_replicas)
        && a.collision_count == b.collision_count
        && conds(a) == conds(b)
}

#[cfg(test)]
mod tests {
    use super::super::rollout::tests::{deploy, rs};
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn complete_rollout_reports_two_of_two_and_successfully_progressed() {
        let mut d = deploy(
            2,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        );
        d.metadata.generation = Some(1);
        let new = rs("nginx-abc", 2, 2);
        let s = calculate_status(
            &d,
            Some(&new),
            &[&new],
            Progress::Idle,
            jiff::Timestamp::now(),
        );
        assert_eq!(
            (
                s.replicas,
                s.ready_replicas,
                s.updated_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(2), Some(2), Some(2), Some(2), Some(0))
        );
        assert_eq!(s.observed_generation, Some(1));
        let conds = s.conditions.unwrap();
        assert_eq!(conds[0].type_, "Available");
        assert_eq!(conds[0].reason.as_deref(), Some("MinimumReplicasAvailable"));
        assert_eq!(conds[1].reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(
            conds[1].message.as_deref(),
            Some("ReplicaSet \"nginx-abc\" has successfully progressed.")
        );
    }

    #[test]
    fn fresh_rollout_is_unavailable_and_created() {
        let d = deploy(2, IntOrString::Int(0), IntOrString::Int(0));
        let new = rs("nginx-abc", 2, 0);
        let s = calculate_status(
            &d,
            Some(&new),
            &[&new],
            Progress::Created,
            jiff::Timestamp::now(),
        );
        let conds = s.conditions.unwrap();
        assert_eq!(conds[0].status, "False");
        assert_eq!(conds[1].reason.as_deref(), Some("NewReplicaSetCreated"));
        assert_eq!(s.unavailable_replicas, Some(2));
    }
}
