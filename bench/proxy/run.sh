#!/usr/bin/env bash
# Control-plane benchmark of the Service proxy: time to program N Services ×
# 10 endpoints from scratch into a throwaway network namespace (created and
# removed by the benchmark), then one Service added and one Service's
# endpoints changed, through both appliers side by side (`nft` text and
# netlink). Each applier runs in its own process so its peak RSS is its own.
# Needs root. Prints a Markdown table for BENCHMARKS.md.
#
#   bench/proxy/run.sh [sizes...]      (default: 1000 10000 30000)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p portico-proxy --example program_bench >&2
echo "nft: $(nft --version), kernel $(uname -r), $(nproc) CPUs" >&2
bin=./target/release/examples/program_bench
"$bin" --applier nft "$@"
"$bin" --applier netlink "$@" | tail -n +3
