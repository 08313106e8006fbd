//! `metadata` validation: `ValidateObjectMeta` on create and
//! `ValidateObjectMetaUpdate` on update, plus label, annotation and label
//! selector checks shared by every kind.

use serde_json::{Map, Value};

use super::names::{self, NameRule};
use super::{get, get_arr, get_i64, get_obj, get_str, invalid_str, nonnegative, str_list};
use crate::gofmt;
use crate::status::FieldError;

/// Total size limit of annotations (keys plus values), 256 KiB.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Finalizer names Kubernetes knows without a domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// `ValidateLabels`: keys are qualified names, values label values.
pub fn validate_labels(
    out: &mut Vec<FieldError>,
    labels: Option<&Map<String, Value>>,
    field: &str,
) {
    let Some(labels) = labels else { return };
    for (k, v) in labels {
        validate_label_name(out, k, field);
        let v = v.as_str().unwrap_or("");
        for m in names::is_valid_label_value(v) {
            out.push(invalid_str(field, v, m));
        }
    }
}

/// `ValidateLabelName`.
pub fn validate_label_name(out: &mut Vec<FieldError>, key: &str, field: &str) {
    for m in names::is_qualified_name(key) {
        out.push(invalid_str(field, key, m));
    }
}

/// `ValidateAnnotations`: keys are case-insensitive qualified names, total size capped.
pub fn validate_annotations(
    out: &mut Vec<FieldError>,
    ann: Option<&Map<String, Value>>,
    field: &str,
) {
    let Some(ann) = ann else { return };
    let mut total = 0usize;
    for (k, v) in ann {
        for m in names::is_qualified_name(&k.to_lowercase()) {
            out.push(invalid_str(field, k, m));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        out.push(FieldError {
            field: field.to_string(),
            error_type: crate::status::ErrorType::TooLong,
            bad_value: None,
            detail: format!("must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
}

fn validate_owner_references(out: &mut Vec<FieldError>, refs: &[Value], field: &str) {
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = get_str(r, &["apiVersion"]);
        let version = api_version.rsplit('/').next().unwrap_or("");
        let kind = get_str(r, &["kind"]);
        if version.is_empty() {
            out.push(invalid_str(
                format!("{field}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            out.push(invalid_str(
                format!("{field}.kind"),
                kind,
                "must not be empty",
            ));
        }
        let name = get_str(r, &["name"]);
        if name.is_empty() {
            out.push(invalid_str(
                format!("{field}.name"),
                name,
                "must not be empty",
            ));
        }
        let uid = get_str(r, &["uid"]);
        if uid.is_empty() {
            out.push(invalid_str(
                format!("{field}.uid"),
                uid,
                "must not be empty",
            ));
        }
        if api_version == "v1" && kind == "Event" {
            out.push(FieldError::invalid(
                field,
                "v1.OwnerReference{...}",
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if get(r, &["controller"]).and_then(Value::as_bool) == Some(true) {
            let cur = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => out.push(FieldError::invalid(
                    field,
                    "[]v1.OwnerReference{...}",
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"
                    ),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
}

fn validate_finalizers(out: &mut Vec<FieldError>, finalizers: &[String], field: &str) {
    for f in finalizers {
        for m in names::is_qualified_name(f) {
            out.push(invalid_str(field, f, m));
        }
    }
    let orphan = finalizers.iter().any(|f| f == "orphan");
    let foreground = finalizers.iter().any(|f| f == "foregroundDeletion");
    if orphan && foreground {
        out.push(FieldError::invalid(
            field,
            gofmt::string_slice(Some(finalizers)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    // core's ValidateObjectMeta adds the "standard or fully qualified" rule.
    for f in finalizers {
        if !f.contains('/')
            && names::is_qualified_name(f).is_empty()
            && !STANDARD_FINALIZERS.contains(&f.as_str())
        {
            out.push(invalid_str(
                field,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// `ValidateObjectMeta` for a create (and the create-style part of updates
/// that Kubernetes re-runs, e.g. for Services).
pub fn validate_object_meta(obj: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut out = Vec::new();
    let generate_name = get_str(obj, &["metadata", "generateName"]);
    if !generate_name.is_empty() {
        for m in names::name_errors(rule, generate_name, true) {
            out.push(invalid_str("metadata.generateName", generate_name, m));
        }
    }
    let name = get_str(obj, &["metadata", "name"]);
    if name.is_empty() {
        out.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in names::name_errors(rule, name, false) {
            out.push(invalid_str("metadata.name", name, m));
        }
    }
    let namespace = get_str(obj, &["metadata", "namespace"]);
    if namespaced {
        if namespace.is_empty() {
            out.push(FieldError::required("metadata.namespace", ""));
        } else {
            for m in names::is_dns1123_label(namespace) {
                out.push(invalid_str("metadata.namespace", namespace, m));
            }
        }
    } else if !namespace.is_empty() {
        out.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    nonnegative(
        &mut out,
        "metadata.generation",
        get_i64(obj, &["metadata", "generation"]),
    );
    validate_labels_annotations_owners(&mut out, obj);
    validate_finalizers(
        &mut out,
        &str_list(get_arr(obj, &["metadata", "finalizers"])),
        "metadata.finalizers",
    );
    out
}

/// Go's `metav1.Time.String()` for an RFC 3339 timestamp.
fn go_time(v: Option<&Value>) -> String {
    let Some(s) = v.and_then(Value::as_str) else {
        return "null".to_string();
    };
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        Err(_) => gofmt::quote(s),
    }
}

/// `ValidateObjectMetaUpdate`.
pub fn validate_object_meta_update(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    if get(old, &["metadata", "deletionTimestamp"]).is_some() {
        let old_f = str_list(get_arr(old, &["metadata", "finalizers"]));
        let extra: Vec<String> = str_list(get_arr(obj, &["metadata", "finalizers"]))
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        if !extra.is_empty() {
            let mut sorted = extra.clone();
            sorted.sort();
            out.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    gofmt::string_slice(Some(&sorted))
                ),
            ));
        }
    }
    let new_gen = get_i64(obj, &["metadata", "generation"]);
    if new_gen < get_i64(old, &["metadata", "generation"]) {
        out.push(FieldError::invalid(
            "metadata.generation",
            new_gen.to_string(),
            "must not be decremented",
        ));
    }
    for key in ["name", "namespace", "uid"] {
        let n = get_str(obj, &["metadata", key]);
        if n != get_str(old, &["metadata", key]) {
            out.push(invalid_str(
                format!("metadata.{key}"),
                n,
                "field is immutable",
            ));
        }
    }
    let new_ts = get(obj, &["metadata", "creationTimestamp"]);
    let old_ts = get(old, &["metadata", "creationTimestamp"]);
    if new_ts.is_some() && old_ts.is_some() && go_time(new_ts) != go_time(old_ts) {
        out.push(FieldError::invalid(
            "metadata.creationTimestamp",
            go_time(new_ts),
            "field is immutable",
        ));
    }
    let new_del = get(obj, &["metadata", "deletionTimestamp"]);
    let old_del = get(old, &["metadata", "deletionTimestamp"]);
    if go_time(new_del) != go_time(old_del) {
        out.push(FieldError::invalid(
            "metadata.deletionTimestamp",
            go_time(new_del),
            "field is immutable",
        ));
    }
    let new_grace = get(obj, &["metadata", "deletionGracePeriodSeconds"]).and_then(Value::as_i64);
    let old_grace = get(old, &["metadata", "deletionGracePeriodSeconds"]).and_then(Value::as_i64);
    if new_grace != old_grace {
        let shown = new_grace.map_or("null".to_string(), |g| g.to_string());
        out.push(FieldError::invalid(
            "metadata.deletionGracePeriodSeconds",
            shown,
            "field is immutable",
        ));
    }
    validate_labels_annotations_owners(&mut out, obj);
    out
}

/// Metadata-only validation for kinds without spec rules: create-style on
/// create, update-style (plus create-style) on update.
pub fn validate_meta_create_or_update(
    obj: &Value,
    old: Option<&Value>,
    namespaced: bool,
    rule: NameRule,
) -> Vec<FieldError> {
    match old {
        None => validate_object_meta(obj, namespaced, rule),
        Some(old) => validate_object_meta_update(obj, old),
    }
}

/// `ValidateLabelSelector` for a `metav1.LabelSelector` object.
pub fn validate_label_selector(out: &mut Vec<FieldError>, sel: &Value, field: &str) {
    validate_labels(
        out,
        get_obj(sel, &["matchLabels"]),
        &format!("{field}.matchLabels"),
    );
    for (i, e) in get_arr(sel, &["matchExpressions"]).iter().enumerate() {
        let path = format!("{field}.matchExpressions[{i}]");
        let values = get_arr(e, &["values"]);
        match get_str(e, &["operator"]) {
            "In" | "NotIn" => {
                if values.is_empty() {
                    out.push(FieldError::required(
                        format!("{path}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    out.push(FieldError::forbidden(
                        format!("{path}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => out.push(invalid_str(
                format!("{path}.operator"),
                op,
                "not a valid selector operator",
            )),
        }
        validate_label_name(out, get_str(e, &["key"]), &format!("{path}.key"));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for m in names::is_valid_label_value(v) {
                out.push(invalid_str(format!("{path}.values[{j}]"), v, m));
            }
        }
    }
}

/// Labels, annotations and ownerReferences: checked alike on create and update.
fn validate_labels_annotations_owners(out: &mut Vec<FieldError>, obj: &Value) {
    validate_labels(
        out,
        get_obj(obj, &["metadata", "labels"]),
        "metadata.labels",
    );
    validate_annotations(
        out,
        get_obj(obj, &["metadata", "annotations"]),
        "metadata.annotations",
    );
    validate_owner_references(
        out,
        get_arr(obj, &["metadata", "ownerReferences"]),
        "metadata.ownerReferences",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ApiError;
    use serde_json::json;

    fn msg(kind: &str, name: &str, errs: &[FieldError]) -> String {
        ApiError::invalid("", kind, name, errs).message
    }

    #[test]
    fn name_required() {
        let errs = validate_object_meta(
            &json!({"metadata": {"namespace": "default"}}),
            true,
            NameRule::Subdomain,
        );
        assert_eq!(
            msg("ConfigMap", "", &errs),
            "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
        );
    }

    #[test]
    fn namespace_rules() {
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "a"}}),
            true,
            NameRule::Subdomain,
        );
        assert_eq!(errs[0].to_string(), "metadata.namespace: Required value");
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "a", "namespace": "x"}}),
            false,
            NameRule::Subdomain,
        );
        assert_eq!(
            errs[0].to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }

    #[test]
    fn bad_label_value_and_key() {
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "a", "namespace": "d", "labels": {"app": "bad value", "-k": "v"}}}),
            true,
            NameRule::Subdomain,
        );
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[0].to_string(),
            "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(errs[1]
            .to_string()
            .starts_with("metadata.labels: Invalid value: \"-k\": name part must consist"));
    }

    #[test]
    fn update_immutables() {
        let old = json!({"metadata": {"name": "a", "namespace": "d", "uid": "u1", "creationTimestamp": "2024-01-02T03:04:05Z"}});
        let new = json!({"metadata": {"name": "a", "namespace": "d", "uid": "u2", "creationTimestamp": "2024-01-02T03:04:06Z"}});
        let errs = validate_object_meta_update(&new, &old);
        assert_eq!(
            errs[0].to_string(),
            "metadata.uid: Invalid value: \"u2\": field is immutable"
        );
        assert_eq!(
            errs[1].to_string(),
            "metadata.creationTimestamp: Invalid value: 2024-01-02 03:04:06 +0000 UTC: field is immutable"
        );
    }

    #[test]
    fn selector_requirements() {
        let mut out = Vec::new();
        validate_label_selector(
            &mut out,
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Foo"}]}),
            "spec.selector",
        );
        assert_eq!(
            out[0].to_string(),
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            out[1].to_string(),
            "spec.selector.matchExpressions[1].operator: Invalid value: \"Foo\": not a valid selector operator"
        );
    }
}
