//! In-memory view of Services and EndpointSlices fed by watch events, which
//! reports the Services each event touches (pure: no IO).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

use crate::model::{service_ports, SERVICE_NAME_LABEL};
use crate::plan::{plan_service, Base, ServicePlan};

/// Services and slices, indexed by `namespace/name` of the Service.
#[derive(Debug, Default)]
pub struct Cache {
    services: BTreeMap<String, Service>,
    /// Service key → slice name → slice.
    slices: BTreeMap<String, BTreeMap<String, EndpointSlice>>,
    svc_init: Option<BTreeMap<String, Service>>,
    slice_init: Option<BTreeMap<String, BTreeMap<String, EndpointSlice>>>,
    svc_synced: bool,
    slices_synced: bool,
}

/// Drops what the proxy never reads (managed fields dominate object size).
fn slim_svc(mut s: Service) -> Service {
    s.metadata.managed_fields = None;
    s.metadata.annotations = None;
    s
}

fn slim_slice(mut s: EndpointSlice) -> EndpointSlice {
    s.metadata.managed_fields = None;
    s.metadata.annotations = None;
    for ep in &mut s.endpoints {
        ep.target_ref = None;
        ep.hints = None;
        ep.deprecated_topology = None;
    }
    s
}

fn svc_key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or("")
    )
}

fn slice_owner(slice: &EndpointSlice) -> Option<String> {
    let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{}",
        slice.metadata.namespace.as_deref().unwrap_or(""),
        svc
    ))
}

fn slice_name(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

impl Cache {
    /// Whether both initial lists have completed (syncing earlier would
    /// program Services without their endpoints, i.e. reject them).
    pub fn ready(&self) -> bool {
        self.svc_synced && self.slices_synced
    }

    /// Applies a Service event; returns the Service keys it touched.
    pub fn service_event(&mut self, ev: Event<Service>) -> BTreeSet<String> {
        let mut dirty = BTreeSet::new();
        match ev {
            Event::Apply(s) => {
                let k = svc_key(&s);
                self.services.insert(k.clone(), slim_svc(s));
                dirty.insert(k);
            }
            Event::Delete(s) => {
                let k = svc_key(&s);
                self.services.remove(&k);
                dirty.insert(k);
            }
            Event::Init => self.svc_init = Some(BTreeMap::new()),
            Event::InitApply(s) => {
                self.svc_init
                    .get_or_insert_with(BTreeMap::new)
                    .insert(svc_key(&s), slim_svc(s));
            }
            Event::InitDone => {
                let new = self.svc_init.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.services, new);
                dirty.extend(old.into_keys());
                dirty.extend(self.services.keys().cloned());
                self.svc_synced = true;
            }
        }
        dirty
    }

    /// Applies an EndpointSlice event; returns the Service keys it touched.
    pub fn slice_event(&mut self, ev: Event<EndpointSlice>) -> BTreeSet<String> {
        let mut dirty = BTreeSet::new();
        match ev {
            Event::Apply(s) => {
                if let Some(k) = slice_owner(&s) {
                    self.slices
                        .entry(k.clone())
                        .or_default()
                        .insert(slice_name(&s), slim_slice(s));
                    dirty.insert(k);
                }
            }
            Event::Delete(s) => {
                if let Some(k) = slice_owner(&s) {
                    if let Some(m) = self.slices.get_mut(&k) {
                        m.remove(&slice_name(&s));
                        if m.is_empty() {
                            self.slices.remove(&k);
                        }
                    }
                    dirty.insert(k);
                }
            }
            Event::Init => self.slice_init = Some(BTreeMap::new()),
            Event::InitApply(s) => {
                if let Some(k) = slice_owner(&s) {
                    self.slice_init
                        .get_or_insert_with(BTreeMap::new)
                        .entry(k)
                        .or_default()
                        .insert(slice_name(&s), slim_slice(s));
                }
            }
            Event::InitDone => {
                let new = self.slice_init.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.slices, new);
                dirty.extend(old.into_keys());
                dirty.extend(self.slices.keys().cloned());
                self.slices_synced = true;
            }
        }
        dirty
    }

    /// Plans one Service (an empty plan when it is gone or not proxied).
    pub fn plan(&self, key: &str, node_name: &str, base: &Base) -> Option<ServicePlan> {
        let svc = self.services.get(key)?;
        let slices: Vec<&EndpointSlice> = self
            .slices
            .get(key)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        let ports = service_ports(svc, &slices, node_name);
        if ports.is_empty() {
            return None;
        }
        Some(plan_service(&ports, base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    fn slice(name: &str, svc: &str) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": name, "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.10"]}],
            "ports": [{"port": 8080, "protocol": "TCP", "name": ""}]
        }))
        .unwrap()
    }

    #[test]
    fn not_ready_until_both_lists_are_done() {
        let mut c = Cache::default();
        c.service_event(Event::Init);
        c.service_event(Event::InitApply(svc("a")));
        assert!(c.service_event(Event::InitDone).contains("default/a"));
        assert!(!c.ready());
        c.slice_event(Event::Init);
        c.slice_event(Event::InitDone);
        assert!(c.ready());
    }

    #[test]
    fn slice_events_touch_their_service_and_relist_drops_vanished_ones() {
        let mut c = Cache::default();
        c.service_event(Event::Apply(svc("a")));
        let dirty = c.slice_event(Event::Apply(slice("a-1", "a")));
        assert_eq!(
            dirty.into_iter().collect::<Vec<_>>(),
            vec!["default/a".to_string()]
        );
        let plan = c.plan(
            "default/a",
            "n1",
            &Base {
                cluster_cidr: "10.244.0.0/16".parse().unwrap(),
                nodeport_addresses: vec![],
                shards: 1,
                masquerade_fully_random: false,
            },
        );
        assert!(plan
            .unwrap()
            .chains
            .values()
            .flatten()
            .any(|r| r.to_string().contains("dnat to 10.244.0.10:8080")));
        // A relist without the slice reports the Service as touched and forgets the slice.
        c.slice_event(Event::Init);
        let dirty = c.slice_event(Event::InitDone);
        assert!(dirty.contains("default/a"));
        let plan = c.plan(
            "default/a",
            "n1",
            &Base {
                cluster_cidr: "10.244.0.0/16".parse().unwrap(),
                nodeport_addresses: vec![],
                shards: 1,
                masquerade_fully_random: false,
            },
        );
        assert!(plan
            .unwrap()
            .elements
            .keys()
            .any(|(m, _)| *m == crate::plan::Map::NoEndpointServices));
    }
}
