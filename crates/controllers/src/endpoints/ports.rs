//! Per-pod endpoint computation shared by EndpointSlices and legacy Endpoints: which pods
//! count, their conditions, and Service port resolution (named targetPorts, `FindPort`).

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::util;

/// One pod's view as an endpoint of a Service.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEndpoint {
    /// Pod name (stable identity inside a namespace).
    pub pod_name: String,
    /// The pod's IPv4 address.
    pub ip: String,
    /// `ready` condition (publishNotReadyAddresses forces true).
    pub ready: bool,
    /// `serving` condition.
    pub serving: bool,
    /// `terminating` condition (deletionTimestamp set).
    pub terminating: bool,
    /// Node the pod runs on.
    pub node_name: Option<String>,
    /// Hostname when the pod's `subdomain` names this Service.
    pub hostname: Option<String>,
    /// Reference to the pod.
    pub target_ref: ObjectReference,
    /// Resolved ports: (service port index, container port number).
    pub ports: Vec<(usize, i32)>,
}

/// The protocol of a Service port, defaulted as the API server does.
pub fn port_protocol(p: &ServicePort) -> String {
    p.protocol.clone().unwrap_or_else(|| "TCP".to_string())
}

/// Resolves a Service port's targetPort for one pod (Kubernetes `FindPort`): a number is
/// used as is; a name must match a container port with the same name and protocol.
pub fn find_port(pod: &Pod, svc_port: &ServicePort) -> Option<i32> {
    match &svc_port.target_port {
        None => Some(svc_port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            // A numeric string is a number (the API accepts "8080" as targetPort).
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let proto = port_protocol(svc_port);
            let spec = pod.spec.as_ref()?;
            // Sidecar init containers (restartPolicy Always) serve ports too.
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|cp| cp.container_port)
        }
    }
}

/// The pod's IPv4 address, if it has one.
fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let mut candidates = status.pod_ip.iter().cloned().collect::<Vec<_>>();
    candidates.extend(status.pod_ips.iter().flatten().map(|p| p.ip.clone()));
    candidates
        .into_iter()
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
}

/// The endpoint a pod contributes to `svc`, or `None` when it contributes none (no IP yet,
/// terminal phase, or terminating while `include_terminating` is false).
pub fn pod_endpoint(svc: &Service, pod: &Pod, include_terminating: bool) -> Option<PodEndpoint> {
    if util::is_terminal(pod) {
        return None;
    }
    let ip = pod_ipv4(pod)?;
    let terminating = util::is_terminating(&pod.metadata);
    if terminating && !include_terminating {
        return None;
    }
    let spec = svc.spec.as_ref()?;
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let pod_ready = util::is_pod_ready(pod);
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let pod_spec = pod.spec.as_ref();
    let hostname = pod_spec.and_then(|s| match (&s.hostname, &s.subdomain) {
        (Some(h), Some(sub)) if !h.is_empty() && *sub == svc_name => Some(h.clone()),
        _ => None,
    });
    let ports = spec
        .ports
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, p)| find_port(pod, p).map(|n| (i, n)))
        .collect();
    Some(PodEndpoint {
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        ip,
        ready: publish_not_ready || (pod_ready && !terminating),
        serving: publish_not_ready || pod_ready,
        terminating,
        node_name: pod_spec.and_then(|s| s.node_name.clone()),
        hostname,
        target_ref: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        ports,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };
    use std::collections::BTreeMap;

    pub fn svc(name: &str, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ports: Some(ports),
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn sport(name: &str, port: i32, target: IntOrString) -> ServicePort {
        ServicePort {
            name: Some(name.into()).filter(|n: &String| !n.is_empty()),
            port,
            target_port: Some(target),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    pub fn pod(name: &str, ip: Option<&str>, ready: bool, ports: &[(&str, i32)]) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p)| ContainerPort {
                                name: Some(n.to_string()),
                                container_port: *p,
                                protocol: Some("TCP".into()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: ip.map(str::to_string),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn named_target_port_resolves_per_pod() {
        let p = sport("http", 80, IntOrString::String("web".into()));
        assert_eq!(
            find_port(&pod("a", None, true, &[("web", 8080)]), &p),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod("b", None, true, &[("other", 9090)]), &p),
            None
        );
        let udp = ServicePort {
            protocol: Some("UDP".into()),
            ..p.clone()
        };
        // Same name but the wrong protocol does not match.
        assert_eq!(
            find_port(&pod("a", None, true, &[("web", 8080)]), &udp),
            None
        );
        let num = sport("", 80, IntOrString::Int(8081));
        assert_eq!(find_port(&pod("c", None, true, &[]), &num), Some(8081));
    }

    #[test]
    fn pod_conditions_follow_readiness_and_termination() {
        let s = svc("web", vec![sport("", 80, IntOrString::Int(80))]);
        let ep = pod_endpoint(&s, &pod("a", Some("10.244.1.5"), true, &[]), true).unwrap();
        assert!(ep.ready && ep.serving && !ep.terminating);
        assert!(pod_endpoint(&s, &pod("a", None, true, &[]), true).is_none());
        let mut t = pod("a", Some("10.244.1.5"), true, &[]);
        t.metadata.deletion_timestamp = Some(util::now_time());
        let ep = pod_endpoint(&s, &t, true).unwrap();
        assert!(!ep.ready && ep.serving && ep.terminating);
        assert!(pod_endpoint(&s, &t, false).is_none());
        let mut pnr = s.clone();
        pnr.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let ep = pod_endpoint(&pnr, &pod("a", Some("10.244.1.5"), false, &[]), true).unwrap();
        assert!(ep.ready && ep.serving);
    }
}
