//! The single-object REST verbs: get, create (POST), update (PUT) and patch.

use std::sync::Arc;

use portico_api::resource::ResourceInfo;
use portico_api::status::{ApiError, FieldError};
use portico_store::KeyValue;
use serde_json::{json, Value};

use crate::hooks::{self, PatchKind};
use crate::http::{json as json_resp, ApiResult, AppState, Req};
use crate::objects::{self, meta_mut, meta_str};
use crate::protobuf;
use crate::services::{self, Expect, WriteError};

/// Retries of read-modify-write when the object changed underneath (no client precondition).
const UPDATE_RETRIES: usize = 8;

/// The current time as Kubernetes writes it (RFC 3339, seconds, UTC).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn store_err(e: portico_store::StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

pub(crate) fn parse_body(rq: &Req) -> Result<Value, ApiError> {
    // JSON, or protobuf for the built-in kinds kubectl's generators send that way
    // (client-go does not retry a 415 as JSON).
    let media = rq.content_type.split(';').next().unwrap_or("").trim();
    let (v, json_body) = if media == protobuf::MEDIA_TYPE {
        let v = protobuf::decode(&rq.body).map_err(proto_err)?;
        // Strict decoding checks JSON text; the decoded object is that text.
        let text = serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()))?;
        (v, std::borrow::Cow::Owned(text))
    } else if media.is_empty() || media == "application/json" || media == "*/*" {
        let v: Value = serde_json::from_slice(&rq.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized: json parse error: {e}"
            ))
        })?;
        (v, std::borrow::Cow::Borrowed(&rq.body[..]))
    } else {
        return Err(unsupported_media(format!("got {media}")));
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized: not a JSON object",
        ));
    }
    // `scale` and `binding` bodies are other types (Scale, Binding) than the parent kind.
    let same_type = !matches!(rq.target.subresource.as_deref(), Some("scale" | "binding"));
    if same_type {
        if rq.q("fieldValidation") == Some("Strict") {
            hooks::strict_check(rq.target.info, &json_body)?;
        }
        hooks::decode_check(rq.target.info, &v)?;
    }
    Ok(v)
}

fn unsupported_media(detail: String) -> ApiError {
    ApiError {
        code: 415,
        reason: "UnsupportedMediaType".into(),
        message: format!("the body of the request was in an unknown format - accepted media types include: application/json, {}; {detail}", protobuf::MEDIA_TYPE),
        details: None,
    }
}

/// Protobuf we do not model is a 415 (the client can send JSON); a broken body is a 400.
fn proto_err(e: protobuf::ProtoError) -> ApiError {
    if e.is_unsupported() {
        unsupported_media(e.to_string())
    } else {
        ApiError::bad_request(format!(
            "the object provided is unrecognized: protobuf parse error: {e}"
        ))
    }
}

pub(crate) fn name_of(rq: &Req) -> &str {
    rq.target.name.as_deref().unwrap_or("")
}

pub(crate) fn key_of(rq: &Req) -> String {
    objects::key(rq.target.info, rq.target.namespace.as_deref(), name_of(rq))
}

pub(crate) fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
    ApiError::not_found(info.group, info.plural, name)
}

/// Reads the addressed object or 404.
pub(crate) async fn read(st: &AppState, rq: &Req) -> Result<(KeyValue, Value), ApiError> {
    let kv = st
        .store
        .get(&key_of(rq))
        .await
        .map_err(store_err)?
        .ok_or_else(|| not_found(rq.target.info, name_of(rq)))?;
    let obj = objects::decode(&kv)?;
    Ok((kv, obj))
}

/// Renders one object, as a Table when the client asked for one.
pub(crate) fn respond(rq: &Req, code: u16, obj: &Value) -> ApiResult {
    if rq.wants_table() {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"].clone()});
        return Ok(json_resp(
            code,
            &hooks::table(
                rq.target.info,
                std::slice::from_ref(obj),
                rq.q("includeObject"),
                meta,
            ),
        ));
    }
    Ok(json_resp(code, obj))
}

pub(crate) async fn get(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let (_, obj) = read(st, &rq).await?;
    respond(&rq, 200, &obj)
}

/// Checks the body's namespace against the URL's and fills it in.
fn bind_namespace(rq: &Req, obj: &mut Value) -> Result<(), ApiError> {
    if !rq.target.info.namespaced {
        return Ok(());
    }
    let ns = rq.target.namespace.clone().ok_or_else(|| {
        ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
    })?;
    if let Some(body_ns) = meta_str(obj, "namespace") {
        if body_ns != ns {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
    }
    meta_mut(obj).insert("namespace".into(), json!(ns));
    Ok(())
}

/// A namespaced create needs its namespace to exist and not be terminating.
async fn check_namespace(
    st: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    let ns_info = portico_api::resource::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces not registered"))?;
    let kv = st
        .store
        .get(&objects::key(ns_info, None, ns))
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
    let nso = objects::decode(&kv)?;
    if nso["status"]["phase"] == "Terminating" || meta_str(&nso, "deletionTimestamp").is_some() {
        let mut e = ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            info.qualified_plural(),
            name
        ));
        e.details = Some(
            json!({"name": name, "kind": info.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
        );
        return Err(e);
    }
    Ok(())
}

/// Server-set fields of kinds with special create semantics.
fn kind_create_defaults(info: &ResourceInfo, obj: &mut Value) {
    if info.group.is_empty() && info.kind == "Namespace" {
        obj["status"] = json!({"phase": "Active"});
        if obj["spec"]["finalizers"].is_null() {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
    }
}

/// Creates `obj` (already bound to its namespace) and returns it as stored.
/// `record` adds the request's field manager as an `Update` entry; a create by
/// server-side apply passes false, as its `Apply` entry is already in `obj` and
/// fields filled in by defaulting belong to no manager (as in kube-apiserver).
pub(crate) async fn create_object(
    st: &AppState,
    rq: &Req,
    mut obj: Value,
    record: bool,
) -> Result<Value, ApiError> {
    let info = rq.target.info;
    if meta_str(&obj, "name").is_none() {
        match meta_str(&obj, "generateName").map(str::to_string) {
            Some(prefix) => {
                let name = format!("{prefix}{}", objects::name_suffix(&mut rand::rng()));
                meta_mut(&mut obj).insert("name".into(), json!(name));
            }
            None => {
                return Err(ApiError::invalid(
                    info.group,
                    info.kind,
                    "",
                    &[FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        }
    }
    let name = meta_str(&obj, "name").unwrap_or_default().to_string();
    let now = now();
    objects::prepare_create(info, &mut obj, &uuid::Uuid::new_v4().to_string(), &now);
    kind_create_defaults(info, &mut obj);
    hooks::default_object(info, &mut obj);
    let errs = hooks::validate(info, &obj, None);
    if !errs.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, &name, &errs));
    }
    if let Some(ns) = rq.target.namespace.as_deref().filter(|_| info.namespaced) {
        check_namespace(st, info, ns, &name).await?;
    }
    if record {
        hooks::record_update(info, None, &mut obj, &rq.field_manager(), &now);
    }
    let key = objects::key(info, rq.target.namespace.as_deref(), &name);
    match services::put(
        st,
        info,
        &key,
        Expect::Missing,
        None,
        &mut obj,
        rq.dry_run(),
    )
    .await
    {
        Ok(rev) => {
            objects::set_rv(&mut obj, rev);
            Ok(obj)
        }
        Err(WriteError::Api(e)) => Err(e),
        Err(WriteError::Conflict) => Err(ApiError::already_exists(info.group, info.plural, &name)),
    }
}

pub(crate) async fn create(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let mut obj = parse_body(&rq)?;
    bind_namespace(&rq, &mut obj)?;
    let created = create_object(st, &rq, obj, true).await?;
    respond(&rq, 201, &created)
}

/// Outcome of writing an update.
pub(crate) enum Updated {
    Object(Value),
    /// The update removed the last finalizer of a deleting object: it is gone.
    Deleted(Value),
}

/// Validates and writes `new` over `old` (read at `kv`). A `precondition` RV
/// mismatch is a 409; otherwise a lost race returns `Conflict` for the caller to retry.
pub(crate) async fn write_update(
    st: &AppState,
    rq: &Req,
    kv: &KeyValue,
    old: &Value,
    mut new: Value,
    record: bool,
) -> Result<Updated, WriteError> {
    let info = rq.target.info;
    let name = name_of(rq).to_string();
    if let Some(rv) = meta_str(&new, "resourceVersion") {
        if rv != kv.mod_revision.to_string() {
            return Err(ApiError::conflict(info.group, info.plural, &name).into());
        }
    }
    if meta_str(&new, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&new, "name").unwrap_or("")
        ))
        .into());
    }
    meta_mut(&mut new).insert("name".into(), json!(name));
    if let Some(ns) = rq.target.namespace.as_deref().filter(|_| info.namespaced) {
        meta_mut(&mut new).insert("namespace".into(), json!(ns));
    }
    if rq.target.subresource.is_none() {
        objects::prepare_update(info, old, &mut new);
    }
    hooks::default_object(info, &mut new);
    let errs = match rq.target.subresource.as_deref() {
        Some("status") => hooks::validate_status(info, &new, old),
        // Other subresources (scale, finalize, binding) build `new` from `old` themselves.
        Some(_) => hooks::validate(info, &new, Some(old)),
        None => {
            hooks::prepare_update(info, &mut new, old);
            hooks::validate(info, &new, Some(old))
        }
    };
    if !errs.is_empty() {
        return Err(ApiError::invalid(info.group, info.kind, &name, &errs).into());
    }
    let key = key_of(rq);
    // Removing the last finalizer of an object being deleted deletes it.
    if meta_str(&new, "deletionTimestamp").is_some()
        && objects::finalizers(&new).is_empty()
        && !is_namespace_waiting(info, &new)
    {
        if rq.dry_run() {
            return Ok(Updated::Deleted(new));
        }
        let rev = services::remove(st, info, &key, kv.mod_revision, old).await?;
        objects::set_rv(&mut new, rev);
        return Ok(Updated::Deleted(new));
    }
    if record {
        hooks::record_update(info, Some(old), &mut new, &rq.field_manager(), &now());
    } else if let Some(sub @ ("status" | "scale")) = rq.target.subresource.as_deref() {
        hooks::record_update_subresource(info, old, &mut new, &rq.field_manager(), sub, &now());
    }
    let rev = services::put(
        st,
        info,
        &key,
        Expect::Rev(kv.mod_revision),
        Some(old),
        &mut new,
        rq.dry_run(),
    )
    .await?;
    objects::set_rv(&mut new, rev);
    Ok(Updated::Object(new))
}

/// A deleting namespace waits for its `spec.finalizers` (emptied via `/finalize`).
pub(crate) fn is_namespace_waiting(info: &ResourceInfo, obj: &Value) -> bool {
    info.group.is_empty()
        && info.kind == "Namespace"
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
}

fn updated_response(rq: &Req, u: Updated) -> ApiResult {
    match u {
        Updated::Object(o) | Updated::Deleted(o) => respond(rq, 200, &o),
    }
}

pub(crate) async fn update(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let body = parse_body(&rq)?;
    let has_precondition = meta_str(&body, "resourceVersion").is_some();
    for _ in 0..UPDATE_RETRIES {
        let (kv, old) = read(st, &rq).await?;
        match write_update(st, &rq, &kv, &old, body.clone(), true).await {
            Ok(u) => return updated_response(&rq, u),
            Err(WriteError::Api(e)) => return Err(e),
            Err(WriteError::Conflict) if has_precondition => {
                return Err(ApiError::conflict(
                    rq.target.info.group,
                    rq.target.info.plural,
                    name_of(&rq),
                ));
            }
            Err(WriteError::Conflict) => continue,
        }
    }
    Err(ApiError::conflict(
        rq.target.info.group,
        rq.target.info.plural,
        name_of(&rq),
    ))
}

pub(crate) async fn patch(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let kind = PatchKind::from_content_type(&rq.content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(&rq.content_type))?;
    let body: Value = serde_json::from_slice(&rq.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if kind == PatchKind::Apply && rq.q("fieldValidation") == Some("Strict") {
        hooks::strict_check(rq.target.info, &rq.body)?;
    }
    let info = rq.target.info;
    let force = rq.q("force") == Some("true");
    for _ in 0..UPDATE_RETRIES {
        let current = st.store.get(&key_of(&rq)).await.map_err(store_err)?;
        let Some(kv) = current else {
            if kind == PatchKind::Apply {
                // Server-side apply creates missing objects.
                let mut obj = hooks::server_side_apply(
                    info,
                    None,
                    &body,
                    &rq.field_manager(),
                    force,
                    &now(),
                )?;
                bind_namespace(&rq, &mut obj)?;
                meta_mut(&mut obj).insert("name".into(), json!(name_of(&rq)));
                match create_object(st, &rq, obj, false).await {
                    Ok(created) => return respond(&rq, 201, &created),
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            }
            return Err(not_found(info, name_of(&rq)));
        };
        let old = objects::decode(&kv)?;
        let (new, record) = match kind {
            PatchKind::Apply => (
                hooks::server_side_apply(
                    info,
                    Some(&old),
                    &body,
                    &rq.field_manager(),
                    force,
                    &now(),
                )?,
                false,
            ),
            _ => (hooks::apply_patch(info, kind, &old, &body)?, true),
        };
        // A patch may carry a resourceVersion precondition; otherwise it applies to what was read.
        let precondition = body["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        match write_update(st, &rq, &kv, &old, new, record).await {
            Ok(u) => return updated_response(&rq, u),
            Err(WriteError::Api(e)) => return Err(e),
            Err(WriteError::Conflict) if precondition => {
                return Err(ApiError::conflict(info.group, info.plural, name_of(&rq)))
            }
            Err(WriteError::Conflict) => continue,
        }
    }
    Err(ApiError::conflict(info.group, info.plural, name_of(&rq)))
}
