//! `retentionc status`: whether retention holds, per managed table. Reads only (one READ
//! ONLY transaction): the partition set as pg_partman sees it (bounds from the catalog),
//! the oldest row (min of the control column, through its index), rows stuck in the
//! default partition, premade partitions, and the last run of each step from `run_log`.
//!
//! `--check` exits 3 when a table holds rows older than keep + one partition interval +
//! the schedule's period (the longest a correctly working setup can leave them).

pub mod schedule;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::cli::{StatusArgs, StatusFormat};
use crate::db;
use crate::model::{Config, Epoch, Interval, Policy};
use crate::policy::{self, ident::quote_ident};
use crate::run::partitions;

/// Exit status of `status --check` when retention lapsed somewhere.
pub const EXIT_LAPSED: u8 = 3;

#[derive(Debug, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionStatus>,
    /// Last run of each step (`maintenance`, `delete:<rule>`), newest first per step.
    pub last_runs: Vec<LastRun>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    pub count: usize,
    pub oldest_bound: Option<String>,
    pub newest_bound: Option<String>,
    /// Children wholly after now.
    pub premade_ahead: usize,
    pub premake: u32,
    /// Rows in the default partition: data pg_partman could not place.
    pub default_rows: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct RetentionStatus {
    pub keep: String,
    /// keep + one partition interval + the schedule's period.
    pub allowed_age: String,
    pub allowed_age_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_age_note: Option<String>,
    pub oldest_row: Option<String>,
    pub oldest_row_age_seconds: Option<f64>,
    /// False when a row older than `allowed_age` is still there.
    pub holds: bool,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub step: String,
    pub outcome: String,
    pub started_at: String,
    pub finished_at: String,
    pub run_by: String,
    pub partitions_created: i32,
    pub partitions_removed: i32,
    pub rows_deleted: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn status(config_path: &Path, args: &StatusArgs) -> Result<ExitCode> {
    let project = policy::load_project(config_path)?;
    let tables = database_status(&project, &args.db).await?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        StatusFormat::Json => {
            #[derive(Serialize)]
            struct Output<'a> {
                tables: &'a [TableStatus],
                /// Tables holding rows older than their policy allows.
                lapsed: Vec<&'a str>,
            }
            let lapsed = tables
                .iter()
                .filter(|t| t.retention.as_ref().is_some_and(|r| !r.holds))
                .map(|t| t.table.as_str())
                .collect();
            serde_json::to_writer_pretty(
                &mut stdout,
                &Output {
                    tables: &tables,
                    lapsed,
                },
            )?;
            writeln!(stdout)?;
        }
        StatusFormat::Text => write_text(&tables, &mut stdout)?,
    }
    let lapsed: Vec<&TableStatus> = tables
        .iter()
        .filter(|t| t.retention.as_ref().is_some_and(|r| !r.holds))
        .collect();
    if args.check && !lapsed.is_empty() {
        for t in &lapsed {
            let r = t.retention.as_ref().expect("lapsed tables have retention");
            eprintln!(
                "check failed: {} holds rows from {} ({} old), older than its policy allows ({})",
                t.table,
                r.oldest_row.as_deref().unwrap_or("?"),
                r.oldest_row_age_seconds
                    .map(human_seconds)
                    .unwrap_or_default(),
                r.allowed_age
            );
        }
        return Ok(ExitCode::from(EXIT_LAPSED));
    }
    Ok(ExitCode::SUCCESS)
}

/// keep + partition interval + the schedule's period (with a note when assumed).
/// Every managed table's status on one database, read in one READ ONLY transaction.
pub async fn database_status(
    project: &crate::model::Project,
    db_args: &crate::cli::DbArgs,
) -> Result<Vec<TableStatus>> {
    let client = db::connect(db_args, crate::run::APPLICATION_NAME).await?;
    client.batch_execute("BEGIN TRANSACTION READ ONLY").await?;
    let mut tables = Vec::new();
    let mut failure = None;
    for policy in &project.policies {
        match table_status(&client, &project.config, policy).await {
            Ok(s) => tables.push(s),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let _ = client.batch_execute("ROLLBACK").await;
    match failure {
        Some(e) => Err(e),
        None => Ok(tables),
    }
}

/// Whether a table holds rows older than its policy allows.
pub fn lapsed(table: &TableStatus) -> bool {
    table.retention.as_ref().is_some_and(|r| !r.holds)
}

pub fn allowed_age(policy: &Policy) -> Option<(Interval, Option<String>)> {
    let keep = policy.retention.as_ref()?.keep;
    let interval = policy.partitioning.as_ref()?.interval;
    let allowed = keep.plus(&interval);
    Some(match &policy.schedule {
        Some(cron) => {
            let (period, note) = schedule::period(cron);
            (allowed.plus(&period), note)
        }
        None => (allowed, None),
    })
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

async fn table_status(client: &Client, config: &Config, policy: &Policy) -> Result<TableStatus> {
    let table = policy.table.to_string();
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1::text) IS NOT NULL",
            &[&policy.table.quoted()],
        )
        .await?
        .get(0);
    let mut status = TableStatus {
        table: table.clone(),
        exists,
        partitions: None,
        retention: None,
        last_runs: Vec::new(),
        warnings: Vec::new(),
    };
    if !exists {
        status
            .warnings
            .push(format!("table {table} does not exist"));
        return Ok(status);
    }
    if let Some(partitioning) = &policy.partitioning {
        match partitions::part_config(client, &config.partman_schema, &table).await? {
            None => status
                .warnings
                .push("not registered with pg_partman: apply the policy".into()),
            Some(part_config) => {
                let children =
                    partitions::children(client, &config.partman_schema, &table, &part_config)
                        .await?;
                let now: DateTime<Utc> = client.query_one("SELECT now()", &[]).await?.get(0);
                let ahead = children.iter().filter(|c| c.start > now).count();
                let default_rows = match partitions::default_partition(client, &table).await? {
                    Some(default) => {
                        let n: i64 = client
                            .query_one(&format!("SELECT count(*) FROM ONLY {default}"), &[])
                            .await?
                            .get(0);
                        Some(n)
                    }
                    None => None,
                };
                if let Some(n) = default_rows.filter(|n| *n > 0) {
                    status.warnings.push(format!(
                        "{n} rows in the default partition: data pg_partman could not place (see {}.check_default())",
                        config.partman_schema
                    ));
                }
                if ahead == 0 {
                    status.warnings.push(
                        "no partition premade ahead of now: new rows go to the default partition"
                            .into(),
                    );
                }
                status.partitions = Some(PartitionStatus {
                    count: children.len(),
                    oldest_bound: children.first().map(|c| timestamp(c.start)),
                    newest_bound: children.last().map(|c| timestamp(c.end)),
                    premade_ahead: ahead,
                    premake: partitioning.premake,
                    default_rows,
                });
            }
        }
        if let Some((allowed, note)) = allowed_age(policy) {
            status.retention =
                Some(retention_status(client, policy, partitioning.epoch, allowed, note).await?);
        }
    }
    status.last_runs = last_runs(client, config, &table).await?;
    for run in &status.last_runs {
        if run.outcome != "ok" {
            status.warnings.push(format!(
                "last {} {} at {}{}",
                run.step,
                run.outcome,
                run.started_at,
                run.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(status)
}

async fn retention_status(
    client: &Client,
    policy: &Policy,
    epoch: Epoch,
    allowed: Interval,
    note: Option<String>,
) -> Result<RetentionStatus> {
    let partitioning = policy
        .partitioning
        .as_ref()
        .expect("retention status needs partitioning");
    let column = quote_ident(partitioning.column.as_str());
    // min() over the parent uses the control column's index on each partition.
    let oldest = match epoch {
        Epoch::None => format!("min({column})::timestamptz"),
        Epoch::Seconds => format!("to_timestamp(min({column}))"),
        Epoch::Milliseconds => format!("to_timestamp(min({column}) / 1000.0)"),
        Epoch::Microseconds => format!("to_timestamp(min({column}) / 1000000.0)"),
        Epoch::Nanoseconds => format!("to_timestamp(min({column}) / 1000000000.0)"),
    };
    let sql = format!(
        "WITH o AS (SELECT {oldest} AS oldest FROM {table}) \
         SELECT oldest, extract(epoch FROM now() - oldest)::float8, \
                extract(epoch FROM $1::text::interval)::float8, \
                coalesce(oldest >= now() - $1::text::interval, true) \
           FROM o",
        table = policy.table.quoted()
    );
    let allowed_text = allowed.to_string();
    let row = client
        .query_one(&sql, &[&allowed_text])
        .await
        .with_context(|| format!("reading the oldest row of {}", policy.table))?;
    let oldest: Option<DateTime<Utc>> = row.get(0);
    Ok(RetentionStatus {
        keep: policy
            .retention
            .as_ref()
            .map(|r| r.keep.to_string())
            .unwrap_or_default(),
        allowed_age: allowed_text,
        allowed_age_seconds: row.get(2),
        allowed_age_note: note,
        oldest_row: oldest.map(timestamp),
        oldest_row_age_seconds: row.get(1),
        holds: row.get(3),
    })
}

async fn last_runs(client: &Client, config: &Config, table: &str) -> Result<Vec<LastRun>> {
    let schema = config.schema.as_str();
    let has_log: bool = client
        .query_one(
            "SELECT to_regclass($1::text) IS NOT NULL",
            &[&format!("{}.\"run_log\"", quote_ident(schema))],
        )
        .await?
        .get(0);
    if !has_log {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT ON (step) step, outcome, started_at, finished_at, run_by, partitions_created, \
                partitions_removed, rows_deleted, detail->>'error' \
           FROM {}.\"run_log\" WHERE table_name = $1 ORDER BY step, started_at DESC, id DESC",
        quote_ident(schema)
    );
    let rows = client
        .query(&sql, &[&table])
        .await
        .context("reading run_log")?;
    Ok(rows
        .iter()
        .map(|r| LastRun {
            step: r.get(0),
            outcome: r.get(1),
            started_at: timestamp(r.get(2)),
            finished_at: timestamp(r.get(3)),
            run_by: r.get(4),
            partitions_created: r.get(5),
            partitions_removed: r.get(6),
            rows_deleted: r.get(7),
            error: r.get(8),
        })
        .collect())
}

/// 90061.5 -> "1d 1h 1m 1s"; under a minute with one decimal.
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let total = seconds as i64;
    let (d, h, m, s) = (
        total / 86400,
        total % 86400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    let mut parts = Vec::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    parts.join(" ")
}

pub fn write_text(tables: &[TableStatus], out: &mut impl Write) -> std::io::Result<()> {
    for t in tables {
        writeln!(out, "{}", t.table)?;
        if let Some(p) = &t.partitions {
            writeln!(
                out,
                "  partitions: {} from {} to {}; {} premade ahead of now (premake {})",
                p.count,
                p.oldest_bound.as_deref().unwrap_or("-"),
                p.newest_bound.as_deref().unwrap_or("-"),
                p.premade_ahead,
                p.premake
            )?;
            if let Some(n) = p.default_rows {
                writeln!(out, "  default partition: {n} rows")?;
            }
        }
        if let Some(r) = &t.retention {
            let verdict = if r.holds { "holds" } else { "LAPSED" };
            match (&r.oldest_row, r.oldest_row_age_seconds) {
                (Some(oldest), Some(age)) => writeln!(
                    out,
                    "  oldest row: {oldest} ({} old); keep {}, allowed {}: retention {verdict}",
                    human_seconds(age),
                    r.keep,
                    r.allowed_age
                )?,
                _ => writeln!(
                    out,
                    "  oldest row: none (empty); keep {}: retention {verdict}",
                    r.keep
                )?,
            }
            if let Some(note) = &r.allowed_age_note {
                writeln!(out, "  note: {note}")?;
            }
        }
        if t.last_runs.is_empty() {
            writeln!(out, "  last run: never")?;
        }
        for run in &t.last_runs {
            let what = if run.step == "maintenance" {
                format!(
                    "{} created, {} removed",
                    run.partitions_created, run.partitions_removed
                )
            } else {
                format!("{} rows", run.rows_deleted)
            };
            // pg_cron's background workers run without an application_name.
            let by = if run.run_by.is_empty() {
                "a session without application_name (pg_cron)"
            } else {
                run.run_by.as_str()
            };
            writeln!(
                out,
                "  last {}: {} at {} by {by} ({what}){}",
                run.step,
                run.outcome,
                run.started_at,
                run.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )?;
        }
        for w in &t.warnings {
            writeln!(out, "  warning: {w}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(human_seconds(14.84), "14.8s");
        assert_eq!(human_seconds(90061.5), "1d 1h 1m 1s");
        assert_eq!(human_seconds(3600.0), "1h");
    }

    #[test]
    fn lapsed_tables_are_shown_as_such() {
        let t = TableStatus {
            table: "public.t".into(),
            exists: true,
            partitions: None,
            retention: Some(RetentionStatus {
                keep: "15 seconds".into(),
                allowed_age: "16 seconds".into(),
                allowed_age_seconds: 16.0,
                allowed_age_note: None,
                oldest_row: Some("2026-01-01T00:00:00Z".into()),
                oldest_row_age_seconds: Some(3600.0),
                holds: false,
            }),
            last_runs: vec![],
            warnings: vec![],
        };
        let mut out = Vec::new();
        write_text(&[t], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("(1h old); keep 15 seconds, allowed 16 seconds: retention LAPSED"),
            "{text}"
        );
        assert!(text.contains("last run: never"), "{text}");
    }
}
