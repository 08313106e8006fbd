//! Pure scheduling decision: filter nodes (readiness, unschedulable, nodeSelector, required
//! node affinity, taints, pod capacity) and score the rest (fewest pods of the same owner,
//! then fewest pods), with kube-scheduler's "0/N nodes are available" message on failure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};

/// A node with the counts the scorer needs.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The node.
    pub node: &'a Node,
    /// Non-terminal pods assigned to it.
    pub pods: usize,
    /// Of those, pods with the same controller as the pod being scheduled.
    pub owner_pods: usize,
}

/// Whether a node's Ready condition is True.
pub fn node_ready(node: &Node) -> bool {
    node_condition_status(node, "Ready") == Some("True")
}

fn node_condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.as_str())
}

fn tolerates(tols: &[Toleration], taint: &Taint) -> bool {
    tols.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let key_ok = t
            .key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == taint.key);
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => {
                t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
            }
        };
        // An empty key with Exists tolerates everything.
        effect_ok && key_ok && value_ok
    })
}

fn requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let v = labels.get(&req.key);
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => v.is_some_and(|v| values.contains(v)),
        "NotIn" => v.is_none_or(|v| !values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                v.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

fn selector_matches(pod: &Pod, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let ns_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|na| na.required_during_scheduling_ignored_during_execution);
    let affinity_ok = match required {
        None => true,
        // Terms are ORed; expressions within a term are ANDed.
        Some(sel) => sel.node_selector_terms.iter().any(|term| {
            term.match_expressions
                .iter()
                .flatten()
                .all(|r| requirement_matches(r, &labels))
                && term.match_fields.iter().flatten().all(|r| {
                    let fields = BTreeMap::from([(
                        "metadata.name".to_string(),
                        node.metadata.name.clone().unwrap_or_default(),
                    )]);
                    requirement_matches(r, &fields)
                })
        }),
    };
    ns_ok && affinity_ok
}

/// Why a node does not fit, in kube-scheduler's words, or `None` when it fits.
pub fn unfit_reason(pod: &Pod, c: &Candidate<'_>) -> Option<String> {
    let node = c.node;
    let tols: Vec<Toleration> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    // The node lifecycle controller taints nodes; derive the same taints from conditions so
    // the result does not depend on which of the two writes is observed first.
    let implied = match node_condition_status(node, "Ready") {
        Some("True") => None,
        Some("Unknown") => Some("node.kubernetes.io/unreachable"),
        _ => Some("node.kubernetes.io/not-ready"),
    };
    if let Some(key) = implied {
        if !taints.iter().any(|t| t.key == key) {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        && !tolerates(
            &tols,
            &Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            },
        )
    {
        return Some("node(s) were unschedulable".into());
    }
    if !selector_matches(pod, node) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    for t in &taints {
        if (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && t.key != "node.kubernetes.io/unschedulable"
            && !tolerates(&tols, t)
        {
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            ));
        }
    }
    let max_pods = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("pods"))
        .and_then(|q| q.0.parse::<usize>().ok());
    if max_pods.is_some_and(|m| c.pods >= m) {
        return Some("Too many pods".into());
    }
    None
}

/// Picks a node for `pod`, or explains why none fits.
pub fn choose_node(pod: &Pod, candidates: &[Candidate<'_>]) -> Result<String, String> {
    if candidates.is_empty() {
        return Err("no nodes available to schedule pods".into());
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(&Candidate<'_>, (usize, usize, String))> = None;
    for c in candidates {
        match unfit_reason(pod, c) {
            Some(r) => *reasons.entry(r).or_default() += 1,
            None => {
                let name = c.node.metadata.name.clone().unwrap_or_default();
                let score = (c.owner_pods, c.pods, name);
                if best.as_ref().is_none_or(|(_, s)| score < *s) {
                    best = Some((c, score));
                }
            }
        }
    }
    if let Some((_, (_, _, name))) = best {
        return Ok(name);
    }
    let n = candidates.len();
    let detail = reasons
        .iter()
        .map(|(r, k)| format!("{k} {r}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!(
        "0/{n} nodes are available: {detail}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodSpec};
    use kube::api::ObjectMeta;

    fn node(name: &str, ready: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn pod(selector: &[(&str, &str)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_selector: Some(
                    selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn cand(n: &Node, pods: usize, owner_pods: usize) -> Candidate<'_> {
        Candidate {
            node: n,
            pods,
            owner_pods,
        }
    }

    #[test]
    fn spreads_replicas_of_one_owner() {
        let (a, b) = (node("a", "True", &[]), node("b", "True", &[]));
        // b has more pods overall but fewer of this owner: spreading wins.
        assert_eq!(
            choose_node(&pod(&[]), &[cand(&a, 1, 1), cand(&b, 5, 0)]),
            Ok("b".into())
        );
        assert_eq!(
            choose_node(&pod(&[]), &[cand(&a, 1, 0), cand(&b, 5, 0)]),
            Ok("a".into())
        );
    }

    #[test]
    fn honours_node_selector_and_readiness() {
        let a = node("a", "True", &[("disk", "ssd")]);
        let b = node("b", "True", &[]);
        let c = node("c", "False", &[("disk", "ssd")]);
        let p = pod(&[("disk", "ssd")]);
        assert_eq!(
            choose_node(&p, &[cand(&a, 0, 0), cand(&b, 0, 0), cand(&c, 0, 0)]),
            Ok("a".into())
        );
        let err = choose_node(&p, &[cand(&b, 0, 0), cand(&c, 0, 0), cand(&b, 0, 0)]).unwrap_err();
        assert_eq!(
            err,
            "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            choose_node(&p, &[]).unwrap_err(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn tolerations_allow_tainted_nodes() {
        let mut n = node("a", "True", &[]);
        n.spec.as_mut().unwrap().taints = Some(vec![Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]);
        let mut p = pod(&[]);
        assert!(choose_node(&p, &[cand(&n, 0, 0)])
            .unwrap_err()
            .contains("untolerated taint {dedicated: db}"));
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("db".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert_eq!(choose_node(&p, &[cand(&n, 0, 0)]), Ok("a".into()));
    }
}
