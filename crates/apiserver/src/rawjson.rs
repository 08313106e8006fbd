//! Stored object bytes → wire bytes without building a `serde_json::Value`.
//!
//! Stored values are the object's compact JSON without `metadata.resourceVersion`
//! (the store's mod revision is the truth, see `objects::encode`). Every watch event
//! used to parse them into a tree, stamp the revision and serialise the tree again
//! (~5 % of the server's CPU when creating Services). Here the revision is spliced
//! in as the last member of `metadata` — where `objects::set_rv` puts it — by a
//! small scanner that only finds where `metadata` ends. The result is byte-for-byte
//! what the tree round trip writes for serde_json's own output; anything unusual
//! (no `metadata` object, a `resourceVersion` already there, malformed bytes) gets
//! `None`, and the caller takes the tree path.

fn skip_ws(b: &[u8], i: &mut usize) {
    while b
        .get(*i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        *i += 1;
    }
}

/// At a `"`: moves past the closing quote and returns the raw contents.
fn string<'a>(b: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    if b.get(*i) != Some(&b'"') {
        return None;
    }
    let start = *i + 1;
    let mut j = start;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => break,
            _ => j += 1,
        }
    }
    *i = j + 1;
    b.get(start..j)
}

/// Moves past one JSON value (containers by bracket depth, strings by escapes).
fn skip_value(b: &[u8], i: &mut usize) -> Option<()> {
    match b.get(*i)? {
        b'"' => string(b, i).map(drop),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(*i)? {
                    b'"' => {
                        string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            *i += 1;
                            return Some(());
                        }
                    }
                    _ => {}
                }
                *i += 1;
            }
        }
        _ => {
            while b
                .get(*i)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                *i += 1;
            }
            Some(())
        }
    }
}

/// Walks the members of the object starting at `b[*i] == '{'`, calling `f` with
/// each raw key while positioned at its value; `f` must move past the value.
/// Returns the index of the closing brace and whether the object had members.
fn members(
    b: &[u8],
    i: &mut usize,
    mut f: impl FnMut(&[u8], &mut usize) -> Option<()>,
) -> Option<(usize, bool)> {
    if b.get(*i) != Some(&b'{') {
        return None;
    }
    *i += 1;
    let mut any = false;
    loop {
        skip_ws(b, i);
        if b.get(*i)? == &b'}' {
            return Some((*i, any));
        }
        if any {
            if b.get(*i)? != &b',' {
                return None;
            }
            *i += 1;
            skip_ws(b, i);
        }
        let key = string(b, i)?;
        skip_ws(b, i);
        if b.get(*i)? != &b':' {
            return None;
        }
        *i += 1;
        skip_ws(b, i);
        f(key, i)?;
        any = true;
    }
}

/// Where `resourceVersion` goes: the index of the closing brace of the top-level
/// `metadata` object, and whether that object has members already.
fn metadata_end(b: &[u8]) -> Option<(usize, bool)> {
    let mut i = 0;
    skip_ws(b, &mut i);
    let mut found = None;
    members(b, &mut i, |key, i| {
        if key != b"metadata" || found.is_some() {
            return skip_value(b, i);
        }
        let end = members(b, i, |k, i| {
            if k == b"resourceVersion" {
                return None;
            }
            skip_value(b, i)
        })?;
        *i = end.0 + 1;
        found = Some(end);
        Some(())
    })?;
    i += 1;
    skip_ws(b, &mut i);
    // Nothing may follow the object.
    found.filter(|_| i == b.len())
}

/// `{"type":KIND,"object":OBJ}` and a newline, where OBJ is the stored `bytes`
/// with `metadata.resourceVersion` = `rev`; `None` if the bytes need the tree path.
pub(crate) fn watch_line(kind: &str, bytes: &[u8], rev: u64) -> Option<Vec<u8>> {
    let (end, nonempty) = metadata_end(bytes)?;
    let rv = rev.to_string();
    let mut out = Vec::with_capacity(bytes.len() + kind.len() + rv.len() + 48);
    out.extend_from_slice(b"{\"type\":");
    // Kinds are fixed ASCII words; serde_json quotes them exactly as it would.
    serde_json::to_writer(&mut out, kind).ok()?;
    out.extend_from_slice(b",\"object\":");
    out.extend_from_slice(bytes.get(..end)?);
    if nonempty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rv.as_bytes());
    out.push(b'"');
    out.extend_from_slice(bytes.get(end..)?);
    out.extend_from_slice(b"}\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The tree path the splice must match byte for byte.
    fn via_tree(kind: &str, bytes: &[u8], rev: u64) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bytes).unwrap();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rev.to_string()));
        }
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": v})).unwrap();
        line.push(b'\n');
        line
    }

    #[test]
    fn matches_the_tree_round_trip() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "b", "labels": {"x\"}{": "y\\\"]"}, "managedFields": [{"fieldsV1": {"f:spec": {".": {}, "f:ports": {"k:{\"port\":80}": {}}}}}]}, "spec": {"ports": [{"port": 80, "targetPort": 8080}], "weight": 1.5, "neg": -3, "e": 1e300, "flag": true, "none": null}}),
            json!({"metadata": {}, "data": {"k": "\u{1F600} caf\u{e9} \n\t"}}),
            json!({"data": [1, [2, {"metadata": 3}]], "metadata": {"name": "late"}}),
            json!({"kind": "Endpoints", "metadata": {"name": "z", "annotations": {"a": "}"}}, "subsets": []}),
        ];
        for (n, o) in objects.iter().enumerate() {
            let bytes = serde_json::to_vec(o).unwrap();
            for kind in ["ADDED", "MODIFIED", "DELETED"] {
                let fast = watch_line(kind, &bytes, 42 + n as u64).expect("splices");
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(via_tree(kind, &bytes, 42 + n as u64)).unwrap()
                );
            }
        }
    }

    #[test]
    fn unusual_bytes_take_the_tree_path() {
        for bytes in [
            &br#"{"kind":"X"}"#[..],
            br#"{"metadata":[]}"#,
            br#"{"metadata":{"resourceVersion":"5"}}"#,
            br#"{"metadata":{"name":"a""#,
            br#"{"metadata":{"name":"a"}"#,
            br#"[{"metadata":{}}]"#,
            b"",
            br#"{"metadata":{}} x"#,
            br#"{"a":"unterminated}"#,
        ] {
            assert_eq!(
                watch_line("ADDED", bytes, 1),
                None,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Whitespace is tolerated.
        let spaced = br#" { "metadata" : { "name" : "a" } , "spec" : { } } "#;
        let line = watch_line("ADDED", spaced, 7).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(v["object"]["metadata"]["name"], "a");
    }
}
