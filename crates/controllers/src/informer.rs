//! Shared informers: one kube-rs watcher + reflector store per resource kind, with change
//! handlers (old, new) that controllers use to fill their work queues.
//!
//! kube-runtime's `Controller` owns its watchers; several controllers here need the same
//! kinds (pods feed the endpoint, replica-set, scheduler, node and GC controllers), so one
//! watch per kind is shared, as client-go's shared informers do.
//!
//! Kinds the controllers hold one of per Service (Services, EndpointSlices, Endpoints) are
//! cached compactly ([`Informer::compact`], [`crate::cache::CompactStore`]): as their JSON
//! bytes, decoded on read. A typed k8s-openapi object costs 2–3× its JSON in memory (inline
//! structs of `Option<String>`s, a B-tree node per label map, the reflector's `ObjectRef`
//! key), and these kinds are read once per reconcile, not in hot loops. Pods, which the
//! endpoint and scheduler loops read by the hundreds per reconcile, stay typed.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{Cache, CompactStore};

/// Called with (old, new): `(None, Some)` added, `(Some, Some)` updated (also on resync),
/// `(Some, None)` deleted.
pub type Handler<K> = Arc<dyn Fn(Option<&K>, Option<&K>) + Send + Sync>;

/// Waits until every informer in `readies` has listed once.
pub async fn all_ready(readies: Vec<Ready>) -> bool {
    for r in readies {
        if !r.wait().await {
            return false;
        }
    }
    true
}

/// A watcher feeding a reflector store and change handlers.
pub struct Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    config: watcher::Config,
    handlers: Vec<Handler<K>>,
    writer: reflector::store::Writer<K>,
    store: Store<K>,
    /// Set for compact informers: objects live here and `store` stays empty.
    compact: Option<Arc<CompactStore>>,
    /// Drops fields no controller reads before an object is cached (and handed to handlers).
    slim: Option<fn(&mut K)>,
    ready_tx: tokio::sync::watch::Sender<bool>,
}

/// Resolves once an informer's cache holds a complete list. Unlike
/// `Store::wait_until_ready` (a oneshot that wakes only one waiter), any number of
/// controllers may wait on clones of this.
#[derive(Clone)]
pub struct Ready(tokio::sync::watch::Receiver<bool>);

impl Ready {
    /// Waits for the first complete list; `false` if the informer stopped first.
    pub async fn wait(mut self) -> bool {
        self.0.wait_for(|r| *r).await.is_ok()
    }
}

// === impl Informer ===

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
{
    /// An informer over `api` (usually `Api::all`) caching typed objects.
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let (ready_tx, _) = tokio::sync::watch::channel(false);
        Self {
            api,
            config,
            handlers: Vec::new(),
            writer,
            store,
            compact: None,
            slim: None,
            ready_tx,
        }
    }

    /// Applies `f` to every object before it is cached or handed to handlers. Only for
    /// kinds the controllers never write back whole (a PUT of a slimmed copy would drop
    /// what `f` removed).
    pub fn with_slim(mut self, f: fn(&mut K)) -> Self {
        self.slim = Some(f);
        self
    }

    /// An informer whose cache holds encoded objects (see the module docs); read it through
    /// [`Informer::cache`] ([`Informer::store`] stays empty).
    pub fn compact(api: Api<K>, config: watcher::Config) -> Self {
        let mut inf = Self::new(api, config);
        inf.compact = Some(Arc::new(CompactStore::for_kind::<K>()));
        inf
    }

    /// A handle resolving when the cache first holds a complete list.
    pub fn ready(&self) -> Ready {
        Ready(self.ready_tx.subscribe())
    }

    /// The read side of a typed informer's cache (empty for compact informers).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The read side of the cache, typed or compact.
    pub fn cache(&self) -> Cache<K> {
        match &self.compact {
            Some(c) => Cache::compact(c.clone()),
            None => Cache::typed(self.store.clone()),
        }
    }

    /// Registers a change handler; handlers must be cheap (they only queue keys).
    pub fn on_change(&mut self, f: impl Fn(Option<&K>, Option<&K>) + Send + Sync + 'static) {
        self.handlers.push(Arc::new(f));
    }

    /// Watches forever (the watcher relists with backoff after errors).
    pub async fn run(self) {
        let Self {
            api,
            config,
            handlers,
            mut writer,
            store,
            compact,
            slim,
            ready_tx,
        } = self;
        // No controller reads managedFields, and they are most of a small
        // object's memory (FieldsV1 is a JSON tree): keep them out of the cache.
        // A PUT of a cached object without them keeps the live ones (the API
        // server, like kube-apiserver, treats absent managedFields as unchanged).
        let stream = watcher::watcher(api, config)
            .default_backoff()
            .modify(move |obj: &mut K| {
                obj.meta_mut().managed_fields = None;
                if let Some(f) = slim {
                    f(obj);
                }
            });
        futures::pin_mut!(stream);
        if let Some(compact) = compact {
            run_compact(stream, &compact, &handlers, &ready_tx).await;
            return;
        }
        while let Some(item) = stream.next().await {
            let ev = match item {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), error = %e, "watch error");
                    continue;
                }
            };
            match &ev {
                Event::Apply(obj) => {
                    let old = store.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&ev);
                    for h in &handlers {
                        h(old.as_deref(), Some(obj));
                    }
                }
                Event::Delete(obj) => {
                    writer.apply_watcher_event(&ev);
                    for h in &handlers {
                        h(Some(obj), None);
                    }
                }
                Event::Init | Event::InitApply(_) => writer.apply_watcher_event(&ev),
                Event::InitDone => {
                    let before: HashMap<ObjectRef<K>, Arc<K>> = store
                        .state()
                        .into_iter()
                        .map(|o| (ObjectRef::from_obj(&*o), o))
                        .collect();
                    writer.apply_watcher_event(&ev);
                    let after = store.state();
                    let mut seen = std::collections::HashSet::with_capacity(after.len());
                    for obj in &after {
                        let r = ObjectRef::from_obj(&**obj);
                        let old = before.get(&r);
                        seen.insert(r);
                        for h in &handlers {
                            h(old.map(|o| &**o), Some(obj));
                        }
                    }
                    for (r, old) in &before {
                        if !seen.contains(r) {
                            for h in &handlers {
                                h(Some(old), None);
                            }
                        }
                    }
                    ready_tx.send_replace(true);
                }
            }
        }
    }
}

/// The event loop of a compact informer: same handler calls as the typed loop, with the
/// objects kept encoded in `cache`. A relist is buffered encoded, never as typed objects.
async fn run_compact<K, S>(
    mut stream: std::pin::Pin<&mut S>,
    cache: &CompactStore,
    handlers: &[Handler<K>],
    ready_tx: &tokio::sync::watch::Sender<bool>,
) where
    K: Resource<DynamicType = ()> + DeserializeOwned + Serialize,
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut pending: HashMap<Box<str>, Box<[u8]>> = HashMap::new();
    while let Some(item) = stream.next().await {
        let ev = match item {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(kind = %K::kind(&()), error = %e, "watch error");
                continue;
            }
        };
        match ev {
            Event::Apply(obj) => {
                let old: Option<K> = cache.insert(&obj).and_then(|b| cache.decode(&b));
                for h in handlers {
                    h(old.as_ref(), Some(&obj));
                }
            }
            Event::Delete(obj) => {
                cache.remove(&obj);
                for h in handlers {
                    h(Some(&obj), None);
                }
            }
            Event::Init => pending = HashMap::new(),
            Event::InitApply(obj) => {
                if let Some((key, bytes)) = cache.encode(&obj) {
                    pending.insert(key, bytes);
                }
            }
            Event::InitDone => {
                let keys: Vec<Box<str>> = pending.keys().cloned().collect();
                let mut before = cache.replace_all(std::mem::take(&mut pending));
                for key in keys {
                    let Some(new) = cache.get_key::<K>(&key) else {
                        continue;
                    };
                    let old: Option<K> = before.remove(&key).and_then(|b| cache.decode(&b));
                    for h in handlers {
                        h(old.as_ref(), Some(&new));
                    }
                }
                for bytes in before.into_values() {
                    if let Some(old) = cache.decode::<K>(&bytes) {
                        for h in handlers {
                            h(Some(&old), None);
                        }
                    }
                }
                ready_tx.send_replace(true);
            }
        }
    }
}
