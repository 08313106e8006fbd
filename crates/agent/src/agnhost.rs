//! The built-in agnhost-compatible test server (the subset of
//! `registry.k8s.io/e2e-test-images/agnhost` that Service tests use):
//! `netexec`, `serve-hostname` and `pause`. It runs as a container process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::{ConnectInfo, Query};
use axum::routing::get;
use axum::Router;

/// Entry point of `portico agnhost <subcommand> [flags]`.
pub fn agnhost_main(args: Vec<String>) -> ExitCode {
    // The runtime's container init shares this entry point (see `init`);
    // it must run before any runtime or thread exists.
    if args.first().map(String::as_str) == Some(crate::init::SUBCOMMAND) {
        return crate::init::init_main(args.get(1..).unwrap_or_default());
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agnhost: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sub = args.first().map(String::as_str).unwrap_or("");
    let flags = Flags::parse(args.get(1..).unwrap_or_default());
    let result = match sub {
        "netexec" => rt.block_on(netexec(
            flags.port("http-port").unwrap_or(8080),
            flags
                .port("udp-port")
                .filter(|p| *p != 0 && flags.get("udp-port") != Some("-1")),
        )),
        "serve-hostname" => rt.block_on(serve_hostname(flags.port("port").unwrap_or(9376))),
        "pause" => rt.block_on(pause()),
        other => {
            eprintln!(
                "agnhost: unknown subcommand {other:?} (supported: netexec, serve-hostname, pause)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agnhost: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name=value` / `--name value` flags.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Self {
        let mut m = HashMap::new();
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
                continue;
            };
            if let Some((k, v)) = name.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            } else if let Some(v) = it.next_if(|n| !n.starts_with('-')) {
                m.insert(name.to_string(), v.clone());
            } else {
                m.insert(name.to_string(), "true".to_string());
            }
        }
        Self(m)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    fn port(&self, k: &str) -> Option<u16> {
        self.get(k).and_then(|v| v.parse().ok())
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The reply of netexec's UDP server to one datagram.
pub fn udp_reply(msg: &str, client: SocketAddr) -> String {
    let msg = msg.trim();
    if msg == "hostname" {
        hostname()
    } else if let Some(rest) = msg.strip_prefix("echo ") {
        rest.to_string()
    } else if msg == "clientip" {
        client.to_string()
    } else {
        String::new()
    }
}

async fn netexec(http_port: u16, udp_port: Option<u16>) -> std::io::Result<()> {
    if let Some(p) = udp_port {
        let sock = tokio::net::UdpSocket::bind(("0.0.0.0", p)).await?;
        eprintln!("Started UDP server on port {p}");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let reply = udp_reply(&String::from_utf8_lossy(&buf[..n]), from);
                let _ = sock.send_to(reply.as_bytes(), from).await;
            }
        });
    }
    let app = Router::new()
        .route(
            "/",
            get(|| async { format!("NOW: {}", jiff::Timestamp::now()) }),
        )
        .route("/hostname", get(|| async { hostname() }))
        .route(
            "/clientip",
            get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
        )
        .route(
            "/echo",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                q.get("msg").cloned().unwrap_or_default()
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/exit", get(exit_handler));
    let l = tokio::net::TcpListener::bind(("0.0.0.0", http_port)).await?;
    eprintln!("Started HTTP server on port {http_port}");
    axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await
}

/// `/exit?code=N`: the container exits with N (tests of restarts use it).
async fn exit_handler(Query(q): Query<HashMap<String, String>>) -> &'static str {
    let code = q
        .get("code")
        .and_then(|c| c.parse::<i32>().ok())
        .unwrap_or(0);
    std::process::exit(code)
}

async fn serve_hostname(port: u16) -> std::io::Result<()> {
    let app = Router::new().fallback(|| async { hostname() });
    let l = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    eprintln!("Serving on port {port}.");
    axum::serve(l, app).await
}

async fn pause() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_both_forms() {
        let f = Flags::parse(&[
            "--http-port=8081".to_string(),
            "--udp-port".to_string(),
            "9000".to_string(),
        ]);
        assert_eq!(f.port("http-port"), Some(8081));
        assert_eq!(f.port("udp-port"), Some(9000));
    }

    #[test]
    fn udp_commands() {
        let a: SocketAddr = "10.0.0.1:5555".parse().unwrap();
        assert_eq!(udp_reply("echo hi there\n", a), "hi there");
        assert_eq!(udp_reply("clientip", a), "10.0.0.1:5555");
        assert_eq!(udp_reply("hostname", a), hostname());
    }
}
