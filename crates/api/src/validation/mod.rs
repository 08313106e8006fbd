//! Validation of API objects with kube-apiserver's exact field errors.
//!
//! `validate` is the single entry point the API server calls after defaulting
//! on create and update. Each kind follows the order of checks in Kubernetes'
//! `ValidateX`/`ValidateXUpdate` functions, because kubectl prints the causes
//! in the order the server returns them.

pub mod apps;
pub mod meta;
pub mod names;
pub mod networking;
pub mod other;
pub mod pod;
pub mod service;
mod service_ips;

use serde_json::{Map, Value};

use crate::gofmt;
use crate::resource::ResourceInfo;
use crate::status::FieldError;
use names::NameRule;

/// All validation errors for a create (`old = None`) or an update
/// (`old = Some(previous stored object)`).
pub fn validate(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match (res.group, res.kind) {
        ("", "Service") => service::validate(obj, old),
        ("", "Pod") => pod::validate_pod(obj, old),
        ("apps", "Deployment") => apps::validate_deployment(obj, old),
        ("apps", "ReplicaSet") => apps::validate_replica_set(obj, old),
        ("", "Namespace") => other::validate_namespace(obj, old),
        ("", "Node") => other::validate_node(obj, old),
        ("", "Endpoints") => other::validate_endpoints(obj, old),
        ("discovery.k8s.io", "EndpointSlice") => other::validate_endpoint_slice(obj, old),
        ("networking.k8s.io", "Ingress") => networking::validate_ingress(obj, old),
        ("networking.k8s.io", "IngressClass") => networking::validate_ingress_class(obj, old),
        ("", "ConfigMap") => other::validate_config_map(obj, old),
        ("", "Secret") => other::validate_secret(obj, old),
        ("", "Event") => other::validate_core_event(obj, old),
        ("events.k8s.io", "Event") => other::validate_events_event(obj, old),
        ("coordination.k8s.io", "Lease") => other::validate_lease(obj, old),
        _ => meta::validate_meta_create_or_update(obj, old, res.namespaced, NameRule::Subdomain),
    }
}

/// Validation of a write to the `status` subresource: metadata update rules
/// plus the kind's status rules (`ValidateXStatusUpdate`).
pub fn validate_status(res: &ResourceInfo, obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut out = meta::validate_object_meta_update(obj, old);
    match (res.group, res.kind) {
        ("", "Service") => service::validate_load_balancer_status(&mut out, obj),
        ("networking.k8s.io", "Ingress") => service::validate_lb_ingress_list(
            &mut out,
            get_arr(obj, &["status", "loadBalancer", "ingress"]),
            "status.loadBalancer.ingress",
            false,
        ),
        ("apps", "Deployment") | ("apps", "ReplicaSet") => {
            for f in [
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
                "fullyLabeledReplicas",
                "observedGeneration",
            ] {
                if let Some(v) = get(obj, &["status", f]).and_then(Value::as_i64) {
                    nonnegative(&mut out, &format!("status.{f}"), v);
                }
            }
        }
        _ => {}
    }
    out
}

/// Reads a nested value by keys.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

/// Reads a nested string; absent, null and non-strings read as `""` like Go zero values.
pub(crate) fn get_str<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// Reads a nested integer; absent reads as 0.
pub(crate) fn get_i64(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(Value::as_i64).unwrap_or(0)
}

/// Reads a nested array; absent reads as empty.
pub(crate) fn get_arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Reads a nested object.
pub(crate) fn get_obj<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// Strings of a JSON array (non-strings skipped).
pub(crate) fn str_list(v: &[Value]) -> Vec<String> {
    v.iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// `field.Invalid` with a string bad value (printed with `%q`).
pub(crate) fn invalid_str(
    field: impl Into<String>,
    value: &str,
    detail: impl Into<String>,
) -> FieldError {
    FieldError::invalid(field, gofmt::quote(value), detail)
}

/// `field.Invalid` with an integer bad value.
pub(crate) fn invalid_int(
    field: impl Into<String>,
    value: i64,
    detail: impl Into<String>,
) -> FieldError {
    FieldError::invalid(field, value.to_string(), detail)
}

/// `field.NotSupported` with a string bad value.
pub(crate) fn not_supported_str(
    field: impl Into<String>,
    value: &str,
    supported: &[&str],
) -> FieldError {
    FieldError::not_supported(field, gofmt::quote(value), supported)
}

/// `ValidateNonnegativeField`.
pub(crate) fn nonnegative(out: &mut Vec<FieldError>, field: &str, value: i64) {
    if value < 0 {
        out.push(invalid_int(
            field,
            value,
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateDNS1123Label` on a field.
pub(crate) fn dns1123_label(out: &mut Vec<FieldError>, field: &str, value: &str) {
    for m in names::is_dns1123_label(value) {
        out.push(invalid_str(field, value, m));
    }
}

/// `ValidateDNS1123Subdomain` on a field.
pub(crate) fn dns1123_subdomain(out: &mut Vec<FieldError>, field: &str, value: &str) {
    for m in names::is_dns1123_subdomain(value) {
        out.push(invalid_str(field, value, m));
    }
}

/// `ValidateQualifiedName` on a field.
pub(crate) fn qualified_name(out: &mut Vec<FieldError>, field: &str, value: &str) {
    for m in names::is_qualified_name(value) {
        out.push(invalid_str(field, value, m));
    }
}

/// `ValidatePortNumOrName` for an IntOrString port.
pub(crate) fn port_num_or_name(out: &mut Vec<FieldError>, field: &str, port: Option<&Value>) {
    match port {
        Some(Value::String(s)) => {
            for m in names::is_valid_port_name(s) {
                out.push(invalid_str(field, s, m));
            }
        }
        Some(v) => {
            let n = v.as_i64().unwrap_or(0);
            for m in names::is_valid_port_num(n) {
                out.push(invalid_int(field, n, m));
            }
        }
        None => {
            for m in names::is_valid_port_num(0) {
                out.push(invalid_int(field, 0, m));
            }
        }
    }
}

/// `IsValidIP` on a field.
pub(crate) fn valid_ip(out: &mut Vec<FieldError>, field: &str, value: &str) -> bool {
    match names::ip_error(value) {
        Some(m) => {
            out.push(invalid_str(field, value, m));
            false
        }
        None => true,
    }
}

/// Protocols Kubernetes accepts for ports, sorted as `sets.List` returns them.
pub(crate) const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_other;
#[cfg(test)]
mod tests_seed;
#[cfg(test)]
mod tests_service;
#[cfg(test)]
mod tests_workloads;
