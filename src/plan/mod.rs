//! Desired state vs live state -> the changes apply would make.
//!
//! `make_plan` reads the live database in one read-only snapshot (catalog), then calls
//! the pure `diff::diff`. Checks against the database live in `checks`, what a change
//! would expire in `impact`, the text/markdown/json writers in `format`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A plan: what apply would execute, and the live state it was computed against.
/// Saved with `plan --out` and applied exactly with `apply --plan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Format version of the saved plan and of `--format json`.
    pub format_version: u32,
    /// Hash of the live state the plan was computed against; apply --plan refuses to
    /// run when the database no longer has it.
    pub live_fingerprint: String,
    /// `schema.table` -> policy sha256, recorded in the apply history.
    pub policy_hashes: BTreeMap<String, String>,
    pub changes: Vec<Change>,
    /// The database's now() when planned (UTC); impact is computed against it.
    #[serde(default)]
    pub planned_at: Option<String>,
    /// Tables registered with pg_partman that no policy names and retentionc never
    /// managed: listed, left alone.
    #[serde(default)]
    pub unmanaged_tables: Vec<String>,
    /// How apply divides the changes into transactions to fit the server's lock table
    /// (`split`); absent when there is no change or the server was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_transactions: Option<Box<split::ApplyTransactions>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `schema.table`
    pub table: String,
    pub kind: ChangeKind,
    /// One line a reviewer reads: "retention 30 days -> 9 days".
    pub summary: String,
    /// True when the change would expire data that exists now.
    pub destructive: bool,
    /// What the next maintenance would expire, for destructive changes.
    pub impact: Option<Impact>,
    /// The statements that make the change, as (file, key) of the files under generated/,
    /// with their text for display. Apply executes the reviewed files' statements, never
    /// this text.
    pub statements: Vec<PlannedStatement>,
    /// part_config values that change (old -> new), for register/settings/drift changes.
    #[serde(default)]
    pub settings: Vec<SettingChange>,
    /// Unified diff of a replaced procedure body (live -> policy).
    #[serde(default)]
    pub body_diff: Option<String>,
    /// The live object was changed by hand since the last apply; apply restores it.
    #[serde(default)]
    pub drift: bool,
    /// More lines a reviewer reads under the summary (how existing partitions are
    /// adopted, which rights an owner lacks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// For a conversion of a plain table: its steps, size and time estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<ConversionPlan>,
}

/// What converting a plain table into a partitioned one takes (`ChangeKind::ConvertTable`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionPlan {
    /// What happens, in order, one sentence each.
    pub steps: Vec<String>,
    /// Size of the table with its indexes (bytes), and its rows (statistics).
    pub bytes: u64,
    pub estimated_rows: u64,
    /// Rough time of the copy, from the rows left to copy.
    pub estimated_seconds: u64,
    /// Primary key and unique constraints that gain the partition column:
    /// `orders_pkey (id) -> (id, created_at)`.
    pub keys_extended: Vec<String>,
    /// How far an earlier run got, when one was stopped: `page 120 of 4,000`.
    #[serde(default)]
    pub resumes: Option<String>,
}

/// One part_config value: the live one (None when the table is not registered yet) and
/// the one apply sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    pub column: String,
    pub old: Option<String>,
    pub new: String,
    /// Changed by hand since the last apply, while the policy did not change.
    #[serde(default)]
    pub drift: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Bootstrap,
    Register,
    RetentionSettings,
    Drift,
    CreateProcedure,
    ReplaceProcedure,
    DropProcedure,
    AddSchedule,
    ChangeSchedule,
    RemoveSchedule,
    PolicyRemoved,
    ConvertTable,
    /// Register a table that has partitions already, keeping them.
    AdoptTable,
    /// Grant a table's owner what running its retention needs.
    OwnerRights,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStatement {
    /// Key of the statement in its compiled file (`setup`, `retention`, ...).
    pub key: String,
    /// The file under generated/ that holds it (`public.events.sql`,
    /// `_removed/public.events.sql`).
    pub file: String,
    pub sql: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub partitions: u64,
    /// Lower bound of the oldest and upper bound of the newest expired partition (UTC text).
    pub from: Option<String>,
    pub to: Option<String>,
    /// From pg_class.reltuples (statistics), not a count.
    pub estimated_rows: u64,
    /// What happens to expired partitions: `drop`, `detach` or `archive`.
    #[serde(default)]
    pub expired: Option<String>,
    /// The partitions, oldest first.
    #[serde(default)]
    pub expired_partitions: Vec<ExpiredPartition>,
    /// Expired partitions never analysed (no row estimate; counted as 0 rows).
    #[serde(default)]
    pub partitions_without_statistics: u64,
    /// New or changed delete rules and the planner's estimate of the rows they match now.
    #[serde(default)]
    pub rules: Vec<RuleImpact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredPartition {
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub estimated_rows: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleImpact {
    pub rule: String,
    /// `EXPLAIN` row estimate of the rows the rule matches now.
    pub estimated_rows: Option<u64>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
    pub fn is_destructive(&self) -> bool {
        self.changes.iter().any(|c| c.destructive)
    }
}

pub mod adoption;
pub mod checks;
pub mod diff;
pub mod error;
pub mod format;
pub mod impact;
pub mod split;
pub mod volatility;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio_postgres::{Client, GenericClient};

use crate::catalog::{self, Counting, Live};
use crate::cli::{PlanArgs, PlanFormat};
use crate::model::Project;
use crate::policy::error::PolicyErrors;
use crate::policy::ident::{quote_ident, quote_literal};

pub use diff::{FORMAT_VERSION, RuleEstimates, RuleToEstimate, diff};
pub use error::PlanError;

/// A plan and what it was made from.
pub struct Planned {
    pub plan: Plan,
    pub live: Live,
    /// Statements sent to the database (BEGIN and COMMIT included).
    pub statements_sent: u32,
}

/// Plans `project` against the database: one read-only repeatable-read snapshot, a fixed
/// number of catalog queries plus one EXPLAIN per new or stricter delete rule.
pub async fn make_plan(client: &Client, project: &Project) -> Result<Plan> {
    Ok(make_plan_detailed(client, project).await?.plan)
}

pub async fn make_plan_detailed(client: &Client, project: &Project) -> Result<Planned> {
    let counting = Counting::new(client);
    counting
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("starting a read-only transaction")?;
    let result = plan_in(&counting, project).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = counting.batch_execute(end).await;
    let (plan, live) = result?;
    ended.context("ending the read-only transaction")?;
    Ok(Planned {
        plan,
        live,
        statements_sent: counting.sent(),
    })
}

/// Plans inside a transaction the caller holds (apply does, under its lock).
pub async fn make_plan_in<C: GenericClient + Sync>(client: &C, project: &Project) -> Result<Plan> {
    Ok(plan_in(&Counting::new(client), project).await?.0)
}

/// The live state as plan reads it.
pub async fn read_live<C: GenericClient + Sync>(client: &C, project: &Project) -> Result<Live> {
    let counting = Counting::new(client);
    let mut live = catalog::read_live(&counting, &project.config, &policy_tables(project)).await?;
    live.statements_sent = counting.sent();
    Ok(live)
}

fn policy_tables(project: &Project) -> Vec<catalog::PolicyTable> {
    project
        .policies
        .iter()
        .map(catalog::PolicyTable::of)
        .collect()
}

async fn plan_in<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    project: &Project,
) -> Result<(Plan, Live)> {
    let mut live = catalog::read_live(client, &project.config, &policy_tables(project)).await?;
    live.conversions = crate::convert::facts::read(client, project, &live).await?;
    // Checks first: an EXPLAIN over a missing table or column would only fail less clearly.
    let mut errors = checks::check(project, &live);
    // Before any EXPLAIN: planning a condition may already evaluate what it calls.
    errors.extend(volatility::check(client, project).await?);
    if !errors.is_empty() {
        return Err(PolicyErrors(errors).into());
    }
    let estimates = estimate_rules(client, project, &live).await?;
    live.statements_sent = client.sent();
    let plan = diff(project, &live, &estimates)?;
    Ok((plan, live))
}

/// One `EXPLAIN (FORMAT JSON)` per new or stricter delete rule: the planner's estimate of
/// the rows it would delete, leaving out partitions the same run's maintenance expires
/// first. A `where` that does not plan is an error at its key.
async fn estimate_rules<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    project: &Project,
    live: &Live,
) -> Result<RuleEstimates> {
    let mut estimates = RuleEstimates::new();
    for wanted in diff::rules_to_estimate(project, live) {
        let policy = project
            .policy(&wanted.table)
            .expect("a planned table has a policy");
        let (index, rule) = policy
            .deletes
            .iter()
            .enumerate()
            .find(|(_, r)| r.name.as_str() == wanted.rule)
            .expect("rule exists");
        let mut sql = format!(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}",
            policy.table.quoted(),
            rule.condition.parenthesized()
        );
        let older_than = rule.older_than.map(|i| i.to_string());
        if let (Some(_), Some(column)) = (&older_than, &rule.column) {
            sql.push_str(&format!(
                " AND {} < now() - $1::text::interval",
                quote_ident(column.as_str())
            ));
        }
        if let Some((column, bound)) = &wanted.survivors_from {
            sql.push_str(&format!(
                " AND {} >= {}",
                quote_ident(column),
                quote_literal(bound)
            ));
        }
        client.batch_execute("SAVEPOINT retentionc_explain").await?;
        let result = match &older_than {
            Some(interval) if rule.column.is_some() => client.query(&sql, &[interval]).await,
            _ => client.query(&sql, &[]).await,
        };
        match result {
            Ok(rows) => {
                client
                    .batch_execute("RELEASE SAVEPOINT retentionc_explain")
                    .await?;
                let json: serde_json::Value = rows[0].get(0);
                let rows = json[0]["Plan"]["Plan Rows"]
                    .as_f64()
                    .map(|r| r.round() as u64);
                estimates.insert((wanted.table.clone(), wanted.rule.clone()), rows);
            }
            Err(e) => {
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT retentionc_explain")
                    .await?;
                // A role that may not read the table: a missing privilege, not a bad condition.
                if crate::db::privileges::denial(&e).is_some() {
                    return Err(anyhow::Error::new(e).context(format!(
                        "estimating the rows delete rule {} of {} matches (EXPLAIN)",
                        wanted.rule, wanted.table
                    )));
                }
                let message = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                let key = format!("deletes[{index}].where");
                return Err(PolicyErrors(vec![checks::error_at(
                    policy,
                    &key,
                    format!(
                        "the condition does not run against {}: {message}",
                        wanted.table
                    ),
                )])
                .into());
            }
        }
    }
    Ok(estimates)
}

/// `retentionc plan`.
pub async fn command(config_path: &Path, args: &PlanArgs) -> Result<ExitCode> {
    let project = crate::policy::load_project(config_path)?;
    check_generated(&project, args.compile)?;
    let plan = plan_database(&project, &args.db, args.compile).await?;
    if let Some(path) = &args.out {
        let json = serde_json::to_string_pretty(&plan)? + "\n";
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    match args.format.unwrap_or(PlanFormat::Text) {
        PlanFormat::Text => format::write_text(&plan, &mut stdout, format::color_wanted())?,
        PlanFormat::Markdown => format::write_markdown(&plan, &mut stdout)?,
        PlanFormat::Json => format::write_json(&plan, &mut stdout)?,
    }
    use std::io::Write as _;
    stdout.flush()?;
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// One database's plan, as `plan` makes it: connect, plan in one read-only snapshot, and
/// (unless `planning_anyway`, `--compile`) check that generated/ holds every file the plan
/// takes statements from. Policy errors carry their source lines.
pub async fn plan_database(
    project: &Project,
    db: &crate::cli::DbArgs,
    planning_anyway: bool,
) -> Result<Plan> {
    let client = crate::db::connect(db, "retentionc plan").await?;
    let plan = match make_plan(&client, project).await {
        Ok(plan) => plan,
        Err(e) => {
            let e = crate::db::privileges::read_failure(&client, e).await;
            return Err(with_source_lines(e, project));
        }
    };
    if !planning_anyway {
        check_referenced_files(project, &plan)?;
    }
    Ok(plan)
}

/// A plan's statements are the reviewed files' statements: when generated/ is not what
/// compile writes, what a reviewer read and what would run differ, and plan fails (with
/// `--compile`, it plans from the policies anyway and says so).
pub fn check_generated(project: &Project, planning_anyway: bool) -> Result<()> {
    let stale = crate::compile::stale_files(project)?;
    if stale.is_empty() {
        return Ok(());
    }
    if planning_anyway {
        eprintln!(
            "warning: {} is not what `retentionc compile` writes ({}); planning from the policies (apply will refuse until generated/ is compiled and committed)",
            project.config.generated_dir.display(),
            stale.join(", ")
        );
        return Ok(());
    }
    Err(PlanError::GeneratedStale {
        dir: project.config.generated_dir.clone(),
        stale,
    }
    .into())
}

/// Every file a plan takes statements from must be in generated/ as compiled: a removed
/// policy's file under `_removed/` is made by compile only when generated/ still held
/// the policy's file, so say how to make it otherwise.
pub fn check_referenced_files(project: &Project, plan: &Plan) -> Result<(), PlanError> {
    let dir = project.config.generated_path();
    for change in &plan.changes {
        for statement in &change.statements {
            if !dir.join(&statement.file).is_file() {
                return Err(PlanError::RemovalFileMissing {
                    table: change.table.clone(),
                    path: project.config.generated_dir.join(&statement.file),
                });
            }
        }
    }
    Ok(())
}

/// Plan-time errors carry no source line; add it, as compile errors show one.
fn with_source_lines(error: anyhow::Error, project: &Project) -> anyhow::Error {
    match error.downcast::<PolicyErrors>() {
        Ok(mut errors) => {
            for e in &mut errors.0 {
                let text = std::fs::read_to_string(project.config.root.join(&e.file)).ok();
                e.line_text = text.and_then(|t| {
                    t.lines()
                        .nth(e.pos.line.saturating_sub(1) as usize)
                        .map(|l| l.trim_end().to_string())
                });
            }
            errors.into()
        }
        Err(other) => other,
    }
}
