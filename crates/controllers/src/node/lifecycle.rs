//! Pure node-lifecycle decisions: when a node's heartbeat is too old, and the conditions
//! Kubernetes' node lifecycle controller writes then.

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Reason set on conditions of a node that stopped heartbeating.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
/// Message set on those conditions.
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";

/// Whether a node whose latest heartbeat (Lease renewal, Ready heartbeat, or the time the
/// controller first saw it, whichever is newest) is older than `timeout` must turn Unknown.
pub fn is_stale(
    last_heartbeat: jiff::Timestamp,
    now: jiff::Timestamp,
    timeout: std::time::Duration,
) -> bool {
    let timeout = jiff::SignedDuration::try_from(timeout).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(last_heartbeat) > timeout
}

/// The node's Ready condition status, if reported.
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str())
}

/// Latest heartbeat the node itself reported in its Ready condition.
pub fn ready_heartbeat(node: &Node) -> Option<jiff::Timestamp> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0)
}

/// The conditions of a node that stopped heartbeating: every condition (and Ready, even if
/// absent) turns Unknown with `NodeStatusUnknown`, keeping the last heartbeat time.
pub fn unknown_conditions(node: &Node, now: jiff::Timestamp) -> Vec<NodeCondition> {
    let mut conds: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        if !conds.iter().any(|c| c.type_ == t) {
            conds.push(NodeCondition {
                type_: t.into(),
                status: "Unknown".into(),
                ..Default::default()
            });
        }
    }
    for c in &mut conds {
        if c.status != "Unknown" || c.reason.as_deref() != Some(REASON_UNKNOWN) {
            c.status = "Unknown".into();
            c.reason = Some(REASON_UNKNOWN.into());
            c.message = Some(MESSAGE_UNKNOWN.into());
            c.last_transition_time = Some(Time(now));
        }
    }
    conds
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeStatus;
    use std::time::Duration;

    #[test]
    fn stale_after_timeout_and_conditions_turn_unknown() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let t = |s| jiff::Timestamp::from_second(s).unwrap();
        assert!(!is_stale(t(970), now, Duration::from_secs(40)));
        assert!(is_stale(t(959), now, Duration::from_secs(40)));
        let node = Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: Some("KubeletReady".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let conds = unknown_conditions(&node, now);
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(conds.len(), 4);
    }
}
