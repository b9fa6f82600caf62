#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests.
# Tests that use direct I/O write under target/ (tmpfs does not support O_DIRECT).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The end-to-end tests (tests/) spawn this binary.
cargo build -p riffle
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace
fi
