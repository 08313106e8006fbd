//! Renders plans as `nft -f` scripts: the whole table for a full sync, and
//! the difference between two plans of one Service for an incremental sync.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::plan::{affinity_set_decl, Base, Map, Rule, ServicePlan, MASQ_MARK, TABLE};

/// The fixed part of the table: maps, base chains and dispatch chains.
pub fn render_base(base: &Base) -> String {
    let mut np_match = String::from("fib daddr type local ip daddr != 127.0.0.0/8");
    let mut out = String::new();
    let _ = writeln!(out, "table ip {TABLE} {{");
    let _ = writeln!(out, "\tcomment \"Portico Service proxy\"");
    for (map, ty) in [
        (Map::ServiceIps, "ipv4_addr . inet_proto . inet_service"),
        (Map::ServiceNodeports, "inet_proto . inet_service"),
        (
            Map::NoEndpointServices,
            "ipv4_addr . inet_proto . inet_service",
        ),
        (Map::NoEndpointNodeports, "inet_proto . inet_service"),
        (Map::FirewallIps, "ipv4_addr . inet_proto . inet_service"),
    ] {
        let _ = writeln!(out, "\tmap {} {{ type {ty} : verdict; }}", map.name());
    }
    let _ = writeln!(out, "\tset hairpin {{ type ipv4_addr . ipv4_addr; }}");
    if !base.nodeport_addresses.is_empty() {
        let cidrs: Vec<String> = base
            .nodeport_addresses
            .iter()
            .map(|n| n.trunc().to_string())
            .collect();
        let _ = writeln!(
            out,
            "\tset nodeport-ips {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }}; }}",
            cidrs.join(", ")
        );
        np_match.push_str(" ip daddr @nodeport-ips");
    }
    let chains: Vec<(&str, Vec<String>)> = vec![
        (
            "filter-prerouting",
            vec![
                "type filter hook prerouting priority -110; policy accept;".into(),
                "ct state new jump firewall-check".into(),
            ],
        ),
        (
            "filter-input",
            vec![
                "type filter hook input priority -110; policy accept;".into(),
                "ct state new jump nodeport-endpoints-check".into(),
                "ct state new jump service-endpoints-check".into(),
            ],
        ),
        (
            "filter-forward",
            vec![
                "type filter hook forward priority -110; policy accept;".into(),
                "ct state new jump service-endpoints-check".into(),
            ],
        ),
        (
            "filter-output",
            vec![
                "type filter hook output priority -110; policy accept;".into(),
                "ct state new jump service-endpoints-check".into(),
                "ct state new jump firewall-check".into(),
            ],
        ),
        (
            "firewall-check",
            vec![format!(
                "ip daddr . meta l4proto . th dport vmap @{}",
                Map::FirewallIps.name()
            )],
        ),
        (
            "service-endpoints-check",
            vec![format!(
                "ip daddr . meta l4proto . th dport vmap @{}",
                Map::NoEndpointServices.name()
            )],
        ),
        (
            "nodeport-endpoints-check",
            vec![format!(
                "{np_match} meta l4proto . th dport vmap @{}",
                Map::NoEndpointNodeports.name()
            )],
        ),
        ("reject-chain", vec!["reject".into()]),
        (
            "mark-for-masquerade",
            vec![format!("meta mark set meta mark or {MASQ_MARK}")],
        ),
        (
            "nat-prerouting",
            vec![
                "type nat hook prerouting priority dstnat; policy accept;".into(),
                "jump services".into(),
            ],
        ),
        (
            "nat-output",
            vec![
                "type nat hook output priority -100; policy accept;".into(),
                "jump services".into(),
            ],
        ),
        (
            "nat-postrouting",
            vec![
                "type nat hook postrouting priority srcnat; policy accept;".into(),
                "jump masquerading".into(),
            ],
        ),
        (
            "masquerading",
            vec![
                // Hairpin: a pod reaching itself through a Service must see the
                // node as the source, or it would answer itself directly.
                "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random".into(),
                format!("meta mark & {MASQ_MARK} == 0 return"),
                format!("meta mark set meta mark xor {MASQ_MARK}"),
                "masquerade fully-random".into(),
            ],
        ),
        (
            "services",
            vec![
                format!(
                    "ip daddr . meta l4proto . th dport vmap @{}",
                    Map::ServiceIps.name()
                ),
                format!(
                    "{np_match} meta l4proto . th dport vmap @{}",
                    Map::ServiceNodeports.name()
                ),
            ],
        ),
    ];
    for (name, rules) in &chains {
        let _ = writeln!(out, "\tchain {name} {{");
        for r in rules {
            let _ = writeln!(out, "\t\t{r}");
        }
        let _ = writeln!(out, "\t}}");
    }
    let _ = writeln!(out, "}}");
    out
}

/// Full sync: recreate the table in one transaction. `add; delete; add`
/// works whether or not the table exists, and conntrack entries (so
/// established connections) survive because only new flows consult the rules.
pub fn render_full<'a>(
    base: &Base,
    plans: impl IntoIterator<Item = &'a ServicePlan> + Clone,
) -> String {
    let mut out = String::with_capacity(1 << 16);
    let _ = writeln!(out, "add table ip {TABLE}\ndelete table ip {TABLE}");
    out.push_str(&render_base(base));
    let mut elements: BTreeMap<Map, Vec<String>> = BTreeMap::new();
    let mut hairpin: std::collections::BTreeSet<Ipv4Addr> = std::collections::BTreeSet::new();
    // Every object first (rules may jump to chains of any Service), then the
    // rules; the block syntax parses faster than one command per rule.
    let _ = writeln!(out, "table ip {TABLE} {{");
    for plan in plans.clone() {
        for (name, timeout) in &plan.sets {
            let _ = writeln!(out, "\tset {name} {{ {} }}", affinity_set_decl(*timeout));
        }
        for name in plan.chains.keys() {
            let _ = writeln!(out, "\tchain {name} {{ }}");
        }
    }
    let _ = writeln!(out, "}}\ntable ip {TABLE} {{");
    for plan in plans.clone() {
        for (name, rules) in &plan.chains {
            let _ = writeln!(out, "\tchain {name} {{");
            for r in rules {
                let _ = writeln!(out, "\t\t{r}");
            }
            let _ = writeln!(out, "\t}}");
        }
    }
    let _ = writeln!(out, "}}");
    for plan in plans {
        for ((map, key), value) in &plan.elements {
            elements
                .entry(*map)
                .or_default()
                .push(format!("{key} : {value}"));
        }
        hairpin.extend(plan.hairpin.iter().copied());
    }
    for (map, elems) in elements {
        // Chunks keep single lines of the script reasonable.
        for chunk in elems.chunks(4096) {
            let _ = writeln!(
                out,
                "add element ip {TABLE} {} {{ {} }}",
                map.name(),
                chunk.join(", ")
            );
        }
    }
    let pairs: Vec<String> = hairpin.iter().map(|ip| format!("{ip} . {ip}")).collect();
    for chunk in pairs.chunks(4096) {
        let _ = writeln!(
            out,
            "add element ip {TABLE} hairpin {{ {} }}",
            chunk.join(", ")
        );
    }
    out
}

/// One Service's objects as `nft` commands (sets, chains, elements): the
/// readable form used by snapshot tests and logs.
pub fn render_service(plan: &ServicePlan) -> String {
    let mut out = String::new();
    for (name, timeout) in &plan.sets {
        let _ = writeln!(
            out,
            "add set ip {TABLE} {name} {{ {} }}",
            affinity_set_decl(*timeout)
        );
    }
    for name in plan.chains.keys() {
        let _ = writeln!(out, "add chain ip {TABLE} {name}");
    }
    for (name, rules) in &plan.chains {
        for r in rules {
            let _ = writeln!(out, "add rule ip {TABLE} {name} {r}");
        }
    }
    for ((map, key), value) in &plan.elements {
        let _ = writeln!(
            out,
            "add element ip {TABLE} {} {{ {key} : {value} }}",
            map.name()
        );
    }
    for ip in &plan.hairpin {
        let _ = writeln!(out, "add element ip {TABLE} hairpin {{ {ip} . {ip} }}");
    }
    out
}

/// An incremental transaction, typed (both appliers consume it). Sections
/// go to the kernel in this order: objects exist before anything refers to
/// them, element deletes come before adds (a key may move from one Service to
/// another in one batch), and chains that lost all references are flushed last.
#[derive(Debug, Default)]
pub struct Diff {
    /// New affinity sets (name, timeout in seconds).
    pub new_sets: Vec<(String, u32)>,
    /// New chains (created, then flushed: they may still exist, flushed,
    /// waiting for deferred deletion).
    pub new_chains: Vec<String>,
    /// Chains whose rules are replaced (flush, then add these rules).
    pub rewrite: Vec<(String, Vec<Rule>)>,
    /// Map elements to delete: (map, key).
    pub delete_elements: Vec<(Map, String)>,
    /// Map elements to add: (map, key, value).
    pub add_elements: Vec<(Map, String, String)>,
    /// Hairpin pairs to delete.
    pub hairpin_delete: Vec<Ipv4Addr>,
    /// Hairpin pairs to add.
    pub hairpin_add: Vec<Ipv4Addr>,
    /// Chains now empty and unreferenced: flushed now, deleted in a later
    /// transaction.
    pub removed_chains: Vec<String>,
    /// Sets no longer referenced (to delete in a later transaction).
    pub removed_sets: Vec<String>,
}

impl Diff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.new_sets.is_empty()
            && self.new_chains.is_empty()
            && self.rewrite.is_empty()
            && self.delete_elements.is_empty()
            && self.add_elements.is_empty()
            && self.hairpin_delete.is_empty()
            && self.hairpin_add.is_empty()
            && self.removed_chains.is_empty()
    }

    /// The transaction as `nft -f` text.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for (name, timeout) in &self.new_sets {
            let _ = writeln!(
                out,
                "add set ip {TABLE} {name} {{ {} }}",
                affinity_set_decl(*timeout)
            );
        }
        for name in &self.new_chains {
            let _ = writeln!(out, "add chain ip {TABLE} {name}");
        }
        for (name, rules) in &self.rewrite {
            let _ = writeln!(out, "flush chain ip {TABLE} {name}");
            for r in rules {
                let _ = writeln!(out, "add rule ip {TABLE} {name} {r}");
            }
        }
        for (map, key) in &self.delete_elements {
            let _ = writeln!(out, "delete element ip {TABLE} {} {{ {key} }}", map.name());
        }
        for ip in &self.hairpin_delete {
            let _ = writeln!(out, "delete element ip {TABLE} hairpin {{ {ip} . {ip} }}");
        }
        for (map, key, value) in &self.add_elements {
            let _ = writeln!(
                out,
                "add element ip {TABLE} {} {{ {key} : {value} }}",
                map.name()
            );
        }
        for ip in &self.hairpin_add {
            let _ = writeln!(out, "add element ip {TABLE} hairpin {{ {ip} . {ip} }}");
        }
        for name in &self.removed_chains {
            let _ = writeln!(out, "flush chain ip {TABLE} {name}");
        }
        out
    }

    /// Adds the changes from `old` to `new` of one Service.
    pub fn service(&mut self, old: &ServicePlan, new: &ServicePlan) {
        for (name, timeout) in &new.sets {
            if !old.sets.contains_key(name) {
                self.new_sets.push((name.clone(), *timeout));
            }
        }
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                Some(old_rules) if old_rules == rules => continue,
                Some(_) => {}
                None => self.new_chains.push(name.clone()),
            }
            self.rewrite.push((name.clone(), rules.clone()));
        }
        for ((map, key), value) in &old.elements {
            if new.elements.get(&(*map, key.clone())) != Some(value) {
                self.delete_elements.push((*map, key.clone()));
            }
        }
        for ((map, key), value) in &new.elements {
            if old.elements.get(&(*map, key.clone())) != Some(value) {
                self.add_elements.push((*map, key.clone(), value.clone()));
            }
        }
        for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
            self.removed_chains.push(name.clone());
        }
        self.removed_sets.extend(
            old.sets
                .keys()
                .filter(|n| !new.sets.contains_key(*n))
                .cloned(),
        );
    }

    /// Hairpin pair changes (computed over all Services by the caller).
    pub fn hairpin(&mut self, added: &[Ipv4Addr], removed: &[Ipv4Addr]) {
        self.hairpin_delete.extend_from_slice(removed);
        self.hairpin_add.extend_from_slice(added);
    }
}

/// Deletes chains and sets that were flushed in an earlier transaction.
pub fn render_deletes(chains: &[String], sets: &[String]) -> String {
    let mut out = String::new();
    for c in chains {
        let _ = writeln!(out, "delete chain ip {TABLE} {c}");
    }
    for s in sets {
        let _ = writeln!(out, "delete set ip {TABLE} {s}");
    }
    out
}
