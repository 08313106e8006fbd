//! Service validation: `ValidateService` and `ValidateServiceUpdate` from
//! k/k `pkg/apis/core/validation/validation.go`, in the same check order.
//!
//! Allocation errors (nodePort/clusterIP range and "already allocated") are
//! not here: the API server's allocators produce those.

use serde_json::Value;

use super::meta::{validate_labels, validate_object_meta, validate_object_meta_update};
use super::names::{self, NameRule};
use super::service_ips::{
    cluster_ips_related, upgrade_downgrade_cluster_ips, upgrade_downgrade_ip_families,
};
use super::{
    dns1123_label, dns1123_subdomain, get, get_arr, get_i64, get_obj, get_str, invalid_int,
    invalid_str, not_supported_str, port_num_or_name, qualified_name, str_list, valid_ip,
    PORT_PROTOCOLS,
};
use crate::gofmt;
use crate::status::FieldError;

const MAX_CLIENT_IP_AFFINITY_SECONDS: i64 = 86400;

/// The effective `clusterIPs` (falling back to `[clusterIP]` as the registry normalises).
pub(crate) fn cluster_ips(svc: &Value) -> Vec<String> {
    let ips = str_list(get_arr(svc, &["spec", "clusterIPs"]));
    if ips.is_empty() {
        let ip = get_str(svc, &["spec", "clusterIP"]);
        if !ip.is_empty() {
            return vec![ip.to_string()];
        }
    }
    ips
}

/// `isHeadlessService`.
pub(crate) fn is_headless(svc: &Value) -> bool {
    let ips = cluster_ips(svc);
    ips.len() == 1 && ips[0] == "None"
}

/// `ExternallyAccessible`.
pub(crate) fn externally_accessible(svc: &Value) -> bool {
    match get_str(svc, &["spec", "type"]) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !get_arr(svc, &["spec", "externalIPs"]).is_empty(),
        _ => false,
    }
}

/// `NeedsHealthCheck`.
pub(crate) fn needs_health_check(svc: &Value) -> bool {
    get_str(svc, &["spec", "type"]) == "LoadBalancer"
        && get_str(svc, &["spec", "externalTrafficPolicy"]) == "Local"
}

/// All validation errors for a Service create or update.
pub fn validate(svc: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(old) = old {
        out.extend(validate_object_meta_update(svc, old));
        upgrade_downgrade_cluster_ips(&mut out, old, svc);
        upgrade_downgrade_ip_families(&mut out, old, svc);
        load_balancer_class(&mut out, Some(old), svc);
        if needs_health_check(old) && needs_health_check(svc) {
            let new_hc = get_i64(svc, &["spec", "healthCheckNodePort"]);
            if new_hc != get_i64(old, &["spec", "healthCheckNodePort"]) {
                out.push(FieldError::forbidden(
                    "spec.healthCheckNodePort",
                    "field is immutable",
                ));
            }
        }
    }
    out.extend(validate_service(svc));
    out
}

/// `ValidateService`.
fn validate_service(svc: &Value) -> Vec<FieldError> {
    let mut out = validate_object_meta(svc, true, NameRule::Dns1035);
    let ty = get_str(svc, &["spec", "type"]);
    let ports = get_arr(svc, &["spec", "ports"]);
    let headless = is_headless(svc);

    if ports.is_empty() && !headless && ty != "ExternalName" {
        out.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => {
            out.push(invalid_str(
                "spec.clusterIPs[0]",
                "None",
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        "ExternalName" => {
            if !cluster_ips(svc).is_empty() {
                out.push(FieldError::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !get_arr(svc, &["spec", "ipFamilies"]).is_empty() {
                out.push(FieldError::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if get(svc, &["spec", "ipFamilyPolicy"]).is_some() {
                out.push(FieldError::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let name = get_str(svc, &["spec", "externalName"]);
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                out.push(FieldError::required("spec.externalName", ""));
            } else {
                dns1123_subdomain(&mut out, "spec.externalName", cname);
            }
        }
        _ => {}
    }

    let mut names_seen: Vec<String> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        validate_service_port(
            &mut out,
            p,
            ports.len() > 1,
            &mut names_seen,
            &format!("spec.ports[{i}]"),
        );
    }

    validate_labels(
        &mut out,
        get_obj(svc, &["spec", "selector"]),
        "spec.selector",
    );

    let affinity = get_str(svc, &["spec", "sessionAffinity"]);
    if affinity.is_empty() {
        out.push(FieldError::required("spec.sessionAffinity", ""));
    } else if affinity != "ClientIP" && affinity != "None" {
        out.push(not_supported_str(
            "spec.sessionAffinity",
            affinity,
            &["ClientIP", "None"],
        ));
    }
    if affinity == "ClientIP" {
        client_ip_affinity(&mut out, get(svc, &["spec", "sessionAffinityConfig"]));
    } else if affinity == "None" && get(svc, &["spec", "sessionAffinityConfig"]).is_some() {
        out.push(FieldError::forbidden(
            "spec.sessionAffinityConfig",
            "must not be set when session affinity is None",
        ));
    }

    cluster_ips_related(&mut out, svc);

    for (i, ip) in get_arr(svc, &["spec", "externalIPs"]).iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let field = format!("spec.externalIPs[{i}]");
        if valid_ip(&mut out, &field, ip) {
            for m in names::special_ip_errors(ip) {
                out.push(invalid_str(&field, ip, m));
            }
        }
    }

    if ty.is_empty() {
        out.push(FieldError::required("spec.type", ""));
    } else if !["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"].contains(&ty) {
        out.push(not_supported_str(
            "spec.type",
            ty,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }

    if ty == "ClusterIP" {
        for (i, p) in ports.iter().enumerate() {
            if get_i64(p, &["nodePort"]) != 0 {
                out.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    let mut node_ports: Vec<(String, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let np = get_i64(p, &["nodePort"]);
        if np == 0 {
            continue;
        }
        let key = (get_str(p, &["protocol"]).to_string(), np);
        if node_ports.contains(&key) {
            out.push(FieldError::duplicate(
                format!("spec.ports[{i}].nodePort"),
                np.to_string(),
            ));
        }
        node_ports.push(key);
    }

    let mut port_keys: Vec<(String, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (get_str(p, &["protocol"]).to_string(), get_i64(p, &["port"]));
        if port_keys.contains(&key) {
            out.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                gofmt::service_port_key(&key.0, key.1),
            ));
        }
        port_keys.push(key);
    }

    let ranges = get_arr(svc, &["spec", "loadBalancerSourceRanges"]);
    if !ranges.is_empty() {
        // Kubernetes names this path with a capital L.
        let field = "spec.LoadBalancerSourceRanges";
        if ty != "LoadBalancer" {
            out.push(FieldError::forbidden(
                field,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.as_str().unwrap_or("").trim();
            if let Some(m) = names::cidr_error(r) {
                out.push(invalid_str(format!("{field}[{i}]"), r, m));
            }
        }
    } else if let Some(val) = get_obj(svc, &["metadata", "annotations"])
        .and_then(|a| a.get("service.beta.kubernetes.io/load-balancer-source-ranges"))
        .and_then(Value::as_str)
    {
        let field = "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]";
        if ty != "LoadBalancer" {
            out.push(FieldError::forbidden(
                field,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let val = val.trim();
        if !val.is_empty() {
            for r in val.split(',') {
                let r = r.trim();
                if let Some(m) = names::cidr_error(r) {
                    out.push(invalid_str(field, r, m));
                }
            }
        }
    }

    let alloc_lb = get(svc, &["spec", "allocateLoadBalancerNodePorts"]);
    if alloc_lb.is_some() && ty != "LoadBalancer" {
        out.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && alloc_lb.is_none() {
        // Kubernetes reports this one without the `spec.` prefix.
        out.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }

    load_balancer_class(&mut out, None, svc);
    external_traffic_policy(&mut out, svc);

    let itp = get(svc, &["spec", "internalTrafficPolicy"]).and_then(Value::as_str);
    match itp {
        None => {
            if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") {
                out.push(FieldError::required("spec.internalTrafficPolicy", ""));
            }
        }
        Some(p) if p != "Cluster" && p != "Local" => {
            out.push(not_supported_str(
                "spec.internalTrafficPolicy",
                p,
                &["Cluster", "Local"],
            ));
        }
        Some(_) => {}
    }

    if let Some(td) = get(svc, &["spec", "trafficDistribution"]).and_then(Value::as_str) {
        if td != "PreferClose" {
            out.push(not_supported_str(
                "spec.trafficDistribution",
                td,
                &["PreferClose"],
            ));
        }
    }
    out
}

/// `validateServicePort`.
fn validate_service_port(
    out: &mut Vec<FieldError>,
    p: &Value,
    require_name: bool,
    seen: &mut Vec<String>,
    path: &str,
) {
    let name = get_str(p, &["name"]);
    if require_name && name.is_empty() {
        out.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        dns1123_label(out, &format!("{path}.name"), name);
        if seen.iter().any(|n| n == name) {
            out.push(FieldError::duplicate(
                format!("{path}.name"),
                gofmt::quote(name),
            ));
        } else {
            seen.push(name.to_string());
        }
    }
    let port = get_i64(p, &["port"]);
    for m in names::is_valid_port_num(port) {
        out.push(invalid_int(format!("{path}.port"), port, m));
    }
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
    port_num_or_name(out, &format!("{path}.targetPort"), get(p, &["targetPort"]));
    if let Some(app) = get(p, &["appProtocol"]).and_then(Value::as_str) {
        qualified_name(out, &format!("{path}.appProtocol"), app);
    }
}

/// `validateClientIPAffinityConfig`.
fn client_ip_affinity(out: &mut Vec<FieldError>, config: Option<&Value>) {
    let why = "when session affinity type is ClientIP";
    let Some(config) = config else {
        out.push(FieldError::required("spec.sessionAffinityConfig", why));
        return;
    };
    let Some(client_ip) = get(config, &["clientIP"]) else {
        out.push(FieldError::required(
            "spec.sessionAffinityConfig.clientIP",
            why,
        ));
        return;
    };
    let Some(timeout) = get(client_ip, &["timeoutSeconds"]).and_then(Value::as_i64) else {
        out.push(FieldError::required(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            why,
        ));
        return;
    };
    if timeout <= 0 || timeout > MAX_CLIENT_IP_AFFINITY_SECONDS {
        out.push(invalid_int(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            timeout,
            format!("must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"),
        ));
    }
}

/// `validateLoadBalancerClassField`.
fn load_balancer_class(out: &mut Vec<FieldError>, old: Option<&Value>, svc: &Value) {
    let class = get(svc, &["spec", "loadBalancerClass"]).and_then(Value::as_str);
    let is_lb = get_str(svc, &["spec", "type"]) == "LoadBalancer";
    if let Some(old) = old {
        if is_lb && get_str(old, &["spec", "type"]) == "LoadBalancer" {
            let old_class = get(old, &["spec", "loadBalancerClass"]).and_then(Value::as_str);
            if old_class != class {
                let shown = class.map_or("null".to_string(), gofmt::quote);
                out.push(FieldError::invalid(
                    "spec.loadBalancerClass",
                    shown,
                    "may not change once set",
                ));
            }
        }
    }
    if is_lb {
        if let Some(c) = class {
            qualified_name(out, "spec.loadBalancerClass", c);
        }
    } else if class.is_some() {
        out.push(FieldError::forbidden(
            "spec.loadBalancerClass",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
}

/// `validateServiceExternalTrafficPolicy`. The "healthCheckNodePort required"
/// rule is left to the allocator, which runs after validation here.
fn external_traffic_policy(out: &mut Vec<FieldError>, svc: &Value) {
    let etp = get_str(svc, &["spec", "externalTrafficPolicy"]);
    if !externally_accessible(svc) {
        if !etp.is_empty() {
            out.push(invalid_str(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        out.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if etp != "Cluster" && etp != "Local" {
        out.push(not_supported_str(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    let hc = get_i64(svc, &["spec", "healthCheckNodePort"]);
    if !needs_health_check(svc) {
        if hc != 0 {
            out.push(invalid_int(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc != 0 {
        for m in names::is_valid_port_num(hc) {
            out.push(invalid_int("spec.healthCheckNodePort", hc, m));
        }
    }
}

/// `ValidateLoadBalancerStatus` for `status.loadBalancer` of a Service.
pub(crate) fn validate_load_balancer_status(out: &mut Vec<FieldError>, svc: &Value) {
    let ingress = get_arr(svc, &["status", "loadBalancer", "ingress"]);
    let path = "status.loadBalancer.ingress";
    if get_str(svc, &["spec", "type"]) != "LoadBalancer" && !ingress.is_empty() {
        out.push(FieldError::forbidden(
            path,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return;
    }
    validate_lb_ingress_list(out, ingress, path, true);
}

/// The per-entry rules of a load-balancer ingress list (`ipMode` only for Services).
pub(crate) fn validate_lb_ingress_list(
    out: &mut Vec<FieldError>,
    ingress: &[Value],
    path: &str,
    ip_mode: bool,
) {
    for (i, ing) in ingress.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let ip = get_str(ing, &["ip"]);
        if !ip.is_empty() {
            valid_ip(out, &format!("{ipath}.ip"), ip);
        }
        if ip_mode {
            let mode = get(ing, &["ipMode"]).and_then(Value::as_str);
            match mode {
                Some(_) if ip.is_empty() => out.push(FieldError::forbidden(
                    format!("{ipath}.ipMode"),
                    "may not be specified when `ip` is not set",
                )),
                Some(m) if m != "VIP" && m != "Proxy" => out.push(not_supported_str(
                    format!("{ipath}.ipMode"),
                    m,
                    &["Proxy", "VIP"],
                )),
                None if !ip.is_empty() => out.push(FieldError::required(
                    format!("{ipath}.ipMode"),
                    "must be specified when `ip` is set",
                )),
                _ => {}
            }
        }
        let host = get_str(ing, &["hostname"]);
        if !host.is_empty() {
            for m in names::is_dns1123_subdomain(host) {
                out.push(invalid_str(format!("{ipath}.hostname"), host, m));
            }
            if names::parse_ip_sloppy(host).is_some() {
                out.push(invalid_str(
                    format!("{ipath}.hostname"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
}
