//! The NodePorts held by Services, kept in memory so a NodePort create does not
//! scan every allocation key of the store (that scan was ~8 % of the server's CPU
//! in the 10,000-Service benchmark, and grows with the number of NodePorts).
//!
//! It is a hint, never the truth: claims are still `KeyMissing` compares in the
//! Service's own transaction. A port wrongly believed free makes the claim fail,
//! and the caller forgets the set and loads it again; a port wrongly believed taken
//! only narrows the choice, and a plan that finds the range full reloads before it
//! says so. Only this API server writes allocation keys (`services::put`/`remove`),
//! and it updates the set after each committed write.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::alloc::PORT_PREFIX;

/// The NodePorts taken, or nothing until first loaded (or after a lost race).
#[derive(Debug, Default)]
pub(crate) struct TakenPorts(Mutex<Option<BTreeSet<u16>>>);

/// The port of a NodePort allocation key.
pub(crate) fn port_of_key(key: &str) -> Option<u16> {
    key.strip_prefix(PORT_PREFIX).and_then(|p| p.parse().ok())
}

impl TakenPorts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<u16>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the set must be loaded from the store before use.
    pub(crate) fn is_unknown(&self) -> bool {
        self.lock().is_none()
    }

    /// Replaces the set with one read from the store.
    pub(crate) fn fill(&self, ports: BTreeSet<u16>) {
        *self.lock() = Some(ports);
    }

    /// Forgets the set (it disagreed with the store); the next user reloads it.
    pub(crate) fn forget(&self) {
        *self.lock() = None;
    }

    /// Runs `f` over the set (empty if unknown: the claims' compares still hold).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&BTreeSet<u16>) -> R) -> R {
        let guard = self.lock();
        match guard.as_ref() {
            Some(set) => f(set),
            None => f(&BTreeSet::new()),
        }
    }

    /// Records a committed write: `claimed` and `released` are allocation keys
    /// (ClusterIP keys are ignored).
    pub(crate) fn committed<'a>(
        &self,
        claimed: impl IntoIterator<Item = &'a str>,
        released: impl IntoIterator<Item = &'a str>,
    ) {
        let mut guard = self.lock();
        let Some(set) = guard.as_mut() else {
            return;
        };
        for p in released.into_iter().filter_map(port_of_key) {
            set.remove(&p);
        }
        set.extend(claimed.into_iter().filter_map(port_of_key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::{ip_key, port_key};

    #[test]
    fn tracks_committed_ports_only_once_loaded() {
        let t = TakenPorts::default();
        assert!(t.is_unknown());
        // Writes before the first load are not recorded: the load will see them.
        t.committed([port_key(30001).as_str()], []);
        assert!(t.is_unknown());
        t.fill(BTreeSet::from([30002, 30003]));
        let ip = ip_key(&"10.96.0.5".parse().unwrap());
        let (a, b, c) = (port_key(30004), port_key(30002), port_key(30003));
        t.committed([a.as_str(), ip.as_str()], [b.as_str()]);
        assert_eq!(t.with(|s| s.clone()), BTreeSet::from([30003, 30004]));
        t.committed([], [c.as_str(), ip.as_str()]);
        assert_eq!(t.with(|s| s.clone()), BTreeSet::from([30004]));
        t.forget();
        assert!(t.is_unknown());
        assert!(t.with(BTreeSet::is_empty));
        assert_eq!(port_of_key(&port_key(32767)), Some(32767));
        assert_eq!(port_of_key("/registry-alloc/nodeport/x"), None);
    }
}
