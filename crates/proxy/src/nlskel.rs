//! The tables' skeletons over netlink: the shared table (filter hooks,
//! masquerade, hairpin) and one shard table (verdict maps, NAT hooks), object
//! for object as `render_shared` / `render_shard` write them, except that
//! `--nodeport-addresses` CIDRs are one NodePort rule each instead of an
//! interval set.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::nl::Batch;
use crate::nlexpr::{self as x, Code, REG_1};
use crate::nlmsg::{chain, concat, map_key_type, rule, set, Hook, TYPE_IPADDR};
use crate::plan::{Base, Map, Table, MARK_FOR_MASQUERADE, MASQ_MARK_BIT};
use crate::render::maps_of;

/// Hands out set ids (unique within a batch).
pub type NextId<'a> = &'a mut dyn FnMut() -> u32;

fn maps(b: &mut Batch, t: Table, next_id: NextId<'_>) {
    for map in maps_of(t) {
        let (key_type, key_len) = map_key_type(*map);
        set(
            b,
            t,
            map.name(),
            key_type,
            key_len,
            map.is_vmap(),
            next_id(),
        );
    }
}

/// The shared table's objects (the table itself must exist).
pub fn shared(b: &mut Batch, base: &Base, next_id: NextId<'_>) {
    let t = Table::Shared;
    maps(b, t, next_id);
    set(
        b,
        t,
        "hairpin",
        concat(&[TYPE_IPADDR, TYPE_IPADDR]),
        8,
        false,
        next_id(),
    );
    // Chains in `render_shared` order (listings show creation order), with
    // (hook, priority, type) for base chains.
    let filter = |hook| Some((hook, -110, "filter"));
    let chains: [(&str, Option<Hook>); 9] = [
        ("filter-prerouting", filter(0)),
        ("filter-input", filter(1)),
        ("filter-forward", filter(2)),
        ("filter-output", filter(3)),
        ("firewall-check", None),
        ("service-endpoints-check", None),
        ("nodeport-endpoints-check", None),
        ("nat-postrouting", Some((4, 100, "nat"))),
        ("masquerading", None),
    ];
    for (name, hook) in chains {
        chain(b, t, name, hook);
    }
    let ct_new_jump = |b: &mut Batch, chain_name: &str, target: &str| {
        rule(b, t, chain_name, |b| {
            x::ct_state_new(b);
            x::verdict(b, Code::Jump, Some(target));
        });
    };
    ct_new_jump(b, "filter-prerouting", "firewall-check");
    ct_new_jump(b, "filter-input", "nodeport-endpoints-check");
    ct_new_jump(b, "filter-input", "service-endpoints-check");
    ct_new_jump(b, "filter-forward", "service-endpoints-check");
    ct_new_jump(b, "filter-output", "service-endpoints-check");
    ct_new_jump(b, "filter-output", "firewall-check");
    rule(b, t, "firewall-check", |b| {
        x::daddr_proto_port(b);
        x::lookup(b, Map::FirewallIps.name(), REG_1, Some(x::REG_VERDICT));
    });
    rule(b, t, "service-endpoints-check", |b| {
        x::daddr_proto_port(b);
        x::lookup(b, Map::NoEndpointServices.name(), REG_1, None);
        x::reject(b);
    });
    nodeport_rules(b, base, t, "nodeport-endpoints-check", |b| {
        x::lookup(b, Map::NoEndpointNodeports.name(), REG_1, None);
        x::reject(b);
    });
    rule(b, t, "nat-postrouting", |b| {
        x::verdict(b, Code::Jump, Some("masquerading"));
    });
    // Hairpin: a pod reaching itself through a Service must see the
    // node as the source, or it would answer itself directly.
    rule(b, t, "masquerading", |b| {
        x::ct_status_dnat(b);
        x::saddr(b, REG_1);
        x::daddr(b, x::REG32_01);
        x::lookup(b, "hairpin", REG_1, None);
        x::masquerade(b, base.masquerade_fully_random);
    });
    rule(b, t, "masquerading", |b| {
        x::meta(b, x::META_MARK, REG_1);
        x::bitwise(b, REG_1, &MASQ_MARK_BIT.to_ne_bytes(), &[0; 4]);
        x::cmp(b, REG_1, false, &[0; 4]);
        x::verdict(b, Code::Return, None);
    });
    rule(b, t, "masquerading", |b| {
        x::meta(b, x::META_MARK, REG_1);
        x::bitwise(b, REG_1, &[0xff; 4], &MASQ_MARK_BIT.to_ne_bytes());
        x::meta_set(b, x::META_MARK, REG_1);
    });
    // Plain `masquerade` unless `fully-random` is asked for: see
    // `render_shared` for why.
    rule(b, t, "masquerading", |b| {
        x::masquerade(b, base.masquerade_fully_random)
    });
}

/// One shard table's objects (the table itself must exist).
pub fn shard(b: &mut Batch, base: &Base, shard: u16, next_id: NextId<'_>) {
    let t = Table::Shard(shard);
    maps(b, t, next_id);
    let chains: [(&str, Option<Hook>); 4] = [
        (MARK_FOR_MASQUERADE, None),
        ("nat-prerouting", Some((0, -100, "nat"))),
        ("nat-output", Some((3, -100, "nat"))),
        ("services", None),
    ];
    for (name, hook) in chains {
        chain(b, t, name, hook);
    }
    rule(b, t, MARK_FOR_MASQUERADE, |b| {
        x::meta(b, x::META_MARK, REG_1);
        x::bitwise(
            b,
            REG_1,
            &(!MASQ_MARK_BIT).to_ne_bytes(),
            &MASQ_MARK_BIT.to_ne_bytes(),
        );
        x::meta_set(b, x::META_MARK, REG_1);
    });
    for chain_name in ["nat-prerouting", "nat-output"] {
        rule(b, t, chain_name, |b| {
            x::verdict(b, Code::Jump, Some("services"));
        });
    }
    rule(b, t, "services", |b| {
        x::daddr_proto_port(b);
        x::lookup(b, Map::ServiceIps.name(), REG_1, Some(x::REG_VERDICT));
    });
    nodeport_rules(b, base, t, "services", |b| {
        x::lookup(b, Map::ServiceNodeports.name(), REG_1, Some(x::REG_VERDICT));
    });
}

/// `fib daddr type local ip daddr != 127.0.0.0/8 [ip daddr CIDR] meta
/// l4proto . th dport` then `tail`, one rule per `--nodeport-addresses` CIDR.
fn nodeport_rules(
    b: &mut Batch,
    base: &Base,
    t: Table,
    chain_name: &str,
    tail: impl Fn(&mut Batch),
) {
    let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default();
    let cidrs: Vec<Option<Ipv4Net>> = if base.nodeport_addresses.is_empty() {
        vec![None]
    } else {
        base.nodeport_addresses
            .iter()
            .map(|n| Some(n.trunc()))
            .collect()
    };
    for cidr in cidrs {
        rule(b, t, chain_name, |b| {
            x::fib_local(b, x::FIB_DADDR);
            x::addr_in(b, x::daddr, loopback, true);
            if let Some(net) = cidr {
                x::addr_in(b, x::daddr, net, false);
            }
            x::proto_port(b);
            tail(b);
        });
    }
}
