//! `run --env NAME` / `run --all`: retention on every database, a bounded number at a
//! time, each through run's own work on one database (`run::run_database`, or the dry run);
//! one report: a table of what ran where, then each database's run.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};

use super::report::{Sections, first_line};
use super::runner;
use super::targets::{Fleet, Target};
use crate::cli::{LogFormat, RunArgs};
use crate::db::interrupt::{self, EXIT_INTERRUPTED};
use crate::model::Project;
use crate::run::{self, RunTotals};

#[derive(Debug, Default)]
struct Summary {
    databases: usize,
    /// Databases where every table ran.
    ok: usize,
    /// Databases where a table failed or was skipped.
    with_failures: usize,
    /// Databases that could not be run at all.
    errors: usize,
}

/// `retentionc run --env NAME` / `--all`.
pub async fn command(config_path: &Path, args: &RunArgs) -> Result<ExitCode> {
    let fleet = Fleet::load(config_path, &args.fleet, &args.db).await?;
    // An unknown --table is an error before any database is reached.
    for chosen in &fleet.environments {
        run::select_policies(&chosen.project, &args.tables)?;
    }
    let tables = Arc::new(args.tables.clone());
    let delete_jobs = usize::from(args.delete_jobs);
    if args.log_format == LogFormat::Json {
        bail!(
            "--log-format json reports one database's run: with --env or --all, run each database on its own (--database-url) for JSON lines"
        );
    }
    let dry_run = args.dry_run.then_some(if args.exact {
        run::dry_run::Rows::Counted
    } else {
        run::dry_run::Rows::Estimated
    });
    let projects = fleet.projects();
    let targets = Arc::clone(&fleet.targets);
    let mut sections = Sections::new()?;
    let mut summary = Summary::default();
    let mut failure = None;
    let missing = runner::for_each(
        targets.len(),
        super::jobs(&args.fleet),
        move |index| {
            let target = targets[index].clone();
            let project = Arc::clone(&projects[target.environment]);
            let tables = Arc::clone(&tables);
            async move {
                let mut out = Vec::new();
                let result =
                    run_target(&target, &project, &tables, dry_run, delete_jobs, &mut out).await;
                (out, result)
            }
        },
        |index, (text, result)| {
            if let Err(e) = add(&mut sections, &mut summary, index, &text, result)
                && failure.is_none()
            {
                failure = Some(e);
            }
        },
    )
    .await;
    for index in missing {
        add(
            &mut sections,
            &mut summary,
            index,
            b"",
            Err(anyhow!("not run: interrupted (Ctrl-C or SIGTERM)")),
        )?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "retentionc run{}: {} databases: {} ok, {} with failures, {} errors\n",
        if dry_run.is_some() { " --dry-run" } else { "" },
        summary.databases,
        summary.ok,
        summary.with_failures,
        summary.errors
    )?;
    sections.write_text(
        &fleet.targets,
        &[
            "ENVIRONMENT",
            "DATABASE",
            "OK",
            "SKIPPED",
            "FAILED",
            "ERROR",
        ],
        &[false, false, true, true, true, false],
        &mut stdout,
    )?;
    stdout.flush()?;
    Ok(if interrupt::interrupted() {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.with_failures + summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One database's run (or dry run), its report written to `out`.
async fn run_target(
    target: &Target,
    project: &Project,
    tables: &[String],
    dry_run: Option<run::dry_run::Rows>,
    delete_jobs: usize,
    out: &mut Vec<u8>,
) -> Result<RunTotals> {
    if let Some(problem) = &target.problem {
        return Err(anyhow!("{problem}"));
    }
    let policies = run::select_policies(project, tables)?;
    if let Some(rows) = dry_run {
        let code = run::dry_run::dry_run(&project.config, &policies, &target.db, rows, out).await?;
        return Ok(if code == ExitCode::SUCCESS {
            RunTotals {
                ok: policies.len(),
                ..RunTotals::default()
            }
        } else {
            RunTotals {
                failed: 1,
                ..RunTotals::default()
            }
        });
    }
    let options = run::RunOptions {
        log_format: LogFormat::Text,
        delete_jobs,
    };
    run::run_database(project, &policies, &target.db, options, out).await
}

fn add(
    sections: &mut Sections,
    summary: &mut Summary,
    index: usize,
    text: &[u8],
    result: Result<RunTotals>,
) -> Result<()> {
    summary.databases += 1;
    let (row, mut section) = match &result {
        Ok(t) => {
            if t.failed + t.skipped > 0 || t.interrupted {
                summary.with_failures += 1;
            } else {
                summary.ok += 1;
            }
            (
                vec![
                    t.ok.to_string(),
                    t.skipped.to_string(),
                    t.failed.to_string(),
                    if t.interrupted {
                        "interrupted".into()
                    } else {
                        String::new()
                    },
                ],
                text.to_vec(),
            )
        }
        Err(e) => {
            summary.errors += 1;
            let error = super::error_text(e);
            let mut section = text.to_vec();
            writeln!(section, "error: {error}")?;
            (
                vec!["-".into(), "-".into(), "-".into(), first_line(&error)],
                section,
            )
        }
    };
    if section.is_empty() {
        section.extend_from_slice(b"no tables ran\n");
    }
    // run has no JSON output: its entries stay empty.
    sections.add(index, row, &section, b"")?;
    Ok(())
}
