//! The netlink applier: [`NftNetlink`] programs a [`Txn`] as one nf_tables
//! batch over a `NETLINK_NETFILTER` socket, with no `nft` process and
//! without listing the kernel table. It builds the same table as the `nft`
//! text (`render`), object for object, except that `--nodeport-addresses`
//! CIDRs are one NodePort rule each instead of an interval set.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::apply::{Nft, Txn};
use crate::nl::{Batch, MsgType, NfSocket, NLM_F_APPEND, NLM_F_CREATE};
use crate::nlexpr::{self as x, Code, REG_1};
use crate::plan::{Base, Map, ServicePlan, MARK_FOR_MASQUERADE, MASQ_MARK_BIT, TABLE};
use crate::render::Diff;
use crate::ProxyError;

const TYPE_BITS: u32 = 6;
const TYPE_IPADDR: u32 = 7;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const SET_MAP: u32 = 0x8;
const SET_TIMEOUT: u32 = 0x10;
const SET_EVAL: u32 = 0x20;
/// Elements per `NEWSETELEM` message (its element list is a nest with a
/// 16-bit length).
const ELEMENTS_PER_MSG: usize = 200;

/// [`Nft`] over netlink, in the network namespace the socket was opened in.
#[derive(Debug)]
pub struct NftNetlink {
    sock: NfSocket,
    set_id: u32,
}

impl NftNetlink {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<NftNetlink, ProxyError> {
        Ok(NftNetlink {
            sock: NfSocket::open()?,
            set_id: 0,
        })
    }

    /// Opens the socket in the named network namespace (`/run/netns/NAME`,
    /// as `ip netns add` creates): a helper thread enters it, opens the
    /// socket, and exits; the socket stays bound to that namespace.
    pub fn open_in_netns(name: &str) -> Result<NftNetlink, ProxyError> {
        let path = format!("/run/netns/{name}");
        let joined = std::thread::spawn(move || -> Result<NftNetlink, ProxyError> {
            let f = std::fs::File::open(&path)
                .map_err(|e| ProxyError::Netlink(format!("opening {path}: {e}")))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| ProxyError::Netlink(format!("entering {path}: {e}")))?;
            NftNetlink::open()
        })
        .join();
        joined.unwrap_or_else(|_| Err(ProxyError::Netlink("netns helper thread failed".into())))
    }

    fn next_set_id(&mut self) -> u32 {
        self.set_id = self.set_id.wrapping_add(1);
        self.set_id
    }

    /// Encodes `txn` into a batch (exposed for tests and benchmarks).
    pub fn encode(&mut self, txn: &Txn<'_>) -> Result<Batch, ProxyError> {
        let mut b = Batch::new();
        match txn {
            Txn::DeleteTable => {
                table(&mut b, MsgType::NewTable);
                table(&mut b, MsgType::DelTable);
            }
            Txn::Full { base, plans } => self.full(&mut b, base, plans)?,
            Txn::Incremental {
                diff,
                delete_chains,
                delete_sets,
            } => self.incremental(&mut b, diff, delete_chains, delete_sets)?,
        }
        Ok(b)
    }

    fn full(
        &mut self,
        b: &mut Batch,
        base: &Base,
        plans: &[&ServicePlan],
    ) -> Result<(), ProxyError> {
        // add; delete; add: works whether or not the table exists.
        table(b, MsgType::NewTable);
        table(b, MsgType::DelTable);
        table(b, MsgType::NewTable);
        self.base_objects(b, base);
        for p in plans {
            for (name, timeout) in &p.sets {
                let id = self.next_set_id();
                affinity_set(b, name, *timeout, id);
            }
            for name in p.chains.keys() {
                chain(b, name, None);
            }
        }
        for p in plans {
            for (name, rules) in &p.chains {
                for r in rules {
                    rule(b, name, |b| x::encode_rule(b, r));
                }
            }
        }
        for map in Map::ALL {
            let mut all: Vec<(&str, &str)> = Vec::new();
            for p in plans {
                all.extend(
                    p.elements
                        .iter()
                        .filter(|((m, _), _)| *m == map)
                        .map(|((_, k), v)| (k.as_str(), v.as_str())),
                );
            }
            map_elements(b, MsgType::NewSetElem, map, &all)?;
        }
        let mut hairpin: Vec<Ipv4Addr> = plans
            .iter()
            .flat_map(|p| p.hairpin.iter().copied())
            .collect();
        hairpin.sort_unstable();
        hairpin.dedup();
        hairpin_elements(b, MsgType::NewSetElem, &hairpin);
        Ok(())
    }

    fn incremental(
        &mut self,
        b: &mut Batch,
        diff: &Diff,
        delete_chains: &[String],
        delete_sets: &[String],
    ) -> Result<(), ProxyError> {
        for (name, timeout) in &diff.new_sets {
            let id = self.next_set_id();
            affinity_set(b, name, *timeout, id);
        }
        for name in &diff.new_chains {
            chain(b, name, None);
        }
        for (name, rules) in &diff.rewrite {
            flush(b, name);
            for r in rules {
                rule(b, name, |b| x::encode_rule(b, r));
            }
        }
        for map in Map::ALL {
            let keys: Vec<(&str, &str)> = diff
                .delete_elements
                .iter()
                .filter(|(m, _)| *m == map)
                .map(|(_, k)| (k.as_str(), ""))
                .collect();
            map_elements(b, MsgType::DelSetElem, map, &keys)?;
        }
        hairpin_elements(b, MsgType::DelSetElem, &diff.hairpin_delete);
        for map in Map::ALL {
            let elems: Vec<(&str, &str)> = diff
                .add_elements
                .iter()
                .filter(|(m, _, _)| *m == map)
                .map(|(_, k, v)| (k.as_str(), v.as_str()))
                .collect();
            map_elements(b, MsgType::NewSetElem, map, &elems)?;
        }
        hairpin_elements(b, MsgType::NewSetElem, &diff.hairpin_add);
        for name in &diff.removed_chains {
            flush(b, name);
        }
        for name in delete_chains {
            b.begin(MsgType::DelChain, 0);
            b.str(1, TABLE);
            b.str(3, name);
            b.end();
        }
        for name in delete_sets {
            b.begin(MsgType::DelSet, 0);
            b.str(1, TABLE);
            b.str(2, name);
            b.end();
        }
        Ok(())
    }

    /// The skeleton: maps, sets, base and dispatch chains and their rules.
    fn base_objects(&mut self, b: &mut Batch, base: &Base) {
        let three = concat(&[TYPE_IPADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]);
        let two = concat(&[TYPE_INET_PROTO, TYPE_INET_SERVICE]);
        for (map, key_type, key_len) in [
            (Map::ServiceIps, three, 12),
            (Map::ServiceNodeports, two, 8),
            (Map::NoEndpointServices, three, 12),
            (Map::NoEndpointNodeports, two, 8),
            (Map::FirewallIps, three, 12),
        ] {
            let id = self.next_set_id();
            b.begin(MsgType::NewSet, NLM_F_CREATE);
            b.str(1, TABLE);
            b.str(2, map.name());
            b.be32(3, SET_MAP);
            b.be32(4, key_type);
            b.be32(5, key_len);
            b.be32(6, NFT_DATA_VERDICT);
            b.be32(10, id);
            b.end();
        }
        let id = self.next_set_id();
        b.begin(MsgType::NewSet, NLM_F_CREATE);
        b.str(1, TABLE);
        b.str(2, "hairpin");
        b.be32(3, 0);
        b.be32(4, concat(&[TYPE_IPADDR, TYPE_IPADDR]));
        b.be32(5, 8);
        b.be32(10, id);
        b.end();

        // Chains in `render_base` order (listings show creation order), with
        // (hook, priority, type) for base chains.
        let filter = |hook| Some((hook, -110, "filter"));
        let chains: [(&str, Option<Hook>); 14] = [
            ("filter-prerouting", filter(0)),
            ("filter-input", filter(1)),
            ("filter-forward", filter(2)),
            ("filter-output", filter(3)),
            ("firewall-check", None),
            ("service-endpoints-check", None),
            ("nodeport-endpoints-check", None),
            ("reject-chain", None),
            (MARK_FOR_MASQUERADE, None),
            ("nat-prerouting", Some((0, -100, "nat"))),
            ("nat-output", Some((3, -100, "nat"))),
            ("nat-postrouting", Some((4, 100, "nat"))),
            ("masquerading", None),
            ("services", None),
        ];
        for (name, hook) in chains {
            chain(b, name, hook);
        }
        let ct_new_jump = |b: &mut Batch, chain_name: &str, target: &str| {
            rule(b, chain_name, |b| {
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
        for (chain_name, map) in [
            ("firewall-check", Map::FirewallIps),
            ("service-endpoints-check", Map::NoEndpointServices),
        ] {
            rule(b, chain_name, |b| {
                x::daddr_proto_port(b);
                x::lookup(b, map.name(), REG_1, Some(x::REG_VERDICT));
            });
        }
        nodeport_rules(
            b,
            base,
            "nodeport-endpoints-check",
            Map::NoEndpointNodeports,
        );
        rule(b, "reject-chain", x::reject);
        rule(b, MARK_FOR_MASQUERADE, |b| {
            x::meta(b, x::META_MARK, REG_1);
            x::bitwise(
                b,
                REG_1,
                &(!MASQ_MARK_BIT).to_ne_bytes(),
                &MASQ_MARK_BIT.to_ne_bytes(),
            );
            x::meta_set(b, x::META_MARK, REG_1);
        });
        for (chain_name, target) in [
            ("nat-prerouting", "services"),
            ("nat-output", "services"),
            ("nat-postrouting", "masquerading"),
        ] {
            rule(b, chain_name, |b| x::verdict(b, Code::Jump, Some(target)));
        }
        // Hairpin: a pod reaching itself through a Service must see the
        // node as the source, or it would answer itself directly.
        rule(b, "masquerading", |b| {
            x::ct_status_dnat(b);
            x::saddr(b, REG_1);
            x::daddr(b, x::REG32_01);
            x::lookup(b, "hairpin", REG_1, None);
            x::masquerade_fully_random(b);
        });
        rule(b, "masquerading", |b| {
            x::meta(b, x::META_MARK, REG_1);
            x::bitwise(b, REG_1, &MASQ_MARK_BIT.to_ne_bytes(), &[0; 4]);
            x::cmp(b, REG_1, false, &[0; 4]);
            x::verdict(b, Code::Return, None);
        });
        rule(b, "masquerading", |b| {
            x::meta(b, x::META_MARK, REG_1);
            x::bitwise(b, REG_1, &[0xff; 4], &MASQ_MARK_BIT.to_ne_bytes());
            x::meta_set(b, x::META_MARK, REG_1);
        });
        rule(b, "masquerading", x::masquerade_fully_random);
        rule(b, "services", |b| {
            x::daddr_proto_port(b);
            x::lookup(b, Map::ServiceIps.name(), REG_1, Some(x::REG_VERDICT));
        });
        nodeport_rules(b, base, "services", Map::ServiceNodeports);
    }
}

/// `fib daddr type local ip daddr != 127.0.0.0/8 [ip daddr CIDR] meta
/// l4proto . th dport vmap @MAP`, one rule per `--nodeport-addresses` CIDR.
fn nodeport_rules(b: &mut Batch, base: &Base, chain_name: &str, map: Map) {
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
        rule(b, chain_name, |b| {
            x::fib_local(b, x::FIB_DADDR);
            x::addr_in(b, x::daddr, loopback, true);
            if let Some(net) = cidr {
                x::addr_in(b, x::daddr, net, false);
            }
            x::proto_port(b);
            x::lookup(b, map.name(), REG_1, Some(x::REG_VERDICT));
        });
    }
}

fn concat(types: &[u32]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << TYPE_BITS) | t)
}

/// Table comment, as `nft` stores it (userdata TLV `NFTNL_UDATA_TABLE_COMMENT`).
const COMMENT: &str = "Portico Service proxy";

fn table(b: &mut Batch, ty: MsgType) {
    b.begin(ty, NLM_F_CREATE);
    b.str(1, TABLE);
    if matches!(ty, MsgType::NewTable) {
        let mut udata = vec![0u8, u8::try_from(COMMENT.len() + 1).unwrap_or(0)];
        udata.extend_from_slice(COMMENT.as_bytes());
        udata.push(0);
        b.attr(6, &udata);
    }
    b.end();
}

/// A base chain's (hook number, priority, type).
type Hook = (u32, i32, &'static str);

fn chain(b: &mut Batch, name: &str, hook: Option<Hook>) {
    b.begin(MsgType::NewChain, NLM_F_CREATE);
    b.str(1, TABLE);
    b.str(3, name);
    if let Some((num, prio, ty)) = hook {
        b.nest(4);
        b.be32(1, num);
        b.attr(2, &prio.to_be_bytes());
        b.end();
        b.be32(5, 1); // policy accept
        b.str(7, ty);
    }
    b.end();
}

fn flush(b: &mut Batch, name: &str) {
    b.begin(MsgType::DelRule, 0);
    b.str(1, TABLE);
    b.str(2, name);
    b.end();
}

fn rule(b: &mut Batch, chain_name: &str, exprs: impl FnOnce(&mut Batch)) {
    b.begin(MsgType::NewRule, NLM_F_CREATE | NLM_F_APPEND);
    b.str(1, TABLE);
    b.str(2, chain_name);
    b.nest(4);
    exprs(b);
    b.end();
    b.end();
}

fn affinity_set(b: &mut Batch, name: &str, timeout_s: u32, id: u32) {
    b.begin(MsgType::NewSet, NLM_F_CREATE);
    b.str(1, TABLE);
    b.str(2, name);
    b.be32(3, SET_TIMEOUT | SET_EVAL);
    b.be32(4, TYPE_IPADDR);
    b.be32(5, 4);
    b.be32(10, id);
    b.be64(11, u64::from(timeout_s) * 1000);
    b.end();
}

/// Parses a map key as the planner writes it: `IP . PROTO . PORT` or `PROTO . PORT`.
fn encode_key(map: Map, key: &str) -> Result<Vec<u8>, ProxyError> {
    let bad = || ProxyError::Netlink(format!("bad key {key:?} for map {}", map.name()));
    let parts: Vec<&str> = key.split(" . ").collect();
    let (ip, proto, port) = match parts.as_slice() {
        [ip, proto, port] => (
            Some(ip.parse::<Ipv4Addr>().map_err(|_| bad())?),
            *proto,
            *port,
        ),
        [proto, port] => (None, *proto, *port),
        _ => return Err(bad()),
    };
    let proto = match proto {
        "tcp" => 6u8,
        "udp" => 17,
        "sctp" => 132,
        _ => return Err(bad()),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let mut k = Vec::with_capacity(12);
    if let Some(ip) = ip {
        k.extend_from_slice(&ip.octets());
    }
    // Each concatenated field takes a whole 32-bit register.
    k.extend_from_slice(&[proto, 0, 0, 0]);
    k.extend_from_slice(&port.to_be_bytes());
    k.extend_from_slice(&[0, 0]);
    Ok(k)
}

/// Parses a map value: `goto CHAIN`, `jump CHAIN` or `drop`.
fn parse_verdict(v: &str) -> Result<(Code, Option<&str>), ProxyError> {
    match v.split_once(' ') {
        Some(("goto", c)) => Ok((Code::Goto, Some(c))),
        Some(("jump", c)) => Ok((Code::Jump, Some(c))),
        None if v == "drop" => Ok((Code::Drop, None)),
        _ => Err(ProxyError::Netlink(format!("bad verdict {v:?}"))),
    }
}

/// Adds or deletes map elements (values are ignored for deletes).
fn map_elements(
    b: &mut Batch,
    ty: MsgType,
    map: Map,
    elems: &[(&str, &str)],
) -> Result<(), ProxyError> {
    let add = matches!(ty, MsgType::NewSetElem);
    for chunk in elems.chunks(ELEMENTS_PER_MSG) {
        b.begin(ty, if add { NLM_F_CREATE } else { 0 });
        b.str(1, TABLE);
        b.str(2, map.name());
        b.nest(3);
        for (k, v) in chunk {
            let key = encode_key(map, k)?;
            b.nest(1);
            b.nest(1);
            b.attr(1, &key);
            b.end();
            if add {
                let (code, target) = parse_verdict(v)?;
                b.nest(2);
                x::verdict_data(b, code, target);
                b.end();
            }
            b.end();
        }
        b.end();
        b.end();
    }
    Ok(())
}

fn hairpin_elements(b: &mut Batch, ty: MsgType, ips: &[Ipv4Addr]) {
    let add = matches!(ty, MsgType::NewSetElem);
    for chunk in ips.chunks(ELEMENTS_PER_MSG) {
        b.begin(ty, if add { NLM_F_CREATE } else { 0 });
        b.str(1, TABLE);
        b.str(2, "hairpin");
        b.nest(3);
        for ip in chunk {
            let mut key = [0u8; 8];
            key[..4].copy_from_slice(&ip.octets());
            key[4..].copy_from_slice(&ip.octets());
            b.nest(1);
            b.nest(1);
            b.attr(1, &key);
            b.end();
            b.end();
        }
        b.end();
        b.end();
    }
}

impl Nft for NftNetlink {
    fn apply(&mut self, _script: &str) -> Result<(), ProxyError> {
        Err(ProxyError::Netlink(
            "the netlink applier takes typed transactions, not nft text".into(),
        ))
    }

    fn apply_txn(&mut self, txn: &Txn<'_>) -> Result<(), ProxyError> {
        let batch = self.encode(txn)?;
        self.sock.commit(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pad_every_field_to_a_register() {
        assert_eq!(
            encode_key(Map::ServiceIps, "10.96.0.1 . tcp . 80").unwrap(),
            vec![10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]
        );
        assert_eq!(
            encode_key(Map::ServiceNodeports, "udp . 30053").unwrap(),
            vec![17, 0, 0, 0, 0x75, 0x65, 0, 0]
        );
        assert!(encode_key(Map::ServiceIps, "10.96.0.1 . icmp . 80").is_err());
    }

    #[test]
    fn concatenated_types_shift_by_six_bits() {
        assert_eq!(
            concat(&[TYPE_IPADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
            (7 << 12) | (12 << 6) | 13
        );
    }
}
