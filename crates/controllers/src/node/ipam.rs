//! Pure podCIDR allocation: each node gets the lowest free `/node_cidr_prefix` range of the
//! cluster CIDR; a range stays with its node as long as the node exists.

use std::collections::{BTreeSet, HashMap};

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

/// Ranges handed out but not yet seen on their Node in the cache: node name → range.
///
/// A reservation is taken before the write and kept until the cache shows the node with a
/// podCIDR. A patch that failed on the client side may still have been committed, so a
/// retry must ask for the same range, and no other node may get it meanwhile (one range
/// on two nodes breaks pod routing on both).
#[derive(Debug, Default)]
pub struct Reservations(HashMap<String, String>);

impl Reservations {
    /// The range for `node`: its pending reservation, or a new one from `alloc` (which
    /// holds the ranges the cache shows). `pending(n)` says whether node `n` is still in
    /// the cache without a podCIDR; other reservations are dropped.
    pub fn reserve(
        &mut self,
        node: &str,
        mut alloc: CidrAllocator,
        pending: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.0.retain(|n, _| pending(n));
        if let Some(c) = self.0.get(node) {
            return Some(c.clone());
        }
        self.0.values().for_each(|c| alloc.occupy(c));
        let cidr = alloc.allocate()?.to_string();
        self.0.insert(node.to_string(), cidr.clone());
        Some(cidr)
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

    #[test]
    fn a_retried_node_keeps_its_range_and_no_one_else_gets_it() {
        let fresh = || CidrAllocator::new("10.244.0.0/16".parse().unwrap(), 24);
        let mut r = Reservations::default();
        // n2's write failed on the client side (it may have landed): still pending.
        assert_eq!(r.reserve("n2", fresh(), |_| true).unwrap(), "10.244.0.0/24");
        assert_eq!(r.reserve("n3", fresh(), |_| true).unwrap(), "10.244.1.0/24");
        assert_eq!(r.reserve("n2", fresh(), |_| true).unwrap(), "10.244.0.0/24");
        // Once the cache shows n2 and n3 with their ranges, the allocator holds them.
        let mut seen = fresh();
        seen.occupy("10.244.0.0/24");
        seen.occupy("10.244.1.0/24");
        assert_eq!(
            r.reserve("n4", seen, |n| n == "n4").unwrap(),
            "10.244.2.0/24"
        );
    }
}
