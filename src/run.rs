//! `retentionc run`: retention now, through the same SQL the schedule runs.
//!
//! For each managed table: `retention.maintain(table)` in its own transaction (pg_partman
//! maintenance of that one set; it reports what it created, dropped, detached or moved
//! from the catalog, and logs to `run_log`), then, when the policy has delete rules, the
//! prune procedure, `CALL`ed alone as a top-level statement so that it can commit between
//! batches. A blocked table (lock_timeout) is retried a few times with backoff, then
//! reported; the other tables still run. Ctrl-C or SIGTERM cancels the statement in
//! flight: batches already committed stay, the next run carries on from there.
//! `--dry-run` lives in `run/dry_run.rs`; nothing there writes.

mod dry_run;
pub mod partitions;
pub mod progress;
pub mod report;
pub mod session;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_postgres::error::SqlState;

use crate::cli::{DbArgs, LogFormat, RunArgs};
use crate::model::{Config, Policy, Project};
use crate::policy::{self, ident::quote_ident, ident::quote_literal};
use progress::{ProgressDisplay, PruneNotice, parse_notice};
pub use report::{Maintenance, Outcome, RuleReport, TableReport, write_report};
use session::Session;

/// `application_name` of run's session, which `run_log.run_by` records.
pub const APPLICATION_NAME: &str = "retentionc";

/// Attempts per step when the table is locked (lock_timeout) or pg_partman's maintenance
/// lock is held elsewhere; waits double from `FIRST_BACKOFF` in between.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

pub async fn run(config_path: &Path, args: &RunArgs) -> Result<ExitCode> {
    let project = policy::load_project(config_path)?;
    let policies = select_policies(&project, &args.tables)?;
    let mut stdout = std::io::stdout().lock();
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
        return dry_run::dry_run(&project.config, &policies, &args.db, &mut stdout).await;
    }
    let session = Session::open(&args.db, APPLICATION_NAME).await?;
    let mut runner = Runner {
        config: &project.config,
        db: &args.db,
        session,
        stop: session::interrupt_signal(),
    };
    runner.prepare_session().await?;

    let mut reports = Vec::new();
    for policy in policies {
        if runner.interrupted() {
            break;
        }
        let report = runner.run_table(policy).await;
        match args.log_format {
            LogFormat::Text => write_report(&report, &mut stdout)?,
            LogFormat::Json => report::write_json_events(&report, &mut stdout)?,
        }
        stdout.flush()?;
        reports.push(report);
    }
    let interrupted = runner.interrupted();
    let failed = reports
        .iter()
        .filter(|r| r.outcome() == Outcome::Failed)
        .count();
    let skipped = reports
        .iter()
        .filter(|r| r.outcome() == Outcome::Skipped)
        .count();
    let ok = reports.len() - failed - skipped;
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
            "warning: maintenance was skipped for {skipped} table(s): retention did not run for them"
        );
    }
    Ok(if failed + skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The policies named by `--table` (all when none is named), in policy order.
pub fn select_policies<'p>(project: &'p Project, tables: &[String]) -> Result<Vec<&'p Policy>> {
    if tables.is_empty() {
        return Ok(project.policies.iter().collect());
    }
    let unknown: Vec<&String> = tables
        .iter()
        .filter(|t| project.policy(t).is_none())
        .collect();
    if !unknown.is_empty() {
        let known: Vec<String> = project
            .policies
            .iter()
            .map(|p| p.table.to_string())
            .collect();
        bail!(
            "no policy for {}: the policies cover {}",
            unknown
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", "),
            if known.is_empty() {
                "no table".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(project
        .policies
        .iter()
        .filter(|p| tables.contains(&p.table.to_string()))
        .collect())
}

struct Runner<'a> {
    config: &'a Config,
    db: &'a DbArgs,
    session: Session,
    stop: watch::Receiver<bool>,
}

/// A statement's failure, or the run's interruption.
enum StepError {
    Db(tokio_postgres::Error),
    Interrupted,
}

impl StepError {
    fn is_lock_timeout(&self) -> bool {
        matches!(self, StepError::Db(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
    }

    fn describe(&self) -> String {
        match self {
            StepError::Interrupted => {
                "interrupted (Ctrl-C or SIGTERM); committed batches stay".into()
            }
            StepError::Db(e) => {
                let text = describe_db_error(e);
                let missing = [
                    SqlState::UNDEFINED_FUNCTION,
                    SqlState::UNDEFINED_TABLE,
                    SqlState::INVALID_SCHEMA_NAME,
                ];
                if e.code().is_some_and(|c| missing.contains(c)) {
                    format!("{text}; is the policy applied? (`retentionc apply`)")
                } else {
                    text
                }
            }
        }
    }
}

/// The server's message with its SQLSTATE (and detail/hint when given), else the client's.
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => format!("{e:#}"),
    }
}

impl Runner<'_> {
    fn interrupted(&self) -> bool {
        *self.stop.borrow()
    }

    fn lock_timeout(&self) -> String {
        format!("{}ms", self.config.lock_timeout_ms)
    }

    /// Session settings for the prune CALL: it cannot be preceded by a SET in the same
    /// query string (that makes one implicit transaction, in which COMMIT fails).
    async fn prepare_session(&self) -> Result<()> {
        self.session
            .client
            .batch_execute(&format!(
                "SET lock_timeout = {}; SET retentionc.progress = 'on'",
                quote_literal(&self.lock_timeout())
            ))
            .await?;
        Ok(())
    }

    /// A fresh session when the last one was lost (a failed table must not fail the rest).
    async fn reconnect_if_lost(&mut self) -> Result<()> {
        if self.session.client.is_closed() {
            eprintln!("database connection lost; connecting again");
            self.session = Session::open(self.db, APPLICATION_NAME).await?;
            self.prepare_session().await?;
        }
        Ok(())
    }

    async fn run_table(&mut self, policy: &Policy) -> TableReport {
        let started = Instant::now();
        let table = policy.table.to_string();
        let mut report = TableReport {
            table: table.clone(),
            maintenance: None,
            deletes: Vec::new(),
            elapsed: Duration::ZERO,
            maintenance_elapsed: None,
            deletes_elapsed: None,
        };
        if let Err(e) = self.reconnect_if_lost().await {
            let error = format!("{e:#}");
            if policy.partitioning.is_some() {
                report.maintenance = Some(Maintenance::Failed {
                    error: error.clone(),
                });
            }
            report.deletes = policy
                .deletes
                .iter()
                .map(|r| RuleReport {
                    rule: r.name.to_string(),
                    rows: 0,
                    error: Some(error.clone()),
                })
                .collect();
            report.elapsed = started.elapsed();
            return report;
        }
        if policy.partitioning.is_some() {
            let maintenance_started = Instant::now();
            let maintenance = self.maintain(&table).await;
            report.maintenance_elapsed = Some(maintenance_started.elapsed());
            // pg_partman's warnings (e.g. refusing to drop a set's last partition) belong
            // to this table; its notices are chatter.
            for notice in self.session.drain_notices() {
                if notice.severity() == "WARNING" {
                    eprintln!("{table}: database warning: {}", notice.message());
                }
            }
            if let Maintenance::Skipped { .. } = maintenance {
                eprintln!(
                    "warning: {table}: maintenance skipped: another pg_partman maintenance is running"
                );
            }
            report.maintenance = Some(maintenance);
        }
        if let Some(procedure) = policy.prune_procedure() {
            if self.interrupted() {
                report.deletes = policy
                    .deletes
                    .iter()
                    .map(|r| RuleReport {
                        rule: r.name.to_string(),
                        rows: 0,
                        error: Some(StepError::Interrupted.describe()),
                    })
                    .collect();
            } else {
                let deletes_started = Instant::now();
                report.deletes = self.prune(policy, procedure.as_str()).await;
                report.deletes_elapsed = Some(deletes_started.elapsed());
            }
        }
        report.elapsed = started.elapsed();
        report
    }

    /// Runs `fut` (a statement on this session), cancelling it on Ctrl-C or SIGTERM.
    async fn interruptible<T>(
        stop: &watch::Receiver<bool>,
        canceller: &session::Canceller,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StepError> {
        if *stop.borrow() {
            return Err(StepError::Interrupted);
        }
        let mut stop = stop.clone();
        let mut watching = true;
        tokio::pin!(fut);
        loop {
            tokio::select! {
                result = &mut fut => {
                    return match result {
                        Ok(v) => Ok(v),
                        Err(_) if *stop.borrow() => Err(StepError::Interrupted),
                        Err(e) => Err(StepError::Db(e)),
                    };
                }
                changed = stop.changed(), if watching => {
                    match changed {
                        Ok(()) if *stop.borrow() => {
                            watching = false;
                            canceller.cancel().await;
                        }
                        Ok(()) => {}
                        Err(_) => watching = false,
                    }
                }
            }
        }
    }

    /// After a failed attempt at a step: while it was a lock timeout and attempts remain,
    /// waits and returns None (try again); otherwise the error to report.
    async fn retry_or_give_up(
        &self,
        table: &str,
        step: &str,
        attempt: &mut u32,
        error: &StepError,
    ) -> Option<String> {
        if error.is_lock_timeout() && *attempt < ATTEMPTS {
            eprintln!(
                "{table}: {step} blocked (lock_timeout {}); trying again ({attempt}/{ATTEMPTS})",
                self.lock_timeout()
            );
            self.backoff(*attempt).await;
            *attempt += 1;
            return None;
        }
        let text = error.describe();
        Some(if error.is_lock_timeout() {
            format!("{table} stayed locked after {attempt} attempts: {text}")
        } else {
            text
        })
    }

    async fn backoff(&self, attempt: u32) {
        tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1)).await;
    }

    /// `retention.maintain(table)` in its own transaction, retried while blocked.
    async fn maintain(&mut self, table: &str) -> Maintenance {
        let started_at = Utc::now();
        let mut attempt = 1;
        loop {
            match self.maintain_once(table).await {
                Ok(result) if result["outcome"] == "skipped" => {
                    if attempt < ATTEMPTS {
                        eprintln!(
                            "{table}: another pg_partman maintenance is running; trying again ({attempt}/{ATTEMPTS})"
                        );
                        self.backoff(attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Maintenance::Skipped { attempts: attempt };
                }
                Ok(result) => {
                    let names = |key: &str| -> Vec<String> {
                        result[key]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    return Maintenance::Done {
                        created: names("created"),
                        dropped: names("dropped"),
                        detached: names("detached"),
                        moved: names("moved"),
                    };
                }
                Err(e) => {
                    if let Some(error) = self
                        .retry_or_give_up(table, "maintenance", &mut attempt, &e)
                        .await
                    {
                        self.log_failure(started_at, table, "maintenance", 0, &error, attempt)
                            .await;
                        return Maintenance::Failed { error };
                    }
                }
            }
        }
    }

    async fn maintain_once(&self, table: &str) -> Result<serde_json::Value, StepError> {
        let client = &self.session.client;
        let canceller = &self.session.canceller;
        let begin = format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            quote_literal(&self.lock_timeout())
        );
        let call = crate::render::maintain_call(self.config);
        let work = async {
            client.batch_execute(&begin).await?;
            let row = client.query_one(&call, &[&table]).await?;
            client.batch_execute("COMMIT").await?;
            Ok(row.get::<_, serde_json::Value>(0))
        };
        let result = Self::interruptible(&self.stop, canceller, work).await;
        if result.is_err() && !client.is_closed() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        result
    }

    /// The prune procedure, CALLed alone; progress comes back as notices.
    async fn prune(&mut self, policy: &Policy, procedure: &str) -> Vec<RuleReport> {
        let table = policy.table.to_string();
        let started_at = Utc::now();
        let db_started: Option<DateTime<Utc>> = self
            .session
            .client
            .query_one("SELECT clock_timestamp()", &[])
            .await
            .ok()
            .map(|r| r.get(0));
        let call = crate::render::prune_call(self.config, procedure);
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        let mut attempt = 1;
        let failure = loop {
            let (result, counts) = self.prune_once(&table, &call).await;
            for (rule, rows) in counts {
                *totals.entry(rule).or_default() += rows;
            }
            match result {
                Ok(()) => break None,
                Err(e) => {
                    if let Some(error) = self
                        .retry_or_give_up(&table, "delete", &mut attempt, &e)
                        .await
                    {
                        break Some(error);
                    }
                }
            }
        };
        let Some(error) = failure else {
            return policy
                .deletes
                .iter()
                .map(|r| RuleReport {
                    rule: r.name.to_string(),
                    rows: totals.get(r.name.as_str()).copied().unwrap_or(0),
                    error: None,
                })
                .collect();
        };
        // The procedure logs each rule it finished; the first rule without such a row since
        // this run began is the one that failed, and later rules never ran.
        let finished = self.finished_rules(&table, db_started).await;
        let mut reports = Vec::new();
        let mut failed_logged = false;
        for rule in &policy.deletes {
            let name = rule.name.to_string();
            let rows = totals.get(&name).copied().unwrap_or(0);
            if finished.contains(&name) {
                reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: None,
                });
            } else if !failed_logged {
                failed_logged = true;
                self.log_failure(
                    started_at,
                    &table,
                    &format!("delete:{name}"),
                    rows,
                    &error,
                    attempt,
                )
                .await;
                reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: Some(error.clone()),
                });
            } else {
                reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: Some("not run: an earlier rule failed".into()),
                });
            }
        }
        reports
    }

    /// One CALL; returns its result and the rows each rule committed during it.
    async fn prune_once(
        &mut self,
        table: &str,
        call: &str,
    ) -> (Result<(), StepError>, BTreeMap<String, i64>) {
        let mut display = ProgressDisplay::new(table);
        let mut summary: Option<BTreeMap<String, i64>> = None;
        let Session {
            client,
            notices,
            canceller,
        } = &mut self.session;
        let stop = &self.stop;
        let mut handle = |notice: tokio_postgres::error::DbError, display: &mut ProgressDisplay| {
            match parse_notice(notice.message()) {
                Some(PruneNotice::Progress { rule, deleted }) => display.update(&rule, deleted),
                Some(PruneNotice::Summary(s)) => summary = Some(s),
                None if notice.severity() == "WARNING" => {
                    eprintln!("{table}: database warning: {}", notice.message())
                }
                None => {}
            }
        };
        let result = {
            let statement = Self::interruptible(stop, canceller, client.batch_execute(call));
            tokio::pin!(statement);
            loop {
                tokio::select! {
                    result = &mut statement => break result,
                    Some(notice) = notices.recv() => handle(notice, &mut display),
                }
            }
        };
        // Notices are read from the connection before the statement's completion.
        while let Ok(notice) = notices.try_recv() {
            handle(notice, &mut display);
        }
        display.finish_rule();
        let counts = summary.unwrap_or_else(|| display.deleted.clone());
        (result, counts)
    }

    /// Rules whose 'ok' row the procedure wrote since `since`.
    async fn finished_rules(&mut self, table: &str, since: Option<DateTime<Utc>>) -> Vec<String> {
        if self.reconnect_if_lost().await.is_err() {
            return Vec::new();
        }
        let Some(since) = since else {
            return Vec::new();
        };
        let sql = format!(
            "SELECT substr(step, 8) FROM {}.\"run_log\" WHERE table_name = $1 AND step LIKE 'delete:%' AND outcome = 'ok' AND started_at >= $2",
            quote_ident(self.config.schema.as_str())
        );
        match self.session.client.query(&sql, &[&table, &since]).await {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Records a failed step in run_log (best effort: the failure is reported either way).
    async fn log_failure(
        &mut self,
        started_at: DateTime<Utc>,
        table: &str,
        step: &str,
        rows: i64,
        error: &str,
        attempts: u32,
    ) {
        if self.reconnect_if_lost().await.is_err() {
            eprintln!("warning: {table}: could not record the failure in run_log (no connection)");
            return;
        }
        let sql = format!(
            "INSERT INTO {}.\"run_log\" (started_at, table_name, step, outcome, rows_deleted, detail) \
             VALUES ($1, $2, $3, 'failed', $4, jsonb_build_object('error', $5::text, 'attempts', $6::int))",
            quote_ident(self.config.schema.as_str())
        );
        let attempts = attempts as i32;
        if let Err(e) = self
            .session
            .client
            .execute(
                &sql,
                &[&started_at, &table, &step, &rows, &error, &attempts],
            )
            .await
        {
            eprintln!(
                "warning: {table}: could not record the failure in run_log: {}",
                describe_db_error(&e)
            );
        }
    }
}
