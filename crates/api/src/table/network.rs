//! Printers for Service, Endpoints, EndpointSlice, Ingress and IngressClass.

use super::{age_of, arr, col, format_labels, i, list_with_more, name_of, s, wide, Col, AGE, NAME};
use jiff::Timestamp;
use serde_json::Value;
use std::collections::BTreeSet;

pub(crate) const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

pub(crate) const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

pub(crate) const ENDPOINTSLICE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    col(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    col(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

pub(crate) const INGRESS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

pub(crate) const INGRESSCLASS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

/// `loadBalancerStatusStringer` (wide, so never clipped): IPs or hostnames,
/// de-duplicated and sorted, comma-joined.
fn lb_ingress_string(ingress: &[Value]) -> String {
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|ing| {
            let ip = s(ing, "/ip");
            let host = s(ing, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn strings(v: &[Value]) -> Vec<&str> {
    v.iter().filter_map(Value::as_str).collect()
}

/// `getServiceExternalIP`.
fn service_external_ip(svc: &Value, ty: &str) -> String {
    let external_ips = strings(arr(svc, "/spec/externalIPs"));
    match ty {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = lb_ingress_string(arr(svc, "/status/loadBalancer/ingress"));
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external_ips);
                return results.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `makePortString`: `80/TCP` or `80:30080/TCP`, comma-joined.
fn service_ports(svc: &Value) -> String {
    arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = i(p, "/port");
            let proto = match s(p, "/protocol") {
                "" => "TCP",
                other => other,
            };
            let node_port = i(p, "/nodePort");
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let ty = match s(svc, "/spec/type") {
        "" => "ClusterIP",
        other => other,
    };
    // v1 -> internal conversion fills clusterIPs from clusterIP.
    let mut cluster_ip = arr(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("");
    if cluster_ip.is_empty() {
        cluster_ip = s(svc, "/spec/clusterIP");
    }
    let cluster_ip = if cluster_ip.is_empty() {
        "<none>"
    } else {
        cluster_ip
    };
    let mut ports = service_ports(svc);
    if ports.is_empty() {
        ports = "<none>".to_string();
    }
    vec![
        name_of(svc),
        Value::from(ty),
        Value::from(cluster_ip),
        Value::from(service_external_ip(svc, ty)),
        Value::from(ports),
        age_of(svc, now),
        Value::from(format_labels(svc.pointer("/spec/selector"))),
    ]
}

/// `formatEndpoints` with all ports: `ip:port` for the first three, then
/// `+ N more...`; `<none>` without subsets.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                }
                if !more {
                    list.push(s(a, "/ip").to_string());
                }
                count += 1;
            }
            continue;
        }
        for p in ports {
            let port = i(p, "/port");
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                }
                if !more {
                    list.push(join_host_port(s(a, "/ip"), port));
                }
                count += 1;
            }
        }
    }
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - MAX);
    }
    ret
}

/// Go's `net.JoinHostPort`: brackets around IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(crate) fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_of(ep),
        Value::from(format_endpoints(ep)),
        age_of(ep, now),
    ]
}

/// `formatDiscoveryPorts`: port numbers (or names, or `*`), first three.
fn format_discovery_ports(ports: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    for p in ports {
        if list.len() < MAX {
            let text = match p.get("port").and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => match p.get("name").and_then(Value::as_str) {
                    Some(name) => name.to_string(),
                    None => "*".to_string(),
                },
            };
            list.push(text);
        } else if list.len() == MAX {
            more = true;
        }
    }
    list_with_more(&list, more, ports.len(), MAX)
}

/// `formatDiscoveryEndpoints`: addresses, first three.
fn format_discovery_endpoints(endpoints: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for e in endpoints {
        for a in strings(arr(e, "/addresses")) {
            if list.len() < MAX {
                list.push(a.to_string());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

pub(crate) fn endpointslice_cells(es: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_of(es),
        Value::from(s(es, "/addressType")),
        Value::from(format_discovery_ports(arr(es, "/ports"))),
        Value::from(format_discovery_endpoints(arr(es, "/endpoints"))),
        age_of(es, now),
    ]
}

/// `formatHosts`: the first three rule hosts, `*` when none.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = s(r, "/host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", rules.len() - MAX);
    }
    ret
}

pub(crate) fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = ing
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let ports = if arr(ing, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name_of(ing),
        Value::from(class),
        Value::from(format_hosts(arr(ing, "/spec/rules"))),
        Value::from(lb_ingress_string(arr(ing, "/status/loadBalancer/ingress"))),
        Value::from(ports),
        age_of(ing, now),
    ]
}

pub(crate) fn ingressclass_cells(ic: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match ic.pointer("/spec/parameters").filter(|v| v.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let mut text = s(p, "/kind").to_string();
            if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                text = format!("{text}.{group}");
            }
            format!("{text}/{}", s(p, "/name"))
        }
    };
    vec![
        name_of(ic),
        Value::from(s(ic, "/spec/controller")),
        Value::from(parameters),
        age_of(ic, now),
    ]
}
