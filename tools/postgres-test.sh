#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests (riffle-postgres's Rust tests, pytest).
#
#   tools/postgres-test.sh start DIR PORT   initdb DIR (if new) and start it in the background
#   tools/postgres-test.sh stop DIR         stop it (fast shutdown)
#   tools/postgres-test.sh run DIR PORT     initdb DIR (if new) and run the server in the
#                                           foreground (exec), logging to stderr; it gets
#                                           SIGINT when the process that started it dies
#
# The cluster listens on 127.0.0.1:PORT only (and a Unix socket in DIR). Roles:
#   riffle/riffle        superuser, scram-sha-256 (the default for everyone)
#   riffle_md5/riffle    md5 (password stored as md5)
#   riffle_plain/riffle  cleartext password
#   riffle_trust         trust
# Databases: postgres, riffle. Prints nothing but errors.
#
# Needs the Debian package postgresql (15); as root it runs the server as the
# unprivileged user postgres (initdb refuses root), so DIR's parents must be
# searchable by that user.
set -euo pipefail

die() { echo "postgres-test.sh: $*" >&2; exit 1; }

bin=""
for v in 17 16 15 14 13; do
  if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then bin="/usr/lib/postgresql/$v/bin"; break; fi
done
[ -n "$bin" ] || die "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin); install them with: apt-get update && apt-get install -y postgresql"

# Runs a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

init() {
  local dir=$1 port=$2
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres is missing (it comes with the postgresql package)"
    chown postgres: "$dir"
    chmod 700 "$dir"
  fi
  if [ -f "$dir/data/PG_VERSION" ]; then
    return 0
  fi
  local pwfile="$dir/pwfile"
  as_owner sh -c "umask 077; echo riffle > '$pwfile'"
  as_owner "$bin/initdb" -D "$dir/data" -U riffle --pwfile="$pwfile" -A scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  # First match wins: the per-role methods go before initdb's lines.
  local hba="$dir/data/pg_hba.conf"
  as_owner sh -c "{ printf '%s\n' \
    'host all riffle_md5 127.0.0.1/32 md5' \
    'host all riffle_plain 127.0.0.1/32 password' \
    'host all riffle_trust 127.0.0.1/32 trust'; cat '$hba'; } > '$hba.new' && mv '$hba.new' '$hba'"
  # Single-user mode: the roles and the database exist before anyone can connect.
  # One statement a line (without -j a newline ends a statement); errors do not
  # change its exit status, so the log is searched for them.
  as_owner "$bin/postgres" --single -D "$dir/data" postgres >"$dir/setup.log" 2>&1 <<'SQL' || { cat "$dir/setup.log" >&2; die "setting up roles failed"; }
SET password_encryption = 'md5';
CREATE ROLE riffle_md5 LOGIN PASSWORD 'riffle';
SET password_encryption = 'scram-sha-256';
CREATE ROLE riffle_plain LOGIN PASSWORD 'riffle';
CREATE ROLE riffle_trust LOGIN;
CREATE DATABASE riffle OWNER riffle;
SQL
  if grep -q 'ERROR:' "$dir/setup.log"; then cat "$dir/setup.log" >&2; die "setting up roles failed"; fi
}

server_options() {
  local dir=$1 port=$2
  echo "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c logging_collector=off"
}

case "${1:-}" in
  start)
    [ $# -eq 3 ] || die "usage: $0 start DIR PORT"
    init "$2" "$3"
    dir=$(cd "$2" && pwd)
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$(server_options "$dir" "$3")" start >/dev/null \
      || { cat "$dir/server.log" >&2 2>/dev/null; die "the server did not start"; }
    ;;
  run)
    [ $# -eq 3 ] || die "usage: $0 run DIR PORT"
    init "$2" "$3"
    dir=$(cd "$2" && pwd)
    # shellcheck disable=SC2046
    if [ "$(id -u)" -eq 0 ]; then
      exec setpriv --reuid=postgres --regid=postgres --init-groups --pdeathsig INT \
        "$bin/postgres" -D "$dir/data" $(server_options "$dir" "$3")
    else
      exec setpriv --pdeathsig INT "$bin/postgres" -D "$dir/data" $(server_options "$dir" "$3")
    fi
    ;;
  stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR"
    dir=$(cd "$2" && pwd)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *)
    die "usage: $0 start DIR PORT | run DIR PORT | stop DIR"
    ;;
esac
