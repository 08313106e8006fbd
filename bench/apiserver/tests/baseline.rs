//! End to end through the real binary against its own baseline server: TLS,
//! HTTP/2 and HTTP/1.1, the watch, the creates and the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn bench(extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portico-bench-apiserver"))
        .args([
            "--services",
            "60",
            "--nodeports",
            "12",
            "--concurrency",
            "4",
            "--trickle",
            "5",
            "--fsync-baseline",
            "--timeout-secs",
            "120",
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn assert_full_run(stdout: &str, protocol: &str) {
    assert!(
        stdout.contains("| | baseline: in-memory echo | baseline: echo + fsync |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| creates OK / failed | 60 / 0 | 60 / 0 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| watch events | ADDED 65 | ADDED 65 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("creates in flight over {protocol} + TLS 1.3")),
        "{stdout}"
    );
}

#[test]
fn baseline_over_http2_sees_every_create_and_event() {
    let (ok, stdout, stderr) = bench(&[]);
    assert!(ok, "{stderr}");
    assert_full_run(&stdout, "HTTP/2");
}

#[test]
fn baseline_over_http1_with_a_connection_per_worker() {
    let (ok, stdout, stderr) = bench(&["--http1"]);
    assert!(ok, "{stderr}");
    assert_full_run(&stdout, "HTTP/1.1");
}

#[test]
fn a_missing_portico_binary_is_a_clear_error() {
    let (ok, _, stderr) = bench(&["--portico", "/nonexistent/portico"]);
    assert!(!ok);
    assert!(stderr.contains("error: server: spawning"), "{stderr}");
    assert!(stderr.contains("/nonexistent/portico"), "{stderr}");
}
