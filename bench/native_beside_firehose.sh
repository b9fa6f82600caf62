#!/usr/bin/env bash
# Native ingest alone, or beside a Firehose load on the same server
# (docs/benchmarks.md, "Native ingest beside Firehose").
# usage: bench/native_beside_firehose.sh alone|closed|paced   (release build first:
#        cargo build --release -p riffle -p riffle-bench)
# Starts `riffle server --http` on fresh data under target/tmp; with closed or paced,
# a `riffle-bench firehose` load (closed loop, or --rate 20000: 20 MB/s of 1 KiB
# records) runs for 30 s and the native `riffle-bench produce` starts 8 s into it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?alone, closed or paced}"
mkdir -p target/tmp
# A previous run's server may still hold the ports while it exits.
for _ in $(seq 100); do
  ss -ltn | grep -qE "127\.0\.0\.1:(47301|47302) " || break
  sleep 0.1
done
dir="$(mktemp -d target/tmp/nb-XXXXXX)"
target/release/riffle server --data-dir "$dir/data" --listen 127.0.0.1:47301 \
  --http 127.0.0.1:47302 --no-pin >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q "http listening" "$dir/log" && break; sleep 0.1; done
if [ "$mode" != alone ]; then
  rate=()
  [ "$mode" = paced ] && rate=(--rate 20000)
  target/release/riffle-bench firehose --producers 8 --inflight 2 --client-threads 2 \
    --duration 30 --server 127.0.0.1:47302 --server-pid "$pid" \
    --server-data-dir "$dir/data" "${rate[@]}" -q >"$dir/firehose.log" 2>&1 &
  firehose=$!
  sleep 8
fi
target/release/riffle-bench produce --producers 8 --inflight 4 --client-threads 2 \
  --duration 15 --server 127.0.0.1:47301 --server-pid "$pid" -q | grep -E "^  produced"
if [ "$mode" != alone ]; then
  wait "$firehose"
  grep -E "^  produced" "$dir/firehose.log" | sed 's/^/  firehose:/'
fi
