//! Tests for label and field selectors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Map, Value};

use super::*;
use crate::resource::find_kind;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn label_selector_semantics() {
    let l = labels(json!({"app": "nginx", "tier": "web", "n": "5"}));
    let cases = [
        ("", true),
        ("app=nginx", true),
        ("app==nginx", true),
        ("app!=nginx", false),
        ("app=other", false),
        ("app", true),
        ("!app", false),
        ("!missing", true),
        ("missing!=x", true),
        ("tier in (web,api)", true),
        ("tier notin (web)", false),
        ("app=nginx,tier in (a,b)", false),
        ("app = nginx , tier", true),
        ("n>3", true),
        ("n<3", false),
        ("missing>1", false),
        ("app in (in,notin,nginx)", true),
        ("app=", false),
        ("missing=", false),
    ];
    for (s, want) in cases {
        let sel = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(sel.matches(&l), want, "selector {s:?}");
    }
}

#[test]
fn label_selector_errors_use_apimachinery_text() {
    let cases = [
        ("app nginx", "unable to parse requirement: found 'nginx', expected: in, notin, =, ==, !=, gt, lt"),
        ("app in nginx", "unable to parse requirement: found 'nginx' expected: '('"),
        ("app in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        (",app", "found ',', expected: !, identifier, or 'end of string'"),
        ("app,", "found '', expected: identifier after ','"),
        ("app=a b", "found 'b', expected: ',' or 'end of string'"),
        (
            "-app=x",
            "unable to parse requirement: <nil>: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "app=-x",
            "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        ("n>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"),
    ];
    for (s, want) in cases {
        assert_eq!(
            LabelSelector::parse(s).unwrap_err().to_string(),
            want,
            "selector {s:?}"
        );
    }
}

#[test]
fn label_selector_objects_and_plain_maps() {
    let l = labels(json!({"app": "web", "env": "prod"}));
    assert!(matches_label_selector(&json!({"matchLabels": {"app": "web"}}), &l).unwrap());
    assert!(!matches_label_selector(&json!({"matchLabels": {"app": "api"}}), &l).unwrap());
    assert!(matches_label_selector(
        &json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "x", "operator": "DoesNotExist"}]}),
        &l
    )
    .unwrap());
    assert!(matches_label_selector(&json!({}), &l).unwrap());
    assert!(matches_label_selector(&json!({"app": "web"}), &l).unwrap());
    assert!(!matches_label_selector(&json!({"app": "web", "x": "y"}), &l).unwrap());
    assert_eq!(
        matches_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
            &l
        )
        .unwrap_err()
        .to_string(),
        "\"Foo\" is not a valid label selector operator"
    );
}

#[test]
fn field_selectors() {
    let pods = find_kind("", "Pod").unwrap();
    let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
    let sel = FieldSelector::parse(pods, "spec.nodeName=n1,status.phase!=Pending").unwrap();
    assert!(sel.matches(&pod));
    assert!(!FieldSelector::parse(pods, "spec.nodeName=")
        .unwrap()
        .matches(&pod));
    assert!(FieldSelector::parse(pods, "spec.host==n1")
        .unwrap()
        .matches(&pod));
    assert!(FieldSelector::parse(pods, "").unwrap().is_empty());
    assert_eq!(
        FieldSelector::parse(pods, "foo=bar")
            .unwrap_err()
            .to_string(),
        "field label not supported: foo"
    );
    assert_eq!(
        FieldSelector::parse(pods, "nonsense")
            .unwrap_err()
            .to_string(),
        "invalid selector: 'nonsense'; can't understand 'nonsense'"
    );
    let svcs = find_kind("", "Service").unwrap();
    assert_eq!(
        FieldSelector::parse(svcs, "status.phase=x")
            .unwrap_err()
            .to_string(),
        "field label not supported: status.phase"
    );
    let events = find_kind("", "Event").unwrap();
    let ev = json!({"metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "Service", "name": "x", "namespace": "d", "uid": "u"}, "source": {"component": "c"}});
    let sel = FieldSelector::parse(
        events,
        "involvedObject.name=x,involvedObject.namespace=d,involvedObject.kind=Service,involvedObject.uid=u,source=c",
    )
    .unwrap();
    assert!(sel.matches(&ev));
    assert_eq!(sel.required_value("involvedObject.name"), Some("x"));
    let escaped = FieldSelector::parse(svcs, "metadata.name=a\\,b").unwrap();
    assert!(escaped.matches(&json!({"metadata": {"name": "a,b"}})));
    assert_eq!(
        FieldSelector::parse(svcs, "metadata.name=a\\x")
            .unwrap_err()
            .to_string(),
        "invalid field selector: invalid escape sequence: \\x"
    );
}
