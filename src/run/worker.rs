//! One session of `run` and what every step does with it: reconnecting after a lost
//! connection, cancelling on Ctrl-C, retrying with backoff, acting as a table's owner,
//! and recording a failure in run_log.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;

use super::error::RunError;
use super::step::{StepError, describe_db_error};
use crate::apply::locks::LockWatch;
use crate::cli::DbArgs;
use crate::db::interrupt::{self, Stop, Stopped};
use crate::db::privileges::{display_ident, refused_role};
use crate::db::{self, Session};
use crate::model::{Config, Policy};
use crate::policy::ident::{quote_ident, quote_literal};

/// `application_name` of run's sessions, which `run_log.run_by` records.
pub const APPLICATION_NAME: &str = "retentionc";

/// Attempts per step when the table is locked (lock_timeout) or pg_partman's maintenance
/// lock is held elsewhere; waits double from `FIRST_BACKOFF` in between.
pub const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What every session of one run shares.
pub struct RunContext<'a> {
    pub config: &'a Config,
    pub db: &'a DbArgs,
    /// Tags this run's run_log rows (`detail->>'run_id'`), so that what the server
    /// committed can be read back after a lost connection.
    pub run_id: String,
}

impl RunContext<'_> {
    pub fn lock_timeout(&self) -> String {
        format!("{}ms", self.config.lock_timeout_ms)
    }

    fn lock_watch(&self) -> LockWatch {
        LockWatch::new(
            Some(self.db.clone()),
            Duration::from_millis(self.config.lock_timeout_ms),
        )
    }
}

/// One session of a run.
pub struct Worker<'a> {
    pub ctx: &'a RunContext<'a>,
    pub session: Session,
    /// The session's backend pid (0 when it could not be read: then no blocker is found).
    pub pid: i32,
    /// Finds who holds a lock a statement of this session waits for.
    pub lock_watch: LockWatch,
}

impl<'a> Worker<'a> {
    pub async fn connect(ctx: &'a RunContext<'a>) -> Result<Worker<'a>> {
        let session = db::connect(ctx.db, APPLICATION_NAME).await?;
        let mut worker = Worker {
            ctx,
            session,
            pid: 0,
            lock_watch: ctx.lock_watch(),
        };
        worker.prepare_session().await?;
        Ok(worker)
    }

    /// Session settings for the CALLs: a CALL that commits cannot be preceded by a SET in
    /// the same query string (that makes one implicit transaction, in which COMMIT fails).
    async fn prepare_session(&mut self) -> Result<()> {
        self.session
            .client
            .batch_execute(&format!(
                "SET lock_timeout = {}; SET retentionc.progress = 'on'; SET retentionc.run_id = {}",
                quote_literal(&self.ctx.lock_timeout()),
                quote_literal(&self.ctx.run_id)
            ))
            .await?;
        self.pid = self
            .session
            .client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        Ok(())
    }

    /// A fresh session when the last one was lost (a failed table must not fail the rest).
    /// Not after a stall (the network is what failed: trying again would only wait as long
    /// again) nor after an interruption, when the run must end quickly.
    pub async fn reconnect_if_lost(&mut self) -> Result<()> {
        if self.session.client.is_closed() {
            let lost = self.session.lost().unwrap_or_default();
            if self.session.control.stalled() || interrupt::interrupted() {
                return Err(RunError::ConnectionLost { reason: lost }.into());
            }
            eprintln!("{lost}; connecting again");
            self.session = db::connect(self.ctx.db, APPLICATION_NAME).await?;
            self.prepare_session().await?;
        }
        Ok(())
    }

    /// Runs `fut` (a statement on this session), cancelling it on Ctrl-C or SIGTERM.
    pub async fn interruptible<T>(
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
                None => StepError::from_client(&e, None),
            }),
            Stopped::Interrupted(_) => Err(StepError::Interrupted),
        }
    }

    /// `SET ROLE <owner>` for the session, refused with the GRANT it needs when this
    /// session's role may not act as the owner.
    pub async fn set_role(&self, table: &str, owner: &str) -> Result<(), StepError> {
        let client = &self.session.client;
        let sql = format!("SET ROLE {}", quote_ident(owner));
        match client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                let user = client
                    .query_one("SELECT session_user::text", &[])
                    .await
                    .map(|r| r.get::<_, String>(0))
                    .unwrap_or_else(|_| "this role".into());
                Err(StepError::Refused(refused_role(
                    &display_ident(&user),
                    &display_ident(owner),
                    table,
                )))
            }
            Err(e) => Err(StepError::from_client(&e, None)),
        }
    }

    /// The owner of `policy`'s table, whose rights its retention runs with. Read by name
    /// from the catalog, so that the session's role needs no rights on the schema.
    pub async fn owner_of(&self, policy: &Policy) -> Result<String, String> {
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
            .map_err(|e| StepError::from_client(&e, None).describe(&table, "its owner"))?;
        row.map(|r| r.get(0)).ok_or_else(|| {
            format!("table {table} does not exist; is the policy applied? (`retentionc apply`)")
        })
    }

    /// Records a failed step in run_log (best effort: the failure is reported either way).
    pub async fn log_failure(
        &mut self,
        started_at: DateTime<Utc>,
        table: &str,
        step: &str,
        error: &str,
        attempts: u32,
    ) {
        if self.reconnect_if_lost().await.is_err() {
            eprintln!("warning: {table}: could not record the failure in run_log (no connection)");
            return;
        }
        let sql = format!(
            "INSERT INTO {}.\"run_log\" (started_at, table_name, step, outcome, detail) \
             VALUES ($1, $2, $3, 'failed', jsonb_build_object('error', $4::text, 'attempts', $5::int, 'run_id', $6::text))",
            quote_ident(self.ctx.config.schema.as_str())
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
                    &error,
                    &attempts,
                    &self.ctx.run_id,
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

/// The wait before attempt `attempt + 1`.
pub async fn backoff(attempt: u32) {
    tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1)).await;
}

/// After a failed attempt at a step: while it was a lock failure and attempts remain,
/// says so, waits and returns None (try again); otherwise the one-line error to report.
pub async fn retry_or_give_up(
    table: &str,
    owner: &str,
    step: &str,
    attempt: &mut u32,
    error: &StepError,
) -> Option<String> {
    let text = error.describe(table, owner);
    if error.lock_failure().is_some() && *attempt < ATTEMPTS {
        eprintln!("{table}: {step} blocked: {text}; trying again ({attempt}/{ATTEMPTS})");
        backoff(*attempt).await;
        *attempt += 1;
        return None;
    }
    Some(final_error(error, &text, *attempt))
}

/// The error reported for a step that will not be tried again.
pub fn final_error(error: &StepError, text: &str, attempts: u32) -> String {
    if error.lock_failure().is_some() {
        format!("stayed locked after {attempts} attempts: {text}")
    } else {
        text.to_string()
    }
}
