-- Run once by the official image's entrypoint when the data directory is first made:
-- in POSTGRES_DB, as POSTGRES_USER (a superuser). Safe to run again by hand.
--
-- pg_partman lives in schema partman (retentionc.yaml: partman_schema). pg_cron can only
-- be created in cron.database_name, which retentionc-entrypoint.sh sets to POSTGRES_DB.

CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
CREATE EXTENSION IF NOT EXISTS pg_cron;

-- The demo table of policies/test_table1.yaml: one partition per second on mtime.
-- retentionc apply registers it with pg_partman (create_parent) and sets its retention.
CREATE TABLE IF NOT EXISTS public.test_table1 (
    id      bigserial,
    mtime   timestamptz NOT NULL DEFAULT now(),
    payload text
) PARTITION BY RANGE (mtime);
