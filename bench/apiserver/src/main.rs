//! Benchmark of `portico server`: creates N Services (some NodePort) through
//! the API with bounded concurrency while a watch times each ADDED event, and
//! reports create latency, throughput, watch delay, server RSS/CPU and
//! allocation correctness next to a same-stack baseline server.
//!
//! `cargo run --release -p portico-bench-apiserver -- --portico target/release/portico`

mod baseline;
mod child;
mod client;
mod kubeconfig;
mod load;
mod procfs;
mod report;
mod run;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Files, sockets, processes.
    #[error("io: {0}")]
    Io(String),
    /// TLS setup or handshake.
    #[error("tls: {0}")]
    Tls(String),
    /// HTTP transport.
    #[error("http: {0}")]
    Http(String),
    /// The kubeconfig could not be used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The server misbehaved (wrong status, early exit, not ready).
    #[error("server: {0}")]
    Server(String),
    /// Bad flags.
    #[error("usage: {0}")]
    Usage(String),
}

/// Creates Services through `portico server` and a baseline server; prints a Markdown report.
#[derive(Debug, Parser)]
#[command(name = "portico-bench-apiserver")]
struct Args {
    /// The portico binary (`cargo build --release -p portico`); without it only the baseline runs.
    #[arg(long)]
    portico: Option<PathBuf>,
    /// Services to create.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// How many of them are type NodePort (the default range holds 2,768).
    #[arg(long, default_value_t = 2_000)]
    nodeports: usize,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Paced single creates after the bulk phase (watch delay on a quiet server).
    #[arg(long, default_value_t = 200)]
    trickle: usize,
    /// Namespace to create the Services in.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Offer only HTTP/1.1 (one keep-alive connection per worker) instead of HTTP/2.
    #[arg(long)]
    http1: bool,
    /// Skip the in-memory baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Also run the baseline that fsyncs every write.
    #[arg(long)]
    fsync_baseline: bool,
    /// `--log` filter passed to portico (default: portico's own default).
    #[arg(long)]
    server_log: Option<String>,
    /// Directory for the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Upper bound on each target's run, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Internal: run the baseline server with this data dir.
    #[arg(long, hide = true)]
    serve_baseline: Option<PathBuf>,
    /// Internal: the baseline server fsyncs each write.
    #[arg(long, hide = true)]
    baseline_fsync: bool,
}

impl Args {
    fn load(&self) -> Result<run::Load, BenchError> {
        if self.services == 0 || self.nodeports > self.services {
            return Err(BenchError::Usage(format!(
                "need 0 < --services and --nodeports ≤ --services (got {} and {})",
                self.services, self.nodeports
            )));
        }
        if self.nodeports > 2768 {
            return Err(BenchError::Usage(
                "the default NodePort range 30000-32767 holds 2,768 ports".into(),
            ));
        }
        if self.concurrency == 0 || self.concurrency > 1024 {
            return Err(BenchError::Usage("--concurrency must be 1..=1024".into()));
        }
        Ok(run::Load {
            services: self.services,
            nodeports: self.nodeports,
            concurrency: self.concurrency,
            trickle: self.trickle,
            namespace: self.namespace.clone(),
            http1: self.http1,
            work_dir: self.work_dir.clone(),
            timeout: Duration::from_secs(self.timeout_secs),
        })
    }

    fn targets(&self) -> Vec<run::Target> {
        let mut t = Vec::new();
        if let Some(binary) = &self.portico {
            // The server runs in its temp dir, so a relative path must be resolved here.
            let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.clone());
            t.push(run::Target::Portico {
                binary,
                log: self.server_log.clone(),
            });
        }
        if !self.no_baseline {
            t.push(run::Target::Baseline { fsync: false });
        }
        if self.fsync_baseline {
            t.push(run::Target::Baseline { fsync: true });
        }
        t
    }
}

async fn bench(args: Args) -> Result<String, BenchError> {
    let load = args.load()?;
    let ctx = report::Context {
        started: jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string(),
        command: format!(
            "cargo run --release -p portico-bench-apiserver -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        machine: procfs::machine(),
    };
    let targets = args.targets();
    if targets.is_empty() {
        return Err(BenchError::Usage(
            "nothing to run: give --portico or drop --no-baseline".into(),
        ));
    }
    let mut results = Vec::new();
    for target in targets {
        eprintln!("running {} ...", target.label());
        let r = run::run(&target, &load).await?;
        eprintln!(
            "  {}: {} ok in {:.2} s, create p99 {} ms",
            r.label,
            r.bulk_ok,
            r.bulk_elapsed.as_secs_f64(),
            r.create
                .map_or("–".to_string(), |s| format!("{:.2}", s.p99))
        );
        results.push(r);
    }
    Ok(report::render(&ctx, &load, &results))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = args.serve_baseline.clone() {
        return match rt.block_on(baseline::serve(dir, args.baseline_fsync)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(bench(args)) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
