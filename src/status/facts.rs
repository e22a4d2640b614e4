//! What `status` reads, in one read-only snapshot, with set-based queries: the catalog's
//! live state (`catalog::read_live`: part_config, the tables, their children with
//! bounds, retentionc's objects, the last apply), then one statement per kind of per-table
//! fact: the oldest row of every retention table (index-backed `min()`s, the oldest child
//! first), whether rows older than each delete rule allows remain (`EXISTS`, never a
//! count), rows in every default partition (capped), then one query for the last run and
//! the last successful run of every step (`LATERAL` over run_log's index) and one for when
//! each table was first applied. The per-table queries of one kind are handed to
//! retentionc's `read_facts()` in one call, which runs each and releases its locks once
//! read; the number of statements does not depend on the number of tables. Before apply
//! has made `read_facts()`, they are sent as `UNION ALL`s of 100 tables each. Nothing here
//! writes; nothing here decides.
//!
//! A query that fails (a `where` that no longer plans, a column dropped) is that table's or
//! rule's error; the rest are still checked.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::catalog::{self, Counting, Live};
use crate::model::{Config, Epoch, Project};
use crate::plan::impact::{bound_time, cutoff, range_bounds};
use crate::policy::ident::{quote_ident, quote_literal};

use super::window;

/// Most rows counted in a default partition: enough to say "some" or "many", bounded
/// work whatever it holds.
pub const DEFAULT_ROWS_CAP: i64 = 1000;

/// Branches of one `UNION ALL` statement (see [`union_all`]).
const BRANCHES_PER_STATEMENT: usize = 100;

/// retentionc's routine that runs status's per-table queries in one call.
const READ_FACTS: &str = "read_facts";

/// A fact that could not be read for one table or rule (the message says why).
pub type Probe<T> = Result<T, String>;

/// Everything status knows, as plain data.
#[derive(Debug, Default)]
pub struct Facts {
    pub live: Live,
    /// Oldest row per retention table (None: empty).
    pub oldest: BTreeMap<String, Probe<Option<DateTime<Utc>>>>,
    /// Per (table, rule): rows matching the rule older than it allows remain. For a rule
    /// without `older_than`: rows matching it remain at all.
    pub overdue: BTreeMap<(String, String), Probe<bool>>,
    /// Rows in each table's default partition, at most [`DEFAULT_ROWS_CAP`].
    pub default_rows: BTreeMap<String, Probe<i64>>,
    /// Per (table, step): the last run and the start of the last successful one.
    pub runs: BTreeMap<(String, String), StepRuns>,
    /// When an apply first recorded each table's policy.
    pub first_applied: BTreeMap<String, DateTime<Utc>>,
    /// Statements sent, BEGIN and ROLLBACK included.
    pub statements_sent: u32,
}

#[derive(Debug, Clone, Default)]
pub struct StepRuns {
    pub last: Option<RunRow>,
    pub last_ok_started: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub run_by: String,
    pub partitions_created: i32,
    pub partitions_removed: i32,
    pub rows_deleted: i64,
    pub error: Option<String>,
}

/// The run_log steps of a policy: `maintenance` for a partitioned table, then
/// `delete:<rule>` per rule.
pub fn steps(policy: &crate::model::Policy) -> Vec<String> {
    let mut steps = Vec::new();
    if policy.partitioning.is_some() {
        steps.push("maintenance".to_string());
    }
    steps.extend(policy.deletes.iter().map(|r| format!("delete:{}", r.name)));
    steps
}

/// Reads every fact, in one read-only repeatable-read snapshot.
pub async fn read(client: &Client, project: &Project) -> Result<Facts> {
    let counting = Counting::new(client);
    counting
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("starting a read-only transaction")?;
    let result = read_in(&counting, project).await;
    let _ = counting.batch_execute("ROLLBACK").await;
    let mut facts = result?;
    facts.statements_sent = counting.sent();
    Ok(facts)
}

async fn read_in(client: &Counting<'_, Client>, project: &Project) -> Result<Facts> {
    let tables: Vec<catalog::PolicyTable> = project
        .policies
        .iter()
        .map(catalog::PolicyTable::of)
        .collect();
    let live = catalog::read_live(client, &project.config, &tables).await?;
    let tables: Vec<String> = tables.into_iter().map(|t| t.name).collect();
    let reader = Reader {
        client,
        read_facts: live
            .routines
            .iter()
            .any(|r| r.name == READ_FACTS && r.kind == "f" && r.arguments == "p_queries text[]")
            .then(|| {
                format!(
                    "{}.{}",
                    quote_ident(project.config.schema.as_str()),
                    quote_ident(READ_FACTS)
                )
            }),
    };
    let oldest = oldest_rows(&reader, project, &live).await?;
    let overdue = overdue_rules(&reader, project, &live).await?;
    let default_rows = default_rows(&reader, &live, &tables).await?;
    let mut facts = Facts {
        live,
        oldest,
        overdue,
        default_rows,
        ..Facts::default()
    };
    if facts.live.bootstrap.run_log {
        facts.runs = runs(client, &project.config, project).await?;
    }
    if facts.live.bootstrap.apply_history {
        facts.first_applied = first_applied(client, &project.config, &tables).await?;
    }
    Ok(facts)
}

/// `column` as a point in time: converted from Unix time for epoch tables.
fn as_time(column: &str, epoch: Epoch) -> String {
    match epoch {
        Epoch::None => format!("{column}::timestamptz"),
        Epoch::Seconds => format!("to_timestamp({column})"),
        Epoch::Milliseconds => format!("to_timestamp({column} / 1000.0)"),
        Epoch::Microseconds => format!("to_timestamp({column} / 1000000.0)"),
        Epoch::Nanoseconds => format!("to_timestamp({column} / 1000000000.0)"),
    }
}

/// A condition `column < cutoff` that the column's index can answer: for epoch columns
/// the cutoff is turned into the column's integer units, never the column into a time.
fn older_than(column: &str, epoch: Epoch, cutoff: &str) -> String {
    let units = match epoch {
        Epoch::None => return format!("{column} < {cutoff}"),
        Epoch::Seconds => "1",
        Epoch::Milliseconds => "1000",
        Epoch::Microseconds => "1000000",
        Epoch::Nanoseconds => "1000000000",
    };
    format!("{column} < (extract(epoch FROM {cutoff}) * {units})::int8")
}

/// A column of a table that exists, by name.
fn has_column(live: &Live, table: &str, column: &str) -> bool {
    live.tables
        .get(table)
        .is_some_and(|t| t.column(column).is_some())
}

/// One per-table query: its key, and a scalar expression for the fact (self-contained:
/// no parameters).
struct Branch<K> {
    key: K,
    expr: String,
}

/// Runs the per-table queries of one kind of fact.
struct Reader<'a, 'c> {
    client: &'a Counting<'c, Client>,
    /// retentionc's `read_facts()`, quoted, once apply has made it.
    read_facts: Option<String>,
}

impl Reader<'_, '_> {
    /// Each branch's value as text, read back by `parse` (None: a value it cannot read),
    /// or the branch's own error. A missing privilege fails the whole read, so that status
    /// can say which GRANT it needs.
    async fn read<K: Ord + Clone, T>(
        &self,
        branches: Vec<Branch<K>>,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<BTreeMap<K, Probe<Option<T>>>> {
        let values = match &self.read_facts {
            Some(routine) => self.in_one_call(routine, &branches).await?,
            None => self.union_all(&branches).await?,
        };
        Ok(branches
            .into_iter()
            .zip(values)
            .map(|(branch, value)| {
                let value = value.and_then(|text| match text {
                    None => Ok(None),
                    Some(text) => parse(&text)
                        .map(Some)
                        .ok_or_else(|| format!("unreadable value {text:?}")),
                });
                (branch.key, value)
            })
            .collect())
    }

    /// One call of `read_facts()` with every branch's query.
    async fn in_one_call<K>(
        &self,
        routine: &str,
        branches: &[Branch<K>],
    ) -> Result<Vec<Probe<Option<String>>>> {
        if branches.is_empty() {
            return Ok(Vec::new());
        }
        let queries: Vec<String> = branches
            .iter()
            .map(|b| format!("SELECT ({})::text", b.expr))
            .collect();
        let rows = self
            .client
            .query(
                &format!("SELECT query, value, error FROM {routine}($1::text[]) ORDER BY query"),
                &[&queries],
            )
            .await
            .context("reading the managed tables")?;
        anyhow::ensure!(
            rows.len() == branches.len(),
            "{routine} answered {} of {} queries",
            rows.len(),
            branches.len()
        );
        Ok(rows
            .iter()
            .map(|row| match row.get::<_, Option<serde_json::Value>>(2) {
                Some(error) => Err(crate::run::ServerError::from_json(&error).describe()),
                None => Ok(row.get(1)),
            })
            .collect())
    }

    /// `SELECT i, <expr> UNION ALL ...` over the branches, [`BRANCHES_PER_STATEMENT`] at a
    /// time (PostgreSQL plans one very long `UNION ALL` in more than linear time). Each
    /// statement runs under a savepoint that is rolled back once its rows are read: that
    /// releases the locks it took on the tables, so a status of thousands of tables never
    /// holds them all at once (the lock table is shared by the whole server), while the
    /// snapshot stays the transaction's. When a statement fails, each of its branches runs
    /// alone, so that one bad branch is reported as that branch's error.
    async fn union_all<K>(&self, branches: &[Branch<K>]) -> Result<Vec<Probe<Option<String>>>> {
        const RESTART: &str = "ROLLBACK TO SAVEPOINT retentionc_status";
        let client = self.client;
        let mut out = Vec::with_capacity(branches.len());
        for chunk in branches.chunks(BRANCHES_PER_STATEMENT) {
            client
                .batch_execute("SAVEPOINT retentionc_status")
                .await
                .context("starting a savepoint")?;
            let sql = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| format!("SELECT {i}::int4, ({})::text", b.expr))
                .collect::<Vec<_>>()
                .join("\nUNION ALL ");
            match client.query(&sql, &[]).await {
                Ok(rows) => {
                    let mut values = vec![None; chunk.len()];
                    for row in &rows {
                        values[row.get::<_, i32>(0) as usize] = row.get(1);
                    }
                    out.extend(values.into_iter().map(Ok));
                }
                Err(_) => {
                    for branch in chunk {
                        client.batch_execute(RESTART).await?;
                        let one = format!("SELECT ({})::text", branch.expr);
                        out.push(match client.query(&one, &[]).await {
                            Ok(rows) => Ok(rows.first().and_then(|row| row.get(0))),
                            // Not a fact about the table: status cannot tell, and says
                            // which GRANT it needs.
                            Err(e)
                                if e.code()
                                    == Some(
                                        &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
                                    ) =>
                            {
                                return Err(
                                    anyhow::Error::new(e).context("reading the managed tables")
                                );
                            }
                            Err(e) => Err(crate::run::describe_db_error(&e)),
                        });
                    }
                }
            }
            client
                .batch_execute(
                    "ROLLBACK TO SAVEPOINT retentionc_status; RELEASE SAVEPOINT retentionc_status",
                )
                .await?;
        }
        Ok(out)
    }
}

/// A timestamptz as PostgreSQL prints it with `DateStyle` ISO (every session's), e.g.
/// `2026-11-30 12:00:00.5+00`.
fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The oldest row of every table whose policy has partitioned retention. First the
/// oldest child alone (by its bounds), for every table at once: the oldest row lives there
/// whenever it holds any, and one child with its index is cheap to plan and to lock. Then,
/// for the tables whose oldest child is empty, `min()` over the parent (each partition's
/// index answers it). Rows in the default partition are their own check.
async fn oldest_rows(
    reader: &Reader<'_, '_>,
    project: &Project,
    live: &Live,
) -> Result<BTreeMap<String, Probe<Option<DateTime<Utc>>>>> {
    let mut first_children = Vec::new();
    let mut parents = BTreeMap::new();
    for policy in &project.policies {
        let (Some(partitioning), Some(_)) = (&policy.partitioning, &policy.retention) else {
            continue;
        };
        let table = policy.table.to_string();
        if !has_column(live, &table, partitioning.column.as_str()) {
            continue;
        }
        let oldest = as_time(
            &format!("min({})", quote_ident(partitioning.column.as_str())),
            partitioning.epoch,
        );
        let first_child = live
            .children
            .get(&table)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let (from, to) = range_bounds(&c.bound)?;
                Some((bound_time(&from, partitioning.epoch)?, to))
            })
            .min_by_key(|(from, _)| *from);
        if let Some((_, to)) = first_child {
            // Through the parent, so that its privileges apply; the bound prunes the
            // scan to the oldest child.
            first_children.push(Branch {
                key: table.clone(),
                expr: format!(
                    "(SELECT {oldest} FROM {} WHERE {} < {})",
                    policy.table.quoted(),
                    quote_ident(partitioning.column.as_str()),
                    quote_literal(&to)
                ),
            });
        }
        parents.insert(
            table.clone(),
            Branch {
                key: table,
                expr: format!("(SELECT {oldest} FROM {})", policy.table.quoted()),
            },
        );
    }
    let mut found = reader.read(first_children, parse_timestamptz).await?;
    found.retain(|_, oldest: &mut Probe<Option<DateTime<Utc>>>| matches!(oldest, Ok(Some(_))));
    let rest: Vec<Branch<String>> = parents
        .into_iter()
        .filter(|(table, _)| !found.contains_key(table))
        .map(|(_, branch)| branch)
        .collect();
    found.extend(reader.read(rest, parse_timestamptz).await?);
    Ok(found)
}

/// For every delete rule of a table that exists: `EXISTS` a row matching it that is
/// older than the rule allows (`older_than` + the schedule's period); for a rule without
/// `older_than`, a row matching it at all.
async fn overdue_rules(
    reader: &Reader<'_, '_>,
    project: &Project,
    live: &Live,
) -> Result<BTreeMap<(String, String), Probe<bool>>> {
    let mut branches = Vec::new();
    for policy in &project.policies {
        let table = policy.table.to_string();
        if !live.tables.contains_key(&table) {
            continue;
        }
        for rule in &policy.deletes {
            let key = (table.clone(), rule.name.to_string());
            let mut condition = rule.condition.parenthesized();
            if let Some(allowed) = window::rule_allowed(policy, rule) {
                let Some(column) = window::rule_column(policy, rule) else {
                    continue;
                };
                if !has_column(live, &table, column.as_str()) {
                    continue;
                }
                let epoch = match &policy.partitioning {
                    Some(p) if p.column == *column => p.epoch,
                    _ => Epoch::None,
                };
                let cutoff = format!(
                    "{}::timestamptz",
                    quote_literal(&cutoff(live.now, &allowed).to_rfc3339())
                );
                condition = format!(
                    "{} AND {condition}",
                    older_than(&quote_ident(column.as_str()), epoch, &cutoff)
                );
            }
            branches.push(Branch {
                key,
                expr: format!(
                    "EXISTS (SELECT 1 FROM {} WHERE {condition})",
                    policy.table.quoted()
                ),
            });
        }
    }
    let found = reader.read(branches, parse_bool).await?;
    Ok(found
        .into_iter()
        .map(|(key, overdue)| (key, overdue.map(|o| o == Some(true))))
        .collect())
}

/// Rows in the default partition of each table (found by its `DEFAULT` bound), at most
/// [`DEFAULT_ROWS_CAP`].
async fn default_rows(
    reader: &Reader<'_, '_>,
    live: &Live,
    tables: &[String],
) -> Result<BTreeMap<String, Probe<i64>>> {
    let mut branches = Vec::new();
    for table in tables {
        let Some(default) = live
            .children
            .get(table)
            .and_then(|children| children.iter().find(|c| c.bound == "DEFAULT"))
        else {
            continue;
        };
        // `name` is `format('%I.%I', ...)` from the catalog: already quoted.
        branches.push(Branch {
            key: table.clone(),
            expr: format!(
                "(SELECT count(*) FROM (SELECT FROM ONLY {} LIMIT {DEFAULT_ROWS_CAP}) s)",
                default.name
            ),
        });
    }
    let found = reader
        .read(branches, |text| text.parse::<i64>().ok())
        .await?;
    Ok(found
        .into_iter()
        .map(|(key, rows)| (key, rows.map(|n| n.unwrap_or(0))))
        .collect())
}

/// The last run and the last successful run of every step of every policy, each found
/// through run_log's (table_name, started_at DESC) index.
async fn runs(
    client: &Counting<'_, Client>,
    config: &Config,
    project: &Project,
) -> Result<BTreeMap<(String, String), StepRuns>> {
    let (mut tables, mut steps_of): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for policy in &project.policies {
        for step in steps(policy) {
            tables.push(policy.table.to_string());
            steps_of.push(step);
        }
    }
    let log = format!("{}.\"run_log\"", quote_ident(config.schema.as_str()));
    let sql = format!(
        "SELECT k.t, k.s, last.outcome, last.started_at, last.finished_at, last.run_by,
                last.partitions_created, last.partitions_removed, last.rows_deleted,
                coalesce(last.detail->>'error',
                         (SELECT 'locked: ' || string_agg(x->>'partition', ', ')
                            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(last.detail->'skipped') = 'array'
                                                           THEN last.detail->'skipped' END) x)),
                ok.started_at
           FROM unnest($1::text[], $2::text[]) AS k(t, s)
           LEFT JOIN LATERAL (
                SELECT r.* FROM {log} r WHERE r.table_name = k.t AND r.step = k.s
                 ORDER BY r.started_at DESC, r.id DESC LIMIT 1) last ON true
           LEFT JOIN LATERAL (
                SELECT r.started_at FROM {log} r
                 WHERE r.table_name = k.t AND r.step = k.s AND r.outcome = 'ok'
                 ORDER BY r.started_at DESC LIMIT 1) ok ON true"
    );
    let rows = client
        .query(&sql, &[&tables, &steps_of])
        .await
        .context("reading run_log")?;
    let mut out = BTreeMap::new();
    for r in &rows {
        let last = r.get::<_, Option<String>>(2).map(|outcome| RunRow {
            outcome,
            started_at: r.get(3),
            finished_at: r.get(4),
            run_by: r.get(5),
            partitions_created: r.get(6),
            partitions_removed: r.get(7),
            rows_deleted: r.get(8),
            error: r.get(9),
        });
        out.insert(
            (r.get(0), r.get(1)),
            StepRuns {
                last,
                last_ok_started: r.get(10),
            },
        );
    }
    Ok(out)
}

/// When an apply first recorded each table's policy (apply_history.policy_hashes).
async fn first_applied(
    client: &Counting<'_, Client>,
    config: &Config,
    tables: &[String],
) -> Result<BTreeMap<String, DateTime<Utc>>> {
    let sql = format!(
        "SELECT k, min(h.applied_at)
           FROM {}.\"apply_history\" h, jsonb_object_keys(h.policy_hashes) AS k
          WHERE k = ANY($1::text[])
          GROUP BY k",
        quote_ident(config.schema.as_str())
    );
    let rows = client
        .query(&sql, &[&tables])
        .await
        .context("reading apply_history")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_cutoffs_are_compared_in_the_columns_units() {
        assert_eq!(older_than("\"ts\"", Epoch::None, "$c"), "\"ts\" < $c");
        assert_eq!(
            older_than("\"ts\"", Epoch::Milliseconds, "$c"),
            "\"ts\" < (extract(epoch FROM $c) * 1000)::int8"
        );
        assert_eq!(as_time("min(x)", Epoch::Seconds), "to_timestamp(min(x))");
    }
}
