//! A small cache of upstream answers, keyed by question, with TTLs that count
//! down. Time is passed in, so the logic is pure and testable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Longest time a positive answer is cached, whatever its TTL.
const MAX_POSITIVE: Duration = Duration::from_secs(300);
/// Longest time a negative answer is cached.
const MAX_NEGATIVE: Duration = Duration::from_secs(30);
/// Negative caching time when the upstream sent no SOA.
const DEFAULT_NEGATIVE: Duration = Duration::from_secs(5);

/// An upstream answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Response code.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
    /// Additional section (without OPT).
    pub additionals: Vec<Record>,
}

#[derive(Debug)]
struct Entry {
    answer: Arc<Upstream>,
    stored: Instant,
    expires: Instant,
}

type Key = (Name, RecordType, DNSClass);

/// A bounded answer cache, safe to share between tasks (the lock is never
/// held across an await).
#[derive(Debug)]
pub struct Cache {
    entries: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

impl Cache {
    /// A cache holding at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The cached answer with TTLs reduced by the time it spent in the cache.
    pub fn get(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
        now: Instant,
    ) -> Option<Upstream> {
        let key = (name.to_lowercase(), qtype, class);
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&key)?;
        if now >= entry.expires {
            return None;
        }
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let age_records = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.decrement_ttl(age);
                    r
                })
                .collect()
        };
        let answer = &entry.answer;
        Some(Upstream {
            rcode: answer.rcode,
            answers: age_records(&answer.answers),
            authorities: age_records(&answer.authorities),
            additionals: age_records(&answer.additionals),
        })
    }

    /// Stores `answer` for as long as its TTLs allow (nothing for SERVFAIL and
    /// other failures, nor for zero TTLs).
    pub fn put(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
        answer: Upstream,
        now: Instant,
    ) {
        let Some(ttl) = cache_time(&answer) else {
            return;
        };
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than track recency.
                entries.clear();
            }
        }
        entries.insert(
            (name.to_lowercase(), qtype, class),
            Entry {
                answer: Arc::new(answer),
                stored: now,
                expires: now + ttl,
            },
        );
    }

    /// Number of stored answers (live or expired).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long an answer may be cached: the smallest answer TTL for a positive
/// answer, the SOA minimum for NXDOMAIN/NODATA (RFC 2308), nothing otherwise.
fn cache_time(answer: &Upstream) -> Option<Duration> {
    let time = match answer.rcode {
        ResponseCode::NoError if !answer.answers.is_empty() => {
            let ttl = answer.answers.iter().map(|r| r.ttl).min()?;
            Duration::from_secs(u64::from(ttl)).min(MAX_POSITIVE)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => answer
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(Duration::from_secs(u64::from(r.ttl.min(soa.minimum)))),
                _ => None,
            })
            .unwrap_or(DEFAULT_NEGATIVE)
            .min(MAX_NEGATIVE),
        _ => return None,
    };
    (!time.is_zero()).then_some(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(ttl: u32) -> Upstream {
        Upstream {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                name("example.com."),
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            )],
            authorities: vec![],
            additionals: vec![],
        }
    }

    #[test]
    fn positive_answers_live_for_their_ttl_and_count_down() {
        let cache = Cache::new(10);
        let t0 = Instant::now();
        cache.put(
            &name("Example.COM."),
            RecordType::A,
            DNSClass::IN,
            a(60),
            t0,
        );
        let hit = cache
            .get(
                &name("example.com."),
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(20),
            )
            .unwrap();
        assert_eq!(hit.answers[0].ttl, 40);
        assert!(cache
            .get(&name("example.com."), RecordType::AAAA, DNSClass::IN, t0)
            .is_none());
        assert!(cache
            .get(
                &name("example.com."),
                RecordType::A,
                DNSClass::IN,
                t0 + Duration::from_secs(60)
            )
            .is_none());
    }

    #[test]
    fn negative_answers_use_the_soa_minimum_and_servfail_is_not_cached() {
        let cache = Cache::new(10);
        let t0 = Instant::now();
        let soa = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, 10);
        let nx = Upstream {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(name("example."), 3600, RData::SOA(soa))],
            additionals: vec![],
        };
        cache.put(&name("nope.example."), RecordType::A, DNSClass::IN, nx, t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert!(cache
            .get(&name("nope.example."), RecordType::A, DNSClass::IN, at(9))
            .is_some());
        assert!(cache
            .get(&name("nope.example."), RecordType::A, DNSClass::IN, at(10))
            .is_none());

        let fail = Upstream {
            rcode: ResponseCode::ServFail,
            ..a(60)
        };
        cache.put(&name("x.example."), RecordType::A, DNSClass::IN, fail, t0);
        assert!(cache
            .get(&name("x.example."), RecordType::A, DNSClass::IN, t0)
            .is_none());
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = Cache::new(3);
        let t0 = Instant::now();
        for i in 0..10 {
            cache.put(
                &name(&format!("n{i}.example.")),
                RecordType::A,
                DNSClass::IN,
                a(60),
                t0,
            );
            assert!(cache.len() <= 3);
        }
    }
}
