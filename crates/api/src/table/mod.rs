//! Server-side printing: `meta.k8s.io/v1` Tables with the columns and cell text
//! of Kubernetes' own printers (k/k `pkg/printers/internalversion/printers.go`).
//!
//! The server always renders the wide (`-o wide`) cells; kubectl hides columns
//! with `priority > 0` unless asked, and upper-cases the column names.

mod age;
mod core;
mod network;
mod pod;
mod workload;

pub use age::human_duration;

use crate::resource::ResourceInfo;
use jiff::Timestamp;
use serde_json::{json, Map, Value};

/// What each row carries in `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (Kubernetes' default; kubectl reads namespace
    /// and labels from it for `-A` and `--show-labels`).
    #[default]
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value; Kubernetes defaults to Metadata.
    pub fn from_query(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// One column definition.
pub(crate) struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

pub(crate) const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority: 0,
        description,
    }
}

pub(crate) const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        priority: 1,
        description,
    }
}

pub(crate) const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(crate) const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    priority: 0,
    description: NAME_DOC,
};
pub(crate) const AGE: Col = col("Age", "string", AGE_DOC);
pub(crate) const CONTAINERS: Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
pub(crate) const IMAGES: Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// Columns of kinds without a dedicated printer (Kubernetes' default table).
const DEFAULT_COLUMNS: &[Col] = &[
    NAME,
    Col {
        name: "Created At",
        ty: "date",
        format: "",
        priority: 0,
        description: AGE_DOC,
    },
];

fn column_defs(res: &ResourceInfo) -> &'static [Col] {
    match (res.group, res.kind) {
        ("", "Pod") => pod::COLUMNS,
        ("", "Service") => network::SERVICE_COLUMNS,
        ("", "Endpoints") => network::ENDPOINTS_COLUMNS,
        ("discovery.k8s.io", "EndpointSlice") => network::ENDPOINTSLICE_COLUMNS,
        ("networking.k8s.io", "Ingress") => network::INGRESS_COLUMNS,
        ("networking.k8s.io", "IngressClass") => network::INGRESSCLASS_COLUMNS,
        ("apps", "Deployment") => workload::DEPLOYMENT_COLUMNS,
        ("apps", "ReplicaSet") => workload::REPLICASET_COLUMNS,
        ("", "Node") => core::NODE_COLUMNS,
        ("", "Namespace") => core::NAMESPACE_COLUMNS,
        ("", "Secret") => core::SECRET_COLUMNS,
        ("", "ConfigMap") => core::CONFIGMAP_COLUMNS,
        ("", "Event") | ("events.k8s.io", "Event") => core::EVENT_COLUMNS,
        ("coordination.k8s.io", "Lease") => core::LEASE_COLUMNS,
        _ => DEFAULT_COLUMNS,
    }
}

/// The `columnDefinitions` of a kind's Table.
pub fn columns(res: &ResourceInfo) -> Vec<Value> {
    column_defs(res)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

/// The cells of one object's row (always the wide set), in column order.
pub fn row_cells(res: &ResourceInfo, obj: &Value, now: Timestamp) -> Vec<Value> {
    match (res.group, res.kind) {
        ("", "Pod") => pod::cells(obj, now),
        ("", "Service") => network::service_cells(obj, now),
        ("", "Endpoints") => network::endpoints_cells(obj, now),
        ("discovery.k8s.io", "EndpointSlice") => network::endpointslice_cells(obj, now),
        ("networking.k8s.io", "Ingress") => network::ingress_cells(obj, now),
        ("networking.k8s.io", "IngressClass") => network::ingressclass_cells(obj, now),
        ("apps", "Deployment") => workload::deployment_cells(obj, now),
        ("apps", "ReplicaSet") => workload::replicaset_cells(obj, now),
        ("", "Node") => core::node_cells(obj, now),
        ("", "Namespace") => core::namespace_cells(obj, now),
        ("", "Secret") => core::secret_cells(obj, now),
        ("", "ConfigMap") => core::configmap_cells(obj, now),
        ("", "Event") => core::event_cells(obj, now),
        ("events.k8s.io", "Event") => core::event_cells(&core::events_v1_as_core(obj), now),
        ("coordination.k8s.io", "Lease") => core::lease_cells(obj, now),
        _ => vec![
            name_of(obj),
            obj.pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
        ],
    }
}

/// Row conditions (only pods set them: Completed for Succeeded/Failed).
fn row_conditions(res: &ResourceInfo, obj: &Value) -> Option<Value> {
    if res.group.is_empty() && res.kind == "Pod" {
        pod::conditions(obj)
    } else {
        None
    }
}

/// A `meta.k8s.io/v1` Table of `objects`. `list_meta` becomes the Table's
/// `metadata` (`resourceVersion`, `continue`, ...).
pub fn to_table(
    res: &ResourceInfo,
    objects: &[Value],
    now: Timestamp,
    include_object: IncludeObject,
    list_meta: Value,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(row_cells(res, obj, now)));
            if let Some(conds) = row_conditions(res, obj) {
                row.insert("conditions".into(), conds);
            }
            match include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
                    row.insert(
                        "object".into(),
                        json!({
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": meta,
                        }),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".into(), obj.clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    let metadata = if list_meta.is_object() {
        list_meta
    } else {
        json!({})
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(res),
        "rows": rows,
    })
}

// ---- small JSON helpers shared by the printers ----

/// String at a JSON pointer, or "".
pub(crate) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Integer at a JSON pointer, or 0.
pub(crate) fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// Array at a JSON pointer, or empty.
pub(crate) fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn name_of(obj: &Value) -> Value {
    Value::from(s(obj, "/metadata/name"))
}

pub(crate) fn age_of(obj: &Value, now: Timestamp) -> Value {
    Value::from(age::since(
        obj.pointer("/metadata/creationTimestamp")
            .unwrap_or(&Value::Null),
        now,
    ))
}

/// `labels.FormatLabels`: `k=v` sorted by key, comma-joined; `<none>` if empty.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key;
/// `""` for an empty or missing selector, `<error>` for an invalid one.
pub(crate) fn label_selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|v| !v.is_null()) else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in arr(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let mut values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        values.dedup();
        let text = match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".to_string(),
        };
        reqs.push((key.to_string(), text));
    }
    // labels.NewSelector sorts requirements by key (stable for equal keys).
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: like [`label_selector_string`], `<none>` if empty.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    let s = label_selector_string(sel);
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `listWithMoreString` used by the EndpointSlice printer.
pub(crate) fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count.saturating_sub(max));
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

#[cfg(test)]
mod tests;
