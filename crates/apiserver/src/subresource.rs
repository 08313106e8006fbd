//! Subresources: `status`, `scale` (autoscaling/v1 Scale), `pods/binding`, `pods/log` (in `podlog`), `namespaces/finalize`.

use std::sync::Arc;

use http::Method;
use portico_api::status::{success_status, ApiError};
use serde_json::{json, Value};

use crate::hooks::{self, PatchKind};
use crate::http::{json as json_resp, ApiResult, AppState, Req};
use crate::objects::{self, meta_str};
use crate::rest::{self, name_of, parse_body, read, respond, Updated};
use crate::services::WriteError;

const RETRIES: usize = 8;

/// The autoscaling/v1 Scale view of a Deployment or ReplicaSet.
pub(crate) fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// Computes the new full object from the old one and the request (per subresource).
fn transform(rq: &Req, sub: &str, old: &Value, method: &Method) -> Result<Value, ApiError> {
    let info = rq.target.info;
    // The client's view: the Scale for `scale`, the object otherwise.
    let view = if sub == "scale" {
        scale_of(old)
    } else {
        old.clone()
    };
    let requested = if *method == Method::PATCH {
        let kind = PatchKind::from_content_type(&rq.content_type)
            .ok_or_else(|| ApiError::unsupported_media_type(&rq.content_type))?;
        let body: Value = serde_json::from_slice(&rq.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        match kind {
            PatchKind::Apply => hooks::server_side_apply(
                info,
                Some(&view),
                &body,
                &rq.field_manager(),
                rq.q("force") == Some("true"),
                &rest::now(),
            )?,
            k => hooks::apply_patch(info, k, &view, &body)?,
        }
    } else {
        parse_body(rq)?
    };
    if let Some(rv) = meta_str(&requested, "resourceVersion") {
        if Some(rv) != meta_str(old, "resourceVersion") {
            return Err(ApiError::conflict(info.group, info.plural, name_of(rq)));
        }
    }
    Ok(match sub {
        "status" => objects::status_update(old, &requested),
        "scale" => {
            let replicas = requested["spec"]["replicas"].as_i64().unwrap_or(0);
            let mut new = old.clone();
            new["spec"]["replicas"] = json!(replicas);
            objects::prepare_update(info, old, &mut new);
            new
        }
        "finalize" => {
            let mut new = old.clone();
            new["spec"]["finalizers"] = requested["spec"]["finalizers"].clone();
            if new["spec"]["finalizers"].is_null() {
                new["spec"]["finalizers"] = json!([]);
            }
            new
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ))
        }
    })
}

async fn write(st: &AppState, rq: &Req, sub: &str, method: &Method) -> ApiResult {
    for _ in 0..RETRIES {
        let (kv, old) = read(st, rq).await?;
        let new = transform(rq, sub, &old, method)?;
        match rest::write_update(st, rq, &kv, &old, new, false).await {
            Ok(Updated::Object(o)) | Ok(Updated::Deleted(o)) => {
                let view = if sub == "scale" { scale_of(&o) } else { o };
                return respond(rq, 200, &view);
            }
            Err(WriteError::Api(e)) => return Err(e),
            Err(WriteError::Conflict) => continue,
        }
    }
    Err(ApiError::conflict(
        rq.target.info.group,
        rq.target.info.plural,
        name_of(rq),
    ))
}

async fn bind(st: &AppState, rq: &Req) -> ApiResult {
    let body = parse_body(rq)?;
    let node = body["target"]["name"].as_str().unwrap_or("").to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request("binding target name is required"));
    }
    for _ in 0..RETRIES {
        let (kv, old) = read(st, rq).await?;
        if let Some(current) = old["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict_msg(
                "",
                "pods",
                name_of(rq),
                &format!(
                    "pod {} is already assigned to node \"{current}\"",
                    name_of(rq)
                ),
            ));
        }
        if meta_str(&old, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict_msg(
                "",
                "pods",
                name_of(rq),
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    name_of(rq)
                ),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        match rest::write_update(st, rq, &kv, &old, new, false).await {
            Ok(_) => return Ok(json_resp(201, &success_status())),
            Err(WriteError::Api(e)) => return Err(e),
            Err(WriteError::Conflict) => continue,
        }
    }
    Err(ApiError::conflict("", "pods", name_of(rq)))
}

pub(crate) async fn handle(st: &Arc<AppState>, method: &Method, sub: &str, rq: Req) -> ApiResult {
    match (sub, method.as_str()) {
        ("status", "GET") => rest::get(st, rq).await,
        ("scale", "GET") => {
            let (_, obj) = read(st, &rq).await?;
            respond(&rq, 200, &scale_of(&obj))
        }
        ("status" | "scale", "PUT" | "PATCH") | ("finalize", "PUT") => {
            write(st, &rq, sub, method).await
        }
        ("binding", "POST") => bind(st, &rq).await,
        ("log", "GET") if rq.target.info.plural == "pods" => crate::podlog::logs(st, &rq).await,
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_of_a_deployment() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}}}, "status": {"replicas": 1}});
        let s = scale_of(&d);
        assert_eq!(s["kind"], "Scale");
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=nginx");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
