//! nf_tables expressions as netlink attributes: the register-machine form
//! of every match and statement the proxy uses (what `nft` would produce for
//! the same rule text, see `nft --debug=netlink`), written straight into a
//! [`Batch`]. Integers in registers are host order for marks, conntrack
//! bits, fib results and numgen; addresses and ports are network order.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::Proto;
use crate::nl::{Batch, FAMILY_IPV4};
use crate::plan::{Match, Rule, Verdict};

/// The verdict register.
pub const REG_VERDICT: u32 = 0;
/// 16-byte register 1 (= 32-bit registers 0..3).
pub const REG_1: u32 = 1;
/// 16-byte register 2.
pub const REG_2: u32 = 2;
/// 32-bit register 1 (follows register 0 for concatenations).
pub const REG32_01: u32 = 9;
/// 32-bit register 2.
pub const REG32_02: u32 = 10;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;

/// `NFT_PAYLOAD_NETWORK_HEADER`.
pub const NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
pub const TRANSPORT: u32 = 2;
/// `NFT_META_MARK`.
pub const META_MARK: u32 = 3;
/// `NFT_META_L4PROTO`.
pub const META_L4PROTO: u32 = 16;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
/// `NFT_CT_STATE`.
pub const CT_STATE: u32 = 0;
/// `NFT_CT_STATUS`.
pub const CT_STATUS: u32 = 2;
/// `NF_CT_STATE_BIT(IP_CT_NEW)`.
pub const CT_STATE_NEW: u32 = 8;
/// `IPS_DST_NAT`.
pub const CT_STATUS_DNAT: u32 = 0x20;
/// `NFTA_FIB_F_SADDR`.
pub const FIB_SADDR: u32 = 1;
/// `NFTA_FIB_F_DADDR`.
pub const FIB_DADDR: u32 = 2;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;

/// Kernel verdict codes.
#[derive(Debug, Clone, Copy)]
pub enum Code {
    /// NF_DROP.
    Drop,
    /// NFT_JUMP.
    Jump,
    /// NFT_GOTO.
    Goto,
    /// NFT_RETURN.
    Return,
}

impl Code {
    fn value(self) -> i32 {
        match self {
            Code::Drop => 0,
            Code::Jump => -3,
            Code::Goto => -4,
            Code::Return => -5,
        }
    }
}

/// The protocol number.
pub fn proto_num(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

fn expr(b: &mut Batch, name: &str, body: impl FnOnce(&mut Batch)) {
    b.nest(NFTA_LIST_ELEM);
    b.str(NFTA_EXPR_NAME, name);
    b.nest(NFTA_EXPR_DATA);
    body(b);
    b.end();
    b.end();
}

fn data_value(b: &mut Batch, ty: u16, v: &[u8]) {
    b.nest(ty);
    b.attr(NFTA_DATA_VALUE, v);
    b.end();
}

/// `NFTA_DATA_VERDICT` { code, chain }.
pub fn verdict_data(b: &mut Batch, code: Code, chain: Option<&str>) {
    b.nest(NFTA_DATA_VERDICT);
    b.attr(1, &code.value().to_be_bytes());
    if let Some(c) = chain {
        b.str(2, c);
    }
    b.end();
}

/// Loads `len` bytes at `offset` of header `base` into `dreg`.
pub fn payload(b: &mut Batch, base: u32, offset: u32, len: u32, dreg: u32) {
    expr(b, "payload", |b| {
        b.be32(1, dreg);
        b.be32(2, base);
        b.be32(3, offset);
        b.be32(4, len);
    });
}

/// `ip saddr` into `dreg`.
pub fn saddr(b: &mut Batch, dreg: u32) {
    payload(b, NETWORK, 12, 4, dreg);
}

/// `ip daddr` into `dreg`.
pub fn daddr(b: &mut Batch, dreg: u32) {
    payload(b, NETWORK, 16, 4, dreg);
}

/// `th dport` into `dreg`.
pub fn dport(b: &mut Batch, dreg: u32) {
    payload(b, TRANSPORT, 2, 2, dreg);
}

/// Loads meta `key` into `dreg`.
pub fn meta(b: &mut Batch, key: u32, dreg: u32) {
    expr(b, "meta", |b| {
        b.be32(1, dreg);
        b.be32(2, key);
    });
}

/// Sets meta `key` from `sreg`.
pub fn meta_set(b: &mut Batch, key: u32, sreg: u32) {
    expr(b, "meta", |b| {
        b.be32(2, key);
        b.be32(3, sreg);
    });
}

/// Loads conntrack `key` into `dreg`.
pub fn ct(b: &mut Batch, key: u32, dreg: u32) {
    expr(b, "ct", |b| {
        b.be32(1, dreg);
        b.be32(2, key);
    });
}

/// Compares register `sreg` with `data` (equal, or not equal when `neq`).
pub fn cmp(b: &mut Batch, sreg: u32, neq: bool, data: &[u8]) {
    expr(b, "cmp", |b| {
        b.be32(1, sreg);
        b.be32(2, if neq { CMP_NEQ } else { CMP_EQ });
        data_value(b, 3, data);
    });
}

/// `reg = (reg & mask) ^ xor` over `mask.len()` bytes.
pub fn bitwise(b: &mut Batch, reg: u32, mask: &[u8], xor: &[u8]) {
    expr(b, "bitwise", |b| {
        b.be32(1, reg);
        b.be32(2, reg);
        b.be32(3, u32::try_from(mask.len()).unwrap_or(4));
        data_value(b, 4, mask);
        data_value(b, 5, xor);
    });
}

/// Looks `sreg` up in `set`; with `dreg` (the verdict register) as a verdict map.
pub fn lookup(b: &mut Batch, set: &str, sreg: u32, dreg: Option<u32>) {
    expr(b, "lookup", |b| {
        b.str(1, set);
        b.be32(2, sreg);
        if let Some(d) = dreg {
            b.be32(3, d);
        }
    });
}

/// A verdict.
pub fn verdict(b: &mut Batch, code: Code, chain: Option<&str>) {
    expr(b, "immediate", |b| {
        b.be32(1, REG_VERDICT);
        b.nest(2);
        verdict_data(b, code, chain);
        b.end();
    });
}

/// Loads a constant into `dreg`.
pub fn immediate(b: &mut Batch, dreg: u32, data: &[u8]) {
    expr(b, "immediate", |b| {
        b.be32(1, dreg);
        data_value(b, 2, data);
    });
}

/// `ct state new`.
pub fn ct_state_new(b: &mut Batch) {
    ct(b, CT_STATE, REG_1);
    bitwise(b, REG_1, &CT_STATE_NEW.to_ne_bytes(), &[0; 4]);
    cmp(b, REG_1, true, &[0; 4]);
}

/// `ct status dnat`.
pub fn ct_status_dnat(b: &mut Batch) {
    ct(b, CT_STATUS, REG_1);
    bitwise(b, REG_1, &CT_STATUS_DNAT.to_ne_bytes(), &[0; 4]);
    cmp(b, REG_1, true, &[0; 4]);
}

/// `fib saddr|daddr type local` (`flag` is [`FIB_SADDR`] or [`FIB_DADDR`]).
pub fn fib_local(b: &mut Batch, flag: u32) {
    expr(b, "fib", |b| {
        b.be32(1, REG_1);
        b.be32(2, FIB_RESULT_ADDRTYPE);
        b.be32(3, flag);
    });
    cmp(b, REG_1, false, &RTN_LOCAL.to_ne_bytes());
}

/// `fib saddr type != local`.
pub fn fib_saddr_not_local(b: &mut Batch) {
    expr(b, "fib", |b| {
        b.be32(1, REG_1);
        b.be32(2, FIB_RESULT_ADDRTYPE);
        b.be32(3, FIB_SADDR);
    });
    cmp(b, REG_1, true, &RTN_LOCAL.to_ne_bytes());
}

/// `ip saddr|daddr [!=] NET` (the loader picks the field).
pub fn addr_in(b: &mut Batch, load: fn(&mut Batch, u32), net: Ipv4Net, neq: bool) {
    load(b, REG_1);
    if net.prefix_len() < 32 {
        bitwise(b, REG_1, &net.netmask().octets(), &[0; 4]);
    }
    cmp(b, REG_1, neq, &net.network().octets());
}

/// `numgen random mod M 0`.
pub fn numgen_zero(b: &mut Batch, modulo: u32) {
    expr(b, "numgen", |b| {
        b.be32(1, REG_1);
        b.be32(2, modulo);
        b.be32(3, 1); // NFT_NG_RANDOM
        b.be32(4, 0);
    });
    cmp(b, REG_1, false, &[0; 4]);
}

/// `meta l4proto P`.
pub fn l4proto(b: &mut Batch, p: Proto) {
    meta(b, META_L4PROTO, REG_1);
    cmp(b, REG_1, false, &[proto_num(p)]);
}

/// `dnat to IP:PORT`.
pub fn dnat(b: &mut Batch, ip: Ipv4Addr, port: u16) {
    immediate(b, REG_1, &ip.octets());
    immediate(b, REG_2, &port.to_be_bytes());
    expr(b, "nat", |b| {
        b.be32(1, 1); // NFT_NAT_DNAT
        b.be32(2, u32::from(FAMILY_IPV4));
        b.be32(3, REG_1);
        b.be32(5, REG_2);
    });
}

/// `NF_NAT_RANGE_PROTO_RANDOM_FULLY` (`include/uapi/linux/netfilter/nf_nat.h`).
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 1 << 4;

/// `masquerade`, or `masquerade fully-random` (`NFTA_MASQ_FLAGS`). Without
/// the flag the source port is kept when free (see `render_shared` for why
/// that is the default).
pub fn masquerade(b: &mut Batch, fully_random: bool) {
    expr(b, "masq", |b| {
        if fully_random {
            b.be32(1, NF_NAT_RANGE_PROTO_RANDOM_FULLY); // NFTA_MASQ_FLAGS
        }
    });
}

/// `reject` (ICMP port unreachable, as `nft` does in the ip family).
pub fn reject(b: &mut Batch) {
    expr(b, "reject", |b| {
        b.be32(1, 0); // NFT_REJECT_ICMP_UNREACH
        b.attr(2, &[3]); // ICMP_PORT_UNREACH
    });
}

/// `update @SET { ip saddr }`.
pub fn update_saddr(b: &mut Batch, set: &str) {
    saddr(b, REG_1);
    expr(b, "dynset", |b| {
        b.str(1, set);
        b.be32(3, 1); // NFT_DYNSET_OP_UPDATE
        b.be32(4, REG_1);
    });
}

/// `ip daddr . meta l4proto . th dport` into registers 1, 9, 10.
pub fn daddr_proto_port(b: &mut Batch) {
    daddr(b, REG_1);
    meta(b, META_L4PROTO, REG32_01);
    dport(b, REG32_02);
}

/// `meta l4proto . th dport` into registers 1, 9.
pub fn proto_port(b: &mut Batch) {
    meta(b, META_L4PROTO, REG_1);
    dport(b, REG32_01);
}

fn encode_match(b: &mut Batch, m: &Match) {
    match m {
        Match::Daddr(ip) => {
            daddr(b, REG_1);
            cmp(b, REG_1, false, &ip.octets());
        }
        Match::Dport(p, port) => {
            l4proto(b, *p);
            dport(b, REG_1);
            cmp(b, REG_1, false, &port.to_be_bytes());
        }
        Match::SaddrIn(net) => addr_in(b, saddr, *net, false),
        Match::SaddrNotIn(net) => addr_in(b, saddr, *net, true),
        Match::SaddrInSet(set) => {
            saddr(b, REG_1);
            lookup(b, set, REG_1, None);
        }
        Match::FibSaddrLocal => fib_local(b, FIB_SADDR),
        Match::FibSaddrNotLocal => fib_saddr_not_local(b),
        Match::Numgen(m) => numgen_zero(b, *m),
    }
}

/// Encodes a planned rule's expressions.
pub fn encode_rule(b: &mut Batch, rule: &Rule) {
    match rule {
        Rule::Pick {
            modulo,
            proto,
            ip,
            port,
        } => {
            if *modulo > 0 {
                numgen_zero(b, *modulo);
            }
            l4proto(b, *proto);
            dnat(b, *ip, *port);
        }
        Rule::Match {
            matches,
            verdict: v,
        } => {
            for m in matches {
                encode_match(b, m);
            }
            match v {
                Verdict::Jump(c) => verdict(b, Code::Jump, Some(c)),
                Verdict::Goto(c) => verdict(b, Code::Goto, Some(c)),
                Verdict::Return => verdict(b, Code::Return, None),
                Verdict::Drop => verdict(b, Code::Drop, None),
            }
        }
        Rule::UpdateSaddr { set } => update_saddr(b, set),
    }
}
