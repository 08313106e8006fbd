//! Pure computation of the legacy core/v1 Endpoints object of a Service (what Kubernetes'
//! endpoints controller writes), so `kubectl get endpoints` lists `IP:port` pairs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ports::{port_protocol, PodEndpoint};
use super::slices::LABEL_HEADLESS;

/// The Endpoints object `svc` should have, given its pods' endpoints (computed with
/// `include_terminating = publishNotReadyAddresses`, as the endpoints controller does).
pub fn desired_endpoints(svc: &Service, pods: &[PodEndpoint]) -> Endpoints {
    let spec = svc.spec.clone().unwrap_or_default();
    let svc_ports = spec.ports.clone().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    // address (ip) -> (address, ready, ports)
    let mut by_addr: BTreeMap<(String, String), (EndpointAddress, bool, Vec<EndpointPort>)> =
        BTreeMap::new();
    for pe in pods {
        let addr = EndpointAddress {
            ip: pe.ip.clone(),
            hostname: pe.hostname.clone(),
            node_name: pe.node_name.clone(),
            target_ref: Some(pe.target_ref.clone()),
        };
        let ports: Vec<EndpointPort> = pe
            .ports
            .iter()
            .filter_map(|(i, n)| {
                let p = svc_ports.get(*i)?;
                Some(EndpointPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    port: *n,
                    protocol: Some(port_protocol(p)),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        // A pod resolving none of the ports contributes nothing, except to a headless
        // Service without ports (DNS still needs the address).
        if ports.is_empty() && !(headless && svc_ports.is_empty()) {
            continue;
        }
        by_addr.insert(
            (pe.ip.clone(), pe.pod_name.clone()),
            (addr, pe.ready, ports),
        );
    }
    // Repack: addresses sharing a port set form one subset (Kubernetes' RepackSubsets).
    let mut subsets: BTreeMap<String, EndpointSubset> = BTreeMap::new();
    for (_, (addr, ready, mut ports)) in by_addr {
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = ports
            .iter()
            .map(|p| format!("{:?}/{}/{:?}", p.name, p.port, p.protocol))
            .collect::<Vec<_>>()
            .join(",");
        let subset = subsets.entry(key).or_insert_with(|| EndpointSubset {
            ports: if ports.is_empty() { None } else { Some(ports) },
            ..Default::default()
        });
        let list = if ready {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(addr);
    }
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if headless {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: if labels.is_empty() {
                None
            } else {
                Some(labels)
            },
            ..Default::default()
        },
        subsets: Some(subsets.into_values().collect()),
    }
}

/// Whether the stored Endpoints already says what `desired` says (ignoring server metadata).
pub fn endpoints_equal(current: &Endpoints, desired: &Endpoints) -> bool {
    let norm = |e: &Endpoints| e.subsets.clone().unwrap_or_default();
    norm(current) == norm(desired)
        && current.metadata.labels.clone().unwrap_or_default()
            == desired.metadata.labels.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::ports::pod_endpoint;
    use super::super::ports::tests::{pod, sport, svc};
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// What `kubectl get endpoints` prints in its ENDPOINTS column.
    fn kubectl_column(e: &Endpoints) -> String {
        let mut out = Vec::new();
        for s in e.subsets.iter().flatten() {
            for p in s.ports.iter().flatten() {
                for a in s.addresses.iter().flatten() {
                    out.push(format!("{}:{}", a.ip, p.port));
                }
            }
        }
        out.join(",")
    }

    #[test]
    fn ready_pods_list_ip_port_pairs() {
        let s = svc(
            "nginx-service-nodeport",
            vec![sport("", 80, IntOrString::Int(80))],
        );
        let pods = [
            pod("b", Some("10.244.1.6"), true, &[]),
            pod("a", Some("10.244.1.5"), true, &[]),
            pod("c", Some("10.244.1.7"), false, &[]),
        ];
        let pes: Vec<_> = pods
            .iter()
            .filter_map(|p| pod_endpoint(&s, p, false))
            .collect();
        let e = desired_endpoints(&s, &pes);
        assert_eq!(kubectl_column(&e), "10.244.1.5:80,10.244.1.6:80");
        let subset = &e.subsets.as_ref().unwrap()[0];
        assert_eq!(
            subset.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.244.1.7"
        );
        assert!(endpoints_equal(&e, &desired_endpoints(&s, &pes)));
    }
}
