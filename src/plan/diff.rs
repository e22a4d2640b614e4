//! The planner: a pure function of the policies and the live state, no I/O.
//!
//! Desired and live state (`state`) are compared as typed values. Each change names the
//! statements that make it happen as (file, key) pairs of the compiled files (`render`),
//! with their text for display; apply looks them up again in the reviewed files.

use std::collections::BTreeMap;

use crate::catalog::Live;
use crate::model::RuleFingerprint;
use crate::model::{Interval, Policy, Project, QualifiedName};
use crate::plan::impact::{expired_children, expired_partitions, survivors_from, time_text};
use crate::plan::{Change, ChangeKind, Impact, Plan, PlannedStatement, RuleImpact, SettingChange};
use crate::plan::{adoption, checks};
use crate::policy::error::PolicyErrors;
use crate::policy::interval::parse_interval;
use crate::render::{CompiledFile, Renderer, SettingValue};
use crate::state::{self, AppliedTable, State, TableState};

/// Version of the saved plan and of `plan --format json`.
pub const FORMAT_VERSION: u32 = 2;

/// Planner row estimates for new or stricter delete rules, by (`schema.table`, rule name).
pub type RuleEstimates = BTreeMap<(String, String), Option<u64>>;

/// A delete rule whose rows plan estimates: one that would delete rows the live rules
/// keep. Rows in partitions that the same run's maintenance expires first are left out:
/// `survivors_from` is the partition column's lowest value that survives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleToEstimate {
    pub table: String,
    pub rule: String,
    pub survivors_from: Option<(String, String)>,
}

/// The rules plan should estimate (one EXPLAIN each).
pub fn rules_to_estimate(project: &Project, live: &Live) -> Vec<RuleToEstimate> {
    let desired = state::desired(project, &Renderer::new());
    let live_state = state::live(live, &desired);
    let mut out = Vec::new();
    for policy in &project.policies {
        let table = policy.table.to_string();
        let Some(want) = desired.tables.get(&table).and_then(|t| t.prune.as_ref()) else {
            continue;
        };
        let have = live_state.tables.get(&table).and_then(|t| t.prune.as_ref());
        let survivors_from = surviving_partitions_from(policy, live);
        for rule in stricter(want, have) {
            out.push(RuleToEstimate {
                table: table.clone(),
                rule: rule.name.clone(),
                survivors_from: survivors_from.clone(),
            });
        }
    }
    out
}

/// The desired rules that would delete rows the live procedure keeps (all of them when
/// there is no live procedure, or its rules are unknown).
fn stricter<'d>(want: &'d state::Prune, have: Option<&state::Prune>) -> Vec<&'d RuleFingerprint> {
    let desired = want.rules.as_deref().unwrap_or(&[]);
    let live = match have {
        None => Some(&[][..]),
        Some(h) => h.rules.as_deref(),
    };
    state::stricter_rules(desired, live)
}

/// With the policy's retention, the partition column and the lowest value of it that
/// survives the next maintenance: rows below it are gone before the delete rules run.
fn surviving_partitions_from(policy: &Policy, live: &Live) -> Option<(String, String)> {
    let keep = policy.retention.as_ref()?.keep;
    let partitioning = policy.partitioning.as_ref()?;
    let children = live.children.get(&policy.table.to_string())?;
    let expired = expired_children(
        children,
        partitioning.epoch,
        live.now,
        &keep,
        &partitioning.interval,
    );
    let bound = survivors_from(&expired)?;
    Some((partitioning.column.to_string(), bound))
}

/// `statement` of the reviewed `file`, as a change names it.
pub(crate) fn planned(
    file: &CompiledFile,
    statement: &crate::render::Statement,
) -> PlannedStatement {
    PlannedStatement {
        key: statement.key.clone(),
        file: file.file_name.clone(),
        sql: statement.sql.clone(),
    }
}

/// The statements of `file` with these keys, in the file's order.
fn statements(file: &CompiledFile, keys: &[&str]) -> Vec<PlannedStatement> {
    file.statements
        .iter()
        .filter(|s| keys.contains(&s.key.as_str()))
        .map(|s| planned(file, s))
        .collect()
}

/// A change of `kind` with nothing destructive, no impact and no notes yet.
pub(crate) fn change(
    table: &str,
    kind: ChangeKind,
    summary: String,
    statements: Vec<PlannedStatement>,
) -> Change {
    Change {
        table: table.to_string(),
        kind,
        summary,
        destructive: false,
        impact: None,
        statements,
        settings: Vec::new(),
        body_diff: None,
        drift: false,
        notes: Vec::new(),
        conversion: None,
    }
}

/// The plan: what apply would do to make `live` match `project`. Errors are the
/// plan-time checks, each naming its policy file, line and key.
pub fn diff(
    project: &Project,
    live: &Live,
    estimates: &RuleEstimates,
) -> Result<Plan, PolicyErrors> {
    diff_with(project, live, estimates, &Renderer::new())
}

/// `diff` with the given renderer (a test may change a template's wording).
pub fn diff_with(
    project: &Project,
    live: &Live,
    estimates: &RuleEstimates,
    renderer: &Renderer,
) -> Result<Plan, PolicyErrors> {
    let errors = checks::check(project, live);
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    let config = &project.config;
    let desired = state::desired(project, renderer);
    let live_state = state::live(live, &desired);
    let mut changes = Vec::new();

    if let Some(c) = bootstrap_change(renderer, project, &desired, &live_state) {
        changes.push(c);
    }

    let applied = |table: &str| {
        live.last_apply
            .as_ref()
            .and_then(|a| state::applied_table(&a.applied_state, table))
    };
    let mut policies: Vec<&Policy> = project.policies.iter().collect();
    policies.sort_by_key(|p| p.table.to_string());
    let empty = TableState::default();
    for policy in policies {
        let table = policy.table.to_string();
        let compared = Compared {
            policy,
            file: renderer.policy(config, policy),
            conversion: live
                .tables
                .get(&table)
                .filter(|t| t.relkind == "r")
                .and_then(|_| renderer.conversion(config, policy))
                .map(|file| {
                    let facts = live.conversions.get(&table).cloned().unwrap_or_default();
                    (facts, file)
                }),
            config,
            want: &desired.tables[&table],
            have: live_state.tables.get(&table).unwrap_or(&empty),
            applied: applied(&table),
            live,
            estimates,
            config_major: config.partman_version,
        };
        compared.changes(&mut changes);
    }

    let mut unmanaged_tables = Vec::new();
    for (table, have) in &live_state.tables {
        if desired.tables.contains_key(table) {
            continue;
        }
        match removal_change(renderer, project, table, have, applied(table).as_ref()) {
            Some(c) => changes.push(c),
            None if have.registration.is_some() => unmanaged_tables.push(table.clone()),
            None => {}
        }
    }

    Ok(Plan {
        format_version: FORMAT_VERSION,
        live_fingerprint: state::fingerprint(live, &live_state),
        policy_hashes: project
            .policies
            .iter()
            .map(|p| (p.table.to_string(), p.hash()))
            .collect(),
        apply_transactions: crate::plan::split::transactions(&changes, project, live).map(Box::new),
        changes,
        planned_at: Some(time_text(live.now)),
        unmanaged_tables,
    })
}

fn bootstrap_change(
    renderer: &Renderer,
    project: &Project,
    desired: &State,
    live: &State,
) -> Option<Change> {
    let (want, have) = (&desired.bootstrap, &live.bootstrap);
    let schema = project.config.schema.as_str();
    let objects = [
        (have.schema, format!("schema {schema}")),
        (have.apply_history, format!("table {schema}.apply_history")),
        (have.run_log, format!("table {schema}.run_log")),
        (
            have.run_log_index,
            "index run_log_table_started".to_string(),
        ),
        (
            have.managed_objects,
            format!("table {schema}.managed_objects"),
        ),
    ];
    let mut missing: Vec<String> = objects
        .into_iter()
        .filter(|(present, _)| !present)
        .map(|(_, name)| name)
        .collect();
    // The bootstrap routines: missing ones are created, changed ones replaced (with a diff).
    let mut replaced = Vec::new();
    let mut body_diffs = Vec::new();
    for (name, want_body) in &want.routines {
        let kind = crate::render::bootstrap_routine_kind(name);
        match (have.routines.get(name).and_then(Option::as_ref), want_body) {
            (None, _) => missing.push(format!("{kind} {schema}.{name}")),
            (Some(h), Some(w)) if h != w => {
                replaced.push(format!("{kind} {schema}.{name}"));
                body_diffs.push(unified_diff(h, w));
            }
            _ => {}
        }
    }
    if have.public_execute {
        replaced.push(format!(
            "EXECUTE on {schema}'s routines revoked from PUBLIC"
        ));
    }
    if missing.is_empty() && replaced.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("create {}", missing.join(", ")));
    }
    if !replaced.is_empty() {
        parts.push(format!("replace {}", replaced.join(", ")));
    }
    let summary = format!("retentionc's schema and tables: {}", parts.join("; "));
    let file = renderer.bootstrap(&project.config);
    let all = file.statements.iter().map(|s| planned(&file, s)).collect();
    let mut c = change(schema, ChangeKind::Bootstrap, summary, all);
    c.body_diff = (!body_diffs.is_empty()).then(|| body_diffs.join(""));
    Some(c)
}

fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("live", "policy")
        .to_string()
}

fn interval_of(value: Option<&SettingValue>) -> Option<Interval> {
    match value {
        Some(SettingValue::Text(t)) => parse_interval(t).ok(),
        _ => None,
    }
}

/// Whether retention `new` expires partitions that retention `old` keeps: it starts
/// (from none) or gets shorter.
pub fn retention_is_shorter(old: Option<&SettingValue>, new: Option<&SettingValue>) -> bool {
    match (interval_of(old), interval_of(new)) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(before), Some(keep)) => keep.comparable() < before.comparable(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One policy's desired state beside the live one, and what the plan needs to compare them.
struct Compared<'a> {
    policy: &'a Policy,
    file: CompiledFile,
    /// A plain table to convert: what that takes, and its conversion file.
    conversion: Option<(crate::convert::facts::ConversionFacts, CompiledFile)>,
    config: &'a crate::model::Config,
    want: &'a TableState,
    have: &'a TableState,
    /// What the last apply recorded for this table.
    applied: Option<AppliedTable>,
    live: &'a Live,
    estimates: &'a RuleEstimates,
    /// The pg_partman major the SQL is compiled for (checked against the database).
    config_major: crate::model::PartmanMajor,
}

impl Compared<'_> {
    fn table(&self) -> String {
        self.policy.table.to_string()
    }

    fn changes(&self, changes: &mut Vec<Change>) {
        // The table's other changes come once it is converted (the next plan).
        if let Some((facts, file)) = &self.conversion {
            changes.push(crate::convert::planned::change(
                self.config,
                self.policy,
                facts,
                file,
                &self.file,
            ));
            return;
        }
        let first = changes.len();
        if self.policy.partitioning.is_some() {
            if self.have.registration.is_none() {
                changes.push(self.register_change());
            } else if let Some(c) = self.settings_change() {
                changes.push(c);
            }
        }
        changes.extend(self.procedure_change());
        changes.extend(self.schedule_change());
        let grants = changes[first..]
            .iter()
            .any(|c| c.statements.iter().any(|s| s.key == "privileges"));
        if !grants {
            changes.extend(self.owner_rights_change());
        }
    }

    /// The table's owner lacks rights its retention needs, and no other change of the
    /// table runs the `[privileges]` statement that grants them.
    fn owner_rights_change(&self) -> Option<Change> {
        let rights = self.live.owner_rights.get(&self.table())?;
        if rights.missing.is_empty() {
            return None;
        }
        let mut c = change(
            &self.table(),
            ChangeKind::OwnerRights,
            format!(
                "grant the owner {} what running its retention needs (retention runs with the owner's rights)",
                rights.owner
            ),
            statements(&self.file, &["privileges"]),
        );
        c.notes = rights
            .missing
            .iter()
            .map(|m| format!("missing: {m}"))
            .collect();
        Some(c)
    }

    /// The impact of retention `new` replacing `old`: what the next maintenance expires,
    /// computed when retention starts or gets shorter.
    fn retention_impact(
        &self,
        old: Option<&SettingValue>,
        new: Option<&SettingValue>,
    ) -> Option<Impact> {
        if !retention_is_shorter(old, new) {
            return None;
        }
        let keep = interval_of(new)?;
        let partitioning = self.policy.partitioning.as_ref()?;
        let expired = self
            .policy
            .retention
            .as_ref()
            .map(|r| r.expired.name())
            .unwrap_or("drop");
        let mut children = self
            .live
            .children
            .get(&self.table())
            .cloned()
            .unwrap_or_default();
        // A table being adopted will have pg_partman's partitions too: its newest existing
        // partition is then no longer the set's last, which pg_partman never drops.
        if let Some(Ok(adoption)) = adoption::adoption(self.policy, self.live, self.config_major) {
            children.push(adoption.first_made_partition(partitioning.epoch));
        }
        Some(expired_partitions(
            &children,
            partitioning.epoch,
            self.live.now,
            &keep,
            &partitioning.interval,
            expired,
        ))
    }

    fn register_change(&self) -> Change {
        let p = self
            .policy
            .partitioning
            .as_ref()
            .expect("registered tables are partitioned");
        let retention = match &self.policy.retention {
            Some(r) => format!(", retention {} ({})", r.keep, r.expired.name()),
            None => ", no retention".to_string(),
        };
        let adoption = adoption::adoption(self.policy, self.live, self.config_major)
            .map(|a| a.expect("checked before planning"));
        let (kind, summary, setup) = match &adoption {
            Some(_) => (
                ChangeKind::AdoptTable,
                format!(
                    "adopt with pg_partman, keeping its partitions: {} partitions on {}, premake {}{retention}",
                    p.interval, p.column, p.premake
                ),
                "adopt",
            ),
            None => (
                ChangeKind::Register,
                format!(
                    "register with pg_partman: {} partitions on {}, premake {}{retention}",
                    p.interval, p.column, p.premake
                ),
                "setup",
            ),
        };
        let mut c = change(
            &self.table(),
            kind,
            summary,
            statements(
                &self.file,
                &[setup, "archive_schema", "retention", "privileges"],
            ),
        );
        if let Some(adoption) = &adoption {
            c.notes = adoption.describe(&self.table());
        }
        c.settings = self
            .want
            .settings
            .iter()
            .map(|(column, v)| SettingChange {
                column: column.clone(),
                old: None,
                new: state::setting_text(v),
                drift: false,
            })
            .collect();
        c.impact = self.retention_impact(None, self.want.settings.get("retention"));
        c.destructive = c.impact.as_ref().is_some_and(|i| i.partitions > 0);
        c
    }

    fn settings_change(&self) -> Option<Change> {
        let mut differing = Vec::new();
        for (column, value) in &self.want.settings {
            let current = self.have.settings.get(column);
            if current.is_some_and(|c| state::same_setting(column, c, value)) {
                continue;
            }
            // Drift: the last apply left this very value, and the database no longer has it.
            let drift = self
                .applied
                .as_ref()
                .and_then(|a| a.settings.get(column))
                .is_some_and(|a| state::same_setting(column, a, value));
            differing.push(SettingChange {
                column: column.clone(),
                old: current.map(state::setting_text),
                new: state::setting_text(value),
                drift,
            });
        }
        if differing.is_empty() {
            return None;
        }
        let listed = differing
            .iter()
            .map(|s| {
                format!(
                    "{} {} -> {}",
                    s.column,
                    s.old.as_deref().unwrap_or("(unset)"),
                    s.new
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (kind, summary) = if differing.iter().all(|s| s.drift) {
            (
                ChangeKind::Drift,
                format!("changed by hand since the last apply; restore {listed}"),
            )
        } else {
            (ChangeKind::RetentionSettings, listed)
        };
        let archives = differing
            .iter()
            .any(|s| s.column == "retention_schema" && s.new != "NULL");
        let keys: &[&str] = if archives {
            &["archive_schema", "retention"]
        } else {
            &["retention"]
        };
        let mut c = change(&self.table(), kind, summary, statements(&self.file, keys));
        c.drift = differing.iter().any(|s| s.drift);
        c.impact = self.retention_impact(
            self.have.settings.get("retention"),
            self.want.settings.get("retention"),
        );
        c.destructive = c.impact.as_ref().is_some_and(|i| i.partitions > 0);
        c.settings = differing;
        Some(c)
    }

    fn procedure_change(&self) -> Option<Change> {
        let table = self.table();
        let (want, have) = (self.want.prune.as_ref(), self.have.prune.as_ref());
        let mut c = match (want, have) {
            (Some(_), None) => change(
                &table,
                ChangeKind::CreateProcedure,
                format!(
                    "create the prune procedure ({} delete rule{})",
                    self.policy.deletes.len(),
                    plural(self.policy.deletes.len())
                ),
                statements(&self.file, &["prune_owner", "prune", "privileges"]),
            ),
            (Some(w), Some(h)) if w.body != h.body || w.procedure != h.procedure => {
                let mut c = change(
                    &table,
                    ChangeKind::ReplaceProcedure,
                    "replace the prune procedure".to_string(),
                    statements(&self.file, &["prune_owner", "prune", "privileges"]),
                );
                c.body_diff = Some(unified_diff(&h.body, &w.body));
                c
            }
            (None, Some(_)) => change(
                &table,
                ChangeKind::DropProcedure,
                "drop the prune procedure (no delete rules)".to_string(),
                statements(&self.file, &["prune"]),
            ),
            _ => return None,
        };
        c.drift = self.procedure_drift();
        if c.drift && c.kind == ChangeKind::ReplaceProcedure {
            c.summary =
                "the prune procedure was changed by hand since the last apply; restore it".into();
        }
        if let Some(w) = want {
            let rules = stricter(w, have);
            if !rules.is_empty() {
                let impacts: Vec<RuleImpact> = rules
                    .iter()
                    .map(|r| RuleImpact {
                        rule: r.name.clone(),
                        estimated_rows: self
                            .estimates
                            .get(&(table.clone(), r.name.clone()))
                            .copied()
                            .flatten(),
                    })
                    .collect();
                c.destructive = true;
                c.impact = Some(Impact {
                    estimated_rows: impacts.iter().filter_map(|r| r.estimated_rows).sum(),
                    rules: impacts,
                    ..Impact::default()
                });
                let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
                c.summary.push_str(&format!(
                    "; new or stricter delete rule{}: {}",
                    plural(names.len()),
                    names.join(", ")
                ));
            }
        }
        Some(c)
    }

    /// The last apply recorded the procedure the policy wants now (or none), and the live
    /// one is not that: it was changed, made or dropped by hand since.
    fn procedure_drift(&self) -> bool {
        let Some(Some(recorded)) = self.applied.as_ref().map(|a| &a.prune) else {
            return false;
        };
        let sha = |p: Option<&state::Prune>| p.map(|p| state::body_sha256(&p.body));
        let recorded = recorded.as_ref().map(|r| r.body_sha256.clone());
        recorded == sha(self.want.prune.as_ref()) && recorded != sha(self.have.prune.as_ref())
    }

    fn schedule_change(&self) -> Option<Change> {
        let table = self.table();
        let job = self.policy.job_name();
        let (want, have) = (&self.want.schedule, &self.have.schedule);
        let keys = &["privileges", "schedule"];
        // The job runs as the table's owner, never the applying role.
        let owner = self.live.tables.get(&table).map(|t| t.owner.as_str());
        let runs_as_other = |h: &state::Schedule| {
            h.runs_as.is_some() && owner.is_some() && h.runs_as.as_deref() != owner
        };
        let mut c = match (want, have) {
            (Some(w), None) => change(
                &table,
                ChangeKind::AddSchedule,
                format!("schedule pg_cron job {job} at \"{}\"", w.schedule),
                statements(&self.file, keys),
            ),
            (Some(w), Some(h)) if !w.same_job(h) || runs_as_other(h) => {
                let what = if w.schedule != h.schedule {
                    format!("schedule \"{}\" -> \"{}\"", h.schedule, w.schedule)
                } else if w.command != h.command {
                    format!("command {} -> {}", h.command, w.command)
                } else {
                    format!(
                        "runs as {}, not as the table's owner {}",
                        h.runs_as.as_deref().unwrap_or("?"),
                        owner.unwrap_or("?")
                    )
                };
                change(
                    &table,
                    ChangeKind::ChangeSchedule,
                    format!("pg_cron job {job}: {what}"),
                    statements(&self.file, keys),
                )
            }
            (None, Some(_)) => change(
                &table,
                ChangeKind::RemoveSchedule,
                format!("remove pg_cron job {job}"),
                statements(&self.file, &["schedule"]),
            ),
            _ => return None,
        };
        let recorded = self.applied.as_ref().and_then(|a| a.schedule.as_ref());
        let same = |a: &Option<state::Schedule>, b: &Option<state::Schedule>| match (a, b) {
            (Some(a), Some(b)) => a.same_job(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        c.drift = recorded.is_some_and(|r| same(r, want) && !same(r, have));
        if c.drift {
            c.summary
                .push_str(" (changed by hand since the last apply)");
        }
        Some(c)
    }
}

/// A table no policy names: what retentionc made for it is released, from its removal
/// file (generated/_removed/). Retention is disabled only where retentionc recorded
/// setting it; the registration and the data stay. None when nothing of retentionc's is
/// left there.
fn removal_change(
    renderer: &Renderer,
    project: &Project,
    table: &str,
    have: &TableState,
    applied: Option<&AppliedTable>,
) -> Option<Change> {
    let name = QualifiedName::parse(table).ok()?;
    let retention_on = have
        .settings
        .get("retention")
        .is_some_and(|v| *v != SettingValue::Null);
    let set_by_retentionc = have.retention_recorded
        || applied.is_some_and(|a| {
            a.settings
                .get("retention")
                .is_some_and(|v| *v != SettingValue::Null)
        });
    let disable = retention_on && set_by_retentionc;
    let mut keys = Vec::new();
    let mut what = Vec::new();
    if disable {
        // Known from the apply history only: record it first, for the guarded statement.
        if !have.retention_recorded {
            keys.push("retention_owner");
        }
        keys.push("retention");
        what.push("disable retention");
    }
    if have.prune.is_some() {
        keys.push("prune");
        what.push("drop the prune procedure");
    }
    if have.schedule.is_some() {
        keys.push("schedule");
        what.push("remove the pg_cron job");
    }
    if keys.is_empty() {
        return None;
    }
    let file = renderer.removal(&project.config, &name);
    let mut c = change(
        table,
        ChangeKind::PolicyRemoved,
        format!(
            "policy removed: {}; the table stays registered with pg_partman and keeps its data",
            what.join(", ")
        ),
        statements(&file, &keys),
    );
    if disable {
        c.settings = vec![SettingChange {
            column: "retention".into(),
            old: have.settings.get("retention").map(state::setting_text),
            new: "NULL".into(),
            drift: false,
        }];
    }
    Some(c)
}
