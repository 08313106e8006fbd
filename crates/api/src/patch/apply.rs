//! Server-side apply (`application/apply-patch+yaml`), as structured-merge-diff
//! (`Updater.Apply`) and kube-apiserver's field manager chain do it: merge the
//! configuration into the live object (list-maps by key, sets by value, atomic
//! values replaced), prune what this manager applied before and dropped now
//! unless someone else owns it, detect conflicts with other managers' fields,
//! and record ownership in `metadata.managedFields`.

use serde_json::{Map, Value};

use super::fieldpath::{compare, display, list_item_element, remove_path, to_field_set, FieldSet};
use super::managed::{decode, encode, strip_for, without_managed_fields, Entry};
use super::merge_keys::{child, item, Schema, SsaList};
use super::{ApplyError, Conflict};
use crate::resource::ResourceInfo;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// See [`super::server_side_apply`].
pub fn server_side_apply(
    res: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    check_config(res, config)?;
    let schema = Schema::for_resource(res);
    let api_version = res.api_version();
    let live_obj = live.map_or_else(|| Value::Object(Map::new()), without_managed_fields);
    let mut entries = live.map(decode).unwrap_or_default();
    if live.is_some() && entries.is_empty() {
        // Objects written before anyone tracked fields: the existing fields
        // belong to a placeholder manager, as in kube-apiserver.
        entries.push(Entry {
            manager: "before-first-apply".to_string(),
            operation: "Update".to_string(),
            api_version: api_version.clone(),
            time: None,
            subresource: String::new(),
            set: strip_for(res, "", &to_field_set(&schema, &live_obj)),
        });
    }

    let mut merged = merge_values(&schema, "", &live_obj, config);
    let new_set = strip_for(res, "", &to_field_set(&schema, config));
    let applier = entries
        .iter()
        .position(|e| e.is(manager, "Apply", &api_version, ""));
    let last_set = applier.map(|i| entries[i].set.clone()).unwrap_or_default();
    let others: Vec<usize> = (0..entries.len()).filter(|i| Some(*i) != applier).collect();

    prune(
        &schema,
        &mut merged,
        &last_set,
        &new_set,
        others.iter().map(|i| &entries[*i].set),
    );

    let cmp = compare(&schema, &live_obj, &merged);
    let changed = strip_for(res, "", &cmp.modified.union(&cmp.added));
    let mut conflicts = Vec::new();
    for &i in &others {
        for p in entries[i].set.intersection(&changed).iter() {
            conflicts.push((entries[i].display(), p.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        // kube-apiserver's lastAppliedManager: the `kubectl` applier may take over
        // fields that still hold the values of the client-side last-applied
        // configuration, so moving from client-side to server-side apply works.
        let allowed = if manager == "kubectl" {
            live.and_then(|l| allowed_from_last_applied(&schema, l))
                .unwrap_or_default()
        } else {
            FieldSet::new()
        };
        let remaining: Vec<Conflict> = conflicts
            .iter()
            .filter(|(_, p)| !allowed.contains(p))
            .map(|(m, p)| Conflict {
                manager: m.clone(),
                field: display(p),
            })
            .collect();
        if !remaining.is_empty() {
            let mut remaining = remaining;
            remaining.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
            return Err(ApplyError::Conflict(remaining));
        }
    }
    let removed = strip_for(res, "", &cmp.removed);
    for &i in &others {
        entries[i].set = entries[i].set.difference(&changed).difference(&removed);
    }
    let object_changed = !super::fieldpath::json_eq(&live_obj, &merged);
    match applier {
        Some(i) => {
            entries[i].set = new_set;
            entries[i].api_version = api_version;
            if object_changed || entries[i].time.is_none() {
                entries[i].time = Some(now.to_string());
            }
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".to_string(),
            api_version,
            time: Some(now.to_string()),
            subresource: String::new(),
            set: new_set,
        }),
    }
    entries.retain(|e| !e.set.is_empty());

    // kube-apiserver's lastAppliedUpdater keeps client-side apply working
    // after `kubectl apply --server-side`.
    if manager == "kubectl" && has_last_applied(&merged) {
        set_last_applied(&mut merged, &build_last_applied(config));
    }
    encode(&mut merged, &entries);
    Ok(merged)
}

/// Rejects configurations kube-apiserver would refuse to decode.
fn check_config(res: &ResourceInfo, config: &Value) -> Result<(), ApplyError> {
    let Value::Object(cfg) = config else {
        return Err(ApplyError::BadRequest(
            "error decoding YAML: the applied configuration is not an object".to_string(),
        ));
    };
    let kind = cfg.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() {
        return Err(ApplyError::BadRequest(format!(
            "Object 'Kind' is missing in '{config}'"
        )));
    }
    let api_version = cfg
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != res.api_version() {
        return Err(ApplyError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if kind != res.kind {
        return Err(ApplyError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            res.kind
        )));
    }
    let managed = config.pointer("/metadata/managedFields");
    if managed.is_some_and(|m| !m.is_null() && m.as_array().is_none_or(|a| !a.is_empty())) {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".to_string(),
        ));
    }
    Ok(())
}

/// structured-merge-diff merge of `rhs` (the configuration) into `lhs`.
fn merge_values(schema: &Schema, spath: &str, lhs: &Value, rhs: &Value) -> Value {
    match (lhs, rhs) {
        (Value::Object(l), Value::Object(r)) if !schema.is_atomic(spath) => {
            let mut out = l.clone();
            for (k, rv) in r {
                if rv.is_null() {
                    out.shift_remove(k);
                    continue;
                }
                let sub = child(spath, k);
                let merged = match l.get(k) {
                    Some(lv) => merge_values(schema, &sub, lv, rv),
                    None => without_nulls(rv),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(r)) if schema.ssa_list(spath) != SsaList::Atomic => {
            Value::Array(merge_list(schema, spath, l, r))
        }
        _ => without_nulls(rhs),
    }
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges a list-map or set: shared items merged in place, live-only items
/// kept, configuration-only items placed after the configuration item they
/// follow.
fn merge_list(schema: &Schema, spath: &str, lhs: &[Value], rhs: &[Value]) -> Vec<Value> {
    let lk: Vec<String> = lhs
        .iter()
        .enumerate()
        .map(|(i, v)| list_item_element(schema, spath, i, v))
        .collect();
    let rk: Vec<String> = rhs
        .iter()
        .enumerate()
        .map(|(i, v)| list_item_element(schema, spath, i, v))
        .collect();
    let ispath = item(spath);
    let mut out = Vec::with_capacity(lhs.len() + rhs.len());
    let mut emitted = vec![false; rhs.len()];
    let mut cursor = 0;
    for (i, l) in lhs.iter().enumerate() {
        let Some(j) = rk.iter().position(|k| *k == lk[i]) else {
            out.push(l.clone());
            continue;
        };
        while cursor < j {
            if !emitted[cursor] && !lk.contains(&rk[cursor]) {
                out.push(without_nulls(&rhs[cursor]));
                emitted[cursor] = true;
            }
            cursor += 1;
        }
        if !emitted[j] {
            out.push(merge_values(schema, &ispath, l, &rhs[j]));
            emitted[j] = true;
        }
        cursor = cursor.max(j + 1);
    }
    for (j, r) in rhs.iter().enumerate() {
        if !emitted[j] && !lk.contains(&rk[j]) {
            out.push(without_nulls(r));
        }
    }
    out
}

/// Removes what the manager applied last time and no longer applies, unless
/// it (or something below it) is still owned by anyone.
fn prune<'a>(
    schema: &Schema,
    merged: &mut Value,
    last_set: &FieldSet,
    new_set: &FieldSet,
    others: impl Iterator<Item = &'a FieldSet>,
) {
    let owned: Vec<&FieldSet> = others.collect();
    let dropped = last_set.difference(new_set);
    // Shallow paths first: removing a list item removes its fields with it.
    for p in dropped.iter() {
        if new_set.contains_prefix(p)
            || owned.iter().any(|s| s.contains_prefix(p))
            || is_key_field(p)
        {
            continue;
        }
        remove_path(schema, merged, p);
    }
}

/// Whether `p` names a key field of a list-map item (`k:{"port":80}` then
/// `f:port`): the item's identity, removed only with the item.
fn is_key_field(p: &[String]) -> bool {
    let [.., parent, last] = p else { return false };
    let (Some(key), Some(name)) = (parent.strip_prefix("k:"), last.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Value>(key)
        .ok()
        .and_then(|k| k.as_object().map(|m| m.contains_key(name)))
        .unwrap_or(false)
}

/// The fields the last-applied annotation sets that still hold its values.
fn allowed_from_last_applied(schema: &Schema, live: &Value) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion") != live.get("apiVersion") {
        return None;
    }
    let live_obj = without_managed_fields(live);
    let set = to_field_set(schema, &last);
    let cmp = compare(schema, &last, &live_obj);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

fn has_last_applied(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .is_some()
}

/// The applied configuration without the annotation, encoded as Go encodes
/// unstructured objects (keys sorted).
fn build_last_applied(config: &Value) -> String {
    let mut c = config.clone();
    if let Some(a) = c
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.shift_remove(LAST_APPLIED);
    }
    sorted(&c).to_string()
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k.as_str()])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn set_last_applied(obj: &mut Value, text: &str) {
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(LAST_APPLIED.to_string(), Value::String(text.to_string()));
    }
}
