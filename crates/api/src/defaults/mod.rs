//! Defaulting as kube-apiserver applies it before validation: the versioned
//! `SetDefaults_*` functions plus the registry strategy fields Kubernetes
//! fills on create (Service IP families, Namespace finalizers, Pod status).
//!
//! `apply` is idempotent: it only fills fields that are absent, so the API
//! server may call it on creates and on updates alike.

mod pod;
mod service;

use serde_json::{json, Map, Value};

use crate::resource::ResourceInfo;

pub use pod::{apply_pod_spec, apply_pod_template};
pub use service::prepare_service_update;

/// Kubernetes defaulting for `obj` of kind `res`.
pub fn apply(res: &ResourceInfo, obj: &mut Value) {
    match (res.group, res.kind) {
        ("", "Service") => service::apply(obj),
        ("", "Pod") => pod::apply_pod(obj),
        ("apps", "Deployment") => apply_deployment(obj),
        ("apps", "ReplicaSet") => apply_replica_set(obj),
        ("", "Namespace") => apply_namespace(obj),
        ("", "Secret") => {
            set_default(obj, &["type"], json!("Opaque"));
        }
        ("", "Node") => apply_node(obj),
        ("", "Endpoints") => apply_endpoints(obj),
        ("discovery.k8s.io", "EndpointSlice") => apply_endpoint_slice(obj),
        ("networking.k8s.io", "Ingress") => {
            set_default(obj, &["status", "loadBalancer"], json!({}));
        }
        ("networking.k8s.io", "IngressClass") => {
            if let Some(p) = obj
                .pointer_mut("/spec/parameters")
                .and_then(Value::as_object_mut)
            {
                p.entry("scope").or_insert(json!("Cluster"));
            }
        }
        _ => {}
    }
}

/// Kind-specific update preparation Kubernetes does before validating an
/// update (the registry strategies' `PrepareForUpdate` and the Service REST
/// `patchAllocatedValues`). Call after `apply` and before `validate`.
pub fn prepare_update(res: &ResourceInfo, obj: &mut Value, old: &Value) {
    // Generic `BeforeUpdate`: the uid and timestamps of the stored object win.
    if let (Some(meta), Some(old_meta)) = (
        obj.get_mut("metadata").and_then(Value::as_object_mut),
        old.get("metadata").and_then(Value::as_object),
    ) {
        if meta
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            if let Some(uid) = old_meta.get("uid") {
                meta.insert("uid".into(), uid.clone());
            }
        }
        for key in [
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(key) {
                Some(v) if !v.is_null() => {
                    meta.insert(key.into(), v.clone());
                }
                _ => {}
            }
        }
    }
    match (res.group, res.kind) {
        ("", "Service") => prepare_service_update(obj, old),
        ("", "Namespace") => {
            // Namespace spec (finalizers) and status only change through
            // the finalize and status subresources.
            for key in ["spec", "status"] {
                match old.get(key) {
                    Some(v) => {
                        if let Some(o) = obj.as_object_mut() {
                            o.insert(key.into(), v.clone());
                        }
                    }
                    None => {
                        if let Some(o) = obj.as_object_mut() {
                            o.remove(key);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Sets `path` to `value` when it is absent or null, creating parents.
pub(crate) fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        if !cur.is_object() {
            return;
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        let entry = map
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        cur = entry;
    }
    if let Some(map) = cur.as_object_mut() {
        let e = map.entry(last.to_string()).or_insert(Value::Null);
        if e.is_null() {
            *e = value;
        }
    }
}

/// Whether `path` holds an empty string or nothing.
pub(crate) fn is_empty_str(obj: &Value, path: &[&str]) -> bool {
    let mut cur = obj;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return true,
        }
    }
    cur.is_null() || cur.as_str() == Some("")
}

/// Sets a string field when absent or empty (Go's `if x == ""`).
pub(crate) fn set_str_default(obj: &mut Value, path: &[&str], value: &str) {
    if is_empty_str(obj, path) {
        if let Some((last, parents)) = path.split_last() {
            set_default(obj, parents, json!({}));
            let mut cur = &mut *obj;
            for p in parents {
                match cur.get_mut(*p) {
                    Some(v) => cur = v,
                    None => return,
                }
            }
            if let Some(m) = cur.as_object_mut() {
                m.insert(last.to_string(), json!(value));
            }
        }
    }
}

fn apply_deployment(obj: &mut Value) {
    set_default(obj, &["spec", "replicas"], json!(1));
    set_str_default(obj, &["spec", "strategy", "type"], "RollingUpdate");
    if obj.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
        set_default(
            obj,
            &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
            json!("25%"),
        );
        set_default(
            obj,
            &["spec", "strategy", "rollingUpdate", "maxSurge"],
            json!("25%"),
        );
    }
    set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
    set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
    if let Some(t) = obj.pointer_mut("/spec/template") {
        apply_pod_template(t);
    }
}

fn apply_replica_set(obj: &mut Value) {
    set_default(obj, &["spec", "replicas"], json!(1));
    if let Some(t) = obj.pointer_mut("/spec/template") {
        apply_pod_template(t);
    }
}

fn apply_namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        set_default(
            obj,
            &["metadata", "labels", "kubernetes.io/metadata.name"],
            json!(name),
        );
        // The label always mirrors the name (SetDefaults_Namespace overwrites it).
        if let Some(l) = obj
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    let has_kube = obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == "kubernetes"));
    if obj.pointer("/spec/finalizers").is_none_or(Value::is_null) {
        set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
    } else if !has_kube && obj.pointer("/status/phase").is_none() {
        // Only a create (no phase yet) gets the finalizer appended.
        if let Some(f) = obj
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.push(json!("kubernetes"));
        }
    }
    set_str_default(obj, &["status", "phase"], "Active");
}

fn apply_node(obj: &mut Value) {
    // SetDefaults_NodeStatus: allocatable defaults to capacity.
    let cap = obj.pointer("/status/capacity").cloned();
    if let Some(cap) = cap {
        set_default(obj, &["status", "allocatable"], cap);
    }
}

fn apply_endpoints(obj: &mut Value) {
    if let Some(subsets) = obj.get_mut("subsets").and_then(Value::as_array_mut) {
        for s in subsets {
            if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_str_default(p, &["protocol"], "TCP");
                }
            }
        }
    }
}

fn apply_endpoint_slice(obj: &mut Value) {
    if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, &["name"], json!(""));
            set_default(p, &["protocol"], json!("TCP"));
        }
    }
}

#[cfg(test)]
mod tests;
