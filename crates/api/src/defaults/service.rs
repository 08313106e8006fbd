//! Service defaulting (`SetDefaults_Service` plus the registry's IP family
//! initialisation) and the update-time fix-ups of the Service registry
//! (`normalizeClusterIPs`, `patchAllocatedValues`, `dropTypeDependentFields`).

use serde_json::{json, Value};

use super::{is_empty_str, set_default, set_str_default};
use crate::validation::names::parse_ip_sloppy;

fn ty(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn externally_accessible(svc: &Value) -> bool {
    match ty(svc) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => svc
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty()),
        _ => false,
    }
}

/// `SetDefaults_Service` and the IP-family fields the registry initialises.
pub(super) fn apply(svc: &mut Value) {
    set_str_default(svc, &["spec", "sessionAffinity"], "None");
    let affinity = svc
        .pointer("/spec/sessionAffinity")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if affinity == "None" {
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("sessionAffinityConfig");
        }
    } else if affinity == "ClientIP"
        && svc
            .pointer("/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
            .is_none_or(Value::is_null)
    {
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert(
                "sessionAffinityConfig".into(),
                json!({"clientIP": {"timeoutSeconds": 10800}}),
            );
        }
    }
    set_str_default(svc, &["spec", "type"], "ClusterIP");
    if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_str_default(p, &["protocol"], "TCP");
            let tp = p.get("targetPort");
            let unset = match tp {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(v) => v.as_i64() == Some(0),
            };
            if unset {
                let port = p.get("port").cloned().unwrap_or(json!(0));
                if let Some(m) = p.as_object_mut() {
                    m.insert("targetPort".into(), port);
                }
            }
        }
    }
    if externally_accessible(svc) {
        set_str_default(svc, &["spec", "externalTrafficPolicy"], "Cluster");
    }
    if matches!(ty(svc), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set_default(svc, &["spec", "internalTrafficPolicy"], json!("Cluster"));
    }
    if ty(svc) == "LoadBalancer" {
        set_default(svc, &["spec", "allocateLoadBalancerNodePorts"], json!(true));
        // LoadBalancerIPMode (GA): an ingress IP without a mode is a VIP.
        if let Some(ingress) = svc
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for ing in ingress {
                let has_ip = ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if has_ip {
                    set_default(ing, &["ipMode"], json!("VIP"));
                }
            }
        }
    }

    // normalizeClusterIPs (create form): a singular clusterIP seeds the plural.
    let cluster_ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ips_empty = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if !cluster_ip.is_empty() && ips_empty {
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("clusterIPs".into(), json!([cluster_ip]));
        }
    }

    // initIPFamilyFields on a single-stack IPv4 cluster. Headless services
    // without a selector take both families (PreferDualStack), as Kubernetes
    // cannot know the families of their hand-written endpoints.
    if ty(svc) != "ExternalName" {
        let headless = svc
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() == 1 && a[0] == "None");
        let selectorless = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        let default_policy = if headless && selectorless {
            "PreferDualStack"
        } else {
            "SingleStack"
        };
        set_default(svc, &["spec", "ipFamilyPolicy"], json!(default_policy));
        let no_families = svc
            .pointer("/spec/ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_families {
            let family = match parse_ip_sloppy(&cluster_ip) {
                Some(std::net::IpAddr::V6(_)) => "IPv6",
                _ => "IPv4",
            };
            if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("ipFamilies".into(), json!([family]));
            }
        }
        let policy = svc
            .pointer("/spec/ipFamilyPolicy")
            .and_then(Value::as_str)
            .unwrap_or("");
        if headless && selectorless && policy != "SingleStack" {
            if let Some(fams) = svc
                .pointer_mut("/spec/ipFamilies")
                .and_then(Value::as_array_mut)
            {
                if fams.len() < 2 {
                    let other = if fams.first().and_then(Value::as_str) == Some("IPv6") {
                        "IPv4"
                    } else {
                        "IPv6"
                    };
                    fams.push(json!(other));
                }
            }
        }
    }
    set_default(svc, &["status", "loadBalancer"], json!({}));
}

fn needs_cluster_ip(svc: &Value) -> bool {
    ty(svc) != "ExternalName"
}

fn needs_node_port(svc: &Value) -> bool {
    match ty(svc) {
        "NodePort" => true,
        "LoadBalancer" => {
            svc.pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn needs_hc_node_port(svc: &Value) -> bool {
    ty(svc) == "LoadBalancer"
        && svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn node_ports(svc: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .filter(|n| *n != 0)
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v.dedup();
    v
}

fn spec_field<'a>(svc: &'a Value, key: &str) -> Option<&'a Value> {
    svc.get("spec")
        .and_then(|s| s.get(key))
        .filter(|v| !v.is_null())
}

fn same(a: &Value, b: &Value, key: &str) -> bool {
    spec_field(a, key) == spec_field(b, key)
}

fn set_spec(svc: &mut Value, key: &str, value: Value) {
    set_default(svc, &["spec"], json!({}));
    if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(key.into(), value);
    }
}

fn remove_spec(svc: &mut Value, key: &str) {
    if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove(key);
    }
}

/// The Service registry's update fix-ups, in Kubernetes' order:
/// `patchAllocatedValues`, `normalizeClusterIPs`, `dropTypeDependentFields`,
/// and status carried over from the stored object.
pub fn prepare_service_update(svc: &mut Value, old: &Value) {
    // patchAllocatedValues: a client that omits allocated values keeps them.
    if needs_cluster_ip(old) && needs_cluster_ip(svc) {
        if is_empty_str(svc, &["spec", "clusterIP"]) {
            if let Some(ip) = spec_field(old, "clusterIP").cloned() {
                set_spec(svc, "clusterIP", ip);
            }
        }
        let new_empty = spec_field(svc, "clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if new_empty {
            if let Some(ips) = spec_field(old, "clusterIPs")
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                let ips = ips.clone();
                if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("clusterIPs".into(), ips);
                }
            }
        }
    }
    if needs_node_port(old) && needs_node_port(svc) {
        let used: Vec<i64> = node_ports(old)
            .into_iter()
            .filter(|p| node_ports(svc).contains(p))
            .collect();
        let by_name: Vec<(String, i64)> = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p.get("name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            p.get("nodePort").and_then(Value::as_i64).unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                // Go's map keeps the last port of a given name.
                let old_val = by_name
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |(_, v)| *v);
                if old_val != 0 && !used.contains(&old_val) {
                    if let Some(m) = p.as_object_mut() {
                        m.insert("nodePort".into(), json!(old_val));
                    }
                }
            }
        }
    }
    if needs_hc_node_port(old) && needs_hc_node_port(svc) {
        let hc = svc
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if hc == 0 {
            if let Some(v) = spec_field(old, "healthCheckNodePort").cloned() {
                set_spec(svc, "healthCheckNodePort", v);
            }
        }
    }

    normalize_cluster_ips_update(svc, old);
    drop_type_dependent_fields(svc, old);

    match old.get("status") {
        Some(st) => {
            if let Some(o) = svc.as_object_mut() {
                o.insert("status".into(), st.clone());
            }
        }
        None => {
            if let Some(o) = svc.as_object_mut() {
                o.remove("status");
            }
        }
    }
    if ty(old) == "LoadBalancer" && ty(svc) != "LoadBalancer" {
        if let Some(o) = svc.as_object_mut() {
            o.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }
}

/// `normalizeClusterIPs` for an update.
fn normalize_cluster_ips_update(svc: &mut Value, old: &Value) {
    let old_ip = spec_field(old, "clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let new_ip = spec_field(svc, "clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let old_ips = spec_field(old, "clusterIPs").cloned();
    let old_has_ips = old_ips
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let new_has_ips = spec_field(svc, "clusterIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if old_has_ips && !new_has_ips && old_ip == new_ip {
        if let (Some(spec), Some(ips)) =
            (svc.get_mut("spec").and_then(Value::as_object_mut), old_ips)
        {
            spec.insert("clusterIPs".into(), ips);
        }
    }
    if old_ip != new_ip {
        let same_ips = same(old, svc, "clusterIPs");
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same_ips {
                remove_spec(svc, "clusterIPs");
            }
        } else if same_ips {
            if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("clusterIPs".into(), json!([new_ip]));
            }
        }
    }
}

/// `dropTypeDependentFields`: wipe fields the new type does not use, when
/// the client left them as they were.
fn drop_type_dependent_fields(svc: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && !needs_cluster_ip(svc) {
        if same(old, svc, "clusterIPs") && same(old, svc, "clusterIP") {
            remove_spec(svc, "clusterIP");
            remove_spec(svc, "clusterIPs");
        }
        if same(old, svc, "ipFamilies") {
            remove_spec(svc, "ipFamilies");
        }
        if same(old, svc, "ipFamilyPolicy") {
            remove_spec(svc, "ipFamilyPolicy");
        }
    }
    if needs_node_port(old) && !needs_node_port(svc) && node_ports(old) == node_ports(svc) {
        if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
    }
    if needs_hc_node_port(old) && !needs_hc_node_port(svc) && same(old, svc, "healthCheckNodePort")
    {
        remove_spec(svc, "healthCheckNodePort");
    }
    if ty(old) == "LoadBalancer" && ty(svc) != "LoadBalancer" {
        if spec_field(svc, "allocateLoadBalancerNodePorts").is_some()
            && same(old, svc, "allocateLoadBalancerNodePorts")
        {
            remove_spec(svc, "allocateLoadBalancerNodePorts");
        }
        if spec_field(svc, "loadBalancerClass").is_some() && same(old, svc, "loadBalancerClass") {
            remove_spec(svc, "loadBalancerClass");
        }
    }
    if externally_accessible(old)
        && !externally_accessible(svc)
        && same(old, svc, "externalTrafficPolicy")
    {
        remove_spec(svc, "externalTrafficPolicy");
    }
}
