//! `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch,
//! applied the way kube-apiserver applies it (apimachinery `strategicpatch.mergeMap`
//! with `MergeParallelList` and `IgnoreUnmatchedNulls`).
//!
//! Supports merge keys per list (from [`Schema`]), `$patch: replace|delete|merge`,
//! `$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`,
//! `null` deleting a field, and primitive lists with strategy merge. Errors carry
//! apimachinery's wording.

use serde_json::{Map, Value};

use super::merge_keys::{child, item, Schema, SmpList};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

// apimachinery `mergepatch` error texts; kubectl shows them verbatim.
const ERR_BAD_JSON_DOC: &str = "invalid JSON document";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
const ERR_BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_SET_ORDER: &str = "invalid patch format of setElementOrder list";

/// Applies a strategic merge patch to `original` using `schema`'s merge keys.
pub fn apply(schema: &Schema, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadRequest(ERR_BAD_JSON_DOC.to_string()));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::BadRequest(ERR_BAD_JSON_DOC.to_string())),
    };
    merge_map(schema, "", original, patch.clone()).map(Value::Object)
}

/// Go's `%v` of a JSON value, close enough for error messages.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_fmt(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        other => other.to_string(),
    }
}

fn err_no_merge_key(m: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt(&Value::Object(m.clone()))
    ))
}

fn err_bad_patch_type(t: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::Internal(format!(
        "unknown patch type: {} in map: {}",
        go_fmt(t),
        go_fmt(&Value::Object(m.clone()))
    ))
}

/// Equality as Go's `==` on decoded JSON scalars (numbers compare as float64).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The JSON "type" Go's reflect would see: maps, slices, strings, float64, bool.
fn kind_of(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Removes nulls from a value that is copied in without merging.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// apimachinery `removeDirectives`: a map carrying `$patch` is dropped; the
/// other directive keys are stripped too so they never reach storage.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in m {
                if k == RETAIN_KEYS
                    || k.starts_with(SET_ORDER_PREFIX)
                    || k.starts_with(DELETE_PRIMITIVE_PREFIX)
                {
                    continue;
                }
                if let Some(v) = remove_directives(v) {
                    out.insert(k, v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Splits `$prefix/key` into `key`.
fn extract_key(k: &str, prefix: &str, err: &str) -> Result<String, PatchError> {
    match k.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => Err(PatchError::BadRequest(err.to_string())),
    }
}

fn merge_map(
    schema: &Schema,
    path: &str,
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                match remove_directives(Value::Object(patch)) {
                    Some(Value::Object(m)) => Ok(m),
                    _ => Ok(Map::new()),
                }
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(err_bad_patch_type(directive, &patch)),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(schema, path, &mut original, &mut patch)?;

    for (k, patch_v) in patch {
        let (k, is_delete_list) = if k.starts_with(DELETE_PRIMITIVE_PREFIX) {
            (
                extract_key(&k, DELETE_PRIMITIVE_PREFIX, ERR_BAD_PRIMITIVE_LIST)?,
                true,
            )
        } else {
            (k, false)
        };
        if patch_v.is_null() {
            original.shift_remove(&k);
            continue;
        }
        let same_kind = original.get(&k).map(|o| kind_of(o) == kind_of(&patch_v));
        if same_kind != Some(true) {
            if !is_delete_list {
                let mut v = patch_v;
                discard_nulls(&mut v);
                match remove_directives(v) {
                    Some(v) => {
                        original.insert(k, v);
                    }
                    None => {
                        original.shift_remove(&k);
                    }
                }
            }
            continue;
        }
        let sub = child(path, &k);
        // Merge in place so the field keeps its position.
        let Some(slot) = original.get_mut(&k) else {
            continue;
        };
        let merged = match (std::mem::take(slot), patch_v) {
            (Value::Object(o), Value::Object(p)) => Value::Object(merge_map(schema, &sub, o, p)?),
            (Value::Array(o), Value::Array(p)) => match schema.smp_list(&sub) {
                SmpList::Replace => Value::Array(p),
                SmpList::MergePrimitives => {
                    Value::Array(merge_slice(schema, &sub, o, p, None, is_delete_list)?)
                }
                SmpList::MergeByKey(key) => {
                    Value::Array(merge_slice(schema, &sub, o, p, Some(key), is_delete_list)?)
                }
            },
            (_, p) => match remove_directives(p) {
                Some(v) => v,
                None => {
                    original.shift_remove(&k);
                    continue;
                }
            },
        };
        original.insert(k, merged);
    }
    Ok(original)
}

/// `$retainKeys`: drops original keys missing from the list, after checking
/// that the patch only sets listed keys.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(PatchError::BadRequest(ERR_BAD_RETAIN_KEYS.to_string()));
    };
    let keep = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX)
        {
            continue;
        }
        if !keep(k) {
            return Err(PatchError::BadRequest(ERR_BAD_RETAIN_KEYS.to_string()));
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

/// Processes every `$setElementOrder/<list>` with its list: merges the list and
/// orders the result by the directive, then the patch, then the live order.
fn merge_set_element_order(
    schema: &Schema,
    path: &str,
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(PatchError::BadRequest(ERR_BAD_SET_ORDER.to_string()));
        };
        let field = extract_key(&key, SET_ORDER_PREFIX, ERR_BAD_SET_ORDER)?;
        let orig_list = match original.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let sub = child(path, &field);
        let strategy = schema.smp_list(&sub);
        let merge_key = match strategy {
            SmpList::MergeByKey(k) => Some(k),
            _ => None,
        };
        if let Some(p) = &patch_list {
            validate_set_order(p, &order, merge_key)?;
        }
        let merged = match (&orig_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => p.clone(),
            (Some(o), Some(p)) => match strategy {
                SmpList::Replace => p.clone(),
                _ => merge_slice(schema, &sub, o.clone(), p.clone(), merge_key, false)?,
            },
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(&merged, &order, merge_key)?;
        let server_order = orig_list.unwrap_or_default();
        let both =
            normalize_element_order(in_order, server_only, &order, &server_order, merge_key)?;
        original.insert(field.clone(), Value::Array(both));
        patch.remove(&field);
    }
    Ok(())
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    let actual_t = match actual {
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    };
    PatchError::Internal(format!("expected a {expected}, but received a {actual_t}"))
}

/// apimachinery `validatePatchWithSetOrderList`: the patch list's (non-delete)
/// items must appear in the directive list in the same relative order.
fn validate_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_some() {
        patch_list
            .iter()
            .filter(|v| !is_delete_directive(v))
            .collect()
    } else {
        patch_list.iter().collect()
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if has_directive(non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_equal(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        let fmt_list = |l: &[Value]| go_fmt(&Value::Array(l.to_vec()));
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}\n",
            fmt_list(patch_list),
            fmt_list(order)
        )));
    }
    Ok(())
}

fn has_directive(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}

fn is_delete_directive(v: &Value) -> bool {
    v.as_object()
        .and_then(|m| m.get(DIRECTIVE))
        .and_then(Value::as_str)
        == Some("delete")
}

fn merge_key_equal(a: &Value, b: &Value, merge_key: Option<&str>) -> Result<bool, PatchError> {
    let Some(key) = merge_key else {
        return Ok(scalar_eq(a, b));
    };
    let (Value::Object(am), Value::Object(bm)) = (a, b) else {
        return Err(bad_arg_type(
            "map[string]interface {}",
            if a.is_object() { b } else { a },
        ));
    };
    let av = am.get(key).ok_or_else(|| err_no_merge_key(am, key))?;
    let bv = bm.get(key).ok_or_else(|| err_no_merge_key(bm, key))?;
    Ok(scalar_eq(av, bv))
}

/// The value an item is identified by: its merge key value, or itself.
fn ident<'a>(v: &'a Value, merge_key: Option<&str>) -> Option<&'a Value> {
    match merge_key {
        Some(k) => v.as_object().and_then(|m| m.get(k)),
        None => Some(v),
    }
}

fn index_of(list: &[Value], v: &Value, merge_key: Option<&str>) -> Option<usize> {
    let want = ident(v, merge_key)?;
    list.iter()
        .position(|x| ident(x, merge_key).is_some_and(|got| scalar_eq(got, want)))
}

/// Splits `merged` into items present in `by` and the rest, keeping order.
fn partition(
    merged: &[Value],
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for v in merged {
        if let Some(k) = merge_key {
            let Value::Object(m) = v else {
                return Err(bad_arg_type("map[string]interface {}", v));
            };
            if !m.contains_key(k) {
                return Err(err_no_merge_key(m, k));
            }
        }
        if index_of(by, v, merge_key).is_some() {
            present.push(v.clone());
        } else {
            rest.push(v.clone());
        }
    }
    Ok((present, rest))
}

/// apimachinery `normalizeElementOrder`: sorts the patch items by `patch_order`
/// and the server-only items by `server_order`, then interleaves them.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key)?;
    Ok(merge_sorted(server_only, patch, server_order, merge_key))
}

fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let mut to_sort = to_sort;
    let mut to_delete = Vec::new();
    if let Some(k) = merge_key {
        for v in to_sort.iter().chain(order.iter()) {
            match v {
                Value::Object(m) if m.contains_key(k) => {}
                Value::Object(m) => return Err(err_no_merge_key(m, k)),
                other => return Err(bad_arg_type("map[string]interface {}", other)),
            }
        }
        let (keep, del): (Vec<Value>, Vec<Value>) =
            to_sort.into_iter().partition(|v| !is_delete_directive(v));
        to_sort = keep;
        to_delete = del;
    }
    // Items missing from `order` keep their relative place at the end, which
    // is what Go's stable sort yields for the inputs the patch code produces.
    to_sort.sort_by_key(|v| index_of(order, v, merge_key).unwrap_or(usize::MAX));
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// apimachinery `mergeSortedSlice`: inserts `left` items among `right` items,
/// using the live order to decide where both are known.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_of(server_order, &left[i], merge_key);
            let ri = index_of(server_order, &right[j], merge_key);
            match (li, ri) {
                (Some(l), Some(r)) if l < r => {
                    out.push(left[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(right[j].clone());
                    j += 1;
                }
            }
        }
    }
    out
}

/// apimachinery `mergeSlice`.
fn merge_slice(
    schema: &Schema,
    path: &str,
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&str>,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let elem_kind = slice_element_kind(&original, &patch)?;
    if elem_kind != 5 {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| scalar_eq(d, v)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| scalar_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(&merged, &patch, None)?;
        return normalize_element_order(in_patch, server_only, &patch, &original, None);
    }
    let Some(key) = merge_key else {
        return Err(PatchError::Internal(
            "cannot merge lists without merge key for type map".to_string(),
        ));
    };
    let (original, patch) = merge_special_elements(original, patch, key)?;
    let mut merged = original.clone();
    for v in &patch {
        let Value::Object(pm) = v else {
            return Err(bad_arg_type("map[string]interface {}", v));
        };
        let mv = pm.get(key).ok_or_else(|| err_no_merge_key(pm, key))?;
        let found = merged.iter().position(|o| {
            o.as_object()
                .and_then(|om| om.get(key))
                .is_some_and(|ov| scalar_eq(ov, mv))
        });
        match found {
            Some(idx) => {
                let orig_item = match std::mem::take(&mut merged[idx]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[idx] = Value::Object(merge_map(schema, &item(path), orig_item, pm.clone())?);
            }
            None => {
                let mut new_item = v.clone();
                discard_nulls(&mut new_item);
                if let Some(new_item) = remove_directives(new_item) {
                    merged.push(new_item);
                }
            }
        }
    }
    let (in_patch, server_only) = partition(&merged, &patch, Some(key))?;
    normalize_element_order(in_patch, server_only, &patch, &original, Some(key))
}

/// All elements of both lists must share one type, and not be lists.
fn slice_element_kind(a: &[Value], b: &[Value]) -> Result<u8, PatchError> {
    let mut kind = None;
    for v in a.iter().chain(b.iter()) {
        let k = kind_of(v);
        match kind {
            None if k == 4 => {
                return Err(PatchError::Unprocessable(ERR_NO_LIST_OF_LISTS.to_string()))
            }
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: [{} {}]",
                    go_fmt(&Value::Array(a.to_vec())),
                    go_fmt(&Value::Array(b.to_vec()))
                )))
            }
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| PatchError::Internal("no elements in any of the given slices".to_string()))
}

/// apimachinery `mergeSliceWithSpecialElements`: applies `$patch: delete`
/// items and `$patch: replace`, returning the new original and the rest of the patch.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            rest.push(v);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let mv = m.get(key).ok_or_else(|| err_no_merge_key(m, key))?;
                original.retain(|o| {
                    !o.as_object()
                        .and_then(|om| om.get(key))
                        .is_some_and(|ov| scalar_eq(ov, mv))
                });
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Internal(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ))
            }
            _ => return Err(err_bad_patch_type(directive, m)),
        }
    }
    if replace {
        return Ok((rest, Vec::new()));
    }
    Ok((original, rest))
}
