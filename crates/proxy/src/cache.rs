//! In-memory view of Services and EndpointSlices fed by watch events, which
//! reports the Services each event touches (pure: no IO). Objects are kept
//! as compact [`crate::view`]s, converted on arrival: the cache holds every
//! Service and slice of the cluster, so their size is the agent's size.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

use crate::model::SERVICE_NAME_LABEL;
use crate::plan::{plan_service, Base, ServicePlan};
use crate::view::{SliceView, SvcView};

/// A Service's slices by name, sorted (one or two per Service: a vector is
/// far smaller than a map's node).
type Slices = Vec<(Box<str>, SliceView)>;

/// Services and slices, indexed by `namespace/name` of the Service.
#[derive(Debug)]
pub struct Cache {
    /// This node: endpoint locality is resolved when a slice arrives.
    node_name: Box<str>,
    /// One entry per key with a Service, slices, or both (one map, so the
    /// key is stored once).
    entries: BTreeMap<Box<str>, Entry>,
    svc_init: Option<BTreeMap<Box<str>, SvcView>>,
    slice_init: Option<BTreeMap<Box<str>, Slices>>,
    svc_synced: bool,
    slices_synced: bool,
}

#[derive(Debug, Default)]
struct Entry {
    svc: Option<SvcView>,
    slices: Slices,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.svc.is_none() && self.slices.is_empty()
    }
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

fn slice_name(slice: &EndpointSlice) -> &str {
    slice.metadata.name.as_deref().unwrap_or("")
}

/// Inserts or replaces slice `name`, keeping the list sorted.
fn put_slice(slices: &mut Slices, name: &str, view: SliceView) {
    match slices.binary_search_by(|(n, _)| (**n).cmp(name)) {
        Ok(i) => {
            if let Some(s) = slices.get_mut(i) {
                s.1 = view;
            }
        }
        Err(i) => slices.insert(i, (name.into(), view)),
    }
}

impl Cache {
    /// An empty cache for the proxy of node `node_name`.
    pub fn new(node_name: &str) -> Cache {
        Cache {
            node_name: node_name.into(),
            entries: BTreeMap::new(),
            svc_init: None,
            slice_init: None,
            svc_synced: false,
            slices_synced: false,
        }
    }

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
                self.entries.entry(k.as_str().into()).or_default().svc = Some(SvcView::new(&s));
                dirty.insert(k);
            }
            Event::Delete(s) => {
                let k = svc_key(&s);
                if let Some(e) = self.entries.get_mut(k.as_str()) {
                    e.svc = None;
                    if e.is_empty() {
                        self.entries.remove(k.as_str());
                    }
                }
                dirty.insert(k);
            }
            Event::Init => self.svc_init = Some(BTreeMap::new()),
            Event::InitApply(s) => {
                self.svc_init
                    .get_or_insert_with(BTreeMap::new)
                    .insert(svc_key(&s).into(), SvcView::new(&s));
            }
            Event::InitDone => {
                let new = self.svc_init.take().unwrap_or_default();
                // Every Service of the old list and of the new one is touched.
                for (k, e) in &mut self.entries {
                    if e.svc.take().is_some() {
                        dirty.insert(k.to_string());
                    }
                }
                for (k, v) in new {
                    dirty.insert(k.to_string());
                    self.entries.entry(k).or_default().svc = Some(v);
                }
                self.entries.retain(|_, e| !e.is_empty());
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
                    let view = SliceView::new(&s, &self.node_name);
                    let e = self.entries.entry(k.as_str().into()).or_default();
                    put_slice(&mut e.slices, slice_name(&s), view);
                    dirty.insert(k);
                }
            }
            Event::Delete(s) => {
                if let Some(k) = slice_owner(&s) {
                    if let Some(e) = self.entries.get_mut(k.as_str()) {
                        e.slices.retain(|(n, _)| **n != *slice_name(&s));
                        if e.is_empty() {
                            self.entries.remove(k.as_str());
                        }
                    }
                    dirty.insert(k);
                }
            }
            Event::Init => self.slice_init = Some(BTreeMap::new()),
            Event::InitApply(s) => {
                if let Some(k) = slice_owner(&s) {
                    let view = SliceView::new(&s, &self.node_name);
                    let slices = self
                        .slice_init
                        .get_or_insert_with(BTreeMap::new)
                        .entry(k.into())
                        .or_default();
                    put_slice(slices, slice_name(&s), view);
                }
            }
            Event::InitDone => {
                let new = self.slice_init.take().unwrap_or_default();
                // Every Service with slices in the old list or the new one is touched.
                for (k, e) in &mut self.entries {
                    if !e.slices.is_empty() {
                        e.slices = Vec::new();
                        dirty.insert(k.to_string());
                    }
                }
                for (k, mut v) in new {
                    dirty.insert(k.to_string());
                    v.shrink_to_fit();
                    self.entries.entry(k).or_default().slices = v;
                }
                self.entries.retain(|_, e| !e.is_empty());
                self.slices_synced = true;
            }
        }
        dirty
    }

    /// Plans one Service (`None` when it is gone or not proxied).
    pub fn plan(&self, key: &str, base: &Base) -> Option<ServicePlan> {
        let e = self.entries.get(key)?;
        let svc = e.svc.as_ref()?;
        let slices: Vec<&SliceView> = e.slices.iter().map(|(_, s)| s).collect();
        // Keys are `namespace/name`, and neither part may contain a slash.
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let ports = svc.ports(namespace, name, &slices);
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
        let mut c = Cache::new("n1");
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
        let mut c = Cache::new("n1");
        c.service_event(Event::Apply(svc("a")));
        let dirty = c.slice_event(Event::Apply(slice("a-1", "a")));
        assert_eq!(
            dirty.into_iter().collect::<Vec<_>>(),
            vec!["default/a".to_string()]
        );
        let plan = c.plan(
            "default/a",
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

    #[test]
    fn a_service_relist_keeps_slices_and_reports_old_and_new_services() {
        let base = Base {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            nodeport_addresses: vec![],
            shards: 1,
            masquerade_fully_random: false,
        };
        let mut c = Cache::new("n1");
        c.service_event(Event::Apply(svc("a")));
        c.slice_event(Event::Apply(slice("b-1", "b")));
        c.slice_event(Event::Apply(slice("b-2", "b")));
        c.service_event(Event::Init);
        c.service_event(Event::InitApply(svc("b")));
        let dirty = c.service_event(Event::InitDone);
        assert_eq!(
            dirty.into_iter().collect::<Vec<_>>(),
            vec!["default/a".to_string(), "default/b".to_string()]
        );
        assert!(c.plan("default/a", &base).is_none());
        // b's slices, received before its Service, are kept (one endpoint, deduplicated).
        let plan = c.plan("default/b", &base).unwrap();
        let rules: Vec<String> = plan
            .chains
            .values()
            .flatten()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(rules.iter().filter(|r| r.contains("dnat to")).count(), 1);
        c.slice_event(Event::Delete(slice("b-1", "b")));
        c.slice_event(Event::Delete(slice("b-2", "b")));
        c.service_event(Event::Delete(svc("b")));
        assert!(c.entries.is_empty());
    }
}
