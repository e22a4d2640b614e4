//! A table's delete rules: its prune procedure, CALLed alone as a top-level statement (so
//! that it can commit between batches) as the table's owner. Progress comes back as
//! notices; what was committed is read back from run_log, whatever the call's result said.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;

use super::progress::{ProgressDisplay, PruneNotice, parse_notice};
use super::report::RuleReport;
use super::step::{StepError, describe_db_error};
use super::worker::{Worker, retry_or_give_up};
use crate::db::Session;
use crate::model::Policy;
use crate::policy::ident::quote_ident;

/// One delete rule as this run's run_log rows record it (several when retried).
#[derive(Debug, Default)]
struct LoggedRule {
    rows: i64,
    /// The outcome of its last row: `running` (the connection or the call ended
    /// mid-rule), `ok`, `partial` or `failed`.
    outcome: String,
    skipped: Vec<String>,
    /// From each row's started_at to its finished_at (the last committed batch), summed.
    duration: Duration,
}

impl Worker<'_> {
    /// The delete rules of `policy` (which has a prune procedure); `bars`: a spinner on a
    /// terminal.
    pub async fn prune_table(&mut self, policy: &Policy, bars: bool) -> Vec<RuleReport> {
        let table = policy.table.to_string();
        let every_rule = |error: &str| -> Vec<RuleReport> {
            policy
                .deletes
                .iter()
                .map(|r| RuleReport::failed(r.name.to_string(), error.to_string()))
                .collect()
        };
        if crate::db::interrupt::interrupted() {
            return every_rule(&StepError::Interrupted.describe(&table, ""));
        }
        let owner = match self.reconnect_if_lost().await {
            Ok(()) => self.owner_of(policy).await,
            Err(e) => Err(format!("{e:#}")),
        };
        let owner = match owner {
            Ok(owner) => owner,
            Err(error) => return every_rule(&error),
        };
        let procedure = policy
            .prune_procedure()
            .expect("only tables with delete rules are pruned");
        self.prune(policy, procedure.as_str(), &owner, bars).await
    }

    async fn prune(
        &mut self,
        policy: &Policy,
        procedure: &str,
        owner: &str,
        bars: bool,
    ) -> Vec<RuleReport> {
        let table = policy.table.to_string();
        let started_at = Utc::now();
        let call = crate::render::prune_call(self.ctx.config, procedure);
        let mut attempt = 1;
        let failure = loop {
            let result = match self.set_role(&table, owner).await {
                Ok(()) => {
                    let result = self.prune_once(&table, &call, bars).await;
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
                    if let Some(error) =
                        retry_or_give_up(&table, owner, "delete", &mut attempt, &e).await
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
                .map(|r| {
                    RuleReport::failed(
                        r.name.to_string(),
                        failure.clone().unwrap_or_else(|| {
                            "finished, but run_log could not be read to count the rows".into()
                        }),
                    )
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
            let duration = entry.map(|l| l.duration);
            match entry.map(|l| l.outcome.as_str()) {
                Some("ok") | Some("partial") => reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: None,
                    skipped,
                    duration,
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
                        duration,
                    });
                }
                _ => reports.push(RuleReport {
                    rule: name,
                    rows,
                    error: Some("not run: an earlier rule failed".into()),
                    skipped,
                    duration,
                }),
            }
        }
        reports
    }

    /// One CALL, showing its progress notices.
    async fn prune_once(&mut self, table: &str, call: &str, bars: bool) -> Result<(), StepError> {
        let mut display = ProgressDisplay::new(table, bars);
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
                    if let Some(line) = crate::db::notices::line(table, &notice) {
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
            "SELECT substr(step, 8), rows_deleted, outcome, coalesce(detail->'skipped', '[]'), \
                    extract(epoch FROM finished_at - started_at)::float8 \
               FROM {}.\"run_log\" \
              WHERE table_name = $1 AND step LIKE 'delete:%' AND detail->>'run_id' = $2 \
              ORDER BY id",
            quote_ident(self.ctx.config.schema.as_str())
        );
        let rows = self
            .session
            .client
            .query(&sql, &[&table, &self.ctx.run_id])
            .await
            .ok()?;
        let mut rules: BTreeMap<String, LoggedRule> = BTreeMap::new();
        for row in rows {
            let rule = rules.entry(row.get(0)).or_default();
            rule.rows += row.get::<_, i64>(1);
            rule.outcome = row.get(2);
            let seconds: f64 = row.get(4);
            rule.duration += Duration::try_from_secs_f64(seconds).unwrap_or_default();
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
            quote_ident(self.ctx.config.schema.as_str())
        );
        let attempts = attempts as i32;
        if let Err(e) = self
            .session
            .client
            .execute(&sql, &[&table, &rule, &self.ctx.run_id, &error, &attempts])
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
