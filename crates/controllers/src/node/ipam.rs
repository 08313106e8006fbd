//! Pure podCIDR allocation: each node gets the lowest free `/node_cidr_prefix` range of the
//! cluster CIDR; a range stays with its node as long as the node exists.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

/// Allocator over the cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    cluster: Ipv4Net,
    prefix: u8,
    used: BTreeSet<Ipv4Net>,
}

impl CidrAllocator {
    /// An allocator handing out `/prefix` ranges of `cluster`.
    pub fn new(cluster: Ipv4Net, prefix: u8) -> Self {
        Self {
            cluster: cluster.trunc(),
            prefix,
            used: BTreeSet::new(),
        }
    }

    /// Marks a range as taken (a node already has it). Ranges outside the cluster CIDR or
    /// of another size are ignored; they cannot collide with ours.
    pub fn occupy(&mut self, cidr: &str) {
        if let Ok(net) = cidr.parse::<Ipv4Net>() {
            if net.prefix_len() == self.prefix && self.cluster.contains(&net) {
                self.used.insert(net.trunc());
            }
        }
    }

    /// The lowest free range, marked as taken.
    pub fn allocate(&mut self) -> Option<Ipv4Net> {
        let free = self
            .cluster
            .subnets(self.prefix)
            .ok()?
            .find(|n| !self.used.contains(n))?;
        self.used.insert(free);
        Some(free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_never_duplicates() {
        let mut a = CidrAllocator::new("10.244.0.0/16".parse().unwrap(), 24);
        a.occupy("10.244.1.0/24");
        assert_eq!(a.allocate().unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(a.allocate().unwrap().to_string(), "10.244.2.0/24");
        let mut small = CidrAllocator::new("10.0.0.0/23".parse().unwrap(), 24);
        assert!(small.allocate().is_some() && small.allocate().is_some());
        assert_eq!(small.allocate(), None);
    }
}
