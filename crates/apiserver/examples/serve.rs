//! Runs the API server alone for manual testing: `cargo run -p portico-apiserver --example serve -- DIR [127.0.0.1:6443]`.
//! Prints the kubeconfig path; stops on Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: serve DATA_DIR [ADDR]");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = std::net::TcpListener::bind(&addr).expect("bind");
    let port = listener.local_addr().unwrap().port();
    let mut cfg = portico_apiserver::ServerConfig::new(&dir, format!("https://127.0.0.1:{port}"));
    cfg.listeners = vec![listener];
    let prepared = portico_apiserver::prepare(&cfg).expect("prepare");
    println!("kubeconfig: {}", prepared.kubeconfig_path.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(portico_apiserver::run(cfg, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
    .expect("server");
}
