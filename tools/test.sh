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
# The AWS SDK compatibility suite (tests/python): boto3, the AWS CLI, raw CBOR and
# the JavaScript SDK against the HTTP API.
# Installs its packages into a virtualenv under target/ the first time.
venv=target/py-venv
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s tests/python/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  cp tests/python/requirements.txt "$venv/requirements.txt"
fi
# The JavaScript SDK smoke test (run by the suite) needs its node_modules.
if [ ! -d tests/js/node_modules ] || ! cmp -s tests/js/package-lock.json tests/js/node_modules/.riffle-lock; then
  (cd tests/js && npm ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.riffle-lock)
fi
# -rs: a test skipped here (e.g. one that needs root) is listed with its reason.
"$venv/bin/pytest" -q -rs -p no:cacheprovider tests/python
