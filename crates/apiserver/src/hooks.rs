//! Seams into `portico_api` (defaulting, validation, selectors, patching, tables).
//!
//! Every call the server makes into the pure API model goes through here, so the
//! handlers depend on one small surface, and Status mapping of the model's errors
//! happens in one place. Everything called here is pure.

use portico_api::resource::ResourceInfo;
use portico_api::selector::{FieldSelector, LabelSelector};
use portico_api::status::{ApiError, FieldError};
use portico_api::{defaults, patch, strict, table, validation};
#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};

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
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies defaults to an object being created or updated (idempotent).
pub(crate) fn default_object(info: &ResourceInfo, obj: &mut Value) {
    defaults::apply(info, obj);
}

/// Update fix-ups before validation (e.g. a Service keeps allocated values the client left out).
pub(crate) fn prepare_update(info: &ResourceInfo, obj: &mut Value, old: &Value) {
    defaults::prepare_update(info, obj, old);
}

/// Validates an object (`old` set on update). Returns Kubernetes' field errors.
pub(crate) fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    validation::validate(info, obj, old)
}

/// Validates a write to the `status` subresource.
pub(crate) fn validate_status(info: &ResourceInfo, obj: &Value, old: &Value) -> Vec<FieldError> {
    validation::validate_status(info, obj, old)
}

/// With `fieldValidation=Strict`: rejects unknown or duplicate fields in the raw body (400).
pub(crate) fn strict_check(info: &ResourceInfo, body: &[u8]) -> Result<(), ApiError> {
    let errors = strict::strict_errors(info, body).map_err(ApiError::bad_request)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(strict::strict_decoding_message(
            info, &errors,
        )))
    }
}

/// Rejects an object that does not decode into its kind's type (wrong JSON types), 400.
pub(crate) fn decode_check(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    match strict::decode_error(info, obj) {
        Some(msg) => Err(ApiError::bad_request(msg)),
        None => Ok(()),
    }
}

/// Applies a JSON, merge or strategic merge patch to the current object.
pub(crate) fn apply_patch(
    info: &ResourceInfo,
    kind: PatchKind,
    current: &Value,
    body: &Value,
) -> Result<Value, ApiError> {
    let r = match kind {
        PatchKind::Json => patch::json_patch(current, body),
        PatchKind::Merge => patch::merge(current, body),
        PatchKind::Strategic => patch::strategic_merge(info, current, body),
        PatchKind::Apply => {
            return Err(ApiError::internal("apply is handled by server_side_apply"))
        }
    };
    r.map_err(|e| e.to_api_error())
}

/// Server-side apply of `config` by `manager` over `live` (None: create).
pub(crate) fn server_side_apply(
    info: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let name = config["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    patch::server_side_apply(info, live, config, manager, force, now)
        .map_err(|e| e.to_api_error(info, &name))
}

/// Records `managedFields` for a non-apply write.
pub(crate) fn record_update(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    now: &str,
) {
    patch::record_update(info, old, new, manager, now);
}

/// Records `managedFields` for a write through a subresource (`status`, `scale`).
pub(crate) fn record_update_subresource(
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    patch::record_update_subresource(info, Some(old), new, manager, subresource, now);
}

/// A `meta.k8s.io/v1` Table of objects with kubectl's columns.
pub(crate) fn table(
    info: &ResourceInfo,
    objects: &[Value],
    include_object: Option<&str>,
    list_meta: Value,
) -> Value {
    table::to_table(
        info,
        objects,
        jiff::Timestamp::now(),
        table::IncludeObject::from_query(include_object),
        list_meta,
    )
}

/// A parsed label + field selector pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selectors {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` query values (400 with Kubernetes' text).
    pub(crate) fn parse(
        info: &ResourceInfo,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = labels
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .filter(|l| !l.is_empty());
        let fields = fields
            .map(|f| FieldSelector::parse(info, f))
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .filter(|f| !f.is_empty());
        Ok(Self { labels, fields })
    }

    /// Whether nothing is selected on (every object matches).
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether `obj` matches both selectors.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let empty = Map::new();
        let labels = obj["metadata"]["labels"].as_object().unwrap_or(&empty);
        self.labels.as_ref().is_none_or(|l| l.matches(labels))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_api::resource::find;

    #[test]
    fn label_and_field_selectors() {
        let pods = find("", "v1", "pods").unwrap();
        let obj = json!({"metadata": {"name": "a", "namespace": "default", "labels": {"app": "nginx", "tier": "web"}}, "spec": {"nodeName": "n1"}});
        let m = |l: &str, f: &str| {
            Selectors::parse(pods, Some(l), Some(f))
                .unwrap()
                .matches(&obj)
        };
        assert!(m("app=nginx", ""));
        assert!(m("app==nginx,tier", ""));
        assert!(!m("app!=nginx", ""));
        assert!(m("tier in (web, db)", ""));
        assert!(!m("tier notin (web)", ""));
        assert!(m("!missing", "metadata.name=a"));
        assert!(m("", "spec.nodeName=n1,metadata.namespace!=kube-system"));
        assert!(!m("", "spec.nodeName="));
        assert_eq!(
            Selectors::parse(pods, None, Some("spec.bogus=1"))
                .unwrap_err()
                .message,
            "field label not supported: spec.bogus"
        );
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
    }
}
