#!/usr/bin/env bash
# Data-plane benchmark of the Service proxy (issue 5): requests/s and p99 with
# wrk, keep-alive and one new connection per request, through a ClusterIP and
# a NodePort against the same nginx pod reached directly by its pod IP,
# measured side by side (interleaved, repeated) so machine drift hits every
# path alike. Then TCP connect times (first packet through the NAT rules).
#
#   sudo bash bench/proxy/dataplane.sh [PORTICO_BIN]   (default target/release/portico)
#
# Knobs (environment): DURATION=10 (s per wrk run) REPS=3 CONNS=32 THREADS=2
#   CONNECTS=200 (connect samples per target) OUT=<results dir> KEEP=1 (keep data dir)
#   DP_GROUPS="node client remote" (which groups below to run)
#   DP_MODES="keepalive close" (which wrk modes to run)
#   DP_FIX=1|2 (patch node A's ruleset with a rule variant, see below)
#   DP_TS2=1 (tcp_timestamps=2 in the client namespaces: the diagnosis, see below)
#   DP_UP_ARGS="..." (extra `portico up` flags, e.g. --masquerade-fully-random)
#   DP_PIN=1 (wrk on the last CPU, the nginx pods on CPU 0: fewer scheduler
#     moves between runs; see "Pinning" below)
#   DP_NICE=N (-20..19: run wrk and the pods' nginx at this nice level, e.g.
#     -10 so other work on a shared machine disturbs the runs less)
#
# It starts `portico up --nodes 2` under a unique name (its namespaces are
# NAME-lan, NAME-node1..2, NAME-client, all created and removed by portico),
# applies the seed's nginx Deployment and NodePort Service, and adds two
# single-pod Services (bench-a: the pod on node A, bench-b: the pod on node B)
# so that "direct" and "through the Service" reach the very same pod:
#   node   (wrk in node A's namespace):  pod A IP:80  vs  ClusterIP(bench-a):80, nodeA:NodePort(bench-a)
#   client (wrk in NAME-client, given a /32 route to pod A via node A):
#                                        pod A IP:80  vs  nodeA:NodePort(bench-a)
#   remote (wrk in node A's namespace):  pod B IP:80  vs  ClusterIP(bench-b):80
# Every path in a group crosses the same links; the Service path adds only the
# proxy's nftables work (DNAT, and the masquerade its rules mark).
# Traffic only goes to addresses inside the cluster's own namespaces.
set -euo pipefail
# The whole script is one group command, parsed before it runs: editing the
# file during a run cannot change what the run executes.
{

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/target/release/portico}
DURATION=${DURATION:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
CONNECTS=${CONNECTS:-200}
# Bounds: a wrk run may not exceed its duration by much; the knobs are capped.
((DURATION >= 1 && DURATION <= 120)) || { echo "DURATION must be 1..120" >&2; exit 2; }
((REPS >= 1 && REPS <= 10)) || { echo "REPS must be 1..10" >&2; exit 2; }
((CONNS >= 1 && CONNS <= 512)) || { echo "CONNS must be 1..512" >&2; exit 2; }
((CONNECTS >= 0 && CONNECTS <= 5000)) || { echo "CONNECTS must be 0..5000" >&2; exit 2; }

[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)" >&2; exit 2; }
for t in wrk kubectl ip python3 curl; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }
done
[[ -x $bin ]] || { echo "no portico binary at $bin (cargo build --release -p portico)" >&2; exit 2; }

name="pdp$(( $$ % 100000 ))-$(( RANDOM % 1000 ))"
data=$(mktemp -d /tmp/portico-dataplane.XXXXXX)
OUT=${OUT:-$data-results}
mkdir -p "$OUT"
results=$OUT/results.tsv
connects=$OUT/connect.tsv
kubeconfig=$data/kubeconfig.yaml
up_pid=""

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
our_namespaces() { ip netns list | awk '{print $1}' | grep -E "^${name}-" || true; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $up_pid ]] && kill -0 "$up_pid" 2>/dev/null; then
    log "stopping portico up (pid $up_pid)"
    kill -TERM "$up_pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$up_pid" 2>/dev/null; then
      log "portico up did not exit within 60 s; killing it"
      kill -KILL "$up_pid" 2>/dev/null || true
    fi
    wait "$up_pid" 2>/dev/null || true
  fi
  # portico up removes its namespaces on SIGTERM; anything left is reported
  # and removed here (only the processes inside our own namespaces are killed).
  local left
  left=$(our_namespaces)
  if [[ -n $left ]]; then
    log "namespaces left behind: $(echo $left); removing them"
    [[ $rc == 0 ]] && rc=1
    for ns in $left; do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    done
  else
    log "no namespaces of $name remain"
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    log "data dir kept: $data"
  else
    rm -rf "$data"
  fi
  log "results in $OUT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

k() { kubectl --kubeconfig "$kubeconfig" --request-timeout=20s "$@"; }

# Polls a command until it succeeds or `secs` pass.
until_ok() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      log "timed out after ${secs}s waiting for $what"
      return 1
    fi
    if [[ -n $up_pid ]] && ! kill -0 "$up_pid" 2>/dev/null; then
      log "portico up exited; its log:"
      tail -50 "$data/up.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

nodes_ready() {
  [[ $(k get nodes -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) == 2 ]]
}
pods_ready() {
  [[ $(k get pods -l app=nginx -o 'jsonpath={range .items[*]}{.status.podIP} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c ' True$') == 2 ]]
}
# nginx's page through `url` from namespace `ns`.
serves() { ip netns exec "$1" curl -s --max-time 2 "$2" | grep -q 'Welcome to nginx'; }

log "portico $bin, cluster $name, data $data"
log "machine: $(nproc) CPUs, kernel $(uname -r), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), load $(cat /proc/loadavg)"
read -r -a up_args <<<"${DP_UP_ARGS:-}"
log "extra portico up flags: ${up_args[*]:-(none)}"
"$bin" up --nodes 2 --name "$name" --listen 127.0.0.1:0 --data-dir "$data" --log warn \
  "${up_args[@]}" </dev/null >"$data/up.log" 2>&1 &
up_pid=$!

until_ok 60 kubeconfig test -s "$kubeconfig"
until_ok 90 "2 nodes Ready" nodes_ready
k apply -f "$root/examples/nginx-deployment.yaml" -f "$root/examples/nginx-service-nodeport.yaml" >&2
until_ok 120 "2 nginx pods Ready" pods_ready

# Pod A: the first pod; pod B: the other one. Node namespaces are named after nodes.
mapfile -t pods < <(k get pods -l app=nginx -o 'jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}' | sort -k3)
read -r pod_a ip_a node_a <<<"${pods[0]}"
read -r pod_b ip_b node_b <<<"${pods[1]}"
node_a_ip=$(k get node "$node_a" -o 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}')
log "pod A $pod_a $ip_a on $node_a ($node_a_ip); pod B $pod_b $ip_b on $node_b"
ip netns list | awk '{print $1}' | grep -qx "$node_a" || { log "no namespace named $node_a"; exit 1; }
client=$name-client

k label pod "$pod_a" bench=a --overwrite >&2
k label pod "$pod_b" bench=b --overwrite >&2
k apply -f - >&2 <<EOF
apiVersion: v1
kind: Service
metadata: {name: bench-a}
spec:
  type: NodePort
  selector: {app: nginx, bench: a}
  ports: [{port: 80, targetPort: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: bench-b}
spec:
  selector: {app: nginx, bench: b}
  ports: [{port: 80, targetPort: 80, protocol: TCP}]
EOF
cip_a=$(k get svc bench-a -o 'jsonpath={.spec.clusterIP}')
np_a=$(k get svc bench-a -o 'jsonpath={.spec.ports[0].nodePort}')
cip_b=$(k get svc bench-b -o 'jsonpath={.spec.clusterIP}')
# The outside client has no route to pods; give it one to pod A through node A
# (inside the cluster's own client namespace) so "direct" crosses the same LAN
# and node as the NodePort path.
ip -n "$client" route replace "$ip_a/32" via "$node_a_ip"

# Targets: group kind namespace url server-pod. DP_GROUPS filters the groups.
all_targets=(
  "node direct $node_a http://$ip_a:80/ a"
  "node clusterip $node_a http://$cip_a:80/ a"
  "node nodeport $node_a http://$node_a_ip:$np_a/ a"
  "client direct $client http://$ip_a:80/ a"
  "client nodeport $client http://$node_a_ip:$np_a/ a"
)
if [[ $node_b != "$node_a" ]]; then
  all_targets+=(
    "remote direct $node_a http://$ip_b:80/ b"
    "remote clusterip $node_a http://$cip_b:80/ b"
  )
else
  log "both pods on $node_a: no remote group"
fi
targets=()
for t in "${all_targets[@]}"; do
  read -r group _ <<<"$t"
  [[ " ${DP_GROUPS:-node client remote} " == *" $group "* ]] && targets+=("$t")
done
((${#targets[@]})) || { log "no targets left after DP_GROUPS=$DP_GROUPS"; exit 2; }

for t in "${targets[@]}"; do
  read -r group kind ns url _ <<<"$t"
  until_ok 30 "$url from $ns" serves "$ns" "$url"
done
log "all paths serve nginx's page"

# The nginx master process of the pod with IP $1: its /proc/PID/net shows the
# pod's own TCP counters and TIME_WAIT count (read only; never signalled).
# Only processes descending from our `portico up` are looked at.
ours() {
  local p=$1 depth
  for depth in $(seq 12); do
    [[ $p == "$up_pid" ]] && return 0
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || return 1
    [[ -n $p && $p != 0 && $p != 1 ]] || return 1
  done
  return 1
}
pod_pid() {
  local p
  for p in $(pgrep -x nginx); do
    ours "$p" || continue
    if nsenter --net="/proc/$p/ns/net" ip -4 -o addr show 2>/dev/null | grep -q " inet $1/"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
pid_a=$(pod_pid "$ip_a") || { log "no nginx process with $ip_a"; exit 1; }
pid_b=$(pod_pid "$ip_b") || { log "no nginx process with $ip_b"; exit 1; }
server_pid() { if [[ $1 == a ]]; then echo "$pid_a"; else echo "$pid_b"; fi; }

# A TcpExt counter from a /proc/.../net/netstat text on stdin.
tcpext() {
  awk -v f="$1" '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 }
    else { for (i = 1; i <= NF; i++) if (n[i] == f) print $i } }'
}
# Sockets in TIME_WAIT in the server pod's namespace.
tw_count() { awk '/^TCP:/ { for (i = 1; i <= NF; i++) if ($i == "tw") print $(i + 1) }' "/proc/$1/net/sockstat"; }
# Every connection-per-request run leaves ~all its connections in TIME_WAIT
# on the server for 60 s; a later run whose (source, port) pairs land on them
# (NAT makes different paths share source addresses) would inherit PAWS
# rejects from an earlier path. So each such run starts with none left:
# `ss -K` destroys the server pod's TIME_WAIT sockets (the state they would
# reach after 60 s, at once; inside the pod's namespace only), else wait.
drain() {
  local pid=$1 deadline=$((SECONDS + 75))
  nsenter --net="/proc/$pid/ns/net" ss -K -t state time-wait >/dev/null 2>&1 || true
  while (($(tw_count "$pid") > 0)); do
    ((SECONDS < deadline)) || { log "TIME_WAIT did not drain in 75 s"; return 0; }
    sleep 1
  done
}

# The same holds for conntrack: entries of closed connections stay 120 s
# (and those wrk left half-closed when it stopped, longer), and a new
# connection whose reply tuple clashes with one gets its source port
# rewritten by NAT (a different client port on the same server tuple: the
# same PAWS trap). No wrk runs between runs, so every TCP entry whose reply
# comes from one of the two pods is removed, in our nodes' namespaces.
forget_closed() {
  local ns ip
  for ns in "$node_a" "$node_b"; do
    for ip in "$ip_a" "$ip_b"; do
      ip netns exec "$ns" conntrack -D -p tcp --reply-src "$ip" >/dev/null 2>&1 || true
    done
  done
}

# DP_FIX=1|2: patch node A's ruleset (inside the cluster's own namespace) to
# measure rule variants without a rebuild:
#  2. `masquerade` without `fully-random` (what the proxy now programs; for
#     binaries built before that change);
#  1. as 2, and no masquerade mark for node-local sources reaching a
#     ClusterIP (`fib saddr type != local` on the `ip saddr != <cluster CIDR>`
#     rule; not what kube-proxy does, measured to see what it would add).
if [[ ${DP_FIX:-0} != 0 ]]; then
  log "DP_FIX=$DP_FIX: patching node A's ruleset"
  if [[ $DP_FIX == 1 ]]; then
    for table in $(ip netns exec "$node_a" nft list tables ip | awk '{print $3}' | grep '^portico-'); do
      chains=$(ip netns exec "$node_a" nft list table ip "$table" | sed -n 's/^\tchain \(service-[^ ]*bench-[ab]\/[^ ]*\) {/\1/p')
      for chain in $chains; do
        ip netns exec "$node_a" nft -a list chain ip "$table" "$chain" |
          sed -n 's/^\t\t\(.*ip saddr != [0-9./]* jump mark-for-masquerade\) # handle \([0-9]*\)$/\2 \1/p' |
          while read -r handle rule; do
            ip netns exec "$node_a" nft replace rule ip "$table" "$chain" handle "$handle" \
              "${rule% jump mark-for-masquerade} fib saddr type != local jump mark-for-masquerade"
          done
      done
    done
  fi
  ip netns exec "$node_a" nft -a list chain ip portico masquerading |
    sed -n 's/^\t\t\(.*\)masquerade fully-random # handle \([0-9]*\)$/\2 \1/p' |
    while read -r handle rule; do
      ip netns exec "$node_a" nft replace rule ip portico masquerading handle "$handle" $rule masquerade
    done
  ip netns exec "$node_a" nft list ruleset | grep -E 'masquerade|mark-for' | sort | uniq -c >&2
fi
# DP_TS2=1: TCP timestamps without the per-connection random offset in the
# client-side namespaces (a sysctl of those namespaces only), to check that
# the new-connection gap is the timestamp clash and nothing else.
if [[ ${DP_TS2:-0} == 1 ]]; then
  for ns in "$node_a" "$node_b" "$client"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_timestamps=2
  done
  log "DP_TS2=1: net.ipv4.tcp_timestamps=2 in $node_a $node_b $client"
fi
# conntrack's insert_failed + drop, summed over CPUs and both nodes'
# namespaces: the SNAT port-allocation race kube-proxy's `fully-random`
# guards against shows up here (a clash at confirmation drops the packet).
ct_fail() {
  local ns sum=0 v
  for ns in "$node_a" "$node_b"; do
    v=$(ip netns exec "$ns" conntrack -S 2>/dev/null |
      awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(insert_failed|drop)=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }')
    sum=$((sum + v))
  done
  echo "$sum"
}
# The ruleset the numbers were taken with, for the record.
ip netns exec "$node_a" nft list table ip portico >"$OUT/ruleset-node-a.nft" 2>&1 || true
ct_stats() {
  local ns
  for ns in "$node_a" "$node_b"; do
    echo "# $ns"
    ip netns exec "$ns" conntrack -S 2>&1 || true
  done
}
ct_stats >"$OUT/conntrack-S-before.txt"

# Pinning (DP_PIN=1): wrk on the last CPU, both pods' nginx processes on
# CPU 0 (only the nginx processes of our own pods). Each side's softirq work
# then stays with it, and runs of different paths see the same placement.
wrk_cpu=""
if [[ ${DP_PIN:-0} == 1 ]]; then
  wrk_cpu=$(($(nproc) - 1))
  for p in "$pid_a" "$pid_b" $(pgrep -P "$pid_a") $(pgrep -P "$pid_b"); do
    taskset -p -c 0 "$p" >/dev/null
  done
  log "DP_PIN=1: nginx of both pods on CPU 0, wrk on CPU $wrk_cpu"
fi
wrk_nice=()
if [[ -n ${DP_NICE:-} ]]; then
  ((DP_NICE >= -20 && DP_NICE <= 19)) || { log "DP_NICE must be -20..19"; exit 2; }
  for p in "$pid_a" "$pid_b" $(pgrep -P "$pid_a") $(pgrep -P "$pid_b"); do
    renice -n "$DP_NICE" -p "$p" >/dev/null
  done
  wrk_nice=(nice -n "$DP_NICE")
  log "DP_NICE=$DP_NICE: wrk and both pods' nginx"
fi

# One wrk run; prints "rps p50_us p99_us errors".
run_wrk() {
  local ns=$1 url=$2 mode=$3 secs=$4 close=0 out line
  [[ $mode == close ]] && close=1
  local pin=()
  [[ -n $wrk_cpu ]] && pin=(taskset -c "$wrk_cpu")
  out=$(DP_CLOSE=$close timeout -k 5 $((secs + 30)) "${wrk_nice[@]}" "${pin[@]}" ip netns exec "$ns" \
    wrk -t "$THREADS" -c "$CONNS" -d "${secs}s" --timeout 5s -s "$here/dataplane.lua" "$url" 2>&1) || {
    log "wrk failed: $out"
    return 1
  }
  line=$(grep '^DPRESULT' <<<"$out") || { log "no result from wrk: $out"; return 1; }
  python3 - "$line" <<'PY'
import sys
f = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
rps = int(f["requests"]) / (int(f["duration_us"]) / 1e6)
err = sum(int(f[k]) for k in f if k.startswith("err_"))
print(f"{rps:.1f} {f['p50_us']} {f['p99_us']} {err}")
PY
}

log "warm-up: 2 s per target, keep-alive"
for t in "${targets[@]}"; do
  read -r group kind ns url _ <<<"$t"
  run_wrk "$ns" "$url" keepalive 2 >/dev/null
done

printf 'rep\tmode\tgroup\tkind\ttarget\trps\tp50_us\tp99_us\terrors\tpaws\tsyn_retrans\ttw_start\tload_before\tload_after\tct_fail\n' >"$results"
n=${#targets[@]}
groups=()
for t in "${targets[@]}"; do
  read -r g _ <<<"$t"
  [[ " ${groups[*]} " == *" $g "* ]] || groups+=("$g")
done
log "measuring: $REPS reps × 2 modes × $n targets × ${DURATION}s, wrk -t $THREADS -c $CONNS"
uptime >&2
for rep in $(seq "$REPS"); do
  read -r -a modes <<<"${DP_MODES:-keepalive close}"
  ((rep % 2 == 0 && ${#modes[@]} == 2)) && modes=("${modes[1]}" "${modes[0]}")
  for mode in "${modes[@]}"; do
    # A group's paths run back to back, so a Service run and the direct run
    # it is divided by are at most two runs apart (the machine's load
    # drifts over minutes); the order within a group reverses every rep
    # (direct first, then last) and the groups rotate, so no path always
    # runs first.
    order=()
    ng=${#groups[@]}
    for gi in $(seq 0 $((ng - 1))); do
      g=${groups[$(((gi + rep - 1) % ng))]}
      in_group=()
      for t in "${targets[@]}"; do
        [[ $t == "$g "* ]] && in_group+=("$t")
      done
      if ((rep % 2 == 0)); then
        for ((j = ${#in_group[@]} - 1; j >= 0; j--)); do order+=("${in_group[$j]}"); done
      else
        order+=("${in_group[@]}")
      fi
    done
    for t in "${order[@]}"; do
      read -r group kind ns url pod <<<"$t"
      spid=$(server_pid "$pod")
      if [[ $mode == close ]]; then
        drain "$spid"
        forget_closed
      fi
      tw0=$(tw_count "$spid")
      paws0=$(tcpext PAWSTimewait <"/proc/$spid/net/netstat")
      syn0=$(ip netns exec "$ns" cat /proc/net/netstat | tcpext TCPSynRetrans)
      ct0=$(ct_fail)
      before=$(load1)
      res=$(run_wrk "$ns" "$url" "$mode" "$DURATION")
      after=$(load1)
      paws=$(($(tcpext PAWSTimewait <"/proc/$spid/net/netstat") - paws0))
      syn=$(($(ip netns exec "$ns" cat /proc/net/netstat | tcpext TCPSynRetrans) - syn0))
      ct=$(($(ct_fail) - ct0))
      read -r rps p50 p99 errs <<<"$res"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$mode" "$group" "$kind" \
        "${url#http://}" "$rps" "$p50" "$p99" "$errs" "$paws" "$syn" "$tw0" "$before" "$after" "$ct" >>"$results"
      log "rep $rep $mode $group/$kind ${url#http://}: $rps req/s, p99 ${p99} µs, errors $errs, PAWS rejects $paws, SYN retransmits $syn, conntrack insert_failed+drop $ct, load $before→$after"
    done
  done
done
uptime >&2

printf 'group\tkind\ttarget\tcount\tfailed\tp50\tp90\tp99\tmean\n' >"$connects"
if ((CONNECTS > 0)); then
  log "connect times: $CONNECTS per target, interleaved"
  drain "$pid_a"
  drain "$pid_b"
  forget_closed
  for group in node client remote; do
    args=()
    for t in "${targets[@]}"; do
      read -r g kind ns url _ <<<"$t"
      [[ $g == "$group" ]] || continue
      hostport=${url#http://}
      args+=("$kind=${hostport%/}")
      gns=$ns
    done
    ((${#args[@]})) || continue
    timeout 180 ip netns exec "$gns" python3 "$here/dataplane.py" connect "$CONNECTS" "${args[@]}" |
      while IFS=$'\t' read -r kind count failed p50 p90 p99 mean; do
        for a in "${args[@]}"; do [[ ${a%%=*} == "$kind" ]] && target=${a#*=}; done
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$kind" "$target" "$count" "$failed" \
          "$p50" "$p90" "$p99" "$mean" >>"$connects"
      done
  done
fi
ip netns exec "$node_a" nft list table ip portico >"$OUT/ruleset-node-a-after.nft" 2>&1 || true
ct_stats >"$OUT/conntrack-S-after.txt"

echo
echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): $REPS reps, ${DURATION}s per run, wrk -t $THREADS -c $CONNS, DP_FIX=${DP_FIX:-0} DP_TS2=${DP_TS2:-0} DP_PIN=${DP_PIN:-0} DP_NICE=${DP_NICE:-} DP_UP_ARGS='${DP_UP_ARGS:-}'; $(nproc) CPUs, kernel $(uname -r)"
echo
python3 "$here/dataplane.py" summary "$results" "$connects" | tee "$OUT/summary.md"
exit
}
