//! Printers for Node, Namespace, Secret, ConfigMap, Event (core and
//! events.k8s.io) and Lease.

use super::{age, age_of, arr, col, name_of, s, wide, Col, AGE, NAME, NAME_DOC};
use jiff::Timestamp;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

pub(crate) const NODE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "List of addresses reachable to the node."),
    wide("External-IP", "string", "List of addresses reachable to the node."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

pub(crate) const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub(crate) const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

pub(crate) const CONFIGMAP_COLUMNS: &[Col] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

pub(crate) const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
    wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "string", "The number of times this event has occurred."),
    Col {
        name: "Name",
        ty: "string",
        format: "name",
        priority: 1,
        description: NAME_DOC,
    },
];

pub(crate) const LEASE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` keys and the
/// `kubernetes.io/role` value, sorted.
fn node_roles(node: &Value) -> String {
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v);
                }
            }
        }
    }
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_address(node: &Value, ty: &str) -> String {
    arr(node, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == ty)
        .map(|a| s(a, "/address").to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

pub(crate) fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition is reported; the last one of a type wins.
    let ready = arr(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready");
    let mut status: Vec<&str> = vec![match ready {
        Some(c) if s(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        status.push("SchedulingDisabled");
    }
    let unknown = |v: &str| {
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name_of(node),
        Value::from(status.join(",")),
        Value::from(node_roles(node)),
        age_of(node, now),
        Value::from(s(node, "/status/nodeInfo/kubeletVersion")),
        Value::from(node_address(node, "InternalIP")),
        Value::from(node_address(node, "ExternalIP")),
        Value::from(unknown(s(node, "/status/nodeInfo/osImage"))),
        Value::from(unknown(s(node, "/status/nodeInfo/kernelVersion"))),
        Value::from(unknown(s(node, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

pub(crate) fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_of(ns),
        Value::from(s(ns, "/status/phase")),
        age_of(ns, now),
    ]
}

fn map_len(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
}

pub(crate) fn secret_cells(secret: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_of(secret),
        Value::from(s(secret, "/type")),
        Value::from(map_len(secret, "/data")),
        age_of(secret, now),
    ]
}

pub(crate) fn configmap_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_of(cm),
        Value::from(map_len(cm, "/data") + map_len(cm, "/binaryData")),
        age_of(cm, now),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

/// Rewrites an events.k8s.io/v1 Event into the core v1 shape (what
/// kube-apiserver's conversion to the internal type does before printing).
pub(crate) fn events_v1_as_core(ev: &Value) -> Value {
    let mut out = Map::new();
    let copy = |out: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(v) = ev.get(from) {
            out.insert(to.to_string(), v.clone());
        }
    };
    copy(&mut out, "metadata", "metadata");
    copy(&mut out, "regarding", "involvedObject");
    copy(&mut out, "note", "message");
    copy(&mut out, "reason", "reason");
    copy(&mut out, "type", "type");
    copy(&mut out, "eventTime", "eventTime");
    copy(&mut out, "reportingController", "reportingComponent");
    copy(&mut out, "reportingInstance", "reportingInstance");
    copy(&mut out, "deprecatedSource", "source");
    copy(&mut out, "deprecatedFirstTimestamp", "firstTimestamp");
    copy(&mut out, "deprecatedLastTimestamp", "lastTimestamp");
    copy(&mut out, "deprecatedCount", "count");
    if let Some(series) = ev.get("series").filter(|v| v.is_object()) {
        out.insert("series".into(), series.clone());
    }
    Value::Object(out)
}

pub(crate) fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let null = Value::Null;
    let field = |name: &str| ev.get(name).unwrap_or(&null);
    let first_ts = if age::parse_time(field("firstTimestamp")).is_some() {
        age::since(field("firstTimestamp"), now)
    } else {
        age::since(field("eventTime"), now)
    };
    let mut last_ts = if age::parse_time(field("lastTimestamp")).is_some() {
        age::since(field("lastTimestamp"), now)
    } else {
        first_ts.clone()
    };
    let mut count = ev.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = ev.get("series").filter(|v| v.is_object()) {
        last_ts = age::since(series.get("lastObservedTime").unwrap_or(&null), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let obj_name = s(ev, "/involvedObject/name");
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = first_non_empty(s(ev, "/source/component"), s(ev, "/reportingComponent"));
    let instance = first_non_empty(s(ev, "/source/host"), s(ev, "/reportingInstance"));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        Value::from(last_ts),
        Value::from(s(ev, "/type")),
        Value::from(s(ev, "/reason")),
        Value::from(target),
        Value::from(s(ev, "/involvedObject/fieldPath")),
        Value::from(source),
        Value::from(s(ev, "/message").trim()),
        Value::from(first_ts),
        json!(count),
        name_of(ev),
    ]
}

pub(crate) fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name_of(lease),
        Value::from(s(lease, "/spec/holderIdentity")),
        age_of(lease, now),
    ]
}
