//! `retentionc run --dry-run`: what run would drop, detach, move or delete, changing
//! nothing. Everything is read in one READ ONLY transaction, which is rolled back.
//!
//! Expired partitions are decided as pg_partman decides them (drop_partition_time.sql,
//! identical in 4.7.2 and 5.x): a child whose lower bound plus the partition interval is
//! before `now() - retention`, the last child of a set never. The settings are the live
//! `part_config` row, since that is what maintenance reads. Delete rules are estimated by
//! the planner (EXPLAIN), which reads no rows.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::partitions::{self, Child};
use super::progress::group;
use crate::cli::DbArgs;
use crate::db;
use crate::model::{Config, DeleteRule, Policy};
use crate::policy::ident::{quote_ident, quote_literal};

pub async fn dry_run(
    config: &Config,
    policies: &[&Policy],
    db_args: &DbArgs,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let client = db::connect(db_args, super::APPLICATION_NAME).await?;
    client.batch_execute("BEGIN TRANSACTION READ ONLY").await?;
    // A table that cannot be read (missing, not registered) is reported and the rest go
    // on: each table is read under a savepoint.
    let mut failed = 0;
    for policy in policies {
        client.batch_execute("SAVEPOINT retentionc_table").await?;
        match describe_table(&client, config, policy, out).await {
            Ok(()) => {
                client
                    .batch_execute("RELEASE SAVEPOINT retentionc_table")
                    .await?
            }
            Err(e) => {
                failed += 1;
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT retentionc_table")
                    .await?;
                let e = db::privileges::read_failure(&client, e).await;
                writeln!(
                    out,
                    "{}: cannot tell what run would do: {e:#}",
                    policy.table
                )?;
            }
        }
    }
    let _ = client.batch_execute("ROLLBACK").await;
    writeln!(out, "dry run: nothing was changed")?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn describe_table(
    client: &tokio_postgres::Client,
    config: &Config,
    policy: &Policy,
    out: &mut impl Write,
) -> Result<()> {
    let table = policy.table.to_string();
    if policy.partitioning.is_some() {
        match partitions::part_config(client, &config.partman_schema, &table).await? {
            None => writeln!(
                out,
                "{table}: not registered with pg_partman (apply the policy first): maintenance would fail"
            )?,
            Some(part_config) => {
                let children =
                    partitions::children(client, &config.partman_schema, &table, &part_config)
                        .await?;
                let expired: Vec<&Child> = children.iter().filter(|c| c.expired).collect();
                let ahead = children
                    .iter()
                    .filter(|c| c.ahead && c.start > chrono::Utc::now())
                    .count();
                match &part_config.retention {
                    None => writeln!(
                        out,
                        "{table}: no retention in part_config: maintenance would remove nothing"
                    )?,
                    Some(retention) => {
                        let action = part_config.expired_action();
                        let verb = match action {
                            "drop" => "drop".to_string(),
                            "detach" => "detach".to_string(),
                            _ => format!(
                                "move to schema {}",
                                part_config.retention_schema.as_deref().unwrap_or("?")
                            ),
                        };
                        writeln!(
                            out,
                            "{table}: maintenance would {verb} {} of {} partitions (retention {retention}, interval {})",
                            expired.len(),
                            children.len(),
                            part_config.partition_interval
                        )?;
                        // A long list shows its ends: the bounds say which ones they are.
                        const ENDS: usize = 5;
                        let shown: Vec<&&Child> = if expired.len() > 2 * ENDS + 2 {
                            expired[..ENDS]
                                .iter()
                                .chain(expired[expired.len() - ENDS..].iter())
                                .collect()
                        } else {
                            expired.iter().collect()
                        };
                        let unknown = expired
                            .iter()
                            .filter(|c| c.estimated_rows.is_none())
                            .count();
                        let estimated: f64 = expired.iter().filter_map(|c| c.estimated_rows).sum();
                        for (i, child) in shown.iter().enumerate() {
                            if i == ENDS && shown.len() < expired.len() {
                                writeln!(
                                    out,
                                    "{table}:   ... {} more",
                                    expired.len() - shown.len()
                                )?;
                            }
                            writeln!(
                                out,
                                "{table}:   {}.{}  [{}, {})  {}",
                                child.schema,
                                child.name,
                                child.start.format("%Y-%m-%d %H:%M:%S%.f%:z"),
                                child.end.format("%Y-%m-%d %H:%M:%S%.f%:z"),
                                match child.estimated_rows {
                                    Some(rows) => format!("~{} rows", group(rows as i64)),
                                    None => "rows unknown (never analyzed)".to_string(),
                                }
                            )?;
                        }
                        if !expired.is_empty() {
                            writeln!(
                                out,
                                "{table}:   ~{} rows in all{}",
                                group(estimated as i64),
                                if unknown > 0 {
                                    format!(" ({unknown} partitions never analyzed, not counted)")
                                } else {
                                    String::new()
                                }
                            )?;
                        }
                    }
                }
                if (ahead as i32) < part_config.premake {
                    writeln!(
                        out,
                        "{table}: maintenance would also create partitions: {ahead} ready ahead of now, premake {}",
                        part_config.premake
                    )?;
                }
            }
        }
    }
    for rule in &policy.deletes {
        let estimate = estimate_rule(client, policy, rule).await?;
        writeln!(
            out,
            "{table}: delete {} would delete ~{} rows (planner estimate)",
            rule.name,
            group(estimate)
        )?;
    }
    Ok(())
}

/// The condition a rule's DELETEs use, over the whole table.
pub fn rule_condition(policy: &Policy, rule: &DeleteRule) -> String {
    let column = rule
        .column
        .as_ref()
        .or(policy.partitioning.as_ref().map(|p| &p.column));
    match (&rule.older_than, column) {
        (Some(older_than), Some(column)) => format!(
            "{} < now() - {}::interval AND {}",
            quote_ident(column.as_str()),
            quote_literal(&older_than.to_string()),
            rule.condition.parenthesized()
        ),
        _ => rule.condition.parenthesized(),
    }
}

async fn estimate_rule(
    client: &tokio_postgres::Client,
    policy: &Policy,
    rule: &DeleteRule,
) -> Result<i64> {
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}",
        policy.table.quoted(),
        rule_condition(policy, rule)
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .with_context(|| format!("estimating delete rule {} of {}", rule.name, policy.table))?;
    let plan: serde_json::Value = row.get(0);
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64)
}
