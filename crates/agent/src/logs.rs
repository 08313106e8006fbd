//! Container logs: finding a container's log file and the kubelet-style
//! endpoint (`GET /containerLogs/{namespace}/{pod}/{container}`) the API
//! server's `pods/log` can proxy to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The log file of a container of the newest pod named `pod` in `namespace`:
/// the current run, or the one before it with `previous`.
pub fn find_log(
    data_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Option<PathBuf> {
    let prefix = format!("{namespace}_{pod}_");
    let dir = std::fs::read_dir(data_dir.join("logs"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?
        .path()
        .join(container);
    let mut runs: Vec<u32> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    runs.sort_unstable();
    let run = if previous {
        runs.iter().rev().nth(1)
    } else {
        runs.last()
    }?;
    Some(dir.join(format!("{run}.log")))
}

/// The last `n` lines of `data`.
pub fn tail_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &data[data.len()..];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

#[derive(Clone)]
struct LogState {
    data_dir: PathBuf,
    token: Option<String>,
}

/// The agent's HTTP endpoint: `/healthz` and
/// `/containerLogs/{namespace}/{pod}/{container}?previous=&tailLines=&follow=`.
/// With `token`, requests need `Authorization: Bearer <token>`. Serve it
/// with TLS (or on a private address) as the deployment requires.
pub fn log_router(data_dir: PathBuf, token: Option<String>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(LogState { data_dir, token })
}

async fn container_logs(
    State(st): State<LogState>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &st.token {
        let ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        if !ok {
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
    }
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let Some(path) = find_log(&st.data_dir, &namespace, &pod, &container, flag("previous")) else {
        let msg = if flag("previous") {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is not available")
        };
        return (StatusCode::NOT_FOUND, msg).into_response();
    };
    let data = tokio::fs::read(&path).await.unwrap_or_default();
    let start = match q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => data.len() - tail_lines(&data, n).len(),
        None => 0,
    };
    if !flag("follow") {
        return data[start..].to_vec().into_response();
    }
    // Follow: send what is there, then whatever is appended, until the
    // file goes away (the pod was deleted) or the client hangs up.
    let first = data[start..].to_vec();
    let offset = data.len() as u64;
    let stream = futures::stream::unfold(
        (Some(first), offset, path),
        |(first, offset, path)| async move {
            if let Some(f) = first {
                return Some((Ok::<_, std::io::Error>(f), (None, offset, path)));
            }
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let meta = tokio::fs::metadata(&path).await.ok()?;
                if meta.len() > offset {
                    let data = tokio::fs::read(&path).await.ok()?;
                    let from = usize::try_from(offset)
                        .unwrap_or(data.len())
                        .min(data.len());
                    let chunk = data[from..].to_vec();
                    let next = data.len() as u64;
                    return Some((Ok(chunk), (None, next, path)));
                }
            }
        },
    );
    Body::from_stream(stream).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(tail_lines(b"a\n", 5), b"a\n");
        assert_eq!(tail_lines(b"a\n", 0), b"");
    }

    #[test]
    fn finds_current_and_previous_runs() {
        let d = tempfile::tempdir().unwrap();
        for run in [0, 1] {
            let p = crate::runtime::log_path(d.path(), "default", "web", "u1", "c", run);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("run {run}\n")).unwrap();
        }
        let cur = find_log(d.path(), "default", "web", "c", false).unwrap();
        assert_eq!(std::fs::read_to_string(cur).unwrap(), "run 1\n");
        let prev = find_log(d.path(), "default", "web", "c", true).unwrap();
        assert_eq!(std::fs::read_to_string(prev).unwrap(), "run 0\n");
        assert!(find_log(d.path(), "default", "web2", "c", false).is_none());
    }

    #[tokio::test]
    async fn endpoint_serves_logs_and_checks_the_token() {
        let d = tempfile::tempdir().unwrap();
        let p = crate::runtime::log_path(d.path(), "default", "web", "u1", "c", 0);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "one\ntwo\n").unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = log_router(d.path().to_path_buf(), Some("s3cret".into()));
        tokio::spawn(async move { axum::serve(l, app).await });
        let get = |path: &str, auth: bool| {
            let mut args = vec![
                "-s".to_string(),
                "-w".into(),
                " %{http_code}".into(),
                format!("http://{addr}{path}"),
            ];
            if auth {
                args.extend(["-H".into(), "Authorization: Bearer s3cret".into()]);
            }
            async move {
                String::from_utf8(
                    tokio::process::Command::new("curl")
                        .args(args)
                        .output()
                        .await
                        .unwrap()
                        .stdout,
                )
                .unwrap()
            }
        };
        assert_eq!(
            get("/containerLogs/default/web/c", true).await,
            "one\ntwo\n 200"
        );
        assert_eq!(
            get("/containerLogs/default/web/c?tailLines=1", true).await,
            "two\n 200"
        );
        assert!(get("/containerLogs/default/web/c", false)
            .await
            .ends_with(" 401"));
        assert!(get("/containerLogs/default/nope/c", true)
            .await
            .ends_with(" 404"));
    }
}
