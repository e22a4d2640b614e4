//! `retentionc run --dry-run [--exact]`: what run would drop, detach, move or delete,
//! changing nothing. Everything is read in one READ ONLY transaction, which is rolled back.
//!
//! The live state is read as plan reads it (`catalog`), and the partitions that expire are
//! decided by the one function that decides it for plan and status
//! (`plan::impact::expired_children`), with the live `part_config` settings, since that is
//! what maintenance reads. A delete rule leaves out the rows of partitions the same run's
//! maintenance expires first. Rows are estimated by the planner (EXPLAIN, which reads no
//! rows), or counted with `--exact`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::progress::group;
use crate::catalog::{self, Counting, Live, PartConfigRow};
use crate::cli::DbArgs;
use crate::db;
use crate::model::{Config, DeleteRule, Epoch, Policy};
use crate::plan::impact::{TimedChild, expired_children, survivors_from, timed_children};
use crate::policy::ident::{quote_ident, quote_literal};

/// How rows are told: the planner's estimate, or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    Estimated,
    Counted,
}

pub async fn dry_run(
    config: &Config,
    policies: &[&Policy],
    db_args: &DbArgs,
    rows: Rows,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let client = db::connect(db_args, super::APPLICATION_NAME).await?;
    client.batch_execute("BEGIN TRANSACTION READ ONLY").await?;
    let tables: Vec<catalog::PolicyTable> = policies
        .iter()
        .map(|p| catalog::PolicyTable::of(p))
        .collect();
    let live = match catalog::read_live(&Counting::new(&*client), config, &tables).await {
        Ok(live) => live,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(db::privileges::read_failure(&client, e).await);
        }
    };
    // A table that cannot be read (missing, not registered) is reported and the rest go
    // on: each table is read under a savepoint.
    let mut failed = 0;
    for policy in policies {
        client.batch_execute("SAVEPOINT retentionc_table").await?;
        match describe_table(&*client, &live, policy, rows, out).await {
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

/// What maintenance does with an expired child, by pg_partman's own rules.
fn expired_action(row: &PartConfigRow) -> String {
    match (&row.retention_schema, row.retention_keep_table) {
        (Some(schema), _) => format!("move to schema {schema}"),
        (None, true) => "detach".into(),
        (None, false) => "drop".into(),
    }
}

async fn describe_table<C: GenericClient + Sync>(
    client: &C,
    live: &Live,
    policy: &Policy,
    rows: Rows,
    out: &mut impl Write,
) -> Result<()> {
    let table = policy.table.to_string();
    let mut survivors: Option<String> = None;
    if policy.partitioning.is_some() {
        match live.part_config.iter().find(|r| r.parent_table == table) {
            None => writeln!(
                out,
                "{table}: not registered with pg_partman (apply the policy first): maintenance would fail"
            )?,
            Some(row) => survivors = describe_maintenance(client, live, row, rows, out).await?,
        }
    }
    let column = policy.partitioning.as_ref().map(|p| p.column.as_str());
    for rule in &policy.deletes {
        let from = survivors.as_deref().zip(column);
        let n = rule_rows(client, policy, rule, from, rows).await?;
        let how = match rows {
            Rows::Estimated => format!("~{} rows (planner estimate)", group(n)),
            Rows::Counted => format!("{} rows (counted)", group(n)),
        };
        writeln!(out, "{table}: delete {} would delete {how}", rule.name)?;
    }
    Ok(())
}

/// Prints what maintenance would do; returns the partition column's lowest surviving value
/// when partitions expire.
async fn describe_maintenance<C: GenericClient + Sync>(
    client: &C,
    live: &Live,
    row: &PartConfigRow,
    rows: Rows,
    out: &mut impl Write,
) -> Result<Option<String>> {
    let table = &row.parent_table;
    let epoch = Epoch::parse(&row.epoch).unwrap_or(Epoch::None);
    let children = live.children.get(table).map(Vec::as_slice).unwrap_or(&[]);
    let timed = timed_children(children, epoch);
    let ahead = timed.iter().filter(|c| c.from > live.now).count();
    let mut survivors = None;
    match (
        &row.retention,
        row.retention_parsed,
        row.partition_interval_parsed,
    ) {
        (None, _, _) => writeln!(
            out,
            "{table}: no retention in part_config: maintenance would remove nothing"
        )?,
        (Some(retention), Some(keep), Some(interval)) => {
            let expired = expired_children(children, epoch, live.now, &keep, &interval);
            writeln!(
                out,
                "{table}: maintenance would {} {} of {} partitions (retention {retention}, interval {})",
                expired_action(row),
                expired.len(),
                timed.len(),
                row.partition_interval
            )?;
            list_expired(client, table, &expired, rows, out).await?;
            survivors = survivors_from(&expired);
        }
        (Some(retention), _, _) => writeln!(
            out,
            "{table}: retention {retention} with partitions of {}: not a time-based set retentionc can read",
            row.partition_interval
        )?,
    }
    if (ahead as i64) < row.premake {
        writeln!(
            out,
            "{table}: maintenance would also create partitions: {ahead} ready ahead of now, premake {}",
            row.premake
        )?;
    }
    Ok(survivors)
}

/// The expired children (a long list shows its ends: the bounds say which ones they are),
/// with their rows, and the total.
async fn list_expired<C: GenericClient + Sync>(
    client: &C,
    table: &str,
    expired: &[TimedChild<'_>],
    rows: Rows,
    out: &mut impl Write,
) -> Result<()> {
    const ENDS: usize = 5;
    let shown: Vec<&TimedChild> = if expired.len() > 2 * ENDS + 2 {
        expired[..ENDS]
            .iter()
            .chain(expired[expired.len() - ENDS..].iter())
            .collect()
    } else {
        expired.iter().collect()
    };
    let mut total = 0i64;
    let mut unknown = 0;
    let mut counts = Vec::new();
    for child in expired {
        let n = match rows {
            Rows::Counted => {
                // The catalog names children with format('%I.%I'): already quoted.
                let sql = format!("SELECT count(*) FROM ONLY {}", child.child.name);
                Some(client.query_one(&sql, &[]).await?.get::<_, i64>(0))
            }
            Rows::Estimated => {
                (child.child.estimated_rows >= 0.0).then_some(child.child.estimated_rows as i64)
            }
        };
        match n {
            Some(n) => total += n,
            None => unknown += 1,
        }
        counts.push(n);
    }
    let index_of = |c: &TimedChild| expired.iter().position(|e| e.child == c.child);
    for (i, child) in shown.iter().enumerate() {
        if i == ENDS && shown.len() < expired.len() {
            writeln!(out, "{table}:   ... {} more", expired.len() - shown.len())?;
        }
        let n = index_of(child).and_then(|at| counts[at]);
        writeln!(
            out,
            "{table}:   {}  [{}, {})  {}",
            child.child.name,
            child.from.format("%Y-%m-%d %H:%M:%S%.f%:z"),
            child.to.format("%Y-%m-%d %H:%M:%S%.f%:z"),
            match (n, rows) {
                (Some(n), Rows::Estimated) => format!("~{} rows", group(n)),
                (Some(n), Rows::Counted) => format!("{} rows", group(n)),
                (None, _) => "rows unknown (never analyzed)".to_string(),
            }
        )?;
    }
    if !expired.is_empty() {
        let approx = if rows == Rows::Estimated { "~" } else { "" };
        writeln!(
            out,
            "{table}:   {approx}{} rows in all{}",
            group(total),
            if unknown > 0 {
                format!(" ({unknown} partitions never analyzed, not counted)")
            } else {
                String::new()
            }
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

/// The rows a rule would delete after maintenance: estimated (EXPLAIN) or counted.
/// `survivors_from`: (partition column, lowest surviving value) when partitions expire first.
async fn rule_rows<C: GenericClient + Sync>(
    client: &C,
    policy: &Policy,
    rule: &DeleteRule,
    survivors_from: Option<(&str, &str)>,
    rows: Rows,
) -> Result<i64> {
    let mut condition = rule_condition(policy, rule);
    if let Some((bound, column)) = survivors_from {
        condition.push_str(&format!(
            " AND {} >= {}",
            quote_ident(column),
            quote_literal(bound)
        ));
    }
    let context = || format!("reading delete rule {} of {}", rule.name, policy.table);
    match rows {
        Rows::Estimated => {
            let sql = format!(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {condition}",
                policy.table.quoted()
            );
            let row = client.query_one(&sql, &[]).await.with_context(context)?;
            let plan: serde_json::Value = row.get(0);
            Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64)
        }
        Rows::Counted => {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE {condition}",
                policy.table.quoted()
            );
            Ok(client
                .query_one(&sql, &[])
                .await
                .with_context(context)?
                .get(0))
        }
    }
}
