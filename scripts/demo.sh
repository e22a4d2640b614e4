#!/usr/bin/env bash
# The retentionc sandbox demo, one command, on a fresh Debian 12 machine, as root or as a
# user with sudo (elsewhere, the same demo runs in Docker: `docker compose run --rm demo`,
# see README.md):
#
#   scripts/demo.sh               # 60 seconds of inserts
#   scripts/demo.sh --seconds 20  # shorter
#
# 1. installs PostgreSQL 15, pg_partman and pg_cron (scripts/install-deps.sh, through sudo
#    when not root) and builds retentionc (cargo build --release), unless RETENTIONC_BIN
#    names a built binary;
# 2. starts a throwaway PostgreSQL cluster in a temporary folder, on a free port of
#    127.0.0.1, with pg_cron preloaded and the time zone UTC, and creates pg_partman 5.2.4
#    in schema partman and the table public.test_table1, partitioned by range on mtime;
# 3. compiles and applies the seed policy, policies/test_table1.yaml (1-second partitions,
#    15 seconds kept), from a temporary project folder;
# 4. inserts into test_table1 for N seconds (pgbench in the background, each row's id and
#    mtime also recorded in demo.inserted_rows) while `retentionc run` runs every 3 seconds;
# 5. prints the partitions with their bounds and row counts at the start and at the end,
#    then proves in its last lines, each PASS or FAIL, that the parent table is there, that
#    every row younger than 15 seconds is there, and that nothing older than the window
#    (keep + one partition + the time since the last run) remains. Exits 1 on any FAIL.
#
# The cluster and its folder are removed on exit, Ctrl-C included.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/demo.sh [--seconds N] [--run-every S] [--rate R] [--skip-install]
                      [--database-url URL]

  --seconds N     insert for N seconds (default 60, at least 5)
  --run-every S   run `retentionc run` every S seconds while inserting (default 3)
  --rate R        rows inserted per second (default 40)
  --skip-install  do not call scripts/install-deps.sh (PostgreSQL 15, pg_partman and
                  pg_cron must already be installed)
  --database-url URL
                  use this database instead of starting a throwaway cluster (implies
                  --skip-install). It needs pg_partman 5 in schema partman, as
                  docker/postgres/initdb/ makes it; test_table1 is created if missing.
                  Used by `docker compose run --rm demo`.

Environment: RETENTIONC_BIN=path/to/retentionc uses that binary instead of building one;
DEMO_SECONDS=N is the default of --seconds.
USAGE
}

INSERT_SECONDS="${DEMO_SECONDS:-60}"
RUN_EVERY=3
RATE=40
INSTALL=1
EXTERNAL_URL=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) INSERT_SECONDS="${2:?--seconds needs a number}"; shift 2 ;;
        --seconds=*) INSERT_SECONDS="${1#*=}"; shift ;;
        --run-every) RUN_EVERY="${2:?--run-every needs a number}"; shift 2 ;;
        --run-every=*) RUN_EVERY="${1#*=}"; shift ;;
        --rate) RATE="${2:?--rate needs a number}"; shift 2 ;;
        --rate=*) RATE="${1#*=}"; shift ;;
        --skip-install) INSTALL=0; shift ;;
        --database-url) EXTERNAL_URL="${2:?--database-url needs a URL}"; INSTALL=0; shift 2 ;;
        --database-url=*) EXTERNAL_URL="${1#*=}"; INSTALL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in INSERT_SECONDS RUN_EVERY RATE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "demo: ${v,,} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[ "$INSERT_SECONDS" -ge 5 ] || { echo "demo: --seconds must be at least 5" >&2; exit 2; }
if [ "$RUN_EVERY" -lt 1 ] || [ "$RATE" -lt 1 ]; then
    echo "demo: --run-every and --rate must be at least 1" >&2
    exit 2
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN="${RETENTIONC_PG_BIN:-/usr/lib/postgresql/15/bin}"
TABLE=public.test_table1
KEEP_SECONDS=15       # policies/test_table1.yaml: retention.keep
INTERVAL_SECONDS=1    # policies/test_table1.yaml: partitioning.interval
DB=demo
T0=$(date +%s.%N)

say() { printf '\n==> %s\n' "$*"; }
elapsed() { awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%5.1fs", t1 - t0 }'; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. what the demo needs ---------------------------------------------------------------
if [ "$INSTALL" = 1 ]; then
    say "Installing PostgreSQL 15, pg_partman and pg_cron (scripts/install-deps.sh)"
    [ -f "$REPO/scripts/install-deps.sh" ] || die "scripts/install-deps.sh is missing"
    bash "$REPO/scripts/install-deps.sh" --demo
fi
# PostgreSQL 15's own programs; with --database-url, psql and pgbench from PATH will do.
pg_program() {
    if [ -x "$PG_BIN/$1" ]; then
        printf '%s\n' "$PG_BIN/$1"
    elif [ -n "$EXTERNAL_URL" ] && command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    else
        die "$PG_BIN/$1 missing: run scripts/install-deps.sh (or drop --skip-install)"
    fi
}
PSQL="$(pg_program psql)"
PGBENCH="$(pg_program pgbench)"

if [ -n "${RETENTIONC_BIN:-}" ]; then
    RETENTIONC="$RETENTIONC_BIN"
else
    # A C compiler and Rust, installed when missing (shared with scripts/test.sh).
    # shellcheck source=lib/toolchain.sh source-path=SCRIPTDIR
    . "$REPO/scripts/lib/toolchain.sh"
    ensure_rust_toolchain demo || exit 1
    say "Building retentionc (cargo build --release; a few minutes the first time)"
    (cd "$REPO" && cargo build --release --locked --quiet --bin retentionc)
    RETENTIONC="$REPO/target/release/retentionc"
fi
[ -x "$RETENTIONC" ] || die "no retentionc binary at $RETENTIONC"

# --- 2. a throwaway cluster (or the database named by --database-url) ----------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/retentionc-demo.XXXXXX")"
chmod 0755 "$WORK"
PGROOT="$WORK/pg"          # data directory, socket and log: owned by the server's user
PROJECT="$WORK/project"    # the temporary retentionc project (retentionc.yaml + the seed policy)
mkdir -p "$PGROOT" "$PROJECT/policies"
INSERTER_PID=""
STARTED_SERVER=0

if [ "$(id -u)" -eq 0 ] && [ -z "$EXTERNAL_URL" ]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (install-deps.sh installs PostgreSQL, which makes it)"
    chown postgres: "$PGROOT"
    as_server() { runuser -u postgres -- "$@"; }
else
    as_server() { "$@"; }
fi

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$INSERTER_PID" ] && kill -0 "$INSERTER_PID" 2>/dev/null; then
        kill "$INSERTER_PID" 2>/dev/null || true
        wait "$INSERTER_PID" 2>/dev/null || true
    fi
    if [ "$STARTED_SERVER" = 1 ] && [ -f "$PGROOT/data/postmaster.pid" ]; then
        as_server "$PG_BIN/pg_ctl" -D "$PGROOT/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        echo "demo: cluster stopped" >&2
    fi
    rm -rf "$WORK"
    echo "demo: $WORK removed" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: terminated" >&2; exit 143' TERM

if [ -z "$EXTERNAL_URL" ]; then
    say "Starting a throwaway PostgreSQL 15 cluster in $PGROOT"
    as_server "$PG_BIN/initdb" -D "$PGROOT/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 \
        || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    cat >>"$PGROOT/data/postgresql.conf" <<CONF

# --- retentionc demo ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGROOT'
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB'
timezone = 'UTC'
log_timezone = 'UTC'
# A throwaway cluster: crash safety buys nothing here.
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

    port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
    PORT=""
    for _ in $(seq 1 20); do
        candidate=$((20000 + RANDOM % 40000))
        port_free "$candidate" || continue
        if as_server "$PG_BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -o "-p $candidate" -w -t 60 start >/dev/null 2>&1; then
            PORT=$candidate
            STARTED_SERVER=1
            break
        fi
        grep -q -e 'could not bind' -e 'already in use' "$PGROOT/server.log" 2>/dev/null || { cat "$PGROOT/server.log" >&2; die "pg_ctl start failed"; }
    done
    [ -n "$PORT" ] || die "found no free port to start PostgreSQL on"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/$DB"
    # psql and pgbench talk to it over its Unix socket.
    CONN="host=$PGROOT port=$PORT user=postgres dbname=$DB"
    echo "PostgreSQL 15 on 127.0.0.1:$PORT, DATABASE_URL=$DATABASE_URL"
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "host=$PGROOT port=$PORT user=postgres dbname=postgres" -c "CREATE DATABASE $DB"
    SETUP_EXTENSIONS="CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman VERSION '5.2.4';
CREATE EXTENSION pg_cron;"
else
    export DATABASE_URL="$EXTERNAL_URL"
    CONN="$EXTERNAL_URL"
    say "Using the database at $(printf '%s' "$EXTERNAL_URL" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#')"
    SETUP_EXTENSIONS="-- pg_partman and pg_cron: already there (docker/postgres/initdb/)"
fi
export PGTZ=UTC

psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$CONN" "$@"; }
q() { psql_admin -At -c "$1"; }

psql_admin <<SQL
SET client_min_messages = warning;
$SETUP_EXTENSIONS
CREATE TABLE IF NOT EXISTS public.test_table1 (
    id      bigserial,
    mtime   timestamptz NOT NULL DEFAULT now(),
    payload text
) PARTITION BY RANGE (mtime);
-- The inserter's own record of every row it writes: the proof at the end compares with it.
-- A plain table outside retention, made anew for each demo.
CREATE SCHEMA IF NOT EXISTS demo;
DROP TABLE IF EXISTS demo.inserted_rows;
CREATE TABLE demo.inserted_rows (id bigint PRIMARY KEY, mtime timestamptz NOT NULL);
SQL
partman_version="$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'")"
[ -n "$partman_version" ] || die "pg_partman is not installed in this database"
echo "pg_partman $partman_version in schema $(q "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_partman'"), pg_cron $(q "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'), 'not installed')"), table $TABLE"

# --- 3. compile and apply the seed policy ---------------------------------------------------
cp "$REPO/retentionc.yaml" "$PROJECT/retentionc.yaml"
cp "$REPO/policies/test_table1.yaml" "$PROJECT/policies/test_table1.yaml"
rc() { "$RETENTIONC" --config "$PROJECT/retentionc.yaml" "$@"; }

say "The policy (policies/test_table1.yaml)"
sed 's/^/    /' "$PROJECT/policies/test_table1.yaml"

say "retentionc compile"
rc compile
say "retentionc apply --auto-approve"
rc apply --auto-approve

# The partitions with their bounds and row counts; runs of more than three empty
# partitions are shortened to their first and last.
show_partitions() {
    psql_admin -At -F '|' <<SQL | awk -F'|' '
        function row(name, bounds, n) { printf "  %-30s  %-74s  %6s\n", name, bounds, n }
        function flush() {
            if (empty == 0) return
            if (empty <= 3) { for (i = 1; i <= empty; i++) row(en[i], eb[i], 0) }
            else { row(en[1], eb[1], 0); printf "  %-30s  %-74s\n", "...", "(" empty - 2 " more empty partitions)"; row(en[empty], eb[empty], 0) }
            empty = 0
        }
        BEGIN { row("partition", "bounds", "rows"); row("---------", "------", "----") }
        $3 == 0 && $2 != "DEFAULT" { empty++; en[empty] = $1; eb[empty] = $2; next }
        { flush(); row($1, $2, $3) }
        END { flush() }'
WITH counts AS (
    SELECT tableoid AS relid, count(*) AS n FROM $TABLE GROUP BY tableoid
)
SELECT t.relid::regclass AS partition,
       pg_get_expr(c.relpartbound, c.oid) AS bounds,
       coalesce(counts.n, 0) AS rows
FROM pg_partition_tree('$TABLE') AS t
JOIN pg_class AS c ON c.oid = t.relid
LEFT JOIN counts USING (relid)
WHERE t.level = 1
ORDER BY c.relpartbound IS NOT NULL, pg_get_expr(c.relpartbound, c.oid);
SQL
    echo "  $(q "SELECT count(*) FROM pg_partition_tree('$TABLE') WHERE level = 1") partitions, $(q "SELECT count(*) FROM $TABLE") rows, now() = $(q "SELECT now()")"
}

say "Partitions at the start"
show_partitions

# --- 4. insert while retention runs ---------------------------------------------------------
cat >"$WORK/insert.sql" <<SQL
WITH new_row AS (
    INSERT INTO $TABLE (payload) VALUES ('demo row from client ' || :client_id)
    RETURNING id, mtime
)
INSERT INTO demo.inserted_rows (id, mtime) SELECT id, mtime FROM new_row;
SQL
say "Inserting into $TABLE for ${INSERT_SECONDS}s (~$RATE rows/s, pgbench) while \`retentionc run\` runs every ${RUN_EVERY}s"
"$PGBENCH" -n -c 2 -j 1 -R "$RATE" -T "$INSERT_SECONDS" -f "$WORK/insert.sql" "$CONN" >"$WORK/pgbench.log" 2>&1 &
INSERTER_PID=$!

LAST_RUN_STARTED=""
RUNS=0
RUN_FAILURES=0
run_retention() {
    local started output
    started="$(q "SELECT clock_timestamp()")"
    if output="$(rc run 2>&1)"; then
        LAST_RUN_STARTED="$started"
        RUNS=$((RUNS + 1))
        printf '[%s] retentionc run: ok\n' "$(elapsed)"
    else
        RUN_FAILURES=$((RUN_FAILURES + 1))
        printf '[%s] retentionc run: FAILED\n' "$(elapsed)"
    fi
    [ -z "$output" ] || printf '%s\n' "$output" | sed 's/^/          /'
}

while kill -0 "$INSERTER_PID" 2>/dev/null; do
    run_retention
    for _ in $(seq 1 "$((RUN_EVERY * 10))"); do
        kill -0 "$INSERTER_PID" 2>/dev/null || break
        sleep 0.1
    done
done
inserter_status=0
wait "$INSERTER_PID" || inserter_status=$?
INSERTER_PID=""
[ "$inserter_status" -eq 0 ] || { cat "$WORK/pgbench.log" >&2; die "the inserter (pgbench) failed"; }
printf '[%s] inserts stopped: %s rows written\n' "$(elapsed)" "$(q "SELECT count(*) FROM demo.inserted_rows")"
run_retention

say "Partitions at the end"
show_partitions

# --- 5. the proof ----------------------------------------------------------------------------
say "Checks (keep ${KEEP_SECONDS}s, 1 partition = ${INTERVAL_SECONDS}s, ${RUNS} runs of retentionc run)"
FAILED=0
pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; FAILED=1; }
[ -n "$LAST_RUN_STARTED" ] || LAST_RUN_STARTED="$(q "SELECT now()")"

# "Now" is each query's own now(), taken after the last run.
read -r inserted expected_young present_young missing_young expired_rows <<<"$(q "
WITH young AS (
    SELECT r.id, r.mtime, EXISTS (SELECT 1 FROM $TABLE t WHERE t.id = r.id AND t.mtime = r.mtime) AS present
    FROM demo.inserted_rows r
    WHERE r.mtime > now() - interval '$KEEP_SECONDS seconds'
)
SELECT (SELECT count(*) FROM demo.inserted_rows),
       (SELECT count(*) FROM young),
       (SELECT count(*) FILTER (WHERE present) FROM young),
       (SELECT count(*) FILTER (WHERE NOT present) FROM young),
       (SELECT count(*) FROM demo.inserted_rows r WHERE NOT EXISTS (SELECT 1 FROM $TABLE t WHERE t.id = r.id))
" | tr '|' ' ')"

read -r window_seconds since_run oldest_age stale_rows <<<"$(q "
WITH w AS (
    SELECT interval '$KEEP_SECONDS seconds' + interval '$INTERVAL_SECONDS seconds'
           + (now() - '$LAST_RUN_STARTED'::timestamptz) AS window_length,
           now() - '$LAST_RUN_STARTED'::timestamptz AS since_run
)
SELECT round(extract(epoch FROM w.window_length), 1),
       round(extract(epoch FROM w.since_run), 1),
       coalesce(round(extract(epoch FROM now() - (SELECT min(mtime) FROM $TABLE)), 1)::text, 'none'),
       (SELECT count(*) FROM $TABLE WHERE mtime < now() - w.window_length)
FROM w
" | tr '|' ' ')"

if [ "$RUN_FAILURES" -eq 0 ] && [ "$RUNS" -gt 0 ]; then
    pass "retentionc run succeeded all ${RUNS} times"
else
    fail "retentionc run failed ${RUN_FAILURES} of $((RUNS + RUN_FAILURES)) times"
fi
if [ "$expired_rows" -gt 0 ]; then
    pass "retention expired the ${expired_rows} oldest of ${inserted} inserted rows"
elif [ "$INSERT_SECONDS" -le $((KEEP_SECONDS + INTERVAL_SECONDS + RUN_EVERY)) ]; then
    pass "retention expired none of ${inserted} rows (none expected after ${INSERT_SECONDS}s of inserts)"
else
    fail "retention expired none of ${inserted} rows in ${INSERT_SECONDS}s"
fi
if [ "$(q "SELECT count(*) FROM pg_class WHERE oid = to_regclass('$TABLE') AND relkind = 'p'")" = 1 ]; then
    pass "the parent table $TABLE is there (partitioned, $(q "SELECT count(*) FROM pg_partition_tree('$TABLE') WHERE level = 1") partitions)"
else
    fail "the parent table $TABLE is gone"
fi
if [ "$missing_young" -eq 0 ] && [ "$expected_young" -gt 0 ]; then
    pass "every row younger than ${KEEP_SECONDS}s is there: ${present_young} of ${expected_young} in the inserter's record"
elif [ "$expected_young" -eq 0 ]; then
    fail "the inserter recorded no row younger than ${KEEP_SECONDS}s: nothing to compare"
else
    fail "${missing_young} of ${expected_young} rows younger than ${KEEP_SECONDS}s are missing"
fi
if [ "$stale_rows" -eq 0 ]; then
    pass "nothing older than the window remains: window ${window_seconds}s (keep ${KEEP_SECONDS}s + ${INTERVAL_SECONDS}s partition + ${since_run}s since the last run), oldest row ${oldest_age}s old"
else
    fail "${stale_rows} rows older than the window (${window_seconds}s = keep ${KEEP_SECONDS}s + ${INTERVAL_SECONDS}s partition + ${since_run}s since the last run) remain; oldest row ${oldest_age}s old"
fi
exit "$FAILED"
