//! The `portico` binary: parses the command line and hands off to the component crates.

mod cli;
mod compose;
mod up;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

// jemalloc instead of glibc malloc: the API server and the controllers'
// caches allocate many small, short-lived JSON values from several threads;
// with glibc, malloc/free were about a fifth of the server's CPU under the
// 10,000-Service benchmark (BENCHMARKS.md, "API server: 10,000 Service creates").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let result = match cli.command {
        // agnhost runs as a pod's container process; it builds its own runtime.
        Command::Agnhost { args } => return portico_agent::agnhost_main(args),
        Command::Agent(args) => {
            // Namespaces are per thread and inherited by new threads, so the
            // switch must happen before the runtime starts its workers.
            if let Some(ns) = &args.netns {
                if let Err(e) = portico_cluster::netns::enter(ns) {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            runtime().and_then(|rt| rt.block_on(compose::agent(args)))
        }
        Command::Server(args) => runtime().and_then(|rt| rt.block_on(compose::server(args))),
        Command::Up(args) => runtime().and_then(|rt| rt.block_on(up::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
