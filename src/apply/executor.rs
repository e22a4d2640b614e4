//! The executor: applies a plan in one transaction per attempt, under retentionc's
//! advisory lock, retrying lock conflicts with backoff (see the module doc of `apply`);
//! a plan that cannot fit the server's lock table in one transaction (`plan::split`) is
//! applied in consecutive transactions, under a session-level advisory lock.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Client;
use tokio_postgres::error::{DbError, SqlState};

use super::checks::{
    note_conversions, refuse_data_loss, reviewed_plan_mismatch, reviewed_statements,
};
use super::error::{AdvisoryHolder, ApplyError, LockConflict, PlannedStatementName, RolledBack};
use super::history;
use super::locks::{self, Blocker, LockWatch};
use super::write_plan;
use crate::model::Project;
use crate::plan::split::TransactionPart;
use crate::plan::{Change, Plan};

/// Key of retentionc's advisory lock ("retentio" in ASCII): one apply at a time per database.
pub const ADVISORY_LOCK_KEY: i64 = 0x7265_7465_6e74_696f;

/// How long an apply waits for another one to finish, unless `RETENTIONC_APPLY_WAIT` says
/// otherwise. Waiting for the advisory lock holds up no writer, so it can be long.
pub const DEFAULT_APPLY_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub allow_data_loss: bool,
    /// Attempts before giving up on a lock held by someone else.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each later one (at most 10 s).
    pub first_backoff: Duration,
    /// Longest wait for another apply (the advisory lock).
    pub apply_wait: Duration,
    /// Conversions of plain tables may be in the plan (`apply --convert`); they run
    /// outside this transaction, after it (`crate::convert`).
    pub convert: bool,
    /// Where the executor notes each transaction of a split apply it commits, so that a
    /// caller that stops it (Ctrl-C) can say what stays.
    pub progress: Progress,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            allow_data_loss: false,
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            apply_wait: DEFAULT_APPLY_WAIT,
            convert: false,
            progress: Progress::default(),
        }
    }
}

/// Transactions of a split apply committed so far, and how many it has (shared).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Option<(usize, usize)>>>);

impl Progress {
    fn set(&self, committed: usize, of: usize) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((committed, of));
    }

    /// `(committed, of)` once a split apply has committed its first transaction.
    pub fn committed(&self) -> Option<(usize, usize)> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the changes come from. Either way the changes applied are the plan made under
/// the lock, and their statements are the reviewed files' statements.
#[derive(Debug, Clone)]
pub enum PlanSource {
    /// Plan inside the locked transaction (`apply --auto-approve`).
    Live,
    /// A plan someone reviewed: a saved file, or the plan just shown for confirmation.
    /// Applied only while the plan made under the lock is the same plan, statement for
    /// statement, made against the same live state.
    Reviewed { plan: Plan, origin: ReviewedOrigin },
}

#[derive(Debug, Clone)]
pub enum ReviewedOrigin {
    SavedFile(PathBuf),
    Confirmed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    NoChanges,
    Applied {
        changes: usize,
        statements: usize,
        /// The history row of the last transaction.
        history_id: i64,
        /// Transactions it took (more than one when the changes were split to fit the
        /// server's lock table).
        transactions: usize,
    },
}

/// Why one attempt ended without committing.
enum Failure {
    /// A lock (or a deadlock) that a later attempt may get: retried.
    Busy(Box<LockConflict>),
    /// Anything else: reported at once.
    Fatal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    /// A lock timeout or deadlock anywhere (reading the live state, the history insert)
    /// is retried like one in a planned statement; anything else is fatal.
    fn from(e: E) -> Self {
        let error: anyhow::Error = e.into();
        let busy = error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<tokio_postgres::Error>())
            .find_map(|db_error| lock_failure(db_error).map(|deadlock| (deadlock, db_error)));
        match busy {
            Some((deadlock, db_error)) => {
                let context = db_error
                    .as_db_error()
                    .map(|d| format!("{} {}", d.message(), d.where_().unwrap_or("")))
                    .unwrap_or_default();
                Failure::Busy(Box::new(LockConflict {
                    statement: format!(
                        "apply ({})",
                        error
                            .chain()
                            .next()
                            .map(|c| c.to_string())
                            .unwrap_or_default()
                    ),
                    relation: locks::relation_in_error_text(&context),
                    blocker: None,
                    deadlock,
                }))
            }
            None => Failure::Fatal(error),
        }
    }
}

/// The executor: applies `source` in one transaction per attempt, retrying lock conflicts.
/// `client` must be idle (no open transaction).
pub async fn execute(
    client: &Client,
    project: &Project,
    source: PlanSource,
    options: &ApplyOptions,
    watch: &LockWatch,
    out: &mut dyn Write,
) -> Result<ApplyOutcome> {
    execute_reporting(client, None, project, source, options, watch, out).await
}

/// `execute`, showing on stderr the server's warnings (and the notices that matter, see
/// `db::notices`) that each statement raises, one line each, naming its table.
pub async fn execute_reporting(
    client: &Client,
    notices: Option<&mut UnboundedReceiver<DbError>>,
    project: &Project,
    source: PlanSource,
    options: &ApplyOptions,
    watch: &LockWatch,
    out: &mut dyn Write,
) -> Result<ApplyOutcome> {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let mut attempt_state = Attempt {
        client,
        pid,
        project,
        source: &source,
        options,
        watch,
        shown_plan: None,
        notices,
    };
    let mut attempt = 1;
    loop {
        client
            .batch_execute("BEGIN")
            .await
            .context("starting the apply transaction")?;
        let result = attempt_state.run(out).await;
        if result.is_err() {
            // The transaction may be aborted or still open; either way nothing of it stays.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        match result {
            Ok(First::Done(outcome)) => return Ok(outcome),
            Ok(First::Split(rest)) => {
                let result = attempt_state.continue_split(*rest, out).await;
                // The session-level lock kept other applies out between the transactions.
                let _ = client
                    .query_one("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
                    .await;
                return result;
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Busy(conflict)) if attempt >= options.max_attempts => {
                return Err(ApplyError::GaveUp {
                    attempts: attempt,
                    conflict,
                    lock_timeout_ms: project.config.lock_timeout_ms,
                    rolled_back: RolledBack::WholeApply,
                }
                .into());
            }
            Err(Failure::Busy(conflict)) => {
                let backoff = backoff(options.first_backoff, attempt);
                eprintln!(
                    "attempt {attempt} of {}: {}",
                    options.max_attempts,
                    retrying(&conflict, backoff)
                );
                tokio::time::sleep(backoff).await;
                attempt += 1;
            }
        }
    }
}

/// One attempt: everything apply does inside its transaction.
struct Attempt<'a> {
    client: &'a Client,
    /// The apply session's backend pid, for the lock watch.
    pid: i32,
    project: &'a Project,
    source: &'a PlanSource,
    options: &'a ApplyOptions,
    watch: &'a LockWatch,
    /// The plan last printed (retries print it again only when it changed).
    shown_plan: Option<String>,
    /// The session's notices, when they are to be shown.
    notices: Option<&'a mut UnboundedReceiver<DbError>>,
}

impl Attempt<'_> {
    /// Prints the notices received so far that a user must see, naming `table`; without a
    /// table (those raised while planning), drops them.
    fn show_notices(&mut self, table: Option<&str>) {
        let Some(notices) = self.notices.as_deref_mut() else {
            return;
        };
        while let Ok(notice) = notices.try_recv() {
            if let Some(line) = table.and_then(|t| crate::db::notices::line(t, &notice)) {
                eprintln!("{line}");
            }
        }
    }

    async fn run(&mut self, out: &mut dyn Write) -> Result<First, Failure> {
        let client = self.client;
        let config = &self.project.config;
        // Waiting for another apply holds up no writer: it gets its own, longer, bound.
        client
            .batch_execute(&format!(
                "SET LOCAL TimeZone = 'UTC'; SET LOCAL lock_timeout = '{}ms'",
                self.options.apply_wait.as_millis().max(1)
            ))
            .await?;
        // (Every session checks once a second that its client is still there, so a killed
        // apply's session lets go of its locks at once: see db::session.)
        if let Err(e) = client
            .query_one("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_LOCK_KEY])
            .await
        {
            if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(Failure::Fatal(
                    ApplyError::AnotherApplyRunning {
                        holder: advisory_lock_holder(client).await,
                        waited: self.options.apply_wait,
                    }
                    .into(),
                ));
            }
            return Err(Failure::Fatal(
                anyhow!(e).context("taking retentionc's advisory lock"),
            ));
        }
        client
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '{}ms'",
                config.lock_timeout_ms
            ))
            .await?;

        let plan = crate::plan::make_plan_in(client, self.project).await?;
        let previous = history::last_recorded(client, config).await?;
        let lineage = match self.source {
            PlanSource::Live => {
                let text = serde_json::to_string(&plan.changes).unwrap_or_default();
                if self.shown_plan.as_deref() != Some(text.as_str()) {
                    write_plan(out, &plan)?;
                    self.shown_plan = Some(text);
                }
                Lineage::new(&plan)
            }
            PlanSource::Reviewed {
                plan: reviewed,
                origin,
            } => match reviewed_plan_mismatch(reviewed, &plan) {
                None => Lineage::new(reviewed),
                Some(mismatch) => match continued_plan(reviewed, &plan, previous.as_ref()) {
                    Some(lineage) => lineage,
                    None => {
                        return Err(Failure::Fatal(
                            match origin {
                                ReviewedOrigin::SavedFile(path) => ApplyError::SavedPlanOutdated {
                                    mismatch: Box::new(mismatch),
                                    path: path.clone(),
                                    planned_fingerprint: reviewed.live_fingerprint.clone(),
                                    live_fingerprint: plan.live_fingerprint.clone(),
                                },
                                ReviewedOrigin::Confirmed => ApplyError::ChangedWhileConfirming {
                                    mismatch: Box::new(mismatch),
                                },
                            }
                            .into(),
                        ));
                    }
                },
            },
        };
        refuse_data_loss(&plan, self.options.allow_data_loss)?;
        note_conversions(&plan, self.options.convert);
        if !plan
            .changes
            .iter()
            .any(|c| c.kind != crate::plan::ChangeKind::ConvertTable)
        {
            client.batch_execute("ROLLBACK").await?;
            return Ok(First::Done(ApplyOutcome::NoChanges));
        }
        if let Some(progress) = previous.as_ref().and_then(|p| p.progress().map(|g| (p, g)))
            && !progress.1.finished()
        {
            let (recorded, progress) = progress;
            writeln!(
                out,
                "The last apply (apply_history id {}, {}) stopped after {} of its {} changes; this apply makes what is left.",
                recorded.id,
                recorded.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
                progress.changes_done,
                progress.changes
            )
            .map_err(anyhow::Error::from)?;
        }
        let statements = reviewed_statements(client, self.project, &plan).await?;
        let parts: Vec<TransactionPart> = match &plan.apply_transactions {
            Some(split) => split.transactions.clone(),
            None => vec![TransactionPart {
                first_change: 0,
                changes: plan.changes.len(),
                estimated_locks: 0,
            }],
        };
        let mut desired_state = history::applied_state(self.project);
        // A table still to convert got none of its policy's settings from this apply.
        if let Some(tables) = desired_state
            .get_mut("tables")
            .and_then(|t| t.as_object_mut())
        {
            for change in &plan.changes {
                if change.kind == crate::plan::ChangeKind::ConvertTable {
                    tables.remove(&change.table);
                }
            }
        }
        let rest = Rest {
            previous,
            desired_state,
            lineage,
            statements,
            parts,
            executed: 0,
            plan,
        };
        let first = rest.parts[0].clone();
        let executed = self
            .execute_changes(&rest, &first, RolledBack::WholeApply)
            .await?;
        let (state, hashes) = rest.record_of(&first, 1);
        let history_id = history::record(client, config, &hashes, &executed, &state).await?;
        if rest.parts.len() == 1 {
            client
                .batch_execute("COMMIT")
                .await
                .context("committing the apply")?;
            return Ok(First::Done(ApplyOutcome::Applied {
                changes: rest.plan.changes.len(),
                statements: executed.len(),
                history_id,
                transactions: 1,
            }));
        }
        // Held until the last transaction ends (or the session does): no other apply
        // starts between two transactions of this one.
        client
            .query_one("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
            .await?;
        if let Err(e) = client.batch_execute("COMMIT").await {
            let _ = client
                .query_one("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
                .await;
            return Err(Failure::Fatal(anyhow!(e).context("committing the apply")));
        }
        self.options.progress.set(1, rest.parts.len());
        rest.report_committed(out, 1, history_id);
        Ok(First::Split(Box::new(Rest {
            executed: executed.len(),
            ..rest
        })))
    }

    /// The statements of one transaction's changes, in order, each watched for the lock it
    /// may wait for.
    /// `rolled_back`: what a failed statement leaves, for its message.
    async fn execute_changes(
        &mut self,
        rest: &Rest,
        part: &TransactionPart,
        rolled_back: RolledBack,
    ) -> Result<Vec<String>, Failure> {
        let range = part.first_change..part.first_change + part.changes;
        let mut executed = Vec::new();
        self.show_notices(None);
        for (change, sqls) in rest.plan.changes[range.clone()]
            .iter()
            .zip(&rest.statements[range])
        {
            for (planned, sql) in change.statements.iter().zip(sqls) {
                let (result, blocker) = self
                    .watch
                    .watch(self.pid, self.client.batch_execute(sql))
                    .await;
                self.show_notices(Some(&change.table));
                if let Err(e) = result {
                    return Err(statement_failure(
                        e,
                        change,
                        &planned.key,
                        &planned.file,
                        blocker,
                        rolled_back,
                    ));
                }
                executed.push(sql.clone());
            }
        }
        Ok(executed)
    }

    /// Transactions 2 to n of a split apply, each retried on lock conflicts like the
    /// first, without planning again: the session-level lock keeps other applies out, and
    /// the plan was checked under it.
    async fn continue_split(
        &mut self,
        mut rest: Rest,
        out: &mut dyn Write,
    ) -> Result<ApplyOutcome> {
        let client = self.client;
        let config = &self.project.config;
        let total = rest.parts.len();
        let mut history_id = 0;
        for number in 2..=total {
            if crate::db::interrupt::interrupted() {
                return Err(ApplyError::PartlyApplied {
                    committed: number - 1,
                    failed: number,
                    of: total,
                    cause: "interrupted (Ctrl-C or SIGTERM)".into(),
                }
                .into());
            }
            let part = rest.parts[number - 1].clone();
            let mut attempt = 1;
            let result = loop {
                let result: Result<(i64, usize), Failure> = async {
                    client
                        .batch_execute("BEGIN")
                        .await
                        .context("starting the apply transaction")?;
                    client
                        .batch_execute(&format!(
                            "SET LOCAL TimeZone = 'UTC'; SET LOCAL lock_timeout = '{}ms'",
                            config.lock_timeout_ms
                        ))
                        .await?;
                    let executed = self
                        .execute_changes(&rest, &part, RolledBack::ThisTransaction)
                        .await?;
                    let (state, hashes) = rest.record_of(&part, number);
                    let id = history::record(client, config, &hashes, &executed, &state).await?;
                    client
                        .batch_execute("COMMIT")
                        .await
                        .context("committing the apply")?;
                    Ok((id, executed.len()))
                }
                .await;
                match result {
                    Ok(done) => break Ok(done),
                    Err(failure) => {
                        let _ = client.batch_execute("ROLLBACK").await;
                        match failure {
                            Failure::Busy(conflict) if attempt < self.options.max_attempts => {
                                let backoff = backoff(self.options.first_backoff, attempt);
                                eprintln!(
                                    "transaction {number} of {total}, attempt {attempt} of {}: {}",
                                    self.options.max_attempts,
                                    retrying(&conflict, backoff)
                                );
                                tokio::time::sleep(backoff).await;
                                attempt += 1;
                            }
                            Failure::Busy(conflict) => {
                                break Err(ApplyError::GaveUp {
                                    attempts: attempt,
                                    conflict,
                                    lock_timeout_ms: config.lock_timeout_ms,
                                    rolled_back: RolledBack::ThisTransaction,
                                }
                                .into());
                            }
                            Failure::Fatal(e) => break Err(e),
                        }
                    }
                }
            };
            match result {
                Ok((id, statements)) => {
                    history_id = id;
                    rest.executed += statements;
                    self.options.progress.set(number, total);
                    rest.report_committed(out, number, id);
                }
                Err(cause) => {
                    return Err(ApplyError::PartlyApplied {
                        committed: number - 1,
                        failed: number,
                        of: total,
                        cause: format!("{cause:#}"),
                    }
                    .into());
                }
            }
        }
        Ok(ApplyOutcome::Applied {
            changes: rest.plan.changes.len(),
            statements: rest.executed,
            history_id,
            transactions: total,
        })
    }
}

/// How the first transaction ended.
enum First {
    Done(ApplyOutcome),
    /// Committed, and more transactions follow.
    Split(Box<Rest>),
}

/// What the transactions of an apply share.
struct Rest {
    plan: Plan,
    /// The reviewed statements of each change.
    statements: Vec<Vec<String>>,
    parts: Vec<TransactionPart>,
    lineage: Lineage,
    /// The history row before this apply.
    previous: Option<history::Recorded>,
    desired_state: serde_json::Value,
    /// Statements committed so far.
    executed: usize,
}

impl Rest {
    /// The state and policy hashes to record once transaction `number` (1-based), made of
    /// `part`, commits: see `history::partial_record`. One transaction applying a whole
    /// plan of its own records the desired state as it is.
    fn record_of(
        &self,
        part: &TransactionPart,
        number: usize,
    ) -> (serde_json::Value, serde_json::Value) {
        let hashes = history::plan_hashes(&self.plan);
        if self.parts.len() == 1 && self.lineage.changes_before == 0 {
            return (self.desired_state.clone(), hashes);
        }
        let done = part.first_change + part.changes;
        let pending: BTreeSet<String> = self.plan.changes[done..]
            .iter()
            .map(|c| c.table.clone())
            .collect();
        let progress = history::SplitProgress {
            plan: self.lineage.plan.clone(),
            changes_done: self.lineage.changes_before + done,
            changes: self.lineage.changes,
            transaction: number,
            transactions: self.parts.len(),
        };
        history::partial_record(
            &self.desired_state,
            &hashes,
            self.previous.as_ref(),
            &pending,
            &progress,
        )
    }

    fn report_committed(&self, out: &mut dyn Write, number: usize, history_id: i64) {
        let part = &self.parts[number - 1];
        let changes = &self.plan.changes[part.first_change..part.first_change + part.changes];
        let (first, last) = (
            changes.first().map_or("", |c| c.table.as_str()),
            changes.last().map_or("", |c| c.table.as_str()),
        );
        let tables = if first == last {
            first.to_string()
        } else {
            format!("{first} to {last}")
        };
        let _ = writeln!(
            out,
            "Transaction {number} of {} committed: {} change(s), {tables} (apply_history id {history_id}).",
            self.parts.len(),
            part.changes
        );
        let _ = out.flush();
    }
}

/// The plan an apply carries out, which its progress records name: the plan itself, or
/// the reviewed plan a stopped apply had begun.
struct Lineage {
    plan: String,
    /// Changes of that plan committed by earlier applies.
    changes_before: usize,
    changes: usize,
}

impl Lineage {
    fn new(plan: &Plan) -> Lineage {
        Lineage {
            plan: history::plan_id(plan),
            changes_before: 0,
            changes: plan.changes.len(),
        }
    }
}

/// A reviewed plan that a split apply had begun and stopped: acceptable when the plan of
/// now is exactly what it had left to do (the same changes and statements, in order).
fn continued_plan(
    reviewed: &Plan,
    now: &Plan,
    previous: Option<&history::Recorded>,
) -> Option<Lineage> {
    let progress = previous?.progress()?;
    if progress.finished()
        || progress.plan != history::plan_id(reviewed)
        || progress.changes != reviewed.changes.len()
    {
        return None;
    }
    let left = Plan {
        live_fingerprint: now.live_fingerprint.clone(),
        changes: reviewed.changes.get(progress.changes_done..)?.to_vec(),
        ..reviewed.clone()
    };
    if reviewed_plan_mismatch(&left, now).is_some() {
        return None;
    }
    Some(Lineage {
        plan: progress.plan,
        changes_before: progress.changes_done,
        changes: progress.changes,
    })
}

fn statement_failure(
    e: tokio_postgres::Error,
    change: &Change,
    key: &str,
    file: &str,
    blocker: Option<Blocker>,
    rolled_back: RolledBack,
) -> Failure {
    let statement = PlannedStatementName {
        table: change.table.clone(),
        key: key.to_string(),
        file: file.to_string(),
    };
    if let Some(deadlock) = lock_failure(&e) {
        let context = e
            .as_db_error()
            .map(|d| format!("{} {}", d.message(), d.where_().unwrap_or("")))
            .unwrap_or_default();
        return Failure::Busy(Box::new(LockConflict {
            statement: statement.to_string(),
            relation: locks::relation_in_error_text(&context),
            blocker,
            deadlock,
        }));
    }
    if let Some(denial) = crate::db::privileges::denial(&e) {
        return Failure::Fatal(
            ApplyError::StatementDenied {
                statement,
                denial: denial.to_string(),
                sqlstate: e.code().map(|c| c.code()).unwrap_or_default().to_string(),
                rolled_back,
            }
            .into(),
        );
    }
    Failure::Fatal(
        ApplyError::StatementFailed {
            statement,
            cause: e,
            rolled_back,
        }
        .into(),
    )
}

/// Whether the error is a lock timeout (`Some(false)`) or a deadlock (`Some(true)`).
fn lock_failure(e: &tokio_postgres::Error) -> Option<bool> {
    crate::db::lock_failure::lock_failure(e)
        .map(|f| f == crate::db::lock_failure::LockFailure::Deadlock)
}

fn backoff(first: Duration, attempt: u32) -> Duration {
    let exponential = first
        .saturating_mul(1 << (attempt - 1).min(8))
        .min(Duration::from_secs(10));
    // Up to a quarter more, so that applies that collided do not retry in step.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    exponential + exponential.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// What a lock conflict did and what happens next: `<statement> could not get a lock within
/// lock_timeout on <relation> (<holder>); rolled back, retrying in <n> ms`.
fn retrying(conflict: &LockConflict, backoff: Duration) -> String {
    format!(
        "{} {} on {} ({}); rolled back, retrying in {} ms",
        conflict.statement,
        if conflict.deadlock {
            "hit a deadlock"
        } else {
            "could not get a lock within lock_timeout"
        },
        conflict.relation(),
        conflict.holder(),
        backoff.as_millis()
    )
}

/// The session holding retentionc's advisory lock, when it can be seen.
async fn advisory_lock_holder(client: &Client) -> Option<AdvisoryHolder> {
    let row = client
        .query_opt(
            "SELECT a.pid, a.application_name, extract(epoch FROM now() - a.xact_start)::float8
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295) AND l.objsubid = 1
              LIMIT 1",
            &[&ADVISORY_LOCK_KEY],
        )
        .await
        .ok()??;
    Some(AdvisoryHolder {
        pid: row.get(0),
        application: row.get::<_, Option<String>>(1).unwrap_or_default(),
        transaction_seconds: row.get(2),
    })
}
