//! Helpers for validation tests: run defaulting and validation the way the
//! API server does and render the message kubectl would print.

use serde_json::Value;

use crate::defaults;
use crate::resource::find_kind;
use crate::status::{ApiError, FieldError};

pub(crate) fn errors(
    group: &str,
    kind: &str,
    mut obj: Value,
    old: Option<Value>,
) -> Vec<FieldError> {
    let res = find_kind(group, kind).expect("kind is served");
    defaults::apply(res, &mut obj);
    let old = old.map(|mut o| {
        defaults::apply(res, &mut o);
        o
    });
    if let Some(o) = &old {
        defaults::prepare_update(res, &mut obj, o);
    }
    super::validate(res, &obj, old.as_ref())
}

/// The `message` of the 422 Status (what `kubectl` prints after "The ").
pub(crate) fn message(group: &str, kind: &str, obj: Value, old: Option<Value>) -> String {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let errs = errors(group, kind, obj, old);
    if errs.is_empty() {
        return "valid".to_string();
    }
    ApiError::invalid(group, kind, &name, &errs).message
}
