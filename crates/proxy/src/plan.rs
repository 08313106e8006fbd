//! The pure planner: Service ports in, nftables objects of one Service out
//! ([`ServicePlan`]: chains, affinity sets, map elements), plus the node-level
//! inputs of the tables' skeletons ([`Base`]).
//!
//! Tables: Services are spread over [`Base::shards`] tables `ip portico-NN`
//! by a stable hash of `namespace/name` ([`shard_of`]); each holds its
//! Services' chains, affinity sets and the `service-ips`/`service-nodeports`
//! verdict maps, with its own NAT base chains. The kernel re-validates every
//! chain reachable from a table's base chains whenever a transaction adds a
//! jump, NAT rule or verdict-map element to that table (`nft_table_validate`,
//! per table since Linux 6.4), so one Service's change costs O(N/shards)
//! instead of O(N). The small shared table `ip portico` holds what is per
//! node (filter hooks, masquerade, hairpin) plus the rare firewall chains of
//! `loadBalancerSourceRanges`; its no-endpoint sets carry no verdicts, so
//! their elements never trigger validation.
//!
//! Layout (kube-proxy nftables mode, with one deliberate change): endpoint
//! choice is a sequence of `numgen random mod (N-i) 0` rules inside the
//! service chain instead of an anonymous `numgen … vmap`, and hairpin is one
//! shared `ct status dnat ip saddr . ip daddr @hairpin` rule. nft 1.0.6 needs
//! time quadratic in the number of anonymous sets, and per-endpoint chains
//! double the object count; this layout programs 30,000 Services × 10
//! endpoints as 30,000 chains. Per-endpoint chains remain for ClientIP
//! affinity, which needs one timed set per endpoint.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::{Endpoint, Proto, SvcPort};
use crate::vecmap::VecMap;

/// Name of the shared table (family `ip`); shard tables are `portico-NN`.
pub const TABLE: &str = "portico";
/// Shard tables per node unless configured otherwise (chosen by measurement,
/// see BENCHMARKS.md: one change at 30,000 Services stays well under 10 ms,
/// and a new connection's cost of one lookup per shard stays small).
pub const DEFAULT_SHARDS: u16 = 64;
/// Most shard tables ever used: full syncs and cleanup remove every
/// `portico-NN` table below it, so a change of the shard count leaves nothing behind.
pub const MAX_SHARDS: u16 = 64;
/// Name prefix of firewall chains (they live in the shared table).
pub const FIREWALL_PREFIX: &str = "firewall";

/// One of Portico's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `ip portico`: per-node chains, no-endpoint sets, firewall.
    Shared,
    /// `ip portico-NN`: the Services whose key hashes to NN.
    Shard(u16),
}

impl Table {
    /// The nftables table name (interned: encoders write it into every message).
    pub fn name(self) -> &'static str {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| all_tables().map(|t| t.to_string()).collect());
        let i = match self {
            Table::Shared => 0,
            Table::Shard(k) => 1 + usize::from(k),
        };
        names.get(i).map_or(TABLE, String::as_str)
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Table::Shared => f.write_str(TABLE),
            Table::Shard(k) => write!(f, "{TABLE}-{k:02}"),
        }
    }
}

/// Every table name a node may hold: the shared one and shards below [`MAX_SHARDS`].
pub fn all_tables() -> impl Iterator<Item = Table> {
    std::iter::once(Table::Shared).chain((0..MAX_SHARDS).map(Table::Shard))
}

/// The shard of Service `key` (`namespace/name`): FNV-1a, stable across
/// restarts and builds, so a restarted agent programs the same tables.
pub fn shard_of(key: &str, shards: u16) -> u16 {
    let h = fnv1a(key);
    u16::try_from(h % u64::from(shards.max(1))).unwrap_or(0)
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
/// Packet mark bit asking for masquerade in postrouting.
pub const MASQ_MARK: &str = "0x4000";
/// [`MASQ_MARK`] as a number.
pub const MASQ_MARK_BIT: u32 = 0x4000;
/// The base chain that sets [`MASQ_MARK`].
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";

/// Maps and sets of the tables whose elements Services own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Map {
    /// `ip daddr . meta l4proto . th dport : verdict` for ClusterIPs, external and LB IPs.
    ServiceIps,
    /// `meta l4proto . th dport : verdict` for NodePorts.
    ServiceNodeports,
    /// Service addresses without endpoints (a plain set in the shared
    /// table: the filter hooks reject new connections to them).
    NoEndpointServices,
    /// NodePorts without endpoints (plain set, shared table).
    NoEndpointNodeports,
    /// LB IPs with `loadBalancerSourceRanges`.
    FirewallIps,
}

impl Map {
    /// nftables name.
    pub fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::ServiceNodeports => "service-nodeports",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodeports => "no-endpoint-nodeports",
            Map::FirewallIps => "firewall-ips",
        }
    }

    /// Whether elements carry a verdict (`key : verdict`) or are plain keys.
    pub fn is_vmap(self) -> bool {
        !matches!(self, Map::NoEndpointServices | Map::NoEndpointNodeports)
    }

    /// The table holding this map for a Service of shard `shard`.
    pub fn table(self, shard: u16) -> Table {
        match self {
            Map::ServiceIps | Map::ServiceNodeports => Table::Shard(shard),
            Map::NoEndpointServices | Map::NoEndpointNodeports | Map::FirewallIps => Table::Shared,
        }
    }

    /// All maps, in declaration order.
    pub const ALL: [Map; 5] = [
        Map::ServiceIps,
        Map::ServiceNodeports,
        Map::NoEndpointServices,
        Map::NoEndpointNodeports,
        Map::FirewallIps,
    ];
}

/// One rule of a regular chain, typed so that both appliers can program it:
/// the `nft` one prints it (`Display`), the netlink one encodes expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `[numgen random mod M 0] meta l4proto P dnat to IP:PORT` (`modulo` 0: no gate).
    Pick {
        /// The gate's modulus; 0 means the rule always matches.
        modulo: u32,
        /// Protocol.
        proto: Proto,
        /// Endpoint address.
        ip: Ipv4Addr,
        /// Endpoint port.
        port: u16,
    },
    /// Every match must hold, then the verdict applies.
    Match {
        /// Conditions, in order.
        matches: Vec<Match>,
        /// What happens when they all hold.
        verdict: Verdict,
    },
    /// `update @SET { ip saddr }`: remember the client in a timed set.
    UpdateSaddr {
        /// Set name.
        set: String,
    },
}

/// One condition of a [`Rule::Match`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `ip daddr IP`.
    Daddr(Ipv4Addr),
    /// `PROTO dport PORT`.
    Dport(Proto, u16),
    /// `ip saddr NET`.
    SaddrIn(Ipv4Net),
    /// `ip saddr != NET`.
    SaddrNotIn(Ipv4Net),
    /// `ip saddr @SET`.
    SaddrInSet(String),
    /// `fib saddr type local`.
    FibSaddrLocal,
    /// `fib saddr type != local`.
    FibSaddrNotLocal,
    /// `numgen random mod M 0`.
    Numgen(u32),
}

/// The verdict of a [`Rule::Match`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// `return`.
    Return,
    /// `drop`.
    Drop,
}

impl Rule {
    /// A rule without conditions.
    pub fn verdict(verdict: Verdict) -> Rule {
        Rule::Match {
            matches: Vec::new(),
            verdict,
        }
    }

    fn when(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule::Match { matches, verdict }
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Match::Daddr(ip) => write!(f, "ip daddr {ip}"),
            Match::Dport(proto, port) => write!(f, "{} dport {port}", proto.nft()),
            Match::SaddrIn(net) => write!(f, "ip saddr {net}"),
            Match::SaddrNotIn(net) => write!(f, "ip saddr != {net}"),
            Match::SaddrInSet(set) => write!(f, "ip saddr @{set}"),
            Match::FibSaddrLocal => f.write_str("fib saddr type local"),
            Match::FibSaddrNotLocal => f.write_str("fib saddr type != local"),
            Match::Numgen(m) => write!(f, "numgen random mod {m} 0"),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
            Verdict::Return => f.write_str("return"),
            Verdict::Drop => f.write_str("drop"),
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Pick {
                modulo,
                proto,
                ip,
                port,
            } => {
                if *modulo > 0 {
                    write!(f, "numgen random mod {modulo} 0 ")?;
                }
                write!(f, "meta l4proto {} dnat to {ip}:{port}", proto.nft())
            }
            Rule::Match { matches, verdict } => {
                for m in matches {
                    write!(f, "{m} ")?;
                }
                write!(f, "{verdict}")
            }
            Rule::UpdateSaddr { set } => write!(f, "update @{set} {{ ip saddr }}"),
        }
    }
}

/// Declaration of a ClientIP affinity set with this timeout (seconds).
pub fn affinity_set_decl(timeout: u32) -> String {
    format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;")
}

/// A UDP flow selector whose conntrack entries must go when endpoints change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdpFlow {
    /// Original destination address (a Service VIP), or any for NodePorts.
    pub dst: Option<Ipv4Addr>,
    /// Original destination port.
    pub dport: u16,
    /// Reply source (the endpoint), or any.
    pub endpoint: Option<Ipv4Addr>,
}

/// What the health check node port of an `externalTrafficPolicy: Local` Service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready endpoints on this node.
    pub local_endpoints: usize,
}

/// Everything one Service contributes to the table. Names are stable per
/// Service port, so re-planning unchanged input gives an equal plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePlan {
    /// The shard table of this Service ([`shard_of`] its `namespace/name`).
    pub shard: u16,
    /// Regular chains and their rules (firewall chains in the shared table,
    /// the others in the shard table: see [`ServicePlan::chain_table`]).
    pub chains: VecMap<String, Vec<Rule>>,
    /// ClientIP affinity sets (name → timeout in seconds).
    pub sets: VecMap<String, u32>,
    /// Map elements: (map, key) → value (empty for the plain no-endpoint sets).
    pub elements: VecMap<(Map, String), String>,
    /// Endpoint IPs that need the hairpin masquerade.
    pub hairpin: BTreeSet<Ipv4Addr>,
    /// UDP flows served by endpoints (used to flush conntrack on removal).
    pub udp_flows: BTreeSet<UdpFlow>,
    /// UDP Service addresses with endpoints (flush conntrack when they gain their first).
    pub udp_live: BTreeSet<UdpFlow>,
    /// Health check node ports this Service needs.
    pub health: VecMap<u16, HealthCheck>,
}

impl ServicePlan {
    /// The table holding chain `name` of this plan.
    pub fn chain_table(&self, name: &str) -> Table {
        if name.starts_with(FIREWALL_PREFIX) {
            Table::Shared
        } else {
            Table::Shard(self.shard)
        }
    }

    /// Number of rules, for metrics.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}

/// Node-level inputs of the base table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The pod network: sources inside it are pods (no masquerade to ClusterIPs).
    pub cluster_cidr: Ipv4Net,
    /// `--nodeport-addresses`; empty means every local address.
    pub nodeport_addresses: Vec<Ipv4Net>,
    /// Number of shard tables (1..=[`MAX_SHARDS`]; [`DEFAULT_SHARDS`] normally).
    pub shards: u16,
    /// `masquerade fully-random` (kube-proxy's choice, against the SNAT
    /// port-allocation race) instead of plain `masquerade`, which keeps the
    /// client's source port while it is free. Off by default: rewritten
    /// ports make new connections hit the server's TIME_WAIT sockets
    /// (see `render_shared`).
    pub masquerade_fully_random: bool,
}

impl Base {
    /// The shard tables in use.
    pub fn shard_tables(&self) -> impl Iterator<Item = Table> {
        (0..self.shards.clamp(1, MAX_SHARDS)).map(Table::Shard)
    }
}

/// 40-bit FNV-1a digest in base32, 8 characters: the stable chain-name prefix
/// (kube-proxy uses SHA-256; any stable hash keeps names unique enough, the
/// full readable name follows it).
pub fn hash8(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = fnv1a(s);
    (0..8)
        .map(|i| char::from(ALPHABET[((h >> (i * 5)) & 31) as usize]))
        .collect()
}

/// `ns/name/proto/portname`: the readable part of every name of one Service port.
fn port_base(p: &SvcPort) -> String {
    format!(
        "{}/{}/{}/{}",
        p.namespace,
        p.name,
        p.proto.nft(),
        p.port_name
    )
}

/// A map element value jumping to `chain` for good.
fn goto(chain: &str) -> String {
    format!("goto {chain}")
}

fn named(prefix: &str, base: &str) -> String {
    format!("{prefix}-{}-{base}", hash8(base))
}

/// Plans one Service from its ports (all of the same Service).
pub fn plan_service(ports: &[SvcPort], base: &Base) -> ServicePlan {
    let mut plan = ServicePlan::default();
    if let Some(p) = ports.first() {
        let key = format!("{}/{}", p.namespace, p.name);
        plan.shard = shard_of(&key, base.shards.clamp(1, MAX_SHARDS));
    }
    for p in ports {
        plan_port(p, base, &mut plan);
    }
    // Plans are kept until the Service changes: no spare capacity.
    plan.chains.shrink_to_fit();
    plan.sets.shrink_to_fit();
    plan.elements.shrink_to_fit();
    plan.health.shrink_to_fit();
    plan
}

fn plan_port(p: &SvcPort, base: &Base, plan: &mut ServicePlan) {
    let proto = p.proto.nft();
    let pbase = port_base(p);
    let svc_chain = named("service", &pbase);
    let ext_chain = named("external", &pbase);
    let local_chain = named("local", &pbase);
    let vip_key = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", p.port);
    let external_vips: Vec<Ipv4Addr> = p.external_ips.iter().chain(&p.lb_ips).copied().collect();
    let cluster = p.cluster_endpoints();
    let local = p.local_endpoints();

    if let Some(hc) = p
        .health_check_node_port
        .filter(|_| p.external_local && p.has_external())
    {
        let h = HealthCheck {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            local_endpoints: p.ready_local_count(),
        };
        plan.health.insert(hc, h);
    }

    if cluster.is_empty() {
        // No endpoints anywhere: every address of the port refuses new
        // connections (the filter hooks send the reject).
        for ip in std::iter::once(p.cluster_ip).chain(external_vips.iter().copied()) {
            plan.elements
                .insert((Map::NoEndpointServices, vip_key(ip)), String::new());
        }
        if let Some(np) = p.node_port {
            plan.elements.insert(
                (Map::NoEndpointNodeports, format!("{proto} . {np}")),
                String::new(),
            );
        }
        return;
    }

    if p.proto == Proto::Udp {
        for ep in cluster.iter().chain(&local) {
            plan.udp_flows.insert(UdpFlow {
                dst: Some(p.cluster_ip),
                dport: p.port,
                endpoint: Some(ep.ip),
            });
            for ip in &external_vips {
                plan.udp_flows.insert(UdpFlow {
                    dst: Some(*ip),
                    dport: p.port,
                    endpoint: Some(ep.ip),
                });
            }
            if let Some(np) = p.node_port {
                plan.udp_flows.insert(UdpFlow {
                    dst: None,
                    dport: np,
                    endpoint: Some(ep.ip),
                });
            }
        }
        plan.udp_live.insert(UdpFlow {
            dst: Some(p.cluster_ip),
            dport: p.port,
            endpoint: None,
        });
        for ip in &external_vips {
            plan.udp_live.insert(UdpFlow {
                dst: Some(*ip),
                dport: p.port,
                endpoint: None,
            });
        }
        if let Some(np) = p.node_port {
            plan.udp_live.insert(UdpFlow {
                dst: None,
                dport: np,
                endpoint: None,
            });
        }
    }
    let uses_local = p.internal_local || (p.external_local && p.has_external());
    let uses_cluster = !p.internal_local || p.has_external();
    if uses_cluster {
        plan.hairpin.extend(cluster.iter().map(|e| e.ip));
    }
    if uses_local {
        plan.hairpin.extend(local.iter().map(|e| e.ip));
    }

    // Cluster chain: off-cluster sources reaching the ClusterIP directly get
    // masqueraded so replies come back through this node. Unlike kube-proxy,
    // the node's own addresses are not: pods reach node addresses without
    // NAT (the Kubernetes network model), so replies return here anyway, and
    // skipping the SNAT saves its per-connection cost and keeps the node's
    // source ports, which masquerading many clients into one address cannot.
    if uses_cluster {
        let mut rules: Vec<Rule> = vec![Rule::when(
            vec![
                Match::Daddr(p.cluster_ip),
                Match::Dport(p.proto, p.port),
                Match::SaddrNotIn(base.cluster_cidr),
                Match::FibSaddrNotLocal,
            ],
            Verdict::Jump(MARK_FOR_MASQUERADE.into()),
        )];
        rules.extend(select(p, &pbase, &cluster, plan));
        plan.chains.insert(svc_chain.clone(), rules);
    }
    if uses_local {
        let rules = if local.is_empty() {
            // Local policy and no endpoint here: drop (not reject), so
            // load balancers health-checking this node see it as down.
            vec![Rule::verdict(Verdict::Drop)]
        } else {
            select(p, &pbase, &local, plan)
        };
        plan.chains.insert(local_chain.clone(), rules);
    }

    let internal_target = if p.internal_local {
        &local_chain
    } else {
        &svc_chain
    };
    plan.elements.insert(
        (Map::ServiceIps, vip_key(p.cluster_ip)),
        goto(internal_target),
    );

    if p.has_external() {
        let rules = if p.external_local {
            vec![
                // Pods and the node itself are not "external": they may use any endpoint.
                Rule::when(
                    vec![Match::SaddrIn(base.cluster_cidr)],
                    Verdict::Goto(svc_chain.clone()),
                ),
                Rule::when(
                    vec![Match::FibSaddrLocal],
                    Verdict::Jump(MARK_FOR_MASQUERADE.into()),
                ),
                Rule::when(vec![Match::FibSaddrLocal], Verdict::Goto(svc_chain.clone())),
                Rule::verdict(Verdict::Goto(local_chain.clone())),
            ]
        } else {
            vec![
                Rule::verdict(Verdict::Jump(MARK_FOR_MASQUERADE.into())),
                Rule::verdict(Verdict::Goto(svc_chain.clone())),
            ]
        };
        plan.chains.insert(ext_chain.clone(), rules);
        for ip in &external_vips {
            plan.elements
                .insert((Map::ServiceIps, vip_key(*ip)), goto(&ext_chain));
        }
        if let Some(np) = p.node_port {
            plan.elements.insert(
                (Map::ServiceNodeports, format!("{proto} . {np}")),
                goto(&ext_chain),
            );
        }
        if !p.source_ranges.is_empty() && !p.lb_ips.is_empty() {
            let fw_chain = named(FIREWALL_PREFIX, &pbase);
            let mut rules: Vec<Rule> = p
                .source_ranges
                .iter()
                .map(|r| Rule::when(vec![Match::SaddrIn(*r)], Verdict::Return))
                .collect();
            rules.push(Rule::verdict(Verdict::Drop));
            plan.chains.insert(fw_chain.clone(), rules);
            for ip in &p.lb_ips {
                plan.elements
                    .insert((Map::FirewallIps, vip_key(*ip)), goto(&fw_chain));
            }
        }
    }
}

/// Rules choosing one of `eps` uniformly: rule i matches with probability
/// 1/(N-i) given that the earlier ones did not, so each endpoint gets 1/N.
fn select(p: &SvcPort, pbase: &str, eps: &[&Endpoint], plan: &mut ServicePlan) -> Vec<Rule> {
    let n = eps.len();
    let modulo = |i: usize| {
        if i + 1 < n {
            u32::try_from(n - i).unwrap_or(u32::MAX)
        } else {
            0
        }
    };
    let Some(timeout) = p.affinity_timeout else {
        return eps
            .iter()
            .enumerate()
            .map(|(i, e)| Rule::Pick {
                modulo: modulo(i),
                proto: p.proto,
                ip: e.ip,
                port: e.port,
            })
            .collect();
    };
    // ClientIP affinity: one timed set per endpoint remembers its clients.
    let mut checks: Vec<Rule> = Vec::with_capacity(2 * n);
    let mut picks: Vec<Rule> = Vec::with_capacity(n);
    for (i, e) in eps.iter().enumerate() {
        let ebase = format!("{pbase}__{}/{}", e.ip, e.port);
        let ep_chain = named("endpoint", &ebase);
        let set = named("affinity", &ebase);
        plan.sets.insert(set.clone(), timeout);
        plan.chains.insert(
            ep_chain.clone(),
            vec![
                Rule::UpdateSaddr { set: set.clone() },
                Rule::Pick {
                    modulo: 0,
                    proto: p.proto,
                    ip: e.ip,
                    port: e.port,
                },
            ],
        );
        checks.push(Rule::when(
            vec![Match::SaddrInSet(set)],
            Verdict::Goto(ep_chain.clone()),
        ));
        let gate = match modulo(i) {
            0 => vec![],
            m => vec![Match::Numgen(m)],
        };
        picks.push(Rule::when(gate, Verdict::Goto(ep_chain)));
    }
    checks.extend(picks);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(node_port: Option<u16>) -> SvcPort {
        SvcPort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: String::new(),
            proto: Proto::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 30),
            port: 80,
            node_port,
            external_ips: vec![],
            lb_ips: vec![],
            source_ranges: vec![],
            external_local: false,
            internal_local: false,
            affinity_timeout: None,
            health_check_node_port: None,
            endpoints: vec![Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, 10),
                port: 8080,
                local: true,
                ready: true,
                serving: true,
                terminating: false,
            }],
        }
    }

    fn base() -> Base {
        Base {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            nodeport_addresses: vec![],
            shards: DEFAULT_SHARDS,
            masquerade_fully_random: false,
        }
    }

    fn rules_of(plan: &ServicePlan, prefix: &str) -> Vec<String> {
        let (_, rules) = plan
            .chains
            .iter()
            .find(|(name, _)| name.starts_with(prefix))
            .unwrap();
        rules.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn cluster_ip_masquerades_only_sources_off_the_pod_network_and_off_this_node() {
        let plan = plan_service(&[port(None)], &base());
        assert_eq!(
            rules_of(&plan, "service-")[0],
            "ip daddr 10.96.0.30 tcp dport 80 ip saddr != 10.244.0.0/16 \
             fib saddr type != local jump mark-for-masquerade"
        );
    }

    #[test]
    fn node_port_masquerades_every_source_with_cluster_policy() {
        let plan = plan_service(&[port(Some(30080))], &base());
        let rules = rules_of(&plan, "external-");
        assert_eq!(rules[0], "jump mark-for-masquerade");
        assert!(rules[1].starts_with("goto service-"), "{rules:?}");
    }
}
