//! Event recorder: writes core/v1 Events (what `kubectl describe` and `kubectl get events`
//! read) and deduplicates repeats by bumping `count` and `lastTimestamp`, as client-go's
//! event correlator does. Publishing is asynchronous so controllers never wait on it.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

/// Events kept for deduplication before the cache is reset (bounds memory).
const CACHE_LIMIT: usize = 8192;

/// Handle for emitting Events from one component (e.g. `deployment-controller`).
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
    component: &'static str,
}

/// One Event to publish.
#[derive(Debug, Clone)]
pub struct Record {
    component: &'static str,
    regarding: ObjectReference,
    type_: &'static str,
    reason: String,
    message: String,
}

// === impl Recorder ===

impl Recorder {
    /// A recorder and the task that publishes its Events (spawn it).
    pub fn new(client: Client) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                component: "portico",
            },
            publish_loop(client, rx),
        )
    }

    /// The same recorder reporting as `component` (the Event's `source.component`).
    pub fn for_component(&self, component: &'static str) -> Self {
        Self {
            tx: self.tx.clone(),
            component,
        }
    }

    /// A `Normal` Event.
    pub fn normal(&self, regarding: &ObjectReference, reason: &str, message: impl Into<String>) {
        self.send(regarding, "Normal", reason, message.into());
    }

    /// A `Warning` Event.
    pub fn warning(&self, regarding: &ObjectReference, reason: &str, message: impl Into<String>) {
        self.send(regarding, "Warning", reason, message.into());
    }

    fn send(
        &self,
        regarding: &ObjectReference,
        type_: &'static str,
        reason: &str,
        message: String,
    ) {
        // A closed channel only happens at shutdown; dropping the Event is fine then.
        let _ = self.tx.send(Record {
            component: self.component,
            regarding: regarding.clone(),
            type_,
            reason: reason.to_string(),
            message,
        });
    }
}

/// Identity of an Event for deduplication: same object, type, reason, message, source.
fn dedup_key(r: &Record) -> String {
    format!(
        "{}\x00{}\x00{}\x00{}\x00{}\x00{}\x00{}\x00{}",
        r.regarding.namespace.as_deref().unwrap_or_default(),
        r.regarding.kind.as_deref().unwrap_or_default(),
        r.regarding.name.as_deref().unwrap_or_default(),
        r.regarding.uid.as_deref().unwrap_or_default(),
        r.type_,
        r.reason,
        r.message,
        r.component
    )
}

/// Namespace an Event lives in: the object's, or `default` for cluster-scoped objects
/// (Kubernetes records Node events in `default`).
fn event_namespace(r: &Record) -> String {
    r.regarding
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// Builds a new core/v1 Event for `r` at `now` (pure).
pub fn build_event(r: &Record, now: jiff::Timestamp) -> Event {
    let ns = event_namespace(r);
    let obj_name = r.regarding.name.clone().unwrap_or_default();
    let nanos = now.as_nanosecond();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{obj_name}.{nanos:x}")),
            namespace: Some(ns),
            ..Default::default()
        },
        involved_object: r.regarding.clone(),
        reason: Some(r.reason.clone()),
        message: Some(r.message.clone()),
        type_: Some(r.type_.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: None::<MicroTime>,
        source: Some(EventSource {
            component: Some(r.component.to_string()),
            host: None,
        }),
        reporting_component: Some(r.component.to_string()),
        reporting_instance: Some(r.component.to_string()),
        ..Default::default()
    }
}

async fn publish_loop(client: Client, mut rx: mpsc::UnboundedReceiver<Record>) {
    // dedup key -> (namespace, event name, count)
    let mut seen: HashMap<String, (String, String, i32)> = HashMap::new();
    while let Some(rec) = rx.recv().await {
        let key = dedup_key(&rec);
        let now = jiff::Timestamp::now();
        if let Some((ns, name, count)) = seen.get_mut(&key) {
            let api: Api<Event> = Api::namespaced(client.clone(), ns);
            let next = count.saturating_add(1);
            let patch = serde_json::json!({"count": next, "lastTimestamp": Time(now)});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    *count = next;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "event patch failed; creating a new one");
                }
            }
        }
        if seen.len() >= CACHE_LIMIT {
            seen.clear();
        }
        let ev = build_event(&rec, now);
        let ns = event_namespace(&rec);
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        match api.create(&PostParams::default(), &ev).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                seen.insert(key, (ns, name, 1));
            }
            Err(e) => tracing::debug!(error = %e, reason = %rec.reason, "event create failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_look_like_kubernetes() {
        let rec = Record {
            component: "default-scheduler",
            regarding: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("default".into()),
                name: Some("web-1".into()),
                ..Default::default()
            },
            type_: "Normal",
            reason: "Scheduled".into(),
            message: "Successfully assigned default/web-1 to node-1".into(),
        };
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let ev = build_event(&rec, now);
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
        assert!(ev.metadata.name.unwrap().starts_with("web-1."));
        assert_eq!(ev.count, Some(1));
        assert_eq!(
            ev.source.unwrap().component.as_deref(),
            Some("default-scheduler")
        );
        let mut node = rec.clone();
        node.regarding.namespace = None;
        assert_eq!(event_namespace(&node), "default");
        assert_ne!(dedup_key(&rec), dedup_key(&node));
    }
}
