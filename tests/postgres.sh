#!/usr/bin/env bash
# A private, throw-away PostgreSQL cluster for the test suite.
#
#   bash tests/postgres.sh start DIR   initialise a fresh cluster under DIR and start it;
#                                      prints PORTAL_TEST_PG_URL=postgres://... on stdout
#                                      (and writes the same line to DIR/env)
#   bash tests/postgres.sh stop DIR    stop the cluster under DIR (no-op if none runs)
#
# The cluster listens only on 127.0.0.1, on a free port from 54329 upward, trusts every
# local connection (user `postgres`, no password), runs with fsync off, and allows 200
# connections. Nothing of the machine's own PostgreSQL set-up (pg_ctlcluster, port 5432)
# is used or touched.
#
# initdb refuses to run as root, so when we are root the server runs as the `postgres`
# system user (created by Debian's package; created here if absent) through runuser.
# When we are not root, it runs as ourselves.
#
# A cluster left behind by an earlier run (killed test run, reboot) is stopped and
# removed by `start`: every start begins from an empty cluster.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

log() { echo "postgres.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

[ $# -eq 2 ] || usage
action=$1
mkdir -p "$2"
state_dir=$(cd "$2" && pwd) # absolute, so it stays valid whatever the caller's cwd

# The server's binaries: the newest installed major version.
pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if ! [ -x "$pg_bin/initdb" ] || ! [ -x "$pg_bin/pg_ctl" ]; then
    die "no PostgreSQL server found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
fi

# Who runs the server, and how we run commands as that user.
if [ "$(id -u)" -eq 0 ]; then
    pg_user=postgres
    if ! id -u "$pg_user" >/dev/null 2>&1; then
        log "creating system user $pg_user"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$pg_user"
    fi
    as_pg() { runuser -u "$pg_user" -- "$@"; }
else
    pg_user=$(id -un)
    as_pg() { "$@"; }
fi

# Where the cluster lives. Normally DIR itself; but the server user must be able to reach
# it (every parent directory searchable) and the Unix socket path must stay short (the
# kernel allows ~107 bytes). If DIR does not qualify (say a checkout under a private home
# directory), the cluster goes to a fresh folder under /tmp and DIR/cluster points to it.
cluster_pointer="$state_dir/cluster"

cluster_dir_for_start() {
    if as_pg test -x "$state_dir" && [ ${#state_dir} -le 80 ]; then
        echo "$state_dir"
    else
        mktemp -d /tmp/portal-test-pg.XXXXXX
    fi
}

current_cluster_dir() {
    if [ -f "$cluster_pointer" ]; then
        cat "$cluster_pointer"
    else
        echo "$state_dir"
    fi
}

# Stops whatever cluster DIR knows about; quiet and successful if there is none.
stop_cluster() {
    local dir
    dir=$(current_cluster_dir)
    if [ -f "$dir/data/postmaster.pid" ]; then
        log "stopping the cluster in $dir/data"
        # "fast" rolls back open transactions and disconnects clients; if that does not
        # finish in time (or the server is wedged), fall back to "immediate".
        as_pg "$pg_bin/pg_ctl" -D "$dir/data" stop -m fast -w -t 20 >/dev/null 2>&1 ||
            as_pg "$pg_bin/pg_ctl" -D "$dir/data" stop -m immediate -w -t 10 >/dev/null 2>&1 ||
            true
    fi
}

# A TCP port on 127.0.0.1 that nothing listens on, from 54329 upward.
free_port() {
    local port
    for port in $(seq 54329 54429); do
        # The connect fails (and the subshell exits non-zero) when the port is free.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port in 54329-54429"
}

start_cluster() {
    # Anything left from an earlier run goes first.
    stop_cluster
    local old
    old=$(current_cluster_dir)
    if [ "$old" != "$state_dir" ]; then rm -rf "$old"; fi
    rm -rf "$state_dir/data" "$state_dir/socket" "$state_dir/postgres.log" \
        "$state_dir/env" "$cluster_pointer"

    local dir
    dir=$(cluster_dir_for_start)
    if [ "$dir" != "$state_dir" ]; then
        log "$state_dir is not usable by user $pg_user; the cluster goes to $dir"
        echo "$dir" >"$cluster_pointer"
    fi
    mkdir -p "$dir/data" "$dir/socket"
    chmod 700 "$dir/data"
    touch "$dir/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$pg_user:" "$dir" "$dir/data" "$dir/socket" "$dir/postgres.log"
    fi

    log "initdb in $dir/data ($("$pg_bin/initdb" --version))"
    # --no-sync: a test cluster need not survive a power cut. Trust auth for local and
    # loopback connections; C collation with UTF-8 encoding (Japanese text is stored fine).
    as_pg "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --no-locale --no-sync >"$dir/initdb.log" 2>&1 ||
        die "initdb failed: $(cat "$dir/initdb.log")"

    local port
    port=$(free_port)
    # Settings go into the cluster's own configuration so that any restart keeps them.
    as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF

# --- set by tests/postgres.sh: private test cluster ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/socket'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

    log "starting on 127.0.0.1:$port"
    if ! as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
        die "the server did not start; its log says:
$(tail -n 30 "$dir/postgres.log")"
    fi

    local url="postgres://postgres@127.0.0.1:$port/postgres"
    echo "PORTAL_TEST_PG_URL=$url" >"$state_dir/env"
    echo "PORTAL_TEST_PG_URL=$url"
}

case "$action" in
start) start_cluster ;;
stop)
    stop_cluster
    # A cluster that lives under /tmp is ours alone: remove it once stopped.
    if [ -f "$cluster_pointer" ]; then
        rm -rf "$(cat "$cluster_pointer")" "$cluster_pointer"
    fi
    ;;
*) usage ;;
esac
