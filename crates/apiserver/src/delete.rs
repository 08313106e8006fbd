//! DELETE and DELETECOLLECTION: preconditions, finalizers (deletionTimestamp first),
//! propagation policies, graceful pod deletion and namespace termination.

use std::sync::Arc;

use portico_api::status::ApiError;
use portico_store::KeyValue;
use serde_json::{json, Value};

use crate::hooks::Selectors;
use crate::http::{json as json_resp, ApiResult, AppState, Req};
use crate::list::collect;
use crate::objects::{self, meta_mut, meta_str};
use crate::rest::{self, key_of, name_of, now, read};
use crate::services::{self, Expect, WriteError};

const RETRIES: usize = 8;
/// Namespaces kube-apiserver refuses to delete.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// `DeleteOptions` from the body and query.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeleteOptions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub grace: Option<i64>,
    pub propagation: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub(crate) fn from_request(rq: &Req) -> Result<Self, ApiError> {
        let body: Value = if rq.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(&rq.body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let mut propagation =
            s(&body["propagationPolicy"]).or_else(|| rq.q("propagationPolicy").map(str::to_string));
        if propagation.is_none() && body["orphanDependents"] == json!(true) {
            propagation = Some("Orphan".into());
        }
        Ok(Self {
            uid: s(&body["preconditions"]["uid"]),
            resource_version: s(&body["preconditions"]["resourceVersion"]),
            grace: body["gracePeriodSeconds"]
                .as_i64()
                .or_else(|| rq.q("gracePeriodSeconds").and_then(|g| g.parse().ok())),
            propagation,
            dry_run: rq.dry_run()
                || body["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "All")),
        })
    }
}

/// What a delete does to one object, decided from its current state (pure).
#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    /// Remove it from the store now.
    Remove,
    /// Store this updated object (deletionTimestamp set / finalizers added).
    Mark(Value),
    /// Already being deleted; nothing to change.
    Unchanged,
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let mut fs = objects::finalizers(obj);
    if !fs.iter().any(|x| x == f) {
        fs.push(f.to_string());
    }
    meta_mut(obj).insert("finalizers".into(), json!(fs));
}

/// Decides the effect of a delete (`now` is an RFC 3339 time; `later(secs)` the time `secs` from now).
pub(crate) fn decide(
    kind: &str,
    obj: &Value,
    opts: &DeleteOptions,
    now: &str,
    later: &dyn Fn(i64) -> String,
) -> Decision {
    let deleting = meta_str(obj, "deletionTimestamp").is_some();
    let mut new = obj.clone();
    if kind == "Namespace" {
        if deleting {
            return Decision::Unchanged;
        }
        if objects::finalizers(obj).is_empty()
            && obj["spec"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            return Decision::Remove;
        }
        meta_mut(&mut new).insert("deletionTimestamp".into(), json!(now));
        meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
        new["status"]["phase"] = json!("Terminating");
        return Decision::Mark(new);
    }
    match opts.propagation.as_deref() {
        Some("Foreground") => add_finalizer(&mut new, "foregroundDeletion"),
        Some("Orphan") => add_finalizer(&mut new, "orphan"),
        _ => {}
    }
    // Pods on a node terminate gracefully: the node agent kills the processes
    // and finishes the delete with gracePeriodSeconds=0.
    if kind == "Pod"
        && meta_str(obj, "name").is_some()
        && obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    {
        let grace = opts
            .grace
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if grace > 0 && current.is_none_or(|c| grace < c) {
            meta_mut(&mut new).insert("deletionTimestamp".into(), json!(later(grace)));
            meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(grace));
            return Decision::Mark(new);
        }
        if grace > 0 {
            return if new == *obj {
                Decision::Unchanged
            } else {
                Decision::Mark(new)
            };
        }
    }
    if objects::finalizers(&new).is_empty() {
        return Decision::Remove;
    }
    if !deleting {
        meta_mut(&mut new).insert("deletionTimestamp".into(), json!(now));
        meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if new == *obj {
        Decision::Unchanged
    } else {
        Decision::Mark(new)
    }
}

fn check_preconditions(
    rq: &Req,
    opts: &DeleteOptions,
    kv: &KeyValue,
    obj: &Value,
) -> Result<(), ApiError> {
    let info = rq.target.info;
    let uid = meta_str(obj, "uid").unwrap_or("");
    if let Some(want) = &opts.uid {
        if want != uid {
            return Err(ApiError::conflict_msg(
                info.group,
                info.plural,
                name_of(rq),
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
    }
    if let Some(want) = &opts.resource_version {
        if *want != kv.mod_revision.to_string() {
            return Err(ApiError::conflict_msg(info.group, info.plural, name_of(rq), &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}", kv.mod_revision)));
        }
    }
    Ok(())
}

fn later(secs: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Deletes (or marks for deletion) the addressed object; returns what the client sees.
async fn delete_one(st: &AppState, rq: &Req, opts: &DeleteOptions) -> Result<Value, ApiError> {
    let info = rq.target.info;
    if info.group.is_empty()
        && info.kind == "Namespace"
        && PROTECTED_NAMESPACES.contains(&name_of(rq))
    {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{}\" is forbidden: this namespace may not be deleted",
            name_of(rq)
        )));
    }
    for _ in 0..RETRIES {
        let (kv, obj) = read(st, rq).await?;
        check_preconditions(rq, opts, &kv, &obj)?;
        let key = key_of(rq);
        let result = match decide(info.kind, &obj, opts, &now(), &later) {
            Decision::Unchanged => return Ok(obj),
            Decision::Remove if opts.dry_run => return Ok(obj),
            Decision::Remove => services::remove(st, info, &key, kv.mod_revision, &obj)
                .await
                .map(|rev| {
                    let mut o = obj.clone();
                    objects::set_rv(&mut o, rev);
                    o
                }),
            Decision::Mark(mut new) => services::put(
                st,
                info,
                &key,
                Expect::Rev(kv.mod_revision),
                Some(&obj),
                &mut new,
                opts.dry_run,
            )
            .await
            .map(|rev| {
                objects::set_rv(&mut new, rev);
                new
            }),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(WriteError::Api(e)) => return Err(e),
            Err(WriteError::Conflict) => continue,
        }
    }
    Err(ApiError::conflict(info.group, info.plural, name_of(rq)))
}

pub(crate) async fn delete(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let opts = DeleteOptions::from_request(&rq)?;
    let out = delete_one(st, &rq, &opts).await?;
    rest::respond(&rq, 200, &out)
}

pub(crate) async fn delete_collection(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let opts = DeleteOptions::from_request(&rq)?;
    let info = rq.target.info;
    let sel = Selectors::parse(rq.target.info, rq.q("labelSelector"), rq.q("fieldSelector"))?;
    let page = collect(
        st,
        &objects::prefix(info, rq.target.namespace.as_deref()),
        &sel,
        0,
        None,
    )
    .await?;
    let mut deleted = Vec::new();
    for item in page.items {
        let mut target = rq.target.clone();
        target.name = meta_str(&item, "name").map(str::to_string);
        target.namespace = meta_str(&item, "namespace")
            .map(str::to_string)
            .or(target.namespace);
        let one = Req {
            target,
            query: rq.query.clone(),
            accept: String::new(),
            content_type: String::new(),
            user_agent: rq.user_agent.clone(),
            body: rq.body.clone(),
        };
        match delete_one(st, &one, &opts).await {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_resp(
        200,
        &objects::list(info, deleted, st.store.current_revision(), None, None),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(s: i64) -> String {
        format!("T+{s}")
    }

    #[test]
    fn finalizers_mark_instead_of_remove() {
        let obj = json!({"metadata": {"name": "a", "finalizers": ["x"]}});
        match decide("ConfigMap", &obj, &DeleteOptions::default(), "T", &later) {
            Decision::Mark(o) => assert_eq!(o["metadata"]["deletionTimestamp"], "T"),
            other => panic!("{other:?}"),
        }
        let plain = json!({"metadata": {"name": "a"}});
        assert_eq!(
            decide("ConfigMap", &plain, &DeleteOptions::default(), "T", &later),
            Decision::Remove
        );
        let fg = DeleteOptions {
            propagation: Some("Foreground".into()),
            ..Default::default()
        };
        match decide("Deployment", &plain, &fg, "T", &later) {
            Decision::Mark(o) => {
                assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scheduled_pods_terminate_gracefully_and_namespaces_terminate() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        match decide("Pod", &pod, &DeleteOptions::default(), "T", &later) {
            Decision::Mark(o) => {
                assert_eq!(o["metadata"]["deletionTimestamp"], "T+30");
                assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 30);
            }
            other => panic!("{other:?}"),
        }
        let now_opts = DeleteOptions {
            grace: Some(0),
            ..Default::default()
        };
        assert_eq!(
            decide("Pod", &pod, &now_opts, "T", &later),
            Decision::Remove
        );
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            decide("Pod", &unscheduled, &DeleteOptions::default(), "T", &later),
            Decision::Remove
        );
        let ns = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        match decide("Namespace", &ns, &DeleteOptions::default(), "T", &later) {
            Decision::Mark(o) => assert_eq!(o["status"]["phase"], "Terminating"),
            other => panic!("{other:?}"),
        }
    }
}
