//! A minimal `/openapi/v2` document in gnostic's protobuf encoding
//! (`openapi.v2.Document`), for kubectl 1.27 and 1.28.
//!
//! Those versions check `fieldValidation` support against OpenAPI v2 (v3 from
//! 1.29 on) and abort `kubectl apply` when `/openapi/v2` is missing. They read
//! only the PATCH operations: `x-kubernetes-group-version-kind` (as YAML), the
//! query parameters and `consumes`. The operations are derived from the v3
//! documents and, like them, do not list strategic merge patch, so kubectl
//! computes apply patches from its compiled-in types. No definitions are
//! included (`kubectl explain` in those versions finds nothing).

use serde_json::{Map, Value};

/// Content-Type of the protobuf answer. kubectl asks with
/// `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but
/// Go's `mime.ParseMediaType` rejects the `@`, so kube-openapi answers with
/// this spelling (`.v1.0`), and so must we.
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Protobuf message builder: just the wire types this document needs.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn bytes(mut self, field: u32, data: &[u8]) -> Self {
        self.varint(u64::from(field << 3 | 2));
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
        self
    }

    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    fn msg(self, field: u32, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }

    fn boolean(mut self, field: u32, b: bool) -> Self {
        if b {
            self.varint(u64::from(field << 3));
            self.varint(1);
        }
        self
    }
}

/// `ParametersItem{parameter: Parameter{non_body_parameter:
/// NonBodyParameter{query_parameter_sub_schema: ...}}}`.
fn query_param(p: &Value) -> Msg {
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    let ty = p
        .pointer("/schema/type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let sub = Msg::default()
        .str(2, "query")
        .str(3, s("description"))
        .str(4, s("name"))
        .str(6, ty)
        .boolean(20, true);
    let non_body = Msg::default().msg(3, sub);
    let parameter = Msg::default().msg(2, non_body);
    Msg::default().msg(1, parameter)
}

/// `NamedAny{name: "x-kubernetes-group-version-kind", value: Any{yaml}}`.
fn gvk_extension(gvk: &Value) -> Msg {
    let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("");
    let yaml = format!(
        "group: \"{}\"\nkind: {}\nversion: {}\n",
        s("group"),
        s("kind"),
        s("version")
    );
    let any = Msg::default().str(2, &yaml);
    Msg::default()
        .str(1, "x-kubernetes-group-version-kind")
        .msg(2, any)
}

/// An `Operation` from a v3 PATCH operation.
fn patch_operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    if let Some(id) = op.get("operationId").and_then(Value::as_str) {
        m = m.str(5, id);
    }
    m = m.str(6, "application/json").str(6, "application/yaml");
    if let Some(content) = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
    {
        for ct in content.keys() {
            m = m.str(7, ct);
        }
    }
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("in").and_then(Value::as_str) == Some("query") {
            m = m.msg(8, query_param(p));
        }
    }
    if let Some(gvk) = op.get("x-kubernetes-group-version-kind") {
        m = m.msg(13, gvk_extension(gvk));
    }
    m
}

/// Encodes the PATCH operations of the given v3 documents' `paths`.
pub(crate) fn encode(v3_paths: &[&Map<String, Value>], version: &str) -> Vec<u8> {
    let mut paths = Msg::default();
    for doc_paths in v3_paths {
        for (path, item) in doc_paths.iter() {
            let Some(op) = item.get("patch") else {
                continue;
            };
            let path_item = Msg::default().msg(8, patch_operation(op));
            let named = Msg::default().str(1, path).msg(2, path_item);
            paths = paths.msg(2, named);
        }
    }
    let info = Msg::default().str(1, "Kubernetes").str(2, version);
    Msg::default().str(1, "2.0").msg(2, info).msg(8, paths).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_encode_like_protobuf() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, vec![0xac, 0x02]);
        assert_eq!(Msg::default().str(1, "2.0").0, b"\x0a\x032.0");
        assert_eq!(Msg::default().boolean(20, true).0, vec![0xa0, 0x01, 0x01]);
        assert!(Msg::default().boolean(20, false).0.is_empty());
        assert_eq!(
            Msg::default().msg(2, Msg::default().str(1, "a")).0,
            b"\x12\x03\x0a\x01a"
        );
    }
}
