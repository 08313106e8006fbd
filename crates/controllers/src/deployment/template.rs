//! Pod-template hashing and ReplicaSet construction for Deployments.
//!
//! Kubernetes hashes the Go struct dump of the template (`DeepHashObject`, FNV-32a) and
//! encodes the decimal hash with `SafeEncodeString`. A Go struct dump cannot be reproduced
//! from Rust, so Portico hashes the template's JSON (stable: k8s-openapi serialises fields in
//! a fixed order and maps sorted) with the same FNV-32a + collisionCount + encoding. Names
//! therefore look like Kubernetes' (`nginx-7c5ddbdf54`) but differ in value.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::util;

/// Label carrying the template hash on ReplicaSets and pods.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Desired-replicas annotation on ReplicaSets.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Max-replicas (replicas + surge) annotation on ReplicaSets.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Revision history annotation (revisions this ReplicaSet had before).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// FNV-32a.
fn fnv32a(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `pod-template-hash` of a template with the Deployment's collisionCount.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&json, 0x811c_9dc5);
    if let Some(c) = collision_count {
        // Kubernetes writes the count as 4 little-endian bytes.
        h = fnv32a(&u32::from_ne_bytes(c.to_ne_bytes()).to_le_bytes(), h);
    }
    util::safe_encode(&h.to_string())
}

/// Drops nulls and empty objects/arrays recursively: `resources: {}` (what kubectl's
/// `rollout undo` writes back) and an absent field mean the same, as Go's zero values do in
/// Kubernetes' semantic equality.
fn prune_empty(v: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune_empty(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a
                .into_iter()
                .map(|v| prune_empty(v).unwrap_or(Value::Object(Default::default())))
                .collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        other => Some(other),
    }
}

/// A template without the hash label, for comparisons.
fn strip_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            if let Some(m) = t.metadata.as_mut() {
                m.labels = None;
            }
        }
    }
    prune_empty(serde_json::to_value(t).unwrap_or_default()).unwrap_or_default()
}

/// Whether a ReplicaSet runs the Deployment's current template (Kubernetes' EqualIgnoreHash).
pub fn template_matches(rs: &ReplicaSet, d: &Deployment) -> bool {
    let (Some(rs_t), Some(d_spec)) = (
        rs.spec.as_ref().and_then(|s| s.template.as_ref()),
        d.spec.as_ref(),
    ) else {
        return false;
    };
    strip_hash(rs_t) == strip_hash(&d_spec.template)
}

/// Revision of a ReplicaSet or Deployment from its annotation (0 when absent).
pub fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Annotations copied from a Deployment onto its ReplicaSets (all but kubectl's and ours).
pub fn copyable_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
                && k.as_str() != REVISION
                && k.as_str() != REVISION_HISTORY
                && k.as_str() != DESIRED_REPLICAS
                && k.as_str() != MAX_REPLICAS
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The new ReplicaSet of a Deployment: `<deploy>-<hash>`, hash label on selector, template
/// and labels, controller owner reference, revision annotations.
pub fn new_replicaset(
    d: &Deployment,
    hash: &str,
    replicas: i32,
    revision: i64,
    max_surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(Default::default);
    tmeta
        .labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let labels = tmeta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    let mut annotations = copyable_annotations(d);
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(
        DESIRED_REPLICAS.into(),
        spec.replicas.unwrap_or(1).to_string(),
    );
    annotations.insert(
        MAX_REPLICAS.into(),
        (spec.replicas.unwrap_or(1).saturating_add(max_surge)).to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                d.metadata.name.clone().unwrap_or_default()
            )),
            namespace: d.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![util::controller_owner_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    pub fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "nginx".to_string())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "nginx".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn empty_fields_do_not_make_templates_differ() {
        let mut a = template("nginx:1.25");
        a.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
        let b = template("nginx:1.25");
        assert_eq!(strip_hash(&a), strip_hash(&b));
        assert_ne!(strip_hash(&a), strip_hash(&template("nginx:1.26")));
    }

    #[test]
    fn hash_is_stable_and_depends_on_template_and_collisions() {
        let a = pod_template_hash(&template("nginx:1.25"), None);
        assert_eq!(a, pod_template_hash(&template("nginx:1.25"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.26"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.25"), Some(1)));
        assert!(a.len() >= 8 && a.bytes().all(|b| util::SAFE_ALPHANUMS.contains(&b)));
    }
}
