#!/usr/bin/env bash
# kinesalite's conformance suite (285 cases recorded from AWS's answers; see
# ../shared/conformance/kinesalite/README.md) against a riffle server: starts
# BIN (default target/debug/riffle) on free ports with a fresh data directory
# under target/tmp (O_DIRECT needs a real disk, not tmpfs), runs the suite, stops
# the server, prints mocha's summary, and fails when fewer than MIN cases pass.
# usage: tools/conformance.sh MIN [BIN]
# The suite's location: $RIFFLE_CONFORMANCE_SUITE (default
# ../shared/conformance/kinesalite beside the repository); npm installs its packages once, under
# target/kinesalite-conformance. About 5 minutes, most of it one case that waits
# out a shard iterator's 5-minute expiry.
set -euo pipefail
cd "$(dirname "$0")/.."
min="$1"
bin="${2:-target/debug/riffle}"
suite="${RIFFLE_CONFORMANCE_SUITE:-$(cd .. && pwd)/shared/conformance/kinesalite}"
if [ ! -x "$suite/run.sh" ]; then
  echo "conformance: no suite at $suite (set RIFFLE_CONFORMANCE_SUITE)" >&2
  exit 1
fi
mkdir -p target/tmp
work="$(mktemp -d target/tmp/conformance-XXXXXX)"
# The server's settings are these flags alone, whatever RIFFLE_* the caller has.
for v in $(compgen -e | grep '^RIFFLE_' || true); do unset "$v"; done
# Streams go CREATING -> ACTIVE (and UPDATING, DELETING) in 500 ms, as in kinesalite.
"$bin" server --data-dir "$work/data" --listen 127.0.0.1:0 \
  --http 127.0.0.1:0 --no-pin --state-delay-ms 500 >"$work/server.log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop EXIT
http=""
for _ in $(seq 300); do
  http="$(sed -n 's/^riffle http listening on //p' "$work/server.log")"
  [ -n "$http" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$http" ]; then
  echo "conformance: the server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
status=0
KINESALITE_CONFORMANCE_DIR="$PWD/target/kinesalite-conformance" \
  "$suite/run.sh" "${http##*:}" >"$work/suite.log" 2>&1 || status=$?
stop
trap - EXIT
passing="$(sed -n 's/^ *\([0-9]*\) passing.*/\1/p' "$work/suite.log")"
grep -E '^ +[0-9]+ (passing|failing|pending)' "$work/suite.log" || true
if [ -z "$passing" ] || [ "$passing" -lt "$min" ]; then
  echo "conformance: ${passing:-no} cases passed, at least $min expected (exit $status); failures:" >&2
  sed -n '/ failing$/,$p' "$work/suite.log" | head -400 >&2
  exit 1
fi
rm -rf "$work"
echo "conformance: $passing passing (at least $min expected)"
