//! LIST: prefix scans with `limit`/`continue`, label and field selectors, Table output.

use std::sync::Arc;

use base64::Engine;
use portico_api::status::ApiError;
use serde_json::{json, Value};

use crate::hooks::{self, Selectors};
use crate::http::{json as json_resp, ApiResult, AppState, Req};
use crate::objects;
use crate::rest::store_err;

/// Keys read per store call while filling a page.
const SCAN_CHUNK: usize = 500;

/// A continue token: where the previous page stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Continue {
    pub start_after: String,
    pub rv: u64,
}

pub(crate) fn encode_continue(c: &Continue) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": c.rv, "start": c.start_after}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_continue(s: &str) -> Result<Continue, ApiError> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok(Continue {
        start_after: v["start"].as_str().ok_or_else(bad)?.to_string(),
        rv: v["rv"].as_u64().ok_or_else(bad)?,
    })
}

/// One page of matching objects.
pub(crate) struct Page {
    pub items: Vec<Value>,
    pub rev: u64,
    pub cont: Option<String>,
}

/// Reads matching objects under `prefix`, at most `limit` (0 = all).
pub(crate) async fn collect(
    st: &AppState,
    prefix: &str,
    sel: &Selectors,
    limit: usize,
    cont: Option<Continue>,
) -> Result<Page, ApiError> {
    let mut start_after = cont.as_ref().map(|c| c.start_after.clone());
    let mut items = Vec::new();
    let mut first_rev = None;
    loop {
        let want = if limit == 0 {
            None
        } else {
            Some(SCAN_CHUNK.max(limit))
        };
        let (kvs, rev) = st
            .store
            .list(prefix, start_after.as_deref(), want)
            .await
            .map_err(store_err)?;
        first_rev.get_or_insert(rev);
        let exhausted = want.is_none_or(|w| kvs.len() < w);
        for kv in &kvs {
            let obj = objects::decode(kv)?;
            if sel.is_empty() || sel.matches(&obj) {
                items.push(obj);
            }
            start_after = Some(kv.key.clone());
            if limit != 0 && items.len() == limit {
                // Stop exactly at the page boundary so the token resumes after this key.
                let more = !exhausted || kvs.last().is_some_and(|l| l.key != kv.key);
                let rev = cont.as_ref().map_or(first_rev.unwrap_or(rev), |c| c.rv);
                let token = more.then(|| {
                    encode_continue(&Continue {
                        start_after: kv.key.clone(),
                        rv: rev,
                    })
                });
                return Ok(Page {
                    items,
                    rev,
                    cont: token,
                });
            }
        }
        if exhausted {
            let rev = cont.as_ref().map_or(first_rev.unwrap_or(rev), |c| c.rv);
            return Ok(Page {
                items,
                rev,
                cont: None,
            });
        }
    }
}

pub(crate) async fn list(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let info = rq.target.info;
    let sel = Selectors::parse(rq.target.info, rq.q("labelSelector"), rq.q("fieldSelector"))?;
    let limit: usize = rq.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let cont = rq.q("continue").map(decode_continue).transpose()?;
    let prefix = objects::prefix(info, rq.target.namespace.as_deref());
    let page = collect(st, &prefix, &sel, limit, cont).await?;
    if rq.wants_table() {
        let mut meta = json!({"resourceVersion": page.rev.to_string()});
        if let Some(c) = &page.cont {
            meta["continue"] = json!(c);
        }
        return Ok(json_resp(
            200,
            &hooks::table(info, &page.items, rq.q("includeObject"), meta),
        ));
    }
    Ok(json_resp(
        200,
        &objects::list(info, page.items, page.rev, page.cont, None),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips() {
        let c = Continue {
            start_after: "/core/services/default/b".into(),
            rv: 42,
        };
        assert_eq!(decode_continue(&encode_continue(&c)).unwrap(), c);
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }
}
