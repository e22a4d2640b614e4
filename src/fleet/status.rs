//! `status --env NAME` / `status --all` (and `--check` for monitoring): every database's
//! status through status's own work on one database (`status::database_status`), a
//! bounded number at a time; one report. `--check` exits 3 when any database holds data
//! older than its policies allow, else 1 when any could not be read.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use serde::Serialize;

use super::report::{Sections, first_line};
use super::runner;
use super::targets::{Fleet, Target};
use crate::cli::{StatusArgs, StatusFormat};
use crate::model::Project;
use crate::status::prometheus::{DatabaseMetrics, write_prometheus_fleet};
use crate::status::{self, EXIT_LAPSED, Finding, Report, TableStatus};

#[derive(Debug, Default, Serialize)]
struct Summary {
    databases: usize,
    /// Databases where a promise of a policy is broken.
    lapsed: usize,
    /// Databases that could not be read.
    errors: usize,
}

/// One database in `status --format json`.
#[derive(Serialize)]
struct DatabaseStatus<'a> {
    environment: &'a str,
    database: &'a str,
    source: &'a str,
    tables: &'a [TableStatus],
    /// Tables with at least one broken promise.
    lapsed: Vec<&'a str>,
    findings: Vec<&'a Finding>,
    error: Option<String>,
}

/// `retentionc status --env NAME` / `--all`.
pub async fn command(config_path: &Path, args: &StatusArgs) -> Result<ExitCode> {
    let fleet = Fleet::load(config_path, &args.fleet, &args.db).await?;
    let projects = fleet.projects();
    let targets = Arc::clone(&fleet.targets);
    let work_targets = Arc::clone(&targets);
    let mut sections = Sections::new()?;
    let mut summary = Summary::default();
    let mut failure = None;
    let mut read: Vec<Option<Report>> = (0..targets.len()).map(|_| None).collect();
    let missing = runner::for_each(
        targets.len(),
        super::jobs(&args.fleet),
        move |index| {
            let target = work_targets[index].clone();
            let project = Arc::clone(&projects[target.environment]);
            async move { status_target(&target, &project).await }
        },
        |index, result| {
            if let Err(e) = add(
                &mut sections,
                &mut summary,
                &targets[index],
                index,
                result,
                &mut read,
            ) && failure.is_none()
            {
                failure = Some(e);
            }
        },
    )
    .await;
    for index in missing {
        let result = Err(anyhow!("not read: interrupted (Ctrl-C or SIGTERM)"));
        add(
            &mut sections,
            &mut summary,
            &fleet.targets[index],
            index,
            result,
            &mut read,
        )?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        StatusFormat::Json => {
            sections.write_json("retentionc-fleet-status", &summary, &mut stdout)?;
        }
        StatusFormat::Prometheus => {
            let databases: Vec<DatabaseMetrics> = fleet
                .targets
                .iter()
                .zip(&read)
                .map(|(target, report)| DatabaseMetrics {
                    labels: vec![
                        ("environment", target.environment_name.as_str()),
                        ("database", target.database.as_str()),
                    ],
                    read: report.as_ref().map(|r| (r.tables.as_slice(), r.now)),
                })
                .collect();
            write_prometheus_fleet(&databases, &mut stdout)?;
        }
        StatusFormat::Text => {
            writeln!(
                stdout,
                "retentionc status: {} databases: {} with lapsed retention, {} errors\n",
                summary.databases, summary.lapsed, summary.errors
            )?;
            sections.write_text(
                &fleet.targets,
                &["ENVIRONMENT", "DATABASE", "TABLES", "LAPSED", "ERROR"],
                &[false, false, true, true, false],
                &mut stdout,
            )?;
        }
    }
    stdout.flush()?;
    if args.check && summary.lapsed > 0 {
        eprintln!(
            "check failed: retention lapsed on {} of {} databases",
            summary.lapsed, summary.databases
        );
        return Ok(ExitCode::from(EXIT_LAPSED));
    }
    Ok(if summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn status_target(target: &Target, project: &Project) -> Result<Report> {
    if let Some(problem) = &target.problem {
        return Err(anyhow!("{problem}"));
    }
    status::database_status(project, &target.db).await
}

fn add(
    sections: &mut Sections,
    summary: &mut Summary,
    target: &Target,
    index: usize,
    result: Result<Report>,
    read: &mut [Option<Report>],
) -> Result<()> {
    summary.databases += 1;
    let mut text = Vec::new();
    let (report, error) = match result {
        Ok(report) => (Some(report), None),
        Err(e) => (None, Some(super::error_text(&e))),
    };
    let tables: &[TableStatus] = report.as_ref().map_or(&[], |r| &r.tables);
    let lapsed: Vec<&str> = tables
        .iter()
        .filter(|t| t.lapsed())
        .map(|t| t.table.as_str())
        .collect();
    let row = match &error {
        Some(error) => {
            summary.errors += 1;
            writeln!(text, "error: {error}")?;
            vec!["-".into(), "-".into(), first_line(error)]
        }
        None => {
            if !lapsed.is_empty() {
                summary.lapsed += 1;
            }
            status::write_text(tables, &mut text)?;
            vec![
                tables.len().to_string(),
                lapsed.len().to_string(),
                String::new(),
            ]
        }
    };
    let json = serde_json::to_vec_pretty(&DatabaseStatus {
        environment: &target.environment_name,
        database: &target.database,
        source: &target.source,
        tables,
        lapsed,
        findings: tables.iter().flat_map(|t| &t.findings).collect(),
        error,
    })?;
    sections.add(index, row, &text, &json)?;
    read[index] = report;
    Ok(())
}
