//! `retentionc convert TABLE`: turns a plain table into the pg_partman range-partitioned
//! table its policy describes, online.
//!
//! The steps, each a statement of generated/<table>.convert.sql (routines in retentionc's
//! schema, compiled from the policy and reviewed like every other generated file):
//!
//! 1. prepare: a partitioned copy (the "twin") with the table's columns, defaults, identity,
//!    indexes, constraints (primary key and unique ones gain the partition column), grants,
//!    comments and owner, registered with pg_partman;
//! 2. capture: triggers record the key of every row written from then on;
//! 3. fill: rows are copied in committed batches, oldest first (ranges of an index on the
//!    partition column; heap pages when there is none), each committed with its progress, so
//!    a stopped conversion resumes at its last batch; rows the policy's retention would
//!    expire at once are left out; then the recorded writes are replayed;
//! 4. swap: in one short transaction under lock_timeout (retried), the last writes are
//!    replayed and the names swapped; the original is kept, renamed, until its owner drops
//!    it. Writes go on being recorded so that `--revert` loses nothing, until `--finish`.
//!
//! One job per module: `names` (what things are called), `facts` and `planned` (what plan
//! shows), `statements` (the reviewed statements), `fill` (steps 1 to 3), `swap` (step 4),
//! `undo` (`--revert`, `--finish`), `progress` (the bar).

pub mod error;
pub mod facts;
pub mod fill;
pub mod names;
pub mod planned;
pub mod progress;
pub mod statements;
pub mod swap;
pub mod undo;

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::cli::ConvertArgs;
use crate::db::interrupt::{self, Stop, Stopped};
use crate::db::lock_failure::lock_failure;
use crate::model::{Policy, Project, QualifiedName};
use crate::plan::ChangeKind;
use crate::policy::ident::quote_ident;
pub use error::ConvertError;
use statements::Reviewed;

/// Rows per committed batch unless `--batch-rows` says otherwise. When the table's rows are
/// not stored in time order, an oldest-first batch reads pages all over the table: fewer,
/// bigger batches read it fewer times (see docs/convert.md).
pub const DEFAULT_BATCH_ROWS: u32 = 100_000;

/// How a conversion runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per committed batch (about: a batch ends with every row of its last time value,
    /// or at a heap page).
    pub batch_rows: u32,
    /// Attempts at a step that needs a lock writers wait for (capture, swap, revert).
    pub lock_attempts: u32,
    /// Stop before the swap.
    pub no_swap: bool,
    pub lock_timeout_ms: u64,
}

/// Where a run left the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Copied and caught up; the swap is left for a later run.
    ReadyToSwap,
    Swapped,
}

/// `retentionc convert`.
pub async fn command(config_path: &Path, args: &ConvertArgs) -> Result<ExitCode> {
    let project = crate::policy::load_project(config_path)?;
    let table =
        QualifiedName::parse(&args.table).map_err(|reason| ConvertError::NotATableName {
            given: args.table.clone(),
            reason,
        })?;
    let policy = project
        .policy(&table.to_string())
        .filter(|p| p.partitioning.is_some())
        .ok_or_else(|| ConvertError::NoPolicy {
            table: table.clone(),
        })?;
    let reviewed = Reviewed::load(&project, policy)?;
    let session = crate::db::connect(&args.db, "retentionc convert").await?;
    let options = Options {
        batch_rows: args.batch_rows,
        lock_attempts: args.swap_attempts,
        no_swap: args.no_swap,
        lock_timeout_ms: project.config.lock_timeout_ms,
    };
    let mut out = std::io::stdout().lock();
    let graceful = interrupt::graceful();
    let work = async {
        if args.revert {
            undo::revert(&session, &project, policy, &reviewed, &options, &mut out).await
        } else if args.finish {
            undo::finish(&session, &project, policy, &reviewed, &options, &mut out).await
        } else {
            if check_planned(&session, &project, policy).await? {
                run(&session, &project, policy, &reviewed, &options, &mut out)
                    .await
                    .map(|_| ())
            } else {
                // Swapped by an earlier run, which may have stopped before this last step.
                swap::grant_owner_rights(&session, &reviewed, &options).await?;
                writeln!(
                    out,
                    "{table} is converted already (swapped); `retentionc convert {table} --finish` stops recording writes, `--revert` undoes it"
                )?;
                Ok(())
            }
        }
    };
    let stopped = interrupt::until_interrupted(&session.control, Stop::CancelAndWait, work).await;
    drop(graceful);
    match stopped {
        Stopped::Finished(result) => result.map(|_| ExitCode::SUCCESS),
        Stopped::Interrupted(_) => {
            eprintln!(
                "interrupted: committed batches stay; run `retentionc convert {table}` again to go on, or `--revert` to undo"
            );
            Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED))
        }
    }
}

/// The conversion must be what plan shows: the same checks (columns, types, pg_partman,
/// what stops a conversion), and a conversion change for this table. False when an earlier
/// run already swapped it.
async fn check_planned(client: &Client, project: &Project, policy: &Policy) -> Result<bool> {
    let plan = crate::plan::make_plan(client, project).await?;
    let table = policy.table.to_string();
    if plan.changes.iter().any(|c| c.kind == ChangeKind::Bootstrap) {
        return Err(ConvertError::SchemaMissing {
            schema: project.config.schema.to_string(),
        }
        .into());
    }
    if plan
        .changes
        .iter()
        .any(|c| c.table == table && c.kind == ChangeKind::ConvertTable)
    {
        return Ok(true);
    }
    match phase(client, project, &table).await?.as_deref() {
        Some("swapped") => Ok(false),
        Some("finished") => Err(ConvertError::AlreadyFinished { table }.into()),
        _ => Err(ConvertError::NotPlain { table }.into()),
    }
}

/// Runs a conversion to the swap (or to just before it with `no_swap`), from wherever an
/// earlier run stopped. Called by `convert` and by `apply --convert`.
pub async fn run(
    client: &Client,
    project: &Project,
    policy: &Policy,
    reviewed: &Reviewed,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let table = policy.table.to_string();
    take_conversion_lock(client, &table).await?;
    create_routines(client, reviewed).await?;
    fill::prepare_and_capture(client, project, &table, reviewed, options, out).await?;
    fill::fill(client, project, &table, reviewed, options, out).await?;
    fill::catch_up(client, &table, reviewed).await?;
    if options.no_swap {
        writeln!(
            out,
            "{table}: copied and caught up; writes are still recorded. Run `retentionc convert {table}` to swap."
        )?;
        return Ok(Outcome::ReadyToSwap);
    }
    swap::swap(client, &table, reviewed, options, out).await?;
    let names = names::ConversionNames::of(&policy.table);
    writeln!(
        out,
        "{table}: converted; the original is {}.{} (retentionc never drops it). Writes are recorded for `retentionc convert {table} --revert` until `--finish`.",
        policy.table.schema, names.retired
    )?;
    Ok(Outcome::Swapped)
}

/// Creates or replaces the conversion's routines (one transaction).
pub async fn create_routines(client: &Client, reviewed: &Reviewed) -> Result<()> {
    client.batch_execute("BEGIN").await?;
    for key in statements::ROUTINE_KEYS {
        if let Err(e) = client.batch_execute(reviewed.get(key)).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(ConvertError::CreateRoutine { key, cause: e }.into());
        }
    }
    client.batch_execute("COMMIT").await?;
    Ok(())
}

/// Where `table`'s conversion stands, if one was ever started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    pub phase: String,
    /// A batch of the fill has committed.
    pub fill_started: bool,
    /// Where the fill stands, for people (`page 120 of 4000`, `created_at up to ...`).
    pub progress: Option<String>,
    /// The share of the fill done, 0 to 1.
    pub progress_share: f64,
}

pub(crate) async fn state(
    client: &Client,
    project: &Project,
    table: &str,
) -> Result<Option<State>> {
    let state = format!(
        "{}.\"conversions\"",
        quote_ident(project.config.schema.as_str())
    );
    let exists: bool = client
        .query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&state])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT phase, next_block > 0 OR copied_through IS NOT NULL, progress, progress_share
                   FROM {state} WHERE table_name = $1"
            ),
            &[&table],
        )
        .await?;
    Ok(row.map(|r| State {
        phase: r.get(0),
        fill_started: r.get(1),
        progress: r.get(2),
        progress_share: r.get(3),
    }))
}

pub(crate) async fn phase(
    client: &Client,
    project: &Project,
    table: &str,
) -> Result<Option<String>> {
    Ok(state(client, project, table).await?.map(|s| s.phase))
}

/// `lock_timeout` as the steps take it.
pub(crate) fn lock_timeout_text(options: &Options) -> String {
    format!("{}ms", options.lock_timeout_ms)
}

/// Runs `attempt` until it succeeds, retrying (with backoff) a failure to get a lock within
/// lock_timeout, at most `attempts` times in all. Writers queued behind a lock the step
/// waits for wait no longer than lock_timeout, since the step gives up then.
pub(crate) async fn with_lock_retries<T, F, Fut>(
    what: &str,
    attempts: u32,
    lock_timeout_ms: u64,
    mut attempt: F,
) -> Result<T, ConvertError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut backoff = Duration::from_millis(500);
    for n in 1..=attempts {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if lock_failure(&e).is_some() && n < attempts => {
                eprintln!(
                    "{what}: attempt {n} of {attempts} could not get its lock within lock_timeout ({lock_timeout_ms} ms): another session holds the table; nothing changed, retrying in {} ms",
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) if lock_failure(&e).is_some() => {
                return Err(ConvertError::GaveUp {
                    step: what.to_string(),
                    attempts,
                    lock_timeout_ms,
                });
            }
            Err(e) => return Err(database_error(what, e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// `what failed: message; detail; hint: ...`.
pub(crate) fn database_error(what: &str, e: tokio_postgres::Error) -> ConvertError {
    ConvertError::step_failed(what, e)
}

/// One conversion of a table at a time: a session advisory lock, held until the session
/// ends (a killed run's ends with it).
async fn take_conversion_lock(client: &Client, table: &str) -> Result<()> {
    let digest = Sha256::digest(format!("retentionc convert {table}").as_bytes());
    let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let taken: bool = client
        .query_one("SELECT pg_catalog.pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0);
    if !taken {
        return Err(ConvertError::AnotherConvertRunning {
            table: table.to_string(),
        }
        .into());
    }
    Ok(())
}
