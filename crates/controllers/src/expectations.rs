//! Controller expectations: after creating or deleting objects, a controller waits until its
//! cache shows those writes before deciding again, so a lagging cache never causes duplicate
//! pods (client-go's ControllerExpectations, keyed by object name instead of counts).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Give up waiting after this long (a missed watch event must not wedge a controller).
const TTL: Duration = Duration::from_secs(10);

/// Pending creates/deletes per controller key.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    at: Instant,
    adds: HashSet<String>,
    dels: HashSet<String>,
}

// === impl Expectations ===

impl Expectations {
    /// No expectations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records names about to be created and deleted for `key`.
    pub fn expect(&self, key: &str, adds: &[String], dels: &[String]) {
        if adds.is_empty() && dels.is_empty() {
            return;
        }
        if let Ok(mut m) = self.inner.lock() {
            let e = m.entry(key.to_string()).or_insert_with(|| Entry {
                at: Instant::now(),
                adds: HashSet::new(),
                dels: HashSet::new(),
            });
            e.at = Instant::now();
            e.adds.extend(adds.iter().cloned());
            e.dels.extend(dels.iter().cloned());
        }
    }

    /// Drops an expectation whose write failed (it will never be observed).
    pub fn forget_name(&self, key: &str, name: &str) {
        if let Ok(mut m) = self.inner.lock() {
            if let Some(e) = m.get_mut(key) {
                e.adds.remove(name);
                e.dels.remove(name);
            }
        }
    }

    /// Forgets everything about `key` (object deleted).
    pub fn clear(&self, key: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(key);
        }
    }

    /// Whether the cache shows every expected write: `present(name)` for creates and
    /// `gone(name)` for deletes. Expired entries count as satisfied.
    pub fn satisfied(
        &self,
        key: &str,
        present: impl Fn(&str) -> bool,
        gone: impl Fn(&str) -> bool,
    ) -> bool {
        let Ok(mut m) = self.inner.lock() else {
            return true;
        };
        let Some(e) = m.get_mut(key) else {
            return true;
        };
        e.adds.retain(|n| !present(n));
        e.dels.retain(|n| !gone(n));
        if (e.adds.is_empty() && e.dels.is_empty()) || e.at.elapsed() > TTL {
            m.remove(key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_observed_creates_and_deletes() {
        let e = Expectations::new();
        e.expect("ns/rs", &["p1".into(), "p2".into()], &["old".into()]);
        assert!(!e.satisfied("ns/rs", |n| n == "p1", |_| true));
        assert!(!e.satisfied("ns/rs", |_| false, |_| true));
        e.forget_name("ns/rs", "p2");
        assert!(e.satisfied("ns/rs", |n| n == "p1", |_| true));
        assert!(e.satisfied("other", |_| false, |_| false));
    }
}
