//! Seams into `portico_api` (defaulting, validation, selectors, patching, tables).
//!
//! Every call the server makes into the pure API model goes through here, so the
//! handlers never change when a module lands; until one does, a small fallback
//! keeps the server usable.

use std::collections::BTreeMap;

use portico_api::patch;
use portico_api::resource::ResourceInfo;
use portico_api::status::{ApiError, FieldError};
use serde_json::{json, Value};

/// The patch flavours of `PATCH`, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type (parameters ignored) to a patch kind.
    pub(crate) fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Applies defaults to an object being created or updated.
pub(crate) fn default_object(_info: &ResourceInfo, _obj: &mut Value) {}

/// Validates an object (`old` set on update). Returns Kubernetes' field errors.
pub(crate) fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let _ = (info, obj, old);
    Vec::new()
}

/// With `fieldValidation=Strict`: rejects unknown or duplicate fields in the raw body.
pub(crate) fn strict_check(_info: &ResourceInfo, _body: &[u8]) -> Result<(), ApiError> {
    Ok(())
}

/// Applies a JSON, merge or strategic merge patch to the current object.
pub(crate) fn apply_patch(info: &ResourceInfo, kind: PatchKind, current: &Value, body: &Value) -> Result<Value, ApiError> {
    let r = match kind {
        PatchKind::Json => patch::json_patch(current, body),
        PatchKind::Merge => patch::merge(current, body),
        PatchKind::Strategic => patch::strategic_merge(info, current, body),
        PatchKind::Apply => return Err(ApiError::internal("apply is handled by server_side_apply")),
    };
    r.map_err(|e| e.to_api_error())
}

/// Server-side apply of `config` by `manager` over `live` (None: create).
pub(crate) fn server_side_apply(info: &ResourceInfo, live: Option<&Value>, config: &Value, manager: &str, force: bool, now: &str) -> Result<Value, ApiError> {
    let name = config["metadata"]["name"].as_str().unwrap_or_default().to_string();
    patch::server_side_apply(info, live, config, manager, force, now).map_err(|e| e.to_api_error(info, &name))
}

/// Records `managedFields` for a non-apply write.
pub(crate) fn record_update(info: &ResourceInfo, old: Option<&Value>, new: &mut Value, manager: &str, now: &str) {
    patch::record_update(info, old, new, manager, now);
}

/// A `meta.k8s.io/v1` Table of objects.
pub(crate) fn table(info: &ResourceInfo, objects: &[Value], include_object: Option<&str>, list_meta: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": [o["metadata"]["name"].clone(), o["metadata"]["creationTimestamp"].clone()]});
            if include_object != Some("None") {
                row["object"] = match include_object {
                    Some("Object") => o.clone(),
                    _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}),
                };
            }
            row
        })
        .collect();
    let _ = info;
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}

/// A parsed label + field selector pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<(String, bool, String)>,
}

#[derive(Debug, Clone)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

fn parse_label(req: &str) -> Result<Requirement, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: found '{req}', expected: identifier"));
    if let Some(k) = req.strip_prefix('!') {
        return Ok(Requirement::NotExists(k.trim().to_string()));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(Requirement::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(Requirement::Eq(k.trim().into(), v.trim().into()));
    }
    let words: Vec<&str> = req.splitn(3, ' ').collect();
    if let [k, op, rest] = words.as_slice() {
        let set = parse_set(rest).ok_or_else(bad)?;
        return match *op {
            "in" => Ok(Requirement::In((*k).into(), set)),
            "notin" => Ok(Requirement::NotIn((*k).into(), set)),
            _ => Err(bad()),
        };
    }
    if req.contains(' ') {
        return Err(bad());
    }
    Ok(Requirement::Exists(req.to_string()))
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` query values.
    pub(crate) fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Selectors::default();
        for r in split_top(labels.unwrap_or("")) {
            out.labels.push(parse_label(&r)?);
        }
        for r in split_top(fields.unwrap_or("")) {
            let (k, neg, v) = if let Some((k, v)) = r.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid field selector: '{r}'")));
            };
            out.fields.push((k.trim().to_string(), neg, v.trim().to_string()));
        }
        Ok(out)
    }

    /// Whether nothing is selected on (every object matches).
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `obj` matches both selectors.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels: BTreeMap<String, String> = obj["metadata"]["labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default();
        let label_ok = self.labels.iter().all(|r| match r {
            Requirement::Eq(k, v) => labels.get(k) == Some(v),
            Requirement::NotEq(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        });
        label_ok && self.fields.iter().all(|(k, neg, v)| (field_value(obj, k) == *v) != *neg)
    }
}

/// The value of a selectable field; missing fields compare as "".
fn field_value(obj: &Value, path: &str) -> String {
    let ptr = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "default", "labels": {"app": "nginx", "tier": "web"}}, "spec": {"nodeName": "n1"}});
        let m = |l: &str, f: &str| Selectors::parse(Some(l), Some(f)).unwrap().matches(&obj);
        assert!(m("app=nginx", ""));
        assert!(m("app==nginx,tier", ""));
        assert!(!m("app!=nginx", ""));
        assert!(m("tier in (web, db)", ""));
        assert!(!m("tier notin (web)", ""));
        assert!(m("!missing", "metadata.name=a"));
        assert!(m("", "spec.nodeName=n1,metadata.namespace!=kube-system"));
        assert!(!m("", "spec.nodeName="));
        assert_eq!(PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"), Some(PatchKind::Merge));
    }
}
