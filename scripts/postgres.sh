#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server on loopback for the tests of shared storages, and prints the URL
# to export as NAS_TEST_POSTGRES. Installs Debian's postgresql package when no server is on the machine.
#   usage: eval "$(bash scripts/postgres.sh start)"   # sets NAS_TEST_POSTGRES
#          bash scripts/postgres.sh stop
set -euo pipefail
PGDATA_DIR="${NAS_PG_DIR:-/tmp/nas-postgres}"
PORT="${NAS_PG_PORT:-54329}"

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$found" ]; then
        local SUDO=""
        if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
        found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    echo "$found"
}

# PostgreSQL refuses to run as root: as root, run its commands as the postgres user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
start)
    BIN=$(bindir)
    if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
        rm -rf "$PGDATA_DIR"
        mkdir -p "$PGDATA_DIR"
        if [ "$(id -u)" = 0 ]; then chown postgres "$PGDATA_DIR"; fi
        as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U nas --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDATA_DIR -c max_connections=200 -c fsync=off" start >/dev/null
    fi
    as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U nas -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'nas'" | grep -q 1 \
        || as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U nas nas
    echo "export NAS_TEST_POSTGRES=postgresql://nas@127.0.0.1:$PORT/nas"
    ;;
stop)
    BIN=$(bindir)
    as_pg "$BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
