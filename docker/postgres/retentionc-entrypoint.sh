#!/bin/sh
# Adds what retentionc's demo database needs to the server's command line, then runs the
# official entrypoint: pg_cron preloaded, its jobs in POSTGRES_DB, the server in UTC
# (pg_partman's advice for time-based partitions). Settings given after these (in the
# compose file's `command:`) win, since PostgreSQL takes the last `-c` for a name.
set -eu
# Flags alone (`command: ["-c", "work_mem=64MB"]`) mean the server, as for the official image.
case "${1:-}" in
    -*) set -- postgres "$@" ;;
esac
if [ "${1:-}" = "postgres" ]; then
    shift
    set -- postgres \
        -c shared_preload_libraries=pg_cron \
        -c "cron.database_name=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
        -c timezone=UTC \
        -c log_timezone=UTC \
        "$@"
fi
exec docker-entrypoint.sh "$@"
