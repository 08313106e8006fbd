//! Go-style value formatting (`%q`, `%#v`) for Kubernetes error messages.
//!
//! kube-apiserver prints a field error's bad value with Go's fmt verbs, and
//! kubectl shows that text verbatim, so the exact Go rendering of strings,
//! slices, maps and a few API structs is reproduced here.

use serde_json::{Map, Value};

/// Go's `strconv.Quote` / `%q`: double-quoted with Go escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Go's IsPrint rejects controls and non-ASCII spaces; those are \u-escaped.
            c if c.is_control() || c.is_whitespace() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON scalar rendered the way Go's field errors print it: strings with
/// `%q`, numbers and booleans with `%v`, null as `null`.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Object(m) => string_map(Some(m)),
    }
}

/// `%#v` of a `[]string`: `[]string{"a", "b"}`; `None` is a nil slice.
pub fn string_slice(items: Option<&[String]>) -> String {
    match items {
        None => "[]string(nil)".to_string(),
        Some(items) => {
            let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("[]string{{{}}}", quoted.join(", "))
        }
    }
}

/// `%#v` of a JSON array of strings (non-strings are skipped).
pub fn string_slice_value(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(a)) => {
            let items: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            string_slice(Some(&items))
        }
        _ => string_slice(None),
    }
}

/// `%#v` of a `map[string]string`; Go prints map keys sorted.
pub fn string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let mut entries: Vec<(&String, String)> = m
                .iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
    }
}

/// `%#v` of an `intstr.IntOrString`.
pub fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            quote(s)
        ),
        Some(Value::Number(n)) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        _ => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
    }
}

/// `%#v` of the `core.ServicePort{Protocol, Port}` key kube-apiserver uses to
/// detect duplicate ports.
pub fn service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        quote(protocol)
    )
}

/// `%#v` of a `metav1.LabelSelector` value (as printed for immutable or
/// invalid selectors).
pub fn label_selector(sel: Option<&Value>) -> String {
    let ml = sel
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let exprs = match sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
    {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|e| {
                    let values = e.get("values");
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        quote(e.get("key").and_then(Value::as_str).unwrap_or("")),
                        quote(e.get("operator").and_then(Value::as_str).unwrap_or("")),
                        string_slice_value(values)
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", parts.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        string_map(ml),
        exprs
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("My_Svc"), "\"My_Svc\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("tab\there\n"), "\"tab\\there\\n\"");
        assert_eq!(quote("\u{1}"), "\"\\x01\"");
        assert_eq!(quote("héllo"), "\"héllo\"");
        assert_eq!(quote("\u{a0}"), "\"\\u00a0\"");
    }

    #[test]
    fn slices_and_maps() {
        assert_eq!(
            string_slice(Some(&["10.96.0.20".to_string()])),
            "[]string{\"10.96.0.20\"}"
        );
        assert_eq!(
            string_slice(Some(&["a".to_string(), "b".to_string()])),
            "[]string{\"a\", \"b\"}"
        );
        assert_eq!(string_slice(None), "[]string(nil)");
        let m = json!({"tier": "web", "app": "x"});
        assert_eq!(
            string_map(m.as_object()),
            "map[string]string{\"app\":\"x\", \"tier\":\"web\"}"
        );
        assert_eq!(string_map(None), "map[string]string(nil)");
    }

    #[test]
    fn structs() {
        assert_eq!(
            service_port_key("TCP", 80),
            "core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
        );
        assert_eq!(
            label_selector(Some(&json!({"matchLabels": {"app": "y"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"y\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            label_selector(Some(&json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}))),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"a\", Operator:\"In\", Values:[]string{\"x\"}}}}"
        );
        assert_eq!(
            int_or_string(Some(&json!("200%"))),
            "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"200%\"}"
        );
    }
}
