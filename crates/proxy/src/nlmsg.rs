//! nf_tables object messages (tables, chains, rules, sets, elements) for the
//! netlink applier, each naming the [`Table`] it belongs to.

use std::net::Ipv4Addr;

use crate::nl::{Batch, MsgType, NLM_F_APPEND, NLM_F_CREATE};
use crate::nlexpr::{self as x, Code};
use crate::plan::{Map, Table};
use crate::ProxyError;

const TYPE_BITS: u32 = 6;
/// `TYPE_IPADDR` of nft's datatypes.
pub const TYPE_IPADDR: u32 = 7;
/// `TYPE_INET_PROTOCOL`.
pub const TYPE_INET_PROTO: u32 = 12;
/// `TYPE_INET_SERVICE`.
pub const TYPE_INET_SERVICE: u32 = 13;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const SET_MAP: u32 = 0x8;
const SET_TIMEOUT: u32 = 0x10;
const SET_EVAL: u32 = 0x20;
/// Elements per `NEWSETELEM` message (its element list is a nest with a
/// 16-bit length).
const ELEMENTS_PER_MSG: usize = 200;

/// A base chain's (hook number, priority, type).
pub type Hook = (u32, i32, &'static str);

/// nft's concatenated type id.
pub fn concat(types: &[u32]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << TYPE_BITS) | t)
}

/// Table comment, as `nft` stores it (userdata TLV `NFTNL_UDATA_TABLE_COMMENT`).
const COMMENT: &str = "Portico Service proxy";

/// `NEWTABLE` (with the comment) or `DELTABLE`.
pub fn table(b: &mut Batch, ty: MsgType, t: Table) {
    b.begin(ty, NLM_F_CREATE);
    b.str(1, t.name());
    if matches!(ty, MsgType::NewTable) {
        let mut udata = vec![0u8, u8::try_from(COMMENT.len() + 1).unwrap_or(0)];
        udata.extend_from_slice(COMMENT.as_bytes());
        udata.push(0);
        b.attr(6, &udata);
    }
    b.end();
}

/// `NEWCHAIN`, a base chain when `hook` is given.
pub fn chain(b: &mut Batch, t: Table, name: &str, hook: Option<Hook>) {
    b.begin(MsgType::NewChain, NLM_F_CREATE);
    b.str(1, t.name());
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

/// `DELCHAIN`.
pub fn delete_chain(b: &mut Batch, t: Table, name: &str) {
    b.begin(MsgType::DelChain, 0);
    b.str(1, t.name());
    b.str(3, name);
    b.end();
}

/// `DELSET`.
pub fn delete_set(b: &mut Batch, t: Table, name: &str) {
    b.begin(MsgType::DelSet, 0);
    b.str(1, t.name());
    b.str(2, name);
    b.end();
}

/// `DELRULE` of a whole chain (flush).
pub fn flush(b: &mut Batch, t: Table, name: &str) {
    b.begin(MsgType::DelRule, 0);
    b.str(1, t.name());
    b.str(2, name);
    b.end();
}

/// `NEWRULE` appended to `chain_name`, expressions written by `exprs`.
pub fn rule(b: &mut Batch, t: Table, chain_name: &str, exprs: impl FnOnce(&mut Batch)) {
    b.begin(MsgType::NewRule, NLM_F_CREATE | NLM_F_APPEND);
    b.str(1, t.name());
    b.str(2, chain_name);
    b.nest(4);
    exprs(b);
    b.end();
    b.end();
}

/// A ClientIP affinity set: `type ipv4_addr; flags dynamic,timeout; timeout Ns`.
pub fn affinity_set(b: &mut Batch, t: Table, name: &str, timeout_s: u32, id: u32) {
    b.begin(MsgType::NewSet, NLM_F_CREATE);
    b.str(1, t.name());
    b.str(2, name);
    b.be32(3, SET_TIMEOUT | SET_EVAL);
    b.be32(4, TYPE_IPADDR);
    b.be32(5, 4);
    b.be32(10, id);
    b.be64(11, u64::from(timeout_s) * 1000);
    b.end();
}

/// A named set (`data` None) or verdict map (`data` Some) with a concatenated key.
pub fn set(b: &mut Batch, t: Table, name: &str, key_type: u32, key_len: u32, vmap: bool, id: u32) {
    b.begin(MsgType::NewSet, NLM_F_CREATE);
    b.str(1, t.name());
    b.str(2, name);
    b.be32(3, if vmap { SET_MAP } else { 0 });
    b.be32(4, key_type);
    b.be32(5, key_len);
    if vmap {
        b.be32(6, NFT_DATA_VERDICT);
    }
    b.be32(10, id);
    b.end();
}

/// The (type, length) of a Service map's key.
pub fn map_key_type(map: Map) -> (u32, u32) {
    match map {
        Map::ServiceIps | Map::NoEndpointServices | Map::FirewallIps => (
            concat(&[TYPE_IPADDR, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
            12,
        ),
        Map::ServiceNodeports | Map::NoEndpointNodeports => {
            (concat(&[TYPE_INET_PROTO, TYPE_INET_SERVICE]), 8)
        }
    }
}

/// Parses a map key as the planner writes it: `IP . PROTO . PORT` or `PROTO . PORT`.
pub fn encode_key(map: Map, key: &str) -> Result<Vec<u8>, ProxyError> {
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

/// Adds or deletes elements of `map` in table `t` (values are ignored for
/// deletes and for plain sets).
pub fn map_elements(
    b: &mut Batch,
    ty: MsgType,
    t: Table,
    map: Map,
    elems: &[(&str, &str)],
) -> Result<(), ProxyError> {
    let add = matches!(ty, MsgType::NewSetElem);
    for chunk in elems.chunks(ELEMENTS_PER_MSG) {
        b.begin(ty, if add { NLM_F_CREATE } else { 0 });
        b.str(1, t.name());
        b.str(2, map.name());
        b.nest(3);
        for (k, v) in chunk {
            let key = encode_key(map, k)?;
            b.nest(1);
            b.nest(1);
            b.attr(1, &key);
            b.end();
            if add && map.is_vmap() {
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

/// Adds or deletes hairpin pairs (`ip . ip`, shared table).
pub fn hairpin_elements(b: &mut Batch, ty: MsgType, ips: &[Ipv4Addr]) {
    let add = matches!(ty, MsgType::NewSetElem);
    for chunk in ips.chunks(ELEMENTS_PER_MSG) {
        b.begin(ty, if add { NLM_F_CREATE } else { 0 });
        b.str(1, Table::Shared.name());
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
