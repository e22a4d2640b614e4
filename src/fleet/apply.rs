//! `apply --env NAME` / `apply --all`: databases one at a time, in the order of
//! retentionc.yaml (a canary listed first is applied first), each through apply's own
//! executor (its transaction, advisory lock, checks and history, exactly as a single
//! apply). The first database that fails or is refused stops the rest unless
//! `--keep-going`; a summary says what was applied where.
//!
//! With `--plan FILE` (a document `plan --env/--all --out` saved), each database is
//! applied only when its saved plan is still the plan of now, the check apply makes for
//! one database; a database the file has no plan for, or whose planning failed, is refused.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};

use super::plan::{DatabasePlan, FleetPlan, Report, plan_all, read_fleet_plan};
use super::report::{self, first_line};
use super::targets::{Fleet, Target};
use crate::apply::checks::{refuse_data_loss, reviewed_plan_mismatch};
use crate::apply::locks::LockWatch;
use crate::apply::{
    self, ApplyOptions, ApplyOutcome, PlanSource, Progress, ReviewedOrigin, check_policy_hashes,
    execute,
};
use crate::cli::{ApplyArgs, PlanFormat};
use crate::db::interrupt::{Stop, Stopped};
use crate::db::{self, interrupt};
use crate::model::Project;

/// What became of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        changes: usize,
        statements: usize,
        history_id: i64,
    },
    NoChanges,
    /// Not applied, nothing changed: no reviewed plan for it, or the plan is not the plan
    /// of now.
    Refused(String),
    Failed(String),
    /// Ctrl-C or SIGTERM while it was applied; what became of it.
    Interrupted(String),
    /// Not tried: an earlier database failed or was refused.
    NotAttempted,
}

impl Outcome {
    /// Whether it stops the databases after it (unless `--keep-going`).
    fn stops(&self) -> bool {
        matches!(self, Outcome::Refused(_) | Outcome::Failed(_))
    }

    fn describe(&self) -> String {
        match self {
            Outcome::Applied {
                changes,
                statements,
                history_id,
            } => format!(
                "applied {}, {} (apply_history id {history_id})",
                report::count(*changes, "change", "changes"),
                report::count(*statements, "statement", "statements")
            ),
            Outcome::NoChanges => "no changes".into(),
            Outcome::Refused(why) => format!("refused: {}", first_line(why)),
            Outcome::Failed(why) => format!("failed: {}", first_line(why)),
            Outcome::Interrupted(what) => format!("interrupted: {}", first_line(what)),
            Outcome::NotAttempted => "not attempted (stopped after a failure)".into(),
        }
    }
}

/// Where one database's changes come from: nothing to do, a refusal, or a plan source.
enum Source {
    Nothing,
    Refused(String),
    Apply(PlanSource),
}

/// `retentionc apply --env NAME` / `--all`.
pub async fn command(config_path: &Path, args: &ApplyArgs) -> Result<ExitCode> {
    if args.convert {
        bail!(
            "--convert works on one database at a time (a conversion can take hours, and apply goes on to the next database only when it ends): run `retentionc apply --convert --database-url ...` for each database instead (nothing was changed)"
        );
    }
    if !args.auto_approve && !std::io::stdin().is_terminal() {
        bail!(
            "apply asks for confirmation, and stdin is not a terminal: pass --auto-approve to apply without asking (nothing was changed)"
        );
    }
    let fleet = Fleet::load(config_path, &args.fleet, &args.db).await?;
    // A stale folder would fail every database at its reviewed-file check: refuse first.
    for chosen in &fleet.environments {
        crate::plan::check_generated(&chosen.project, false)?;
    }
    let options = ApplyOptions {
        allow_data_loss: args.allow_data_loss,
        apply_wait: apply::apply_wait_from_env()?,
        ..ApplyOptions::default()
    };
    let mut out = std::io::stdout().lock();
    let sources = match &args.plan {
        Some(path) => {
            let saved = read_fleet_plan(path)?;
            let sources = saved_sources(&fleet, &saved, path, &options);
            if !args.auto_approve {
                show_saved(&fleet.targets, &saved, &mut out)?;
                apply::confirm(&mut out)?;
            }
            sources
        }
        None if args.auto_approve => fleet
            .targets
            .iter()
            .map(|_| Source::Apply(PlanSource::Live))
            .collect(),
        None => {
            let sources = confirmed_sources(&fleet, args, &options, &mut out).await?;
            if sources.iter().all(|s| matches!(s, Source::Nothing)) {
                return Ok(ExitCode::SUCCESS);
            }
            apply::confirm(&mut out)?;
            sources
        }
    };

    // Ctrl-C or SIGTERM: the database being applied stops as apply stops; no other starts.
    let _graceful = interrupt::graceful();
    let count = fleet.targets.len();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut stopped = false;
    for ((index, target), source) in fleet.targets.iter().enumerate().zip(sources) {
        if stopped || interrupt::interrupted() {
            outcomes.push(if interrupt::interrupted() {
                Outcome::Interrupted("not started".into())
            } else {
                Outcome::NotAttempted
            });
            continue;
        }
        writeln!(
            out,
            "\n[{}/{count}] {}",
            index + 1,
            report::text_heading(target)
        )?;
        let project = fleet.project(target);
        // apply's executor shows the plan it applies ("No changes: ..." when none).
        let executed = matches!(source, Source::Apply(_));
        let outcome = match source {
            Source::Nothing => Outcome::NoChanges,
            Source::Refused(why) => Outcome::Refused(why),
            Source::Apply(source) => {
                apply_target(target, &project, source, &options, &mut out).await
            }
        };
        match &outcome {
            Outcome::Refused(why) => writeln!(out, "refused: {why}")?,
            Outcome::Failed(why) => writeln!(out, "error: {why}")?,
            Outcome::Interrupted(what) => writeln!(out, "interrupted: {what}")?,
            Outcome::NoChanges if !executed => {
                writeln!(out, "No changes: the plan holds none for this database.")?
            }
            Outcome::NoChanges => {}
            Outcome::Applied { .. } => writeln!(out, "{}.", capitalised(&outcome.describe()))?,
            Outcome::NotAttempted => {}
        }
        out.flush()?;
        if outcome.stops() && !args.keep_going {
            stopped = true;
        }
        outcomes.push(outcome);
    }
    write_summary(&fleet.targets, &outcomes, args.keep_going, &mut out)?;
    Ok(
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Interrupted(_)))
        {
            ExitCode::from(interrupt::EXIT_INTERRUPTED)
        } else if outcomes
            .iter()
            .any(|o| o.stops() || *o == Outcome::NotAttempted)
        {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// One database's apply: apply's executor on a session of its own, stopped by a signal
/// the way apply stops.
async fn apply_target(
    target: &Target,
    project: &Project,
    source: PlanSource,
    options: &ApplyOptions,
    out: &mut dyn Write,
) -> Outcome {
    if let Some(problem) = &target.problem {
        return Outcome::Failed(problem.clone());
    }
    let client = match db::connect(&target.db, "retentionc").await {
        Ok(client) => client,
        Err(e) => return Outcome::Failed(super::error_text(&e)),
    };
    // A saved plan that is no longer the plan of now is refused before the apply starts
    // (the locked transaction checks it again).
    if let PlanSource::Reviewed {
        plan,
        origin: ReviewedOrigin::SavedFile(_),
    } = &source
    {
        match crate::plan::make_plan(&client, project).await {
            Err(e) => return Outcome::Failed(super::error_text(&e)),
            Ok(now) => {
                if let Some(why) = reviewed_plan_mismatch(plan, &now) {
                    return Outcome::Refused(format!(
                        "{why}; run plan again (nothing was changed)"
                    ));
                }
            }
        }
    }
    let lock_timeout = Duration::from_millis(project.config.lock_timeout_ms);
    let watch = LockWatch::new(Some(target.db.clone()), lock_timeout);
    // This database's own count of the transactions of a split apply it committed.
    let options = &ApplyOptions {
        progress: Progress::default(),
        ..options.clone()
    };
    let stopped = interrupt::until_interrupted(
        &client.control,
        Stop::CloseUnlessCommitting,
        execute(&client, project, source, options, &watch, out),
    )
    .await;
    match stopped {
        Stopped::Finished(Ok(ApplyOutcome::NoChanges)) => Outcome::NoChanges,
        Stopped::Finished(Ok(ApplyOutcome::Applied {
            changes,
            statements,
            history_id,
            ..
        })) => Outcome::Applied {
            changes,
            statements,
            history_id,
        },
        Stopped::Finished(Err(e)) => {
            Outcome::Failed(super::error_text(&apply::after_lost_connection(&client, e)))
        }
        Stopped::Interrupted(Some(Ok(_))) => {
            Outcome::Interrupted("after the apply had committed: its changes are in place".into())
        }
        Stopped::Interrupted(_) if options.progress.committed().is_some() => {
            let (committed, of) = options.progress.committed().unwrap_or_default();
            Outcome::Interrupted(format!(
                "transactions 1 to {committed} of the apply's {of} are committed, each leaving the database consistent; the one in progress was rolled back (apply again to continue where it stopped)"
            ))
        }
        Stopped::Interrupted(Some(Err(e))) => Outcome::Interrupted(format!(
            "the apply was not committed, nothing was changed ({})",
            super::error_text(&e)
        )),
        Stopped::Interrupted(None) => {
            Outcome::Interrupted(apply::interrupted_without_answer(&client.control))
        }
    }
}

/// Each target's saved plan, found by environment and database; refused when the file
/// has none for it, its planning failed, the policies changed, or it expires data without
/// `--allow-data-loss`.
fn saved_sources(
    fleet: &Fleet,
    saved: &FleetPlan,
    path: &Path,
    options: &ApplyOptions,
) -> Vec<Source> {
    fleet
        .targets
        .iter()
        .map(|target| {
            let Some(entry) = saved
                .databases
                .iter()
                .find(|d| d.environment == target.environment_name && d.database == target.database)
            else {
                return Source::Refused(format!(
                    "{} holds no plan for this database; plan again (nothing was changed)",
                    path.display()
                ));
            };
            let Some(plan) = &entry.plan else {
                return Source::Refused(format!(
                    "planning failed for this database when {} was saved ({}); plan again (nothing was changed)",
                    path.display(),
                    first_line(entry.error.as_deref().unwrap_or("no plan"))
                ));
            };
            if plan.format_version != crate::plan::FORMAT_VERSION {
                return Source::Refused(format!(
                    "its plan is of format version {}, and this retentionc reads version {}; plan again (nothing was changed)",
                    plan.format_version,
                    crate::plan::FORMAT_VERSION
                ));
            }
            let project = fleet.project(target);
            if let Err(e) = check_policy_hashes(&project, plan) {
                return Source::Refused(format!("{e:#}"));
            }
            if !plan.has_changes() {
                return Source::Nothing;
            }
            if let Err(e) = refuse_data_loss(plan, options.allow_data_loss) {
                return Source::Refused(format!("{e:#}"));
            }
            Source::Apply(PlanSource::Reviewed {
                plan: plan.clone(),
                origin: ReviewedOrigin::SavedFile(path.to_path_buf()),
            })
        })
        .collect()
}

/// The saved plans of the chosen databases, for the person asked to confirm.
fn show_saved(targets: &[Target], saved: &FleetPlan, out: &mut dyn Write) -> Result<()> {
    for target in targets {
        writeln!(out, "\n{}", report::text_heading(target))?;
        match saved
            .databases
            .iter()
            .find(|d| d.environment == target.environment_name && d.database == target.database)
            .and_then(|d| d.plan.as_ref())
        {
            Some(plan) => apply::write_plan(out, plan)?,
            None => writeln!(out, "(no saved plan: refused)")?,
        }
    }
    Ok(())
}

/// Plans every database (as `plan --all` does), shows the report, and takes each plan as
/// the one a person confirms; the locked transaction checks it is still the plan of now.
async fn confirmed_sources(
    fleet: &Fleet,
    args: &ApplyArgs,
    options: &ApplyOptions,
    out: &mut dyn Write,
) -> Result<Vec<Source>> {
    let mut report = Report::new(PlanFormat::Text, false)?;
    let mut planned: Vec<Option<DatabasePlan>> = vec![None; fleet.targets.len()];
    let mut failure = None;
    plan_all(fleet, super::jobs(&args.fleet), false, |index, database| {
        if failure.is_none()
            && let Err(e) = report.add(index, database.clone())
        {
            failure = Some(e);
        }
        planned[index] = Some(database);
    })
    .await;
    if let Some(e) = failure {
        return Err(e);
    }
    report.write(&fleet.targets, out)?;
    Ok(planned
        .into_iter()
        .map(|database| match database.map(|d| d.plan.ok_or(d.error)) {
            None => Source::Refused("not planned".into()),
            Some(Err(error)) => {
                Source::Refused(format!("planning failed: {}", error.unwrap_or_default()))
            }
            Some(Ok(plan)) if !plan.has_changes() => Source::Nothing,
            Some(Ok(plan)) => match refuse_data_loss(&plan, options.allow_data_loss) {
                Err(e) => Source::Refused(format!("{e:#}")),
                Ok(()) => Source::Apply(PlanSource::Reviewed {
                    plan,
                    origin: ReviewedOrigin::Confirmed,
                }),
            },
        })
        .collect())
}

fn write_summary(
    targets: &[Target],
    outcomes: &[Outcome],
    keep_going: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Applied { .. }))
        .count();
    let unchanged = outcomes
        .iter()
        .filter(|o| **o == Outcome::NoChanges)
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Refused(_)))
        .count();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    let skipped = outcomes.len() - applied - unchanged - refused - failed;
    writeln!(
        out,
        "\nretentionc apply: {}: {applied} applied, {unchanged} without changes, {refused} refused, {failed} failed, {skipped} not attempted{}",
        report::count(outcomes.len(), "database", "databases"),
        if keep_going { " (--keep-going)" } else { "" }
    )?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = targets
        .iter()
        .zip(outcomes)
        .map(|(t, o)| vec![t.environment_name.clone(), t.database.clone(), o.describe()])
        .collect();
    report::write_text_table(out, &["ENVIRONMENT", "DATABASE", "RESULT"], &[], &rows)?;
    Ok(())
}
