//! Pure helpers over stored objects: store keys, (de)serialisation with the
//! resourceVersion taken from the store, and the metadata Kubernetes manages.

use portico_api::resource::ResourceInfo;
use portico_api::status::ApiError;
use portico_store::KeyValue;
use serde_json::{json, Map, Value};

/// The `{group-or-core}` key segment.
fn group_segment(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        "core".to_string()
    } else {
        info.group.to_string()
    }
}

/// `/{group-or-core}/{plural}/{ns}/{name}` or `/{group-or-core}/{plural}/{name}`.
pub(crate) fn key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => format!("/{}/{}/{}/{}", group_segment(info), info.plural, ns, name),
        None => format!("/{}/{}/{}", group_segment(info), info.plural, name),
    }
}

/// Prefix of a collection: one namespace, or all of the kind.
pub(crate) fn prefix(info: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => format!("/{}/{}/{}/", group_segment(info), info.plural, ns),
        None => format!("/{}/{}/", group_segment(info), info.plural),
    }
}

/// Parses a stored value and stamps `metadata.resourceVersion` from its mod revision.
pub(crate) fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    decode_at(&kv.value, kv.mod_revision)
}

/// Parses stored bytes and stamps `metadata.resourceVersion` = `rev`.
pub(crate) fn decode_at(bytes: &[u8], rev: u64) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    set_rv(&mut v, rev);
    Ok(v)
}

/// Sets `metadata.resourceVersion`.
pub(crate) fn set_rv(obj: &mut Value, rev: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rev.to_string()));
    }
}

/// Bytes to store: the object without `resourceVersion` (the store's mod revision is the truth).
pub(crate) fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let enc = |v: &Value| serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()));
    // Creates carry no resourceVersion yet: serialise as is, without a deep copy.
    if obj["metadata"].get("resourceVersion").is_none() {
        return enc(obj);
    }
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    enc(&v)
}

/// `metadata` as a mutable map, created if missing or not an object.
pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just set to an object"),
    }
}

/// A string field of metadata.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj["metadata"][field].as_str().filter(|s| !s.is_empty())
}

/// `metadata.finalizers` as strings.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Kinds with a `spec` whose kube-apiserver strategy leaves `metadata.generation`
/// unset (`kubectl get svc -o yaml` shows none).
const NO_GENERATION: &[(&str, &str)] = &[
    ("", "Service"),
    ("", "Node"),
    ("", "Namespace"),
    ("coordination.k8s.io", "Lease"),
];

/// Whether a kind tracks `metadata.generation` (kinds with a spec, but for the
/// few whose strategy does not).
pub(crate) fn has_generation(info: &ResourceInfo, obj: &Value) -> bool {
    obj.get("spec").is_some() && !NO_GENERATION.contains(&(info.group, info.kind))
}

/// Kinds whose `status` is only written through the `status` subresource.
pub(crate) fn has_status_subresource(info: &ResourceInfo) -> bool {
    info.subresources.contains(&"status")
}

/// Metadata fields clients cannot set or change on update: copied from the old object.
const SYSTEM_FIELDS: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
];

/// Kinds whose create strategy resets `status` (kube-apiserver `PrepareForCreate`);
/// defaulting then fills the initial status (e.g. a Pod's `Pending`).
const STATUS_RESET_ON_CREATE: &[(&str, &str)] = &[
    ("", "Service"),
    ("", "Pod"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("networking.k8s.io", "Ingress"),
];

/// Prepares a new object for create: system metadata, generation, and no
/// client-set status for kinds whose status only the system writes.
pub(crate) fn prepare_create(info: &ResourceInfo, obj: &mut Value, uid: &str, now: &str) {
    if STATUS_RESET_ON_CREATE.contains(&(info.group, info.kind)) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    let gen = has_generation(info, obj);
    let meta = meta_mut(obj);
    for f in SYSTEM_FIELDS {
        meta.remove(*f);
    }
    meta.remove("resourceVersion");
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(now));
    if gen {
        meta.insert("generation".into(), json!(1));
    }
    if !info.namespaced {
        meta.remove("namespace");
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
}

/// Prepares an update of `old` to `new` (main resource, not status): keeps system
/// metadata and, for kinds with a status subresource, the old status; bumps
/// generation when the spec changed.
pub(crate) fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value) {
    for f in SYSTEM_FIELDS {
        let oldv = old["metadata"].get(*f).cloned();
        let meta = meta_mut(new);
        match oldv {
            Some(v) => {
                meta.insert((*f).to_string(), v);
            }
            None => {
                meta.remove(*f);
            }
        }
    }
    if has_status_subresource(info) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if has_generation(info, new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        let next = if old.get("spec") != new.get("spec") {
            g + 1
        } else {
            g.max(1)
        };
        meta_mut(new).insert("generation".into(), json!(next));
    }
    new["apiVersion"] = json!(info.api_version());
    new["kind"] = json!(info.kind);
}

/// Builds the object for a status-subresource write: the old object with only
/// `status` taken from the request.
pub(crate) fn status_update(old: &Value, requested: &Value) -> Value {
    let mut out = old.clone();
    match requested.get("status") {
        Some(s) => out["status"] = s.clone(),
        None => {
            if let Some(m) = out.as_object_mut() {
                m.remove("status");
            }
        }
    }
    // Clients may change labels/annotations? No: kube-apiserver status strategies
    // reset metadata except for managedFields, so only status moves.
    if let Some(mf) = requested["metadata"].get("managedFields") {
        meta_mut(&mut out).insert("managedFields".into(), mf.clone());
    }
    out
}

/// The 5 random characters kube-apiserver appends for `generateName`.
pub(crate) fn name_suffix(rng: &mut impl rand::Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `{Kind}List` wrapper as kube-apiserver returns it.
pub(crate) fn list(
    info: &ResourceInfo,
    items: Vec<Value>,
    rev: u64,
    cont: Option<String>,
    remaining: Option<u64>,
) -> Value {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(rev.to_string()));
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(r) = remaining {
        meta.insert("remainingItemCount".into(), json!(r));
    }
    json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": meta, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_api::resource::find;

    #[test]
    fn keys_and_prefixes() {
        let svc = find("", "v1", "services").unwrap();
        assert_eq!(
            key(svc, Some("default"), "web"),
            "/core/services/default/web"
        );
        assert_eq!(prefix(svc, None), "/core/services/");
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(key(ns, Some("ignored"), "a"), "/core/namespaces/a");
        let d = find("apps", "v1", "deployments").unwrap();
        assert_eq!(prefix(d, Some("x")), "/apps/deployments/x/");
    }

    #[test]
    fn create_and_update_manage_metadata() {
        let d = find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "a", "uid": "client", "resourceVersion": "9"}, "spec": {"replicas": 1}, "status": {"x": 1}});
        prepare_create(d, &mut obj, "u1", "2024-01-01T00:00:00Z");
        assert_eq!(obj["metadata"]["uid"], "u1");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(obj["kind"], "Deployment");
        assert!(
            obj.get("status").is_none(),
            "client status is dropped on create"
        );
        assert!(obj["metadata"].get("resourceVersion").is_none());
        obj["status"] = json!({"x": 1});
        let mut new = obj.clone();
        new["metadata"]["labels"] = json!({"a": "b"});
        new["status"] = json!({"x": 2});
        prepare_update(d, &obj, &mut new);
        assert_eq!(
            new["metadata"]["generation"], 1,
            "label change does not bump generation"
        );
        assert_eq!(
            new["status"]["x"], 1,
            "status only changes through the subresource"
        );
        let mut new2 = new.clone();
        new2["spec"]["replicas"] = json!(3);
        prepare_update(d, &new, &mut new2);
        assert_eq!(new2["metadata"]["generation"], 2);
        let st = status_update(&new2, &json!({"status": {"x": 5}, "spec": {"replicas": 9}}));
        assert_eq!(
            (st["status"]["x"].clone(), st["spec"]["replicas"].clone()),
            (json!(5), json!(3))
        );
    }

    #[test]
    fn services_have_no_generation() {
        let svc = find("", "v1", "services").unwrap();
        let mut obj = json!({"metadata": {"name": "a", "generation": 7}, "spec": {"ports": []}});
        prepare_create(svc, &mut obj, "u1", "2024-01-01T00:00:00Z");
        assert!(obj["metadata"].get("generation").is_none());
        let mut new = obj.clone();
        new["spec"]["type"] = json!("NodePort");
        prepare_update(svc, &obj, &mut new);
        assert!(new["metadata"].get("generation").is_none());
    }

    #[test]
    fn encode_strips_resource_version_and_decode_restores_it() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "3"}});
        let bytes = encode(&obj).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let back = decode_at(&bytes, 42).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "42");
    }
}
