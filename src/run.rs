//! `retentionc run`: retention now, through the same SQL the schedule runs.
//!
//! First, for every table at once (`run/rights.rs`, a fixed number of statements): its
//! owner, whether this session's role may act as it, and whether the owner has every grant
//! its retention needs; a table that fails the check runs nothing. Then maintenance: every
//! partitioned table in one CALL of `retention.maintain_tables`, which runs pg_partman's
//! maintenance of each table as its owner in a transaction of its own, committed table by
//! table, and reports each outcome as it happens (`run/maintenance.rs`). Then each table's
//! delete rules: its prune procedure, `CALL`ed alone as a top-level statement so that it
//! can commit between batches (`run/prune.rs`), by one session, or by `--delete-jobs`
//! sessions at once, a table's prune always after its own maintenance. A blocked table
//! (lock_timeout) is tried again a few times with backoff, then reported; the other tables
//! still run. Ctrl-C or SIGTERM cancels the statements in flight: batches already
//! committed stay, the next run carries on from there.
//! `--dry-run` lives in `run/dry_run.rs`; nothing there writes.

pub mod dry_run;
pub mod error;
mod maintenance;
pub mod progress;
mod prune;
pub mod report;
mod rights;
pub mod step;
mod worker;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use tokio::sync::mpsc;

use crate::cli::{DbArgs, LogFormat, RunArgs};
use crate::db::interrupt::{self, EXIT_INTERRUPTED};
use crate::model::{Policy, Project};
use crate::policy;
pub use error::RunError;
pub use report::{Maintenance, Outcome, RuleReport, TableReport, write_report};
use rights::Verdict;
pub use step::{ServerError, describe_db_error};
pub use worker::APPLICATION_NAME;
use worker::{RunContext, Worker};

/// `retentionc run`.
pub async fn command(config_path: &Path, args: &RunArgs) -> Result<ExitCode> {
    let project = policy::load_project(config_path)?;
    let policies = select_policies(&project, &args.tables)?;
    // Not locked for the whole run: the sessions of `--delete-jobs` write reports too.
    let mut stdout = std::io::stdout();
    if policies.is_empty() {
        match args.log_format {
            LogFormat::Text => writeln!(stdout, "no policies: nothing to run")?,
            LogFormat::Json => {
                report::write_event(&report::run_event(0, 0, 0, false), &mut stdout)?
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        let rows = if args.exact {
            dry_run::Rows::Counted
        } else {
            dry_run::Rows::Estimated
        };
        return dry_run::dry_run(&project.config, &policies, &args.db, rows, &mut stdout).await;
    }
    let options = RunOptions {
        log_format: args.log_format,
        delete_jobs: usize::from(args.delete_jobs),
    };
    let RunTotals {
        ok,
        skipped,
        failed,
        interrupted,
    } = run_database(&project, &policies, &args.db, options, &mut stdout).await?;
    match args.log_format {
        LogFormat::Text => writeln!(stdout, "run: {ok} ok, {skipped} skipped, {failed} failed")?,
        LogFormat::Json => report::write_event(
            &report::run_event(ok, skipped, failed, interrupted),
            &mut stdout,
        )?,
    }
    if interrupted {
        eprintln!("interrupted: committed batches stay; the next run continues from there");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} table(s) skipped in part (pg_partman's maintenance lock held elsewhere, or partitions locked): retention did not fully run for them"
        );
    }
    Ok(if failed + skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How one database's run went, table by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub ok: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Stopped by Ctrl-C or SIGTERM before every table ran.
    pub interrupted: bool,
}

/// How a run writes its reports, and how many sessions run delete rules at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    pub log_format: LogFormat,
    /// Sessions that run delete rules at once (at least 1).
    pub delete_jobs: usize,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            log_format: LogFormat::Text,
            delete_jobs: 1,
        }
    }
}

/// Runs `policies` on one database, writing each table's report to `out` as it ends.
/// Output that cannot be written (a closed pipe) does not stop retention: the run goes
/// on, and its first write error is returned at the end.
pub async fn run_database<W: Write>(
    project: &Project,
    policies: &[&Policy],
    db: &DbArgs,
    options: RunOptions,
    out: &mut W,
) -> Result<RunTotals> {
    let ctx = RunContext {
        config: &project.config,
        db,
        run_id: format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id()
        ),
    };
    let mut first = Worker::connect(&ctx).await?;
    if policies.iter().any(|p| p.partitioning.is_some()) {
        check_maintain_tables(&first).await?;
    }
    // A signal stops the statements in flight; the report and run_log still say what happened.
    let _graceful = interrupt::graceful();
    let reporter = Mutex::new(Reporter::new(options.log_format, out));
    let verdicts = rights::check(&mut first, policies).await;
    let mut runnable = Vec::new();
    for (&policy, verdict) in policies.iter().zip(verdicts) {
        match verdict {
            Verdict::Runs => runnable.push(policy),
            Verdict::Fails(failure) => {
                let report = first.refuse(policy, failure).await;
                lock(&reporter).write(&report);
            }
        }
    }
    run_tables(
        &ctx,
        &mut first,
        &runnable,
        options.delete_jobs.max(1),
        &reporter,
    )
    .await?;
    let reporter = reporter.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = reporter.write_error {
        return Err(e.into());
    }
    let mut totals = reporter.totals;
    totals.interrupted = interrupt::interrupted();
    Ok(totals)
}

/// retentionc's schema must have the procedure run maintains tables with: one clear
/// error before anything runs, rather than one per table. Read from the catalog by name,
/// so that it needs no right on the schema.
async fn check_maintain_tables(worker: &Worker<'_>) -> Result<()> {
    let present: bool = worker
        .session
        .client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p \
                              JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                             WHERE n.nspname::text = $1 AND p.proname = 'maintain_tables' \
                               AND p.prokind = 'p' \
                               AND pg_catalog.oidvectortypes(p.proargtypes) = 'text[], text[]')",
            &[&worker.ctx.config.schema.as_str()],
        )
        .await?
        .get(0);
    if !present {
        return Err(RunError::RoutinesMissing {
            schema: worker.ctx.config.schema.to_string(),
        }
        .into());
    }
    Ok(())
}

/// Where finished tables are written, and how they ended.
struct Reporter<'w, W: Write> {
    log_format: LogFormat,
    out: &'w mut W,
    totals: RunTotals,
    /// The first write that failed; nothing more is written after it.
    write_error: Option<std::io::Error>,
}

impl<'w, W: Write> Reporter<'w, W> {
    fn new(log_format: LogFormat, out: &'w mut W) -> Self {
        Reporter {
            log_format,
            out,
            totals: RunTotals::default(),
            write_error: None,
        }
    }

    /// Writes a finished table's lines at once and counts its outcome.
    fn write(&mut self, report: &TableReport) {
        match report.outcome() {
            Outcome::Ok => self.totals.ok += 1,
            Outcome::Skipped => self.totals.skipped += 1,
            Outcome::Failed => self.totals.failed += 1,
        }
        if self.write_error.is_some() {
            return;
        }
        let written = match self.log_format {
            LogFormat::Text => write_report(report, self.out),
            LogFormat::Json => report::write_json_events(report, self.out),
        }
        .and_then(|()| self.out.flush());
        if let Err(e) = written {
            self.write_error = Some(e);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A table whose delete rules are due: its maintenance (if partitioned) is final.
struct Due<'p> {
    policy: &'p Policy,
    maintenance: Option<Maintenance>,
    maintenance_elapsed: Option<Duration>,
}

/// Maintenance of every partitioned table on `first`, then the delete rules, on `first`
/// and `jobs - 1` more sessions; each table's lines written as soon as it is done.
async fn run_tables<'p, W: Write>(
    ctx: &RunContext<'_>,
    first: &mut Worker<'_>,
    policies: &[&'p Policy],
    jobs: usize,
    reporter: &Mutex<Reporter<'_, W>>,
) -> Result<()> {
    let partitioned: Vec<&Policy> = policies
        .iter()
        .copied()
        .filter(|p| p.partitioning.is_some())
        .collect();
    let (due_tx, due_rx) = mpsc::unbounded_channel::<Due<'p>>();
    for &policy in policies {
        if policy.partitioning.is_none() && policy.prune_procedure().is_some() {
            let _ = due_tx.send(Due {
                policy,
                maintenance: None,
                maintenance_elapsed: None,
            });
        }
    }
    let queue = tokio::sync::Mutex::new(due_rx);
    // Spinners of tables pruned at once would overwrite each other: plain lines then.
    let bars = jobs == 1;
    let maintenance_then_deletes = async {
        let finished = |index: usize, maintenance: Maintenance, elapsed: Duration| {
            let policy = partitioned[index];
            if policy.prune_procedure().is_some() {
                let _ = due_tx.send(Due {
                    policy,
                    maintenance: Some(maintenance),
                    maintenance_elapsed: Some(elapsed),
                });
            } else {
                lock(reporter).write(&TableReport {
                    table: policy.table.to_string(),
                    maintenance: Some(maintenance),
                    deletes: Vec::new(),
                    elapsed,
                    maintenance_elapsed: Some(elapsed),
                    deletes_elapsed: None,
                });
            }
        };
        let maintained = first.maintain_all(&partitioned, finished).await;
        drop(due_tx);
        maintained?;
        delete_rules(first, &queue, reporter, bars).await;
        Ok::<(), anyhow::Error>(())
    };
    let helpers = (1..jobs).map(|_| async {
        match Worker::connect(ctx).await {
            Ok(mut worker) => delete_rules(&mut worker, &queue, reporter, bars).await,
            Err(e) => eprintln!(
                "warning: one of the --delete-jobs sessions could not connect ({e:#}); going on with fewer"
            ),
        }
    });
    let (result, _) = tokio::join!(
        maintenance_then_deletes,
        futures_util::future::join_all(helpers)
    );
    result
}

/// Takes due tables from `queue` until it is closed and empty, running each one's delete
/// rules. After an interruption nothing more runs: a table whose maintenance was done is
/// still reported, its rules as not run.
async fn delete_rules<W: Write>(
    worker: &mut Worker<'_>,
    queue: &tokio::sync::Mutex<mpsc::UnboundedReceiver<Due<'_>>>,
    reporter: &Mutex<Reporter<'_, W>>,
    bars: bool,
) {
    loop {
        let Some(due) = queue.lock().await.recv().await else {
            return;
        };
        if interrupt::interrupted() && due.maintenance.is_none() {
            continue;
        }
        let started = std::time::Instant::now();
        let deletes = worker.prune_table(due.policy, bars).await;
        let deletes_elapsed = started.elapsed();
        lock(reporter).write(&TableReport {
            table: due.policy.table.to_string(),
            maintenance: due.maintenance,
            deletes,
            elapsed: due.maintenance_elapsed.unwrap_or_default() + deletes_elapsed,
            maintenance_elapsed: due.maintenance_elapsed,
            deletes_elapsed: Some(deletes_elapsed),
        });
    }
}

/// The policies named by `--table` (all when none is named), in policy order.
pub fn select_policies<'p>(
    project: &'p Project,
    tables: &[String],
) -> Result<Vec<&'p Policy>, RunError> {
    if tables.is_empty() {
        return Ok(project.policies.iter().collect());
    }
    let unknown: Vec<String> = tables
        .iter()
        .filter(|t| project.policy(t).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let known: Vec<String> = project
            .policies
            .iter()
            .map(|p| p.table.to_string())
            .collect();
        return Err(RunError::NoPolicy { unknown, known });
    }
    Ok(project
        .policies
        .iter()
        .filter(|p| tables.contains(&p.table.to_string()))
        .collect())
}
