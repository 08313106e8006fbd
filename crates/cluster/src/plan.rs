//! The addressing plan of a local multi-node cluster: names and addresses only, no IO.
//!
//! A cluster named `NAME` with N nodes is:
//! - `NAME-lan`: a namespace holding the LAN bridge (`br0`) and the API server's
//!   LAN address (`.1`), so agents reach the server like real nodes would;
//! - `NAME-node1`..`NAME-nodeN`: one namespace per node, `eth0` at `.11`, `.12`, ...
//!   with a default route via the LAN address;
//! - `NAME-client`: an outside client on the same LAN (`.100`) with no route to
//!   pod or Service addresses, only a route for the LoadBalancer pool via node 1.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Maximum number of nodes the plan supports (addresses `.11` to `.99`).
pub const MAX_NODES: u8 = 89;

/// Errors in a plan's parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Node count outside 1..=MAX_NODES.
    #[error("--nodes must be between 1 and {MAX_NODES}, got {0}")]
    NodeCount(u8),
    /// Name unusable for namespaces.
    #[error("invalid cluster name {0:?}: use 1-20 characters of a-z, 0-9 and '-'")]
    Name(String),
}

/// Names and addresses of a local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanPlan {
    /// Cluster name, prefix of every namespace.
    pub name: String,
    /// Number of nodes.
    pub nodes: u8,
    /// The LAN subnet (a /24).
    pub subnet: Ipv4Net,
}

impl LanPlan {
    /// Validates the parameters and builds the plan on the default LAN
    /// `192.168.77.0/24` (private to the cluster's namespaces).
    pub fn new(name: &str, nodes: u8) -> Result<Self, PlanError> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(PlanError::NodeCount(nodes));
        }
        let ok = !name.is_empty()
            && name.len() <= 20
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-');
        if !ok {
            return Err(PlanError::Name(name.to_string()));
        }
        Ok(Self {
            name: name.to_string(),
            nodes,
            subnet: Ipv4Net::new(Ipv4Addr::new(192, 168, 77, 0), 24).unwrap_or_default(),
        })
    }

    fn host(&self, last: u8) -> Ipv4Addr {
        let o = self.subnet.network().octets();
        Ipv4Addr::new(o[0], o[1], o[2], last)
    }

    /// Namespace holding the LAN bridge and the server's LAN address.
    pub fn lan_ns(&self) -> String {
        format!("{}-lan", self.name)
    }

    /// The API server's address on the LAN.
    pub fn server_ip(&self) -> Ipv4Addr {
        self.host(1)
    }

    /// Namespace of node `i` (1-based).
    pub fn node_ns(&self, i: u8) -> String {
        format!("{}-node{i}", self.name)
    }

    /// InternalIP of node `i` (1-based).
    pub fn node_ip(&self, i: u8) -> Ipv4Addr {
        self.host(10 + i)
    }

    /// The outside client's namespace.
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.name)
    }

    /// The outside client's address.
    pub fn client_ip(&self) -> Ipv4Addr {
        self.host(100)
    }

    /// Default LoadBalancer pool: `.240/28` on the LAN.
    pub fn lb_pool(&self) -> Ipv4Net {
        Ipv4Net::new(self.host(240), 28).unwrap_or(self.subnet)
    }

    /// Every namespace of the plan, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.lan_ns()];
        v.extend((1..=self.nodes).map(|i| self.node_ns(i)));
        v.push(self.client_ns());
        v
    }

    /// The `ip` commands (argument vectors) that build the topology, in order.
    /// Interface names are per-namespace, so short fixed names cannot clash
    /// with anything outside the cluster.
    pub fn commands(&self) -> Vec<Vec<String>> {
        let lan = self.lan_ns();
        let prefix = self.subnet.prefix_len();
        let mut cmds: Vec<Vec<String>> = Vec::new();
        let mut push = |args: &[&str]| cmds.push(args.iter().map(|s| s.to_string()).collect());
        for ns in self.namespaces() {
            push(&["netns", "add", &ns]);
            push(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        push(&["-n", &lan, "link", "add", "br0", "type", "bridge"]);
        push(&["-n", &lan, "link", "set", "br0", "up"]);
        let server = format!("{}/{prefix}", self.server_ip());
        push(&["-n", &lan, "addr", "add", &server, "dev", "br0"]);
        let mut members: Vec<(String, String, Ipv4Addr)> = (1..=self.nodes)
            .map(|i| (format!("n{i}"), self.node_ns(i), self.node_ip(i)))
            .collect();
        members.push(("client".to_string(), self.client_ns(), self.client_ip()));
        for (port, ns, ip) in &members {
            push(&[
                "-n", &lan, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ]);
            push(&["-n", &lan, "link", "set", port, "master", "br0", "up"]);
            let addr = format!("{ip}/{prefix}");
            push(&["-n", ns, "addr", "add", &addr, "dev", "eth0"]);
            push(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        let gw = self.server_ip().to_string();
        for i in 1..=self.nodes {
            push(&[
                "-n",
                &self.node_ns(i),
                "route",
                "add",
                "default",
                "via",
                &gw,
            ]);
            // Nodes forward client traffic back out of eth0 (NodePort to a pod on
            // another node). The ICMP redirects that would send share the
            // per-client ICMP rate limit with the port-unreachable of a REJECT,
            // which then gets dropped and the client waits a SYN retransmit.
            // Written through /proc inside the node namespace: nothing outside changes.
            push(&[
                "netns",
                "exec",
                &self.node_ns(i),
                "sh",
                "-c",
                "for f in all default eth0; do echo 0 > /proc/sys/net/ipv4/conf/$f/send_redirects; done",
            ]);
        }
        let pool = self.lb_pool().to_string();
        let first = self.node_ip(1).to_string();
        push(&[
            "-n",
            &self.client_ns(),
            "route",
            "add",
            &pool,
            "via",
            &first,
        ]);
        cmds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        let p = LanPlan::new("portico", 3).unwrap();
        assert_eq!(
            p.namespaces(),
            [
                "portico-lan",
                "portico-node1",
                "portico-node2",
                "portico-node3",
                "portico-client"
            ]
        );
        assert_eq!(p.node_ip(1).to_string(), "192.168.77.11");
        assert_eq!(p.node_ip(3).to_string(), "192.168.77.13");
        assert_eq!(p.server_ip().to_string(), "192.168.77.1");
        assert_eq!(p.client_ip().to_string(), "192.168.77.100");
        assert_eq!(p.lb_pool().to_string(), "192.168.77.240/28");
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(LanPlan::new("x", 0), Err(PlanError::NodeCount(0)));
        assert_eq!(
            LanPlan::new("Bad_Name", 1),
            Err(PlanError::Name("Bad_Name".into()))
        );
        assert!(LanPlan::new("a-very-long-cluster-name-indeed", 1).is_err());
    }

    #[test]
    fn commands_wire_every_node_to_the_bridge() {
        let p = LanPlan::new("t", 2).unwrap();
        let cmds: Vec<String> = p.commands().iter().map(|c| c.join(" ")).collect();
        assert!(cmds
            .contains(&"-n t-lan link add n2 type veth peer name eth0 netns t-node2".to_string()));
        assert!(cmds.contains(&"-n t-node1 route add default via 192.168.77.1".to_string()));
        assert!(
            cmds.contains(&"-n t-client route add 192.168.77.240/28 via 192.168.77.11".to_string())
        );
        // The client gets no default route: it must not reach pod or Service addresses.
        assert!(!cmds
            .iter()
            .any(|c| c.starts_with("-n t-client route add default")));
    }
}
