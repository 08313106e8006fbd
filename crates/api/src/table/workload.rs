//! Printers for Deployments and ReplicaSets.

use super::{
    age_of, arr, col, container_cells, format_label_selector, i, label_selector_string, name_of,
    Col, AGE, CONTAINERS, IMAGES, NAME,
};
use jiff::Timestamp;
use serde_json::Value;

pub(crate) const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col(
        "Up-to-date",
        "string",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    col(
        "Available",
        "string",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    super::wide(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    ),
];

pub(crate) const REPLICASET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    super::wide(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count.",
    ),
];

/// `spec.replicas`, which defaulting sets to 1 when absent.
fn desired(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(crate) fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(arr(d, "/spec/template/spec/containers"));
    vec![
        name_of(d),
        Value::from(format!("{}/{}", i(d, "/status/readyReplicas"), desired(d))),
        Value::from(i(d, "/status/updatedReplicas")),
        Value::from(i(d, "/status/availableReplicas")),
        age_of(d, now),
        Value::from(names),
        Value::from(images),
        Value::from(label_selector_string(d.pointer("/spec/selector"))),
    ]
}

pub(crate) fn replicaset_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(arr(rs, "/spec/template/spec/containers"));
    vec![
        name_of(rs),
        Value::from(desired(rs)),
        Value::from(i(rs, "/status/replicas")),
        Value::from(i(rs, "/status/readyReplicas")),
        age_of(rs, now),
        Value::from(names),
        Value::from(images),
        Value::from(format_label_selector(rs.pointer("/spec/selector"))),
    ]
}
