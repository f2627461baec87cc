# A throwaway PostgreSQL server for the tests, on 127.0.0.1 at a free port. Source this file, then:
#   postgres_start   installs Debian's `postgresql` when no initdb is found, initialises a cluster
#                    in a temp dir (fsync off), starts it and exports FEEDBOT_TEST_DATABASE_URL
#   postgres_stop    stops the server by its PID and removes the temp dir (safe to call twice)
# As root (CI) the server runs as the `postgres` user, through runuser; otherwise as the caller.

postgres_bindir() {
    local dir
    for dir in "$(command -v pg_ctl 2>/dev/null | xargs -r dirname)" \
               $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

postgres_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgres_start() {
    local bindir port settings
    if ! bindir=$(postgres_bindir); then
        echo "postgres: installing Debian's postgresql package" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        bindir=$(postgres_bindir)
    fi
    POSTGRES_DIR=$(mktemp -d -t feedbot-pg.XXXXXX)
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$POSTGRES_DIR"
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    settings="-c listen_addresses=127.0.0.1 -p $port -k $POSTGRES_DIR -c fsync=off"
    settings+=" -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    postgres_as_owner "$bindir/initdb" -D "$POSTGRES_DIR/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$POSTGRES_DIR/initdb.log" 2>&1 \
        || { cat "$POSTGRES_DIR/initdb.log" >&2; return 1; }
    postgres_as_owner "$bindir/pg_ctl" start -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" \
        -w -t 30 -o "$settings" >/dev/null \
        || { cat "$POSTGRES_DIR/server.log" >&2; return 1; }
    POSTGRES_PID=$(head -n 1 "$POSTGRES_DIR/data/postmaster.pid")
    export FEEDBOT_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "postgres: PID $POSTGRES_PID at $FEEDBOT_TEST_DATABASE_URL" >&2
}

postgres_stop() {
    if [ -z "${POSTGRES_PID:-}" ] && [ -f "${POSTGRES_DIR:-/nonexistent}/data/postmaster.pid" ]; then
        POSTGRES_PID=$(head -n 1 "$POSTGRES_DIR/data/postmaster.pid")  # start was cut short
    fi
    if [ -n "${POSTGRES_PID:-}" ]; then
        kill -INT "$POSTGRES_PID" 2>/dev/null || true  # fast shutdown: clients are cut off
        for _ in $(seq 100); do
            kill -0 "$POSTGRES_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$POSTGRES_PID" 2>/dev/null; then
            kill -KILL "$POSTGRES_PID"
        fi
        POSTGRES_PID=
    fi
    if [ -n "${POSTGRES_DIR:-}" ]; then
        rm -rf "$POSTGRES_DIR"
        POSTGRES_DIR=
    fi
}
