//! The in-memory cluster zone: prebuilt records per Service, a PTR index, and
//! copy-on-write shards so a published snapshot is cheap to derive from.
//!
//! Readers hold an `Arc<Zone>` snapshot; the planner mutates its own copy and
//! publishes a clone. Cloning a `Zone` copies only shard pointers, and a
//! mutation copies only the shard it touches, so an update costs
//! O(services / SHARDS) instead of O(services).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};

use crate::DnsError;

/// The schema version served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// Number of copy-on-write shards per map.
const SHARDS: usize = 64;

/// A hash map split into copy-on-write shards.
#[derive(Clone, Debug)]
pub(crate) struct ShardedMap<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
    hasher: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
}

// === impl ShardedMap ===

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The shard count is a power of two, so masking keeps the index in range.
        (self.hasher.hash_one(key) as usize) & (SHARDS - 1)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.get(self.shard_of(key))?.get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let i = self.shard_of(&key);
        self.shards
            .get_mut(i)
            .and_then(|shard| Arc::make_mut(shard).insert(key, value))
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.shard_of(key);
        let shard = self.shards.get_mut(i)?;
        // Avoid copying a shared shard when the key is absent.
        if !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).remove(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.shard_of(key);
        let shard = self.shards.get_mut(i)?;
        if !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).get_mut(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
}

/// One hostname under a headless Service: `<host>.<svc>.<ns>.svc.<zone>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// The hostname label, lowercase.
    pub name: Box<str>,
    /// Its addresses, sorted.
    pub ips: Vec<IpAddr>,
    /// Whether its addresses get PTR records (endpoints do; pod-only names do not).
    pub ptr: bool,
}

/// What `<svc>.<ns>.svc.<zone>` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceRecords {
    /// A/AAAA to the ClusterIPs.
    ClusterIp(Vec<IpAddr>),
    /// A CNAME to this name.
    ExternalName(Name),
    /// A/AAAA to every ready endpoint, plus per-hostname names.
    Headless {
        /// Every ready endpoint address, sorted and deduplicated.
        addresses: Vec<IpAddr>,
        /// Hostnames, sorted by name.
        hosts: Vec<HostEntry>,
    },
}

/// The SRV records of one `_<port>._<proto>` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvSet {
    /// `_<port>._<proto>`, lowercase.
    pub label: Box<str>,
    /// `(port, target)`: the target is the Service name itself (`None`) or the
    /// host at this index of [`ServiceRecords::Headless::hosts`].
    pub targets: Vec<(u16, Option<u32>)>,
}

/// Everything under `<svc>.<ns>.svc.<zone>`, kept compact: records are built
/// when a question asks for them, which costs far less memory than storing
/// every record pre-built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceZone {
    /// The Service name's own records.
    pub records: ServiceRecords,
    /// SRV names, sorted by label.
    pub srv: Vec<SrvSet>,
    /// `_<proto>` labels that exist as empty non-terminals.
    pub protocols: Vec<Box<str>>,
}

impl ServiceZone {
    /// Whether `<svc>.<ns>.svc.<zone>` exists (a headless Service without ready
    /// endpoints does not: the spec answers NXDOMAIN).
    pub fn name_exists(&self) -> bool {
        match &self.records {
            ServiceRecords::ClusterIp(ips) => !ips.is_empty(),
            ServiceRecords::ExternalName(_) => true,
            ServiceRecords::Headless { addresses, .. } => !addresses.is_empty(),
        }
    }

    /// The PTR records this Service contributes: address → hostname (`None`
    /// for the Service name itself).
    fn ptrs(&self) -> Vec<(IpAddr, Option<Box<str>>)> {
        match &self.records {
            ServiceRecords::ClusterIp(ips) => ips.iter().map(|ip| (*ip, None)).collect(),
            ServiceRecords::ExternalName(_) => Vec::new(),
            ServiceRecords::Headless { hosts, .. } => hosts
                .iter()
                .filter(|h| h.ptr)
                .flat_map(|h| h.ips.iter().map(|ip| (*ip, Some(h.name.clone()))))
                .collect(),
        }
    }

    /// The host at `index` of a headless Service.
    pub(crate) fn host(&self, index: Option<u32>) -> Option<&HostEntry> {
        match &self.records {
            ServiceRecords::Headless { hosts, .. } => hosts.get(usize::try_from(index?).ok()?),
            _ => None,
        }
    }
}

/// PTR targets at one address: (owning Service key `<svc>.<ns>`, hostname).
pub(crate) type PtrSet = Vec<(Arc<str>, Option<Box<str>>)>;

/// The authoritative cluster zone.
#[derive(Clone, Debug)]
pub struct Zone {
    pub(crate) origin: Name,
    /// The domain as text, lowercase, without the trailing dot.
    pub(crate) domain: Box<str>,
    pub(crate) ttl: u32,
    pub(crate) soa: Record,
    /// The SOA's RDATA on the wire (uncompressed), for the UDP fast path.
    pub(crate) soa_rdata: Arc<[u8]>,
    pub(crate) ns: Record,
    pub(crate) version: Record,
    /// `"<svc>.<ns>"` (lowercase) → records.
    pub(crate) services: ShardedMap<Arc<str>, Arc<ServiceZone>>,
    /// Namespace → number of Services in it.
    pub(crate) namespaces: Arc<HashMap<Box<str>, usize>>,
    pub(crate) ptr: ShardedMap<IpAddr, Arc<PtrSet>>,
}

// === impl Zone ===

impl Zone {
    /// An empty zone for `domain` (e.g. `cluster.local`) with record TTL `ttl`.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, DnsError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let origin = fqdn(&domain)?;
        let mname = fqdn(&format!("ns.dns.{domain}"))?;
        let rname = fqdn(&format!("hostmaster.{domain}"))?;
        // Refresh/retry/expire follow CoreDNS; the minimum (negative TTL) is the record TTL.
        let soa = SOA::new(mname.clone(), rname.clone(), 1, 7200, 1800, 86400, ttl);
        let mut soa_rdata = Vec::with_capacity(64);
        for name in [&mname, &rname] {
            for label in name.iter() {
                soa_rdata.push(u8::try_from(label.len()).unwrap_or(63));
                soa_rdata.extend_from_slice(label);
            }
            soa_rdata.push(0);
        }
        for value in [1, 7200, 1800, 86400, ttl] {
            soa_rdata.extend_from_slice(&value.to_be_bytes());
        }
        let soa = Record::from_rdata(origin.clone(), ttl, RData::SOA(soa));
        let ns = Record::from_rdata(origin.clone(), ttl, RData::NS(NS(mname)));
        let version = Record::from_rdata(
            fqdn(&format!("dns-version.{domain}"))?,
            ttl,
            RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
        );
        Ok(Self {
            origin,
            domain: Box::from(domain.as_str()),
            ttl,
            soa,
            soa_rdata: soa_rdata.into(),
            ns,
            version,
            services: ShardedMap::new(),
            namespaces: Arc::new(HashMap::new()),
            ptr: ShardedMap::new(),
        })
    }

    /// The zone apex, e.g. `cluster.local.`.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The TTL of every record in the zone.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Number of Services with records.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Replaces (or with `None` removes) the records of Service `<name>.<namespace>`.
    pub fn set_service(&mut self, namespace: &str, name: &str, records: Option<ServiceZone>) {
        let key: Arc<str> = Arc::from(format!("{name}.{namespace}"));
        if let Some(old) = self.services.remove(&key) {
            for (ip, _) in old.ptrs() {
                self.remove_ptr(ip, &key);
            }
            let namespaces = Arc::make_mut(&mut self.namespaces);
            if let Some(count) = namespaces.get_mut(namespace) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    namespaces.remove(namespace);
                }
            }
        }
        let Some(records) = records else { return };
        for (ip, host) in records.ptrs() {
            self.add_ptr(ip, &key, host);
        }
        *Arc::make_mut(&mut self.namespaces)
            .entry(Box::from(namespace))
            .or_insert(0) += 1;
        self.services.insert(key, Arc::new(records));
    }

    fn add_ptr(&mut self, ip: IpAddr, owner: &Arc<str>, host: Option<Box<str>>) {
        match self.ptr.get_mut(&ip) {
            Some(set) => Arc::make_mut(set).push((owner.clone(), host)),
            None => {
                self.ptr.insert(ip, Arc::new(vec![(owner.clone(), host)]));
            }
        }
    }

    fn remove_ptr(&mut self, ip: IpAddr, owner: &Arc<str>) {
        let now_empty = match self.ptr.get_mut(&ip) {
            Some(set) => {
                let set = Arc::make_mut(set);
                set.retain(|(o, _)| o != owner);
                set.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.ptr.remove(&ip);
        }
    }

    /// The records of Service `<name>.<namespace>` (test and debug helper).
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceZone> {
        self.services
            .get(format!("{name}.{namespace}").as_str())
            .map(Arc::as_ref)
    }
}

/// A fully qualified name from dotted ASCII text.
pub(crate) fn fqdn(text: &str) -> Result<Name, DnsError> {
    let mut name = Name::from_ascii(text).map_err(|e| DnsError::Name {
        name: text.to_string(),
        reason: e.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_map_clone_shares_untouched_shards() {
        let mut a: ShardedMap<u32, u32> = ShardedMap::new();
        for i in 0..1000 {
            a.insert(i, i);
        }
        let b = a.clone();
        a.insert(5, 50);
        assert_eq!(a.get(&5), Some(&50));
        assert_eq!(b.get(&5), Some(&5));
        let shared = a
            .shards
            .iter()
            .zip(&b.shards)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(a.remove(&5), Some(50));
        assert_eq!(a.len(), 999);
    }

    #[test]
    fn apex_records_follow_the_domain_and_ttl() {
        let zone = Zone::new("Cluster.Local.", 5).unwrap();
        assert_eq!(zone.origin().to_ascii(), "cluster.local.");
        assert_eq!(zone.soa.ttl, 5);
        assert_eq!(
            zone.soa.data.to_string(),
            "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"
        );
        assert_eq!(zone.version.name.to_ascii(), "dns-version.cluster.local.");
    }
}
