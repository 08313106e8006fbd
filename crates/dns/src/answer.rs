//! Answering one question from a zone snapshot: pure, no IO.
//!
//! The result is data (`Outcome`): records built from the compact zone for
//! this question, the response code, or the verdict that the question must
//! go upstream instead.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::zone::{ServiceRecords, ServiceZone, Zone};

/// Names below the zone never have more labels than `_<port>._<proto>.<svc>.<ns>.svc`.
const MAX_RELATIVE_LABELS: usize = 5;

/// How deep an in-zone CNAME chain is followed.
const MAX_CNAME_CHAIN: usize = 8;

/// A response as data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// The response code.
    pub rcode: ResponseCode,
    /// Whether this server is authoritative for the answer (the AA bit).
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA on NXDOMAIN and NODATA).
    pub authorities: Vec<Record>,
    /// Additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
}

/// What to do with a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Answer with this response.
    Answer(Response),
    /// The answer starts with this CNAME chain, whose last target lies outside
    /// the zone: resolve `target` upstream and append its answer.
    Chase {
        /// The in-zone part of the answer.
        response: Response,
        /// The out-of-zone name to resolve.
        target: Name,
    },
    /// Not ours: forward the question to the upstream resolvers.
    Forward,
}

/// Answers `qname`/`qtype` from `zone`. Answer owner names keep the case of
/// the question (as clients using 0x20 case randomisation expect).
pub fn answer(zone: &Zone, qname: &Name, qtype: RecordType) -> Outcome {
    answer_depth(zone, qname, qtype, 0)
}

fn answer_depth(zone: &Zone, qname: &Name, qtype: RecordType, depth: usize) -> Outcome {
    let Some(rel) = relative_labels(zone.origin(), qname) else {
        return reverse(zone, qname, qtype);
    };
    let mut labels: [&[u8]; MAX_RELATIVE_LABELS] = [&[]; MAX_RELATIVE_LABELS];
    let count = rel.len();
    if count > MAX_RELATIVE_LABELS {
        // Deeper than any record we publish: this is where the ndots search
        // expansions (`x.ns.svc.cluster.local.ns.svc.cluster.local`) end up.
        return nxdomain(zone);
    }
    for (slot, label) in labels.iter_mut().zip(rel) {
        *slot = label;
    }
    let labels = &labels[..count];
    let is = |label: &[u8], text: &str| label.eq_ignore_ascii_case(text.as_bytes());
    let ttl = zone.ttl;

    match labels {
        [] => match qtype {
            RecordType::SOA => records(zone, vec![zone.soa.clone()]),
            RecordType::NS => records(zone, vec![zone.ns.clone()]),
            RecordType::ANY => records(zone, vec![zone.soa.clone(), zone.ns.clone()]),
            _ => nodata(zone),
        },
        [v] if is(v, "dns-version") => match qtype {
            RecordType::TXT | RecordType::ANY => records(zone, vec![zone.version.clone()]),
            _ => nodata(zone),
        },
        [s] if is(s, "svc") => nodata(zone),
        [ns, s] if is(s, "svc") => {
            let mut buf = [0u8; 64];
            match lower(&mut buf, &[ns]) {
                Some(ns) if zone.namespaces.contains_key(ns) => nodata(zone),
                _ => nxdomain(zone),
            }
        }
        [svc, ns, s] if is(s, "svc") => match service(zone, svc, ns) {
            Some(sz) => service_name(zone, sz, qname, qtype, depth),
            None => nxdomain(zone),
        },
        [sub, svc, ns, s] if is(s, "svc") => {
            let Some(sz) = service(zone, svc, ns) else {
                return nxdomain(zone);
            };
            let mut buf = [0u8; 64];
            let Some(sub) = lower(&mut buf, &[sub]) else {
                return nxdomain(zone);
            };
            if sub.starts_with('_') {
                if sz.protocols.iter().any(|p| &**p == sub) {
                    return nodata(zone);
                }
                return nxdomain(zone);
            }
            let ServiceRecords::Headless { hosts, .. } = &sz.records else {
                return nxdomain(zone);
            };
            match hosts.binary_search_by(|h| (*h.name).cmp(sub)) {
                Ok(i) => match hosts.get(i) {
                    Some(host) => addresses(zone, qname, &host.ips, qtype),
                    None => nxdomain(zone),
                },
                Err(_) => nxdomain(zone),
            }
        }
        [port, proto, svc, ns, s] if is(s, "svc") => {
            let Some(sz) = service(zone, svc, ns) else {
                return nxdomain(zone);
            };
            let mut buf = [0u8; 128];
            let set = lower(&mut buf, &[port, proto])
                .and_then(|key| sz.srv.iter().find(|set| &*set.label == key));
            let Some(set) = set else {
                return nxdomain(zone);
            };
            if set.targets.is_empty() {
                return nxdomain(zone);
            }
            if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
                return nodata(zone);
            }
            let base = qname.trim_to(qname.num_labels().saturating_sub(2).into());
            // Equal weights summing to about 100, as CoreDNS does.
            let weight = u16::try_from(100 / set.targets.len()).unwrap_or(1).max(1);
            let mut response = positive(Vec::with_capacity(set.targets.len()));
            for (port, host) in &set.targets {
                let (target, ips) = match (host, &sz.records) {
                    (None, ServiceRecords::ClusterIp(ips)) => (base.clone(), ips.as_slice()),
                    (Some(_), _) => match sz.host(*host) {
                        Some(h) => match base.prepend_label(&*h.name) {
                            Ok(name) => (name, h.ips.as_slice()),
                            Err(_) => continue,
                        },
                        None => continue,
                    },
                    _ => continue,
                };
                for ip in ips {
                    response.additionals.push(address_record(&target, *ip, ttl));
                }
                let srv = SRV::new(0, weight, *port, target);
                response
                    .answers
                    .push(Record::from_rdata(qname.clone(), ttl, RData::SRV(srv)));
            }
            Outcome::Answer(response)
        }
        _ => nxdomain(zone),
    }
}

/// The records at `<svc>.<ns>.svc.<zone>`.
fn service_name(
    zone: &Zone,
    sz: &ServiceZone,
    qname: &Name,
    qtype: RecordType,
    depth: usize,
) -> Outcome {
    let target = match &sz.records {
        ServiceRecords::ClusterIp(ips) => return addresses(zone, qname, ips, qtype),
        ServiceRecords::Headless { addresses: ips, .. } if ips.is_empty() => return nxdomain(zone),
        ServiceRecords::Headless { addresses: ips, .. } => {
            return addresses(zone, qname, ips, qtype)
        }
        ServiceRecords::ExternalName(target) => target,
    };
    let cname = Record::from_rdata(qname.clone(), zone.ttl, RData::CNAME(CNAME(target.clone())));
    if qtype == RecordType::CNAME {
        return records(zone, vec![cname]);
    }
    if relative_labels(zone.origin(), target).is_none() {
        return Outcome::Chase {
            response: positive(vec![cname]),
            target: target.clone(),
        };
    }
    if depth >= MAX_CNAME_CHAIN {
        return Outcome::Answer(Response {
            rcode: ResponseCode::ServFail,
            ..Response::default()
        });
    }
    // An ExternalName pointing back into the cluster: follow it here.
    match answer_depth(zone, target, qtype, depth + 1) {
        Outcome::Answer(mut rest) => {
            rest.answers.insert(0, cname);
            if rest.rcode == ResponseCode::NoError && rest.answers.len() > 1 {
                rest.authorities.clear();
            }
            Outcome::Answer(rest)
        }
        Outcome::Chase {
            mut response,
            target,
        } => {
            response.answers.insert(0, cname);
            Outcome::Chase { response, target }
        }
        Outcome::Forward => Outcome::Chase {
            response: positive(vec![cname]),
            target: target.clone(),
        },
    }
}

fn address_record(owner: &Name, ip: IpAddr, ttl: u32) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(owner.clone(), ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(v6))),
    }
}

/// A and AAAA records at one name.
fn addresses(zone: &Zone, owner: &Name, ips: &[IpAddr], qtype: RecordType) -> Outcome {
    let wanted = |ip: &&IpAddr| match qtype {
        RecordType::A => ip.is_ipv4(),
        RecordType::AAAA => ip.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    };
    let answers = ips
        .iter()
        .filter(wanted)
        .map(|ip| address_record(owner, *ip, zone.ttl))
        .collect();
    records(zone, answers)
}

/// PTR lookups: answered when the address is one of ours, forwarded otherwise
/// (as CoreDNS's `fallthrough in-addr.arpa ip6.arpa` does).
fn reverse(zone: &Zone, qname: &Name, qtype: RecordType) -> Outcome {
    let Ok(net) = qname.to_lowercase().parse_arpa_name() else {
        return Outcome::Forward;
    };
    if net.prefix_len() != net.max_prefix_len() {
        return Outcome::Forward;
    }
    let Some(set) = zone.ptr.get(&net.addr()) else {
        return Outcome::Forward;
    };
    if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
        return Outcome::Answer(Response {
            authoritative: true,
            ..Response::default()
        });
    }
    let answers = set
        .iter()
        .filter_map(|(owner, host)| {
            let text = match host {
                Some(host) => format!("{host}.{owner}.svc.{}.", zone.domain),
                None => format!("{owner}.svc.{}.", zone.domain),
            };
            let target = Name::from_ascii(text).ok()?;
            Some(Record::from_rdata(
                qname.clone(),
                zone.ttl,
                RData::PTR(PTR(target)),
            ))
        })
        .collect();
    Outcome::Answer(positive(answers))
}

fn service<'z>(zone: &'z Zone, svc: &[u8], ns: &[u8]) -> Option<&'z ServiceZone> {
    let mut buf = [0u8; 128];
    let key = lower(&mut buf, &[svc, ns])?;
    zone.services.get(key).map(|sz| &**sz)
}

fn positive(answers: Vec<Record>) -> Response {
    Response {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers,
        ..Response::default()
    }
}

/// NOERROR with `answers`, or NODATA when there are none.
fn records(zone: &Zone, answers: Vec<Record>) -> Outcome {
    if answers.is_empty() {
        return nodata(zone);
    }
    Outcome::Answer(positive(answers))
}

/// The name exists with other types: NOERROR, no answers, SOA in authority.
fn nodata(zone: &Zone) -> Outcome {
    Outcome::Answer(Response {
        rcode: ResponseCode::NoError,
        authoritative: true,
        authorities: vec![zone.soa.clone()],
        ..Response::default()
    })
}

/// The name does not exist: NXDOMAIN, SOA in authority.
fn nxdomain(zone: &Zone) -> Outcome {
    Outcome::Answer(Response {
        rcode: ResponseCode::NXDomain,
        authoritative: true,
        authorities: vec![zone.soa.clone()],
        ..Response::default()
    })
}

/// The labels of `name` left of `origin` (leftmost first), or `None` when
/// `name` is not at or below `origin`. Case-insensitive, allocation-free.
fn relative_labels<'n>(
    origin: &Name,
    name: &'n Name,
) -> Option<impl ExactSizeIterator<Item = &'n [u8]>> {
    let n = usize::from(name.num_labels());
    let o = usize::from(origin.num_labels());
    if n < o {
        return None;
    }
    let suffix_matches = name
        .iter()
        .skip(n - o)
        .zip(origin.iter())
        .all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !suffix_matches {
        return None;
    }
    Some(
        name.iter()
            .take(n - o)
            .collect::<SmallLabels<'n>>()
            .into_iter(),
    )
}

/// Lowercases `parts` joined by `.` into `buf`; `None` when it does not fit or
/// is not UTF-8 (no such key exists then).
pub(crate) fn lower<'b>(buf: &'b mut [u8], parts: &[&[u8]]) -> Option<&'b str> {
    let mut len = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(len)? = b'.';
            len += 1;
        }
        let dst = buf.get_mut(len..len + part.len())?;
        for (d, s) in dst.iter_mut().zip(part.iter()) {
            *d = s.to_ascii_lowercase();
        }
        len += part.len();
    }
    std::str::from_utf8(buf.get(..len)?).ok()
}

/// Up to `MAX_RELATIVE_LABELS + 1` labels on the stack; the `+ 1` lets the
/// caller tell "too deep" apart without allocating.
struct SmallLabels<'n> {
    labels: [&'n [u8]; MAX_RELATIVE_LABELS + 1],
    len: usize,
}

impl<'n> FromIterator<&'n [u8]> for SmallLabels<'n> {
    fn from_iter<I: IntoIterator<Item = &'n [u8]>>(iter: I) -> Self {
        let mut out = Self {
            labels: [&[]; MAX_RELATIVE_LABELS + 1],
            len: 0,
        };
        for label in iter {
            match out.labels.get_mut(out.len) {
                Some(slot) => {
                    *slot = label;
                    out.len += 1;
                }
                None => break,
            }
        }
        out
    }
}

impl<'n> IntoIterator for SmallLabels<'n> {
    type Item = &'n [u8];
    type IntoIter = std::iter::Take<std::array::IntoIter<&'n [u8], { MAX_RELATIVE_LABELS + 1 }>>;

    fn into_iter(self) -> Self::IntoIter {
        self.labels.into_iter().take(self.len)
    }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
