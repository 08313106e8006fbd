//! Publishes the runtime's container events as core/v1 Events from
//! `kubelet` on this node (what `kubectl describe pod` lists). Repeats bump
//! `count` and `lastTimestamp` instead of creating new Events.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

use crate::runtime::PodEvent;

/// Events remembered for deduplication before the cache is reset.
const CACHE_LIMIT: usize = 4096;

/// The Event object for a first occurrence. Pure.
pub fn event_object(ev: &PodEvent, node: &str, name: String, now: Timestamp) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ev.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(ev.pod.clone()),
            namespace: Some(ev.namespace.clone()),
            uid: Some(ev.uid.clone()),
            field_path: Some(format!("spec.containers{{{}}}", ev.container)),
            ..Default::default()
        },
        reason: Some(ev.reason.clone()),
        message: Some(ev.message.clone()),
        type_: Some(ev.type_.to_string()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.to_string()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.to_string()),
        ..Default::default()
    }
}

/// Publishes events until the runtime's channel closes.
pub async fn publish(client: kube::Client, node: String, mut rx: mpsc::Receiver<PodEvent>) {
    let mut seen: HashMap<(String, String, String, String), (String, i32)> = HashMap::new();
    let mut seq: u64 = 0;
    while let Some(ev) = rx.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), &ev.namespace);
        let now = Timestamp::now();
        let key = (
            ev.uid.clone(),
            ev.container.clone(),
            ev.reason.clone(),
            ev.message.clone(),
        );
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = serde_json::json!({"count": *count, "lastTimestamp": Time(now)});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(e) => tracing::debug!(error = %e, "updating event; creating a new one"),
            }
        }
        if seen.len() >= CACHE_LIMIT {
            seen.clear();
        }
        seq = seq.wrapping_add(1);
        let name = format!("{}.{:x}{:04x}", ev.pod, now.as_nanosecond(), seq & 0xffff);
        match api
            .create(
                &PostParams::default(),
                &event_object(&ev, &node, name.clone(), now),
            )
            .await
        {
            Ok(_) => {
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::debug!(error = %e, "publishing event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_look_like_the_kubelets() {
        let ev = PodEvent {
            uid: "u".into(),
            namespace: "default".into(),
            pod: "web".into(),
            container: "nginx".into(),
            type_: "Normal",
            reason: "Started".into(),
            message: "Started container nginx".into(),
        };
        let e = event_object(&ev, "node1", "web.1".into(), Timestamp::UNIX_EPOCH);
        assert_eq!(
            e.involved_object.field_path.as_deref(),
            Some("spec.containers{nginx}")
        );
        assert_eq!(e.source.unwrap().component.as_deref(), Some("kubelet"));
        assert_eq!(e.count, Some(1));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
    }
}
