//! Renders plans as `nft -f` scripts: the whole table for a full sync, and
//! the difference between two plans of one Service for an incremental sync.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::plan::{
    affinity_set_decl, all_tables, Base, Map, Rule, ServicePlan, Table, MARK_FOR_MASQUERADE,
    MASQ_MARK,
};

/// The `type` of a map or set's declaration.
pub fn map_decl(map: Map) -> &'static str {
    match map {
        Map::ServiceIps | Map::FirewallIps => {
            "type ipv4_addr . inet_proto . inet_service : verdict;"
        }
        Map::ServiceNodeports => "type inet_proto . inet_service : verdict;",
        Map::NoEndpointServices => "type ipv4_addr . inet_proto . inet_service;",
        Map::NoEndpointNodeports => "type inet_proto . inet_service;",
    }
}

/// The maps of `table`'s skeleton, in declaration order.
pub fn maps_of(table: Table) -> &'static [Map] {
    match table {
        Table::Shared => &[
            Map::FirewallIps,
            Map::NoEndpointServices,
            Map::NoEndpointNodeports,
        ],
        Table::Shard(_) => &[Map::ServiceIps, Map::ServiceNodeports],
    }
}

/// `fib daddr type local ip daddr != 127.0.0.0/8 [ip daddr @nodeport-ips]`,
/// and the `nodeport-ips` declaration it needs, if any.
fn nodeport_match(base: &Base) -> (String, Option<String>) {
    let mut m = String::from("fib daddr type local ip daddr != 127.0.0.0/8");
    if base.nodeport_addresses.is_empty() {
        return (m, None);
    }
    let cidrs: Vec<String> = base
        .nodeport_addresses
        .iter()
        .map(|n| n.trunc().to_string())
        .collect();
    m.push_str(" ip daddr @nodeport-ips");
    let decl = format!(
        "set nodeport-ips {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }}; }}",
        cidrs.join(", ")
    );
    (m, Some(decl))
}

fn write_table(out: &mut String, table: Table, decls: &[String], chains: &[(&str, Vec<String>)]) {
    let _ = writeln!(out, "table ip {table} {{");
    let _ = writeln!(out, "\tcomment \"Portico Service proxy\"");
    for map in maps_of(table) {
        let _ = writeln!(
            out,
            "\t{} {} {{ {} }}",
            if map.is_vmap() { "map" } else { "set" },
            map.name(),
            map_decl(*map)
        );
    }
    for d in decls {
        let _ = writeln!(out, "\t{d}");
    }
    for (name, rules) in chains {
        let _ = writeln!(out, "\tchain {name} {{");
        for r in rules {
            let _ = writeln!(out, "\t\t{r}");
        }
        let _ = writeln!(out, "\t}}");
    }
    let _ = writeln!(out, "}}");
}

/// The shared table's skeleton: filter hooks (no-endpoint reject, firewall),
/// masquerade and hairpin.
pub fn render_shared(base: &Base) -> String {
    let (np_match, np_decl) = nodeport_match(base);
    let masquerade = if base.masquerade_fully_random {
        "masquerade fully-random"
    } else {
        "masquerade"
    };
    let mut decls = vec!["set hairpin { type ipv4_addr . ipv4_addr; }".to_string()];
    decls.extend(np_decl);
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
                "ip daddr . meta l4proto . th dport @{} reject",
                Map::NoEndpointServices.name()
            )],
        ),
        (
            "nodeport-endpoints-check",
            vec![format!(
                "{np_match} meta l4proto . th dport @{} reject",
                Map::NoEndpointNodeports.name()
            )],
        ),
        (
            "nat-postrouting",
            vec![
                "type nat hook postrouting priority srcnat; policy accept;".into(),
                "jump masquerading".into(),
            ],
        ),
        // Plain `masquerade` by default, not kube-proxy's `fully-random`:
        // the source port is kept while the node-side tuple is free. A
        // rewritten port lands new SYNs on the server's TIME_WAIT sockets of
        // unrelated earlier connections, whose sequence numbers and TCP
        // timestamps do not follow on; the server refuses them (PAWS) and
        // the client has to retransmit the SYN: new connections ran at a
        // quarter of direct (BENCHMARKS.md). A port clash still gets a fresh
        // port; `conntrack -S` in the data plane bench shows no insert
        // failures without the flag. `--masquerade-fully-random` restores it.
        (
            "masquerading",
            vec![
                // Hairpin: a pod reaching itself through a Service must see the
                // node as the source, or it would answer itself directly.
                format!("ct status dnat ip saddr . ip daddr @hairpin {masquerade}"),
                format!("meta mark & {MASQ_MARK} == 0 return"),
                format!("meta mark set meta mark xor {MASQ_MARK}"),
                masquerade.into(),
            ],
        ),
    ];
    let mut out = String::new();
    write_table(&mut out, Table::Shared, &decls, &chains);
    out
}

/// One shard table's skeleton: its verdict maps and NAT base chains.
pub fn render_shard(base: &Base, shard: u16) -> String {
    let (np_match, np_decl) = nodeport_match(base);
    let decls: Vec<String> = np_decl.into_iter().collect();
    let chains: Vec<(&str, Vec<String>)> = vec![
        (
            MARK_FOR_MASQUERADE,
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
    let mut out = String::new();
    write_table(&mut out, Table::Shard(shard), &decls, &chains);
    out
}

/// Every table's skeleton: the shared one, then each shard.
pub fn render_base(base: &Base) -> String {
    let mut out = render_shared(base);
    for t in base.shard_tables() {
        if let Table::Shard(k) = t {
            out.push_str(&render_shard(base, k));
        }
    }
    out
}

/// `add` then `delete` of every table Portico may own: removes them whether
/// or not they exist (shards beyond the current count included).
fn delete_all_tables(out: &mut String) {
    for t in all_tables() {
        let _ = writeln!(out, "add table ip {t}\ndelete table ip {t}");
    }
}

/// A map element as `nft` writes it.
fn element(map: Map, key: &str, value: &str) -> String {
    if map.is_vmap() {
        format!("{key} : {value}")
    } else {
        key.to_string()
    }
}

/// Full sync: recreate every table in one transaction. `add; delete; add`
/// works whether or not a table exists, and conntrack entries (so
/// established connections) survive because only new flows consult the rules.
pub fn render_full<'a>(
    base: &Base,
    plans: impl IntoIterator<Item = &'a ServicePlan> + Clone,
) -> String {
    let mut out = String::with_capacity(1 << 16);
    delete_all_tables(&mut out);
    out.push_str(&render_base(base));
    // Every object first (rules may jump to chains of any Service), then the
    // rules; the block syntax parses faster than one command per rule.
    let mut objects: BTreeMap<Table, Vec<String>> = BTreeMap::new();
    let mut chains: BTreeMap<Table, Vec<(&str, &[Rule])>> = BTreeMap::new();
    let mut elements: BTreeMap<(Table, Map), Vec<String>> = BTreeMap::new();
    let mut hairpin: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for plan in plans {
        let shard = Table::Shard(plan.shard);
        for (name, timeout) in &plan.sets {
            objects
                .entry(shard)
                .or_default()
                .push(format!("set {name} {{ {} }}", affinity_set_decl(*timeout)));
        }
        for (name, rules) in &plan.chains {
            let t = plan.chain_table(name);
            objects
                .entry(t)
                .or_default()
                .push(format!("chain {name} {{ }}"));
            chains.entry(t).or_default().push((name, rules));
        }
        for ((map, key), value) in &plan.elements {
            elements
                .entry((map.table(plan.shard), *map))
                .or_default()
                .push(element(*map, key, value));
        }
        hairpin.extend(plan.hairpin.iter().copied());
    }
    for (t, objs) in &objects {
        let _ = writeln!(out, "table ip {t} {{");
        for o in objs {
            let _ = writeln!(out, "\t{o}");
        }
        let _ = writeln!(out, "}}");
    }
    for (t, chains) in &chains {
        let _ = writeln!(out, "table ip {t} {{");
        for (name, rules) in chains {
            let _ = writeln!(out, "\tchain {name} {{");
            for r in *rules {
                let _ = writeln!(out, "\t\t{r}");
            }
            let _ = writeln!(out, "\t}}");
        }
        let _ = writeln!(out, "}}");
    }
    for ((t, map), elems) in elements {
        // Chunks keep single lines of the script reasonable.
        for chunk in elems.chunks(4096) {
            let _ = writeln!(
                out,
                "add element ip {t} {} {{ {} }}",
                map.name(),
                chunk.join(", ")
            );
        }
    }
    let pairs: Vec<String> = hairpin.iter().map(|ip| format!("{ip} . {ip}")).collect();
    for chunk in pairs.chunks(4096) {
        let _ = writeln!(
            out,
            "add element ip {} hairpin {{ {} }}",
            Table::Shared,
            chunk.join(", ")
        );
    }
    out
}

/// One Service's objects as `nft` commands (sets, chains, elements): the
/// readable form used by snapshot tests and logs.
pub fn render_service(plan: &ServicePlan) -> String {
    let mut out = String::new();
    let shard = Table::Shard(plan.shard);
    for (name, timeout) in &plan.sets {
        let _ = writeln!(
            out,
            "add set ip {shard} {name} {{ {} }}",
            affinity_set_decl(*timeout)
        );
    }
    for name in plan.chains.keys() {
        let _ = writeln!(out, "add chain ip {} {name}", plan.chain_table(name));
    }
    for (name, rules) in &plan.chains {
        let t = plan.chain_table(name);
        for r in rules {
            let _ = writeln!(out, "add rule ip {t} {name} {r}");
        }
    }
    for ((map, key), value) in &plan.elements {
        let _ = writeln!(
            out,
            "add element ip {} {} {{ {} }}",
            map.table(plan.shard),
            map.name(),
            element(*map, key, value)
        );
    }
    for ip in &plan.hairpin {
        let _ = writeln!(
            out,
            "add element ip {} hairpin {{ {ip} . {ip} }}",
            Table::Shared
        );
    }
    out
}

/// An incremental transaction, typed (both appliers consume it). Sections
/// go to the kernel in this order: objects exist before anything refers to
/// them, element deletes come before adds (a key may move from one Service to
/// another in one batch), and chains that lost all references are flushed last.
/// Every object names its table.
#[derive(Debug, Default)]
pub struct Diff {
    /// New affinity sets (table, name, timeout in seconds).
    pub new_sets: Vec<(Table, String, u32)>,
    /// New chains (created, then flushed: they may still exist, flushed,
    /// waiting for deferred deletion).
    pub new_chains: Vec<(Table, String)>,
    /// Chains whose rules are replaced (flush, then add these rules).
    pub rewrite: Vec<(Table, String, Vec<Rule>)>,
    /// Map elements to delete: (table, map, key).
    pub delete_elements: Vec<(Table, Map, String)>,
    /// Map elements to add: (table, map, key, value).
    pub add_elements: Vec<(Table, Map, String, String)>,
    /// Hairpin pairs to delete.
    pub hairpin_delete: Vec<Ipv4Addr>,
    /// Hairpin pairs to add.
    pub hairpin_add: Vec<Ipv4Addr>,
    /// Chains now empty and unreferenced: flushed now, deleted in a later
    /// transaction.
    pub removed_chains: Vec<(Table, String)>,
    /// Sets no longer referenced (to delete in a later transaction).
    pub removed_sets: Vec<(Table, String)>,
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
        let shared = Table::Shared;
        for (t, name, timeout) in &self.new_sets {
            let _ = writeln!(
                out,
                "add set ip {t} {name} {{ {} }}",
                affinity_set_decl(*timeout)
            );
        }
        for (t, name) in &self.new_chains {
            let _ = writeln!(out, "add chain ip {t} {name}");
        }
        for (t, name, rules) in &self.rewrite {
            let _ = writeln!(out, "flush chain ip {t} {name}");
            for r in rules {
                let _ = writeln!(out, "add rule ip {t} {name} {r}");
            }
        }
        for (t, map, key) in &self.delete_elements {
            let _ = writeln!(out, "delete element ip {t} {} {{ {key} }}", map.name());
        }
        for ip in &self.hairpin_delete {
            let _ = writeln!(out, "delete element ip {shared} hairpin {{ {ip} . {ip} }}");
        }
        for (t, map, key, value) in &self.add_elements {
            let _ = writeln!(
                out,
                "add element ip {t} {} {{ {} }}",
                map.name(),
                element(*map, key, value)
            );
        }
        for ip in &self.hairpin_add {
            let _ = writeln!(out, "add element ip {shared} hairpin {{ {ip} . {ip} }}");
        }
        for (t, name) in &self.removed_chains {
            let _ = writeln!(out, "flush chain ip {t} {name}");
        }
        out
    }

    /// Adds the changes from `old` to `new` of one Service.
    pub fn service(&mut self, old: &ServicePlan, new: &ServicePlan) {
        for (name, timeout) in &new.sets {
            if !old.sets.contains_key(name) || old.shard != new.shard {
                self.new_sets
                    .push((Table::Shard(new.shard), name.clone(), *timeout));
            }
        }
        for (name, rules) in &new.chains {
            let t = new.chain_table(name);
            match old.chains.get(name) {
                Some(old_rules) if old_rules == rules && old.chain_table(name) == t => continue,
                Some(_) if old.chain_table(name) == t => {}
                _ => self.new_chains.push((t, name.clone())),
            }
            self.rewrite.push((t, name.clone(), rules.clone()));
        }
        for ((map, key), value) in &old.elements {
            let t = map.table(old.shard);
            let kept =
                new.elements.get(&(*map, key.clone())) == Some(value) && map.table(new.shard) == t;
            if !kept {
                self.delete_elements.push((t, *map, key.clone()));
            }
        }
        for ((map, key), value) in &new.elements {
            let t = map.table(new.shard);
            let kept =
                old.elements.get(&(*map, key.clone())) == Some(value) && map.table(old.shard) == t;
            if !kept {
                self.add_elements
                    .push((t, *map, key.clone(), value.clone()));
            }
        }
        for name in old.chains.keys() {
            let t = old.chain_table(name);
            if !new.chains.contains_key(name) || new.chain_table(name) != t {
                self.removed_chains.push((t, name.clone()));
            }
        }
        for name in old.sets.keys() {
            if !new.sets.contains_key(name) || old.shard != new.shard {
                self.removed_sets
                    .push((Table::Shard(old.shard), name.clone()));
            }
        }
    }

    /// Hairpin pair changes (computed over all Services by the caller).
    pub fn hairpin(&mut self, added: &[Ipv4Addr], removed: &[Ipv4Addr]) {
        self.hairpin_delete.extend_from_slice(removed);
        self.hairpin_add.extend_from_slice(added);
    }
}

/// Deletes chains and sets that were flushed in an earlier transaction.
pub fn render_deletes(chains: &[(Table, String)], sets: &[(Table, String)]) -> String {
    let mut out = String::new();
    for (t, c) in chains {
        let _ = writeln!(out, "delete chain ip {t} {c}");
    }
    for (t, s) in sets {
        let _ = writeln!(out, "delete set ip {t} {s}");
    }
    out
}

/// Removes every Portico table (no error when absent).
pub fn render_delete_tables() -> String {
    let mut out = String::new();
    delete_all_tables(&mut out);
    out
}
