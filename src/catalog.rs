//! The few queries that read the live database, whatever the number of policies.
//!
//! `read_live` sends a fixed set of statements (at most [`MAX_STATEMENTS`]): one for the
//! context (time, extensions, retentionc's own objects), then part_config, the tables the
//! policies name (all at once, as a `text[]` parameter), their child partitions, the
//! routines in retentionc's schema, pg_cron's jobs, the last apply, the rights of the
//! tables' owners (`owner_rights`), and, for tables pg_partman does not manage yet, the
//! newest row of their default partitions (`default_rows`). Nothing here is per table. The caller chooses the transaction: `plan` wraps it in a read-only
//! repeatable-read snapshot, `apply` may run it inside its own transaction.
//!
//! Intervals are read as (months, days, microseconds) parts computed in SQL, so the
//! result does not depend on the session's IntervalStyle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::model::{Config, Interval};
use crate::policy::ident::quote_ident;

mod default_rows;
mod owner_rights;

pub use default_rows::DefaultRows;
pub use owner_rights::OwnerRights;

/// Most statements `read_live` sends (BEGIN/COMMIT not included).
pub const MAX_STATEMENTS: u32 = 11;

/// A table a policy names, with what the rights its owner needs depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTable {
    /// `schema.table`.
    pub name: String,
    pub partitioned: bool,
    /// Where expired partitions are archived, if they are.
    pub archive_schema: Option<String>,
    /// The prune procedure's name, with delete rules.
    pub procedure: Option<String>,
    /// The policy has a pg_cron schedule.
    pub scheduled: bool,
}

impl PolicyTable {
    /// What the catalog reads for `policy`'s table.
    pub fn of(policy: &crate::model::Policy) -> PolicyTable {
        PolicyTable {
            name: policy.table.to_string(),
            partitioned: policy.partitioning.is_some(),
            archive_schema: match policy.retention.as_ref().map(|r| &r.expired) {
                Some(crate::model::Expired::Archive { schema }) => Some(schema.to_string()),
                _ => None,
            },
            procedure: policy.prune_procedure().map(|name| name.to_string()),
            scheduled: policy.schedule.is_some(),
        }
    }
}

/// Everything plan needs to know about the live database, as plain data.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The database's `now()` in the reading transaction: impact is computed against it.
    pub now: DateTime<Utc>,
    pub partman: Option<Extension>,
    pub cron: Option<Extension>,
    /// Every part_config row, managed or not.
    pub part_config: Vec<PartConfigRow>,
    /// The tables the policies name that exist, by `schema.table`.
    pub tables: BTreeMap<String, TableInfo>,
    /// Child partitions of those tables, by parent `schema.table`.
    pub children: BTreeMap<String, Vec<ChildPartition>>,
    /// Functions and procedures in retentionc's schema.
    pub routines: Vec<Routine>,
    /// pg_cron jobs named `retentionc:%`.
    pub jobs: Vec<CronJob>,
    /// What retentionc recorded making, and for which table (`<schema>.managed_objects`).
    pub managed_objects: Vec<ManagedObject>,
    pub bootstrap: BootstrapObjects,
    pub last_apply: Option<LastApply>,
    /// The owner of each policy table that exists, and the rights its retention needs
    /// that it lacks, by `schema.table`.
    pub owner_rights: BTreeMap<String, OwnerRights>,
    /// The default partition of each policy table pg_partman does not manage yet, and
    /// the newest row it holds, by `schema.table`.
    pub default_rows: BTreeMap<String, DefaultRows>,
    /// Statements sent to read this (for the benchmark: it must not grow with tables).
    pub statements_sent: u32,
    /// Plain tables that policies want partitioned: what converting each takes (read by
    /// plan, see `convert::facts`), by `schema.table`.
    pub conversions: BTreeMap<String, crate::convert::facts::ConversionFacts>,
    /// The server's lock table settings (how much one apply transaction may lock).
    pub lock_settings: Option<LockSettings>,
    /// Indexes on each policy's table (each new partition gets one of each), by
    /// `schema.table`.
    pub indexes: BTreeMap<String, i64>,
}

/// The settings that size the server's shared lock table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LockSettings {
    pub max_locks_per_transaction: i64,
    pub max_connections: i64,
    pub max_prepared_transactions: i64,
}

impl LockSettings {
    /// Locks the server's lock table is sized for, shared by every session:
    /// `max_locks_per_transaction` x (`max_connections` + `max_prepared_transactions`).
    pub fn capacity(&self) -> u64 {
        (self.max_locks_per_transaction.max(0) as u64)
            * ((self.max_connections + self.max_prepared_transactions).max(0) as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    pub version: String,
    pub schema: String,
}

impl Extension {
    pub fn major(&self) -> Option<u8> {
        self.version.split('.').next()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartConfigRow {
    pub parent_table: String,
    pub control: String,
    /// As stored (text); `partition_interval_parsed` for time-based sets.
    pub partition_interval: String,
    pub partition_interval_parsed: Option<Interval>,
    pub premake: i64,
    pub retention: Option<String>,
    pub retention_parsed: Option<Interval>,
    pub retention_schema: Option<String>,
    pub retention_keep_table: bool,
    pub retention_keep_index: bool,
    pub infinite_time_partitions: bool,
    pub epoch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableInfo {
    /// pg_class.relkind: `r` plain table, `p` partitioned table, ...
    pub relkind: String,
    /// pg_partitioned_table.partstrat: `r` range, `l` list, `h` hash.
    pub partition_strategy: Option<String>,
    /// Key columns; an expression in the key shows as fewer names than `key_count`.
    pub partition_key: Vec<String>,
    pub key_count: i64,
    pub columns: Vec<Column>,
    /// The table belongs to an extension (pg_depend), like pg_partman's part_config.
    pub extension_member: bool,
    /// pg_class.relpersistence: `p` permanent, `u` unlogged, `t` temporary.
    pub persistence: String,
    /// The owning role.
    pub owner: String,
    /// Columns declared NOT NULL (pg_partman 5 registers only a NOT NULL partition key).
    pub not_null_columns: Vec<String>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    /// `format_type`: `timestamp with time zone`, `date`, `bigint`, ...
    pub type_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildPartition {
    pub name: String,
    /// `pg_get_expr(relpartbound)`: `FOR VALUES FROM (...) TO (...)` or `DEFAULT`.
    pub bound: String,
    /// pg_class.reltuples: -1 when never analysed.
    pub estimated_rows: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routine {
    pub name: String,
    /// pg_proc.prokind: `f` function, `p` procedure.
    pub kind: String,
    pub arguments: String,
    /// pg_proc.prosrc: the body between the dollar quotes, exactly.
    pub body: String,
    /// PUBLIC may execute it.
    pub public_execute: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronJob {
    pub name: String,
    pub schedule: String,
    pub command: String,
    pub database: String,
    /// The role pg_cron runs it as.
    pub username: String,
}

/// retentionc's own objects (generated/_retentionc.sql).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootstrapObjects {
    pub schema: bool,
    pub apply_history: bool,
    pub run_log: bool,
    pub run_log_index: bool,
    pub managed_objects: bool,
}

/// A row of `<schema>.managed_objects`: an object retentionc made, and the table it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedObject {
    /// `procedure`.
    pub kind: String,
    pub name: String,
    /// `schema.table`.
    pub table: String,
    /// For a procedure, a `model::ProcedureRecord`.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LastApply {
    pub id: i64,
    pub applied_at: DateTime<Utc>,
    pub policy_hashes: BTreeMap<String, String>,
    /// What apply recorded as the state it left (see `state::applied_state_json`).
    pub applied_state: serde_json::Value,
}

/// Counts what is sent, so the benchmark can show the count does not grow.
pub struct Counting<'c, C> {
    pub client: &'c C,
    sent: AtomicU32,
}

impl<'c, C: GenericClient + Sync> Counting<'c, C> {
    pub fn new(client: &'c C) -> Self {
        Counting {
            client,
            sent: AtomicU32::new(0),
        }
    }
    /// Counts statements a function of another module sent on this client.
    pub fn count_sent(&self, statements: u32) {
        self.sent.fetch_add(statements, Ordering::Relaxed);
    }
    pub fn sent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed)
    }
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.client.query(sql, params).await
    }
    pub async fn batch_execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.client.batch_execute(sql).await
    }
}

/// SQL for an interval held as text: its (months, days, microseconds), or NULL when the
/// text is a bare number (an id-based set, or pg_partman's seconds shorthand).
fn interval_parts(column: &str) -> String {
    let i = format!("({column})::interval");
    format!(
        "CASE WHEN {column} IS NULL OR {column} ~ '^\\s*-?[0-9]+\\s*$' THEN NULL ELSE ARRAY[
            (extract(year FROM {i}) * 12 + extract(month FROM {i}))::int8,
            extract(day FROM {i})::int8,
            (extract(hour FROM {i}) * 3600000000 + extract(minute FROM {i}) * 60000000
             + extract(microseconds FROM {i}))::int8] END"
    )
}

fn interval_from_parts(parts: Option<Vec<i64>>) -> Option<Interval> {
    match parts.as_deref() {
        Some([months, days, micros]) => Some(Interval {
            months: *months,
            days: *days,
            micros: *micros,
        }),
        _ => None,
    }
}

/// Reads the live state. `tables`: every `schema.table` a policy names.
/// Run it inside one snapshot (see `plan::make_plan`): the queries must agree.
pub async fn read_live<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    config: &Config,
    policy_tables: &[PolicyTable],
) -> Result<Live> {
    let tables: Vec<String> = policy_tables.iter().map(|t| t.name.clone()).collect();
    let schema = config.schema.as_str();
    let context_row = client
        .query(
            "SELECT now(),
                    (SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'),
                    (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_partman'),
                    (SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'),
                    (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_cron'),
                    to_regnamespace($1) IS NOT NULL,
                    to_regclass(format('%I.%I', $1, 'apply_history')) IS NOT NULL,
                    to_regclass(format('%I.%I', $1, 'run_log')) IS NOT NULL,
                    to_regclass(format('%I.%I', $1, 'run_log_table_started')) IS NOT NULL,
                    to_regclass(format('%I.%I', $1, 'managed_objects')) IS NOT NULL,
                    current_setting('max_locks_per_transaction')::int8,
                    current_setting('max_connections')::int8,
                    current_setting('max_prepared_transactions')::int8",
            &[&schema],
        )
        .await
        .context("reading the server's extensions and retentionc's own objects")?;
    let row = &context_row[0];
    let extension = |v: usize, s: usize| -> Option<Extension> {
        Some(Extension {
            version: row.get::<_, Option<String>>(v)?,
            schema: row.get::<_, Option<String>>(s)?,
        })
    };
    let mut live = Live {
        now: row.get(0),
        partman: extension(1, 2),
        cron: extension(3, 4),
        bootstrap: BootstrapObjects {
            schema: row.get(5),
            apply_history: row.get(6),
            run_log: row.get(7),
            run_log_index: row.get(8),
            managed_objects: row.get(9),
        },
        lock_settings: Some(LockSettings {
            max_locks_per_transaction: row.get(10),
            max_connections: row.get(11),
            max_prepared_transactions: row.get(12),
        }),
        ..Live::default()
    };

    if let Some(partman) = &live.partman {
        let sql = format!(
            "SELECT parent_table, control, partition_interval, {}, premake::int8, retention, {},
                    retention_schema, retention_keep_table, retention_keep_index, infinite_time_partitions,
                    coalesce(epoch::text, 'none')
               FROM {}.part_config ORDER BY parent_table",
            interval_parts("partition_interval"),
            interval_parts("retention"),
            quote_ident(&partman.schema)
        );
        let rows = client
            .query(&sql, &[])
            .await
            .context("reading pg_partman's part_config")?;
        live.part_config = rows
            .iter()
            .map(|r| PartConfigRow {
                parent_table: r.get(0),
                control: r.get(1),
                partition_interval: r.get(2),
                partition_interval_parsed: interval_from_parts(r.get(3)),
                premake: r.get(4),
                retention: r.get(5),
                retention_parsed: interval_from_parts(r.get(6)),
                retention_schema: r.get(7),
                retention_keep_table: r.get::<_, Option<bool>>(8).unwrap_or(true),
                retention_keep_index: r.get::<_, Option<bool>>(9).unwrap_or(true),
                infinite_time_partitions: r.get::<_, Option<bool>>(10).unwrap_or(false),
                epoch: r.get(11),
            })
            .collect();
    }

    let names: Vec<String> = tables.clone();
    let rows = client
        .query(
            "WITH t AS (SELECT name, to_regclass(name) AS oid FROM unnest($1::text[]) AS name)
             SELECT t.name, c.relkind::text, p.partstrat::text, coalesce(p.partnatts, 0)::int8,
                    ARRAY(SELECT a.attname::text
                            FROM unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                           ORDER BY k.ord),
                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
                    ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
                    EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'),
                    c.relpersistence::text,
                    pg_get_userbyid(c.relowner)::text,
                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
                           ORDER BY a.attnum),
                    (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid)
               FROM t
               JOIN pg_class c ON c.oid = t.oid
               LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid",
            &[&names],
        )
        .await
        .context("reading the policies' tables")?;
    for r in &rows {
        let column_names: Vec<String> = r.get(5);
        let column_types: Vec<String> = r.get(6);
        let info = TableInfo {
            relkind: r.get(1),
            partition_strategy: r.get(2),
            key_count: r.get(3),
            partition_key: r.get(4),
            columns: column_names
                .into_iter()
                .zip(column_types)
                .map(|(name, type_name)| Column { name, type_name })
                .collect(),
            extension_member: r.get(7),
            persistence: r.get(8),
            owner: r.get(9),
            not_null_columns: r.get(10),
        };
        live.indexes.insert(r.get(0), r.get(11));
        live.tables.insert(r.get(0), info);
    }

    let rows = client
        .query(
            "WITH t AS (SELECT name, to_regclass(name) AS oid FROM unnest($1::text[]) AS name)
             SELECT t.name, format('%I.%I', n.nspname, c.relname), coalesce(pg_get_expr(c.relpartbound, c.oid), ''),
                    c.reltuples::float8
               FROM t
               JOIN pg_inherits i ON i.inhparent = t.oid
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              ORDER BY 1, 2",
            &[&names],
        )
        .await
        .context("reading child partitions")?;
    for r in &rows {
        live.children
            .entry(r.get(0))
            .or_default()
            .push(ChildPartition {
                name: r.get(1),
                bound: r.get(2),
                estimated_rows: r.get(3),
            });
    }

    if live.bootstrap.schema {
        let rows = client
            .query(
                "SELECT p.proname::text, p.prokind::text, pg_get_function_identity_arguments(p.oid), p.prosrc,
                        EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                 WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
                   FROM pg_proc p WHERE p.pronamespace = to_regnamespace($1)::oid ORDER BY 1, 3",
                &[&schema],
            )
            .await
            .context("reading retentionc's procedures")?;
        live.routines = rows
            .iter()
            .map(|r| Routine {
                name: r.get(0),
                kind: r.get(1),
                arguments: r.get(2),
                body: r.get(3),
                public_execute: r.get(4),
            })
            .collect();
    }

    if live.bootstrap.managed_objects {
        let sql = format!(
            "SELECT kind, name, table_name, detail FROM {}.\"managed_objects\" ORDER BY kind, name",
            quote_ident(schema)
        );
        let rows = client
            .query(&sql, &[])
            .await
            .context("reading what retentionc made")?;
        live.managed_objects = rows
            .iter()
            .map(|r| ManagedObject {
                kind: r.get(0),
                name: r.get(1),
                table: r.get(2),
                detail: r.get(3),
            })
            .collect();
    }

    if live.cron.is_some() {
        // pg_cron's row-level security shows a role only its own jobs: read them through
        // retentionc's cron_jobs() (SECURITY DEFINER, EXECUTE granted to the plan role) once
        // apply has made it; before that, from cron.job (pg_cron's tables are always in
        // schema cron).
        let through_function = live
            .routines
            .iter()
            .any(|r| r.name == "cron_jobs" && r.kind == "f");
        let sql = if through_function {
            format!(
                "SELECT jobname, schedule, command, database, username FROM {}.cron_jobs() ORDER BY jobname",
                quote_ident(schema)
            )
        } else {
            "SELECT jobname, schedule, command, database, username::text FROM cron.job WHERE jobname LIKE 'retentionc:%' ORDER BY jobname".to_string()
        };
        let rows = client
            .query(&sql, &[])
            .await
            .context("reading pg_cron's jobs")?;
        live.jobs = rows
            .iter()
            .map(|r| CronJob {
                name: r.get(0),
                schedule: r.get(1),
                command: r.get(2),
                database: r.get(3),
                username: r.get(4),
            })
            .collect();
    }

    if live.bootstrap.apply_history {
        let sql = format!(
            "SELECT id, applied_at, policy_hashes, applied_state FROM {}.apply_history ORDER BY id DESC LIMIT 1",
            quote_ident(schema)
        );
        let rows = client
            .query(&sql, &[])
            .await
            .context("reading the last apply")?;
        if let Some(r) = rows.first() {
            let hashes: serde_json::Value = r.get(2);
            live.last_apply = Some(LastApply {
                id: r.get(0),
                applied_at: r.get(1),
                policy_hashes: serde_json::from_value(hashes).unwrap_or_default(),
                applied_state: r.get(3),
            });
        }
    }
    live.owner_rights = owner_rights::read(client, config, policy_tables)
        .await?
        .into_iter()
        .collect();
    live.default_rows = default_rows::read(client, &live)
        .await?
        .into_iter()
        .collect();
    Ok(live)
}
