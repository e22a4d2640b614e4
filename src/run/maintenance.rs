//! pg_partman maintenance of every partitioned table of a run, in one CALL.
//!
//! `retention.maintain_tables(tables, zones)` maintains each table in its own transaction
//! as its owner, committing table by table like pg_partman's own `run_maintenance_proc()`,
//! and reports each table in a NOTICE once committed. So run sends one statement for all
//! its tables (and not several round trips per table), and still knows each table's
//! outcome, as it happens. Tables that found pg_partman's lock taken, or stayed locked
//! past lock_timeout, are tried again together, after a backoff, in a later CALL. What
//! was committed before a lost connection is read back from run_log.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio_postgres::error::DbError;

use super::error::RunError;
use super::report::Maintenance;
use super::step::{ServerError, StepError};
use super::worker::{ATTEMPTS, Worker, backoff, final_error};
use crate::db::privileges::{display_ident, refused_role};
use crate::db::{Session, interrupt, notices};
use crate::model::Policy;
use crate::policy::ident::quote_ident;

/// Prefix of the NOTICE `maintain_tables` raises after each table.
const NOTICE_PREFIX: &str = "retentionc maintenance: ";

/// One table's outcome, as the procedure reported it.
#[derive(Debug, Clone)]
enum Reported {
    Done(Maintenance),
    Skipped,
    Failed(StepError, Option<String>),
}

/// What one CALL reported, in order, and how it ended (`None`: it completed).
struct Batch {
    reported: Vec<(usize, Reported, Duration)>,
    ended: Option<StepError>,
}

impl Worker<'_> {
    /// Maintains `policies` (all partitioned), calling `finished` with each table's index
    /// once its outcome is final. Stops at an interruption: tables not started then are
    /// not reported. Fails only when retentionc's procedure is missing.
    pub async fn maintain_all(
        &mut self,
        policies: &[&Policy],
        mut finished: impl FnMut(usize, Maintenance, Duration),
    ) -> Result<()> {
        let started_at = Utc::now();
        // This run's run_log rows of each table known so far: after a lost connection,
        // the rows beyond them are what the lost CALL committed.
        let mut logged = vec![0usize; policies.len()];
        let mut queue: Vec<usize> = (0..policies.len()).collect();
        let mut attempt = 1;
        while !queue.is_empty() {
            let mut retry = Vec::new();
            let mut rest = queue;
            while !rest.is_empty() {
                if interrupt::interrupted() {
                    return Ok(());
                }
                if let Err(e) = self.reconnect_if_lost().await {
                    let error = format!("{e:#}");
                    for &i in &rest {
                        finished(
                            i,
                            Maintenance::Failed {
                                error: error.clone(),
                            },
                            Duration::ZERO,
                        );
                    }
                    return Ok(());
                }
                let batch = self.call_maintain_tables(policies, &rest).await;
                let mut failures = Vec::new();
                let mut settled: HashSet<usize> = HashSet::new();
                for (i, reported, elapsed) in batch.reported {
                    settled.insert(i);
                    if !matches!(reported, Reported::Failed(..)) {
                        logged[i] += 1;
                    }
                    match settle(policies[i], reported, attempt) {
                        Settled::Final(m) => finished(i, m, elapsed),
                        Settled::Retry => retry.push(i),
                        Settled::Failed(error) => failures.push((i, error, elapsed)),
                    }
                }
                rest.retain(|i| !settled.contains(i));
                match batch.ended {
                    None => {
                        for &i in &rest {
                            failures.push((
                                i,
                                "the maintenance procedure ended without reporting this table"
                                    .into(),
                                Duration::ZERO,
                            ));
                        }
                        rest.clear();
                    }
                    Some(StepError::Interrupted) => {
                        if let Some(&first) = rest.first() {
                            let error = StepError::Interrupted.describe("", "");
                            failures.push((first, error, Duration::ZERO));
                        }
                        self.record_failures(
                            started_at,
                            policies,
                            failures,
                            attempt,
                            &mut finished,
                        )
                        .await;
                        return Ok(());
                    }
                    Some(StepError::Lost(reason)) => {
                        let committed = self.committed_since_lost(policies, &rest, &logged).await;
                        for (i, reported) in committed {
                            logged[i] += 1;
                            rest.retain(|&r| r != i);
                            match settle(policies[i], reported, attempt) {
                                Settled::Final(m) => finished(i, m, Duration::ZERO),
                                Settled::Retry => retry.push(i),
                                Settled::Failed(error) => failures.push((i, error, Duration::ZERO)),
                            }
                        }
                        // The procedure goes in order: the first table without a row was
                        // in flight; the others were not started and go on.
                        if !rest.is_empty() {
                            let first = rest.remove(0);
                            failures.push((first, reason, Duration::ZERO));
                        }
                    }
                    Some(e) if e.is_missing_routine() => {
                        return Err(RunError::SchemaOlder { error: e }.into());
                    }
                    Some(e) => {
                        for &i in &rest {
                            let table = policies[i].table.to_string();
                            failures.push((i, e.describe(&table, "its owner"), Duration::ZERO));
                        }
                        rest.clear();
                    }
                }
                self.record_failures(started_at, policies, failures, attempt, &mut finished)
                    .await;
            }
            if retry.is_empty() {
                break;
            }
            backoff(attempt).await;
            attempt += 1;
            retry.sort_unstable();
            queue = retry;
        }
        Ok(())
    }

    /// Records final failures in run_log, then reports them.
    async fn record_failures(
        &mut self,
        started_at: DateTime<Utc>,
        policies: &[&Policy],
        failures: Vec<(usize, String, Duration)>,
        attempt: u32,
        finished: &mut impl FnMut(usize, Maintenance, Duration),
    ) {
        for (i, error, elapsed) in failures {
            let table = policies[i].table.to_string();
            self.log_failure(started_at, &table, "maintenance", &error, attempt)
                .await;
            finished(i, Maintenance::Failed { error }, elapsed);
        }
    }

    /// One CALL of `maintain_tables` for `policies[rest]`, reading its notices as they come.
    async fn call_maintain_tables(&mut self, policies: &[&Policy], rest: &[usize]) -> Batch {
        let tables: Vec<String> = rest
            .iter()
            .map(|&i| policies[i].table.to_string())
            .collect();
        let zones: Vec<String> = rest
            .iter()
            .map(|&i| policies[i].time_zone_or_utc().to_string())
            .collect();
        let call = crate::render::maintain_tables_call(self.ctx.config);
        let watching = self.lock_watch.start(self.pid);
        let mut reported = Vec::new();
        let mut warnings: Vec<DbError> = Vec::new();
        let mut last = Instant::now();
        let Session {
            client,
            notices,
            control,
        } = &mut self.session;
        let mut handle = |notice: DbError| {
            let Some(json) = notice.message().strip_prefix(NOTICE_PREFIX) else {
                // pg_partman's warnings (e.g. refusing to drop a set's last partition)
                // belong to the table whose report comes next.
                warnings.push(notice);
                return;
            };
            let Some(index) = rest.get(reported.len()).copied() else {
                return;
            };
            let table = policies[index].table.to_string();
            for warning in warnings.drain(..) {
                if let Some(line) = notices::line(&table, &warning) {
                    eprintln!("{line}");
                }
            }
            let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
            let mut result = parse_reported(&value, &table);
            // The lock this table waited for, if it waited: taken at every report, so
            // that a wait of one table is never blamed on the next.
            let seen = watching.take();
            if let Reported::Failed(StepError::Db(e, blocker), _) = &mut result
                && e.lock_failure().is_some()
            {
                *blocker = seen.map(Box::new);
            }
            reported.push((index, result, last.elapsed()));
            last = Instant::now();
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tables, &zones];
        let ended = {
            let statement = Self::interruptible(control, client.execute(&call, &params));
            tokio::pin!(statement);
            loop {
                tokio::select! {
                    result = &mut statement => break result.err(),
                    Some(notice) = notices.recv() => handle(notice),
                }
            }
        };
        // Notices are read from the connection before the statement's completion.
        while let Ok(notice) = notices.try_recv() {
            handle(notice);
        }
        Batch { reported, ended }
    }

    /// After a lost connection: the outcomes the lost CALL committed for `rest` (each
    /// table's run_log rows of this run beyond the `logged` ones), in their order.
    async fn committed_since_lost(
        &mut self,
        policies: &[&Policy],
        rest: &[usize],
        logged: &[usize],
    ) -> Vec<(usize, Reported)> {
        if self.reconnect_if_lost().await.is_err() {
            return Vec::new();
        }
        let tables: Vec<String> = rest
            .iter()
            .map(|&i| policies[i].table.to_string())
            .collect();
        let sql = format!(
            "SELECT table_name, detail FROM {}.\"run_log\" \
              WHERE step = 'maintenance' AND outcome IN ('ok', 'skipped') \
                AND detail->>'run_id' = $1 AND table_name = ANY($2) \
              ORDER BY id",
            quote_ident(self.ctx.config.schema.as_str())
        );
        let Ok(rows) = self
            .session
            .client
            .query(&sql, &[&self.ctx.run_id, &tables])
            .await
        else {
            eprintln!("warning: could not read run_log back after the lost connection");
            return Vec::new();
        };
        let mut committed = Vec::new();
        for &i in rest {
            let table = policies[i].table.to_string();
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .filter(|r| r.get::<_, String>(0) == table)
                .map(|r| r.get(1))
                .collect();
            if let Some(detail) = rows.get(logged[i]).and(rows.last()) {
                committed.push((i, parse_reported(detail, &table)));
            }
        }
        committed
    }
}

/// What becomes of a reported outcome at attempt `attempt`.
enum Settled {
    Final(Maintenance),
    Retry,
    /// Final, and to be recorded in run_log.
    Failed(String),
}

fn settle(policy: &Policy, reported: Reported, attempt: u32) -> Settled {
    let table = policy.table.to_string();
    match reported {
        Reported::Done(m) => Settled::Final(m),
        Reported::Skipped if attempt < ATTEMPTS => {
            eprintln!(
                "{table}: another pg_partman maintenance is running; trying again ({attempt}/{ATTEMPTS})"
            );
            Settled::Retry
        }
        Reported::Skipped => {
            eprintln!(
                "warning: {table}: maintenance skipped: another pg_partman maintenance is running"
            );
            Settled::Final(Maintenance::Skipped { attempts: attempt })
        }
        Reported::Failed(error, owner) => {
            let owner = owner.unwrap_or_else(|| "its owner".into());
            let text = error.describe(&table, &owner);
            if error.lock_failure().is_some() && attempt < ATTEMPTS {
                eprintln!(
                    "{table}: maintenance blocked: {text}; trying again ({attempt}/{ATTEMPTS})"
                );
                return Settled::Retry;
            }
            Settled::Failed(final_error(&error, &text, attempt))
        }
    }
}

/// A table's outcome from `maintain()`'s result or `maintain_tables`' failure report.
fn parse_reported(value: &serde_json::Value, table: &str) -> Reported {
    match value["outcome"].as_str() {
        Some("ok") => {
            let names = |key: &str| -> Vec<String> {
                value[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Reported::Done(Maintenance::Done {
                created: names("created"),
                dropped: names("dropped"),
                detached: names("detached"),
                moved: names("moved"),
            })
        }
        Some("skipped") => Reported::Skipped,
        Some("failed") => {
            let owner = value["owner"].as_str().map(str::to_string);
            let server = ServerError::from_json(value);
            let error = if value["step"] == "role" && server.code.code() == "42501" {
                let user = value["session_user"].as_str().unwrap_or("this role");
                StepError::Refused(refused_role(
                    &display_ident(user),
                    &display_ident(owner.as_deref().unwrap_or("?")),
                    table,
                ))
            } else {
                StepError::Db(server, None)
            };
            Reported::Failed(error, owner)
        }
        _ => Reported::Failed(
            StepError::Client(format!(
                "the maintenance procedure reported something unexpected: {value}"
            )),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_procedures_reports_are_understood() {
        let done = parse_reported(
            &serde_json::json!({"table": "public.t", "outcome": "ok", "created": ["public.t_p1"],
                                "dropped": ["public.t_p0"], "detached": [], "moved": []}),
            "public.t",
        );
        assert!(matches!(
            done,
            Reported::Done(Maintenance::Done { ref created, ref dropped, .. })
                if created == &["public.t_p1"] && dropped == &["public.t_p0"]
        ));
        assert!(matches!(
            parse_reported(
                &serde_json::json!({"outcome": "skipped", "reason": "..."}),
                "public.t"
            ),
            Reported::Skipped
        ));
        let refused = parse_reported(
            &serde_json::json!({"outcome": "failed", "step": "role", "owner": "app_owner",
                                "session_user": "runner", "sqlstate": "42501",
                                "message": "permission denied to set role \"app_owner\""}),
            "public.t",
        );
        let Reported::Failed(StepError::Refused(text), _) = refused else {
            panic!("a refused role is refused: {refused:?}");
        };
        assert!(
            text.starts_with("runner may not act as app_owner, the owner of public.t: retention runs with the owner's rights; runner needs: GRANT app_owner TO runner"),
            "{text}"
        );
        assert!(matches!(
            parse_reported(&serde_json::json!({"outcome": "?"}), "public.t"),
            Reported::Failed(StepError::Client(_), _)
        ));
    }
}
