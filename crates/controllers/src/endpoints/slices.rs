//! Pure EndpointSlice reconciliation: from a Service, its pods' endpoints and the slices that
//! exist now, the slices to create, update and delete, with minimal churn (an endpoint stays
//! in the slice it is in; only slices whose content changes are written).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ports::{port_protocol, PodEndpoint};
use crate::util;

/// Most endpoints in one slice (the kube-controller-manager default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the slice's manager.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Our manager value: the same as Kubernetes' controller, so tools recognise the slices.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Label set on slices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// Writes needed to bring a Service's slices to the desired state.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlicePlan {
    /// New slices (names already chosen).
    pub create: Vec<EndpointSlice>,
    /// Changed slices (carrying the resourceVersion they were read at).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl SlicePlan {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Labels every slice of `svc` carries: the Service's own labels plus ours.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(LABEL_MANAGED_BY);
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let headless = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None");
    if headless {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

/// The slice ports for a set of resolved (service port index, number) pairs.
fn slice_ports(svc: &Service, resolved: &[(usize, i32)]) -> Vec<EndpointPort> {
    let ports: Vec<_> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    resolved
        .iter()
        .filter_map(|(i, n)| {
            let p = ports.get(*i)?;
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(*n),
                protocol: Some(port_protocol(p)),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

fn to_endpoint(pe: &PodEndpoint) -> Endpoint {
    Endpoint {
        addresses: vec![pe.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(pe.ready),
            serving: Some(pe.serving),
            terminating: Some(pe.terminating),
        }),
        hostname: pe.hostname.clone(),
        node_name: pe.node_name.clone(),
        target_ref: Some(pe.target_ref.clone()),
        ..Default::default()
    }
}

/// Identity of an endpoint inside a slice: the pod it points at, else its address.
fn endpoint_id(ep: &Endpoint) -> String {
    ep.target_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .unwrap_or_else(|| ep.addresses.join(","))
}

/// Comparable form of a port list (order-insensitive).
fn ports_key(ports: &[EndpointPort]) -> String {
    let mut v: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.app_protocol.as_deref().unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    v.join(",")
}

/// A fresh slice for `svc` (name chosen like generateName would).
fn new_slice(svc: &Service, ports: &[EndpointPort], endpoints: Vec<Endpoint>) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    // generateName prefixes are cut so the full name stays within 63 characters.
    let prefix: String = format!("{name}-").chars().take(57).collect();
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}{}", util::random_suffix())),
            generate_name: Some(prefix),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![util::controller_owner_ref(svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports.to_vec()),
    }
}

/// Computes the writes that bring `existing` (this Service's managed slices) to the
/// endpoints in `pods`.
pub fn plan_slices(svc: &Service, pods: &[PodEndpoint], existing: &[EndpointSlice]) -> SlicePlan {
    let labels = slice_labels(svc);
    let owner = util::controller_owner_ref(svc);
    // Desired endpoints grouped by their resolved port set.
    let mut desired: BTreeMap<String, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> =
        BTreeMap::new();
    for pe in pods {
        let ports = slice_ports(svc, &pe.ports);
        let key = ports_key(&ports);
        let entry = desired
            .entry(key)
            .or_insert_with(|| (ports, BTreeMap::new()));
        entry.1.insert(pe.pod_name.clone(), to_endpoint(pe));
    }

    let mut plan = SlicePlan::default();
    let total: usize = desired.values().map(|(_, eps)| eps.len()).sum();
    if total == 0 {
        return plan_placeholder(svc, existing, &labels);
    }

    // Only IPv4 slices are ours to manage here; others (if any) are left as they are.
    let existing: Vec<&EndpointSlice> = existing
        .iter()
        .filter(|s| s.address_type == "IPv4")
        .collect();
    let mut used: HashSet<String> = HashSet::new();
    for (key, (ports, mut want)) in desired {
        // Pass 1: keep endpoints where they are; drop the ones that went away.
        let mut touched: Vec<EndpointSlice> = Vec::new();
        let mut untouched: Vec<EndpointSlice> = Vec::new();
        let mut emptied: Vec<EndpointSlice> = Vec::new();
        for slice in existing
            .iter()
            .filter(|s| ports_key(s.ports.as_deref().unwrap_or_default()) == key)
        {
            let name = slice.metadata.name.clone().unwrap_or_default();
            used.insert(name);
            let mut changed = !meta_matches(slice, &labels, &owner);
            let mut eps = Vec::with_capacity(slice.endpoints.len());
            for ep in &slice.endpoints {
                match want.remove(&endpoint_id(ep)) {
                    Some(d) => {
                        changed |= d != *ep;
                        eps.push(d);
                    }
                    None => changed = true,
                }
            }
            let mut next = (*slice).clone();
            next.endpoints = eps;
            set_meta(&mut next, &labels, &owner);
            if next.endpoints.is_empty() {
                emptied.push(next);
            } else if changed {
                touched.push(next);
            } else {
                untouched.push(next);
            }
        }
        // Pass 2: place new endpoints, preferring slices that are written anyway, then
        // emptied slices (reused rather than deleted), then new slices.
        let mut new_eps: Vec<Endpoint> = std::mem::take(&mut want).into_values().collect();
        for s in touched.iter_mut() {
            fill(s, &mut new_eps);
        }
        for mut s in emptied {
            if new_eps.is_empty() {
                plan.delete
                    .push(s.metadata.name.clone().unwrap_or_default());
            } else {
                fill(&mut s, &mut new_eps);
                touched.push(s);
            }
        }
        // Fill an untouched slice with room only if that avoids creating a new slice.
        if !new_eps.is_empty() {
            if let Some(pos) = untouched
                .iter()
                .position(|s| s.endpoints.len() + new_eps.len() <= MAX_ENDPOINTS_PER_SLICE)
            {
                let mut s = untouched.swap_remove(pos);
                fill(&mut s, &mut new_eps);
                touched.push(s);
            }
        }
        while !new_eps.is_empty() {
            let rest = new_eps.split_off(new_eps.len().min(MAX_ENDPOINTS_PER_SLICE));
            let chunk = std::mem::replace(&mut new_eps, rest);
            plan.create.push(new_slice(svc, &ports, chunk));
        }
        plan.update.extend(touched);
    }
    // Slices whose port set is no longer wanted at all.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        if !used.contains(&name) {
            plan.delete.push(name);
        }
    }
    plan
}

fn fill(slice: &mut EndpointSlice, new_eps: &mut Vec<Endpoint>) {
    let room = MAX_ENDPOINTS_PER_SLICE.saturating_sub(slice.endpoints.len());
    let take = room.min(new_eps.len());
    slice.endpoints.extend(new_eps.drain(..take));
}

fn meta_matches(
    slice: &EndpointSlice,
    labels: &BTreeMap<String, String>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> bool {
    slice.metadata.labels.as_ref() == Some(labels)
        && slice
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.uid == owner.uid))
}

fn set_meta(
    slice: &mut EndpointSlice,
    labels: &BTreeMap<String, String>,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) {
    slice.metadata.labels = Some(labels.clone());
    let refs = slice.metadata.owner_references.get_or_insert_with(Vec::new);
    if !refs.iter().any(|r| r.uid == owner.uid) {
        refs.retain(|r| r.controller != Some(true));
        refs.push(owner.clone());
    }
}

/// With no endpoints Kubernetes keeps exactly one empty "placeholder" slice.
fn plan_placeholder(
    svc: &Service,
    existing: &[EndpointSlice],
    labels: &BTreeMap<String, String>,
) -> SlicePlan {
    let owner = util::controller_owner_ref(svc);
    let mut plan = SlicePlan::default();
    let is_placeholder = |s: &EndpointSlice| {
        s.endpoints.is_empty() && s.ports.as_deref().unwrap_or_default().is_empty()
    };
    let keep = existing
        .iter()
        .position(&is_placeholder)
        .or(if existing.is_empty() { None } else { Some(0) });
    match keep {
        None => plan.create.push(new_slice(svc, &[], Vec::new())),
        Some(i) => {
            let s = &existing[i];
            if !is_placeholder(s) || !meta_matches(s, labels, &owner) {
                let mut next = s.clone();
                next.endpoints = Vec::new();
                next.ports = Some(Vec::new());
                set_meta(&mut next, labels, &owner);
                plan.update.push(next);
            }
        }
    }
    for (i, s) in existing.iter().enumerate() {
        if Some(i) != keep {
            plan.delete
                .push(s.metadata.name.clone().unwrap_or_default());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::ports::pod_endpoint;
    use super::super::ports::tests::{pod, sport, svc};
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn eps(s: &Service, pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<PodEndpoint> {
        pods.iter()
            .filter_map(|p| pod_endpoint(s, p, true))
            .collect()
    }

    /// Applies a plan to a list of slices as the API server would.
    fn apply(mut slices: Vec<EndpointSlice>, plan: SlicePlan) -> Vec<EndpointSlice> {
        slices.retain(|s| !plan.delete.contains(s.metadata.name.as_ref().unwrap()));
        for u in plan.update {
            let i = slices
                .iter()
                .position(|s| s.metadata.name == u.metadata.name)
                .unwrap();
            slices[i] = u;
        }
        slices.extend(plan.create);
        slices
    }

    #[test]
    fn two_ready_pods_make_one_slice_with_port_80() {
        let s = svc("nginx", vec![sport("", 80, IntOrString::Int(80))]);
        let pods = [
            pod("a", Some("10.244.1.5"), true, &[]),
            pod("b", Some("10.244.1.6"), true, &[]),
        ];
        let plan = plan_slices(&s, &eps(&s, &pods), &[]);
        assert_eq!(plan.create.len(), 1);
        let slice = &plan.create[0];
        assert!(slice.metadata.name.as_ref().unwrap().starts_with("nginx-"));
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "nginx");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(slice.address_type, "IPv4");
        let addrs: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| e.addresses[0].as_str())
            .collect();
        assert_eq!(addrs, ["10.244.1.5", "10.244.1.6"]);
        assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(80));
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Service", Some(true))
        );
        // Applying the plan converges: nothing more to do.
        let slices = apply(vec![], plan);
        assert!(plan_slices(&s, &eps(&s, &pods), &slices).is_empty());
    }

    #[test]
    fn one_pod_change_rewrites_one_slice() {
        let s = svc("big", vec![sport("", 80, IntOrString::Int(80))]);
        let mut pods: Vec<_> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    Some(&format!("10.244.{}.{}", i / 200, i % 200 + 1)),
                    true,
                    &[],
                )
            })
            .collect();
        let slices = apply(vec![], plan_slices(&s, &eps(&s, &pods), &[]));
        assert_eq!(slices.len(), 3);
        assert!(slices
            .iter()
            .all(|s| s.endpoints.len() <= MAX_ENDPOINTS_PER_SLICE));
        // p007 turns unready.
        pods[7] = pod("p007", Some("10.244.0.8"), false, &[]);
        let plan = plan_slices(&s, &eps(&s, &pods), &slices);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0)
        );
        let ep = plan.update[0]
            .endpoints
            .iter()
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("p007"))
            .unwrap();
        assert_eq!(ep.conditions.as_ref().unwrap().ready, Some(false));
        // A new pod lands in an existing slice with room rather than a new slice.
        let slices = apply(slices, plan);
        pods.push(pod("new", Some("10.244.9.9"), true, &[]));
        let plan = plan_slices(&s, &eps(&s, &pods), &slices);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0)
        );
    }

    #[test]
    fn pods_without_the_named_port_get_their_own_slice_ports() {
        let s = svc(
            "multi",
            vec![
                sport("http", 80, IntOrString::String("web".into())),
                sport("metrics", 9090, IntOrString::Int(9090)),
            ],
        );
        let pods = [
            pod("a", Some("10.244.1.5"), true, &[("web", 8080)]),
            pod("b", Some("10.244.1.6"), true, &[]),
        ];
        let plan = plan_slices(&s, &eps(&s, &pods), &[]);
        assert_eq!(plan.create.len(), 2);
        let with_http = plan
            .create
            .iter()
            .find(|sl| sl.ports.as_ref().unwrap().len() == 2)
            .unwrap();
        assert_eq!(with_http.endpoints.len(), 1);
        assert_eq!(with_http.endpoints[0].addresses, ["10.244.1.5"]);
        let ports: Vec<_> = with_http
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port.unwrap())
            .collect();
        assert!(ports.contains(&8080) && ports.contains(&9090));
    }

    #[test]
    fn no_endpoints_keeps_one_placeholder() {
        let s = svc("empty", vec![sport("", 80, IntOrString::Int(80))]);
        let plan = plan_slices(&s, &[], &[]);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.create[0].endpoints.is_empty());
        let slices = apply(vec![], plan);
        assert!(plan_slices(&s, &[], &slices).is_empty());
        // Pods appear: the placeholder is reused.
        let pods = [pod("a", Some("10.244.1.5"), true, &[])];
        let plan = plan_slices(&s, &eps(&s, &pods), &slices);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.delete.len(), 1);
    }
}
