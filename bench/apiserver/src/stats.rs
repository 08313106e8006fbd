//! Pure numbers: percentiles, which Services are NodePorts, and the
//! correctness checks over what the creates and the watch returned.

use std::collections::HashSet;

/// Distribution of a set of samples in milliseconds (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Smallest sample (watch delays measured from the response can be negative).
    pub min: f64,
}

/// Summarises samples; `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    // Nearest rank: the smallest sample with at least q of the samples at or below it.
    let rank = |q: f64| {
        let r = (q * v.len() as f64).ceil() as usize;
        v[r.clamp(1, v.len()) - 1]
    };
    Some(Summary {
        count: v.len(),
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: v[v.len() - 1],
        min: v[0],
    })
}

/// Whether Service `i` of `n` is a NodePort one: exactly `nodeports` of them,
/// spread evenly so NodePort allocation runs throughout the load.
pub fn is_nodeport(i: usize, n: usize, nodeports: usize) -> bool {
    if n == 0 || i >= n {
        return false;
    }
    // Bresenham-style: index i is a NodePort when floor((i+1)·k/n) steps up.
    (i + 1) * nodeports / n != i * nodeports / n
}

/// What one successful create returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    /// The Service's name.
    pub name: String,
    /// Whether it was created as type NodePort.
    pub nodeport_wanted: bool,
    /// `spec.clusterIP` of the response.
    pub cluster_ip: Option<String>,
    /// `spec.ports[0].nodePort` of the response.
    pub node_port: Option<u16>,
}

/// Correctness of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Correctness {
    /// Creates that returned 201.
    pub created: usize,
    /// Distinct ClusterIPs among them.
    pub distinct_cluster_ips: usize,
    /// Created Services without a ClusterIP in the response.
    pub missing_cluster_ips: usize,
    /// NodePort Services created.
    pub nodeport_created: usize,
    /// Distinct nodePorts among them.
    pub distinct_node_ports: usize,
    /// NodePort Services without a nodePort, or ClusterIP ones with one.
    pub wrong_node_ports: usize,
    /// Created Services whose ADDED event arrived.
    pub watched: usize,
}

impl Correctness {
    /// Everything created got a unique IP, every NodePort a unique port, and every create an event.
    pub fn ok(&self, expected: usize, expected_nodeports: usize) -> bool {
        self.created == expected
            && self.distinct_cluster_ips == expected
            && self.missing_cluster_ips == 0
            && self.nodeport_created == expected_nodeports
            && self.distinct_node_ports == expected_nodeports
            && self.wrong_node_ports == 0
            && self.watched == expected
    }
}

/// Checks allocations for uniqueness; `watched` says whether a name's ADDED event arrived.
pub fn check(created: &[Allocated], watched: impl Fn(&str) -> bool) -> Correctness {
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    let mut c = Correctness {
        created: created.len(),
        ..Correctness::default()
    };
    for a in created {
        match &a.cluster_ip {
            Some(ip) if ip != "None" && !ip.is_empty() => {
                ips.insert(ip.as_str());
            }
            _ => c.missing_cluster_ips += 1,
        }
        match (a.nodeport_wanted, a.node_port) {
            (true, Some(p)) => {
                c.nodeport_created += 1;
                ports.insert(p);
            }
            (true, None) => {
                c.nodeport_created += 1;
                c.wrong_node_ports += 1;
            }
            (false, Some(_)) => c.wrong_node_ports += 1,
            (false, None) => {}
        }
        if watched(&a.name) {
            c.watched += 1;
        }
    }
    c.distinct_cluster_ips = ips.len();
    c.distinct_node_ports = ports.len();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&v).unwrap();
        assert_eq!(
            (s.count, s.p50, s.p90, s.p99, s.max, s.min),
            (100, 50.0, 90.0, 99.0, 100.0, 1.0)
        );
        let one = summarize(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn exactly_the_requested_number_of_nodeports_spread_out() {
        let n = 10_000;
        let picked: Vec<usize> = (0..n).filter(|&i| is_nodeport(i, n, 2_000)).collect();
        assert_eq!(picked.len(), 2_000);
        assert_eq!(&picked[..3], &[4, 9, 14]);
        assert_eq!((0..7).filter(|&i| is_nodeport(i, 7, 7)).count(), 7);
        assert_eq!((0..7).filter(|&i| is_nodeport(i, 7, 0)).count(), 0);
        assert!(!is_nodeport(7, 7, 7));
    }

    fn svc(name: &str, np: bool, ip: Option<&str>, port: Option<u16>) -> Allocated {
        Allocated {
            name: name.into(),
            nodeport_wanted: np,
            cluster_ip: ip.map(Into::into),
            node_port: port,
        }
    }

    #[test]
    fn flags_duplicates_and_missing_events() {
        let created = vec![
            svc("a", false, Some("10.96.0.2"), None),
            svc("b", true, Some("10.96.0.3"), Some(30001)),
            svc("c", true, Some("10.96.0.3"), Some(30001)),
            svc("d", false, None, Some(30002)),
        ];
        let c = check(&created, |n| n != "c");
        assert_eq!(
            c,
            Correctness {
                created: 4,
                distinct_cluster_ips: 2,
                missing_cluster_ips: 1,
                nodeport_created: 2,
                distinct_node_ports: 1,
                wrong_node_ports: 1,
                watched: 3,
            }
        );
        assert!(!c.ok(4, 2));
        let good = check(&created[..2], |_| true);
        assert!(good.ok(2, 1));
    }
}
