#!/usr/bin/env bash
# Cluster DNS benchmark: dnsperf against portico-dns on loopback with a
# synthetic cluster (default 10,000 Services, 10 endpoints each, every 10th
# Service headless). Bounded: each dnsperf run is time-limited (-l).
#
#   bench/dns/run.sh [SECONDS] [SERVICES]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-10}"
SERVICES="${2:-10000}"
command -v dnsperf >/dev/null || { echo "dnsperf missing: apt-get install -y dnsperf" >&2; exit 1; }

cargo build --release -p portico-dns --example dns_bench_server >/dev/null
BIN=target/release/examples/dns_bench_server
WORK="$(mktemp -d)"
trap 'exec 3>&- 2>/dev/null || true; [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

# Queries: existing ClusterIP names (A), headless names, SRV, and NXDOMAIN
# search-path expansions, as a pod with ndots:5 sends them.
python3 - "$SERVICES" > "$WORK/queries" <<'PY'
import random, sys
n = int(sys.argv[1]); random.seed(1)
for _ in range(100000):
    i = random.randrange(n); ns = f"ns{i % 100}"; r = random.random()
    if r < 0.70: print(f"svc-{i}.{ns}.svc.cluster.local A")
    elif r < 0.80: print(f"svc-{i}.{ns}.svc.cluster.local.{ns}.svc.cluster.local A")
    elif r < 0.90: print(f"_http._tcp.svc-{i}.{ns}.svc.cluster.local SRV")
    else: print(f"svc-{i}.{ns}.svc.cluster.local AAAA")
PY

mkfifo "$WORK/stdin"
"$BIN" --services "$SERVICES" < "$WORK/stdin" > "$WORK/server.log" &
PID=$!
exec 3>"$WORK/stdin"
for _ in $(seq 100); do grep -q listening= "$WORK/server.log" && break; sleep 0.1; done
cat "$WORK/server.log"
PORT="$(sed -n 's/.*listening=127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/server.log")"

echo "== dnsperf: $SECONDS_PER_RUN s, 4 clients, 2 threads, up to 200 outstanding =="
dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries" -l "$SECONDS_PER_RUN" -c 4 -T 2 -q 200 \
  | grep -E "Queries (sent|completed|lost)|Response codes|Queries per second|Average Latency|Latency StdDev"
echo "== dnsperf at a fixed 20,000 QPS: latency percentiles of every query =="
dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries" -l "$SECONDS_PER_RUN" -c 4 -T 1 -Q 20000 -v \
  | awk '/^> /{print $NF}' | sort -n \
  | awk '{a[NR]=$1} END{printf "queries=%d p50=%.3fms p99=%.3fms p99.9=%.3fms\n", NR, a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000, a[int(NR*0.999)]*1000}'
grep VmRSS "/proc/$PID/status"
