//! Test helper binary: `portico-agent-testbin agnhost <args>` runs the
//! built-in agnhost, like `portico agnhost` does in the real binary.

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("agnhost") => portico_agent::agnhost_main(args.collect()),
        _ => {
            eprintln!("usage: portico-agent-testbin agnhost <subcommand> [flags]");
            std::process::ExitCode::from(2)
        }
    }
}
