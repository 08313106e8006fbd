//! The load: one watch on the namespace's Services, N creates from a bounded
//! pool of workers, a paced trickle, and a paged list to check what the store holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Conn};
use crate::BenchError;

/// One create request as the client saw it.
#[derive(Debug, Clone)]
pub struct CreateRecord {
    /// Service name.
    pub name: String,
    /// Created as type NodePort.
    pub nodeport_wanted: bool,
    /// Request handed to the connection.
    pub sent: Instant,
    /// Whole response received (the write acknowledgement).
    pub done: Instant,
    /// HTTP status; 0 when the request failed without one.
    pub status: u16,
    /// `spec.clusterIP` of a successful response.
    pub cluster_ip: Option<String>,
    /// `spec.ports[0].nodePort` of a successful response.
    pub node_port: Option<u16>,
    /// For failures: the Status message or transport error.
    pub error: Option<String>,
}

/// The body of Service `name`.
pub fn service_body(name: &str, nodeport: bool) -> Vec<u8> {
    let v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "bench"}},
        "spec": {
            "type": if nodeport { "NodePort" } else { "ClusterIP" },
            "selector": {"app": name},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
        }
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Creates one Service and times it.
async fn create_one(
    client: &Client,
    conn: &mut Conn,
    ns: &str,
    name: String,
    nodeport: bool,
    timeout: Duration,
) -> CreateRecord {
    let path = format!("/api/v1/namespaces/{ns}/services");
    let sent = Instant::now();
    let result = match client.request(Method::POST, &path, Some(service_body(&name, nodeport))) {
        Ok(req) => tokio::time::timeout(timeout, conn.call(req))
            .await
            .unwrap_or_else(|_| Err(BenchError::Http(format!("no response within {timeout:?}")))),
        Err(e) => Err(e),
    };
    let done = Instant::now();
    let mut rec = CreateRecord {
        name,
        nodeport_wanted: nodeport,
        sent,
        done,
        status: 0,
        cluster_ip: None,
        node_port: None,
        error: None,
    };
    match result {
        Ok((status, body)) => {
            rec.status = status;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status == 201 || status == 200 {
                rec.cluster_ip = v["spec"]["clusterIP"].as_str().map(str::to_string);
                rec.node_port = v["spec"]["ports"][0]["nodePort"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok());
            } else {
                let msg = v["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
                    });
                rec.error = Some(msg);
            }
        }
        Err(e) => rec.error = Some(e.to_string()),
    }
    rec
}

/// Creates `names` with `concurrency` workers. HTTP/2 workers share `shared`;
/// HTTP/1.1 workers each open their own keep-alive connection.
pub async fn create_all(
    client: &Client,
    shared: &Conn,
    ns: &str,
    plan: Arc<Vec<(String, bool)>>,
    concurrency: usize,
    timeout: Duration,
) -> Result<Vec<CreateRecord>, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let mut conn = match shared.share() {
            Some(c) => c,
            None => client.connect().await?,
        };
        let (client, ns, plan, next) = (client.clone(), ns.to_string(), plan.clone(), next.clone());
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, np)) = plan.get(i) else { break };
                let rec = create_one(&client, &mut conn, &ns, name.clone(), *np, timeout).await;
                // A broken HTTP/1.1 connection stays broken: reconnect once per failure.
                if rec.status == 0 {
                    if let (Conn::H1(_), Ok(c)) = (&conn, client.connect().await) {
                        conn = c;
                    }
                }
                out.push(rec);
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = workers.join_next().await {
        all.extend(r.map_err(|e| BenchError::Http(format!("worker: {e}")))?);
    }
    Ok(all)
}

/// Creates `plan` one at a time, one every `interval`: the watch delay of a lightly loaded server.
pub async fn trickle(
    client: &Client,
    conn: &mut Conn,
    ns: &str,
    plan: &[(String, bool)],
    interval: Duration,
    timeout: Duration,
) -> Vec<CreateRecord> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(interval);
    for (name, np) in plan {
        tick.tick().await;
        out.push(create_one(client, conn, ns, name.clone(), *np, timeout).await);
    }
    out
}

/// What the watch saw.
#[derive(Debug, Default)]
pub struct WatchLog {
    /// Arrival time of each ADDED event, by Service name.
    pub added: HashMap<String, Instant>,
    /// Events by type (ADDED, MODIFIED, BOOKMARK, ERROR, ...).
    pub by_type: BTreeMap<String, usize>,
    /// Lines that were not JSON watch events.
    pub bad_lines: usize,
    /// Why the stream ended early, if it did.
    pub ended: Option<String>,
}

/// Reads a watch stream until `expected` ADDED events arrived, `stop` fires,
/// or the stream ends. Each line is stamped with the arrival time of the
/// frame that completed it.
pub async fn read_watch(
    resp: http::Response<hyper::body::Incoming>,
    expected: usize,
    stop: CancellationToken,
) -> WatchLog {
    let mut log = WatchLog::default();
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while log.added.len() < expected {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.cancelled() => break,
        };
        let at = Instant::now();
        let data = match frame {
            None => {
                log.ended = Some("stream ended by the server".into());
                break;
            }
            Some(Err(e)) => {
                log.ended = Some(format!("stream error: {e}"));
                break;
            }
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            record_line(&mut log, &line, at);
        }
    }
    log
}

fn record_line(log: &mut WatchLog, line: &[u8], at: Instant) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let Ok(ev) = serde_json::from_slice::<Value>(line) else {
        log.bad_lines += 1;
        return;
    };
    let kind = ev["type"].as_str().unwrap_or("?").to_string();
    if kind == "ADDED" {
        if let Some(name) = ev["object"]["metadata"]["name"].as_str() {
            log.added.entry(name.to_string()).or_insert(at);
        }
    }
    if kind == "ERROR" && log.ended.is_none() {
        log.ended = Some(format!(
            "ERROR event: {}",
            ev["object"]["message"].as_str().unwrap_or("")
        ));
    }
    *log.by_type.entry(kind).or_default() += 1;
}

/// GETs `path` (JSON) and fails on a non-200 status, naming the request.
pub async fn get_json(client: &Client, conn: &mut Conn, path: &str) -> Result<Value, BenchError> {
    let (status, body) = conn.call(client.request(Method::GET, path, None)?).await?;
    if status != 200 {
        return Err(BenchError::Server(format!(
            "GET {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| BenchError::Server(format!("GET {path}: bad JSON: {e}")))
}

/// Lists a collection in pages of 500 and returns its items and the time it took.
pub async fn list_all(
    client: &Client,
    conn: &mut Conn,
    path: &str,
) -> Result<(Vec<Value>, Duration), BenchError> {
    let start = Instant::now();
    let mut items = Vec::new();
    let mut cont = String::new();
    // Bounded: at most 1,000 pages.
    for _ in 0..1000 {
        let mut page = get_json(client, conn, &format!("{path}?limit=500{cont}")).await?;
        if let Some(Value::Array(a)) = page.get_mut("items").map(Value::take) {
            items.extend(a);
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = format!("&continue={}", percent_encode(c)),
            _ => return Ok((items, start.elapsed())),
        }
    }
    Err(BenchError::Server(format!(
        "GET {path}: more than 1000 pages"
    )))
}

/// Minimal query-value encoding (continue tokens are base64 with `=`, `+`, `/`).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_bodies_ask_for_the_type_and_nothing_allocated() {
        let v: Value = serde_json::from_slice(&service_body("svc-00001", true)).unwrap();
        assert_eq!(v["spec"]["type"], "NodePort");
        assert_eq!(v["metadata"]["name"], "svc-00001");
        assert!(v["spec"]["ports"][0].get("nodePort").is_none());
        assert!(v["spec"].get("clusterIP").is_none());
        let c: Value = serde_json::from_slice(&service_body("x", false)).unwrap();
        assert_eq!(c["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn watch_lines_are_counted_by_type_and_first_added_wins() {
        let mut log = WatchLog::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        record_line(
            &mut log,
            br#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#,
            t0,
        );
        record_line(
            &mut log,
            br#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#,
            t1,
        );
        record_line(
            &mut log,
            br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#,
            t1,
        );
        record_line(&mut log, b"not json\n", t1);
        record_line(&mut log, b"\n", t1);
        assert_eq!(log.added.get("a"), Some(&t0));
        assert_eq!(log.by_type.get("ADDED"), Some(&2));
        assert_eq!(log.by_type.get("BOOKMARK"), Some(&1));
        assert_eq!(log.bad_lines, 1);
        record_line(
            &mut log,
            br#"{"type":"ERROR","object":{"code":410,"message":"too old resource version"}}"#,
            t1,
        );
        assert_eq!(
            log.ended.as_deref(),
            Some("ERROR event: too old resource version")
        );
    }

    #[test]
    fn continue_tokens_are_query_safe() {
        assert_eq!(percent_encode("eyJ+/=a"), "eyJ%2B%2F%3Da");
    }
}
