#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests.
# Tests that use direct I/O write under target/ (tmpfs does not support O_DIRECT).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# Debian's packages the tests run for real: PostgreSQL for riffle-postgres's
# tests and Firehose's Redshift destination (tools/postgres-test.sh starts
# throwaway clusters); ffmpeg (ffmpeg, ffprobe) as Kinesis Video's producer
# and player; Chromium, the browser (dash.js plays live DASH in it, driven by
# Playwright's Python package with this Chromium; the web console is tested in
# it too); openssl makes a CA and a client certificate for mutual TLS.
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
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
# kinesalite's conformance suite (AWS's recorded answers to edge cases), in the
# background while pytest runs: about 5 minutes, mostly one case waiting out an
# iterator's expiry. The floor is the count passing today: every case that fails
# is listed, with its reason, in docs/compatibility.md; raise it, never lower it.
conformance_min=258
tools/conformance.sh "$conformance_min" target/debug/riffle >target/conformance.log 2>&1 &
conformance=$!
# -rs: a test skipped here (e.g. one that needs root) is listed with its reason.
pytest_status=0
"$venv/bin/pytest" -q -rs -p no:cacheprovider tests/python || pytest_status=$?
conformance_status=0
wait "$conformance" || conformance_status=$?
cat target/conformance.log
[ "$pytest_status" -eq 0 ] && [ "$conformance_status" -eq 0 ]
