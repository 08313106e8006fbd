//! `metadata.managedFields`: decoding and encoding the entries, and recording
//! the fields a non-apply write (create, update, patch) set, as kube-apiserver's
//! field manager does for `operation: Update`.

use serde_json::{json, Map, Value};

use super::fieldpath::{compare, field, FieldSet, Path};
use super::merge_keys::Schema;
use crate::resource::ResourceInfo;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` the fields were written in.
    pub api_version: String,
    /// `time` (RFC 3339), if any.
    pub time: Option<String>,
    /// `subresource`, empty for the main resource.
    pub subresource: String,
    /// The owned fields.
    pub set: FieldSet,
}

impl Entry {
    /// Whether `self` and the given identity name the same manager entry:
    /// appliers are one entry whatever the version, updaters one per version.
    pub fn is(&self, manager: &str, operation: &str, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == "Apply" || self.api_version == api_version)
    }

    /// The manager as kube-apiserver prints it in conflicts (`printManager`).
    pub fn display(&self) -> String {
        let mut s = format!("\"{}\"", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource \"{}\"", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }
}

/// The `metadata` members kube-apiserver never tracks (`StripMetaManager`), as path elements.
const UNTRACKED_META: [&str; 9] = [
    "f:name",
    "f:namespace",
    "f:creationTimestamp",
    "f:selfLink",
    "f:uid",
    "f:clusterName",
    "f:generation",
    "f:managedFields",
    "f:resourceVersion",
];

/// The paths kube-apiserver never tracks (`StripMetaManager`).
pub fn stripped_paths() -> Vec<Path> {
    let mut out = vec![
        vec![field("apiVersion")],
        vec![field("kind")],
        vec![field("metadata")],
    ];
    for f in UNTRACKED_META {
        out.push(vec![field("metadata"), f.to_string()]);
    }
    out
}

/// Whether [`strip`] drops `p`: `apiVersion`, `kind` and the untracked metadata
/// members with their subtrees, and exactly `metadata` itself. One pass over
/// the set without building the path list (this runs on every write).
fn untracked(p: &[String]) -> bool {
    match p {
        [first, rest @ ..] => match first.as_str() {
            "f:apiVersion" | "f:kind" => true,
            "f:metadata" => rest
                .first()
                .is_none_or(|m| UNTRACKED_META.contains(&m.as_str())),
            _ => false,
        },
        [] => false,
    }
}

/// Removes the untracked paths: whole subtrees below the metadata fields, and
/// exactly `metadata` itself (its other children stay tracked).
pub fn strip(set: &FieldSet) -> FieldSet {
    FieldSet::from_paths(set.iter().filter(|p| !untracked(p)).cloned())
}

/// [`strip`], plus the fields the write cannot change and kube-apiserver's
/// reset-fields strategies therefore ignore: `status` for the main resource of
/// a kind with a status subresource, everything but `status` for `status`.
pub fn strip_for(res: &ResourceInfo, subresource: &str, set: &FieldSet) -> FieldSet {
    let set = strip(set);
    let status = vec![field("status")];
    match subresource {
        "" if res.subresources.contains(&"status") => set.without_prefixes(&[status]),
        "status" => FieldSet::from_paths(set.iter().filter(|p| p.starts_with(&status)).cloned()),
        _ => set,
    }
}

/// Decodes `metadata.managedFields` of an object.
pub fn decode(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(Entry {
                manager: s("manager").unwrap_or_default(),
                operation: s("operation")?,
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time"),
                subresource: s("subresource").unwrap_or_default(),
                set: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes the entries into `metadata.managedFields`, sorted as kube-apiserver
/// sorts them (operation, time, manager, apiVersion, subresource); removes the
/// field when there are none.
pub fn encode(obj: &mut Value, entries: &[Entry]) {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.set.is_empty()).collect();
    sorted.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
    else {
        return;
    };
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if sorted.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(sorted.iter().map(|e| e.to_json()).collect()),
        );
    }
}

/// The object without `metadata.managedFields`, as the field manager compares it.
pub fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    o
}

/// The empty object a create is compared against: what Go's zero value of the
/// kind serialises to, so `metadata`, `spec` and `status` (and a workload's
/// template) count as pre-existing structs rather than added maps.
pub fn zero_object(res: &ResourceInfo) -> Value {
    let mut z = json!({"metadata": {}, "spec": {}, "status": {}});
    match (res.group, res.kind) {
        ("", "Pod") => z["spec"] = json!({"containers": null}),
        ("apps", kind) => {
            z["spec"] = json!({"selector": null, "template": {"metadata": {}, "spec": {"containers": null}}});
            if kind == "Deployment" {
                z["spec"]["strategy"] = json!({});
            }
        }
        _ => {}
    }
    z
}

/// After a create/update/patch by `manager` with operation "Update" (non-apply
/// writes), records in `new.metadata.managedFields` the fields this write set
/// or changed, as kube-apiserver does: merged into that manager's existing
/// Update entry for the same apiVersion, and removed from other managers' sets.
pub fn record_update(
    res: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
) {
    record_update_subresource(res, old, new, manager, "", now);
}

/// [`record_update`] for a write through a subresource (`status`, `scale`):
/// the entry carries `subresource`, and only the fields that subresource can
/// change are recorded.
pub fn record_update_subresource(
    res: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    let schema = Schema::for_resource(res);
    let api_version = res.api_version();
    // A client may send managedFields (to reset them); otherwise the live ones count.
    let sent = decode(new);
    let mut entries = if sent.is_empty() {
        old.map(decode).unwrap_or_default()
    } else {
        sent
    };
    if is_reset(new) {
        entries.clear();
    }
    // `compare` skips metadata.managedFields, so the objects need no copies without it.
    let zero;
    let old_obj = match old {
        Some(o) => o,
        None => {
            zero = zero_object(res);
            &zero
        }
    };
    let cmp = compare(&schema, old_obj, new);
    let changed = strip_for(res, subresource, &cmp.modified.union(&cmp.added));
    let removed = strip_for(res, subresource, &cmp.removed);
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&removed);
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, "Update", &api_version, subresource))
        {
            Some(e) => {
                e.set = e.set.union(&changed);
                e.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".to_string(),
                api_version,
                time: Some(now.to_string()),
                subresource: subresource.to_string(),
                set: changed,
            }),
        }
    }
    entries.retain(|e| !e.set.is_empty());
    encode(new, &entries);
}

/// `managedFields: [{}]` asks the server to clear all ownership.
fn is_reset(obj: &Value) -> bool {
    matches!(obj.pointer("/metadata/managedFields").and_then(Value::as_array),
        Some(a) if a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty))
}
