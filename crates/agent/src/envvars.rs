//! A container's environment as the kubelet builds it: Service link variables
//! (`<NAME>_SERVICE_HOST`, `<NAME>_PORT_80_TCP_ADDR`, ...), the container's own
//! `env` (with `$(VAR)` expansion and the downward API), and `$(VAR)` expansion
//! of command and args. Pure functions.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// The environment variables the kubelet derives from Services: those of the
/// pod's namespace when `enableServiceLinks` is true (the default), plus the
/// `kubernetes` Service of the `default` namespace for every pod. Services
/// without a ClusterIP (headless) are skipped. Sorted by Service name so the
/// result is deterministic.
pub fn service_env(
    pod_namespace: &str,
    enable_service_links: bool,
    services: &[Service],
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let ns = s.metadata.namespace.as_deref().unwrap_or("default");
        let name = s.metadata.name.as_deref().unwrap_or_default();
        if ns == "default" && name == "kubernetes" && !chosen.contains_key(name) {
            chosen.insert(name.to_string(), s);
        }
    }
    if enable_service_links {
        for s in services {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if ns == pod_namespace {
                let name = s.metadata.name.clone().unwrap_or_default();
                chosen.insert(name, s);
            }
        }
    }
    let mut out = Vec::new();
    for (name, svc) in chosen {
        let Some(spec) = &svc.spec else { continue };
        let ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() && ip != "None" => ip,
            _ => continue,
        };
        let prefix = name.to_uppercase().replace('-', "_");
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                let pn = pn.to_uppercase().replace('-', "_");
                out.push((format!("{prefix}_SERVICE_PORT_{pn}"), p.port.to_string()));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_lowercase();
            // Docker's link convention special-cases the first port.
            if i == 0 {
                out.push((
                    format!("{prefix}_PORT"),
                    format!("{lower}://{ip}:{}", p.port),
                ));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), format!("{lower}://{ip}:{}", p.port)));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an
/// undefined reference stays as written, and `$$` escapes a `$`.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('(') {
            match a.find(')') {
                Some(end) => {
                    let name = &a[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &a[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = a;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// What the downward API may reference that is only known at run time.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeFacts {
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
}

/// The full environment of one container, in order: Service variables first,
/// then the container's `env` (later entries win and may reference earlier
/// ones). Returns the variables and the names of `valueFrom` sources this
/// runtime cannot resolve (configMap/secret refs), so the caller can report them.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    services: &[Service],
    facts: RuntimeFacts,
) -> (Vec<(String, String)>, Vec<String>) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for (k, v) in service_env(ns, links, services) {
        set(&mut vars, k, v);
    }
    let mut unresolved = Vec::new();
    for e in container.env.as_deref().unwrap_or_default() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            match from
                .field_ref
                .as_ref()
                .and_then(|f| field_value(pod, &f.field_path, facts))
            {
                Some(v) => v,
                None => {
                    unresolved.push(e.name.clone());
                    continue;
                }
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    let env = order
        .into_iter()
        .filter_map(|k| vars.get(&k).map(|v| (k.clone(), v.clone())))
        .collect();
    (env, unresolved)
}

/// The downward API field paths the kubelet supports for env.
fn field_value(pod: &Pod, path: &str, facts: RuntimeFacts) -> Option<String> {
    let spec = pod.spec.as_ref();
    let m = &pod.metadata;
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => Some(m.namespace.clone().unwrap_or_else(|| "default".into())),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => Some(
            spec.and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
        ),
        "status.podIP" | "status.podIPs" => Some(facts.pod_ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(facts.host_ip.to_string()),
        _ if path.starts_with("metadata.labels['") => keyed("metadata.labels['", m.labels.as_ref()),
        _ if path.starts_with("metadata.annotations['") => {
            keyed("metadata.annotations['", m.annotations.as_ref())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(Option<&str>, i32, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: n.map(String::from),
                            port: *p,
                            protocol: Some((*proto).into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn service_links_match_the_kubelet() {
        let s = vec![svc(
            "default",
            "nginx-service-nodeport",
            "10.96.0.20",
            &[(None, 80, "TCP")],
        )];
        let env = service_env("default", true, &s);
        let want: Vec<(String, String)> = [
            ("NGINX_SERVICE_NODEPORT_SERVICE_HOST", "10.96.0.20"),
            ("NGINX_SERVICE_NODEPORT_SERVICE_PORT", "80"),
            ("NGINX_SERVICE_NODEPORT_PORT", "tcp://10.96.0.20:80"),
            ("NGINX_SERVICE_NODEPORT_PORT_80_TCP", "tcp://10.96.0.20:80"),
            ("NGINX_SERVICE_NODEPORT_PORT_80_TCP_PROTO", "tcp"),
            ("NGINX_SERVICE_NODEPORT_PORT_80_TCP_PORT", "80"),
            ("NGINX_SERVICE_NODEPORT_PORT_80_TCP_ADDR", "10.96.0.20"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    #[test]
    fn named_ports_udp_headless_and_namespaces() {
        let s = vec![
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[(Some("https"), 443, "TCP")],
            ),
            svc(
                "other",
                "dns",
                "10.96.0.10",
                &[(Some("dns-udp"), 53, "UDP"), (Some("dns-tcp"), 53, "TCP")],
            ),
            svc("other", "headless", "None", &[(None, 80, "TCP")]),
            svc("default", "elsewhere", "10.96.0.9", &[(None, 80, "TCP")]),
        ];
        let env = service_env("other", true, &s);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "DNS_SERVICE_PORT_DNS_UDP"), Some("53"));
        assert_eq!(get(&env, "DNS_PORT"), Some("udp://10.96.0.10:53"));
        assert_eq!(get(&env, "DNS_PORT_53_TCP_PROTO"), Some("tcp"));
        assert_eq!(get(&env, "HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get(&env, "ELSEWHERE_SERVICE_HOST"), None);
        // enableServiceLinks: false keeps only the master Service.
        let env = service_env("other", false, &s);
        assert_eq!(get(&env, "DNS_SERVICE_HOST"), None);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let mut v = BTreeMap::new();
        v.insert("A".to_string(), "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$-$(", &v), "x-$(B)-$(A)-$-$(");
        assert_eq!(expand("plain", &v), "plain");
    }

    #[test]
    fn container_env_resolves_values_and_downward_api() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}
        }))
        .unwrap();
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                EnvVar { name: "API_URL".into(), value: Some("http://$(MY_SERVICE_HOST)".into()), ..Default::default() },
                EnvVar {
                    name: "POD_IP".into(),
                    value_from: Some(serde_json::from_value(serde_json::json!({"fieldRef": {"fieldPath": "status.podIP"}})).unwrap()),
                    ..Default::default()
                },
                EnvVar {
                    name: "APP".into(),
                    value_from: Some(
                        serde_json::from_value(serde_json::json!({"fieldRef": {"fieldPath": "metadata.labels['app']"}})).unwrap(),
                    ),
                    ..Default::default()
                },
                EnvVar {
                    name: "SECRET".into(),
                    value_from: Some(
                        serde_json::from_value(serde_json::json!({"secretKeyRef": {"name": "s", "key": "k"}})).unwrap(),
                    ),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let s = vec![svc("default", "my", "10.96.0.5", &[(None, 80, "TCP")])];
        let facts = RuntimeFacts {
            pod_ip: Ipv4Addr::new(10, 244, 0, 3),
            host_ip: Ipv4Addr::new(192, 168, 1, 2),
        };
        let (env, unresolved) = container_env(&pod, &c, &s, facts);
        assert_eq!(get(&env, "API_URL"), Some("http://10.96.0.5"));
        assert_eq!(get(&env, "POD_IP"), Some("10.244.0.3"));
        assert_eq!(get(&env, "APP"), Some("web"));
        assert_eq!(unresolved, vec!["SECRET".to_string()]);
    }
}
