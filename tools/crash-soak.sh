#!/usr/bin/env bash
# Longer crash soak: SIGKILL the real server under concurrent produce load, restart,
# verify every acknowledged record; repeats tests/tests/crash.rs with more rounds
# and a fresh seed per run. Usage: tools/crash-soak.sh [ROUNDS_PER_RUN] [RUNS]
# Replay a failure with RIFFLE_SEED=<printed seed> RIFFLE_CRASH_ROUNDS=<rounds>.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-200}"
runs="${2:-5}"
cargo build --release -p riffle
cargo build --release -p riffle-tests --tests
for run in $(seq 1 "$runs"); do
  echo "== soak run $run/$runs: $rounds kill/restart rounds"
  RIFFLE_CRASH_ROUNDS="$rounds" cargo test --release -p riffle-tests --test crash -- --nocapture 2>&1 \
    | grep -E "RIFFLE_SEED|round .*verified|test result|panicked" | tail -4
done
