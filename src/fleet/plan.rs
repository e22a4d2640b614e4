//! `plan --env NAME` / `plan --all`: every database planned, a bounded number at a time,
//! and one report: a summary table (environment, database, changes, destructive, error),
//! then each database's plan, as text, markdown (one pull-request comment) or JSON. The
//! JSON document is also what `--out` saves and `apply --plan` reads (docs/fleet.md).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::report::{self, count, first_line, indented};
use super::runner::{self, Spool};
use super::targets::{Fleet, Target};
use crate::cli::{PlanArgs, PlanFormat};
use crate::model::Project;
use crate::plan::{self, Plan, format};

/// `kind` of a fleet's plan document.
pub const FLEET_PLAN_KIND: &str = "retentionc-fleet-plan";
/// Version of the fleet plan document (each database's plan has its own `format_version`).
pub const FLEET_FORMAT_VERSION: u32 = 1;
/// A markdown report stays under this many bytes, so that it fits one GitHub comment
/// (65,536 characters); sections that do not fit are named, not shown.
pub const MARKDOWN_BUDGET: usize = 60_000;
/// With more databases than this, the markdown summary table lists only those with
/// changes or errors, and counts the rest.
const MARKDOWN_FULL_TABLE: usize = 50;
/// Databases named in the member list of one markdown section.
const MARKDOWN_MEMBERS_SHOWN: usize = 50;

/// One database's line of the report, and its plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabasePlan {
    pub environment: String,
    /// `user@host:port/db`, never a password.
    pub database: String,
    /// The variable it was reached through, or `discovered on $VARIABLE`.
    pub source: String,
    pub changes: usize,
    pub destructive: usize,
    /// Why it could not be planned (the plan is then absent).
    pub error: Option<String>,
    pub plan: Option<Plan>,
}

/// The fleet's plan document: `plan --env/--all --format json`, `--out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetPlan {
    pub kind: String,
    pub format_version: u32,
    pub summary: Summary,
    pub databases: Vec<DatabasePlan>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub databases: usize,
    pub with_changes: usize,
    pub with_destructive_changes: usize,
    pub errors: usize,
}

impl DatabasePlan {
    fn new(target: &Target, result: Result<Plan>) -> DatabasePlan {
        let (plan, error) = match result {
            Ok(plan) => (Some(plan), None),
            Err(e) => (None, Some(super::error_text(&e))),
        };
        DatabasePlan {
            environment: target.environment_name.clone(),
            database: target.database.clone(),
            source: target.source.clone(),
            changes: plan.as_ref().map_or(0, |p| p.changes.len()),
            destructive: plan
                .as_ref()
                .map_or(0, |p| p.changes.iter().filter(|c| c.destructive).count()),
            error,
            plan,
        }
    }
}

/// Plans one database: its problem when it has one, else `plan`'s own work.
pub async fn plan_target(
    target: &Target,
    project: &Project,
    planning_anyway: bool,
) -> Result<Plan> {
    if let Some(problem) = &target.problem {
        return Err(anyhow!("{problem}"));
    }
    plan::plan_database(project, &target.db, planning_anyway).await
}

/// Plans every target, `jobs` at a time, handing each result to `done` as it ends; a
/// target never started (Ctrl-C) comes back as an error.
pub async fn plan_all(
    fleet: &Fleet,
    jobs: usize,
    planning_anyway: bool,
    mut done: impl FnMut(usize, DatabasePlan),
) {
    let targets = Arc::clone(&fleet.targets);
    let projects = fleet.projects();
    let work_targets = Arc::clone(&targets);
    let missing = runner::for_each(
        targets.len(),
        jobs,
        move |index| {
            let target = work_targets[index].clone();
            let project = Arc::clone(&projects[target.environment]);
            async move {
                let result = plan_target(&target, &project, planning_anyway).await;
                DatabasePlan::new(&target, result)
            }
        },
        &mut done,
    )
    .await;
    for index in missing {
        done(
            index,
            DatabasePlan::new(
                &targets[index],
                Err(anyhow!("not planned: interrupted (Ctrl-C or SIGTERM)")),
            ),
        );
    }
}

/// `retentionc plan --env NAME` / `--all`.
pub async fn command(config_path: &Path, args: &PlanArgs) -> Result<ExitCode> {
    let fleet = Fleet::load(config_path, &args.fleet, &args.db).await?;
    // Every environment's generated/ must be what compile writes, before any database
    // is asked: the same refusal as a single plan.
    for chosen in &fleet.environments {
        plan::check_generated(&chosen.project, args.compile)?;
    }
    let format = args.format.unwrap_or(PlanFormat::Text);
    let mut report = Report::new(format, args.out.is_some() || format == PlanFormat::Json)?;
    let mut failure = None;
    plan_all(
        &fleet,
        super::jobs(&args.fleet),
        args.compile,
        |index, planned| {
            if failure.is_none()
                && let Err(e) = report.add(index, planned)
            {
                failure = Some(e);
            }
        },
    )
    .await;
    if let Some(e) = failure {
        return Err(e).context("keeping a database's plan in the temporary folder");
    }
    let mut stdout = io::stdout().lock();
    report.write(&fleet.targets, &mut stdout)?;
    stdout.flush()?;
    if let Some(path) = &args.out {
        let mut file = std::fs::File::create(path)
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
        report
            .write_json(&mut file)
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    let summary = report.summary;
    Ok(if summary.errors > 0 {
        ExitCode::from(1)
    } else if args.detailed_exitcode && summary.with_changes > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the report keeps of one database: its counts in memory, its sections spooled.
#[derive(Debug, Clone, Default)]
struct Line {
    changes: usize,
    destructive: usize,
    /// First line of the error.
    error: Option<String>,
    /// Its text section, or its markdown group.
    section: Option<Range<u64>>,
    group: Option<usize>,
    json: Option<Range<u64>>,
}

/// Databases whose markdown sections are the same text: shown once.
struct Group {
    body: Range<u64>,
    members: Vec<usize>,
    changes: usize,
    destructive: usize,
    errored: bool,
}

/// The combined report, built as databases end (in any order), written in listed order.
pub struct Report {
    format: PlanFormat,
    keep_json: bool,
    color: bool,
    spool: Spool,
    lines: BTreeMap<usize, Line>,
    groups: Vec<Group>,
    groups_by_body: BTreeMap<[u8; 32], usize>,
    pub summary: Summary,
}

impl Report {
    pub fn new(format: PlanFormat, keep_json: bool) -> Result<Report> {
        Ok(Report {
            format,
            keep_json,
            color: format::color_wanted(),
            spool: Spool::new().context("making a spool file in the temporary folder")?,
            lines: BTreeMap::new(),
            groups: Vec::new(),
            groups_by_body: BTreeMap::new(),
            summary: Summary::default(),
        })
    }

    /// Takes one database's result: counts it, spools its sections, drops its plan.
    pub fn add(&mut self, index: usize, planned: DatabasePlan) -> Result<()> {
        self.summary.databases += 1;
        if planned.error.is_some() {
            self.summary.errors += 1;
        } else if planned.changes > 0 {
            self.summary.with_changes += 1;
            if planned.destructive > 0 {
                self.summary.with_destructive_changes += 1;
            }
        }
        let mut line = Line {
            changes: planned.changes,
            destructive: planned.destructive,
            error: planned.error.as_deref().map(first_line),
            ..Line::default()
        };
        match self.format {
            PlanFormat::Text => {
                let mut text = Vec::new();
                match (&planned.plan, &planned.error) {
                    (Some(plan), _) => format::write_text_with(plan, &mut text, self.color, false)?,
                    (None, error) => writeln!(text, "error: {}", error.as_deref().unwrap_or(""))?,
                }
                line.section = Some(self.spool.keep(&text)?);
            }
            PlanFormat::Markdown => {
                let mut body = Vec::new();
                match (&planned.plan, &planned.error) {
                    (Some(plan), _) => format::write_markdown_changes(plan, &mut body)?,
                    (None, error) => {
                        write_markdown_error(&mut body, error.as_deref().unwrap_or(""))?
                    }
                }
                let key: [u8; 32] = Sha256::digest(&body).into();
                let group = match self.groups_by_body.get(&key) {
                    Some(&group) => group,
                    None => {
                        let range = self.spool.keep(&body)?;
                        self.groups.push(Group {
                            body: range,
                            members: Vec::new(),
                            changes: planned.changes,
                            destructive: planned.destructive,
                            errored: planned.error.is_some(),
                        });
                        self.groups_by_body.insert(key, self.groups.len() - 1);
                        self.groups.len() - 1
                    }
                };
                line.group = Some(group);
            }
            PlanFormat::Json => {}
        }
        if self.keep_json {
            let json = serde_json::to_string_pretty(&planned)?;
            line.json = Some(self.spool.keep(json.as_bytes())?);
        }
        self.lines.insert(index, line);
        Ok(())
    }

    /// The report in its format, databases in the order of `targets`.
    pub fn write(&mut self, targets: &[Target], out: &mut dyn Write) -> Result<()> {
        match self.format {
            PlanFormat::Text => self.write_text(targets, out)?,
            PlanFormat::Markdown => self.write_markdown(targets, out)?,
            PlanFormat::Json => self.write_json(out)?,
        }
        Ok(())
    }

    fn headline(&self, targets: &[Target]) -> String {
        let environments = {
            let mut names: Vec<&str> = targets
                .iter()
                .map(|t| t.environment_name.as_str())
                .collect();
            names.dedup();
            names.len()
        };
        let s = self.summary;
        let mut text = format!(
            "{} in {}: {} with changes",
            count(s.databases, "database", "databases"),
            count(environments, "environment", "environments"),
            s.with_changes
        );
        if s.with_destructive_changes > 0 {
            text.push_str(&format!(" ({} destructive)", s.with_destructive_changes));
        }
        text.push_str(&format!(", {}", count(s.errors, "error", "errors")));
        text
    }

    fn rows(&self, targets: &[Target], only_notable: bool) -> Vec<Vec<String>> {
        targets
            .iter()
            .enumerate()
            .filter_map(|(i, target)| {
                let line = self.lines.get(&i)?;
                if only_notable && line.error.is_none() && line.changes == 0 {
                    return None;
                }
                Some(match &line.error {
                    Some(error) => vec![
                        target.environment_name.clone(),
                        target.database.clone(),
                        "-".into(),
                        "-".into(),
                        error.clone(),
                    ],
                    None => vec![
                        target.environment_name.clone(),
                        target.database.clone(),
                        line.changes.to_string(),
                        line.destructive.to_string(),
                        String::new(),
                    ],
                })
            })
            .collect()
    }

    fn write_text(&mut self, targets: &[Target], out: &mut dyn Write) -> Result<()> {
        writeln!(out, "retentionc plan: {}", self.headline(targets))?;
        writeln!(out)?;
        report::write_text_table(
            out,
            &["ENVIRONMENT", "DATABASE", "CHANGES", "DESTRUCTIVE", "ERROR"],
            &[false, false, true, true, false],
            &self.rows(targets, false),
        )?;
        for (i, target) in targets.iter().enumerate() {
            let Some(range) = self.lines.get(&i).and_then(|l| l.section.clone()) else {
                continue;
            };
            writeln!(out)?;
            writeln!(out, "{}", report::text_heading(target))?;
            self.spool.copy(&range, out)?;
        }
        if self.summary.with_changes > 0 {
            writeln!(out)?;
            writeln!(
                out,
                "Run `retentionc apply` with the same --env or --all to make these changes (databases one at a time, in this order)."
            )?;
        }
        Ok(())
    }

    fn write_markdown(&mut self, targets: &[Target], out: &mut dyn Write) -> Result<()> {
        let mut text: Vec<u8> = Vec::new();
        writeln!(text, "{}", format::MARKDOWN_MARKER)?;
        writeln!(text, "### retentionc plan: {}\n", self.headline(targets))?;
        let only_notable = targets.len() > MARKDOWN_FULL_TABLE;
        let rows = self.rows(targets, only_notable);
        if !rows.is_empty() {
            report::write_markdown_table(
                &mut text,
                &["environment", "database", "changes", "destructive", "error"],
                &[false, false, true, true, false],
                &rows,
            )?;
        }
        if only_notable {
            let quiet = self.summary.databases - rows.len();
            writeln!(
                text,
                "\n{} with no changes and no error (not listed).",
                count(quiet, "database", "databases")
            )?;
        }
        writeln!(text)?;
        let open_all = self.groups.len() <= 3;
        let mut left_out: Vec<usize> = Vec::new();
        // Sections in the order of their first database; errors and destructive ones open.
        let mut order: Vec<usize> = Vec::new();
        for (i, _) in targets.iter().enumerate() {
            if let Some(group) = self.lines.get(&i).and_then(|l| l.group) {
                if !order.contains(&group) {
                    order.push(group);
                }
                self.groups[group].members.push(i);
            }
        }
        // Errors first, then destructive changes, then the rest.
        order.sort_by_key(|&g| (!self.groups[g].errored, self.groups[g].destructive == 0));
        for group in order {
            let g = &self.groups[group];
            let mut section: Vec<u8> = Vec::new();
            let open = if open_all || g.errored || g.destructive > 0 {
                " open"
            } else {
                ""
            };
            let what = if g.errored {
                "error".to_string()
            } else if g.changes == 0 {
                "no changes".to_string()
            } else if g.destructive > 0 {
                format!(
                    "⚠️ {}, {} destructive",
                    count(g.changes, "change", "changes"),
                    g.destructive
                )
            } else {
                count(g.changes, "change", "changes")
            };
            let first = &targets[g.members[0]];
            if g.members.len() == 1 {
                writeln!(
                    section,
                    "<details{open}><summary><b>{}</b> <code>{}</code>: {what}</summary>\n",
                    report::markdown_cell(&first.environment_name),
                    report::markdown_cell(&first.database)
                )?;
            } else {
                let mut environments: Vec<&str> = g
                    .members
                    .iter()
                    .map(|&m| targets[m].environment_name.as_str())
                    .collect();
                environments.dedup();
                writeln!(
                    section,
                    "<details{open}><summary>{} ({}), the same plan: {what}</summary>\n",
                    count(g.members.len(), "database", "databases"),
                    report::markdown_cell(&environments.join(", "))
                )?;
                for &m in g.members.iter().take(MARKDOWN_MEMBERS_SHOWN) {
                    writeln!(
                        section,
                        "- {} `{}`",
                        report::markdown_cell(&targets[m].environment_name),
                        report::markdown_cell(&targets[m].database)
                    )?;
                }
                if g.members.len() > MARKDOWN_MEMBERS_SHOWN {
                    writeln!(
                        section,
                        "- and {} more",
                        g.members.len() - MARKDOWN_MEMBERS_SHOWN
                    )?;
                }
                writeln!(section)?;
            }
            let body = g.body.clone();
            self.spool.copy(&body, &mut section)?;
            writeln!(section, "\n</details>\n")?;
            if text.len() + section.len() > MARKDOWN_BUDGET {
                left_out.extend(self.groups[group].members.iter().copied());
                continue;
            }
            text.extend_from_slice(&section);
        }
        if !left_out.is_empty() {
            left_out.sort_unstable();
            writeln!(
                text,
                "{} left out to keep this to one comment: `retentionc plan` with the same --env or --all shows them all.",
                count(
                    left_out.len(),
                    "database's plan was",
                    "databases' plans were"
                )
            )?;
        }
        out.write_all(&text)?;
        Ok(())
    }

    /// The JSON document (`--format json`, `--out`).
    pub fn write_json(&mut self, out: &mut dyn Write) -> Result<()> {
        writeln!(out, "{{")?;
        writeln!(
            out,
            "  \"kind\": {},",
            serde_json::to_string(FLEET_PLAN_KIND)?
        )?;
        writeln!(out, "  \"format_version\": {FLEET_FORMAT_VERSION},")?;
        let summary = serde_json::to_string_pretty(&self.summary)?;
        writeln!(out, "  \"summary\": {},", indented(&summary, 2))?;
        write!(out, "  \"databases\": ")?;
        let ranges: Vec<Range<u64>> = self.lines.values().filter_map(|l| l.json.clone()).collect();
        self.spool.write_json_array(&ranges, out)?;
        writeln!(out, "}}")?;
        Ok(())
    }
}

/// An error in a fenced block longer than any run of backticks in it.
fn write_markdown_error(out: &mut dyn Write, error: &str) -> io::Result<()> {
    let longest = error.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    writeln!(out, "**Error:**\n\n{fence}text\n{error}\n{fence}")
}

/// Reads a document `plan --env/--all --out` saved.
pub fn read_fleet_plan(path: &Path) -> Result<FleetPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the saved plan {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a plan saved by `retentionc plan --out`",
            path.display()
        )
    })?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(FLEET_PLAN_KIND) {
        bail!(
            "{}: a plan of one database (saved by `plan --out` without --env or --all); apply it without --env/--all, or plan again with them (nothing was changed)",
            path.display()
        );
    }
    let plan: FleetPlan = serde_json::from_value(value).with_context(|| {
        format!(
            "{}: not a plan saved by `retentionc plan --env/--all --out`",
            path.display()
        )
    })?;
    if plan.format_version != FLEET_FORMAT_VERSION {
        bail!(
            "{}: a fleet plan of format version {}, and this retentionc reads version {FLEET_FORMAT_VERSION}; run plan again with this version",
            path.display(),
            plan.format_version
        );
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(i: usize) -> Target {
        Target {
            environment: 0,
            environment_name: "tenants".into(),
            db: crate::cli::DbArgs::default(),
            database: format!("app@db:5432/tenant_{i:03}"),
            source: "discovered on $TENANTS_URL".into(),
            problem: None,
        }
    }

    fn failed(i: usize, error: String) -> DatabasePlan {
        DatabasePlan::new(&target(i), Err(anyhow!(error)))
    }

    #[test]
    fn a_large_fleet_fits_one_comment_and_names_what_was_left_out() {
        let targets: Vec<Target> = (0..120).map(target).collect();
        let mut report = Report::new(PlanFormat::Markdown, true).unwrap();
        // Results arrive in any order; each database's error differs.
        for i in (0..120).rev() {
            report
                .add(i, failed(i, format!("tenant {i}: {}", "x".repeat(2_000))))
                .unwrap();
        }
        let mut out = Vec::new();
        report.write(&targets, &mut out).unwrap();
        let markdown = String::from_utf8(out).unwrap();
        assert!(
            markdown.len() <= MARKDOWN_BUDGET + 200,
            "{}",
            markdown.len()
        );
        assert!(markdown.starts_with(format::MARKDOWN_MARKER));
        assert!(
            markdown.contains("120 databases in 1 environment: 0 with changes, 120 errors"),
            "{markdown}"
        );
        assert!(
            markdown.contains("databases' plans were left out to keep this to one comment"),
            "{markdown}"
        );
        // Sections follow the listed order, not the order results came in.
        let first = markdown.find("tenant 0: ").unwrap();
        let second = markdown.find("tenant 1: ").unwrap();
        assert!(first < second);

        let mut json = Vec::new();
        report.write_json(&mut json).unwrap();
        let document: FleetPlan = serde_json::from_slice(&json).unwrap();
        assert_eq!(document.summary.errors, 120);
        let order: Vec<String> = document
            .databases
            .iter()
            .map(|d| d.database.clone())
            .collect();
        let listed: Vec<String> = targets.iter().map(|t| t.database.clone()).collect();
        assert_eq!(order, listed);
    }

    #[test]
    fn databases_with_the_same_plan_share_one_section() {
        let targets: Vec<Target> = (0..3).map(target).collect();
        let mut report = Report::new(PlanFormat::Markdown, false).unwrap();
        report.add(0, failed(0, "the same".into())).unwrap();
        report.add(2, failed(2, "the same".into())).unwrap();
        report.add(1, failed(1, "another".into())).unwrap();
        let mut out = Vec::new();
        report.write(&targets, &mut out).unwrap();
        let markdown = String::from_utf8(out).unwrap();
        assert_eq!(markdown.matches("<details").count(), 2, "{markdown}");
        assert!(
            markdown.contains("2 databases (tenants), the same plan: error"),
            "{markdown}"
        );
    }
}
