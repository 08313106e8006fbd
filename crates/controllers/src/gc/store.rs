//! The collector's ownership graph: what it knows about each tracked object, and which
//! objects each owner has.
//!
//! Most tracked objects (at 10,000 Services: the Services and Endpoints) have no owners, no
//! finalizers and no deletion timestamp. The collector never acts on those; it only asks
//! whether they exist (as someone's owner). They are kept as a bare UID, not a full node:
//! the graph was ~300 bytes per such object, and 30,000 objects at 10,000 Services.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ApiResource;

/// What the collector knows about an object it may act on.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// Shared by every node of a kind (an `ApiResource` is five strings).
    pub resource: Arc<ApiResource>,
    /// The object's namespace (`None` if cluster-scoped).
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// Its ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// Its finalizers.
    pub finalizers: Vec<String>,
    /// Whether it has a deletion timestamp.
    pub deleting: bool,
}

impl GraphNode {
    /// Whether the collector can have anything to do with this object (as a dependent or as
    /// an owner being deleted); other objects only need to be known to exist.
    fn actionable(&self) -> bool {
        !self.owners.is_empty() || !self.finalizers.is_empty() || self.deleting
    }
}

/// The ownership graph (thread-safe).
#[derive(Default)]
pub struct Graph {
    inner: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Objects the collector may act on, by UID.
    nodes: HashMap<Box<str>, GraphNode>,
    /// Every other tracked object's UID.
    present: HashSet<Box<str>>,
    /// Owner UID → UIDs of its dependents (a list: most owners have a handful).
    by_owner: HashMap<Box<str>, Vec<Box<str>>>,
}

impl Graph {
    /// Records (or replaces) object `uid`.
    pub fn observe(&self, uid: &str, node: GraphNode) {
        let Ok(mut st) = self.inner.write() else {
            return;
        };
        forget_locked(&mut st, uid);
        for o in &node.owners {
            let deps = st.by_owner.entry(Box::from(o.uid.as_str())).or_default();
            if !deps.iter().any(|d| **d == *uid) {
                deps.push(Box::from(uid));
            }
        }
        if node.actionable() {
            st.nodes.insert(Box::from(uid), node);
        } else {
            st.present.insert(Box::from(uid));
        }
    }

    /// Forgets object `uid`; its dependents stay recorded under it (they still name it).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut st) = self.inner.write() {
            forget_locked(&mut st, uid);
        }
    }

    /// The node of `uid` if the collector may act on it.
    pub fn node(&self, uid: &str) -> Option<GraphNode> {
        self.inner.read().ok()?.nodes.get(uid).cloned()
    }

    /// Whether object `uid` is tracked.
    pub fn exists(&self, uid: &str) -> bool {
        self.inner
            .read()
            .is_ok_and(|st| st.nodes.contains_key(uid) || st.present.contains(uid))
    }

    /// UIDs of the objects that name `uid` as an owner.
    pub fn dependents(&self, uid: &str) -> Vec<String> {
        self.inner
            .read()
            .ok()
            .and_then(|st| {
                st.by_owner
                    .get(uid)
                    .map(|d| d.iter().map(|u| u.to_string()).collect())
            })
            .unwrap_or_default()
    }

    /// Number of tracked objects.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .map(|st| st.nodes.len() + st.present.len())
            .unwrap_or(0)
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes `uid`'s node and its entries under its owners.
fn forget_locked(st: &mut State, uid: &str) {
    st.present.remove(uid);
    let Some(old) = st.nodes.remove(uid) else {
        return;
    };
    for o in &old.owners {
        if let Some(deps) = st.by_owner.get_mut(o.uid.as_str()) {
            deps.retain(|d| **d != *uid);
            if deps.is_empty() {
                st.by_owner.remove(o.uid.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn node(owners: &[&str], finalizers: &[&str], deleting: bool) -> GraphNode {
        GraphNode {
            resource: Arc::new(ApiResource::erase::<Service>(&())),
            namespace: Some("default".into()),
            name: "x".into(),
            owners: owners
                .iter()
                .map(|u| OwnerReference {
                    uid: u.to_string(),
                    ..Default::default()
                })
                .collect(),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            deleting,
        }
    }

    #[test]
    fn plain_objects_only_exist_and_owned_ones_are_nodes() {
        let g = Graph::default();
        g.observe("svc", node(&[], &[], false));
        g.observe("slice", node(&["svc"], &[], false));
        assert!(g.exists("svc") && g.node("svc").is_none());
        assert_eq!(g.node("slice"), Some(node(&["svc"], &[], false)));
        assert_eq!(g.dependents("svc"), ["slice"]);
        assert_eq!(g.len(), 2);
        // The owner turns foreground-deleting: now a node the collector acts on.
        g.observe("svc", node(&[], &["foregroundDeletion"], true));
        assert_eq!(
            g.node("svc"),
            Some(node(&[], &["foregroundDeletion"], true))
        );
        assert_eq!(g.len(), 2);
        // Gone: not known any more, its dependents still listed under it.
        g.forget("svc");
        assert!(!g.exists("svc") && g.node("svc").is_none());
        assert_eq!(g.dependents("svc"), ["slice"]);
    }

    #[test]
    fn changed_owners_move_the_dependent() {
        let g = Graph::default();
        g.observe("rs", node(&["a", "b"], &[], false));
        g.observe("rs", node(&["b"], &[], false));
        assert!(g.dependents("a").is_empty());
        assert_eq!(g.dependents("b"), ["rs"]);
        // The same owner twice in one object is listed once.
        g.observe("rs", node(&["b", "b"], &[], false));
        assert_eq!(g.dependents("b"), ["rs"]);
        g.observe("rs", node(&[], &[], false));
        assert!(g.dependents("b").is_empty() && g.exists("rs"));
        g.forget("rs");
        assert!(g.is_empty());
    }
}
