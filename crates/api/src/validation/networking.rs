//! Ingress and IngressClass validation (k/k `pkg/apis/networking/validation`).

use serde_json::Value;

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{self, NameRule};
use super::{get, get_arr, get_i64, get_str, invalid_int, invalid_str, not_supported_str};
use crate::status::FieldError;

const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

/// Validates an Ingress create or update.
pub fn validate_ingress(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(validate_object_meta_update(obj, old));
    }
    out.extend(validate_object_meta(obj, true, NameRule::Subdomain));
    let empty = Value::Object(serde_json::Map::new());
    let spec = get(obj, &["spec"]).unwrap_or(&empty);
    let rules = get_arr(spec, &["rules"]);
    let default_backend = get(spec, &["defaultBackend"]);
    if rules.is_empty() && default_backend.is_none() {
        let shown = if get(spec, &["rules"]).is_some() {
            "[]networking.IngressRule{}"
        } else {
            "[]networking.IngressRule(nil)"
        };
        out.push(FieldError::invalid(
            "spec",
            shown,
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        backend(&mut out, b, "spec.defaultBackend");
    }
    for (i, r) in rules.iter().enumerate() {
        let host = get_str(r, &["host"]);
        let hpath = format!("spec.rules[{i}].host");
        if !host.is_empty() {
            if names::parse_ip_sloppy(host).is_some() {
                out.push(invalid_str(
                    &hpath,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let msgs = if host.contains('*') {
                names::is_wildcard_dns1123_subdomain(host)
            } else {
                names::is_dns1123_subdomain(host)
            };
            for m in msgs {
                out.push(invalid_str(&hpath, host, m));
            }
        }
        if let Some(http) = get(r, &["http"]) {
            let paths = get_arr(http, &["paths"]);
            if paths.is_empty() {
                out.push(FieldError::required(
                    format!("spec.rules[{i}].http.paths"),
                    "",
                ));
            }
            for (j, p) in paths.iter().enumerate() {
                http_path(&mut out, p, &format!("spec.rules[{i}].http.paths[{j}]"));
            }
        }
    }
    for (i, t) in get_arr(spec, &["tls"]).iter().enumerate() {
        for (j, h) in get_arr(t, &["hosts"]).iter().enumerate() {
            let h = h.as_str().unwrap_or("");
            let msgs = if h.contains('*') {
                names::is_wildcard_dns1123_subdomain(h)
            } else {
                names::is_dns1123_subdomain(h)
            };
            for m in msgs {
                out.push(invalid_str(format!("spec.tls[{i}].hosts[{j}]"), h, m));
            }
        }
        let secret = get_str(t, &["secretName"]);
        if !secret.is_empty() {
            for m in names::is_dns1123_subdomain(secret) {
                out.push(invalid_str(format!("spec.tls[{i}].secretName"), secret, m));
            }
        }
    }
    if let Some(class) = get(spec, &["ingressClassName"]).and_then(Value::as_str) {
        for m in names::is_dns1123_subdomain(class) {
            out.push(invalid_str("spec.ingressClassName", class, m));
        }
        let ann = get(
            obj,
            &["metadata", "annotations", "kubernetes.io/ingress.class"],
        )
        .and_then(Value::as_str);
        if let Some(a) = ann {
            if a != class {
                out.push(invalid_str(
                    "annotations.kubernetes.io/ingress.class",
                    a,
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
    }
    out
}

fn http_path(out: &mut Vec<FieldError>, p: &Value, path: &str) {
    let Some(pt) = get(p, &["pathType"]).and_then(Value::as_str) else {
        out.push(FieldError::required(
            format!("{path}.pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = get_str(p, &["path"]);
    let ppath = format!("{path}.path");
    match pt {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                out.push(invalid_str(&ppath, value, "must be an absolute path"));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        out.push(invalid_str(
                            &ppath,
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suf in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suf) {
                        out.push(invalid_str(
                            &ppath,
                            value,
                            format!("cannot end with '{suf}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                out.push(invalid_str(&ppath, value, "must be an absolute path"));
            }
        }
        other => out.push(not_supported_str(
            format!("{path}.pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    match get(p, &["backend"]) {
        Some(b) => backend(out, b, &format!("{path}.backend")),
        None => out.push(invalid_str(
            format!("{path}.backend"),
            "",
            "resource or service backend is required",
        )),
    }
}

/// `validateIngressBackend`.
fn backend(out: &mut Vec<FieldError>, b: &Value, path: &str) {
    let resource = get(b, &["resource"]);
    let service = get(b, &["service"]);
    match (resource, service) {
        (Some(_), Some(_)) => out.push(invalid_str(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            if get_str(r, &["kind"]).is_empty() {
                out.push(FieldError::required(format!("{path}.resource.kind"), ""));
            }
            if get_str(r, &["name"]).is_empty() {
                out.push(FieldError::required(format!("{path}.resource.name"), ""));
            }
        }
        (None, Some(s)) => {
            let name = get_str(s, &["name"]);
            if name.is_empty() {
                out.push(FieldError::required(format!("{path}.service.name"), ""));
            } else {
                for m in names::is_dns1035_label(name) {
                    out.push(invalid_str(format!("{path}.service.name"), name, m));
                }
            }
            let port_name = get_str(s, &["port", "name"]);
            let port_num = get_i64(s, &["port", "number"]);
            if !port_name.is_empty() && port_num != 0 {
                out.push(invalid_str(
                    path,
                    "",
                    "cannot set both port name & port number",
                ));
            } else if !port_name.is_empty() {
                for m in names::is_valid_port_name(port_name) {
                    out.push(invalid_str(
                        format!("{path}.service.port.name"),
                        port_name,
                        m,
                    ));
                }
            } else if port_num != 0 {
                for m in names::is_valid_port_num(port_num) {
                    out.push(invalid_int(
                        format!("{path}.service.port.number"),
                        port_num,
                        m,
                    ));
                }
            } else {
                out.push(FieldError::required(
                    path,
                    "port name or number is required",
                ));
            }
        }
        (None, None) => out.push(invalid_str(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

/// Validates an IngressClass create or update.
pub fn validate_ingress_class(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(validate_object_meta_update(obj, old));
        let c = get_str(obj, &["spec", "controller"]);
        if c != get_str(old, &["spec", "controller"]) {
            out.push(invalid_str("spec.controller", c, "field is immutable"));
        }
    }
    out.extend(validate_object_meta(obj, false, NameRule::Subdomain));
    let controller = get_str(obj, &["spec", "controller"]);
    if controller.len() > 250 {
        out.push(FieldError {
            field: "spec.controller".into(),
            error_type: crate::status::ErrorType::TooLong,
            bad_value: None,
            detail: "must have at most 250 bytes".into(),
        });
    }
    if controller.is_empty() {
        out.push(FieldError::required("spec.controller", ""));
    } else {
        match controller.split_once('/') {
            Some((host, p)) if !host.is_empty() && !p.is_empty() => {
                for m in names::is_dns1123_subdomain(host) {
                    out.push(invalid_str("spec.controller", host, m));
                }
                let ok = p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
                if !ok {
                    out.push(invalid_str(
                        "spec.controller",
                        p,
                        "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
                    ));
                }
            }
            _ => out.push(invalid_str(
                "spec.controller",
                controller,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )),
        }
    }
    if let Some(p) = get(obj, &["spec", "parameters"]) {
        if get_str(p, &["kind"]).is_empty() {
            out.push(FieldError::required("spec.parameters.kind", ""));
        }
        if get_str(p, &["name"]).is_empty() {
            out.push(FieldError::required("spec.parameters.name", ""));
        }
        match get(p, &["scope"]).and_then(Value::as_str) {
            Some("Namespace") => {
                if get_str(p, &["namespace"]).is_empty() {
                    out.push(FieldError::required(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            Some("Cluster") | None => {
                if get(p, &["namespace"]).is_some() {
                    out.push(FieldError::forbidden(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            Some(other) => out.push(not_supported_str(
                "spec.parameters.scope",
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    out
}
