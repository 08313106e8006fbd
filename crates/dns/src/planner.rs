//! The record planner: Services, EndpointSlices and Pods in, zone records out.
//!
//! Pure and incremental: every change names the Services it affects, and only
//! those Services' records are rebuilt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{PodInfo, ServiceInfo, ServiceKind, SliceInfo};
use crate::zone::{fqdn, HostRecords, ServiceZone, SrvSet, Zone};
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
    ttl: u32,
    zone: Zone,
    services: HashMap<Key, ServiceInfo>,
    slices: HashMap<Key, SliceInfo>,
    slices_by_service: HashMap<Key, BTreeSet<String>>,
    pods: HashMap<Key, PodInfo>,
    pods_by_subdomain: HashMap<Key, BTreeSet<String>>,
}

// === impl Planner ===

impl Planner {
    /// An empty planner for cluster domain `domain` and record TTL `ttl`.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, DnsError> {
        let zone = Zone::new(domain, ttl)?;
        Ok(Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            ttl,
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
            service_records(svc, slices, pods, &self.domain, self.ttl)
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
    ttl: u32,
) -> Option<ServiceZone> {
    let base = fqdn(&format!("{}.{}.svc.{domain}", svc.name, svc.namespace)).ok()?;
    let mut zone = ServiceZone::default();
    match &svc.kind {
        ServiceKind::ExternalName(target) => {
            let target = fqdn(target).ok()?;
            zone.cname = Some(Record::from_rdata(base, ttl, RData::CNAME(CNAME(target))));
        }
        ServiceKind::ClusterIp(ips) => {
            for ip in ips {
                push_address(&mut zone.a, &mut zone.aaaa, &base, *ip, ttl);
                zone.ptrs.push((*ip, ptr_record(*ip, &base, ttl)));
            }
            let additionals: Vec<Record> = zone.a.iter().chain(&zone.aaaa).cloned().collect();
            for port in svc.ports.iter().filter(|p| !p.name.is_empty()) {
                let label = format!("_{}._{}", port.name, port.protocol);
                let Ok(owner) = fqdn(&format!("{label}.{}", base.to_ascii())) else {
                    continue;
                };
                let srv = SRV::new(0, 100, port.port, base.clone());
                let set = zone.srv.entry(Box::from(label)).or_default();
                set.records.push(Record::from_rdata(owner, ttl, RData::SRV(srv)));
                set.additionals.clone_from(&additionals);
                add_protocol(&mut zone.protocols, &port.protocol);
            }
        }
        ServiceKind::Headless => headless_records(&mut zone, svc, slices, pods, &base, ttl),
    }
    Some(zone)
}

/// Headless Services: the endpoints' addresses, per-hostname names, SRV per
/// endpoint and named port, PTR per endpoint, and pod hostname/subdomain names.
fn headless_records<'a>(
    zone: &mut ServiceZone,
    svc: &ServiceInfo,
    slices: impl Iterator<Item = &'a SliceInfo>,
    pods: impl Iterator<Item = &'a PodInfo>,
    base: &Name,
    ttl: u32,
) {
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
                Some(h) => names.push((h.clone(), ep.addresses.clone())),
                None => names.extend(ep.addresses.iter().map(|ip| (dashed(*ip), vec![*ip]))),
            }
            for (host, ips) in names {
                addresses.extend(ips.iter().copied());
                let entry = hosts.entry(host.clone()).or_default();
                entry.0.extend(ips);
                entry.1 = true;
                for port in slice.ports.iter().filter(|p| !p.name.is_empty()) {
                    let label = format!("_{}._{}", port.name, port.protocol);
                    srv.entry(label).or_default().insert((port.port, host.clone()));
                    protocols.insert(port.protocol.clone());
                }
            }
        }
    }
    for pod in pods.filter(|p| p.ready || svc.publish_not_ready) {
        hosts
            .entry(pod.hostname.clone())
            .or_default()
            .0
            .extend(pod.ips.iter().copied());
    }

    for ip in &addresses {
        push_address(&mut zone.a, &mut zone.aaaa, base, *ip, ttl);
    }
    let base_text = base.to_ascii();
    for (host, (ips, from_endpoint)) in &hosts {
        let Ok(owner) = fqdn(&format!("{host}.{base_text}")) else {
            continue;
        };
        let mut records = HostRecords::default();
        for ip in ips {
            push_address(&mut records.a, &mut records.aaaa, &owner, *ip, ttl);
            if *from_endpoint {
                zone.ptrs.push((*ip, ptr_record(*ip, &owner, ttl)));
            }
        }
        zone.hosts.insert(Box::from(host.as_str()), records);
    }
    for (label, targets) in srv {
        let Ok(owner) = fqdn(&format!("{label}.{base_text}")) else {
            continue;
        };
        // Equal weights summing to about 100, as CoreDNS does.
        let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(1).max(1);
        let mut set = SrvSet::default();
        for (port, host) in &targets {
            let Some(records) = zone.hosts.get(host.as_str()) else {
                continue;
            };
            let Some(target) = records.a.first().or(records.aaaa.first()).map(|r| r.name.clone())
            else {
                continue;
            };
            let data = SRV::new(0, weight, *port, target);
            set.records.push(Record::from_rdata(owner.clone(), ttl, RData::SRV(data)));
            set.additionals.extend(records.a.iter().chain(&records.aaaa).cloned());
        }
        zone.srv.insert(Box::from(label), set);
    }
    for proto in protocols {
        add_protocol(&mut zone.protocols, &proto);
    }
}

fn push_address(a: &mut Vec<Record>, aaaa: &mut Vec<Record>, owner: &Name, ip: IpAddr, ttl: u32) {
    match ip {
        IpAddr::V4(v4) => a.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(v4)))),
        IpAddr::V6(v6) => aaaa.push(Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(v6)))),
    }
}

fn ptr_record(ip: IpAddr, target: &Name, ttl: u32) -> Record {
    Record::from_rdata(Name::from(ip), ttl, RData::PTR(PTR(target.clone())))
}

fn add_protocol(protocols: &mut Vec<Box<str>>, proto: &str) {
    let label = format!("_{proto}");
    if !protocols.iter().any(|p| **p == *label) {
        protocols.push(Box::from(label));
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
