//! Label index over cached objects, so selector lookups touch only candidate objects instead
//! of scanning every pod (100,000 pods × 10,000 Services must stay cheap).
//!
//! Each object is indexed by the (namespace, key, value) pairs of a label map: its labels
//! (pods, slices) or its selector (Services). Two queries follow: objects whose map contains
//! a selector, and objects whose (selector) map is contained in a label set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

type Pair = (String, String, String);

/// Thread-safe index from label pairs to object names, per namespace.
#[derive(Default)]
pub struct LabelIndex {
    inner: RwLock<State>,
}

#[derive(Default)]
struct State {
    by_pair: HashMap<Pair, HashSet<String>>,
    maps: HashMap<(String, String), BTreeMap<String, String>>,
}

// === impl LabelIndex ===

impl LabelIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the map of object `ns/name`.
    pub fn set(&self, ns: &str, name: &str, map: &BTreeMap<String, String>) {
        let Ok(mut st) = self.inner.write() else {
            return;
        };
        let id = (ns.to_string(), name.to_string());
        if st.maps.get(&id) == Some(map) {
            return;
        }
        remove_locked(&mut st, &id);
        for (k, v) in map {
            st.by_pair
                .entry((ns.to_string(), k.clone(), v.clone()))
                .or_default()
                .insert(name.to_string());
        }
        st.maps.insert(id, map.clone());
    }

    /// Forgets object `ns/name`.
    pub fn remove(&self, ns: &str, name: &str) {
        if let Ok(mut st) = self.inner.write() {
            remove_locked(&mut st, &(ns.to_string(), name.to_string()));
        }
    }

    /// Names in `ns` whose map contains every pair of `selector` (non-empty selector).
    pub fn containing(&self, ns: &str, selector: &BTreeMap<String, String>) -> Vec<String> {
        let Ok(st) = self.inner.read() else {
            return Vec::new();
        };
        let mut sets = Vec::with_capacity(selector.len());
        for (k, v) in selector {
            match st.by_pair.get(&(ns.to_string(), k.clone(), v.clone())) {
                Some(s) => sets.push(s),
                None => return Vec::new(),
            }
        }
        sets.sort_by_key(|s| s.len());
        let Some((first, rest)) = sets.split_first() else {
            return Vec::new();
        };
        first
            .iter()
            .filter(|n| rest.iter().all(|s| s.contains(*n)))
            .cloned()
            .collect()
    }

    /// Names in `ns` whose non-empty map is contained in `labels` (Services selecting a pod).
    pub fn contained_in(&self, ns: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
        let Ok(st) = self.inner.read() else {
            return Vec::new();
        };
        let mut candidates: HashSet<&String> = HashSet::new();
        for (k, v) in labels {
            if let Some(s) = st.by_pair.get(&(ns.to_string(), k.clone(), v.clone())) {
                candidates.extend(s.iter());
            }
        }
        candidates
            .into_iter()
            .filter(|name| {
                st.maps
                    .get(&(ns.to_string(), (*name).clone()))
                    .is_some_and(|m| {
                        !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))
                    })
            })
            .cloned()
            .collect()
    }
}

fn remove_locked(st: &mut State, id: &(String, String)) {
    if let Some(old) = st.maps.remove(id) {
        for (k, v) in old {
            let pair = (id.0.clone(), k, v);
            if let Some(set) = st.by_pair.get_mut(&pair) {
                set.remove(&id.1);
                if set.is_empty() {
                    st.by_pair.remove(&pair);
                }
            }
        }
    }
}

/// Index from owner UID to dependents' keys (`ns/name`), for controllers and the GC.
#[derive(Default)]
pub struct OwnerIndex {
    inner: RwLock<OwnerState>,
}

#[derive(Default)]
struct OwnerState {
    by_owner: HashMap<String, HashSet<String>>,
    owners: HashMap<String, Vec<String>>,
}

// === impl OwnerIndex ===

impl OwnerIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that object `key` has owners `uids` (replacing what was recorded).
    pub fn set(&self, key: &str, uids: Vec<String>) {
        let Ok(mut st) = self.inner.write() else {
            return;
        };
        if st.owners.get(key) == Some(&uids) {
            return;
        }
        owner_remove_locked(&mut st, key);
        if uids.is_empty() {
            return;
        }
        for u in &uids {
            st.by_owner
                .entry(u.clone())
                .or_default()
                .insert(key.to_string());
        }
        st.owners.insert(key.to_string(), uids);
    }

    /// Forgets object `key`.
    pub fn remove(&self, key: &str) {
        if let Ok(mut st) = self.inner.write() {
            owner_remove_locked(&mut st, key);
        }
    }

    /// Keys of the objects owned by `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<String> {
        self.inner
            .read()
            .ok()
            .and_then(|st| st.by_owner.get(uid).map(|s| s.iter().cloned().collect()))
            .unwrap_or_default()
    }
}

fn owner_remove_locked(st: &mut OwnerState, key: &str) {
    if let Some(old) = st.owners.remove(key) {
        for u in old {
            if let Some(set) = st.by_owner.get_mut(&u) {
                set.remove(key);
                if set.is_empty() {
                    st.by_owner.remove(&u);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_pods_for_selector_and_services_for_pod() {
        let pods = LabelIndex::new();
        pods.set("default", "a", &m(&[("app", "web"), ("tier", "fe")]));
        pods.set("default", "b", &m(&[("app", "web")]));
        pods.set("other", "c", &m(&[("app", "web")]));
        let mut got = pods.containing("default", &m(&[("app", "web")]));
        got.sort();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(
            pods.containing("default", &m(&[("app", "web"), ("tier", "fe")])),
            ["a"]
        );
        pods.set("default", "a", &m(&[("app", "db")]));
        assert_eq!(pods.containing("default", &m(&[("app", "web")])), ["b"]);
        pods.remove("default", "b");
        assert!(pods.containing("default", &m(&[("app", "web")])).is_empty());

        let svcs = LabelIndex::new();
        svcs.set("default", "web", &m(&[("app", "web")]));
        svcs.set("default", "fe", &m(&[("app", "web"), ("tier", "fe")]));
        let mut got =
            svcs.contained_in("default", &m(&[("app", "web"), ("tier", "fe"), ("x", "y")]));
        got.sort();
        assert_eq!(got, ["fe", "web"]);
        assert_eq!(svcs.contained_in("default", &m(&[("app", "web")])), ["web"]);
    }

    #[test]
    fn owner_index_tracks_dependents() {
        let idx = OwnerIndex::new();
        idx.set("default/p1", vec!["rs1".into()]);
        idx.set("default/p2", vec!["rs1".into()]);
        let mut d = idx.dependents("rs1");
        d.sort();
        assert_eq!(d, ["default/p1", "default/p2"]);
        idx.set("default/p1", vec![]);
        idx.remove("default/p2");
        assert!(idx.dependents("rs1").is_empty());
    }
}
