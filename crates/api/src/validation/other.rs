//! Validation of the remaining kinds: Namespace, Node, Endpoints,
//! EndpointSlice, ConfigMap, Secret, Events and Lease (the main rules of
//! their `ValidateX` functions in Kubernetes).

use serde_json::Value;

use super::meta::{validate_labels, validate_object_meta, validate_object_meta_update};
use super::names::{self, NameRule};
use super::{
    dns1123_label, dns1123_subdomain, get, get_arr, get_i64, get_obj, get_str, invalid_int,
    invalid_str, not_supported_str, qualified_name, valid_ip, PORT_PROTOCOLS,
};
use crate::gofmt;
use crate::status::{ErrorType, FieldError};

/// 1 MiB: the data size cap of Secrets and ConfigMaps.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

fn meta(obj: &Value, old: Option<&Value>, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    match old {
        None => validate_object_meta(obj, namespaced, rule),
        Some(old) => validate_object_meta_update(obj, old),
    }
}

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError {
        field: field.to_string(),
        error_type: ErrorType::TooLong,
        bad_value: None,
        detail: format!("must have at most {max} bytes"),
    }
}

/// Namespace: DNS-1123 label name; spec finalizers are qualified names.
pub fn validate_namespace(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = meta(obj, old, false, NameRule::Label);
    for f in get_arr(obj, &["spec", "finalizers"]) {
        let f = f.as_str().unwrap_or("");
        qualified_name(&mut out, "spec.finalizers", f);
        if !f.contains('/') && names::is_qualified_name(f).is_empty() && f != "kubernetes" {
            out.push(invalid_str(
                "spec.finalizers",
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    out
}

/// Node: subdomain name, taints, podCIDRs (immutable once set).
pub fn validate_node(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = meta(obj, old, false, NameRule::Subdomain);
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, t) in get_arr(obj, &["spec", "taints"]).iter().enumerate() {
        let path = format!("metadata.taints[{i}]");
        let key = get_str(t, &["key"]);
        for m in names::is_qualified_name(key) {
            out.push(invalid_str(format!("{path}.key"), key, m));
        }
        let value = get_str(t, &["value"]);
        let v_errs = names::is_valid_label_value(value);
        if !v_errs.is_empty() {
            out.push(invalid_str(
                format!("{path}.value"),
                value,
                v_errs.join(";"),
            ));
        }
        let effect = get_str(t, &["effect"]);
        match effect {
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            "" => out.push(FieldError::required(format!("{path}.effect"), "")),
            other => out.push(not_supported_str(
                format!("{path}.effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        let k = (key.to_string(), effect.to_string());
        if seen.contains(&k) {
            let mut e = FieldError::duplicate(
                path,
                format!(
                    "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:<nil>}}",
                    gofmt::quote(key),
                    gofmt::quote(value),
                    gofmt::quote(effect)
                ),
            );
            e.detail = "taints must be unique by key and effect pair".into();
            out.push(e);
        } else {
            seen.push(k);
        }
    }
    let cidrs = get_arr(obj, &["spec", "podCIDRs"]);
    for (i, c) in cidrs.iter().enumerate() {
        let c = c.as_str().unwrap_or("");
        if let Some(m) = names::cidr_error(c) {
            out.push(invalid_str(format!("spec.podCIDRs[{i}]"), c, m));
        }
    }
    if let Some(old) = old {
        let old_cidrs = get_arr(old, &["spec", "podCIDRs"]);
        if !old_cidrs.is_empty() && old_cidrs != cidrs {
            out.push(FieldError::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_pid = get_str(old, &["spec", "providerID"]);
        if !old_pid.is_empty() && old_pid != get_str(obj, &["spec", "providerID"]) {
            out.push(FieldError::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
    out
}

fn endpoint_ip(out: &mut Vec<FieldError>, field: &str, ip: &str) {
    if valid_ip(out, field, ip) {
        for m in names::special_ip_errors(ip) {
            out.push(invalid_str(field, ip, m));
        }
    }
}

/// Endpoints: subsets need addresses; ports named when several.
pub fn validate_endpoints(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = meta(obj, old, true, NameRule::Subdomain);
    for (i, s) in get_arr(obj, &["subsets"]).iter().enumerate() {
        let path = format!("subsets[{i}]");
        let addrs = get_arr(s, &["addresses"]);
        let not_ready = get_arr(s, &["notReadyAddresses"]);
        if addrs.is_empty() && not_ready.is_empty() {
            out.push(FieldError::required(
                &path,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list, items) in [("addresses", addrs), ("notReadyAddresses", not_ready)] {
            for (j, a) in items.iter().enumerate() {
                let apath = format!("{path}.{list}[{j}]");
                endpoint_ip(&mut out, &format!("{apath}.ip"), get_str(a, &["ip"]));
                let hostname = get_str(a, &["hostname"]);
                if !hostname.is_empty() {
                    dns1123_label(&mut out, &format!("{apath}.hostname"), hostname);
                }
                if let Some(n) = get(a, &["nodeName"]).and_then(Value::as_str) {
                    dns1123_subdomain(&mut out, &format!("{apath}.nodeName"), n);
                }
            }
        }
        let ports = get_arr(s, &["ports"]);
        for (j, p) in ports.iter().enumerate() {
            let ppath = format!("{path}.ports[{j}]");
            let name = get_str(p, &["name"]);
            if ports.len() > 1 && name.is_empty() {
                out.push(FieldError::required(format!("{ppath}.name"), ""));
            } else if !name.is_empty() {
                dns1123_label(&mut out, &format!("{ppath}.name"), name);
            }
            let port = get_i64(p, &["port"]);
            for m in names::is_valid_port_num(port) {
                out.push(invalid_int(format!("{ppath}.port"), port, m));
            }
            protocol(&mut out, p, &ppath);
        }
    }
    out
}

fn protocol(out: &mut Vec<FieldError>, p: &Value, path: &str) {
    let proto = get_str(p, &["protocol"]);
    if proto.is_empty() {
        out.push(FieldError::required(format!("{path}.protocol"), ""));
    } else if !PORT_PROTOCOLS.contains(&proto) {
        out.push(not_supported_str(
            format!("{path}.protocol"),
            proto,
            PORT_PROTOCOLS,
        ));
    }
}

/// EndpointSlice: addressType (immutable), endpoint addresses, ports.
pub fn validate_endpoint_slice(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(validate_object_meta_update(obj, old));
    }
    out.extend(validate_object_meta(obj, true, NameRule::Subdomain));
    let addr_type = get_str(obj, &["addressType"]);
    if addr_type.is_empty() {
        out.push(FieldError::required("addressType", ""));
    } else if !["FQDN", "IPv4", "IPv6"].contains(&addr_type) {
        out.push(not_supported_str(
            "addressType",
            addr_type,
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    let endpoints = get_arr(obj, &["endpoints"]);
    if endpoints.len() > 1000 {
        out.push(too_many("endpoints", endpoints.len(), 1000));
    } else {
        for (i, e) in endpoints.iter().enumerate() {
            let path = format!("endpoints[{i}]");
            let addrs = get_arr(e, &["addresses"]);
            if addrs.is_empty() {
                out.push(FieldError::required(
                    format!("{path}.addresses"),
                    "must contain at least 1 address",
                ));
            } else if addrs.len() > 100 {
                out.push(too_many(&format!("{path}.addresses"), addrs.len(), 100));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = a.as_str().unwrap_or("");
                let apath = format!("{path}.addresses[{j}]");
                let parsed = names::parse_ip_sloppy(a);
                match addr_type {
                    "IPv4" => match parsed {
                        Some(std::net::IpAddr::V4(_)) => endpoint_ip(&mut out, &apath, a),
                        _ => out.push(invalid_str(&apath, a, "must be a valid IPv4 address")),
                    },
                    "IPv6" => match parsed {
                        Some(std::net::IpAddr::V6(_)) => endpoint_ip(&mut out, &apath, a),
                        _ => out.push(invalid_str(&apath, a, "must be a valid IPv6 address")),
                    },
                    "FQDN" => {
                        let name = a.strip_suffix('.').unwrap_or(a);
                        let errs = names::is_dns1123_subdomain(name);
                        if !errs.is_empty() {
                            out.push(invalid_str(&apath, name, errs.join(",")));
                        } else if name.split('.').count() < 2 {
                            out.push(invalid_str(
                                &apath,
                                name,
                                "should be a domain with at least two segments separated by dots",
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(n) = get(e, &["nodeName"]).and_then(Value::as_str) {
                dns1123_subdomain(&mut out, &format!("{path}.nodeName"), n);
            }
            validate_labels(
                &mut out,
                get_obj(e, &["deprecatedTopology"]),
                &format!("{path}.deprecatedTopology"),
            );
            if let Some(h) = get(e, &["hostname"]).and_then(Value::as_str) {
                dns1123_label(&mut out, &format!("{path}.hostname"), h);
            }
        }
    }
    let ports = get_arr(obj, &["ports"]);
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = get_str(p, &["name"]);
        if !name.is_empty() {
            dns1123_label(&mut out, &format!("{path}.name"), name);
        }
        if seen.contains(&name) {
            out.push(FieldError::duplicate(
                format!("{path}.name"),
                gofmt::quote(name),
            ));
        } else {
            seen.push(name);
        }
        protocol(&mut out, p, &path);
        if let Some(app) = get(p, &["appProtocol"]).and_then(Value::as_str) {
            qualified_name(&mut out, &format!("{path}.appProtocol"), app);
        }
    }
    if let Some(old) = old {
        let old_type = get_str(old, &["addressType"]);
        if old_type != addr_type {
            out.push(invalid_str("addressType", addr_type, "field is immutable"));
        }
    }
    out
}

fn too_many(field: &str, actual: usize, max: usize) -> FieldError {
    FieldError {
        field: field.to_string(),
        error_type: ErrorType::TooMany,
        bad_value: Some(actual.to_string()),
        detail: format!("must have at most {max} items"),
    }
}

fn data_keys(out: &mut Vec<FieldError>, obj: &Value, key: &str) -> usize {
    let mut total = 0;
    if let Some(data) = get_obj(obj, &[key]) {
        for (k, v) in data {
            for m in names::is_config_map_key(k) {
                out.push(invalid_str(format!("{key}[{k}]"), k, m));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    total
}

/// ConfigMap: key syntax, no key in both data and binaryData, size cap, immutability.
pub fn validate_config_map(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(validate_object_meta_update(obj, old));
        immutable_data(&mut out, obj, old, &["data", "binaryData"]);
    }
    out.extend(validate_object_meta(obj, true, NameRule::Subdomain));
    let mut total = 0;
    if let Some(data) = get_obj(obj, &["data"]) {
        for (k, v) in data {
            for m in names::is_config_map_key(k) {
                out.push(invalid_str(format!("data[{k}]"), k, m));
            }
            if get_obj(obj, &["binaryData"]).is_some_and(|b| b.contains_key(k)) {
                out.push(invalid_str(
                    format!("data[{k}]"),
                    k,
                    "duplicate of key present in binaryData",
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    total += data_keys(&mut out, obj, "binaryData") * 3 / 4;
    if total > MAX_SECRET_SIZE {
        out.push(too_long("", MAX_SECRET_SIZE));
    }
    out
}

fn immutable_data(out: &mut Vec<FieldError>, obj: &Value, old: &Value, keys: &[&str]) {
    if get(old, &["immutable"]).and_then(Value::as_bool) != Some(true) {
        return;
    }
    if get(obj, &["immutable"]).and_then(Value::as_bool) != Some(true) {
        out.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for k in keys {
        let a = get(obj, &[k]).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()));
        let b = get(old, &[k]).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()));
        if a != b {
            out.push(FieldError::forbidden(
                *k,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

/// Secret: key syntax, size cap, per-type required keys, type immutability.
pub fn validate_secret(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    let ty = get_str(obj, &["type"]);
    if let Some(old) = old {
        out.extend(validate_object_meta_update(obj, old));
        let old_ty = get_str(old, &["type"]);
        if old_ty != ty {
            out.push(invalid_str("type", ty, "field is immutable"));
        }
        immutable_data(&mut out, obj, old, &["data"]);
    }
    out.extend(validate_object_meta(obj, true, NameRule::Subdomain));
    let total = data_keys(&mut out, obj, "data") * 3 / 4;
    if total > MAX_SECRET_SIZE {
        out.push(too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| get_obj(obj, &["data"]).is_some_and(|d| d.contains_key(k));
    match ty {
        "kubernetes.io/service-account-token"
            if get_str(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            )
            .is_empty() =>
        {
            out.push(FieldError::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            out.push(FieldError::required("data[.dockercfg]", ""));
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            out.push(FieldError::required("data[.dockerconfigjson]", ""));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            out.push(FieldError::required("data[username]", ""));
            out.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if get_str(obj, &["data", "ssh-privatekey"]).is_empty() => {
            out.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                out.push(FieldError::required("data[tls.crt]", ""));
            }
            if !has("tls.key") {
                out.push(FieldError::required("data[tls.key]", ""));
            }
        }
        _ => {}
    }
    out
}

/// core/v1 Event: the legacy rules (`legacyValidateEvent`).
pub fn validate_core_event(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(validate_object_meta_update(obj, old));
    } else if get_str(obj, &["metadata", "name"]).is_empty() {
        out.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    }
    let ns = get_str(obj, &["metadata", "namespace"]);
    let io_ns = get_str(obj, &["involvedObject", "namespace"]);
    if get(obj, &["eventTime"]).is_none() {
        let ok = if io_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == io_ns
        };
        if !ok {
            out.push(invalid_str(
                "involvedObject.namespace",
                io_ns,
                "does not match event.namespace",
            ));
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            out.push(invalid_str(
                "involvedObject.namespace",
                io_ns,
                "does not match event.namespace",
            ));
        }
        event_reporting(
            &mut out,
            obj,
            "reportingComponent",
            "reportingComponent",
            "reportingInstance",
            "action",
            "reason",
            "message",
        );
    }
    for m in names::is_dns1123_subdomain(ns) {
        out.push(invalid_str("namespace", ns, m));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn event_reporting(
    out: &mut Vec<FieldError>,
    obj: &Value,
    field: &str,
    json_key: &str,
    instance: &str,
    action: &str,
    reason: &str,
    note: &str,
) {
    let rc = get_str(obj, &[json_key]);
    if rc.is_empty() {
        out.push(FieldError::required(field, ""));
    }
    qualified_name(out, field, rc);
    let ri = get_str(obj, &[instance]);
    if ri.is_empty() {
        out.push(FieldError::required("reportingInstance", ""));
    }
    if ri.len() > 128 {
        out.push(invalid_str(
            "reportingInstance",
            "",
            "can have at most 128 characters",
        ));
    }
    let a = get_str(obj, &[action]);
    if a.is_empty() {
        out.push(FieldError::required("action", ""));
    }
    if a.len() > 128 {
        out.push(invalid_str("action", "", "can have at most 128 characters"));
    }
    let r = get_str(obj, &[reason]);
    if r.is_empty() {
        out.push(FieldError::required("reason", ""));
    }
    if r.len() > 128 {
        out.push(invalid_str("reason", "", "can have at most 128 characters"));
    }
    if get_str(obj, &[note]).len() > 1024 {
        out.push(invalid_str(
            "message",
            "",
            "can have at most 1024 characters",
        ));
    }
}

/// events.k8s.io/v1 Event: the strict rules for new-style events.
pub fn validate_events_event(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    let ns = get_str(obj, &["metadata", "namespace"]);
    let reg_ns = get_str(obj, &["regarding", "namespace"]);
    if get(obj, &["eventTime"]).is_some() {
        if reg_ns.is_empty() && ns != "default" && ns != "kube-system" {
            out.push(invalid_str(
                "involvedObject.namespace",
                reg_ns,
                "does not match event.namespace",
            ));
        }
        event_reporting(
            &mut out,
            obj,
            "reportingController",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "note",
        );
    }
    for m in names::is_dns1123_subdomain(ns) {
        out.push(invalid_str("namespace", ns, m));
    }
    out.extend(meta(obj, old, true, NameRule::Subdomain));
    if old.is_none() {
        if get(obj, &["eventTime"]).is_none() {
            out.push(FieldError::required("eventTime", ""));
        }
        let ty = get_str(obj, &["type"]);
        if ty != "Normal" && ty != "Warning" {
            out.push(invalid_str("type", "", format!("has invalid value: {ty}")));
        }
    }
    out
}

/// Lease: subdomain name, positive duration, non-negative transitions.
pub fn validate_lease(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = meta(obj, old, true, NameRule::Subdomain);
    if let Some(d) = get(obj, &["spec", "leaseDurationSeconds"]).and_then(Value::as_i64) {
        if d <= 0 {
            out.push(invalid_int(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = get(obj, &["spec", "leaseTransitions"]).and_then(Value::as_i64) {
        if t < 0 {
            out.push(invalid_int(
                "spec.leaseTransitions",
                t,
                "must be greater than or equal to 0",
            ));
        }
    }
    out
}
