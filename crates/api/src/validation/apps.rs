//! Deployment and ReplicaSet validation (k/k `pkg/apis/apps/validation`),
//! including the selector/template-labels match and selector immutability.

use serde_json::Value;

use super::meta::{validate_label_selector, validate_object_meta, validate_object_meta_update};
use super::names::{self, NameRule};
use super::pod::validate_pod_template;
use super::{get, get_i64, get_obj, get_str, invalid_int, nonnegative};
use crate::gofmt;
use crate::selector::matches_label_selector;
use crate::status::FieldError;

/// Validates a Deployment create or update.
pub fn validate_deployment(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = match old {
        None => validate_object_meta(obj, true, NameRule::Subdomain),
        Some(old) => validate_object_meta_update(obj, old),
    };
    replicas_and_selector(&mut out, obj);
    strategy(&mut out, obj);
    let min_ready = get_i64(obj, &["spec", "minReadySeconds"]);
    nonnegative(&mut out, "spec.minReadySeconds", min_ready);
    if let Some(r) = get(obj, &["spec", "revisionHistoryLimit"]).and_then(Value::as_i64) {
        nonnegative(&mut out, "spec.revisionHistoryLimit", r);
    }
    if let Some(p) = get(obj, &["spec", "progressDeadlineSeconds"]).and_then(Value::as_i64) {
        nonnegative(&mut out, "spec.progressDeadlineSeconds", p);
        if p <= min_ready {
            out.push(invalid_int(
                "spec.progressDeadlineSeconds",
                p,
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old {
        selector_immutable(&mut out, obj, old);
    }
    out
}

/// Validates a ReplicaSet create or update.
pub fn validate_replica_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut out = match old {
        None => validate_object_meta(obj, true, NameRule::Subdomain),
        Some(old) => validate_object_meta_update(obj, old),
    };
    nonnegative(
        &mut out,
        "spec.replicas",
        get_i64(obj, &["spec", "replicas"]),
    );
    nonnegative(
        &mut out,
        "spec.minReadySeconds",
        get_i64(obj, &["spec", "minReadySeconds"]),
    );
    selector_and_template(&mut out, obj);
    if let Some(old) = old {
        selector_immutable(&mut out, obj, old);
    }
    out
}

fn replicas_and_selector(out: &mut Vec<FieldError>, obj: &Value) {
    nonnegative(out, "spec.replicas", get_i64(obj, &["spec", "replicas"]));
    selector_and_template(out, obj);
}

/// Selector presence and syntax, then `ValidatePodTemplateSpecForReplicaSet`.
fn selector_and_template(out: &mut Vec<FieldError>, obj: &Value) {
    let sel = get(obj, &["spec", "selector"]);
    match sel {
        None => out.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            validate_label_selector(out, sel, "spec.selector");
            let n = get_obj(sel, &["matchLabels"]).map_or(0, |m| m.len())
                + super::get_arr(sel, &["matchExpressions"]).len();
            if n == 0 {
                out.push(FieldError::invalid(
                    "spec.selector",
                    gofmt::label_selector(Some(sel)),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    let template = get(obj, &["spec", "template"]);
    let Some(template) = template else {
        out.push(FieldError::required("spec.template", ""));
        return;
    };
    let labels = get_obj(template, &["metadata", "labels"]);
    let empty = serde_json::Map::new();
    // A missing selector matches nothing (labels.Nothing()), an empty one everything.
    let (is_empty_selector, matches) = match sel {
        None => (false, false),
        Some(sel) => {
            let n = get_obj(sel, &["matchLabels"]).map_or(0, |m| m.len())
                + super::get_arr(sel, &["matchExpressions"]).len();
            match matches_label_selector(sel, labels.unwrap_or(&empty)) {
                Ok(m) => (n == 0, m),
                Err(_) => {
                    out.push(FieldError::invalid(
                        "spec.selector",
                        gofmt::label_selector(Some(sel)),
                        "invalid label selector",
                    ));
                    (true, true)
                }
            }
        }
    };
    if !is_empty_selector && !matches {
        out.push(FieldError::invalid(
            "spec.template.metadata.labels",
            gofmt::string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    validate_pod_template(out, template, "spec.template");
    let rp = get_str(template, &["spec", "restartPolicy"]);
    if rp != "Always" {
        out.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            gofmt::quote(rp),
            &["Always"],
        ));
    }
    if get(template, &["spec", "activeDeadlineSeconds"]).is_some() {
        out.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

fn strategy(out: &mut Vec<FieldError>, obj: &Value) {
    let ty = get_str(obj, &["spec", "strategy", "type"]);
    let ru = get(obj, &["spec", "strategy", "rollingUpdate"]);
    match ty {
        "Recreate" => {
            if ru.is_some() {
                out.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => out.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => rolling_update(out, ru),
        },
        other => {
            let ru_shown = if ru.is_some() {
                "(*apps.RollingUpdateDeployment)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            out.push(FieldError::not_supported(
                "spec.strategy",
                format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{ru_shown}}}",
                    gofmt::quote(other)
                ),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

/// The integer value of an int-or-percent (percent strings read as their number).
fn int_or_percent(v: Option<&Value>) -> (i64, bool) {
    match v {
        Some(Value::String(s)) => (
            s.trim_end_matches('%').parse().unwrap_or(0),
            s.ends_with('%'),
        ),
        Some(v) => (v.as_i64().unwrap_or(0), false),
        None => (0, false),
    }
}

fn positive_int_or_percent(out: &mut Vec<FieldError>, v: Option<&Value>, field: &str) {
    match v {
        Some(Value::String(s)) => {
            for m in names::is_valid_percent(s) {
                out.push(FieldError::invalid(field, gofmt::int_or_string(v), m));
            }
        }
        Some(n) => nonnegative(out, field, n.as_i64().unwrap_or(0)),
        None => {}
    }
}

fn rolling_update(out: &mut Vec<FieldError>, ru: &Value) {
    let mu = get(ru, &["maxUnavailable"]);
    let ms = get(ru, &["maxSurge"]);
    positive_int_or_percent(out, mu, "spec.strategy.rollingUpdate.maxUnavailable");
    positive_int_or_percent(out, ms, "spec.strategy.rollingUpdate.maxSurge");
    if int_or_percent(mu).0 == 0 && int_or_percent(ms).0 == 0 {
        out.push(FieldError::invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            gofmt::int_or_string(mu),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    let (value, is_percent) = int_or_percent(mu);
    if is_percent && value > 100 {
        out.push(FieldError::invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            gofmt::int_or_string(mu),
            "must not be greater than 100%",
        ));
    }
}

/// apps/v1 forbids changing `spec.selector` after creation.
fn selector_immutable(out: &mut Vec<FieldError>, obj: &Value, old: &Value) {
    let new_sel = get(obj, &["spec", "selector"]);
    // Semantic equality: nil and empty lists/maps compare equal.
    if new_sel.map(semantic) != get(old, &["spec", "selector"]).map(semantic) {
        out.push(FieldError::invalid(
            "spec.selector",
            gofmt::label_selector(new_sel),
            "field is immutable",
        ));
    }
}

/// Drops nulls and empty lists/maps, as `apiequality.Semantic` ignores them.
fn semantic(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), semantic(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}
