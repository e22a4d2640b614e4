//! `retentionc apply`: make the live database match the plan, safely, while it is in use.
//!
//! The command (this file) reads the project and a saved plan, shows the plan and asks
//! for confirmation; the executor (`executor`) applies it: one transaction per attempt,
//! lock_timeout and UTC pinned first, then retentionc's transaction-scoped advisory lock (so
//! two applies never interleave), then the plan is computed (or a reviewed plan's live
//! fingerprint checked) under that lock, the statements executed verbatim after the last
//! checks (`checks`, `guard`), the history row written (`history`), and COMMIT. A statement
//! that cannot get a lock within lock_timeout gives up, so writers queued behind it never
//! wait longer than that; the attempt rolls back and is retried with backoff, and the last
//! failure names the relation and the session holding it (`locks`).

pub mod checks;
pub mod error;
pub mod executor;
pub mod guard;
pub mod history;
pub mod locks;

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tokio_postgres::Client;

use crate::cli::ApplyArgs;
use crate::config::parse_lock_timeout;
use crate::db::interrupt::{self, Stop, Stopped};
use crate::db::privileges;
use crate::model::Project;
use crate::plan::Plan;
use crate::{db, policy};
use checks::refuse_data_loss;
pub use error::ApplyError;
pub use executor::{
    ADVISORY_LOCK_KEY, ApplyOptions, ApplyOutcome, DEFAULT_APPLY_WAIT, PlanSource, Progress,
    ReviewedOrigin, execute, execute_reporting,
};
use locks::LockWatch;

/// `retentionc apply`.
pub async fn command(config_path: &Path, args: &ApplyArgs) -> Result<ExitCode> {
    let on_terminal = std::io::stdin().is_terminal();
    if !args.auto_approve && !on_terminal {
        return Err(ApplyError::NeedsTerminal.into());
    }
    let project = policy::load_project(config_path)?;
    let saved = match &args.plan {
        Some(path) => Some(read_saved_plan(path)?),
        None => None,
    };
    let mut client = db::connect(&args.db, "retentionc").await?;
    let lock_timeout = Duration::from_millis(project.config.lock_timeout_ms);
    let watch = LockWatch::new(Some(args.db.clone()), lock_timeout);
    let options = ApplyOptions {
        allow_data_loss: args.allow_data_loss,
        apply_wait: apply_wait_from_env()?,
        convert: args.convert,
        ..ApplyOptions::default()
    };
    let mut out = std::io::stdout().lock();

    let source = match saved {
        Some(plan) => {
            check_policy_hashes(&project, &plan)?;
            write_plan(&mut out, &plan)?; // "No changes: ..." when there are none
            if !plan.has_changes() {
                return Ok(ExitCode::SUCCESS);
            }
            refuse_data_loss(&plan, options.allow_data_loss)?;
            if !args.auto_approve {
                confirm(&mut out)?;
            }
            PlanSource::Reviewed {
                plan,
                origin: ReviewedOrigin::SavedFile(
                    args.plan.clone().expect("saved plan has a path"),
                ),
            }
        }
        None if args.auto_approve => PlanSource::Live,
        None => {
            // Planned without the lock, and shown; a person may take minutes to answer, and
            // no transaction stays open meanwhile. The answer covers this plan only: the
            // locked transaction checks the database still has the fingerprint it was made at.
            let plan = plan_outside_transaction(&client, &project)
                .await
                .map_err(|e| privileges::apply_failure(after_lost_connection(&client, e)))?;
            write_plan(&mut out, &plan)?; // "No changes: ..." when there are none
            if !plan.has_changes() {
                return Ok(ExitCode::SUCCESS);
            }
            refuse_data_loss(&plan, options.allow_data_loss)?;
            confirm(&mut out)?;
            PlanSource::Reviewed {
                plan,
                origin: ReviewedOrigin::Confirmed,
            }
        }
    };

    let started = Instant::now();
    // Ctrl-C or SIGTERM from here on: nothing more is sent, and the server rolls back.
    let graceful = interrupt::graceful();
    let stopped = interrupt::until_interrupted(
        &client.control,
        Stop::CloseUnlessCommitting,
        execute_reporting(
            &client.client,
            Some(&mut client.notices),
            &project,
            source,
            &options,
            &watch,
            &mut out,
        ),
    )
    .await;
    drop(graceful);
    let outcome = match stopped {
        Stopped::Finished(result) => {
            result.map_err(|e| privileges::apply_failure(after_lost_connection(&client, e)))?
        }
        Stopped::Interrupted(Some(Ok(outcome))) => {
            write_outcome(&mut out, &outcome, started)?;
            eprintln!("interrupted after the apply had committed: its changes are in place");
            return Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED));
        }
        Stopped::Interrupted(_) if options.progress.committed().is_some() => {
            let (committed, of) = options.progress.committed().unwrap_or_default();
            eprintln!(
                "interrupted: transactions 1 to {committed} of the apply's {of} are committed, each leaving the database consistent; the one in progress was rolled back. Run `retentionc apply` again to continue where it stopped"
            );
            return Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED));
        }
        Stopped::Interrupted(Some(Err(e))) => {
            eprintln!("interrupted: the apply was not committed, nothing was changed ({e:#})");
            return Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED));
        }
        Stopped::Interrupted(None) => {
            eprintln!("{}", interrupted_without_answer(&client.control));
            return Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED));
        }
    };
    write_outcome(&mut out, &outcome, started)?;
    if options.convert {
        return convert_then_apply(&client, &project, args, &options, &watch, &mut out).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// `apply --convert`, once the other changes are applied: each conversion the plan holds
/// runs to its swap, then the table's own changes (retention settings, procedure, schedule)
/// are planned and applied, with `--auto-approve` (otherwise they are left for the next
/// apply, which shows them first).
async fn convert_then_apply(
    client: &db::Session,
    project: &Project,
    args: &ApplyArgs,
    options: &ApplyOptions,
    watch: &LockWatch,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let plan = crate::plan::make_plan(client, project).await?;
    let tables: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.kind == crate::plan::ChangeKind::ConvertTable)
        .map(|c| c.table.as_str())
        .collect();
    if tables.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let convert_options = crate::convert::Options {
        batch_rows: crate::convert::DEFAULT_BATCH_ROWS,
        lock_attempts: options.max_attempts.max(10),
        no_swap: false,
        lock_timeout_ms: project.config.lock_timeout_ms,
    };
    let graceful = interrupt::graceful();
    for table in tables {
        let policy = project
            .policy(table)
            .expect("a conversion is planned for a table a policy names");
        let reviewed = crate::convert::statements::Reviewed::load(project, policy)?;
        let converted = interrupt::until_interrupted(
            &client.control,
            Stop::CancelAndWait,
            crate::convert::run(client, project, policy, &reviewed, &convert_options, out),
        )
        .await;
        match converted {
            Stopped::Finished(result) => {
                result?;
            }
            Stopped::Interrupted(_) => {
                eprintln!(
                    "interrupted: the conversion of {table} keeps its committed batches; run `retentionc apply --convert` (or `retentionc convert {table}`) again to go on"
                );
                return Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED));
            }
        }
    }
    drop(graceful);
    if !args.auto_approve {
        writeln!(
            out,
            "Converted. Run `retentionc apply` to apply the converted tables' retention settings (shown first)."
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let outcome = execute(client, project, PlanSource::Live, options, watch, out)
        .await
        .map_err(|e| after_lost_connection(client, e))?;
    write_outcome(out, &outcome, started)?;
    Ok(ExitCode::SUCCESS)
}

fn write_outcome(out: &mut dyn Write, outcome: &ApplyOutcome, started: Instant) -> Result<()> {
    match outcome {
        // The plan printed under the lock said "No changes: ...".
        ApplyOutcome::NoChanges => {}
        ApplyOutcome::Applied {
            changes,
            statements,
            history_id,
            transactions: 1,
        } => writeln!(
            out,
            "Applied {changes} change(s), {statements} statement(s), in {} ms (apply_history id {history_id}).",
            started.elapsed().as_millis()
        )?,
        ApplyOutcome::Applied {
            changes,
            statements,
            history_id,
            transactions,
        } => writeln!(
            out,
            "Applied {changes} change(s), {statements} statement(s), in {transactions} transactions, in {} ms (apply_history id {history_id} is the last).",
            started.elapsed().as_millis()
        )?,
    }
    Ok(())
}

/// What an apply stopped by a signal, whose server did not answer, left behind.
pub(crate) fn interrupted_without_answer(control: &db::Control) -> String {
    if control.commit_in_flight() {
        "interrupted while the server was committing the apply, and no answer came: whether it was committed is unknown; `retentionc plan` shows what is in place".into()
    } else {
        format!(
            "interrupted: the apply was not committed, nothing was changed (the server rolls its transaction back once it sees the connection closed, or after {} s without an answer: idle_in_transaction_session_timeout)",
            control.stall_timeout().as_secs()
        )
    }
}

/// An error after the connection was lost says so, and what became of the apply.
pub(crate) fn after_lost_connection(session: &db::Session, error: anyhow::Error) -> anyhow::Error {
    let Some(lost) = session.lost() else {
        return error;
    };
    if let Some(ApplyError::PartlyApplied { .. }) = error.downcast_ref::<ApplyError>() {
        // It says itself which transactions stay.
        return error.context(lost);
    }
    if session.control.commit_in_flight() {
        error.context(format!(
            "{lost}; the COMMIT got no answer, so whether the apply was committed is unknown: `retentionc plan` shows what is in place"
        ))
    } else {
        error.context(format!(
            "{lost}; the apply was not committed, nothing was changed"
        ))
    }
}

fn read_saved_plan(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the saved plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|cause| ApplyError::NotAPlan {
        path: path.to_path_buf(),
        cause,
    })?;
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(ApplyError::PlanFormatVersion {
            path: path.to_path_buf(),
            found: plan.format_version,
            expected: crate::plan::FORMAT_VERSION,
        }
        .into());
    }
    Ok(plan)
}

/// A saved plan is applied with the project it was made from: the history records this
/// project's desired state, which must be the one the plan was computed for.
pub fn check_policy_hashes(project: &Project, plan: &Plan) -> Result<(), ApplyError> {
    let current: std::collections::BTreeMap<String, String> = project
        .policies
        .iter()
        .map(|p| (p.table.to_string(), p.hash()))
        .collect();
    if current != plan.policy_hashes {
        let differing: std::collections::BTreeSet<&String> = current
            .keys()
            .chain(plan.policy_hashes.keys())
            .filter(|t| current.get(*t) != plan.policy_hashes.get(*t))
            .collect();
        return Err(ApplyError::PoliciesChanged {
            tables: differing.into_iter().cloned().collect(),
        });
    }
    Ok(())
}

pub(crate) fn confirm(out: &mut dyn Write) -> Result<()> {
    write!(
        out,
        "\nDo you want to apply these changes? Only 'yes' is accepted.\n  Enter a value: "
    )?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(ApplyError::Cancelled.into());
    }
    Ok(())
}

pub(crate) fn apply_wait_from_env() -> Result<Duration> {
    match std::env::var("RETENTIONC_APPLY_WAIT") {
        Ok(text) if !text.trim().is_empty() => parse_lock_timeout(&text)
            .map(Duration::from_millis)
            .map_err(|e| anyhow!("RETENTIONC_APPLY_WAIT: {e}")),
        _ => Ok(DEFAULT_APPLY_WAIT),
    }
}

/// Plans in plan's own read-only snapshot (for the plan shown before confirmation).
async fn plan_outside_transaction(client: &Client, project: &Project) -> Result<Plan> {
    crate::plan::make_plan(client, project).await
}

pub(crate) fn write_plan(out: &mut dyn Write, plan: &Plan) -> Result<()> {
    let mut out = out;
    crate::plan::format::write_text_with(
        plan,
        &mut out,
        crate::plan::format::color_wanted(),
        false,
    )?;
    Ok(())
}
