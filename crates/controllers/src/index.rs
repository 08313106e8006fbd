//! Label index over cached objects, so selector lookups touch only candidate objects instead
//! of scanning every pod (100,000 pods × 10,000 Services must stay cheap).
//!
//! Each object is indexed by the (namespace, key, value) pairs of a label map: its labels
//! (pods, slices) or its selector (Services). Two queries follow: objects whose map contains
//! a selector, and objects whose (selector) map is contained in a label set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// Names, label keys and label values are stored once and shared (`Arc<str>`) between the
/// per-object maps and the pair sets: at 10,000 Services and their slices the index was
/// ~19 MiB of copied `String`s and one B-tree node per object.
type Str = Arc<str>;

/// Thread-safe index from label pairs to object names, per namespace.
#[derive(Default)]
pub struct LabelIndex {
    inner: RwLock<HashMap<Str, Ns>>,
}

/// One namespace's part of the index. Keyed so that lookups borrow `&str` (no allocation).
#[derive(Default)]
struct Ns {
    /// label key → label value → names of the objects whose map holds that pair.
    by_pair: HashMap<Str, HashMap<Str, HashSet<Str>>>,
    /// name → the object's map, sorted by key (a boxed slice: no spare capacity).
    maps: HashMap<Str, Box<[(Str, Str)]>>,
}

// === impl LabelIndex ===

impl LabelIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the map of object `ns/name`. An empty map is not stored: no query
    /// can return it (selectors are non-empty; `contained_in` skips empty maps).
    pub fn set(&self, ns: &str, name: &str, map: &BTreeMap<String, String>) {
        let Ok(mut st) = self.inner.write() else {
            return;
        };
        if let Some(cur) = st.get(ns).and_then(|n| n.maps.get(name)) {
            if same_map(cur, map) {
                return;
            }
        }
        if map.is_empty() {
            remove_locked(&mut st, ns, name);
            return;
        }
        let name = match st.get(ns).and_then(|n| n.maps.get_key_value(name)) {
            Some((k, _)) => k.clone(),
            None => Str::from(name),
        };
        remove_locked(&mut st, ns, &name);
        let nsi = match st.get_mut(ns) {
            Some(n) => n,
            None => st.entry(Str::from(ns)).or_default(),
        };
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            let key = match nsi.by_pair.get_key_value(k.as_str()) {
                Some((key, _)) => key.clone(),
                None => Str::from(k.as_str()),
            };
            let values = nsi.by_pair.entry(key.clone()).or_default();
            let val = match values.get_key_value(v.as_str()) {
                Some((val, _)) => val.clone(),
                None => Str::from(v.as_str()),
            };
            values.entry(val.clone()).or_default().insert(name.clone());
            pairs.push((key, val));
        }
        nsi.maps.insert(name, pairs.into_boxed_slice());
    }

    /// Forgets object `ns/name`.
    pub fn remove(&self, ns: &str, name: &str) {
        if let Ok(mut st) = self.inner.write() {
            remove_locked(&mut st, ns, name);
        }
    }

    /// Names in `ns` whose map contains every pair of `selector` (non-empty selector).
    pub fn containing(&self, ns: &str, selector: &BTreeMap<String, String>) -> Vec<String> {
        let Ok(st) = self.inner.read() else {
            return Vec::new();
        };
        let Some(nsi) = st.get(ns) else {
            return Vec::new();
        };
        let mut sets = Vec::with_capacity(selector.len());
        for (k, v) in selector {
            match nsi
                .by_pair
                .get(k.as_str())
                .and_then(|vals| vals.get(v.as_str()))
            {
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
            .map(|n| n.to_string())
            .collect()
    }

    /// Names in `ns` whose non-empty map is contained in `labels` (Services selecting a pod).
    pub fn contained_in(&self, ns: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
        let Ok(st) = self.inner.read() else {
            return Vec::new();
        };
        let Some(nsi) = st.get(ns) else {
            return Vec::new();
        };
        let mut candidates: HashSet<&Str> = HashSet::new();
        for (k, v) in labels {
            if let Some(s) = nsi
                .by_pair
                .get(k.as_str())
                .and_then(|vals| vals.get(v.as_str()))
            {
                candidates.extend(s.iter());
            }
        }
        candidates
            .into_iter()
            .filter(|name| {
                nsi.maps.get(&***name).is_some_and(|m| {
                    !m.is_empty()
                        && m.iter()
                            .all(|(k, v)| labels.get(&**k).map(String::as_str) == Some(&**v))
                })
            })
            .map(|n| n.to_string())
            .collect()
    }
}

/// Whether the stored pairs equal `map` (both sorted by key).
fn same_map(cur: &[(Str, Str)], map: &BTreeMap<String, String>) -> bool {
    cur.len() == map.len()
        && cur
            .iter()
            .zip(map)
            .all(|((k, v), (mk, mv))| **k == **mk && **v == **mv)
}

fn remove_locked(st: &mut HashMap<Str, Ns>, ns: &str, name: &str) {
    let Some(nsi) = st.get_mut(ns) else {
        return;
    };
    if let Some(old) = nsi.maps.remove(name) {
        for (k, v) in old.iter() {
            let Some(vals) = nsi.by_pair.get_mut(&**k) else {
                continue;
            };
            if let Some(set) = vals.get_mut(&**v) {
                set.remove(name);
                if set.is_empty() {
                    vals.remove(&**v);
                }
            }
            if vals.is_empty() {
                nsi.by_pair.remove(&**k);
            }
        }
    }
    if nsi.maps.is_empty() {
        st.remove(ns);
    }
}

/// Index from owner UID to dependents' keys (`ns/name`), for the ReplicaSet controller.
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
    fn empty_maps_are_never_returned_and_replacing_drops_old_pairs() {
        let svcs = LabelIndex::new();
        svcs.set("default", "headless", &m(&[]));
        svcs.set("default", "web", &m(&[("app", "web")]));
        assert_eq!(svcs.contained_in("default", &m(&[("app", "web")])), ["web"]);
        // A selector removed: the Service selects nothing any more.
        svcs.set("default", "web", &m(&[]));
        assert!(svcs
            .contained_in("default", &m(&[("app", "web")]))
            .is_empty());
        assert!(svcs.containing("default", &m(&[("app", "web")])).is_empty());
        // Same map twice, then a changed value: only the new pair matches.
        svcs.set("default", "web", &m(&[("app", "web")]));
        svcs.set("default", "web", &m(&[("app", "web")]));
        svcs.set("default", "web", &m(&[("app", "api")]));
        assert!(svcs.containing("default", &m(&[("app", "web")])).is_empty());
        assert_eq!(svcs.containing("default", &m(&[("app", "api")])), ["web"]);
        assert!(svcs.containing("other", &m(&[("app", "api")])).is_empty());
    }

    #[test]
    fn strings_are_shared_between_objects() {
        let pods = LabelIndex::new();
        pods.set("default", "a", &m(&[("app", "web")]));
        pods.set("default", "b", &m(&[("app", "web")]));
        let st = pods.inner.read().unwrap();
        let ns = st.get("default").unwrap();
        let (a, b) = (&ns.maps["a"][0], &ns.maps["b"][0]);
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1));
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
