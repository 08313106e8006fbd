//! WATCH: a chunked stream of JSON WatchEvents, one per line, with selectors,
//! BOOKMARKs, Table objects for `kubectl get -w`, and 410 Expired for old revisions.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{header, HeaderValue};
use portico_api::resource::ResourceInfo;
use portico_api::status::ApiError;
use portico_store::{Event, EventKind, StoreError, WatchRecv};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::hooks::{self, Selectors};
use crate::http::{ApiResult, AppState, Req};
use crate::list::collect;
use crate::objects;
use crate::rawjson;

/// How often BOOKMARK events are sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// Default watch length when the client gives no timeoutSeconds (kube-apiserver: 30-60 min).
const DEFAULT_TIMEOUT: u64 = 1800;

/// How a store event looks to one watcher after selector filtering.
#[derive(Debug, PartialEq)]
pub(crate) enum Seen {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    Skip,
}

/// Translates one store event for a watcher with selectors (pure). An object that
/// stops matching is DELETED for this watcher, one that starts matching is ADDED.
pub(crate) fn translate(ev: &Event, sel: &Selectors) -> Result<Seen, ApiError> {
    let matches = |o: &Value| sel.is_empty() || sel.matches(o);
    let prev = ev
        .prev
        .as_ref()
        .map(|p| objects::decode_at(&p.value, ev.revision))
        .transpose()?;
    match ev.kind {
        EventKind::Delete => Ok(match prev {
            Some(p) if matches(&p) => Seen::Deleted(p),
            _ => Seen::Skip,
        }),
        EventKind::Put => {
            let Some(kv) = &ev.kv else {
                return Ok(Seen::Skip);
            };
            let new = objects::decode(kv)?;
            let was = prev.as_ref().is_some_and(&matches);
            let is = matches(&new);
            Ok(match (was, is) {
                (false, true) => Seen::Added(new),
                (true, true) => Seen::Modified(new),
                (true, false) => Seen::Deleted(new),
                (false, false) => Seen::Skip,
            })
        }
    }
}

struct Out {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    info: &'static ResourceInfo,
    table: bool,
    include_object: Option<String>,
    sent_columns: bool,
}

impl Out {
    async fn send(&mut self, kind: &str, obj: Value) -> bool {
        let obj = if self.table && kind != "ERROR" && kind != "BOOKMARK" {
            let mut t = hooks::table(
                self.info,
                std::slice::from_ref(&obj),
                self.include_object.as_deref(),
                json!({"resourceVersion": obj["metadata"]["resourceVersion"].clone()}),
            );
            // Like kube-apiserver, only the first event carries the column headers.
            if self.sent_columns {
                t["columnDefinitions"] = Value::Null;
            }
            self.sent_columns = true;
            t
        } else {
            obj
        };
        self.tx.send(Ok(encode_line(kind, obj))).await.is_ok()
    }

    /// Sends one store event, as this watcher sees it.
    async fn event(&mut self, ev: &Event, sel: &Selectors) -> bool {
        if !self.table && sel.is_empty() {
            // Most watchers (informers) are plain: every one of them gets the
            // same line for an event, so it is encoded once and shared.
            return match plain_line(ev) {
                Some(line) => self.tx.send(Ok(line)).await.is_ok(),
                None => true,
            };
        }
        match translate(ev, sel) {
            Ok(s) => self.seen(s).await,
            Err(e) => self.send("ERROR", e.to_status()).await,
        }
    }

    async fn seen(&mut self, s: Seen) -> bool {
        match s {
            Seen::Added(o) => self.send("ADDED", o).await,
            Seen::Modified(o) => self.send("MODIFIED", o).await,
            Seen::Deleted(o) => self.send("DELETED", o).await,
            Seen::Skip => true,
        }
    }
}

/// The JSON line of a watch event.
fn encode_line(kind: &str, obj: Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The line a watcher without selectors or Table output gets for `ev` (`None`:
/// nothing to send), memoised in the event so that every such watcher shares one
/// decoding and one encoding.
fn plain_line(ev: &Event) -> Option<Bytes> {
    let compute = || match spliced_line(ev) {
        Some(line) => line,
        None => tree_line(ev),
    };
    match ev.memo.get_or_init(compute) {
        Some(line) => line.clone(),
        // The memo holds something else (another consumer's type): compute.
        None => compute(),
    }
}

/// [`plain_line`] without parsing the object: the stored bytes with the revision
/// spliced in (`None` when the bytes need the tree path).
fn spliced_line(ev: &Event) -> Option<Option<Bytes>> {
    // Without selectors a put is ADDED or MODIFIED by whether there was a
    // previous value, and a delete is DELETED at the event's revision.
    let (kind, bytes, rev) = match (&ev.kind, &ev.kv, &ev.prev) {
        (EventKind::Put, Some(kv), prev) => {
            let kind = if prev.is_some() { "MODIFIED" } else { "ADDED" };
            (kind, &kv.value, kv.mod_revision)
        }
        (EventKind::Delete, _, Some(p)) => ("DELETED", &p.value, ev.revision),
        _ => return Some(None),
    };
    rawjson::watch_line(kind, bytes, rev).map(|line| Some(Bytes::from(line)))
}

/// [`plain_line`] through a parsed object.
fn tree_line(ev: &Event) -> Option<Bytes> {
    match translate(ev, &Selectors::default()) {
        Ok(Seen::Added(o)) => Some(encode_line("ADDED", o)),
        Ok(Seen::Modified(o)) => Some(encode_line("MODIFIED", o)),
        Ok(Seen::Deleted(o)) => Some(encode_line("DELETED", o)),
        Ok(Seen::Skip) => None,
        Err(e) => Some(encode_line("ERROR", e.to_status())),
    }
}

fn expired(requested: u64, oldest: u64) -> Value {
    ApiError::expired(format!("too old resource version: {requested} ({oldest})")).to_status()
}

pub(crate) async fn watch(st: &Arc<AppState>, rq: Req) -> ApiResult {
    let info = rq.target.info;
    let sel = Selectors::parse(rq.target.info, rq.q("labelSelector"), rq.q("fieldSelector"))?;
    let prefix = objects::prefix(info, rq.target.namespace.as_deref());
    let bookmarks = rq.q("allowWatchBookmarks") == Some("true") && !rq.wants_table();
    let timeout = rq
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    // WatchList (sendInitialEvents=true): current state first, then a bookmark
    // annotated `k8s.io/initial-events-end`, then changes.
    let watch_list = rq.q("sendInitialEvents") == Some("true");
    let (initial, from) = match rq.q("resourceVersion") {
        _ if watch_list => {
            let page = collect(st, &prefix, &sel, 0, None).await?;
            (page.items, page.rev)
        }
        None | Some("0") => {
            let page = collect(st, &prefix, &sel, 0, None).await?;
            (page.items, page.rev)
        }
        Some(s) => {
            let rv = s
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?;
            (Vec::new(), rv)
        }
    };
    let (tx, rx) = mpsc::channel(64);
    let mut out = Out {
        tx,
        info,
        table: rq.wants_table(),
        include_object: rq.q("includeObject").map(str::to_string),
        sent_columns: false,
    };
    let store_watch = st.store.watch(&prefix, from);
    let st = st.clone();
    let mut stopping = st.shutdown.clone();
    tokio::spawn(async move {
        let mut w = match store_watch {
            Ok(w) => w,
            Err(StoreError::Compacted { requested, oldest }) => {
                out.send("ERROR", expired(requested, oldest)).await;
                return;
            }
            Err(e) => {
                out.send("ERROR", ApiError::internal(e.to_string()).to_status())
                    .await;
                return;
            }
        };
        for o in initial {
            if !out.send("ADDED", o).await {
                return;
            }
        }
        if watch_list {
            let bm = json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": from.to_string(), "creationTimestamp": null, "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !out.send("BOOKMARK", bm).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        let mut last = from;
        loop {
            tokio::select! {
                r = w.recv() => match r {
                    WatchRecv::Event(ev) => {
                        last = last.max(ev.revision);
                        if !out.event(&ev, &sel).await { return; }
                    }
                    // Too slow or store closed: end the stream; the client re-watches.
                    _ => return,
                },
                _ = tick.tick(), if bookmarks => {
                    // Every event up to `now` is already queued for this watch
                    // (the store publishes before advancing the revision), so
                    // deliver them first and the bookmark never runs ahead.
                    let now = st.store.current_revision();
                    loop {
                        match w.try_recv() {
                            WatchRecv::Event(ev) => {
                                last = last.max(ev.revision);
                                if !out.event(&ev, &sel).await { return; }
                            }
                            WatchRecv::Empty => break,
                            _ => return,
                        }
                    }
                    last = last.max(now);
                    let bm = json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": last.to_string(), "creationTimestamp": null}});
                    if !out.send("BOOKMARK", bm).await { return; }
                }
                _ = &mut deadline => return,
                _ = stopping.changed() => return,
                _ = out.tx.closed() => return,
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_store::KeyValue;

    fn kv(labels: Value, rev: u64) -> KeyValue {
        KeyValue {
            key: "/core/pods/default/a".into(),
            value: serde_json::to_vec(&json!({"metadata": {"name": "a", "labels": labels}}))
                .unwrap(),
            create_revision: 1,
            mod_revision: rev,
        }
    }

    #[test]
    fn plain_watchers_share_one_encoding_per_event() {
        let ev = Event {
            kind: EventKind::Put,
            key: "/core/pods/default/a".into(),
            kv: Some(kv(json!({"app": "web"}), 7)),
            prev: Some(kv(json!({"app": "db"}), 6)),
            revision: 7,
            memo: Default::default(),
        };
        // The spliced line is the tree path's, byte for byte.
        assert_eq!(spliced_line(&ev), Some(tree_line(&ev)));
        let first = plain_line(&ev).unwrap();
        let second = plain_line(&ev).unwrap();
        // The same buffer, not an equal copy: encoded once.
        assert_eq!(first.as_ptr(), second.as_ptr());
        let line: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(line["type"], "MODIFIED");
        assert_eq!(line["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(line["object"]["metadata"]["labels"]["app"], "web");
        assert!(first.ends_with(b"}\n"));
        let del = Event {
            kind: EventKind::Delete,
            key: "/core/pods/default/a".into(),
            kv: None,
            prev: Some(kv(json!({"app": "web"}), 7)),
            revision: 8,
            memo: Default::default(),
        };
        assert_eq!(spliced_line(&del), Some(tree_line(&del)));
        let added = Event {
            prev: None,
            memo: Default::default(),
            ..ev.clone()
        };
        assert_eq!(spliced_line(&added), Some(tree_line(&added)));
        assert!(tree_line(&added).is_some_and(|l| l.starts_with(br#"{"type":"ADDED","object":{"#)));
        let line: Value = serde_json::from_slice(&plain_line(&del).unwrap()).unwrap();
        assert_eq!(line["type"], "DELETED");
        assert_eq!(line["object"]["metadata"]["resourceVersion"], "8");
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let sel = Selectors::parse(
            portico_api::resource::find("", "v1", "pods").unwrap(),
            Some("app=web"),
            None,
        )
        .unwrap();
        let put = |prev: Option<KeyValue>, new: KeyValue| Event {
            kind: EventKind::Put,
            key: new.key.clone(),
            revision: new.mod_revision,
            kv: Some(new),
            prev,
            memo: Default::default(),
        };
        let e = put(
            Some(kv(json!({"app": "db"}), 1)),
            kv(json!({"app": "web"}), 2),
        );
        assert!(matches!(translate(&e, &sel).unwrap(), Seen::Added(_)));
        let e = put(
            Some(kv(json!({"app": "web"}), 2)),
            kv(json!({"app": "web", "x": "y"}), 3),
        );
        assert!(matches!(translate(&e, &sel).unwrap(), Seen::Modified(_)));
        let e = put(
            Some(kv(json!({"app": "web"}), 3)),
            kv(json!({"app": "db"}), 4),
        );
        match translate(&e, &sel).unwrap() {
            Seen::Deleted(o) => assert_eq!(o["metadata"]["resourceVersion"], "4"),
            other => panic!("{other:?}"),
        }
        let del = Event {
            kind: EventKind::Delete,
            key: "/core/pods/default/a".into(),
            kv: None,
            prev: Some(kv(json!({"app": "web"}), 4)),
            revision: 5,
            memo: Default::default(),
        };
        match translate(&del, &sel).unwrap() {
            Seen::Deleted(o) => assert_eq!(o["metadata"]["resourceVersion"], "5"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            expired(5, 100)["message"],
            "too old resource version: 5 (100)"
        );
    }
}
