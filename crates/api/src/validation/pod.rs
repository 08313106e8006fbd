//! Pod and pod template validation: the main rules of `ValidatePodSpec`,
//! `validateContainers`, probes and ports, and `ValidatePodUpdate`'s
//! "pod updates may not change fields other than ..." rule.

use serde_json::{Map, Value};

use super::meta::{
    validate_annotations, validate_labels, validate_object_meta, validate_object_meta_update,
};
use super::names::{self, NameRule};
use super::{
    dns1123_label, dns1123_subdomain, get, get_arr, get_i64, get_obj, get_str, invalid_int,
    invalid_str, nonnegative, not_supported_str, port_num_or_name, PORT_PROTOCOLS,
};
use crate::status::FieldError;

/// Validates a Pod create or update.
pub fn validate_pod(pod: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match old {
        None => {
            let mut out = validate_object_meta(pod, true, NameRule::Subdomain);
            let empty = Value::Object(Map::new());
            validate_pod_spec(&mut out, get(pod, &["spec"]).unwrap_or(&empty), "spec");
            if !get_arr(pod, &["spec", "ephemeralContainers"]).is_empty() {
                out.push(FieldError::forbidden(
                    "spec.ephemeralContainers",
                    "cannot be set on create",
                ));
            }
            out
        }
        Some(old) => validate_pod_update(pod, old),
    }
}

/// `ValidatePodTemplateSpec` for a template at `path` (e.g. `spec.template`).
pub fn validate_pod_template(out: &mut Vec<FieldError>, template: &Value, path: &str) {
    validate_labels(
        out,
        get_obj(template, &["metadata", "labels"]),
        &format!("{path}.labels"),
    );
    validate_annotations(
        out,
        get_obj(template, &["metadata", "annotations"]),
        &format!("{path}.annotations"),
    );
    let empty = Value::Object(Map::new());
    validate_pod_spec(
        out,
        get(template, &["spec"]).unwrap_or(&empty),
        &format!("{path}.spec"),
    );
    if !get_arr(template, &["spec", "ephemeralContainers"]).is_empty() {
        out.push(FieldError::forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// The main rules of `ValidatePodSpec`.
pub fn validate_pod_spec(out: &mut Vec<FieldError>, spec: &Value, path: &str) {
    let mut volume_names: Vec<&str> = Vec::new();
    for (i, v) in get_arr(spec, &["volumes"]).iter().enumerate() {
        let name = get_str(v, &["name"]);
        let field = format!("{path}.volumes[{i}].name");
        if name.is_empty() {
            out.push(FieldError::required(field, ""));
        } else {
            dns1123_label(out, &field, name);
            if volume_names.contains(&name) {
                out.push(FieldError::duplicate(field, crate::gofmt::quote(name)));
            }
            volume_names.push(name);
        }
    }

    let containers = get_arr(spec, &["containers"]);
    let mut all_names: Vec<String> = Vec::new();
    if containers.is_empty() {
        out.push(FieldError::required(format!("{path}.containers"), ""));
    } else {
        for (i, c) in containers.iter().enumerate() {
            let cpath = format!("{path}.containers[{i}]");
            validate_container_common(out, c, &cpath);
            let name = get_str(c, &["name"]).to_string();
            if all_names.contains(&name) {
                out.push(FieldError::duplicate(
                    format!("{cpath}.name"),
                    crate::gofmt::quote(&name),
                ));
            } else {
                all_names.push(name);
            }
            validate_probe(
                out,
                get(c, &["livenessProbe"]),
                &format!("{cpath}.livenessProbe"),
                ProbeKind::Liveness,
            );
            validate_probe(
                out,
                get(c, &["readinessProbe"]),
                &format!("{cpath}.readinessProbe"),
                ProbeKind::Readiness,
            );
            validate_probe(
                out,
                get(c, &["startupProbe"]),
                &format!("{cpath}.startupProbe"),
                ProbeKind::Startup,
            );
            if get(c, &["restartPolicy"]).is_some() {
                out.push(FieldError::forbidden(
                    format!("{cpath}.restartPolicy"),
                    "may not be set for non-init containers",
                ));
            }
        }
    }
    for (i, c) in get_arr(spec, &["initContainers"]).iter().enumerate() {
        let cpath = format!("{path}.initContainers[{i}]");
        validate_container_common(out, c, &cpath);
        let name = get_str(c, &["name"]).to_string();
        if all_names.contains(&name) {
            out.push(FieldError::duplicate(
                format!("{cpath}.name"),
                crate::gofmt::quote(&name),
            ));
        } else {
            all_names.push(name);
        }
    }

    match get_str(spec, &["restartPolicy"]) {
        "Always" | "OnFailure" | "Never" => {}
        "" => out.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        other => out.push(not_supported_str(
            format!("{path}.restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match get_str(spec, &["dnsPolicy"]) {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => out.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        other => out.push(not_supported_str(
            format!("{path}.dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    validate_labels(
        out,
        get_obj(spec, &["nodeSelector"]),
        &format!("{path}.nodeSelector"),
    );

    let sa = get_str(spec, &["serviceAccountName"]);
    if !sa.is_empty() {
        dns1123_subdomain(out, &format!("{path}.serviceAccountName"), sa);
    }
    let node = get_str(spec, &["nodeName"]);
    if !node.is_empty() {
        dns1123_subdomain(out, &format!("{path}.nodeName"), node);
    }
    if let Some(ads) = get(spec, &["activeDeadlineSeconds"]).and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            out.push(invalid_int(
                format!("{path}.activeDeadlineSeconds"),
                ads,
                names::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    let hostname = get_str(spec, &["hostname"]);
    if !hostname.is_empty() {
        dns1123_label(out, &format!("{path}.hostname"), hostname);
    }
    let subdomain = get_str(spec, &["subdomain"]);
    if !subdomain.is_empty() {
        dns1123_label(out, &format!("{path}.subdomain"), subdomain);
    }
}

/// `validateContainerCommon`.
fn validate_container_common(out: &mut Vec<FieldError>, c: &Value, path: &str) {
    let name = get_str(c, &["name"]);
    if name.is_empty() {
        out.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        dns1123_label(out, &format!("{path}.name"), name);
    }
    if get_str(c, &["image"]).is_empty() {
        out.push(FieldError::required(format!("{path}.image"), ""));
    }
    match get_str(c, &["terminationMessagePolicy"]) {
        "File" | "FallbackToLogsOnError" => {}
        "" => out.push(FieldError::required(
            format!("{path}.terminationMessagePolicy"),
            "",
        )),
        other => out.push(not_supported_str(
            format!("{path}.terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    validate_container_ports(out, get_arr(c, &["ports"]), &format!("{path}.ports"));
    for (i, e) in get_arr(c, &["env"]).iter().enumerate() {
        let n = get_str(e, &["name"]);
        if n.is_empty() {
            out.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
        }
    }
    match get_str(c, &["imagePullPolicy"]) {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => out.push(FieldError::required(format!("{path}.imagePullPolicy"), "")),
        other => out.push(not_supported_str(
            format!("{path}.imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
}

/// `validateContainerPorts`.
fn validate_container_ports(out: &mut Vec<FieldError>, ports: &[Value], path: &str) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let name = get_str(p, &["name"]);
        if !name.is_empty() {
            let msgs = names::is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    out.push(invalid_str(format!("{ipath}.name"), name, m));
                }
            } else if seen.contains(&name) {
                out.push(FieldError::duplicate(
                    format!("{ipath}.name"),
                    crate::gofmt::quote(name),
                ));
            } else {
                seen.push(name);
            }
        }
        let cp = get_i64(p, &["containerPort"]);
        if cp == 0 {
            out.push(FieldError::required(format!("{ipath}.containerPort"), ""));
        } else {
            for m in names::is_valid_port_num(cp) {
                out.push(invalid_int(format!("{ipath}.containerPort"), cp, m));
            }
        }
        let hp = get_i64(p, &["hostPort"]);
        if hp != 0 {
            for m in names::is_valid_port_num(hp) {
                out.push(invalid_int(format!("{ipath}.hostPort"), hp, m));
            }
        }
        let proto = get_str(p, &["protocol"]);
        if proto.is_empty() {
            out.push(FieldError::required(format!("{ipath}.protocol"), ""));
        } else if !PORT_PROTOCOLS.contains(&proto) {
            out.push(not_supported_str(
                format!("{ipath}.protocol"),
                proto,
                PORT_PROTOCOLS,
            ));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// `validateProbe` plus the liveness/readiness/startup specifics.
fn validate_probe(out: &mut Vec<FieldError>, probe: Option<&Value>, path: &str, kind: ProbeKind) {
    let Some(probe) = probe else { return };
    let mut handlers = 0;
    for h in ["exec", "httpGet", "tcpSocket", "grpc"] {
        let Some(hv) = get(probe, &[h]) else { continue };
        let hpath = format!("{path}.{h}");
        if handlers > 0 {
            out.push(FieldError::forbidden(
                hpath,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        handlers += 1;
        match h {
            "exec" => {
                if get_arr(hv, &["command"]).is_empty() {
                    out.push(FieldError::required(format!("{hpath}.command"), ""));
                }
            }
            "httpGet" => {
                if get_str(hv, &["path"]).is_empty() {
                    out.push(FieldError::required(format!("{hpath}.path"), ""));
                }
                port_num_or_name(out, &format!("{hpath}.port"), get(hv, &["port"]));
                let scheme = get_str(hv, &["scheme"]);
                if scheme != "HTTP" && scheme != "HTTPS" {
                    out.push(not_supported_str(
                        format!("{hpath}.scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => port_num_or_name(out, &format!("{hpath}.port"), get(hv, &["port"])),
            _ => {
                let port = get_i64(hv, &["port"]);
                for m in names::is_valid_port_num(port) {
                    out.push(invalid_int(format!("{hpath}.port"), port, m));
                }
            }
        }
    }
    if handlers == 0 {
        out.push(FieldError::required(path, "must specify a handler type"));
    }
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(out, &format!("{path}.{f}"), get_i64(probe, &[f]));
    }
    if let Some(t) = get(probe, &["terminationGracePeriodSeconds"]).and_then(Value::as_i64) {
        if kind == ProbeKind::Readiness {
            out.push(invalid_int(
                format!("{path}.terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else if t <= 0 {
            out.push(invalid_int(
                format!("{path}.terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    let st = get_i64(probe, &["successThreshold"]);
    if kind != ProbeKind::Readiness && st != 1 {
        out.push(invalid_int(
            format!("{path}.successThreshold"),
            st,
            "must be 1",
        ));
    }
}

/// The spec with the fields a Pod update may change masked out
/// (`ValidatePodUpdate`'s munging).
fn mutable_masked(spec: &Value, old: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        m.remove("schedulingGates");
        // A negative grace period may be changed to 1.
        let old_grace = get_i64(old, &["terminationGracePeriodSeconds"]);
        if old_grace < 0 && get_i64(spec, &["terminationGracePeriodSeconds"]) == 1 {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                Value::from(old_grace),
            );
        }
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(cm) = c.as_object_mut() {
                        cm.remove("image");
                    }
                }
            }
        }
    }
    // The scheduler binds unbound pods through the binding subresource; a
    // nodeName set by an update from "" is tolerated the same way.
    if get_str(old, &["nodeName"]).is_empty() {
        if let Some(m) = s.as_object_mut() {
            m.remove("nodeName");
        }
    }
    s
}

fn validate_pod_update(pod: &Value, old: &Value) -> Vec<FieldError> {
    let mut out = validate_object_meta_update(pod, old);
    let empty = Value::Object(Map::new());
    let spec = get(pod, &["spec"]).unwrap_or(&empty);
    let old_spec = get(old, &["spec"]).unwrap_or(&empty);
    validate_pod_spec(&mut out, spec, "spec");
    // Only additions to tolerations are allowed.
    let old_tol = get_arr(old_spec, &["tolerations"]);
    let new_tol = get_arr(spec, &["tolerations"]);
    for t in old_tol {
        if !new_tol.contains(t) {
            out.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    let mut old_masked = mutable_masked(old_spec, old_spec);
    let mut new_masked = mutable_masked(spec, old_spec);
    if get_str(old_spec, &["nodeName"]).is_empty() {
        for m in [&mut old_masked, &mut new_masked] {
            if let Some(o) = m.as_object_mut() {
                o.remove("nodeName");
            }
        }
    }
    if old_masked != new_masked {
        out.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n{}",
                spec_diff(&old_masked, &new_masked)
            ),
        ));
    }
    out
}

/// A short `cmp.Diff`-like summary of the changed top-level spec fields.
fn spec_diff(old: &Value, new: &Value) -> String {
    let mut lines = vec!["  core.PodSpec{".to_string()];
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.dedup();
    let mut seen: Vec<&String> = Vec::new();
    for k in keys {
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        let (a, b) = (o.get(k), n.get(k));
        if a != b {
            if let Some(a) = a {
                lines.push(format!("- \t{k}: {a},"));
            }
            if let Some(b) = b {
                lines.push(format!("+ \t{k}: {b},"));
            }
        }
    }
    lines.push("  }".to_string());
    lines.join("\n")
}
