#!/usr/bin/env bash
# Cluster DNS benchmark on a real API server (issue 6): `portico server` and
# the node-local DNS (`dns_cluster_bench serve`, the agent's DNS component) run
# in a node namespace; SERVICES Services with ENDPOINTS endpoints each are
# written through the API; dnsperf queries 10.96.0.10 from a pod namespace
# wired like a pod (veth to the node, default route via the node, resolv.conf
# pointing at 10.96.0.10). Knot DNS serves the same names from zone files at
# 10.96.0.11 in the same node as the baseline, under the same load.
#
#   bench/dns/cluster.sh [SECONDS] [SERVICES] [ENDPOINTS]
#
# Environment: PORTICO_BIN (default target/release/portico), DNS_BENCH_BIN
# (default: build the example), RATES (fixed
# rates for latency runs, default "20000 100000"), REPEAT (runs per rate,
# default 1), PIN=1 to also run with the server on CPU 0 and dnsperf on CPU 1,
# PERF=1 to add `perf stat` counts of the server per query, VARIANTS (below).
# Every run prints the server's CPU time and context switches per query
# (counts that do not depend on the machine's load) and the CPU used by
# dnsperf. SATURATED=0 skips the saturated runs, UNPINNED=0 the unpinned ones,
# KNOT_RUNS=0 Knot's runs. NICE=N starts the DNS servers, Knot and dnsperf
# (not the API server) at nice N: with NICE=-19 on a machine shared with
# other jobs at nice 0, the benchmark's processes get ~98% of the CPU they
# ask for, approximating a quiet machine for A/B runs (report it as such).
# Everything runs inside namespaces this script creates and removes; every
# dnsperf run is time-bounded (-l).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-10}"
SERVICES="${2:-10000}"
ENDPOINTS="${3:-10}"
HEADLESS_EVERY=10
RATES="${RATES:-20000 100000}"
CLIENTS="${CLIENTS:-32}"
NICE="${NICE:-0}"
PORTICO="${PORTICO_BIN:-target/release/portico}"
for tool in dnsperf knotd dig ip taskset python3; do
  command -v "$tool" >/dev/null || { echo "$tool missing (see bench/dns/README.md)" >&2; exit 1; }
done

BENCH="${DNS_BENCH_BIN:-target/release/examples/dns_cluster_bench}"
[[ -n "${DNS_BENCH_BIN:-}" ]] || cargo build --release -p portico-dns --example dns_cluster_bench >/dev/null
[[ -x "$PORTICO" ]] || cargo build --release -p portico >/dev/null

ID="$$$RANDOM"
NODE="pdb-n-$ID"
POD="pdb-p-$ID"
W="$(mktemp -d)"
PIDS=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$POD" 2>/dev/null || true
  ip netns del "$NODE" 2>/dev/null || true
  rm -rf "/etc/netns/$POD" "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
in_node() { ip netns exec "$NODE" "$@"; }
# Background servers are started with `ip netns exec` itself (not a shell
# function), so that $! is the server's own pid: `ip` execs the program.
in_pod() { ip netns exec "$POD" "$@"; }
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}

# The node and a pod on it.
ip netns add "$NODE"
ip netns add "$POD"
ip -n "$NODE" link set lo up
ip -n "$POD" link set lo up
ip -n "$NODE" link add veth-pod type veth peer name eth0 netns "$POD"
ip -n "$NODE" addr add 10.244.0.1/24 dev veth-pod
ip -n "$NODE" link set veth-pod up
ip -n "$POD" addr add 10.244.0.2/24 dev eth0
ip -n "$POD" link set eth0 up
ip -n "$POD" route add default via 10.244.0.1
ip -n "$NODE" addr add 10.96.0.11/32 dev lo
mkdir -p "/etc/netns/$POD"
printf 'search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n' \
  >"/etc/netns/$POD/resolv.conf"

# The API server, then the DNS on the still empty cluster.
ip netns exec "$NODE" "$PORTICO" server --data-dir "$W/data" --listen 127.0.0.1:0 >"$W/server.log" 2>&1 &
PIDS+=($!)
KC="$W/data/kubeconfig.yaml"
wait_for 60 "the API server's kubeconfig" test -s "$KC"
wait_for 60 "the API server" grep -q "API server at" "$W/server.log"
mkfifo "$W/dns.stdin"
ip netns exec "$NODE" nice -n "$NICE" "$BENCH" serve "$KC" 10.96.0.10:53 <"$W/dns.stdin" >"$W/dns.log" 2>"$W/dns.err" &
DNS=$!
PIDS+=($DNS)
exec 3>"$W/dns.stdin"
wait_for 60 "the DNS server" grep -q "^serving=" "$W/dns.log"
wait_for 60 "the bootstrap Services in DNS" grep -q "^services=[1-9]" "$W/dns.log"
RSS_EMPTY=$(rss_kb "$DNS")

echo "== loading $SERVICES Services x $ENDPOINTS endpoints through the API"
in_node "$BENCH" load "$KC" "$SERVICES" "$ENDPOINTS" "$HEADLESS_EVERY" 32
last_headless=$(( (SERVICES - 1) / HEADLESS_EVERY * HEADLESS_EVERY ))
synced() {
  grep -q "^services=$((SERVICES + 2))\$" "$W/dns.log" &&
    [[ $(in_pod dig +short "svc-$last_headless.ns$((last_headless % 100)).svc.cluster.local" | wc -l) == "$ENDPOINTS" ]] &&
    [[ -n $(in_pod dig +short "svc-$((SERVICES - 1)).ns$(((SERVICES - 1) % 100)).svc.cluster.local") ]]
}
wait_for 300 "the DNS zone to hold every Service" synced
RSS_FULL=$(rss_kb "$DNS")
OBJECTS=$((SERVICES + SERVICES * ENDPOINTS))
echo "portico DNS RSS: empty cluster ${RSS_EMPTY} kB, ${SERVICES} Services + $((SERVICES * ENDPOINTS)) endpoints ${RSS_FULL} kB"
awk -v a="$RSS_EMPTY" -v b="$RSS_FULL" -v n="$OBJECTS" \
  'BEGIN{printf "per object: %.3f KB (%d objects)\n", (b-a)/n, n}'
echo "resolv.conf search path from the pod: $(in_pod getent hosts "svc-1.ns1" || echo failed)"

# The baseline: Knot DNS with the same names.
python3 bench/dns/gen.py zones "$W/zones" "$SERVICES" "$ENDPOINTS" "$HEADLESS_EVERY"
mkdir -p "$W/knot"
cat >"$W/knot.conf" <<EOF
server:
    rundir: "$W/knot"
    listen: 10.96.0.11@53
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$W/knot"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$W/zones"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: cluster.local
  - domain: 10.in-addr.arpa
EOF
ip netns exec "$NODE" nice -n "$NICE" knotd -c "$W/knot.conf" >"$W/knot.log" 2>&1 &
KNOT=$!
PIDS+=($KNOT)
wait_for 60 "Knot" in_pod dig +short +tries=1 +time=1 @10.96.0.11 "svc-1.ns1.svc.cluster.local"
echo "knotd RSS with the same zone: $(rss_kb "$KNOT") kB"

python3 bench/dns/gen.py queries "$SERVICES" "$ENDPOINTS" "$HEADLESS_EVERY" >"$W/queries"
# Both servers must give the same answers: compare a sample.
diffs=0
while read -r name type; do
  a=$(in_pod dig +short +tries=1 @10.96.0.10 "$name" "$type" | sort)
  b=$(in_pod dig +short +tries=1 @10.96.0.11 "$name" "$type" | sort)
  [[ "$a" == "$b" ]] || { diffs=$((diffs + 1)); echo "differs: $name $type: [$a] vs [$b]"; }
done < <(head -200 "$W/queries")
echo "answers compared on 200 queries: $diffs differ"

summary() { grep -E "Queries (sent|completed|lost)|Response codes|Queries per second|Average Latency"; }
percentiles() {
  awk '/^> /{print $NF}' "$1" | sort -n | awk '{a[NR]=$1} END{
    if (NR == 0) { print "no answers"; exit }
    printf "answered=%d p50=%.3fms p90=%.3fms p99=%.3fms p99.9=%.3fms max=%.3fms\n",
      NR, a[int(NR*0.5)]*1000, a[int(NR*0.9)]*1000, a[int(NR*0.99)]*1000, a[int(NR*0.999)]*1000, a[NR]*1000}'
}
# Load-independent counters of the server process over one dnsperf run: CPU
# time (utime+stime of all its threads, clock ticks) and context switches
# summed over its threads. dnsperf's own CPU comes from /usr/bin/time (ip and
# taskset exec into dnsperf, so time's child is dnsperf itself).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ctx_switches() { # voluntary nonvoluntary
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{n+=$2} END{print v+0, n+0}'
}
counted() { # counted PID OUTFILE COMMAND... : runs COMMAND, prints server and dnsperf CPU
  local pid="$1" out="$2" t0 t1 c0 c1 perf_pid="" w0 w1; shift 2
  t0=$(cpu_ticks "$pid"); c0=$(ctx_switches "$pid"); w0=$(date +%s.%N)
  if [[ "${PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
    perf stat -x, -e task-clock,context-switches,cpu-migrations,page-faults -p "$pid" -o "$out.perf" &
    perf_pid=$!
  fi
  /usr/bin/time -f '%U %S' -o "$out.time" "$@" >"$out" 2>&1 || true
  if [[ -n "$perf_pid" ]]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  t1=$(cpu_ticks "$pid"); c1=$(ctx_switches "$pid"); w1=$(date +%s.%N)
  local done_q
  done_q=$(awk '/Queries completed/{print $3}' "$out")
  awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v q="${done_q:-0}" -v c0="$c0" -v c1="$c1" \
    -v wall="$(awk -v a="$w0" -v b="$w1" 'BEGIN{print b - a}')" -v dp="$(tail -1 "$out.time" 2>/dev/null)" 'BEGIN{
    split(c0, a, " "); split(c1, b, " "); split(dp, d, " ");
    if (q > 0) printf "server: %.2f us CPU/query (%.0f%% of a core), %.4f voluntary + %.4f involuntary switches/query; dnsperf: %.2f us CPU/query (%.0f%% of a core)",
      t / hz * 1e6 / q, 100 * t / hz / wall, (b[1]-a[1]) / q, (b[2]-a[2]) / q, (d[1] + d[2]) * 1e6 / q, 100 * (d[1] + d[2]) / wall
  }'
  if [[ -f "$out.perf" ]]; then
    # task-clock is in ms: printed as µs per query.
    awk -F, -v q="${done_q:-0}" 'q > 0 && $3 == "task-clock" {printf "; perf task-clock %.2f us/query", $1 * 1000 / q}
      q > 0 && $3 ~ /context-switches|cpu-migrations|page-faults/ {printf "; %s %.4f/query", $3, $1 / q}' "$out.perf"
  fi
  echo
}
# DNSPERF_SLICE_US=N runs dnsperf with an N µs scheduler slice (slice_exec.py).
DNSPERF=(dnsperf -d "$W/queries" -l "$SECS" -c "$CLIENTS" -T 2 -q 500)
if [[ -n "${DNSPERF_SLICE_US:-}" ]]; then DNSPERF=(python3 bench/dns/slice_exec.py "$DNSPERF_SLICE_US" "${DNSPERF[@]}"); fi
saturated() { # saturated LABEL SERVER_ADDR SERVER_PID DNSPERF_CPUS
  local out="$W/$1.sat"
  echo "### $1 saturated (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
  counted "$3" "$out" ip netns exec "$POD" nice -n "$NICE" taskset -c "$4" "${DNSPERF[@]}" -s "$2"
  echo "saturated: $(summary <"$out" | tr -s ' ' | tr '\n' ';')"
}
at_rate() { # at_rate LABEL SERVER_ADDR SERVER_PID DNSPERF_CPUS RATE REP
  local out="$W/$1.$5.$6"
  counted "$3" "$out" ip netns exec "$POD" nice -n "$NICE" taskset -c "$4" "${DNSPERF[@]}" -s "$2" -Q "$5" -v
  echo "$1 at ${5} QPS (#$6, load $(cut -d' ' -f1 /proc/loadavg)): $(grep -E 'Queries per second' "$out" | tr -s ' ') lost=$(grep -E 'Queries lost' "$out" | awk '{print $3, $4}') $(percentiles "$out")"
}
pin() { taskset -a -p -c "$2" "$1" >/dev/null; }

# Variants of the DNS server side by side, for A/B runs of one change:
# VARIANTS="LABEL:BINARY:ENV=VALUE ..." (BINARY empty = this build, ENV
# optional), e.g. "before:/tmp/old_bench: noslice::PORTICO_DNS_SLICE_US=0".
# Each serves the same API server's cluster at 10.96.0.2N.
LABELS=(portico); ADDRS=(10.96.0.10); SPIDS=("$DNS")
n=20
for variant in ${VARIANTS:-}; do
  IFS=: read -r vlabel vbin venv <<<"$variant"
  vaddr="10.96.0.$n"; n=$((n + 1))
  mkfifo "$W/$vlabel.stdin"
  ip netns exec "$NODE" nice -n "$NICE" env ${venv:+"$venv"} "${vbin:-$BENCH}" serve "$KC" "$vaddr:53" <"$W/$vlabel.stdin" >"$W/$vlabel.log" 2>"$W/$vlabel.err" &
  vpid=$!; PIDS+=($vpid)
  exec {vfd}>"$W/$vlabel.stdin"
  wait_for 300 "variant $vlabel to hold every Service" grep -q "^services=$((SERVICES + 2))\$" "$W/$vlabel.log"
  wait_for 60 "variant $vlabel to answer" in_pod dig +short +tries=1 +time=1 @"$vaddr" "svc-$((SERVICES - 1)).ns$(((SERVICES - 1) % 100)).svc.cluster.local"
  LABELS+=("$vlabel"); ADDRS+=("$vaddr"); SPIDS+=("$vpid")
done
# The scheduler slice the serving threads run with (se.slice, ns).
for i in "${!LABELS[@]}"; do
  for t in /proc/"${SPIDS[$i]}"/task/*; do
    [[ "$(cat "$t/comm")" == dns-udp-* ]] && echo "${LABELS[$i]} $(cat "$t/comm"): $(awk '/^se.slice /{print "slice", $3, "ns"}' "$t/sched") nice $(awk '{print $19}' "$t/stat")"
  done
done
if [[ "${KNOT_RUNS:-1}" == 1 ]]; then LABELS+=(knot); ADDRS+=(10.96.0.11); SPIDS+=("$KNOT"); fi

# Every server at one rate before the next repeat: the servers' runs
# alternate, so a change in the machine's load hits them alike.
runs() { # runs SUFFIX DNSPERF_CPUS
  local i rate rep
  if [[ "${SATURATED:-1}" == 1 ]]; then
    for i in "${!LABELS[@]}"; do saturated "${LABELS[$i]}$1" "${ADDRS[$i]}" "${SPIDS[$i]}" "$2"; done
  fi
  for rate in $RATES; do
    for rep in $(seq "${REPEAT:-1}"); do
      for i in "${!LABELS[@]}"; do at_rate "${LABELS[$i]}$1" "${ADDRS[$i]}" "${SPIDS[$i]}" "$2" "$rate" "$rep"; done
    done
  done
  for i in "${!LABELS[@]}"; do echo "${LABELS[$i]} RSS after: $(rss_kb "${SPIDS[$i]}") kB"; done
}
if [[ "${UNPINNED:-1}" == 1 ]]; then
  echo "== unpinned: servers and dnsperf share both CPUs"
  runs "" 0,1
fi
if [[ "${PIN:-0}" == 1 ]]; then
  echo "== pinned: server on CPU 0, dnsperf on CPU 1"
  for pid in "${SPIDS[@]}"; do pin "$pid" 0; done
  runs -pinned 1
fi
echo "final portico DNS RSS: $(rss_kb "$DNS") kB"
