//! Shared informers: one kube-rs watcher + reflector store per resource kind, with change
//! handlers (old, new) that controllers use to fill their work queues.
//!
//! kube-runtime's `Controller` owns its watchers; several controllers here need the same
//! kinds (pods feed the endpoint, replica-set, scheduler, node and GC controllers), so one
//! watch per kind is shared, as client-go's shared informers do.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

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
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over `api` (usually `Api::all`).
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let (ready_tx, _) = tokio::sync::watch::channel(false);
        Self {
            api,
            config,
            handlers: Vec::new(),
            writer,
            store,
            ready_tx,
        }
    }

    /// A handle resolving when the cache first holds a complete list.
    pub fn ready(&self) -> Ready {
        Ready(self.ready_tx.subscribe())
    }

    /// The read side of the cache.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
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
            ready_tx,
        } = self;
        // No controller reads managedFields, and they are most of a small
        // object's memory (FieldsV1 is a JSON tree): keep them out of the cache.
        // A PUT of a cached object without them keeps the live ones (the API
        // server, like kube-apiserver, treats absent managedFields as unchanged).
        let stream = watcher::watcher(api, config)
            .default_backoff()
            .modify(|obj: &mut K| obj.meta_mut().managed_fields = None);
        futures::pin_mut!(stream);
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
