//! Builders of Services and EndpointSlices shared by the integration tests.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use portico_proxy::cache::Cache;
use portico_proxy::model::service_ports;
use portico_proxy::plan::{plan_service, Base, ServicePlan};
use serde_json::{json, Value};

pub fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"namespace": "default", "name": name}, "spec": spec}),
    )
    .unwrap()
}

pub fn with_lb_ip(mut s: Service, ip: &str) -> Service {
    s.status =
        Some(serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": ip}]}})).unwrap());
    s
}

/// An EndpointSlice for `svc` with `(ip, node, ready)` endpoints and `(name, port, proto)` ports.
pub fn slice(svc: &str, eps: &[(&str, &str, bool)], ports: &[(&str, u16, &str)]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, node, ready)| {
            json!({"addresses": [ip], "nodeName": node,
                   "conditions": {"ready": ready, "serving": ready, "terminating": !ready}})
        })
        .collect();
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{svc}-abcde"),
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports
    }))
    .unwrap()
}

pub fn base() -> Base {
    Base {
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        nodeport_addresses: vec![],
        shards: portico_proxy::plan::DEFAULT_SHARDS,
        masquerade_fully_random: false,
    }
}

/// Plans from the typed objects, and checks that the watch cache, which keeps
/// only compact views of them, plans the same (every test shape goes through both).
pub fn plan(svc: &Service, slices: &[EndpointSlice], node: &str, base: &Base) -> ServicePlan {
    let refs: Vec<&EndpointSlice> = slices.iter().collect();
    let typed = plan_service(&service_ports(svc, &refs, node), base);
    let mut cache = Cache::new(node);
    cache.service_event(Event::Apply(svc.clone()));
    for s in slices {
        cache.slice_event(Event::Apply(s.clone()));
    }
    let key = format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or("")
    );
    assert_eq!(cache.plan(&key, base).unwrap_or_default(), typed);
    typed
}
