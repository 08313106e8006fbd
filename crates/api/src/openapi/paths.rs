//! `paths` of a group-version document: the REST operations of each resource,
//! shaped like kube-apiserver's, with `x-kubernetes-group-version-kind` and the
//! query parameters kubectl looks for (`fieldValidation` on PATCH).
//!
//! PATCH request bodies list JSON patch, merge patch and apply, but not
//! strategic merge patch: kubectl would then compute client-side apply
//! patches from these schemas, which lack the patch merge keys. Without it,
//! kubectl uses its compiled-in Go types, whose merge keys are exact.

use super::schemas::{schema_ref, KindSchemas, BINDING, DELETE_OPTIONS, PATCH, SCALE, STATUS};
use crate::resource::ResourceInfo;
use serde_json::{json, Map, Value};

/// The PATCH content types advertised (see the module comment).
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
           "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn dry_run() -> Value {
    query("dryRun", "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed")
}

fn field_manager() -> Value {
    query("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.")
}

fn field_validation() -> Value {
    query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.")
}

fn force() -> Value {
    query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.")
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        query("continue", "string", "The continue option should be set when retrieving more results from the server."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]
}

fn json_content(schema: Value) -> Value {
    json!({
        "application/json": {"schema": schema},
        "application/yaml": {"schema": schema},
    })
}

fn response(code: &str, schema: Value) -> (String, Value) {
    let description = match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    };
    (
        code.to_string(),
        json!({"description": description, "content": json_content(schema)}),
    )
}

/// Operation-id fragment of a group: `Core`, `Apps`, `Networking`, ...
fn group_ident(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    let first = group.split('.').next().unwrap_or(group);
    let mut chars = first.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn tag(r: &ResourceInfo) -> String {
    let g = if r.group.is_empty() {
        "core"
    } else {
        r.group.split('.').next().unwrap_or(r.group)
    };
    format!("{g}_{}", r.version)
}

struct OpSpec {
    verb: &'static str,
    action: &'static str,
    description: String,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(String, Value)>,
    gvk: Value,
    op_suffix: String,
}

fn operation(r: &ResourceInfo, spec: OpSpec) -> Value {
    let mut op = Map::new();
    op.insert("tags".into(), json!([tag(r)]));
    op.insert("description".into(), json!(spec.description));
    let version = {
        let mut v = r.version.chars();
        match v.next() {
            Some(c) => c.to_uppercase().chain(v).collect::<String>(),
            None => String::new(),
        }
    };
    op.insert(
        "operationId".into(),
        json!(format!(
            "{}{}{}{}",
            spec.verb,
            group_ident(r.group),
            version,
            spec.op_suffix
        )),
    );
    if !spec.params.is_empty() {
        op.insert("parameters".into(), Value::Array(spec.params));
    }
    if let Some(body) = spec.body {
        op.insert("requestBody".into(), body);
    }
    let mut responses: Map<String, Value> = spec.responses.into_iter().collect();
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    op.insert("responses".into(), Value::Object(responses));
    op.insert("x-kubernetes-action".into(), json!(spec.action));
    op.insert("x-kubernetes-group-version-kind".into(), spec.gvk);
    Value::Object(op)
}

fn body(schema: Value) -> Value {
    json!({"content": {"*/*": {"schema": schema}}, "required": true})
}

fn patch_body() -> Value {
    let content: Map<String, Value> = PATCH_CONTENT_TYPES
        .iter()
        .map(|ct| (ct.to_string(), json!({"schema": schema_ref(PATCH)})))
        .collect();
    json!({"content": content, "required": true})
}

/// The operations on one object-shaped path (`{name}` or a subresource).
fn object_ops(
    r: &ResourceInfo,
    schema: &str,
    gvk: &Value,
    suffix: &str,
    what: &str,
    verbs: &[&str],
) -> Map<String, Value> {
    let mut ops = Map::new();
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let op_suffix = format!("{ns}{suffix}");
    let spec = |verb: &'static str,
                action: &'static str,
                description: String,
                params: Vec<Value>,
                body: Option<Value>,
                responses: Vec<(String, Value)>| OpSpec {
        verb,
        action,
        description,
        params,
        body,
        responses,
        gvk: gvk.clone(),
        op_suffix: op_suffix.clone(),
    };
    for verb in verbs {
        let (method, op) = match *verb {
            "get" => (
                "get",
                spec(
                    "read",
                    "get",
                    format!("read {what}"),
                    vec![],
                    None,
                    vec![response("200", schema_ref(schema))],
                ),
            ),
            "update" => (
                "put",
                spec(
                    "replace",
                    "put",
                    format!("replace {what}"),
                    vec![dry_run(), field_manager(), field_validation()],
                    Some(body(schema_ref(schema))),
                    vec![
                        response("200", schema_ref(schema)),
                        response("201", schema_ref(schema)),
                    ],
                ),
            ),
            "patch" => (
                "patch",
                spec(
                    "patch",
                    "patch",
                    format!("partially update {what}"),
                    vec![dry_run(), field_manager(), field_validation(), force()],
                    Some(patch_body()),
                    vec![
                        response("200", schema_ref(schema)),
                        response("201", schema_ref(schema)),
                    ],
                ),
            ),
            "delete" => (
                "delete",
                spec(
                    "delete",
                    "delete",
                    format!("delete {what}"),
                    vec![
                        dry_run(),
                        query(
                            "gracePeriodSeconds",
                            "integer",
                            "The duration in seconds before the object should be deleted.",
                        ),
                        query(
                            "propagationPolicy",
                            "string",
                            "Whether and how garbage collection will be performed.",
                        ),
                    ],
                    Some(json!({"content": {"*/*": {"schema": schema_ref(DELETE_OPTIONS)}}})),
                    vec![
                        response("200", schema_ref(STATUS)),
                        response("202", schema_ref(STATUS)),
                    ],
                ),
            ),
            "create" => (
                "post",
                spec(
                    "create",
                    "post",
                    format!("create {what}"),
                    vec![dry_run(), field_manager(), field_validation()],
                    Some(body(schema_ref(schema))),
                    vec![
                        response("200", schema_ref(schema)),
                        response("201", schema_ref(schema)),
                        response("202", schema_ref(schema)),
                    ],
                ),
            ),
            _ => continue,
        };
        ops.insert(method.to_string(), operation(r, op));
    }
    ops
}

fn with_path_params(mut ops: Map<String, Value>, params: Vec<Value>) -> Value {
    let mut params = params;
    params.push(query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    ));
    ops.insert("parameters".into(), Value::Array(params));
    Value::Object(ops)
}

/// All paths of one resource.
pub(crate) fn resource_paths(r: &ResourceInfo, k: &KindSchemas, paths: &mut Map<String, Value>) {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let base_params = || {
        let mut p = Vec::new();
        if r.namespaced {
            p.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        p
    };
    let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
    let ns = if r.namespaced { "Namespaced" } else { "" };

    // Collection: list, create, deletecollection.
    let mut coll = object_ops(r, &k.object, &gvk, r.kind, r.kind, &["create"]);
    coll.insert(
        "get".into(),
        operation(
            r,
            OpSpec {
                verb: "list",
                action: "list",
                description: format!("list or watch objects of kind {}", r.kind),
                params: list_params(),
                body: None,
                responses: vec![response("200", schema_ref(&k.list))],
                gvk: gvk.clone(),
                op_suffix: format!("{ns}{}", r.kind),
            },
        ),
    );
    coll.insert(
        "delete".into(),
        operation(
            r,
            OpSpec {
                verb: "deletecollection",
                action: "deletecollection",
                description: format!("delete collection of {}", r.kind),
                params: list_params(),
                body: Some(json!({"content": {"*/*": {"schema": schema_ref(DELETE_OPTIONS)}}})),
                responses: vec![response("200", schema_ref(STATUS))],
                gvk: gvk.clone(),
                op_suffix: format!("Collection{ns}{}", r.kind),
            },
        ),
    );
    paths.insert(collection.clone(), with_path_params(coll, base_params()));

    // Object: get, replace, patch, delete.
    let mut item_params = vec![path_param("name", &format!("name of the {}", r.kind))];
    item_params.extend(base_params());
    let item = object_ops(
        r,
        &k.object,
        &gvk,
        r.kind,
        &format!("the specified {}", r.kind),
        &["get", "update", "patch", "delete"],
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        with_path_params(item, item_params.clone()),
    );

    // Subresources.
    for sub in r.subresources {
        let cap = {
            let mut c = sub.chars();
            match c.next() {
                Some(ch) => ch.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        };
        let suffix = format!("{}{cap}", r.kind);
        let what = format!("{sub} of the specified {}", r.kind);
        let ops = match *sub {
            "status" => object_ops(
                r,
                &k.object,
                &gvk,
                &suffix,
                &what,
                &["get", "update", "patch"],
            ),
            "scale" => {
                let scale_gvk = json!({"group": "autoscaling", "kind": "Scale", "version": "v1"});
                object_ops(
                    r,
                    SCALE,
                    &scale_gvk,
                    &suffix,
                    &what,
                    &["get", "update", "patch"],
                )
            }
            "finalize" => object_ops(r, &k.object, &gvk, &suffix, &what, &["update"]),
            "binding" => {
                let binding_gvk = json!({"group": "", "kind": "Binding", "version": "v1"});
                object_ops(r, BINDING, &binding_gvk, &suffix, &what, &["create"])
            }
            "log" => {
                let mut ops = Map::new();
                let op = operation(
                    r,
                    OpSpec {
                        verb: "read",
                        action: "get",
                        description: format!("read log of the specified {}", r.kind),
                        params: vec![
                            query(
                                "container",
                                "string",
                                "The container for which to stream logs.",
                            ),
                            query("follow", "boolean", "Follow the log stream of the pod."),
                            query(
                                "tailLines",
                                "integer",
                                "If set, the number of lines from the end of the logs to show.",
                            ),
                        ],
                        body: None,
                        responses: vec![(
                            "200".to_string(),
                            json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}),
                        )],
                        gvk: gvk.clone(),
                        op_suffix: format!("{ns}{suffix}"),
                    },
                );
                ops.insert("get".into(), op);
                ops
            }
            _ => continue,
        };
        paths.insert(
            format!("{collection}/{{name}}/{sub}"),
            with_path_params(ops, item_params.clone()),
        );
    }

    // Namespaced kinds are also listed across namespaces.
    if r.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            operation(
                r,
                OpSpec {
                    verb: "list",
                    action: "list",
                    description: format!("list or watch objects of kind {}", r.kind),
                    params: list_params(),
                    body: None,
                    responses: vec![response("200", schema_ref(&k.list))],
                    gvk,
                    op_suffix: format!("{}ForAllNamespaces", r.kind),
                },
            ),
        );
        paths.insert(
            format!("{prefix}/{}", r.plural),
            with_path_params(all, vec![]),
        );
    }
}
