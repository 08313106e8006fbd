//! The record planner: Services, EndpointSlices and Pods in, zone records out.
//!
//! Pure and incremental: every change names the Services it affects, and only
//! those Services' records are rebuilt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{PodInfo, ServiceInfo, ServiceKind, SliceInfo};
use crate::zone::{fqdn, HostEntry, ServiceRecords, ServiceZone, SrvSet, Zone};
use crate::DnsError;

/// `(namespace, name)`.
type Key = (String, String);

/// One observed change of a watched object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A Service was added or modified.
    UpsertService(ServiceInfo),
    /// A Service was deleted (or no longer has records).
    DeleteService {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// An EndpointSlice was added or modified.
    UpsertSlice(SliceInfo),
    /// An EndpointSlice was deleted.
    DeleteSlice {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A Pod with hostname and subdomain was added or modified.
    UpsertPod(PodInfo),
    /// A Pod was deleted (or lost its hostname/subdomain).
    DeletePod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// The cluster state DNS cares about, and the zone derived from it.
#[derive(Clone, Debug)]
pub struct Planner {
    domain: String,
    zone: Zone,
    services: HashMap<Key, ServiceInfo>,
    slices: HashMap<Key, SliceInfo>,
    slices_by_service: HashMap<Key, NameSet>,
    pods: HashMap<Key, PodInfo>,
    pods_by_subdomain: HashMap<Key, NameSet>,
}

/// A small sorted set of names. Nearly every Service has one or two slices,
/// and a `Vec` costs a fraction of a `BTreeSet` node per Service.
#[derive(Clone, Debug, Default)]
struct NameSet(Vec<String>);

impl NameSet {
    fn insert(&mut self, name: String) {
        if let Err(at) = self.0.binary_search(&name) {
            self.0.insert(at, name);
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(at) = self.0.binary_search_by(|n| n.as_str().cmp(name)) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a NameSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

// === impl Planner ===

impl Planner {
    /// An empty planner for cluster domain `domain` and record TTL `ttl`.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, DnsError> {
        let zone = Zone::new(domain, ttl)?;
        Ok(Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            zone,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            pods: HashMap::new(),
            pods_by_subdomain: HashMap::new(),
        })
    }

    /// The current zone.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Applies one change and rebuilds the records of the Services it touches.
    pub fn apply(&mut self, change: Change) {
        for (namespace, name) in self.record(change) {
            self.replan(&namespace, &name);
        }
    }

    /// Updates the object maps and returns the Services whose records may change.
    fn record(&mut self, change: Change) -> Vec<Key> {
        match change {
            Change::UpsertService(svc) => {
                let key = (svc.namespace.clone(), svc.name.clone());
                self.services.insert(key.clone(), svc);
                vec![key]
            }
            Change::DeleteService { namespace, name } => {
                let key = (namespace, name);
                self.services.remove(&key);
                vec![key]
            }
            Change::UpsertSlice(slice) => {
                let key = (slice.namespace.clone(), slice.name.clone());
                let mut affected = self.unlink_slice(&key);
                let svc_key = (slice.namespace.clone(), slice.service.clone());
                self.slices_by_service
                    .entry(svc_key.clone())
                    .or_default()
                    .insert(slice.name.clone());
                self.slices.insert(key, slice);
                if !affected.contains(&svc_key) {
                    affected.push(svc_key);
                }
                affected
            }
            Change::DeleteSlice { namespace, name } => self.unlink_slice(&(namespace, name)),
            Change::UpsertPod(pod) => {
                let key = (pod.namespace.clone(), pod.name.clone());
                let mut affected = self.unlink_pod(&key);
                let sub_key = (pod.namespace.clone(), pod.subdomain.clone());
                self.pods_by_subdomain
                    .entry(sub_key.clone())
                    .or_default()
                    .insert(pod.name.clone());
                self.pods.insert(key, pod);
                if !affected.contains(&sub_key) {
                    affected.push(sub_key);
                }
                affected
            }
            Change::DeletePod { namespace, name } => self.unlink_pod(&(namespace, name)),
        }
    }

    fn unlink_slice(&mut self, key: &Key) -> Vec<Key> {
        let Some(old) = self.slices.remove(key) else {
            return Vec::new();
        };
        let svc_key = (old.namespace, old.service);
        if let Some(set) = self.slices_by_service.get_mut(&svc_key) {
            set.remove(&key.1);
            if set.is_empty() {
                self.slices_by_service.remove(&svc_key);
            }
        }
        vec![svc_key]
    }

    fn unlink_pod(&mut self, key: &Key) -> Vec<Key> {
        let Some(old) = self.pods.remove(key) else {
            return Vec::new();
        };
        let sub_key = (old.namespace, old.subdomain);
        if let Some(set) = self.pods_by_subdomain.get_mut(&sub_key) {
            set.remove(&key.1);
            if set.is_empty() {
                self.pods_by_subdomain.remove(&sub_key);
            }
        }
        vec![sub_key]
    }

    /// Rebuilds the records of one Service from the current maps.
    fn replan(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let records = self.services.get(&key).and_then(|svc| {
            let slices = self
                .slices_by_service
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|s| self.slices.get(&(namespace.to_string(), s.clone())));
            let pods = self
                .pods_by_subdomain
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|p| self.pods.get(&(namespace.to_string(), p.clone())));
            service_records(svc, slices, pods, &self.domain)
        });
        self.zone.set_service(namespace, name, records);
    }
}

/// Plans the whole zone from API objects (the non-incremental entry point).
pub fn plan(
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &[Pod],
    domain: &str,
    ttl: u32,
) -> Result<Zone, DnsError> {
    let mut planner = Planner::new(domain, ttl)?;
    for slice in slices.iter().filter_map(SliceInfo::from_slice) {
        planner.record(Change::UpsertSlice(slice));
    }
    for pod in pods.iter().filter_map(PodInfo::from_pod) {
        planner.record(Change::UpsertPod(pod));
    }
    for svc in services.iter().filter_map(ServiceInfo::from_service) {
        planner.apply(Change::UpsertService(svc));
    }
    Ok(planner.zone)
}

/// The records of one Service, or `None` when its names are not valid DNS.
fn service_records<'a>(
    svc: &ServiceInfo,
    slices: impl Iterator<Item = &'a SliceInfo>,
    pods: impl Iterator<Item = &'a PodInfo>,
    domain: &str,
) -> Option<ServiceZone> {
    // Reject Services whose name cannot be a DNS name at all.
    let base = fqdn(&format!("{}.{}.svc.{domain}", svc.name, svc.namespace)).ok()?;
    match &svc.kind {
        ServiceKind::ExternalName(target) => Some(ServiceZone {
            records: ServiceRecords::ExternalName(fqdn(target).ok()?),
            srv: Vec::new(),
            protocols: Vec::new(),
        }),
        ServiceKind::ClusterIp(ips) => {
            let mut srv: Vec<SrvSet> = Vec::new();
            let mut protocols = BTreeSet::new();
            for port in svc.ports.iter().filter(|p| !p.name.is_empty()) {
                let label = format!("_{}._{}", port.name, port.protocol);
                if !label_fits(&label, &base) {
                    continue;
                }
                protocols.insert(format!("_{}", port.protocol));
                match srv.iter_mut().find(|s| *s.label == *label) {
                    Some(set) => set.targets.push((port.port, None)),
                    None => srv.push(SrvSet {
                        label: Box::from(label),
                        targets: vec![(port.port, None)],
                    }),
                }
            }
            srv.sort_by(|a, b| a.label.cmp(&b.label));
            Some(ServiceZone {
                records: ServiceRecords::ClusterIp(ips.clone()),
                srv,
                protocols: protocols.into_iter().map(Box::from).collect(),
            })
        }
        ServiceKind::Headless => Some(headless_records(svc, slices, pods, &base)),
    }
}

/// Whether `<label>.<base>` is a valid name (a label of at most 63 bytes, a
/// name of at most 255).
fn label_fits(label: &str, base: &Name) -> bool {
    label.len() <= 63 && label.len() + 1 + base.len() <= 255
}

/// Headless Services: the endpoints' addresses, per-hostname names, SRV per
/// endpoint and named port, PTR per endpoint, and pod hostname/subdomain names.
fn headless_records<'a>(
    svc: &ServiceInfo,
    slices: impl Iterator<Item = &'a SliceInfo>,
    pods: impl Iterator<Item = &'a PodInfo>,
    base: &Name,
) -> ServiceZone {
    let mut addresses: BTreeSet<IpAddr> = BTreeSet::new();
    // hostname → (addresses, published by an endpoint rather than only a pod)
    let mut hosts: BTreeMap<String, (BTreeSet<IpAddr>, bool)> = BTreeMap::new();
    // `_<port>._<proto>` → (port, hostname)
    let mut srv: BTreeMap<String, BTreeSet<(u16, String)>> = BTreeMap::new();
    let mut protocols: BTreeSet<String> = BTreeSet::new();

    for slice in slices {
        for ep in slice
            .endpoints
            .iter()
            .filter(|ep| ep.ready || svc.publish_not_ready)
        {
            let mut names = Vec::new();
            match &ep.hostname {
                Some(h) => names.push((h.to_string(), ep.addresses.to_vec())),
                None => names.extend(ep.addresses.iter().map(|ip| (dashed(*ip), vec![*ip]))),
            }
            for (host, ips) in names {
                if !label_fits(&host, base) {
                    continue;
                }
                addresses.extend(ips.iter().copied());
                let entry = hosts.entry(host.clone()).or_default();
                entry.0.extend(ips);
                entry.1 = true;
                for port in slice.ports.iter().filter(|p| !p.name.is_empty()) {
                    let label = format!("_{}._{}", port.name, port.protocol);
                    if !label_fits(&label, base) {
                        continue;
                    }
                    srv.entry(label)
                        .or_default()
                        .insert((port.port, host.clone()));
                    protocols.insert(format!("_{}", port.protocol));
                }
            }
        }
    }
    for pod in pods.filter(|p| p.ready || svc.publish_not_ready) {
        if !label_fits(&pod.hostname, base) || pod.ips.is_empty() {
            continue;
        }
        hosts
            .entry(pod.hostname.clone())
            .or_default()
            .0
            .extend(pod.ips.iter().copied());
    }

    let hosts: Vec<HostEntry> = hosts
        .into_iter()
        .map(|(name, (ips, ptr))| HostEntry {
            name: Box::from(name),
            ips: ips.into_iter().collect(),
            ptr,
        })
        .collect();
    let index_of = |host: &str| {
        hosts
            .binary_search_by(|h| (*h.name).cmp(host))
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    };
    let srv = srv
        .into_iter()
        .map(|(label, targets)| SrvSet {
            label: Box::from(label),
            targets: targets
                .iter()
                .filter_map(|(port, host)| Some((*port, Some(index_of(host)?))))
                .collect(),
        })
        .collect();
    ServiceZone {
        records: ServiceRecords::Headless {
            addresses: addresses.into_iter().collect(),
            hosts,
        },
        srv,
        protocols: protocols.into_iter().map(Box::from).collect(),
    }
}

/// The system-assigned hostname of an endpoint without one: its IP with `.`
/// or `:` replaced by `-` (`10-244-0-5`, `fd00--5`), as CoreDNS does.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
