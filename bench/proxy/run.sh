#!/usr/bin/env bash
# Control-plane benchmark of the Service proxy: time to program N Services ×
# 10 endpoints from scratch into a throwaway network namespace (created and
# removed by the benchmark), then one Service added and one Service's
# endpoints changed, through both appliers side by side (`nft` text and
# netlink). Each applier runs in its own process so its peak RSS is its own.
# Needs root. Prints a Markdown table for BENCHMARKS.md.
#
#   bench/proxy/run.sh [sizes...]      (default: 1000 10000 30000)
#
# Then: the netlink applier with one shard table (the old single-table
# layout, as a baseline side by side) and the first-packet latency (fresh TCP
# connects to a ClusterIP with 1 and 30,000 Services, 64 and 1 shard tables).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p portico-proxy --example program_bench --example first_packet >&2
echo "nft: $(nft --version), kernel $(uname -r), $(nproc) CPUs" >&2
bin=./target/release/examples/program_bench
"$bin" --applier nft "$@"
"$bin" --applier netlink "$@" | tail -n +3
echo "netlink with --shards 1 (single-table layout):" >&2
"$bin" --applier netlink --shards 1 "$@" | tail -n +3
uptime >&2
./target/release/examples/first_packet --connects 1000 1 30000
./target/release/examples/first_packet --shards 1 --connects 1000 30000 | tail -n +3
uptime >&2
