#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the distributed-tuning test.
#   .ci/postgres.sh start   installs Debian's postgresql if needed, starts a server,
#                           prints its SQLAlchemy URL; exits non-zero if it cannot
#   .ci/postgres.sh stop    stops it and removes its data
set -euo pipefail
port=${NOISEBENCH_PG_PORT:-54329}
state=${TMPDIR:-/tmp}/noisebench-pg
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$1"; else bash -c "$1"; fi; }

case "${1:-start}" in
start)
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
  fi
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  rm -rf "$state" && mkdir -p "$state"
  [ "$(id -u)" = 0 ] && chown postgres "$state"
  as_postgres "$bin/initdb -D $state/data -A trust -U postgres" >/dev/null
  as_postgres "$bin/pg_ctl -D $state/data -l $state/log -w -s -o '-p $port -k $state -c listen_addresses=127.0.0.1' start" >&2
  as_postgres "$bin/psql -h 127.0.0.1 -p $port -U postgres -qc 'create database noisebench'" >&2
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/noisebench"
  ;;
stop)
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -d "$state/data" ] && as_postgres "$bin/pg_ctl -D $state/data -m fast -w stop" >&2 || true
  rm -rf "$state"
  ;;
esac
