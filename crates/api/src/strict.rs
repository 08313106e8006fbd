//! Strict decoding: which fields of a request body Kubernetes' strict JSON
//! decoder would reject as unknown, found by round-tripping the object
//! through the k8s-openapi type for its kind and diffing the keys.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::resource::ResourceInfo;

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The object after decoding into its typed form and encoding again, or the
/// decoder's error (wrong types, bad base64, bad timestamps).
pub fn typed_roundtrip(res: &ResourceInfo, obj: &Value) -> Result<Value, String> {
    use k8s_openapi::api::{apps, coordination, core, discovery, events, networking};
    match (res.group, res.kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(obj),
        ("", "Node") => roundtrip::<core::v1::Node>(obj),
        ("", "Pod") => roundtrip::<core::v1::Pod>(obj),
        ("", "Service") => roundtrip::<core::v1::Service>(obj),
        ("", "Endpoints") => roundtrip::<core::v1::Endpoints>(obj),
        ("", "Secret") => roundtrip::<core::v1::Secret>(obj),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(obj),
        ("", "Event") => roundtrip::<core::v1::Event>(obj),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(obj),
        ("discovery.k8s.io", "EndpointSlice") => roundtrip::<discovery::v1::EndpointSlice>(obj),
        ("networking.k8s.io", "Ingress") => roundtrip::<networking::v1::Ingress>(obj),
        ("networking.k8s.io", "IngressClass") => roundtrip::<networking::v1::IngressClass>(obj),
        ("events.k8s.io", "Event") => roundtrip::<events::v1::Event>(obj),
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::v1::Lease>(obj),
        _ => Ok(obj.clone()),
    }
}

/// Paths of fields Kubernetes' strict decoding would reject (unknown
/// fields), e.g. `["spec.foo", "spec.ports[0].bogus"]`, in document order.
/// An object that does not decode at all yields no paths; see [`decode_error`].
pub fn unknown_fields(res: &ResourceInfo, obj: &Value) -> Vec<String> {
    let Ok(back) = typed_roundtrip(res, obj) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff(obj, &back, "", &mut out);
    out
}

fn diff(input: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(bv) => diff(v, bv, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The message kube-apiserver returns (400 BadRequest) when a create with
/// `fieldValidation=Strict` carries unknown fields:
/// `Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.foo"`.
pub fn strict_error_message(res: &ResourceInfo, fields: &[String]) -> String {
    let list: Vec<String> = fields.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    format!(
        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
        res.kind,
        res.version,
        res.kind,
        list.join(", ")
    )
}

/// The warning text kube-apiserver sends (as a `Warning` header) for each
/// unknown field under `fieldValidation=Warn`: `unknown field "spec.foo"`.
pub fn unknown_field_warning(field: &str) -> String {
    format!("unknown field \"{field}\"")
}

/// `Some(message)` when the object does not decode into its type at all,
/// as kube-apiserver reports it (400): `Service in version "v1" cannot be
/// handled as a Service: <decoder error>`.
pub fn decode_error(res: &ResourceInfo, obj: &Value) -> Option<String> {
    typed_roundtrip(res, obj).err().map(|e| {
        format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            res.kind, res.version, res.kind, e
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::find_kind;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_with_paths() {
        let svc = find_kind("", "Service").unwrap();
        let obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "x", "labels": {}, "annotations": null},
            "spec": {"foo": 1, "ports": [{"port": 80, "bogus": true}, {"port": 81}], "selector": {}, "externalIPs": []},
            "status": {}
        });
        assert_eq!(unknown_fields(svc, &obj), vec!["spec.foo".to_string(), "spec.ports[0].bogus".to_string()]);
        assert_eq!(
            strict_error_message(svc, &unknown_fields(svc, &obj)),
            "Service in version \"v1\" cannot be handled as a Service: strict decoding error: unknown field \"spec.foo\", unknown field \"spec.ports[0].bogus\""
        );
    }

    #[test]
    fn clean_objects_have_no_unknown_fields() {
        let deploy = find_kind("apps", "Deployment").unwrap();
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null,
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}],
                        "resources": {}, "env": []}]}}}
        });
        assert!(unknown_fields(deploy, &obj).is_empty());
        let secret = find_kind("", "Secret").unwrap();
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "aGVsbG8="}, "stringData": {"b": "x"}, "type": "Opaque"});
        assert!(unknown_fields(secret, &s).is_empty());
    }

    #[test]
    fn type_errors_are_decode_errors() {
        let svc = find_kind("", "Service").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"port": "eighty"}]}});
        let msg = decode_error(svc, &obj).unwrap();
        assert!(msg.starts_with("Service in version \"v1\" cannot be handled as a Service: "), "{msg}");
        assert!(unknown_fields(svc, &obj).is_empty());
    }
}
