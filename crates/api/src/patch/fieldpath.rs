//! Field sets as structured-merge-diff builds them: the paths a manager owns,
//! their `FieldsV1` JSON encoding (`f:`, `k:`, `v:`, `i:`, `.`), their printed
//! form (`.spec.ports[port=80,protocol="TCP"].targetPort`), and the two walks
//! server-side apply needs: the set of fields an object sets and the
//! comparison of two objects.
//!
//! A path is a list of encoded path elements, exactly as they appear as keys in
//! `FieldsV1`, so sets round-trip without loss.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::merge_keys::{child, item, Schema, SsaList};

/// One path: encoded elements such as `f:spec`, `k:{"port":80,"protocol":"TCP"}`.
pub type Path = Vec<String>;

/// A set of owned paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<Path>,
}

impl FieldSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding the given paths.
    pub fn from_paths(paths: impl IntoIterator<Item = Path>) -> Self {
        FieldSet {
            paths: paths.into_iter().collect(),
        }
    }

    /// Adds a path.
    pub fn insert(&mut self, p: Path) {
        self.paths.insert(p);
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: &[String]) -> bool {
        self.paths.contains(p)
    }

    /// Whether the set holds `p` or any path below it.
    pub fn contains_prefix(&self, p: &[String]) -> bool {
        self.paths.iter().any(|q| q.starts_with(p))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The paths in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Path> {
        self.paths.iter()
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.union(&other.paths).cloned().collect(),
        }
    }

    /// Paths in `self` but not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.difference(&other.paths).cloned().collect(),
        }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.intersection(&other.paths).cloned().collect(),
        }
    }

    /// Removes every path that starts with one of `prefixes` (or equals it).
    pub fn without_prefixes(&self, prefixes: &[Path]) -> FieldSet {
        FieldSet {
            paths: self
                .paths
                .iter()
                .filter(|p| !prefixes.iter().any(|x| p.starts_with(x)))
                .cloned()
                .collect(),
        }
    }

    /// Removes exactly the given paths.
    pub fn without_paths(&self, exact: &[Path]) -> FieldSet {
        FieldSet {
            paths: self
                .paths
                .iter()
                .filter(|p| !exact.contains(p))
                .cloned()
                .collect(),
        }
    }

    /// The `FieldsV1` JSON object.
    pub fn to_fields_v1(&self) -> Value {
        // The set iterates in sorted order, so every level comes out with its keys
        // sorted as kube-apiserver writes them, in one pass and without re-sorting.
        let paths: Vec<&Path> = self.paths.iter().filter(|p| !p.is_empty()).collect();
        Value::Object(encode_level(&paths, 0))
    }

    /// Parses a `FieldsV1` JSON object; unknown shapes are ignored.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::new();
        if let Value::Object(m) = v {
            decode_into(m, &mut Vec::new(), &mut set);
        }
        set
    }
}

/// The `FieldsV1` map of the paths below one node. `paths` are sorted, all
/// longer than `depth`, and share their first `depth` elements.
fn encode_level(paths: &[&Path], depth: usize) -> Map<String, Value> {
    let mut m = Map::new();
    let mut i = 0;
    while i < paths.len() {
        let key = &paths[i][depth];
        let end = i + paths[i..].iter().take_while(|p| &p[depth] == key).count();
        let group = &paths[i..end];
        // The member itself (the path ending here) sorts before its children.
        let member = group[0].len() == depth + 1;
        let below = if member { &group[1..] } else { group };
        let mut child = Map::new();
        if !below.is_empty() {
            // A member that also has children says so with "."; it sorts before
            // every element prefix (f:, k:, v:, i:).
            if member {
                child.insert(".".to_string(), Value::Object(Map::new()));
            }
            child.extend(encode_level(below, depth + 1));
        }
        m.insert(key.clone(), Value::Object(child));
        i = end;
    }
    m
}

fn decode_into(m: &Map<String, Value>, prefix: &mut Path, set: &mut FieldSet) {
    for (k, v) in m {
        if k == "." {
            if !prefix.is_empty() {
                set.insert(prefix.clone());
            }
            continue;
        }
        prefix.push(k.clone());
        match v {
            Value::Object(child) if !child.is_empty() => decode_into(child, prefix, set),
            _ => set.insert(prefix.clone()),
        }
        prefix.pop();
    }
}

/// `f:<name>`.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The printed form of a path, as structured-merge-diff's `Path.String()`.
pub fn display(p: &[String]) -> String {
    let mut out = String::new();
    for el in p {
        if let Some(name) = el.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(k) = el.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", display_value(v)))
                    .collect(),
                _ => vec![k.to_string()],
            };
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            let shown = serde_json::from_str::<Value>(v)
                .map_or_else(|_| v.to_string(), |v| display_value(&v));
            out.push_str(&format!("[={shown}]"));
        } else if let Some(i) = el.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(el);
        }
    }
    out
}

/// structured-merge-diff `value.ToString`: strings quoted, numbers bare.
fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| s.clone()),
        other => other.to_string(),
    }
}

/// The `k:` element of a list-map item, or `None` when a key without a default
/// is missing.
pub fn map_key(keys: &[super::merge_keys::KeyField], item: &Value) -> Option<String> {
    let obj = item.as_object()?;
    let mut fields: Vec<(&str, Value)> = Vec::new();
    for k in keys {
        let v = match (obj.get(k.name), k.default) {
            (Some(v), _) if !v.is_null() => v.clone(),
            (_, Some(d)) => Value::String(d.to_string()),
            _ => return None,
        };
        fields.push((k.name, v));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let m: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Some(format!("k:{}", Value::Object(m)))
}

/// The `v:` element of a set item.
pub fn set_value(v: &Value) -> String {
    format!("v:{v}")
}

/// The path element of list item `index` at schema path `spath`.
pub fn list_item_element(schema: &Schema, spath: &str, index: usize, v: &Value) -> String {
    match schema.ssa_list(spath) {
        SsaList::Map(keys) => map_key(keys, v).unwrap_or_else(|| format!("i:{index}")),
        SsaList::Set => set_value(v),
        SsaList::Atomic => format!("i:{index}"),
    }
}

/// The fields an object sets (structured-merge-diff `ToFieldSet`): every
/// scalar, null, empty map, atomic value and list item; not the non-empty
/// maps and structs that only contain other fields.
pub fn to_field_set(schema: &Schema, v: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    if let Value::Object(m) = v {
        walk_map(schema, "", m, &mut Vec::new(), &mut set);
    }
    set
}

fn walk_map(
    schema: &Schema,
    spath: &str,
    m: &Map<String, Value>,
    path: &mut Path,
    set: &mut FieldSet,
) {
    for (k, v) in m {
        let sub = child(spath, k);
        path.push(field(k));
        walk_value(schema, &sub, v, path, set);
        path.pop();
    }
}

fn walk_value(schema: &Schema, spath: &str, v: &Value, path: &mut Path, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() && !schema.is_atomic(spath) => {
            walk_map(schema, spath, m, path, set)
        }
        Value::Array(a) if schema.ssa_list(spath) != SsaList::Atomic => {
            let ispath = item(spath);
            for (i, it) in a.iter().enumerate() {
                path.push(list_item_element(schema, spath, i, it));
                set.insert(path.clone());
                if let Value::Object(m) = it {
                    if !schema.is_atomic(&ispath) {
                        walk_map(schema, &ispath, m, path, set);
                    }
                }
                path.pop();
            }
        }
        _ => set.insert(path.clone()),
    }
}

/// What changed between two objects (structured-merge-diff `Comparison`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths present only in the new object.
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Paths present only in the old object.
    pub removed: FieldSet,
}

/// Compares `old` with `new`.
pub fn compare(schema: &Schema, old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    compare_maps(
        schema,
        "",
        old.as_object(),
        new.as_object(),
        &mut Vec::new(),
        &mut c,
    );
    c
}

fn compare_maps(
    schema: &Schema,
    spath: &str,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    path: &mut Path,
    c: &mut Comparison,
) {
    let empty = Map::new();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut keys: Vec<&String> = o.keys().collect();
    keys.extend(n.keys().filter(|k| !o.contains_key(k.as_str())));
    for k in keys {
        // managedFields is never tracked (see `managed::strip`); skipping it here
        // lets callers compare the objects as they are instead of copies without it.
        if spath == "metadata" && k == "managedFields" {
            continue;
        }
        path.push(field(k));
        compare_values(
            schema,
            &child(spath, k),
            o.get(k.as_str()),
            n.get(k.as_str()),
            path,
            c,
        );
        path.pop();
    }
}

fn compare_values(
    schema: &Schema,
    spath: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Path,
    c: &mut Comparison,
) {
    let leaf = |c: &mut Comparison, path: &Path| match (old, new) {
        (None, None) => {}
        (None, Some(_)) => c.added.insert(path.clone()),
        (Some(_), None) => c.removed.insert(path.clone()),
        (Some(a), Some(b)) => {
            if !json_eq(a, b) {
                c.modified.insert(path.clone());
            }
        }
    };
    // A null map or list (Go's zero value of a non-omitempty field) is there
    // but empty: its items count as added, the node itself does not.
    let is_map = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    let is_list = |v: Option<&Value>| v.is_none_or(|v| v.is_array() || v.is_null());
    let node = |c: &mut Comparison, path: &Path| match (old, new) {
        (None, Some(v)) if !v.is_null() => c.added.insert(path.clone()),
        (Some(v), None) if !v.is_null() => c.removed.insert(path.clone()),
        _ => {}
    };
    let both_null = old.is_some_and(Value::is_null) && new.is_some_and(Value::is_null);
    if both_null {
        return;
    }
    if is_map(old) && is_map(new) && !schema.is_atomic(spath) {
        node(c, path);
        compare_maps(
            schema,
            spath,
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
            path,
            c,
        );
        return;
    }
    if is_list(old) && is_list(new) && schema.ssa_list(spath) != SsaList::Atomic {
        node(c, path);
        let index = |v: Option<&Value>| -> Vec<(String, Value)> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .map(|(i, it)| (list_item_element(schema, spath, i, it), it.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (oi, ni) = (index(old), index(new));
        let ispath = item(spath);
        let mut seen: Vec<&str> = Vec::new();
        for (pe, ov) in &oi {
            seen.push(pe);
            let nv = ni.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
            path.push(pe.clone());
            compare_item(schema, &ispath, Some(ov), nv, path, c);
            path.pop();
        }
        for (pe, nv) in &ni {
            if seen.contains(&pe.as_str()) {
                continue;
            }
            path.push(pe.clone());
            compare_item(schema, &ispath, None, Some(nv), path, c);
            path.pop();
        }
        return;
    }
    leaf(c, path);
}

fn compare_item(
    schema: &Schema,
    ispath: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Path,
    c: &mut Comparison,
) {
    match (old, new) {
        (None, Some(_)) => c.added.insert(path.clone()),
        (Some(_), None) => c.removed.insert(path.clone()),
        _ => {}
    }
    let both_maps = old.is_none_or(Value::is_object) && new.is_none_or(Value::is_object);
    if both_maps && !schema.is_atomic(ispath) {
        compare_maps(
            schema,
            ispath,
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
            path,
            c,
        );
    } else if let (Some(a), Some(b)) = (old, new) {
        if !json_eq(a, b) {
            c.modified.insert(path.clone());
        }
    }
}

/// JSON equality with numbers compared by value (80 == 80.0).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Removes the value at `p` from `obj`, if present. Returns whether it did.
pub fn remove_path(schema: &Schema, obj: &mut Value, p: &[String]) -> bool {
    remove_at(schema, "", obj, p)
}

fn remove_at(schema: &Schema, spath: &str, v: &mut Value, p: &[String]) -> bool {
    let Some((first, rest)) = p.split_first() else {
        return false;
    };
    if let Some(name) = first.strip_prefix("f:") {
        let Value::Object(m) = v else { return false };
        if rest.is_empty() {
            return m.shift_remove(name).is_some();
        }
        let sub = child(spath, name);
        return m
            .get_mut(name)
            .is_some_and(|c| remove_at(schema, &sub, c, rest));
    }
    // A list item: `spath` is the list's schema path.
    let Value::Array(a) = v else { return false };
    let Some(idx) = a
        .iter()
        .enumerate()
        .position(|(i, it)| &list_item_element(schema, spath, i, it) == first)
    else {
        return false;
    };
    if rest.is_empty() {
        a.remove(idx);
        return true;
    }
    let ispath = item(spath);
    remove_at(schema, &ispath, &mut a[idx], rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::find_kind;
    use serde_json::json;

    fn svc_schema() -> Schema {
        Schema::for_resource(find_kind("", "Service").unwrap())
    }

    #[test]
    fn service_ports_field_set_uses_defaulted_protocol_key() {
        let cfg = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}}});
        let set = to_field_set(&svc_schema(), &cfg);
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                "f:selector": {}
            }})
        );
    }

    #[test]
    fn fields_v1_round_trips_and_prints_paths() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                       "f:spec": {"f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:targetPort": {}}}}});
        let set = FieldSet::from_fields_v1(&v);
        assert_eq!(set.to_fields_v1(), v);
        let printed: Vec<String> = set.iter().map(|p| display(p)).collect();
        assert!(printed.contains(&".spec.ports[port=80,protocol=\"TCP\"].targetPort".to_string()));
        assert!(printed.contains(&".metadata.labels".to_string()));
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"spec": {"ports": [{"port": 80, "targetPort": 80}], "type": "ClusterIP"}});
        let new = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let c = compare(&svc_schema(), &old, &new);
        let shown = |s: &FieldSet| s.iter().map(|p| display(p)).collect::<Vec<_>>();
        assert_eq!(
            shown(&c.modified),
            vec![".spec.ports[port=80,protocol=\"TCP\"].targetPort"]
        );
        assert!(shown(&c.added).contains(&".spec.ports[port=443,protocol=\"TCP\"]".to_string()));
        assert_eq!(shown(&c.removed), vec![".spec.type"]);
    }

    #[test]
    fn remove_path_finds_list_items_by_key() {
        let mut obj = json!({"spec": {"ports": [{"port": 80}, {"port": 443, "protocol": "TCP"}]}});
        let p = vec![
            field("spec"),
            field("ports"),
            "k:{\"port\":443,\"protocol\":\"TCP\"}".to_string(),
        ];
        assert!(remove_path(&svc_schema(), &mut obj, &p));
        assert_eq!(obj, json!({"spec": {"ports": [{"port": 80}]}}));
    }
}
