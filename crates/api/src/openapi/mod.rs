//! OpenAPI v3 documents (`/openapi/v3` and one document per group-version),
//! generated from `RESOURCES` and the k8s-openapi types.
//!
//! What kubectl reads: the PATCH operation of each kind must carry
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter
//! (cli-runtime `query_param_verifier_v3.go`), else `kubectl apply` with its
//! default `--validate=strict` falls back to client-side validation; and
//! `components.schemas` with `x-kubernetes-group-version-kind` feed
//! `kubectl explain`.
//!
//! `/openapi/v2` ([`v2_protobuf`]) is a minimal protobuf document with the
//! PATCH operations only: kubectl 1.27/1.28 verify `fieldValidation` there and
//! abort `apply` without it; 1.29+ ask for it only to compute apply patches
//! when v3 does not offer strategic merge patch, and then use their
//! compiled-in types because v2 does not offer it either.

mod paths;
mod schemas;
mod v2;

use crate::resource::{group_versions, ResourceInfo, RESOURCES};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

pub use paths::PATCH_CONTENT_TYPES;
pub use v2::V2_PROTOBUF_CONTENT_TYPE;

/// One generated group-version document with its index entry.
struct GvDoc {
    /// `api/v1`, `apis/apps/v1`.
    path: String,
    doc: Value,
    hash: String,
}

/// The `/openapi/v3` path of a group-version: `api/v1` or `apis/{g}/{v}`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// 64-bit FNV-1a over two seeds, as 32 uppercase hex digits: a stable
/// content hash for the `?hash=` cache key (collisions only cost a refetch).
fn content_hash(bytes: &[u8]) -> String {
    fn fnv(seed: u64, bytes: &[u8]) -> u64 {
        bytes.iter().fold(seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
    format!(
        "{:016X}{:016X}",
        fnv(0xcbf2_9ce4_8422_2325, bytes),
        fnv(0x6c62_272e_07bb_0142, bytes)
    )
}

fn build_document(group: &str, version: &str) -> Value {
    let resources: Vec<&'static ResourceInfo> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let generated = schemas::generate(&resources);
    let mut paths = Map::new();
    for (r, k) in &generated.kinds {
        paths::resource_paths(r, k, &mut paths);
    }
    paths.sort_keys();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "components": {
            "schemas": generated.schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header"
                }
            }
        }
    })
}

fn documents() -> &'static [GvDoc] {
    static DOCS: OnceLock<Vec<GvDoc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let doc = build_document(g, v);
                let hash = content_hash(doc.to_string().as_bytes());
                GvDoc {
                    path: gv_path(g, v),
                    doc,
                    hash,
                }
            })
            .collect()
    })
}

/// `GET /openapi/v3`: the index of group-version documents with content hashes.
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|d| {
            (
                d.path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path, d.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// `GET /openapi/v3/{gv_path}`; accepts `api/v1`, `v3/api/v1` or
/// `/openapi/v3/apis/apps/v1`, with or without a `?hash=` query. `None` if
/// not served.
pub fn v3_document(gv_path: &str) -> Option<Value> {
    find_doc(gv_path).map(|d| d.doc.clone())
}

fn find_doc(gv_path: &str) -> Option<&'static GvDoc> {
    let path = gv_path.split('?').next().unwrap_or(gv_path);
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("openapi/").unwrap_or(path);
    let path = path.strip_prefix("v3/").unwrap_or(path);
    let path = path.trim_end_matches('/');
    documents().iter().find(|d| d.path == path)
}

/// The content hash of a document (`None` if not served); the server answers
/// a request whose `?hash=` matches with `Cache-Control: public, immutable`.
pub fn v3_hash(gv_path: &str) -> Option<String> {
    find_doc(gv_path).map(|d| d.hash.clone())
}

/// `GET /openapi/v2` (Accept: protobuf): the PATCH operations of every
/// served kind, gnostic-protobuf encoded. Serve with
/// [`V2_PROTOBUF_CONTENT_TYPE`].
pub fn v2_protobuf() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        let paths: Vec<&Map<String, Value>> = documents()
            .iter()
            .filter_map(|d| d.doc.get("paths").and_then(Value::as_object))
            .collect();
        v2::encode(
            &paths,
            &format!("v1.{}.0", crate::discovery::KUBERNETES_MINOR),
        )
    })
}

#[cfg(test)]
mod tests;
