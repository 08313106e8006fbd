//! Answering one question from a zone snapshot: pure, no IO.
//!
//! The result is data (`Outcome`): records by reference into the zone, the
//! response code, and whether the question must go upstream instead.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::zone::{ServiceZone, Zone};

/// Names below the zone never have more labels than `_<port>._<proto>.<svc>.<ns>.svc`.
const MAX_RELATIVE_LABELS: usize = 5;

/// How deep an in-zone CNAME chain is followed.
const MAX_CNAME_CHAIN: usize = 8;

/// A response as data, borrowing records from the zone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response<'z> {
    /// The response code.
    pub rcode: ResponseCode,
    /// Whether this server is authoritative for the answer (the AA bit).
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<&'z Record>,
    /// Authority section (the SOA on NXDOMAIN and NODATA).
    pub authorities: Vec<&'z Record>,
    /// Additional section (addresses of SRV targets).
    pub additionals: Vec<&'z Record>,
}

/// What to do with a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<'z> {
    /// Answer with this response.
    Answer(Response<'z>),
    /// The answer starts with this CNAME chain, whose last target lies outside
    /// the zone: resolve `target` upstream and append its answer.
    Chase {
        /// The in-zone part of the answer.
        response: Response<'z>,
        /// The out-of-zone name to resolve.
        target: &'z Name,
    },
    /// Not ours: forward the question to the upstream resolvers.
    Forward,
}

/// Answers `qname`/`qtype` from `zone`.
pub fn answer<'z>(zone: &'z Zone, qname: &Name, qtype: RecordType) -> Outcome<'z> {
    answer_depth(zone, qname, qtype, 0)
}

fn answer_depth<'z>(zone: &'z Zone, qname: &Name, qtype: RecordType, depth: usize) -> Outcome<'z> {
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

    match labels {
        [] => match qtype {
            RecordType::SOA => records(zone, vec![&zone.soa]),
            RecordType::NS => records(zone, vec![&zone.ns]),
            RecordType::ANY => records(zone, vec![&zone.soa, &zone.ns]),
            _ => nodata(zone),
        },
        [v] if is(v, "dns-version") => match qtype {
            RecordType::TXT | RecordType::ANY => records(zone, vec![&zone.version]),
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
            Some(sz) => service_name(zone, sz, qtype, depth),
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
            match sz.hosts.get(sub) {
                Some(host) => addresses(zone, &host.a, &host.aaaa, qtype),
                None => nxdomain(zone),
            }
        }
        [port, proto, svc, ns, s] if is(s, "svc") => {
            let Some(sz) = service(zone, svc, ns) else {
                return nxdomain(zone);
            };
            let mut buf = [0u8; 128];
            let set = lower(&mut buf, &[port, proto]).and_then(|key| sz.srv.get(key));
            match set {
                Some(set) if set.records.is_empty() => nxdomain(zone),
                Some(set) if matches!(qtype, RecordType::SRV | RecordType::ANY) => {
                    let mut response = positive(set.records.iter().collect());
                    response.additionals = set.additionals.iter().collect();
                    Outcome::Answer(response)
                }
                Some(_) => nodata(zone),
                None => nxdomain(zone),
            }
        }
        _ => nxdomain(zone),
    }
}

/// The records at `<svc>.<ns>.svc.<zone>`.
fn service_name<'z>(
    zone: &'z Zone,
    sz: &'z ServiceZone,
    qtype: RecordType,
    depth: usize,
) -> Outcome<'z> {
    let Some(cname) = &sz.cname else {
        if !sz.name_exists() {
            return nxdomain(zone);
        }
        return addresses(zone, &sz.a, &sz.aaaa, qtype);
    };
    if qtype == RecordType::CNAME {
        return records(zone, vec![cname]);
    }
    let RData::CNAME(CNAME(target)) = &cname.data else {
        return records(zone, vec![cname]);
    };
    if relative_labels(zone.origin(), target).is_none() {
        return Outcome::Chase {
            response: positive(vec![cname]),
            target,
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
            if rest.rcode == ResponseCode::NoError && !rest.answers.is_empty() {
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
            target,
        },
    }
}

/// A and AAAA records at one name.
fn addresses<'z>(zone: &'z Zone, a: &'z [Record], aaaa: &'z [Record], qtype: RecordType) -> Outcome<'z> {
    match qtype {
        RecordType::A => records(zone, a.iter().collect()),
        RecordType::AAAA => records(zone, aaaa.iter().collect()),
        RecordType::ANY => records(zone, a.iter().chain(aaaa).collect()),
        _ => nodata(zone),
    }
}

/// PTR lookups: answered when the address is one of ours, forwarded otherwise
/// (as CoreDNS's `fallthrough in-addr.arpa ip6.arpa` does).
fn reverse<'z>(zone: &'z Zone, qname: &Name, qtype: RecordType) -> Outcome<'z> {
    let Ok(net) = qname.to_lowercase().parse_arpa_name() else {
        return Outcome::Forward;
    };
    if net.prefix_len() != net.max_prefix_len() {
        return Outcome::Forward;
    }
    let Some(set) = zone.ptr.get(&net.addr()) else {
        return Outcome::Forward;
    };
    match qtype {
        RecordType::PTR | RecordType::ANY => {
            Outcome::Answer(positive(set.iter().map(|(_, record)| record).collect()))
        }
        _ => Outcome::Answer(Response {
            authoritative: true,
            ..Response::default()
        }),
    }
}

fn service<'z>(zone: &'z Zone, svc: &[u8], ns: &[u8]) -> Option<&'z ServiceZone> {
    let mut buf = [0u8; 128];
    let key = lower(&mut buf, &[svc, ns])?;
    zone.services.get(key).map(|sz| &**sz)
}

fn positive(answers: Vec<&Record>) -> Response<'_> {
    Response {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers,
        ..Response::default()
    }
}

/// NOERROR with `answers`, or NODATA when there are none.
fn records<'z>(zone: &'z Zone, answers: Vec<&'z Record>) -> Outcome<'z> {
    if answers.is_empty() {
        return nodata(zone);
    }
    Outcome::Answer(positive(answers))
}

/// The name exists with other types: NOERROR, no answers, SOA in authority.
fn nodata(zone: &Zone) -> Outcome<'_> {
    Outcome::Answer(Response {
        rcode: ResponseCode::NoError,
        authoritative: true,
        authorities: vec![&zone.soa],
        ..Response::default()
    })
}

/// The name does not exist: NXDOMAIN, SOA in authority.
fn nxdomain(zone: &Zone) -> Outcome<'_> {
    Outcome::Answer(Response {
        rcode: ResponseCode::NXDomain,
        authoritative: true,
        authorities: vec![&zone.soa],
        ..Response::default()
    })
}

/// The labels of `name` left of `origin` (leftmost first), or `None` when
/// `name` is not at or below `origin`. Case-insensitive, allocation-free.
fn relative_labels<'n>(origin: &Name, name: &'n Name) -> Option<impl Iterator<Item = &'n [u8]> + ExactSizeIterator> {
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
    Some(name.iter().take(n - o).collect::<SmallLabels<'n>>().into_iter())
}

/// Lowercases `parts` joined by `.` into `buf`; `None` when it does not fit or
/// is not UTF-8 (no such key exists then).
fn lower<'b>(buf: &'b mut [u8], parts: &[&[u8]]) -> Option<&'b str> {
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
