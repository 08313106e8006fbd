//! Watches Services, EndpointSlices and Pods through the Kubernetes API and
//! feeds compact changes to the planner; publishes a new zone snapshot after
//! each burst of changes, once all three kinds have been listed.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::model::{PodInfo, ServiceInfo, SliceInfo};
use crate::planner::{Change, Planner};
use crate::server::Handler;
use crate::DnsError;

/// At most this many changes are applied before a snapshot is published.
const MAX_BURST: usize = 5_000;

/// One step of a watched kind.
enum Update {
    Changes(Vec<Change>),
    /// The kind at this index finished a (re)list.
    Synced(usize),
}

type Key = (String, String);

/// Translates watcher events of one kind into planner changes, turning objects
/// that vanished across a relist into deletions.
struct Tracker<K> {
    kind: usize,
    convert: fn(&K) -> Option<Change>,
    delete: fn(Key) -> Change,
    known: HashSet<Key>,
    relist: Option<HashSet<Key>>,
}

impl<K: Resource> Tracker<K> {
    fn key(obj: &K) -> Key {
        let meta = obj.meta();
        (
            meta.namespace
                .clone()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    fn apply(&mut self, obj: &K) -> Vec<Change> {
        let key = Self::key(obj);
        if let Some(seen) = &mut self.relist {
            seen.insert(key.clone());
        }
        match (self.convert)(obj) {
            Some(change) => {
                self.known.insert(key);
                vec![change]
            }
            // An object that no longer has records (a Pod that dropped its
            // subdomain, a Service whose type changed) is a deletion for DNS.
            None if self.known.remove(&key) => vec![(self.delete)(key)],
            None => Vec::new(),
        }
    }

    fn event(&mut self, event: Event<K>) -> Vec<Update> {
        match event {
            Event::Apply(obj) | Event::InitApply(obj) => vec![Update::Changes(self.apply(&obj))],
            Event::Delete(obj) => {
                let key = Self::key(&obj);
                self.known.remove(&key);
                vec![Update::Changes(vec![(self.delete)(key)])]
            }
            Event::Init => {
                self.relist = Some(HashSet::new());
                Vec::new()
            }
            Event::InitDone => {
                let seen = self.relist.take().unwrap_or_default();
                let gone: Vec<Key> = self.known.difference(&seen).cloned().collect();
                self.known.retain(|k| seen.contains(k));
                let deletes = gone.into_iter().map(self.delete).collect();
                vec![Update::Changes(deletes), Update::Synced(self.kind)]
            }
        }
    }
}

fn updates<K>(api: Api<K>, mut tracker: Tracker<K>) -> impl Stream<Item = Update> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(|event| {
            futures::future::ready(match event {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(%error, "DNS watch failed; retrying");
                    None
                }
            })
        })
        .flat_map(move |event| futures::stream::iter(tracker.event(event)))
}

/// Runs the watches until they end (they only end on a fatal error).
pub(crate) async fn run(
    client: Client,
    mut planner: Planner,
    handler: Arc<Handler>,
) -> Result<(), DnsError> {
    let services = updates(
        Api::<Service>::all(client.clone()),
        Tracker {
            kind: 0,
            convert: |s| ServiceInfo::from_service(s).map(Change::UpsertService),
            delete: |(namespace, name)| Change::DeleteService {
                namespace,
                name: name.to_ascii_lowercase(),
            },
            known: HashSet::new(),
            relist: None,
        },
    );
    let slices = updates(
        Api::<EndpointSlice>::all(client.clone()),
        Tracker {
            kind: 1,
            convert: |s| SliceInfo::from_slice(s).map(Change::UpsertSlice),
            delete: |(namespace, name)| Change::DeleteSlice { namespace, name },
            known: HashSet::new(),
            relist: None,
        },
    );
    let pods = updates(
        Api::<Pod>::all(client),
        Tracker {
            kind: 2,
            convert: |p| PodInfo::from_pod(p).map(Change::UpsertPod),
            delete: |(namespace, name)| Change::DeletePod { namespace, name },
            known: HashSet::new(),
            relist: None,
        },
    );
    let mut merged = futures::stream::select_all([services.boxed(), slices.boxed(), pods.boxed()]);
    let mut synced = [false; 3];
    let mut published = false;
    while let Some(first) = merged.next().await {
        let mut dirty = apply(&mut planner, &mut synced, first);
        // Apply everything already queued so a burst costs one snapshot.
        for _ in 0..MAX_BURST {
            match merged.next().now_or_never() {
                Some(Some(update)) => dirty |= apply(&mut planner, &mut synced, update),
                _ => break,
            }
        }
        if synced.iter().all(|s| *s) && (dirty || !published) {
            handler.publish(Arc::new(planner.zone().clone()));
            if !published {
                tracing::info!(
                    services = planner.zone().service_count(),
                    "cluster DNS zone synced"
                );
            }
            published = true;
        }
    }
    Err(DnsError::Watch("the watch streams ended".into()))
}

fn apply(planner: &mut Planner, synced: &mut [bool; 3], update: Update) -> bool {
    match update {
        Update::Changes(changes) => {
            let dirty = !changes.is_empty();
            for change in changes {
                planner.apply(change);
            }
            dirty
        }
        Update::Synced(kind) => {
            if let Some(flag) = synced.get_mut(kind) {
                *flag = true;
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, subdomain: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"hostname": name, "subdomain": subdomain, "containers": []},
            "status": {"podIP": "10.244.0.9"}
        }))
        .unwrap()
    }

    fn tracker() -> Tracker<Pod> {
        Tracker {
            kind: 2,
            convert: |p| PodInfo::from_pod(p).map(Change::UpsertPod),
            delete: |(namespace, name)| Change::DeletePod { namespace, name },
            known: HashSet::new(),
            relist: None,
        }
    }

    fn changes(updates: Vec<Update>) -> Vec<String> {
        updates
            .into_iter()
            .flat_map(|u| match u {
                Update::Changes(c) => c
                    .into_iter()
                    .map(|c| match c {
                        Change::UpsertPod(p) => format!("upsert {}", p.name),
                        Change::DeletePod { name, .. } => format!("delete {name}"),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>(),
                Update::Synced(kind) => vec![format!("synced {kind}")],
            })
            .collect()
    }

    #[test]
    fn relist_deletes_objects_that_vanished_and_irrelevant_objects_are_ignored() {
        let mut t = tracker();
        assert!(changes(t.event(Event::Init)).is_empty());
        assert_eq!(
            changes(t.event(Event::InitApply(pod("a", Some("s"))))),
            ["upsert a"]
        );
        assert!(changes(t.event(Event::InitApply(pod("plain", None)))).is_empty());
        assert_eq!(changes(t.event(Event::InitDone)), ["synced 2"]);
        assert_eq!(
            changes(t.event(Event::Apply(pod("b", Some("s"))))),
            ["upsert b"]
        );
        // b loses its subdomain: a deletion for DNS.
        assert_eq!(changes(t.event(Event::Apply(pod("b", None)))), ["delete b"]);
        t.event(Event::Init);
        t.event(Event::InitApply(pod("c", Some("s"))));
        assert_eq!(changes(t.event(Event::InitDone)), ["delete a", "synced 2"]);
    }
}
