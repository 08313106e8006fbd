//! Kubernetes `Status` errors and field errors, rendered exactly as kube-apiserver does.
//!
//! kubectl rebuilds its error text from `details.causes`, so the `message`,
//! `field` and `reason` of each cause must match Kubernetes to the letter.

use serde_json::{json, Value};

/// The kind of a field error; maps to a `details.causes[].reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `Invalid value: <v>: <detail>` (FieldValueInvalid).
    Invalid,
    /// `Required value` (FieldValueRequired).
    Required,
    /// `Duplicate value: <v>` (FieldValueDuplicate).
    Duplicate,
    /// `Forbidden: <detail>` (FieldValueForbidden).
    Forbidden,
    /// `Unsupported value: <v>: supported values: ...` (FieldValueNotSupported).
    NotSupported,
    /// `Too long: <detail>` (FieldValueTooLong).
    TooLong,
    /// `Too many: <detail>` (FieldValueTooMany).
    TooMany,
    /// `Internal error: <detail>` (InternalError).
    Internal,
    /// `Invalid value: <v>: <detail>` (FieldValueTypeInvalid).
    TypeInvalid,
}

impl ErrorType {
    /// The `reason` string of a Status cause.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }
}

/// One validation failure on one field, like Go's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.ports[0].nodePort`.
    pub field: String,
    /// What kind of failure.
    pub error_type: ErrorType,
    /// The offending value already formatted as Go's `%#v`/`%d` would print it
    /// (`40000`, `"My_Svc"`, `[]string{"1.1.1.1"}`); `None` where the message
    /// carries no value.
    pub bad_value: Option<String>,
    /// Human detail after the value; may be empty.
    pub detail: String,
}

impl FieldError {
    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Invalid,
            bad_value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// `Required value` (with an optional detail).
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Required,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Forbidden,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Duplicate,
            bad_value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<String>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self {
            field: field.into(),
            error_type: ErrorType::NotSupported,
            bad_value: Some(value.into()),
            detail,
        }
    }

    /// The cause message: everything after `field: ` (Go's `ErrorBody`).
    pub fn body(&self) -> String {
        let mut s = self.error_type.label().to_string();
        match self.error_type {
            ErrorType::Required
            | ErrorType::Forbidden
            | ErrorType::TooLong
            | ErrorType::Internal => {}
            _ => {
                if let Some(v) = &self.bad_value {
                    s.push_str(": ");
                    s.push_str(v);
                }
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Formats a Go string value as `%#v`/`%q` would: `"text"`.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// An API error returned to clients as a `meta.k8s.io/v1 Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Invalid`, ...).
    pub reason: String,
    /// Human message, printed by kubectl.
    pub message: String,
    /// `details` object, if any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: String, details: Option<Value>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message,
            details,
        }
    }

    fn details(name: &str, group: &str, kind: &str) -> Value {
        let mut d = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        d
    }

    /// 404: `services "x" not found`. `resource` is the plural name, `group` may be empty.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualify(group, resource);
        Self::new(
            404,
            "NotFound",
            format!("{qualified} \"{name}\" not found"),
            Some(Self::details(name, group, resource)),
        )
    }

    /// 409: `services "x" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualify(group, resource);
        Self::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
            Some(Self::details(name, group, resource)),
        )
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualify(group, resource);
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            Some(Self::details(name, group, resource)),
        )
    }

    /// 409 Conflict with a custom reason text (e.g. UID precondition).
    pub fn conflict_msg(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = qualify(group, resource);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified} \"{name}\": {why}"),
            Some(Self::details(name, group, resource)),
        )
    }

    /// 422 Invalid: `Service "x" is invalid: <causes>`.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let joined = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(
                |e| json!({"reason": e.error_type.reason(), "message": e.body(), "field": e.field}),
            )
            .collect();
        let mut details = Self::details(name, group, kind);
        details["causes"] = Value::Array(causes);
        Self::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
            Some(details),
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), None)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".to_string(), None)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message.into(), None)
    }

    /// 410 Expired: `too old resource version: 5 (100)`.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message.into(), None)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type}"),
            None,
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
            None,
        )
    }

    /// 409 with `FieldManagerConflict` causes (server-side apply).
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        Self::new(409, "Conflict", message, Some(json!({ "causes": causes })))
    }

    /// 403 Forbidden with an explicit message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message.into(), None)
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // kube-apiserver leaves an empty reason out, and kubectl then prints
        // `Error from server: ...` instead of `Error from server (): ...`.
        if self.reason.is_empty() {
            if let Some(m) = s.as_object_mut() {
                m.remove("reason");
            }
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn qualify(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A `Status` object reporting success (e.g. for deletes of collections).
pub fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_single_cause_matches_kubernetes() {
        let e = FieldError::invalid(
            "spec.ports[0].nodePort",
            "40000",
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        );
        let err = ApiError::invalid("", "Service", "x", &[e]);
        assert_eq!(
            err.message,
            "Service \"x\" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        let st = err.to_status();
        assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            st["details"]["causes"][0]["field"],
            "spec.ports[0].nodePort"
        );
        assert_eq!(st["code"], 422);
    }

    #[test]
    fn required_and_forbidden_bodies() {
        assert_eq!(
            FieldError::required("spec.ports[1].name", "").to_string(),
            "spec.ports[1].name: Required value"
        );
        assert_eq!(
            FieldError::forbidden(
                "spec.ports[0].nodePort",
                "may not be used when `type` is 'ClusterIP'"
            )
            .to_string(),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        );
        assert_eq!(
            FieldError::not_supported("spec.type", quote("Foo"), &["ClusterIP", "NodePort"]).body(),
            "Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"NodePort\""
        );
    }

    #[test]
    fn not_found_and_conflict_messages() {
        assert_eq!(
            ApiError::not_found("", "services", "x").message,
            "services \"x\" not found"
        );
        assert_eq!(
            ApiError::not_found("apps", "deployments", "web").message,
            "deployments.apps \"web\" not found"
        );
        assert_eq!(
            ApiError::conflict("", "services", "x").message,
            "Operation cannot be fulfilled on services \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn multiple_causes_are_bracketed() {
        let errs = [
            FieldError::required("spec.ports[1].name", ""),
            FieldError::invalid(
                "spec.ports[0].port",
                "0",
                "must be between 1 and 65535, inclusive",
            ),
        ];
        let err = ApiError::invalid("", "Service", "x", &errs);
        assert_eq!(
            err.message,
            "Service \"x\" is invalid: [spec.ports[1].name: Required value, spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive]"
        );
    }
}
