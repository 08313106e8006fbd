#!/usr/bin/env python3
"""Helpers for bench/proxy/dataplane.sh (stdlib only).

  dataplane.py connect N LABEL=HOST:PORT ...   TCP connect times, targets interleaved
  dataplane.py summary RESULTS.tsv CONNECT.tsv  Markdown tables with ratios to direct
"""
import socket
import statistics
import sys
import time

# Goals of issue 5: service path requests/s as a fraction of direct.
GOALS = {"keepalive": 0.98, "close": 0.95}


def pct(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def connect(n, targets):
    """Times n TCP connects per target, round-robin over the targets so drift
    (other work on the machine) hits every target alike. Prints one line per
    target: LABEL count failures p50 p90 p99 mean (microseconds)."""
    parsed = []
    for t in targets:
        label, addr = t.split("=", 1)
        host, port = addr.rsplit(":", 1)
        parsed.append((label, host, int(port)))
    times = {label: [] for label, _, _ in parsed}
    failures = {label: 0 for label, _, _ in parsed}
    deadline = time.monotonic() + 120  # bound the whole loop in time too
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        for label, host, port in parsed:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            t0 = time.perf_counter_ns()
            try:
                s.connect((host, port))
                times[label].append((time.perf_counter_ns() - t0) / 1000.0)
            except OSError:
                failures[label] += 1
            finally:
                s.close()
    for label, _, _ in parsed:
        v = times[label]
        if not v:
            print(f"{label}\t0\t{failures[label]}\t-\t-\t-\t-")
            continue
        print(
            f"{label}\t{len(v)}\t{failures[label]}\t{pct(v, 50):.1f}\t{pct(v, 90):.1f}"
            f"\t{pct(v, 99):.1f}\t{statistics.mean(v):.1f}"
        )


def read_tsv(path):
    with open(path) as f:
        lines = [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]
    header, rows = lines[0], lines[1:]
    return [dict(zip(header, r)) for r in rows]


def fmt_int(x):
    return f"{x:,.0f}"


def summary(results_path, connect_path):
    rows = read_tsv(results_path)
    # (group, mode, kind) -> {rep: row}
    runs = {}
    order = []
    for r in rows:
        key = (r["group"], r["mode"], r["kind"])
        if key not in runs:
            runs[key] = {}
            order.append(key)
        runs[key][r["rep"]] = r
    # The ratio that counts is the median of the per-rep ratios: each rep's
    # Service run and direct run are minutes apart at most, so a load swing
    # on the machine moves both, and one outlier rep cannot move the median.
    print("| from | mode | path | target | req/s mean (min–max) | p99 ms mean | req/s ÷ direct: median of reps (min–max) | ratio of means | p99 ÷ direct | errors | PAWS rejects / SYN retransmits | conntrack insert_failed+drop | goal (on the median) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in order:
        group, mode, kind = key
        reps = runs[key]
        rps = [float(r["rps"]) for r in reps.values()]
        p99 = [float(r["p99_us"]) / 1000.0 for r in reps.values()]
        errors = sum(int(r["errors"]) for r in reps.values())
        # Server-side SYNs refused in TIME_WAIT (timestamps went backwards),
        # and the client's SYN retransmissions they cost (1 s each).
        paws = sum(int(r.get("paws", 0) or 0) for r in reps.values())
        syn = sum(int(r.get("syn_retrans", 0) or 0) for r in reps.values())
        ct = sum(int(r.get("ct_fail", 0) or 0) for r in reps.values())
        target = next(iter(reps.values()))["target"]
        direct = runs.get((group, mode, "direct"), {})
        if kind == "direct" or not direct:
            ratio, of_means, p99_ratio, goal = "1 (baseline)", "1", "1", ""
        else:
            paired = [
                float(reps[k]["rps"]) / float(direct[k]["rps"])
                for k in reps
                if k in direct and float(direct[k]["rps"]) > 0
            ]
            d_rps = statistics.mean(float(r["rps"]) for r in direct.values())
            d_p99 = statistics.mean(float(r["p99_us"]) for r in direct.values()) / 1000.0
            med = statistics.median(paired)
            ratio = f"**{med:.3f}** ({min(paired):.3f}–{max(paired):.3f})"
            of_means = f"{statistics.mean(rps) / d_rps:.3f}"
            p99_ratio = f"{statistics.mean(p99) / d_p99:.2f}" if d_p99 > 0 else "-"
            want = GOALS.get(mode, 0)
            goal = f"≥ {want}: {'met' if med >= want else 'NOT met'}"
        print(
            f"| {group} | {mode} | {kind} | {target} | {fmt_int(statistics.mean(rps))}"
            f" ({fmt_int(min(rps))}–{fmt_int(max(rps))}) | {statistics.mean(p99):.2f}"
            f" | {ratio} | {of_means} | {p99_ratio} | {errors} | {paws} / {syn} | {ct} | {goal} |"
        )
    loads = [float(r["load_before"]) for r in rows] + [float(r["load_after"]) for r in rows]
    print()
    print(f"Load average (1 min) around the runs: min {min(loads):.2f}, max {max(loads):.2f}, mean {statistics.mean(loads):.2f}.")
    if connect_path:
        crows = read_tsv(connect_path)
        if crows:
            print()
            print("| from | path | target | connects (failed) | p50 µs | p90 µs | p99 µs | mean µs | p50 ÷ direct |")
            print("|---|---|---|---|---|---|---|---|---|")
            base = {r["group"]: r for r in crows if r["kind"] == "direct"}
            for r in crows:
                b = base.get(r["group"])
                try:
                    rat = f"{float(r['p50']) / float(b['p50']):.2f}" if b else "-"
                except ValueError:
                    rat = "-"
                print(
                    f"| {r['group']} | {r['kind']} | {r['target']} | {r['count']} ({r['failed']}) | {r['p50']}"
                    f" | {r['p90']} | {r['p99']} | {r['mean']} | {rat} |"
                )


def main(argv):
    if len(argv) >= 3 and argv[1] == "connect":
        connect(int(argv[2]), argv[3:])
    elif len(argv) >= 3 and argv[1] == "summary":
        summary(argv[2], argv[3] if len(argv) > 3 else None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
