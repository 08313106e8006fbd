//! Pod IP allocation from the node's podCIDR.
//!
//! Addresses are handed out round-robin from a cursor, so a replaced pod gets
//! a new IP and a freed address is not reused until the range wraps (seed 2
//! shows a restarted pod with a new IP). The state is persisted in the data
//! dir so an agent restart does not hand out addresses still in use.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The allocator state: pure, serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    pub cidr: Ipv4Net,
    /// Address → owner (pod uid).
    pub allocated: BTreeMap<Ipv4Addr, String>,
    /// Offset (from the network address) of the last address handed out.
    pub cursor: u32,
}

impl Ipam {
    pub fn new(cidr: Ipv4Net) -> Self {
        Self {
            cidr: cidr.trunc(),
            allocated: BTreeMap::new(),
            cursor: 1,
        }
    }

    /// The node's own address on the pod bridge: the first host of the CIDR.
    pub fn gateway(&self) -> Ipv4Addr {
        offset(self.cidr.network(), 1)
    }

    /// The address of `owner`, allocating the next free one if it has none.
    /// `None` when the range is exhausted.
    pub fn allocate(&mut self, owner: &str) -> Option<Ipv4Addr> {
        if let Some((ip, _)) = self.allocated.iter().find(|(_, o)| o.as_str() == owner) {
            return Some(*ip);
        }
        let size: u32 = 1u32
            .checked_shl(32 - u32::from(self.cidr.prefix_len()))
            .unwrap_or(0);
        // Usable offsets: 2..size-2 (network, gateway and broadcast excluded).
        if size < 4 {
            return None;
        }
        let usable = size - 3;
        let start = if self.cursor < 2 {
            0
        } else {
            (self.cursor - 2 + 1) % usable
        };
        for k in 0..usable {
            let off = 2 + ((start + k) % usable);
            let ip = offset(self.cidr.network(), off);
            if let std::collections::btree_map::Entry::Vacant(e) = self.allocated.entry(ip) {
                e.insert(owner.to_string());
                self.cursor = off;
                return Some(ip);
            }
        }
        None
    }

    /// Frees whatever `owner` holds.
    pub fn release(&mut self, owner: &str) {
        self.allocated.retain(|_, o| o != owner);
    }
}

fn offset(base: Ipv4Addr, off: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(off))
}

/// Where the allocator state of a node lives.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ipam.json")
}

/// Loads the state for `cidr`; a missing file or a different CIDR starts fresh.
pub fn load(data_dir: &Path, cidr: Ipv4Net) -> Ipam {
    let fresh = Ipam::new(cidr);
    match std::fs::read(state_path(data_dir)) {
        Ok(bytes) => match serde_json::from_slice::<Ipam>(&bytes) {
            Ok(s) if s.cidr == fresh.cidr => s,
            _ => fresh,
        },
        Err(_) => fresh,
    }
}

/// Writes the state atomically (temp file + rename).
pub fn save(data_dir: &Path, ipam: &Ipam) -> std::io::Result<()> {
    let path = state_path(data_dir);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(ipam).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_distinct_addresses_skipping_gateway() {
        let mut ipam = Ipam::new(net("10.244.1.0/24"));
        assert_eq!(ipam.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(ipam.allocate("a"), Some(Ipv4Addr::new(10, 244, 1, 2)));
        assert_eq!(ipam.allocate("b"), Some(Ipv4Addr::new(10, 244, 1, 3)));
        // Idempotent per owner.
        assert_eq!(ipam.allocate("a"), Some(Ipv4Addr::new(10, 244, 1, 2)));
    }

    #[test]
    fn a_replaced_pod_gets_a_new_address() {
        let mut ipam = Ipam::new(net("10.244.1.0/24"));
        let a = ipam.allocate("a").unwrap();
        ipam.release("a");
        let b = ipam.allocate("b").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wraps_and_exhausts() {
        let mut ipam = Ipam::new(net("10.0.0.0/29")); // 8 addresses, 5 usable
        let got: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("p{i}")).unwrap())
            .collect();
        assert_eq!(got.first(), Some(&Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(got.last(), Some(&Ipv4Addr::new(10, 0, 0, 6)));
        assert_eq!(ipam.allocate("x"), None);
        ipam.release("p1");
        assert_eq!(ipam.allocate("x"), Some(Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn persists_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = load(dir.path(), net("10.244.2.0/24"));
        ipam.allocate("a").unwrap();
        save(dir.path(), &ipam).unwrap();
        let mut again = load(dir.path(), net("10.244.2.0/24"));
        assert_eq!(again, ipam);
        assert_eq!(again.allocate("b"), Some(Ipv4Addr::new(10, 244, 2, 3)));
        // A new CIDR starts fresh.
        assert!(load(dir.path(), net("10.244.3.0/24")).allocated.is_empty());
    }
}
