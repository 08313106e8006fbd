//! The UDP fast path: answers the common in-cluster questions straight from
//! the request bytes into a reused output buffer, with no allocation and no
//! `hickory` message objects.
//!
//! It covers what pods ask all day — A/AAAA/SRV of Service and headless host
//! names, search-path expansions (NXDOMAIN/NODATA), PTR of cluster addresses —
//! and gives up (`None`) on everything else, which then takes the general path
//! ([`crate::answer`] + [`crate::wire`]). Both must produce the same response;
//! `fast_tests` checks that question by question. Answer owner names are
//! compression pointers to the question, so they keep the asker's case.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::answer::lower;
use crate::wire::SERVER_UDP_PAYLOAD;
use crate::zone::{ServiceRecords, ServiceZone, Zone};

/// Labels of a question this path looks at; deeper names take the general path.
const MAX_LABELS: usize = 16;
/// Labels below the zone of the deepest published name (`_p._t.svc.ns.svc`).
const MAX_RELATIVE: usize = 5;
const HEADER: usize = 12;
const CLASS_IN: u16 = 1;
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;
const TYPE_ANY: u16 = 255;
/// A compression pointer to the question name (offset 12).
const QNAME_POINTER: [u8; 2] = [0xC0, 0x0C];

/// A request parsed as far as the fast path needs.
struct Request<'a> {
    bytes: &'a [u8],
    /// End of the question section.
    question_end: usize,
    /// (offset, length) of each question label, leftmost first.
    labels: [(usize, usize); MAX_LABELS],
    count: usize,
    qtype: u16,
    edns: bool,
    max_size: usize,
}

impl<'a> Request<'a> {
    fn label(&self, i: usize) -> &'a [u8] {
        match self.labels.get(i) {
            Some(&(off, len)) => self.bytes.get(off..off + len).unwrap_or_default(),
            None => &[],
        }
    }

    /// The wire bytes of the name starting at label `i`, through the root.
    fn suffix(&self, i: usize) -> Option<&'a [u8]> {
        let (off, _) = *self.labels.get(i)?;
        self.bytes.get(off - 1..self.question_end - 4)
    }

    /// A compression pointer to the name starting at label `i`.
    fn pointer(&self, i: usize) -> Option<[u8; 2]> {
        let (off, _) = *self.labels.get(i)?;
        // The label offset is that of its length byte minus one.
        let at = u16::try_from(off - 1).ok().filter(|at| *at < 0x3FFF)?;
        Some((0xC000 | at).to_be_bytes())
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Parses a plain one-question query with at most an EDNS(0) OPT record.
fn parse(bytes: &[u8]) -> Option<Request<'_>> {
    let flags = *bytes.get(2)?;
    // A query (QR=0) with opcode QUERY; anything else is for the general path.
    if flags & 0xF8 != 0 {
        return None;
    }
    let counts = (
        be16(bytes, 4)?,
        be16(bytes, 6)?,
        be16(bytes, 8)?,
        be16(bytes, 10)?,
    );
    if !matches!(counts, (1, 0, 0, 0 | 1)) {
        return None;
    }
    let mut labels = [(0, 0); MAX_LABELS];
    let mut count = 0;
    let mut at = HEADER;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        // Compression in a question, or a binary label type: general path.
        if len > 63 || count == MAX_LABELS {
            return None;
        }
        *labels.get_mut(count)? = (at + 1, len);
        count += 1;
        at += 1 + len;
    }
    if at - HEADER > 255 {
        return None;
    }
    let qtype = be16(bytes, at)?;
    if be16(bytes, at + 2)? != CLASS_IN {
        return None;
    }
    let question_end = at + 4;
    let mut edns = false;
    let mut max_size = 512;
    if counts.3 == 1 {
        // Exactly a root-owned OPT record of version 0 with its options.
        let opt = question_end;
        if *bytes.get(opt)? != 0 || be16(bytes, opt + 1)? != TYPE_OPT {
            return None;
        }
        if *bytes.get(opt + 6)? != 0 {
            return None;
        }
        let rdlen = usize::from(be16(bytes, opt + 9)?);
        if opt + 11 + rdlen != bytes.len() {
            return None;
        }
        edns = true;
        max_size = usize::from(be16(bytes, opt + 3)?).max(512);
    } else if question_end != bytes.len() {
        return None;
    }
    Some(Request {
        bytes,
        question_end,
        labels,
        count,
        qtype,
        edns,
        max_size,
    })
}

/// What a fast answer was, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) qtype: RecordType,
    pub(crate) rcode: ResponseCode,
}

/// Writes the response to `query` into `out` (cleared first), or returns
/// `None` (with `out` in any state) when the general path must answer.
pub(crate) fn answer(zone: &Zone, query: &[u8], out: &mut Vec<u8>) -> Option<Answered> {
    let req = parse(query)?;
    out.clear();
    let mut w = Writer::start(&req, out)?;
    let rcode = respond(zone, &req, &mut w)?;
    w.finish(rcode)?;
    Some(Answered {
        qtype: RecordType::from(req.qtype),
        rcode,
    })
}

/// Fills the sections; `None` hands the question to the general path.
fn respond(zone: &Zone, req: &Request<'_>, w: &mut Writer<'_>) -> Option<ResponseCode> {
    let origin_labels = usize::from(zone.origin.num_labels());
    let n = req.count;
    let under_origin = n >= origin_labels
        && zone
            .origin
            .iter()
            .enumerate()
            .all(|(i, o)| req.label(n - origin_labels + i).eq_ignore_ascii_case(o));
    if !under_origin {
        return reverse(zone, req, w);
    }
    let rel = n - origin_labels;
    let is = |i: usize, text: &str| req.label(i).eq_ignore_ascii_case(text.as_bytes());
    let soa_at = req.pointer(rel)?;
    if rel > MAX_RELATIVE {
        return w.negative(zone, soa_at, ResponseCode::NXDomain);
    }
    if rel == 0 || (rel == 1 && is(0, "dns-version")) || req.qtype == TYPE_ANY {
        return None;
    }
    if !is(rel - 1, "svc") {
        return w.negative(zone, soa_at, ResponseCode::NXDomain);
    }
    match rel {
        1 => w.negative(zone, soa_at, ResponseCode::NoError),
        2 => {
            let mut buf = [0u8; 64];
            let ns = lower(&mut buf, &[req.label(0)])?;
            let rcode = if zone.namespaces.contains_key(ns) {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            w.negative(zone, soa_at, rcode)
        }
        3 => {
            let Some(sz) = service(zone, req.label(0), req.label(1))? else {
                return w.negative(zone, soa_at, ResponseCode::NXDomain);
            };
            let ips = match &sz.records {
                ServiceRecords::ClusterIp(ips) => ips,
                ServiceRecords::Headless { addresses, .. } if addresses.is_empty() => {
                    return w.negative(zone, soa_at, ResponseCode::NXDomain)
                }
                ServiceRecords::Headless { addresses, .. } => addresses,
                ServiceRecords::ExternalName(_) => return None,
            };
            w.addresses(zone, soa_at, ips, req.qtype)
        }
        4 => {
            let Some(sz) = service(zone, req.label(1), req.label(2))? else {
                return w.negative(zone, soa_at, ResponseCode::NXDomain);
            };
            let mut buf = [0u8; 64];
            let sub = lower(&mut buf, &[req.label(0)])?;
            if sub.starts_with('_') {
                let rcode = if sz.protocols.iter().any(|p| &**p == sub) {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                return w.negative(zone, soa_at, rcode);
            }
            let host = match &sz.records {
                ServiceRecords::Headless { hosts, .. } => hosts
                    .binary_search_by(|h| (*h.name).cmp(sub))
                    .ok()
                    .and_then(|i| hosts.get(i)),
                _ => None,
            };
            match host {
                Some(host) => w.addresses(zone, soa_at, &host.ips, req.qtype),
                None => w.negative(zone, soa_at, ResponseCode::NXDomain),
            }
        }
        _ => srv(zone, req, w, soa_at),
    }
}

/// `_<port>._<proto>.<svc>.<ns>.svc.<zone>`.
fn srv(
    zone: &Zone,
    req: &Request<'_>,
    w: &mut Writer<'_>,
    soa_at: [u8; 2],
) -> Option<ResponseCode> {
    let Some(sz) = service(zone, req.label(2), req.label(3))? else {
        return w.negative(zone, soa_at, ResponseCode::NXDomain);
    };
    let mut buf = [0u8; 128];
    let key = lower(&mut buf, &[req.label(0), req.label(1)])?;
    let set = sz.srv.iter().find(|set| &*set.label == key);
    let Some(set) = set.filter(|set| !set.targets.is_empty()) else {
        return w.negative(zone, soa_at, ResponseCode::NXDomain);
    };
    if req.qtype != TYPE_SRV {
        return w.negative(zone, soa_at, ResponseCode::NoError);
    }
    let base = req.pointer(2)?;
    // SRV targets are never compressed (RFC 2782): spell the name out.
    let spelled = req.suffix(2)?;
    let weight = u16::try_from(100 / set.targets.len()).unwrap_or(1).max(1);
    // Answers first, then the targets' addresses in the same order.
    let mut answers = 0u16;
    for (port, host) in &set.targets {
        let Some(target) = srv_target(sz, *host) else {
            continue;
        };
        let name_len = target.map_or(0, |h| 1 + h.len()) + spelled.len();
        w.record_head(&QNAME_POINTER, TYPE_SRV, zone.ttl, 6 + name_len)?;
        w.put(&0u16.to_be_bytes());
        w.put(&weight.to_be_bytes());
        w.put(&port.to_be_bytes());
        w.name(target, spelled)?;
        answers += 1;
    }
    w.answers = answers;
    for (_, host) in &set.targets {
        let Some(target) = srv_target(sz, *host) else {
            continue;
        };
        let ips = match (host, &sz.records) {
            (None, ServiceRecords::ClusterIp(ips)) => ips.as_slice(),
            (Some(_), _) => sz.host(*host).map_or(&[][..], |h| h.ips.as_slice()),
            _ => &[],
        };
        for ip in ips {
            w.address_at(target, base, *ip, zone.ttl)?;
            w.additionals += 1;
        }
    }
    Some(ResponseCode::NoError)
}

/// The SRV target: `None` for the Service name itself, `Some(label)` for a
/// headless host; `None` overall when the general path would skip it.
fn srv_target(sz: &ServiceZone, host: Option<u32>) -> Option<Option<&[u8]>> {
    match (host, &sz.records) {
        (None, ServiceRecords::ClusterIp(_)) => Some(None),
        (Some(_), _) => sz.host(host).map(|h| Some(h.name.as_bytes())),
        _ => None,
    }
}

/// PTR for IPv4 cluster addresses; anything else (IPv6, unknown addresses,
/// other types) takes the general path, which forwards what is not ours.
fn reverse(zone: &Zone, req: &Request<'_>, w: &mut Writer<'_>) -> Option<ResponseCode> {
    let is = |i: usize, text: &str| req.label(i).eq_ignore_ascii_case(text.as_bytes());
    if req.count != 6 || !is(4, "in-addr") || !is(5, "arpa") || req.qtype != TYPE_PTR {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, octet) in octets.iter_mut().rev().enumerate() {
        *octet = decimal_octet(req.label(i))?;
    }
    let set = zone.ptr.get(&IpAddr::V4(Ipv4Addr::from(octets)))?;
    for (owner, host) in set.iter() {
        let mut len = 1 + 3 + zone.domain.len() + 2;
        len += host.as_ref().map_or(0, |h| h.len() + 1);
        len += owner.len() + 1;
        w.record_head(&QNAME_POINTER, TYPE_PTR, zone.ttl, len)?;
        if let Some(host) = host {
            w.text_labels(host)?;
        }
        w.text_labels(owner)?;
        w.text_labels("svc")?;
        w.text_labels(&zone.domain)?;
        w.put(&[0]);
        w.answers += 1;
    }
    Some(ResponseCode::NoError)
}

/// A canonical decimal octet (`0`..`255`, no leading zeros).
fn decimal_octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label.first() == Some(&b'0')) {
        return None;
    }
    let mut value: u16 = 0;
    for c in label {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(c - b'0');
    }
    u8::try_from(value).ok()
}

/// The Service `<svc>.<ns>`: `Some(None)` when it does not exist, `None` when
/// the name cannot be a key (the general path decides then).
fn service<'z>(zone: &'z Zone, svc: &[u8], ns: &[u8]) -> Option<Option<&'z ServiceZone>> {
    let mut buf = [0u8; 128];
    let key = lower(&mut buf, &[svc, ns])?;
    Some(zone.services.get(key).map(|sz| &**sz))
}

/// Appends a response to a buffer; every write is bounded by the size the
/// client can take, and `None` (too big) hands over to the general path,
/// which truncates properly.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    max_size: usize,
    edns: bool,
    flags: [u8; 2],
    answers: u16,
    authorities: u16,
    additionals: u16,
}

impl<'o> Writer<'o> {
    fn start(req: &Request<'_>, out: &'o mut Vec<u8>) -> Option<Self> {
        let header = req.bytes.get(..HEADER)?;
        let question = req.bytes.get(HEADER..req.question_end)?;
        out.extend_from_slice(header);
        out.extend_from_slice(question);
        // QR, AA and the request's RD; RA and the request's CD.
        let flags = [0x80 | 0x04 | (header[2] & 0x01), 0x80 | (header[3] & 0x10)];
        Some(Self {
            out,
            max_size: req.max_size,
            edns: req.edns,
            flags,
            answers: 0,
            authorities: 0,
            additionals: 0,
        })
    }

    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Owner, type, class IN, TTL and RDLENGTH; `None` when it cannot fit.
    fn record_head(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdlen: usize) -> Option<()> {
        let opt = if self.edns { 11 } else { 0 };
        if self.out.len() + owner.len() + 10 + rdlen + opt > self.max_size {
            return None;
        }
        self.put(owner);
        self.put(&rtype.to_be_bytes());
        self.put(&CLASS_IN.to_be_bytes());
        self.put(&ttl.to_be_bytes());
        self.put(&u16::try_from(rdlen).ok()?.to_be_bytes());
        Some(())
    }

    /// A name: an optional first label, then the rest (a pointer, or the
    /// spelled-out remainder through the root).
    fn name(&mut self, label: Option<&[u8]>, pointer: &[u8]) -> Option<()> {
        if let Some(label) = label {
            self.put(&[u8::try_from(label.len()).ok().filter(|l| *l <= 63)?]);
            self.put(label);
        }
        self.put(pointer);
        Some(())
    }

    /// Dotted text as labels (no terminating root).
    fn text_labels(&mut self, text: &str) -> Option<()> {
        for label in text.split('.') {
            self.put(&[u8::try_from(label.len())
                .ok()
                .filter(|l| (1..=63).contains(l))?]);
            self.put(label.as_bytes());
        }
        Some(())
    }

    fn address_at(
        &mut self,
        label: Option<&[u8]>,
        pointer: [u8; 2],
        ip: IpAddr,
        ttl: u32,
    ) -> Option<()> {
        let (rtype, rdlen) = match ip {
            IpAddr::V4(_) => (TYPE_A, 4),
            IpAddr::V6(_) => (TYPE_AAAA, 16),
        };
        let owner_len = label.map_or(0, |l| 1 + l.len()) + 2;
        let opt = if self.edns { 11 } else { 0 };
        if self.out.len() + owner_len + 10 + rdlen + opt > self.max_size {
            return None;
        }
        self.name(label, &pointer)?;
        self.put(&rtype.to_be_bytes());
        self.put(&CLASS_IN.to_be_bytes());
        self.put(&ttl.to_be_bytes());
        self.put(&u16::try_from(rdlen).ok()?.to_be_bytes());
        match ip {
            IpAddr::V4(v4) => self.put(&v4.octets()),
            IpAddr::V6(v6) => self.put(&v6.octets()),
        }
        Some(())
    }

    /// A/AAAA records at the question name, or NODATA when none match.
    fn addresses(
        &mut self,
        zone: &Zone,
        soa_at: [u8; 2],
        ips: &[IpAddr],
        qtype: u16,
    ) -> Option<ResponseCode> {
        for ip in ips {
            let wanted = match qtype {
                TYPE_A => ip.is_ipv4(),
                TYPE_AAAA => ip.is_ipv6(),
                _ => false,
            };
            if wanted {
                self.address_at(None, QNAME_POINTER, *ip, zone.ttl)?;
                self.answers += 1;
            }
        }
        if self.answers == 0 {
            return self.negative(zone, soa_at, ResponseCode::NoError);
        }
        Some(ResponseCode::NoError)
    }

    /// NXDOMAIN, or NODATA with `NoError`: the SOA in authority.
    fn negative(
        &mut self,
        zone: &Zone,
        soa_at: [u8; 2],
        rcode: ResponseCode,
    ) -> Option<ResponseCode> {
        let rdata = &zone.soa_rdata;
        self.record_head(&soa_at, 6, zone.ttl, rdata.len())?;
        self.put(rdata);
        self.authorities = 1;
        Some(rcode)
    }

    fn finish(mut self, rcode: ResponseCode) -> Option<()> {
        if self.edns {
            // Root owner, OPT, our payload size, no extended rcode/flags/options.
            self.put(&[0]);
            self.put(&TYPE_OPT.to_be_bytes());
            self.put(&SERVER_UDP_PAYLOAD.to_be_bytes());
            self.put(&[0, 0, 0, 0, 0, 0]);
            self.additionals += 1;
        }
        if self.out.len() > self.max_size {
            return None;
        }
        let header = self.out.get_mut(2..HEADER)?;
        header[0] = self.flags[0];
        header[1] = self.flags[1] | (rcode.low() & 0x0F);
        header[2..4].copy_from_slice(&1u16.to_be_bytes());
        header[4..6].copy_from_slice(&self.answers.to_be_bytes());
        header[6..8].copy_from_slice(&self.authorities.to_be_bytes());
        header[8..10].copy_from_slice(&self.additionals.to_be_bytes());
        Some(())
    }
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
