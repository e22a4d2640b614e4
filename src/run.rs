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

pub mod dry_run;
pub mod progress;
pub mod report;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;

use crate::apply::locks::{Blocker, LockWatch};
use crate::cli::{DbArgs, LogFormat, RunArgs};
use crate::db::interrupt::{self, EXIT_INTERRUPTED, Stop, Stopped};
use crate::db::lock_failure::{LockFailure, lock_failure};
use crate::db::privileges::{self, Step};
use crate::db::{self, Session};
use crate::model::{Config, Policy, Project};
use crate::policy::{self, ident::quote_ident, ident::quote_literal};
use progress::{ProgressDisplay, PruneNotice, parse_notice};
pub use report::{Maintenance, Outcome, RuleReport, TableReport, write_report};

/// `application_name` of run's session, which `run_log.run_by` records.
pub const APPLICATION_NAME: &str = "retentionc";

/// Attempts per step when the table is locked (lock_timeout) or pg_partman's maintenance
/// lock is held elsewhere; waits double from `FIRST_BACKOFF` in between.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// `retentionc run`.
pub async fn command(config_path: &Path, args: &RunArgs) -> Result<ExitCode> {
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
        let rows = if args.exact {
            dry_run::Rows::Counted
        } else {
            dry_run::Rows::Estimated
        };
        return dry_run::dry_run(&project.config, &policies, &args.db, rows, &mut stdout).await;
    }
    let RunTotals {
        ok,
        skipped,
        failed,
        interrupted,
    } = run_database(&project, &policies, &args.db, args.log_format, &mut stdout).await?;
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

/// Runs `policies` on one database, writing each table's report to `out` as it ends.
pub async fn run_database(
    project: &Project,
    policies: &[&Policy],
    db: &DbArgs,
    log_format: LogFormat,
    out: &mut impl Write,
) -> Result<RunTotals> {
    let session = db::connect(db, APPLICATION_NAME).await?;
    // A signal stops the statement in flight; the report and run_log still say what happened.
    let _graceful = interrupt::graceful();
    let lock_timeout = Duration::from_millis(project.config.lock_timeout_ms);
    let mut runner = Runner {
        config: &project.config,
        db,
        session,
        run_id: format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id()
        ),
        lock_watch: LockWatch::new(Some(db.clone()), lock_timeout),
    };
    runner.prepare_session().await?;

    let mut totals = RunTotals::default();
    for policy in policies {
        if runner.interrupted() {
            break;
        }
        let report = runner.run_table(policy).await;
        match log_format {
            LogFormat::Text => write_report(&report, out)?,
            LogFormat::Json => report::write_json_events(&report, out)?,
        }
        out.flush()?;
        match report.outcome() {
            Outcome::Failed => totals.failed += 1,
            Outcome::Skipped => totals.skipped += 1,
            _ => totals.ok += 1,
        }
    }
    totals.interrupted = runner.interrupted();
    Ok(totals)
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
    /// Tags this run's run_log rows (`detail->>'run_id'`), so that what the server
    /// committed can be read back after a lost connection.
    run_id: String,
    /// Finds who holds a lock a statement of this run waits for.
    lock_watch: LockWatch,
}

/// A statement's failure, or the run's interruption.
enum StepError {
    Db(tokio_postgres::Error, Option<Blocker>),
    /// Refused before it ran, with the reason (e.g. the role may not act as the owner).
    Refused(String),
    /// The connection ended (lost or stalled), with the reason.
    Lost(String),
    Interrupted,
}

impl StepError {
    fn lock_failure(&self) -> Option<LockFailure> {
        match self {
            StepError::Db(e, _) => lock_failure(e),
            _ => None,
        }
    }

    /// One line: the server's message (its first line), what was locked and by whom for
    /// a lock failure, the GRANT needed for a missing privilege.
    fn describe(&self, table: &str, role: &str) -> String {
        match self {
            StepError::Interrupted => {
                "interrupted (Ctrl-C or SIGTERM); committed batches stay".into()
            }
            StepError::Refused(reason) | StepError::Lost(reason) => reason.clone(),
            StepError::Db(e, blocker) => {
                if let Some(failure) = lock_failure(e) {
                    let what = match failure {
                        LockFailure::Timeout => "lock timeout",
                        LockFailure::Deadlock => "deadlock",
                    };
                    return match blocker {
                        Some(b) => format!(
                            "{what}: {} on {} held by {}",
                            b.wanted_lock(),
                            b.relation.as_deref().unwrap_or(table),
                            b.describe_session()
                        ),
                        None => format!(
                            "{what} on {table} (the session holding it had gone when looked up)"
                        ),
                    };
                }
                let text = describe_db_error(e);
                // pg_partman re-raises a missing privilege as P0001 with the same message.
                let denied = e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
                    || e.as_db_error()
                        .is_some_and(|db| db.message().starts_with("permission denied for "));
                if denied {
                    let grant = e
                        .as_db_error()
                        .and_then(|db| privileges::grant_for(db.message(), role));
                    return match grant {
                        Some(grant) => format!(
                            "{text}; retention of {table} runs as its owner {role}, which needs: {grant} (see docs/privileges.md)"
                        ),
                        None => format!("{text}; {}", privileges::SEE_DOCS),
                    };
                }
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

/// The server's message (its first line: pg_partman re-raises errors with their context
/// folded into the message) with its SQLSTATE and detail/hint, else the client's.
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let message = db.message().lines().next().unwrap_or_default();
            let mut text = format!("{message} (SQLSTATE {})", db.code().code());
            if let Some(detail) = db.detail().filter(|d| !d.trim().is_empty()) {
                text.push_str(&format!("; {}", one_line(detail)));
            }
            if let Some(hint) = db.hint().filter(|h| !h.trim().is_empty()) {
                text.push_str(&format!("; hint: {}", one_line(hint)));
            }
            text
        }
        None => format!("{e:#}"),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One delete rule as this run's run_log rows record it (several when retried).
#[derive(Debug, Default)]
struct LoggedRule {
    rows: i64,
    /// The outcome of its last row: `running` (the connection or the call ended
    /// mid-rule), `ok`, `partial` or `failed`.
    outcome: String,
    skipped: Vec<String>,
}

impl Runner<'_> {
    fn interrupted(&self) -> bool {
        interrupt::interrupted()
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
                "SET lock_timeout = {}; SET retentionc.progress = 'on'; SET retentionc.run_id = {}",
                quote_literal(&self.lock_timeout()),
                quote_literal(&self.run_id)
            ))
            .await?;
        Ok(())
    }

    /// A fresh session when the last one was lost (a failed table must not fail the rest).
    /// Not after a stall (the network is what failed: trying again would only wait as long
    /// again) nor after an interruption, when the run must end quickly.
    async fn reconnect_if_lost(&mut self) -> Result<()> {
        if self.session.client.is_closed() {
            let lost = self.session.lost().unwrap_or_default();
            if self.session.control.stalled() || self.interrupted() {
                bail!("{lost}");
            }
            eprintln!("{lost}; connecting again");
            self.session = db::connect(self.db, APPLICATION_NAME).await?;
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
        let owner = match self.reconnect_if_lost().await {
            Ok(()) => self.owner_of(policy).await,
            Err(e) => Err(format!("{e:#}")),
        };
        let owner = match owner {
            Ok(owner) => owner,
            Err(error) => {
                report.fail_every_step(policy, &error, &error);
                report.elapsed = started.elapsed();
                return report;
            }
        };
        // This role may not act as the owner: nothing of the table runs.
        if let Ok(Some(refusal)) =
            privileges::refusal_to_act_as(&self.session.client, &owner, &table).await
        {
            report.fail_every_step(policy, &refusal, &refusal);
            report.elapsed = started.elapsed();
            return report;
        }
        // A privilege the owner lacks fails the table before anything of it runs; the
        // failure is logged unless what is missing is the right to write the log.
        if let Some((maintenance, deletes, loggable)) = self.missing_rights(policy, &owner).await {
            report.fail_every_step(policy, &maintenance, &deletes);
            let started_at = Utc::now();
            if !loggable {
                report.elapsed = started.elapsed();
                return report;
            }
            if policy.partitioning.is_some() {
                self.log_failure(started_at, &table, "maintenance", 0, &maintenance, 1)
                    .await;
            }
            for rule in &policy.deletes {
                let step = format!("delete:{}", rule.name);
                self.log_failure(started_at, &table, &step, 0, &deletes, 1)
                    .await;
            }
            report.elapsed = started.elapsed();
            return report;
        }
        if policy.partitioning.is_some() {
            let maintenance_started = Instant::now();
            let maintenance = self.maintain(policy, &owner).await;
            report.maintenance_elapsed = Some(maintenance_started.elapsed());
            // pg_partman's warnings (e.g. refusing to drop a set's last partition) belong
            // to this table.
            for notice in self.session.drain_notices() {
                if let Some(line) = db::notices::line(&table, &notice) {
                    eprintln!("{line}");
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
                        error: Some(StepError::Interrupted.describe(&table, &owner)),
                        skipped: Vec::new(),
                    })
                    .collect();
            } else {
                let deletes_started = Instant::now();
                report.deletes = self.prune(policy, procedure.as_str(), &owner).await;
                report.deletes_elapsed = Some(deletes_started.elapsed());
            }
        }
        report.elapsed = started.elapsed();
        report
    }

    /// The owner of the policy's table, whose rights its retention runs with. Read by
    /// name from the catalog, so that the session's role needs no rights on the schema.
    async fn owner_of(&self, policy: &Policy) -> Result<String, String> {
        let table = policy.table.to_string();
        let row = self
            .session
            .client
            .query_opt(
                "SELECT pg_catalog.pg_get_userbyid(c.relowner)::text FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname::text = $1 AND c.relname::text = $2",
                &[&policy.table.schema.as_str(), &policy.table.name.as_str()],
            )
            .await
            .map_err(|e| StepError::Db(e, None).describe(&table, "its owner"))?;
        row.map(|r| r.get(0)).ok_or_else(|| {
            format!("table {table} does not exist; is the policy applied? (`retentionc apply`)")
        })
    }

    /// When the owner lacks a privilege its retention needs (`privileges::owner_grants`):
    /// the error of the maintenance step and of the delete rules, each naming what that
    /// step lacks, and whether run_log can record them. None when nothing is missing, or
    /// when the check itself cannot run (the steps then report what fails).
    async fn missing_rights(&self, policy: &Policy, owner: &str) -> Option<(String, String, bool)> {
        let missing = privileges::missing_owner_grants(&self.session.client, self.config, policy)
            .await
            .ok()?;
        if missing.is_empty() {
            return None;
        }
        let table = &policy.table;
        let needs = |step: Step| -> Option<String> {
            let lacking: Vec<String> = missing
                .iter()
                .filter(|m| m.step.covers(step))
                .map(|m| m.to_string())
                .collect();
            (!lacking.is_empty()).then(|| {
                format!(
                    "not run: retention of {table} runs as its owner {owner}, which needs: {} ({})",
                    lacking.join("; "),
                    privileges::SEE_DOCS
                )
            })
        };
        let maintenance = needs(Step::Maintenance);
        let deletes = needs(Step::Deletes);
        Some((
            maintenance.clone().unwrap_or_else(|| {
                "not run: its owner lacks what the delete rules need (below)".into()
            }),
            deletes.unwrap_or_else(|| {
                "not run: its owner lacks what maintenance needs (above)".into()
            }),
            // What every step needs is run_log and its schema.
            !missing.iter().any(|m| m.step == Step::Every),
        ))
    }

    /// `SET [LOCAL] ROLE <owner>`, refused with the GRANT it needs when this session's
    /// role may not act as the owner.
    async fn set_role(&self, table: &str, owner: &str, local: bool) -> Result<(), StepError> {
        let client = &self.session.client;
        let sql = format!(
            "SET {}ROLE {}",
            if local { "LOCAL " } else { "" },
            quote_ident(owner)
        );
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                let user = client
                    .query_one("SELECT session_user::text", &[])
                    .await
                    .map(|r| r.get::<_, String>(0))
                    .unwrap_or_else(|_| "this role".into());
                Err(StepError::Refused(format!(
                    "{user} may not act as {owner}, the owner of {table}: retention runs with the owner's rights; GRANT {} TO {} (see docs/privileges.md)",
                    quote_ident(owner),
                    quote_ident(&user)
                )))
            }
            Err(e) => Err(StepError::Db(e, None)),
        }
    }

    /// Runs `fut` (a statement on this session), cancelling it on Ctrl-C or SIGTERM.
    async fn interruptible<T>(
        control: &db::Control,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StepError> {
        if interrupt::interrupted() {
            return Err(StepError::Interrupted);
        }
        match interrupt::until_interrupted(control, Stop::CancelAndWait, fut).await {
            Stopped::Finished(Ok(v)) | Stopped::Interrupted(Some(Ok(v))) => Ok(v),
            Stopped::Finished(Err(e)) => Err(match control.lost() {
                Some(lost) => StepError::Lost(lost),
                None => StepError::Db(e, None),
            }),
            Stopped::Interrupted(_) => Err(StepError::Interrupted),
        }
    }

    /// After a failed attempt at a step: while it was a lock failure and attempts remain,
    /// waits and returns None (try again); otherwise the one-line error to report.
    async fn retry_or_give_up(
        &self,
        table: &str,
        owner: &str,
        step: &str,
        attempt: &mut u32,
        error: &StepError,
    ) -> Option<String> {
        let text = error.describe(table, owner);
        if error.lock_failure().is_some() && *attempt < ATTEMPTS {
            eprintln!("{table}: {step} blocked: {text}; trying again ({attempt}/{ATTEMPTS})");
            self.backoff(*attempt).await;
            *attempt += 1;
            return None;
        }
        Some(if error.lock_failure().is_some() {
            format!("stayed locked after {attempt} attempts: {text}")
        } else {
            text
        })
    }

    async fn backoff(&self, attempt: u32) {
        tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1)).await;
    }

    /// `retention.maintain(table)` in its own transaction as the table's owner, retried
    /// while blocked.
    async fn maintain(&mut self, policy: &Policy, owner: &str) -> Maintenance {
        let table = policy.table.to_string();
        let started_at = Utc::now();
        let mut attempt = 1;
        loop {
            match self.maintain_once(policy, owner).await {
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
                        .retry_or_give_up(&table, owner, "maintenance", &mut attempt, &e)
                        .await
                    {
                        self.log_failure(started_at, &table, "maintenance", 0, &error, attempt)
                            .await;
                        return Maintenance::Failed { error };
                    }
                }
            }
        }
    }

    async fn maintain_once(
        &self,
        policy: &Policy,
        owner: &str,
    ) -> Result<serde_json::Value, StepError> {
        let table = policy.table.to_string();
        let time_zone = policy.time_zone_or_utc();
        let client = &self.session.client;
        let control = &self.session.control;
        let begin = format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            quote_literal(&self.lock_timeout())
        );
        let call = crate::render::maintain_call(self.config);
        let pid = self.backend_pid().await;
        let result = async {
            Self::interruptible(control, client.batch_execute(&begin)).await?;
            self.set_role(&table, owner, true).await?;
            let (row, blocker) = self
                .lock_watch
                .watch(
                    pid,
                    Self::interruptible(control, client.query_one(&call, &[&table, &time_zone])),
                )
                .await;
            let row = row.map_err(|e| match e {
                StepError::Db(e, _) => StepError::Db(e, blocker),
                other => other,
            })?;
            Self::interruptible(control, client.batch_execute("COMMIT")).await?;
            Ok(row.get::<_, serde_json::Value>(0))
        }
        .await;
        if result.is_err() && !client.is_closed() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        result
    }

    /// This session's backend pid (0 when it cannot be read: then no blocker is found).
    async fn backend_pid(&self) -> i32 {
        self.session
            .client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0)
    }

    /// The prune procedure, CALLed alone as the table's owner; progress comes back as
    /// notices, and what was committed is read back from run_log.
    async fn prune(&mut self, policy: &Policy, procedure: &str, owner: &str) -> Vec<RuleReport> {
        let table = policy.table.to_string();
        let started_at = Utc::now();
        let call = crate::render::prune_call(self.config, procedure);
        let mut attempt = 1;
        let failure = loop {
            let result = match self.set_role(&table, owner, false).await {
                Ok(()) => {
                    let result = self.prune_once(&table, &call).await;
                    if !self.session.client.is_closed() {
                        let _ = self.session.client.batch_execute("RESET ROLE").await;
                    }
                    result
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => break None,
                Err(e) => {
                    if let Some(error) = self
                        .retry_or_give_up(&table, owner, "delete", &mut attempt, &e)
                        .await
                    {
                        break Some(error);
                    }
                }
            }
        };
        // run_log holds what the server committed, whatever the call's result said.
        let logged = self.logged_rules(&table).await;
        let Some(logged) = logged else {
            eprintln!(
                "warning: {table}: could not read run_log back; the counts shown are those the procedure reported"
            );
            return policy
                .deletes
                .iter()
                .map(|r| RuleReport {
                    rule: r.name.to_string(),
                    rows: 0,
                    error: Some(failure.clone().unwrap_or_else(|| {
                        "finished, but run_log could not be read to count the rows".into()
                    })),
                    skipped: Vec::new(),
                })
                .collect();
        };
        let mut reports = Vec::new();
        let mut failed_logged = false;
        for rule in &policy.deletes {
            let name = rule.name.to_string();
            let entry = logged.get(&name);
            let rows = entry.map_or(0, |l| l.rows);
            let skipped = entry.map(|l| l.skipped.clone()).unwrap_or_default();
            match entry.map(|l| l.outcome.as_str()) {
                Some("ok") | Some("partial") => reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: None,
                    skipped,
                }),
                outcome if !failed_logged => {
                    failed_logged = true;
                    let error = failure.clone().unwrap_or_else(|| {
                        "the procedure ended without finishing this rule".into()
                    });
                    if outcome.is_some() {
                        self.mark_failed(&table, &name, &error, attempt).await;
                    } else {
                        self.log_failure(
                            started_at,
                            &table,
                            &format!("delete:{name}"),
                            0,
                            &error,
                            attempt,
                        )
                        .await;
                    }
                    reports.push(RuleReport {
                        rule: name,
                        rows,
                        error: Some(error),
                        skipped,
                    });
                }
                _ => reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: Some("not run: an earlier rule failed".into()),
                    skipped,
                }),
            }
        }
        reports
    }

    /// One CALL, showing its progress notices.
    async fn prune_once(&mut self, table: &str, call: &str) -> Result<(), StepError> {
        let mut display = ProgressDisplay::new(table);
        let Session {
            client,
            notices,
            control,
        } = &mut self.session;
        let handle = |notice: tokio_postgres::error::DbError, display: &mut ProgressDisplay| {
            match parse_notice(notice.message()) {
                Some(PruneNotice::Progress { rule, deleted }) => display.update(&rule, deleted),
                Some(PruneNotice::Summary(_)) => {}
                None => {
                    if let Some(line) = db::notices::line(table, &notice) {
                        eprintln!("{line}");
                    }
                }
            }
        };
        let result = {
            let statement = Self::interruptible(control, client.batch_execute(call));
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
        result
    }

    /// This run's delete rules of `table` as run_log records them: rows committed (summed
    /// over retried calls), the last outcome, the partitions skipped. None when run_log
    /// cannot be read.
    async fn logged_rules(&mut self, table: &str) -> Option<BTreeMap<String, LoggedRule>> {
        self.reconnect_if_lost().await.ok()?;
        let sql = format!(
            "SELECT substr(step, 8), rows_deleted, outcome, coalesce(detail->'skipped', '[]') \
               FROM {}.\"run_log\" \
              WHERE table_name = $1 AND step LIKE 'delete:%' AND detail->>'run_id' = $2 \
              ORDER BY id",
            quote_ident(self.config.schema.as_str())
        );
        let rows = self
            .session
            .client
            .query(&sql, &[&table, &self.run_id])
            .await
            .ok()?;
        let mut rules: BTreeMap<String, LoggedRule> = BTreeMap::new();
        for row in rows {
            let rule = rules.entry(row.get(0)).or_default();
            rule.rows += row.get::<_, i64>(1);
            rule.outcome = row.get(2);
            let skipped: serde_json::Value = row.get(3);
            rule.skipped.extend(
                skipped
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(describe_skipped),
            );
        }
        Some(rules)
    }

    /// Marks this run's unfinished row of a rule as failed, with the error.
    async fn mark_failed(&mut self, table: &str, rule: &str, error: &str, attempts: u32) {
        if self.reconnect_if_lost().await.is_err() {
            eprintln!("warning: {table}: could not record the failure in run_log (no connection)");
            return;
        }
        let sql = format!(
            "UPDATE {}.\"run_log\" SET outcome = 'failed', \
                    detail = detail || jsonb_build_object('error', $4::text, 'attempts', $5::int) \
              WHERE table_name = $1 AND step = 'delete:' || $2 AND detail->>'run_id' = $3 AND outcome = 'running'",
            quote_ident(self.config.schema.as_str())
        );
        let attempts = attempts as i32;
        if let Err(e) = self
            .session
            .client
            .execute(&sql, &[&table, &rule, &self.run_id, &error, &attempts])
            .await
        {
            eprintln!(
                "warning: {table}: could not record the failure in run_log: {}",
                describe_db_error(&e)
            );
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
             VALUES ($1, $2, $3, 'failed', $4, jsonb_build_object('error', $5::text, 'attempts', $6::int, 'run_id', $7::text))",
            quote_ident(self.config.schema.as_str())
        );
        let attempts = attempts as i32;
        if let Err(e) = self
            .session
            .client
            .execute(
                &sql,
                &[
                    &started_at,
                    &table,
                    &step,
                    &rows,
                    &error,
                    &attempts,
                    &self.run_id,
                ],
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

/// `public.t_p1 (locked by pid 42, user app, application "psql", state "idle in transaction")`
/// from a run_log `skipped` entry.
fn describe_skipped(entry: &serde_json::Value) -> String {
    let partition = entry["partition"].as_str().unwrap_or("?");
    let holders: Vec<String> = entry["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let mut parts = vec![format!("pid {}", h["pid"])];
            if let Some(user) = h["user"].as_str() {
                parts.push(format!("user {user}"));
            }
            if let Some(app) = h["application"].as_str() {
                parts.push(format!("application \"{}\"", app.escape_debug()));
            }
            if let Some(state) = h["state"].as_str() {
                parts.push(format!("state \"{state}\""));
            }
            if let Some(mode) = h["mode"].as_str() {
                parts.push(mode.to_string());
            }
            parts.join(", ")
        })
        .collect();
    if holders.is_empty() {
        format!("{partition} (locked; the holder had gone when looked up)")
    } else {
        format!("{partition} (locked by {})", holders.join("; "))
    }
}
