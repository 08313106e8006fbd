//! Informer caches: kube-rs' typed reflector store, or a compact store of encoded objects
//! for kinds held once per Service (see [`crate::informer`] for why).
//!
//! [`Cache`] is what controllers read through; it answers `get` and `state` like
//! `reflector::Store` does, so a controller does not care which one sits behind it.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Objects of one kind as JSON bytes, keyed `namespace/name` (or `name`).
pub struct CompactStore {
    /// `{"apiVersion":"…","kind":"…",` as k8s-openapi writes it first: dropped from every
    /// stored object (decoding does not need it), ~40–60 bytes each.
    prefix: Box<[u8]>,
    objects: RwLock<HashMap<Box<str>, Box<[u8]>>>,
}

impl CompactStore {
    /// An empty store for objects of kind `K`.
    pub fn for_kind<K: Resource<DynamicType = ()>>() -> Self {
        let prefix = format!(
            r#"{{"apiVersion":"{}","kind":"{}","#,
            K::api_version(&()),
            K::kind(&())
        );
        Self {
            prefix: prefix.into_bytes().into_boxed_slice(),
            objects: RwLock::default(),
        }
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.objects.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key and stored bytes of `obj`; `None` only if it cannot be serialised.
    pub fn encode<K: Resource + Serialize>(&self, obj: &K) -> Option<(Box<str>, Box<[u8]>)> {
        let json = match serde_json::to_vec(obj) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an object for the cache");
                return None;
            }
        };
        let bytes = match json.strip_prefix(&*self.prefix) {
            Some(rest) => {
                let mut b = Vec::with_capacity(rest.len() + 1);
                b.push(b'{');
                b.extend_from_slice(rest);
                b
            }
            None => json,
        };
        let meta = obj.meta();
        let key = key(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        );
        Some((key.into_boxed_str(), bytes.into_boxed_slice()))
    }

    /// Decodes stored bytes (`None`, logged, if they do not decode: cannot happen for bytes
    /// this store encoded from the same type).
    pub fn decode<K: DeserializeOwned>(&self, bytes: &[u8]) -> Option<K> {
        match serde_json::from_slice(bytes) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(error = %e, "cannot decode a cached object");
                None
            }
        }
    }

    /// Stores `obj`, returning the bytes it replaced.
    pub fn insert<K: Resource + Serialize>(&self, obj: &K) -> Option<Box<[u8]>> {
        let (key, bytes) = self.encode(obj)?;
        self.objects.write().ok()?.insert(key, bytes)
    }

    /// Forgets `obj`.
    pub fn remove<K: Resource>(&self, obj: &K) {
        let meta = obj.meta();
        let key = key(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        );
        if let Ok(mut m) = self.objects.write() {
            m.remove(key.as_str());
        }
    }

    /// Replaces everything (after a relist), returning what was held before.
    pub fn replace_all(
        &self,
        objects: HashMap<Box<str>, Box<[u8]>>,
    ) -> HashMap<Box<str>, Box<[u8]>> {
        match self.objects.write() {
            Ok(mut m) => std::mem::replace(&mut *m, objects),
            Err(_) => HashMap::new(),
        }
    }

    /// The object stored under `key`.
    pub fn get_key<K: DeserializeOwned>(&self, key: &str) -> Option<K> {
        let m = self.objects.read().ok()?;
        self.decode(m.get(key)?)
    }

    /// The object `ns/name` (`ns` `None` for cluster-scoped kinds).
    pub fn get<K: DeserializeOwned>(&self, ns: Option<&str>, name: &str) -> Option<K> {
        self.get_key(&key(ns, name))
    }

    /// Every object, decoded.
    pub fn all<K: DeserializeOwned>(&self) -> Vec<K> {
        let Ok(m) = self.objects.read() else {
            return Vec::new();
        };
        m.values().filter_map(|b| self.decode(b)).collect()
    }
}

fn key(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// The read side of an informer's cache.
pub struct Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    inner: Inner<K>,
}

enum Inner<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    Typed(Store<K>),
    Compact(Arc<CompactStore>, PhantomData<fn() -> K>),
}

impl<K> Clone for Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            Inner::Typed(s) => Inner::Typed(s.clone()),
            Inner::Compact(c, p) => Inner::Compact(c.clone(), *p),
        };
        Self { inner }
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + 'static,
{
    /// A cache backed by a reflector store.
    pub fn typed(store: Store<K>) -> Self {
        Self {
            inner: Inner::Typed(store),
        }
    }

    /// A cache backed by a compact store.
    pub fn compact(store: Arc<CompactStore>) -> Self {
        Self {
            inner: Inner::Compact(store, PhantomData),
        }
    }

    /// The cached object `r`, if any.
    pub fn get(&self, r: &ObjectRef<K>) -> Option<Arc<K>> {
        match &self.inner {
            Inner::Typed(s) => s.get(r),
            Inner::Compact(c, _) => c.get(r.namespace.as_deref(), &r.name).map(Arc::new),
        }
    }

    /// Every cached object (a compact cache decodes them all: not for hot paths).
    pub fn state(&self) -> Vec<Arc<K>> {
        match &self.inner {
            Inner::Typed(s) => s.state(),
            Inner::Compact(c, _) => c.all().into_iter().map(Arc::new).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn svc(ns: &str, name: &str, ip: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": "u-1", "resourceVersion": "7",
                         "labels": {"a": "b"}},
            "spec": {"clusterIP": ip, "ports": [{"port": 80, "protocol": "TCP"}],
                     "selector": {"app": name}},
        }))
        .unwrap()
    }

    #[test]
    fn round_trips_and_drops_the_type_prefix() {
        let store = CompactStore::for_kind::<Service>();
        let s = svc("default", "web", "10.96.0.5");
        assert!(store.insert(&s).is_none());
        let raw = store.objects.read().unwrap()["default/web"].clone();
        assert!(
            raw.starts_with(b"{\"metadata\""),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        let back: Service = store.get(Some("default"), "web").unwrap();
        assert_eq!(back, s);
        // Replacing returns the old bytes; removing forgets the object.
        let old = store.insert(&svc("default", "web", "10.96.0.6")).unwrap();
        assert_eq!(store.decode::<Service>(&old).unwrap(), s);
        store.remove(&s);
        assert!(store.get::<Service>(Some("default"), "web").is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn cache_reads_like_a_store() {
        let store = Arc::new(CompactStore::for_kind::<Service>());
        let cache: Cache<Service> = Cache::compact(store.clone());
        store.insert(&svc("a", "x", "10.96.0.1"));
        store.insert(&svc("b", "x", "10.96.0.2"));
        let got = cache.get(&ObjectRef::new("x").within("b")).unwrap();
        assert_eq!(
            got.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("10.96.0.2")
        );
        assert!(cache.get(&ObjectRef::new("x").within("c")).is_none());
        assert_eq!(cache.state().len(), 2);
        let old = store.replace_all(HashMap::new());
        assert_eq!(old.len(), 2);
        assert!(cache.state().is_empty());
    }
}
