//! The executor: applies a plan in one transaction per attempt, under retentionc's
//! advisory lock, retrying lock conflicts with backoff (see the module doc of `apply`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Client;
use tokio_postgres::error::{DbError, SqlState};

use super::checks::{
    note_conversions, refuse_data_loss, reviewed_plan_mismatch, reviewed_statements,
};
use super::history;
use super::locks::{self, Blocker, LockWatch};
use super::write_plan;
use crate::model::Project;
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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            allow_data_loss: false,
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            apply_wait: DEFAULT_APPLY_WAIT,
            convert: false,
        }
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
        history_id: i64,
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

struct LockConflict {
    /// Which statement waited: `public.events [setup] (generated/public.events.sql)`.
    statement: String,
    relation: Option<String>,
    blocker: Option<Blocker>,
    deadlock: bool,
}

impl LockConflict {
    fn relation(&self) -> String {
        self.blocker
            .as_ref()
            .and_then(|b| b.relation.clone())
            .or_else(|| self.relation.clone())
            .unwrap_or_else(|| "a relation (the server did not say which)".to_string())
    }
    fn holder(&self) -> String {
        match &self.blocker {
            Some(b) => format!("held by {}", b.describe_session()),
            None => "held by a session that could not be identified".to_string(),
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
            Ok(outcome) => return Ok(outcome),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Busy(conflict)) if attempt >= options.max_attempts => {
                return Err(give_up(&conflict, attempt, project.config.lock_timeout_ms));
            }
            Err(Failure::Busy(conflict)) => {
                let backoff = backoff(options.first_backoff, attempt);
                eprintln!(
                    "attempt {attempt} of {}: {} {} on {} ({}); rolled back, retrying in {} ms",
                    options.max_attempts,
                    conflict.statement,
                    if conflict.deadlock {
                        "hit a deadlock"
                    } else {
                        "could not get a lock within lock_timeout"
                    },
                    conflict.relation(),
                    conflict.holder(),
                    backoff.as_millis()
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

    async fn run(&mut self, out: &mut dyn Write) -> Result<ApplyOutcome, Failure> {
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
                let holder = advisory_lock_holder(client).await.unwrap_or_default();
                return Err(Failure::Fatal(anyhow!(
                    "another retentionc apply is running{holder}; waited {} s for it to finish (nothing was changed; run apply again when it is done)",
                    self.options.apply_wait.as_secs_f64()
                )));
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
        match self.source {
            PlanSource::Live => {
                let text = serde_json::to_string(&plan.changes).unwrap_or_default();
                if self.shown_plan.as_deref() != Some(text.as_str()) {
                    write_plan(out, &plan)?;
                    self.shown_plan = Some(text);
                }
            }
            PlanSource::Reviewed {
                plan: reviewed,
                origin,
            } => {
                if let Some(why) = reviewed_plan_mismatch(reviewed, &plan) {
                    return Err(Failure::Fatal(match origin {
                        ReviewedOrigin::SavedFile(path) => anyhow!(
                            "{why}; run plan again (plan {}: fingerprint {}, database now {}; nothing was changed)",
                            path.display(),
                            short(&reviewed.live_fingerprint),
                            short(&plan.live_fingerprint)
                        ),
                        ReviewedOrigin::Confirmed => anyhow!(
                            "{} while the plan awaited confirmation; run apply again to see the new plan (nothing was changed)",
                            why.replace(" since the plan was made", "")
                        ),
                    }));
                }
            }
        }
        refuse_data_loss(&plan, self.options.allow_data_loss)?;
        note_conversions(&plan, self.options.convert);
        if !plan
            .changes
            .iter()
            .any(|c| c.kind != crate::plan::ChangeKind::ConvertTable)
        {
            client.batch_execute("ROLLBACK").await?;
            return Ok(ApplyOutcome::NoChanges);
        }
        let statements = reviewed_statements(client, self.project, &plan).await?;

        let mut executed = Vec::new();
        self.show_notices(None);
        for (change, sqls) in plan.changes.iter().zip(&statements) {
            for (planned, sql) in change.statements.iter().zip(sqls) {
                let (result, blocker) = self.watch.watch(self.pid, client.batch_execute(sql)).await;
                self.show_notices(Some(&change.table));
                if let Err(e) = result {
                    return Err(statement_failure(
                        e,
                        change,
                        &planned.key,
                        &planned.file,
                        blocker,
                    ));
                }
                executed.push(sql.clone());
            }
        }
        let mut state = history::applied_state(self.project);
        // A table still to convert got none of its policy's settings from this apply.
        if let Some(tables) = state.get_mut("tables").and_then(|t| t.as_object_mut()) {
            for change in &plan.changes {
                if change.kind == crate::plan::ChangeKind::ConvertTable {
                    tables.remove(&change.table);
                }
            }
        }
        let history_id = history::record(client, config, &plan, &executed, &state).await?;
        client
            .batch_execute("COMMIT")
            .await
            .context("committing the apply")?;
        Ok(ApplyOutcome::Applied {
            changes: plan.changes.len(),
            statements: executed.len(),
            history_id,
        })
    }
}

fn statement_failure(
    e: tokio_postgres::Error,
    change: &Change,
    key: &str,
    file: &str,
    blocker: Option<Blocker>,
) -> Failure {
    let statement = format!("{} [{key}] (generated/{file})", change.table);
    if let Some(deadlock) = lock_failure(&e) {
        let context = e
            .as_db_error()
            .map(|d| format!("{} {}", d.message(), d.where_().unwrap_or("")))
            .unwrap_or_default();
        return Failure::Busy(Box::new(LockConflict {
            statement,
            relation: locks::relation_in_error_text(&context),
            blocker,
            deadlock,
        }));
    }
    if let Some(message) = crate::db::privileges::denial(&e) {
        return Failure::Fatal(anyhow!(
            "{statement} failed: {message} (SQLSTATE {}); {}; the whole apply was rolled back, nothing was changed",
            e.code().map(|c| c.code()).unwrap_or_default(),
            crate::db::privileges::APPLY_NEEDS
        ));
    }
    Failure::Fatal(anyhow!(
        "{statement} failed: {}; the whole apply was rolled back, nothing was changed",
        describe_db_error(&e)
    ))
}

/// Whether the error is a lock timeout (`Some(false)`) or a deadlock (`Some(true)`).
fn lock_failure(e: &tokio_postgres::Error) -> Option<bool> {
    crate::db::lock_failure::lock_failure(e)
        .map(|f| f == crate::db::lock_failure::LockFailure::Deadlock)
}

fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            if let Some(place) = db.where_() {
                text.push_str(&format!(
                    "; context: {}",
                    place.lines().next().unwrap_or(place)
                ));
            }
            text
        }
        None => e.to_string(),
    }
}

fn give_up(conflict: &LockConflict, attempts: u32, lock_timeout_ms: u64) -> anyhow::Error {
    let what = match (&conflict.blocker, conflict.deadlock) {
        (_, true) => "deadlocked".to_string(),
        (Some(b), false) => format!("could not get its {}", b.wanted_lock()),
        (None, false) => "could not get its lock".to_string(),
    };
    anyhow!(
        "apply gave up after {attempts} attempts: {} {what} on {}, {}. Each attempt waited at most lock_timeout ({lock_timeout_ms} ms) and rolled back, so no writer waited on apply for longer; nothing was changed. End that session's transaction, or apply again later.",
        conflict.statement,
        conflict.relation(),
        conflict.holder()
    )
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

/// ` (pid 123, application "retentionc", its transaction open 4 s)` for the session holding the
/// advisory lock, when it can be seen.
async fn advisory_lock_holder(client: &Client) -> Option<String> {
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
    let pid: i32 = row.get(0);
    let app: Option<String> = row.get(1);
    let seconds: Option<f64> = row.get(2);
    let open_for = seconds
        .map(|s| format!(", its transaction open {s:.0} s"))
        .unwrap_or_default();
    Some(format!(
        " (pid {pid}, application \"{}\"{open_for})",
        app.unwrap_or_default()
    ))
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}
