#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests: no root cluster, no system service.
#   scripts/pg-throwaway.sh start DIR [PORT]   → prints the postgres:// URL (starts again if DIR exists)
#   scripts/pg-throwaway.sh stop DIR
set -euo pipefail

cmd=${1:?usage: pg-throwaway.sh start|stop DIR [PORT]}
dir=${2:?usage: pg-throwaway.sh start|stop DIR [PORT]}
port=${3:-54329}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "PostgreSQL binaries not found; installing them" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir/data" "$dir/sock"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    fi
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/sock/pg.log" -w \
      -o "-p $port -k $dir/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >&2
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
