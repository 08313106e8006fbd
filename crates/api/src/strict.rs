//! Strict decoding: which fields of a request body Kubernetes' strict JSON
//! decoder would reject as unknown, found by round-tripping the object
//! through the k8s-openapi type for its kind and diffing the keys.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::json_keys;
use crate::resource::ResourceInfo;

/// Upper bound on repairs of missing required fields per object.
const MAX_REPAIRS: usize = 256;

/// A decode failure: the dotted path and serde's message.
struct DecodeFailure {
    path: String,
    message: String,
}

fn decode<T: DeserializeOwned>(obj: &Value) -> Result<T, DecodeFailure> {
    // `&Value` is a deserializer itself: no copy of the object.
    serde_path_to_error::deserialize::<_, T>(obj).map_err(|e| DecodeFailure {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Splits a serde_path_to_error path (`spec.ports[0]`, `.` for the root)
/// into object keys and array indices.
fn segments(path: &str) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    if path == "." || path.is_empty() {
        return out;
    }
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Ok(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(n) = stripped[..end].parse::<usize>() {
                    out.push(Err(n));
                }
                rest = &stripped[end + 1..];
            }
        } else {
            out.push(Ok(rest.to_string()));
        }
    }
    out
}

fn navigate<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in segments(path) {
        cur = match seg {
            Ok(k) => cur.get_mut(k.as_str())?,
            Err(i) => cur.get_mut(i)?,
        };
    }
    Some(cur)
}

/// Decodes into `T`, first filling fields that k8s-openapi requires but Go
/// would decode as zero values (a missing `port`, `selector`, `name`), so
/// that such objects reach validation and get Kubernetes' field errors.
fn decode_lenient<T: DeserializeOwned>(obj: &Value) -> Result<T, DecodeFailure> {
    // Most bodies decode as they are: copy the object only to repair it.
    let first = match decode::<T>(obj) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    if !first.message.starts_with("missing field `") {
        return Err(first);
    }
    let mut work = obj.clone();
    let mut repairs = 0;
    loop {
        let err = match decode::<T>(&work) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        let missing = err
            .message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .map(str::to_string);
        let Some(field) = missing else {
            return Err(err);
        };
        // Try zero values of each JSON shape until the field decodes.
        let mut fixed = false;
        for candidate in [
            Value::from(0),
            Value::from(""),
            Value::Array(Vec::new()),
            Value::Object(Default::default()),
            Value::Bool(false),
        ] {
            repairs += 1;
            if repairs > MAX_REPAIRS {
                return Err(err);
            }
            let Some(parent) = navigate(&mut work, &err.path).and_then(Value::as_object_mut) else {
                return Err(err);
            };
            parent.insert(field.clone(), candidate);
            let child = if err.path == "." {
                field.clone()
            } else {
                format!("{}.{field}", err.path)
            };
            match decode::<T>(&work) {
                Ok(t) => return Ok(t),
                Err(e)
                    if e.path == child
                        || e.path.starts_with(&format!("{child}."))
                        || e.path.starts_with(&format!("{child}[")) =>
                {
                    continue
                }
                Err(_) => {
                    fixed = true;
                    break;
                }
            }
        }
        if !fixed {
            return Err(err);
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, DecodeFailure> {
    let typed: T = decode_lenient(obj)?;
    serde_json::to_value(&typed).map_err(|e| DecodeFailure {
        path: ".".into(),
        message: e.to_string(),
    })
}

/// Decodes into the k8s-openapi type only for its error (nothing is encoded back).
fn check<T: DeserializeOwned>(obj: &Value) -> Result<(), DecodeFailure> {
    decode_lenient::<T>(obj).map(drop)
}

/// Calls `$f::<T>(obj)` with the k8s-openapi type `T` of the resource, or
/// evaluates `$other` for kinds without one.
macro_rules! with_type {
    ($res:expr, $obj:expr, $f:ident, $other:expr) => {{
        use k8s_openapi::api::{apps, coordination, core, discovery, events, networking};
        match ($res.group, $res.kind) {
            ("", "Namespace") => $f::<core::v1::Namespace>($obj),
            ("", "Node") => $f::<core::v1::Node>($obj),
            ("", "Pod") => $f::<core::v1::Pod>($obj),
            ("", "Service") => $f::<core::v1::Service>($obj),
            ("", "Endpoints") => $f::<core::v1::Endpoints>($obj),
            ("", "Secret") => $f::<core::v1::Secret>($obj),
            ("", "ConfigMap") => $f::<core::v1::ConfigMap>($obj),
            ("", "Event") => $f::<core::v1::Event>($obj),
            ("apps", "Deployment") => $f::<apps::v1::Deployment>($obj),
            ("apps", "ReplicaSet") => $f::<apps::v1::ReplicaSet>($obj),
            ("discovery.k8s.io", "EndpointSlice") => $f::<discovery::v1::EndpointSlice>($obj),
            ("networking.k8s.io", "Ingress") => $f::<networking::v1::Ingress>($obj),
            ("networking.k8s.io", "IngressClass") => $f::<networking::v1::IngressClass>($obj),
            ("events.k8s.io", "Event") => $f::<events::v1::Event>($obj),
            ("coordination.k8s.io", "Lease") => $f::<coordination::v1::Lease>($obj),
            _ => $other,
        }
    }};
}

fn typed(res: &ResourceInfo, obj: &Value) -> Result<Value, DecodeFailure> {
    with_type!(res, obj, roundtrip, Ok(obj.clone()))
}

/// The object after decoding into its k8s-openapi type and encoding again
/// (required fields the input omitted appear with zero values), or the
/// decode error text.
pub fn typed_roundtrip(res: &ResourceInfo, obj: &Value) -> Result<Value, String> {
    typed(res, obj).map_err(|e| format!("{}: {}", e.path, e.message))
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
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
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
    let list: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    format!(
        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
        res.kind,
        res.version,
        res.kind,
        list.join(", ")
    )
}

/// Strict decoding errors of a raw request body, in document order, as
/// kube-apiserver words them: `unknown field "spec.foo"` and
/// `duplicate field "spec.replicas"`. `Err` when the body is not JSON.
pub fn strict_errors(res: &ResourceInfo, body: &[u8]) -> Result<Vec<String>, String> {
    let obj: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let unknown: HashSet<String> = unknown_fields(res, &obj).into_iter().collect();
    let keys = json_keys::key_paths(body).ok_or_else(|| "invalid JSON".to_string())?;
    let mut seen: HashSet<&str> = HashSet::new();
    let mut reported: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for k in &keys {
        if !seen.insert(k.as_str()) {
            if reported.insert(k.as_str()) {
                out.push(format!("duplicate field \"{k}\""));
            }
        } else if unknown.contains(k) {
            out.push(format!("unknown field \"{k}\""));
        }
    }
    Ok(out)
}

/// The 400 message for a body with strict decoding errors (from
/// [`strict_errors`]): `Deployment in version "v1" cannot be handled as a
/// Deployment: strict decoding error: unknown field "spec.foo", duplicate field "spec.replicas"`.
pub fn strict_decoding_message(res: &ResourceInfo, errors: &[String]) -> String {
    format!(
        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
        res.kind,
        res.version,
        res.kind,
        errors.join(", ")
    )
}

/// The warning text kube-apiserver sends (as a `Warning` header) for each
/// unknown field under `fieldValidation=Warn`: `unknown field "spec.foo"`.
pub fn unknown_field_warning(field: &str) -> String {
    format!("unknown field \"{field}\"")
}

/// Go's JSON name for the kind of value serde saw (`invalid type: string ...`).
fn go_json_kind(unexpected: &str) -> &'static str {
    if unexpected.starts_with("string") {
        "string"
    } else if unexpected.starts_with("integer") || unexpected.starts_with("floating point") {
        "number"
    } else if unexpected.starts_with("boolean") {
        "bool"
    } else if unexpected.starts_with("map") {
        "object"
    } else if unexpected.starts_with("sequence") {
        "array"
    } else {
        "value"
    }
}

/// Go's type name for what serde expected.
fn go_type(expected: &str) -> String {
    match expected {
        "i32" => "int32".into(),
        "i64" => "int64".into(),
        "u32" => "uint32".into(),
        "u64" => "uint64".into(),
        "f64" => "float64".into(),
        "a boolean" => "bool".into(),
        "a string" => "string".into(),
        "a sequence" => "[]interface {}".into(),
        "a map" => "map[string]string".into(),
        other => other.trim_start_matches("struct ").to_string(),
    }
}

/// `Some(message)` when the object does not decode into its type at all
/// (a wrong JSON type, bad base64, a bad timestamp), in the shape
/// kube-apiserver reports (400 BadRequest):
/// `Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field .spec.ports.port of type int32`.
pub fn decode_error(res: &ResourceInfo, obj: &Value) -> Option<String> {
    let e = with_type!(res, obj, check, Ok(())).err()?;
    let prefix = format!(
        "{} in version \"{}\" cannot be handled as a {}",
        res.kind, res.version, res.kind
    );
    let go_path: String = segments(&e.path)
        .into_iter()
        .filter_map(|s| s.ok())
        .collect::<Vec<_>>()
        .join(".");
    let detail = match e
        .message
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        Some((unexpected, expected)) => format!(
            "json: cannot unmarshal {} into Go struct field .{} of type {}",
            go_json_kind(unexpected),
            go_path,
            go_type(expected)
        ),
        None => format!("{}: {}", e.path, e.message),
    };
    Some(format!("{prefix}: {detail}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
        assert_eq!(
            unknown_fields(svc, &obj),
            vec!["spec.foo".to_string(), "spec.ports[0].bogus".to_string()]
        );
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
        assert!(
            msg.starts_with("Service in version \"v1\" cannot be handled as a Service: "),
            "{msg}"
        );
        assert!(unknown_fields(svc, &obj).is_empty());
    }
}

#[cfg(test)]
mod lenient_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::resource::find_kind;
    use serde_json::json;

    #[test]
    fn missing_required_fields_still_decode() {
        // Go decodes these as zero values and validation reports them; the
        // strict check must neither fail nor flag anything.
        let svc = find_kind("", "Service").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"ports": [{"name": "a"}, {"name": "b", "port": 81, "junk": 1}]}});
        assert!(decode_error(svc, &obj).is_none());
        assert_eq!(
            unknown_fields(svc, &obj),
            vec!["spec.ports[1].junk".to_string()]
        );
        let deploy = find_kind("apps", "Deployment").unwrap();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(decode_error(deploy, &obj).is_none());
        assert!(unknown_fields(deploy, &obj).is_empty());
        let slice = find_kind("discovery.k8s.io", "EndpointSlice").unwrap();
        let obj = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"},
            "endpoints": [{"conditions": {}}]});
        assert!(decode_error(slice, &obj).is_none());
    }

    #[test]
    fn bad_base64_is_a_decode_error() {
        let secret = find_kind("", "Secret").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "!!!"}});
        assert!(decode_error(secret, &obj).is_some());
    }
}

#[cfg(test)]
mod raw_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::resource::find_kind;

    #[test]
    fn unknown_and_duplicate_fields_in_document_order() {
        let deploy = find_kind("apps", "Deployment").unwrap();
        let body = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"replicas":1,"foo":true,"replicas":2,"selector":{"matchLabels":{"a":"b"}},
            "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","bogus":1}]}}}}"#;
        let errs = strict_errors(deploy, body).unwrap();
        assert_eq!(
            errs,
            vec![
                "unknown field \"spec.foo\"".to_string(),
                "duplicate field \"spec.replicas\"".to_string(),
                "unknown field \"spec.template.spec.containers[0].bogus\"".to_string(),
            ]
        );
        assert_eq!(
            strict_decoding_message(deploy, &errs[..1]),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""
        );
        assert!(strict_errors(deploy, b"{not json").is_err());
    }
}
