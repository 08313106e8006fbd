//! The report: a Markdown section ready to paste into BENCHMARKS.md (pure).

use std::fmt::Write as _;

use crate::procfs::Memory;
use crate::run::{Load, TargetResult};
use crate::stats::Summary;

/// Goals from the issue, at 10,000 Services.
pub const GOAL_CREATE_P99_MS: f64 = 20.0;
/// Watch delivery delay p99 goal.
pub const GOAL_WATCH_P99_MS: f64 = 10.0;
/// Server RSS goal.
pub const GOAL_RSS_MIB: f64 = 200.0;

/// Facts about the run that are not measurements.
#[derive(Debug, Clone)]
pub struct Context {
    /// UTC time the run started.
    pub started: String,
    /// The command line.
    pub command: String,
    /// CPU, memory, kernel.
    pub machine: String,
}

fn f(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn dist(s: Option<Summary>) -> String {
    s.map_or_else(
        || "–".into(),
        |s| format!("{} / {} / {} / {}", f(s.p50), f(s.p90), f(s.p99), f(s.max)),
    )
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("×{}", f(a / b)),
        _ => "–".into(),
    }
}

/// What the ratio column compares for a row.
enum Num {
    /// No ratio (counts, or lower-bound delays whose ratio means nothing).
    Skip,
    /// One number.
    One(Option<f64>),
    /// A distribution: p50 and p99 are compared.
    Dist(Option<Summary>),
}

fn num_ratio(p: Num, b: Num) -> String {
    match (p, b) {
        (Num::One(a), Num::One(b)) => ratio(a, b),
        (Num::Dist(Some(a)), Num::Dist(Some(b))) => format!(
            "p50 {}, p99 {}",
            ratio(Some(a.p50), Some(b.p50)),
            ratio(Some(a.p99), Some(b.p99))
        ),
        _ => "–".into(),
    }
}

fn creates_per_s(r: &TargetResult) -> Option<f64> {
    let s = r.bulk_elapsed.as_secs_f64();
    (s > 0.0).then(|| r.bulk_ok as f64 / s)
}

fn cpu_per_create(r: &TargetResult) -> Option<f64> {
    (r.bulk_ok > 0).then(|| r.cpu_bulk * 1000.0 / r.bulk_ok as f64)
}

fn mem(m: Memory) -> String {
    f(mib(m.rss_kib))
}

/// Renders the report: one column per target, the last column is portico ÷ the first baseline.
pub fn render(ctx: &Context, load: &Load, results: &[TargetResult]) -> String {
    let mut o = String::new();
    let portico = results.iter().find(|r| r.is_portico);
    let base = results.iter().find(|r| !r.is_portico);
    let _ = writeln!(o, "### Run of {}\n", ctx.started);
    let _ = writeln!(o, "- Command: `{}`", ctx.command);
    let _ = writeln!(o, "- Machine: {}", ctx.machine);
    let loads: Vec<String> = results
        .iter()
        .map(|r| format!("{}: {} → {}", r.label, r.load_before, r.load_after))
        .collect();
    let _ = writeln!(
        o,
        "- Load average (1/5/15 min) before → after each target: {}",
        loads.join("; ")
    );
    let proto = results.first().map_or("?", |r| r.protocol.as_str());
    let _ = writeln!(
        o,
        "- Load: {} Services ({} NodePort, spread evenly; the rest ClusterIP; one port each, a selector, no pods) in namespace `{}`, {} creates in flight over {proto} + TLS 1.3 (rustls/ring), then, once the server is quiet (under 10 % of a core), {} paced creates (one per {} ms). One watch (own connection) from the list resourceVersion, opened before the first create.\n",
        load.services,
        load.nodeports,
        load.namespace,
        load.concurrency,
        load.trickle,
        crate::run::TRICKLE_INTERVAL.as_millis()
    );

    let mut header = String::from("| | ");
    header.push_str(
        &results
            .iter()
            .map(|r| r.label.clone())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    let with_ratio = portico.is_some() && base.is_some();
    if with_ratio {
        let _ = write!(
            header,
            " | portico ÷ {}",
            base.map_or("", |b| b.label.as_str())
        );
    }
    let _ = writeln!(o, "{header} |");
    let _ = writeln!(
        o,
        "|{}",
        "---|".repeat(results.len() + 1 + usize::from(with_ratio))
    );
    let mut row =
        |name: &str, cell: &dyn Fn(&TargetResult) -> String, num: &dyn Fn(&TargetResult) -> Num| {
            let mut line = format!("| {name} | ");
            line.push_str(&results.iter().map(cell).collect::<Vec<_>>().join(" | "));
            if let (true, Some(p), Some(b)) = (with_ratio, portico, base) {
                let _ = write!(line, " | {}", num_ratio(num(p), num(b)));
            }
            let _ = writeln!(o, "{line} |");
        };
    row(
        "creates OK / failed",
        &|r| format!("{} / {}", r.bulk_ok, r.failures.values().sum::<usize>()),
        &|_| Num::Skip,
    );
    row(
        "bulk time (s)",
        &|r| f(r.bulk_elapsed.as_secs_f64()),
        &|r| Num::One(Some(r.bulk_elapsed.as_secs_f64())),
    );
    row(
        "creates/s",
        &|r| creates_per_s(r).map_or("–".into(), |x| format!("{x:.0}")),
        &|r| Num::One(creates_per_s(r)),
    );
    row(
        "create latency p50 / p90 / p99 / max (ms)",
        &|r| dist(r.create),
        &|r| Num::Dist(r.create),
    );
    row(
        "watch delay from request sent, p50 / p90 / p99 / max (ms)",
        &|r| dist(r.watch_from_sent),
        &|r| Num::Dist(r.watch_from_sent),
    );
    row(
        "watch delay from response received, p50 / p90 / p99 / max (ms)",
        &|r| dist(r.watch_from_ack),
        &|_| Num::Skip,
    );
    row(
        "paced: create latency p50 / p90 / p99 / max (ms)",
        &|r| dist(r.trickle_create),
        &|r| Num::Dist(r.trickle_create),
    );
    row(
        "paced: watch delay from request sent (ms)",
        &|r| dist(r.trickle_watch_from_sent),
        &|r| Num::Dist(r.trickle_watch_from_sent),
    );
    row(
        "paced: watch delay from response received (ms)",
        &|r| dist(r.trickle_watch_from_ack),
        &|_| Num::Skip,
    );
    row(
        "server RSS idle → after bulk → after paced → after lists (MiB)",
        &|r| {
            format!(
                "{} → {} → {} → {}",
                mem(r.mem_idle),
                mem(r.mem_after_bulk),
                mem(r.mem_before_list),
                mem(r.mem_end)
            )
        },
        &|r| Num::One(Some(mib(r.mem_after_bulk.rss_kib))),
    );
    row(
        "server peak RSS, VmHWM (MiB)",
        &|r| {
            mem(Memory {
                rss_kib: r.mem_end.hwm_kib,
                hwm_kib: 0,
            })
        },
        &|r| Num::One(Some(mib(r.mem_end.hwm_kib))),
    );
    row(
        "server CPU during bulk / whole run (s)",
        &|r| format!("{} / {}", f(r.cpu_bulk), f(r.cpu_total)),
        &|r| Num::One(Some(r.cpu_bulk)),
    );
    row(
        "server CPU per bulk create (ms)",
        &|r| cpu_per_create(r).map_or("–".into(), f),
        &|r| Num::One(cpu_per_create(r)),
    );
    row(
        "server busy after the bulk (s)",
        &|r| {
            r.settle
                .map_or_else(|| "still busy at the bound".into(), |d| f(d.as_secs_f64()))
        },
        &|_| Num::Skip,
    );
    row(
        "server busy after the paced phase (s)",
        &|r| {
            r.settle_end
                .map_or_else(|| "still busy at the bound".into(), |d| f(d.as_secs_f64()))
        },
        &|_| Num::Skip,
    );
    row(
        "watch events",
        &|r| {
            let mut s = r
                .watch_events
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(e) = &r.watch_ended {
                let _ = write!(s, " (ended: {e})");
            }
            s
        },
        &|_| Num::Skip,
    );
    o.push('\n');
    o.push_str("Latencies in ms as p50 / p90 / p99 / max; the ratio column compares p50 and p99 for them, RSS after the bulk, and CPU during the bulk. \"From request sent\" is the conservative watch delay (an upper bound: it contains the create itself); \"from response received\" is a lower bound and is negative when the event arrives before the create's response.\n\n");

    if let Some(p) = portico {
        let c = &p.correctness;
        let _ = writeln!(
            o,
            "Correctness ({}): {} created, {} distinct ClusterIPs ({} missing), {} NodePort Services with {} distinct nodePorts ({} wrong), {} of {} ADDED events seen → **{}**.",
            p.label,
            c.created,
            c.distinct_cluster_ips,
            c.missing_cluster_ips,
            c.nodeport_created,
            c.distinct_node_ports,
            c.wrong_node_ports,
            c.watched,
            c.created,
            if c.ok(load.services, load.nodeports) { "OK" } else { "FAILED" }
        );
        if let Some((n, ips, took)) = p.listed {
            let _ = writeln!(o, "A paged list (limit=500) after the run returned {n} Services with {ips} distinct ClusterIPs in {} ms.", f(took.as_secs_f64() * 1000.0));
        }
        match &p.endpointslices {
            Some(Ok(n)) => {
                let _ = writeln!(o, "EndpointSlices in the namespace after the run (controllers' work during the load): {n}.");
            }
            Some(Err(e)) => {
                let _ = writeln!(o, "EndpointSlices could not be listed: {e}.");
            }
            None => {}
        }
        let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
        let cp99 = p.create.map_or(f64::INFINITY, |s| s.p99);
        let wp99 = p.watch_from_sent.map_or(f64::INFINITY, |s| s.p99);
        let wlow = p.watch_from_ack.map_or(f64::INFINITY, |s| s.p99);
        let rss = mib(p.mem_end.hwm_kib);
        let _ = writeln!(
            o,
            "\nGoals at {} Services: create p99 < {GOAL_CREATE_P99_MS} ms: {} ({} ms); watch delay p99 < {GOAL_WATCH_P99_MS} ms: {} from request sent ({} ms), {} from response received ({} ms); RSS < {GOAL_RSS_MIB} MiB: {} (peak {} MiB).",
            load.services,
            verdict(cp99 < GOAL_CREATE_P99_MS),
            f(cp99),
            verdict(wp99 < GOAL_WATCH_P99_MS),
            f(wp99),
            verdict(wlow < GOAL_WATCH_P99_MS),
            f(wlow),
            verdict(rss < GOAL_RSS_MIB),
            f(rss)
        );
    }
    for r in results.iter().filter(|r| !r.first_errors.is_empty()) {
        let by: Vec<String> = r
            .failures
            .iter()
            .map(|(s, n)| format!("HTTP {s}: {n}"))
            .collect();
        let _ = writeln!(
            o,
            "\nFailures against {} ({}), first ones:",
            r.label,
            by.join(", ")
        );
        for e in &r.first_errors {
            let _ = writeln!(o, "- `{e}`");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load() -> Load {
        Load {
            services: 2,
            nodeports: 1,
            concurrency: 2,
            trickle: 0,
            namespace: "bench".into(),
            http1: false,
            work_dir: None,
            timeout: Duration::from_secs(1),
        }
    }

    fn summary(p99: f64) -> Option<Summary> {
        Some(Summary {
            count: 2,
            p50: 1.0,
            p90: 2.0,
            p99,
            max: p99,
            min: 0.5,
        })
    }

    #[test]
    fn shows_ratio_goals_and_failures() {
        let portico = TargetResult {
            label: "portico server".into(),
            is_portico: true,
            protocol: "HTTP/2".into(),
            bulk_elapsed: Duration::from_secs(2),
            bulk_ok: 1,
            create: summary(30.0),
            watch_from_sent: summary(8.0),
            watch_from_ack: summary(3.0),
            mem_end: Memory {
                rss_kib: 100 * 1024,
                hwm_kib: 150 * 1024,
            },
            failures: [(422, 1)].into_iter().collect(),
            first_errors: vec!["POST svc-00001: HTTP 422: bad".into()],
            ..TargetResult::default()
        };
        let base = TargetResult {
            label: "baseline: in-memory echo".into(),
            bulk_elapsed: Duration::from_secs(1),
            bulk_ok: 2,
            create: summary(3.0),
            ..TargetResult::default()
        };
        let ctx = Context {
            started: "2026-12-04 16:00 UTC".into(),
            command: "bench".into(),
            machine: "2 cpus".into(),
        };
        let text = render(&ctx, &load(), &[portico, base]);
        assert!(text.contains("| create latency p50 / p90 / p99 / max (ms) | 1.00 / 2.00 / 30.0 / 30.0 | 1.00 / 2.00 / 3.00 / 3.00 | p50 ×1.00, p99 ×10.0 |"), "{text}");
        assert!(
            text.contains("| bulk time (s) | 2.00 | 1.00 | ×2.00 |"),
            "{text}"
        );
        assert!(
            text.contains("create p99 < 20 ms: **not met** (30.0 ms)"),
            "{text}"
        );
        assert!(
            text.contains("watch delay p99 < 10 ms: met from request sent (8.00 ms)"),
            "{text}"
        );
        assert!(text.contains("RSS < 200 MiB: met (peak 150 MiB)"), "{text}");
        assert!(
            text.contains("Correctness (portico server): 0 created"),
            "{text}"
        );
        assert!(text.contains("→ **FAILED**"), "{text}");
        assert!(text.contains("- `POST svc-00001: HTTP 422: bad`"), "{text}");
    }
}
