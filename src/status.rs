//! `retentionc status`: whether every promise of every policy holds. Reads only: one
//! read-only snapshot and a fixed number of statements whatever the number of tables
//! (`facts`), then pure checks (`checks`), written as text, JSON or Prometheus metrics.
//!
//! `--check` exits 3 on any lapse: data older than a policy allows (partitions past
//! keep, rows a delete rule should have removed), a failed, stale or missing run, a
//! missing default partition or rows in it, too few premade partitions, a gap between
//! partitions, a table missing or not registered. docs/run-status.md describes each.

pub mod checks;
pub mod facts;
pub mod prometheus;
pub mod schedule;
pub mod text;
pub mod window;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{StatusArgs, StatusFormat};
use crate::db;
use crate::model::Project;
use crate::policy;

pub use checks::{Check, Finding, TableStatus, human_seconds};
pub use text::write_text;

/// Exit status of `status --check` when retention lapsed somewhere.
pub const EXIT_LAPSED: u8 = 3;

/// Every policy's status, and how many statements reading it took.
pub struct Report {
    pub tables: Vec<TableStatus>,
    pub now: chrono::DateTime<chrono::Utc>,
    pub statements_sent: u32,
}

/// Reads and checks every policy of `project` (also what the benchmark times).
pub async fn report(client: &tokio_postgres::Client, project: &Project) -> Result<Report> {
    let facts = facts::read(client, project).await?;
    let tables = project
        .policies
        .iter()
        .map(|policy| checks::evaluate(policy, &project.config, &facts))
        .collect();
    Ok(Report {
        tables,
        now: facts.live.now,
        statements_sent: facts.statements_sent,
    })
}

/// `retentionc status`.
pub async fn command(config_path: &Path, args: &StatusArgs) -> Result<ExitCode> {
    let project = policy::load_project(config_path)?;
    let report = database_status(&project, &args.db).await?;
    let tables = &report.tables;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        StatusFormat::Json => {
            #[derive(Serialize)]
            struct Output<'a> {
                tables: &'a [TableStatus],
                /// Tables with at least one lapse.
                lapsed: Vec<&'a str>,
                findings: Vec<&'a Finding>,
            }
            serde_json::to_writer_pretty(
                &mut stdout,
                &Output {
                    tables,
                    lapsed: tables
                        .iter()
                        .filter(|t| t.lapsed())
                        .map(|t| t.table.as_str())
                        .collect(),
                    findings: tables.iter().flat_map(|t| &t.findings).collect(),
                },
            )?;
            writeln!(stdout)?;
        }
        StatusFormat::Prometheus => prometheus::write_prometheus(tables, report.now, &mut stdout)?,
        StatusFormat::Text => write_text(tables, &mut stdout)?,
    }
    stdout.flush()?;
    let findings: Vec<&Finding> = tables.iter().flat_map(|t| &t.findings).collect();
    if args.check && !findings.is_empty() {
        for f in &findings {
            eprintln!("{}", text::check_line(f));
        }
        return Ok(ExitCode::from(EXIT_LAPSED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every policy's status on one database: connect, read in one read-only snapshot, check.
/// A role that may not read what status reads gets the GRANT it needs.
pub async fn database_status(project: &Project, db_args: &crate::cli::DbArgs) -> Result<Report> {
    let client = db::connect(db_args, crate::run::APPLICATION_NAME).await?;
    match report(&client, project).await {
        Ok(report) => Ok(report),
        Err(e) => Err(db::privileges::read_failure(&client, e).await),
    }
}
