//! Patching: strategic merge patch, JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), server-side apply and `managedFields` bookkeeping, as pure
//! functions over JSON objects. The API server picks one by Content-Type.
//!
//! How a write uses this module (kube-apiserver's order):
//! - create/update/patch: compute the new object (for PATCH with
//!   [`strategic_merge`], [`merge`] or [`json_patch()`] against the live object),
//!   default it, then [`record_update`] with the live object (None on create)
//!   and the `fieldManager` (kube's default is the User-Agent up to the first
//!   `/`); writes through `status`/`scale` use [`record_update_subresource`].
//! - apply: [`server_side_apply`] with the live object (None creates), then
//!   default and validate the result; a conflict becomes a 409 through
//!   [`ApplyError::to_api_error`].
//!
//! Merge keys and list types come from one table, [`merge_keys`].

pub mod apply;
pub mod fieldpath;
pub mod managed;
pub mod merge_keys;
pub mod strategic;

use serde_json::{json, Value};

use crate::resource::ResourceInfo;
use crate::status::ApiError;

pub use managed::{record_update, record_update_subresource};
pub use merge_keys::Schema;

/// A patch that could not be applied; maps to the Status kube-apiserver sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest (malformed patch document or directive).
    #[error("{0}")]
    BadRequest(String),
    /// 422 with the server message as an `UnexpectedServerResponse` cause
    /// (JSON patch operations that do not apply, lists of lists in SMP).
    #[error("{0}")]
    Unprocessable(String),
    /// An error kube-apiserver passes through unconverted: 500 with no reason.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The Status error kube-apiserver returns for this failure.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            PatchError::BadRequest(m) => ApiError::bad_request(m.clone()),
            // errors.NewGenericServerResponse(422, ...).
            PatchError::Unprocessable(m) => ApiError {
                code: 422,
                reason: "Invalid".to_string(),
                message: "the server rejected our request due to an error in our request"
                    .to_string(),
                details: Some(
                    json!({"causes": [{"reason": "UnexpectedServerResponse", "message": m}]}),
                ),
            },
            // ErrorToAPIStatus of a plain error: code 500, reason Unknown ("").
            PatchError::Internal(m) => ApiError {
                code: 500,
                reason: String::new(),
                message: m.clone(),
                details: None,
            },
        }
    }
}

/// One field that another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as kube-apiserver prints it: `"kubectl"` for an applier,
    /// `"kubectl-client-side-apply" using v1` for an updater.
    pub manager: String,
    /// The field path as structured-merge-diff prints it:
    /// `.spec.ports[port=80,protocol="TCP"].targetPort`.
    pub field: String,
}

/// A server-side apply that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change (and `force` was false).
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<Conflict>),
    /// The applied configuration is not usable (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
}

/// kube-apiserver `getConflictMessage`.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl ApplyError {
    /// The Status error kube-apiserver returns: 409 Conflict with one
    /// `FieldManagerConflict` cause per field (`errors.NewApplyConflict`).
    pub fn to_api_error(&self, _res: &ResourceInfo, _name: &str) -> ApiError {
        match self {
            ApplyError::Conflict(conflicts) => {
                let causes = conflicts
                    .iter()
                    .map(|c| {
                        json!({
                            "reason": "FieldManagerConflict",
                            "message": format!("conflict with {}", c.manager),
                            "field": c.field,
                        })
                    })
                    .collect();
                ApiError::apply_conflict(conflict_message(conflicts), causes)
            }
            ApplyError::BadRequest(m) => ApiError::bad_request(m.clone()),
        }
    }
}

/// `application/strategic-merge-patch+json` against the current object.
pub fn strategic_merge(
    res: &ResourceInfo,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    strategic::apply(&Schema::for_resource(res), original, patch)
}

/// `application/merge-patch+json` (RFC 7386).
pub fn merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    // jsonpatch.MergePatch rejects documents that are not JSON objects.
    if !patch.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".to_string()));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

/// `application/json-patch+json` (RFC 6902).
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    Ok(doc)
}

/// `application/apply-patch+yaml` (the body is JSON from kubectl): server-side
/// apply of `config` by `manager`. `live` is None when the object does not
/// exist yet (apply creates it). Returns the new object with
/// `metadata.managedFields` updated, or [`ApplyError::Conflict`] listing the
/// conflicting fields and their owners (unless `force`).
pub fn server_side_apply(
    res: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    apply::server_side_apply(res, live, config, manager, force, now)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ssa_tests;
