//! The planner: a pure function of the policies and the live state, no I/O.
//!
//! Every statement a change carries is taken from the compiled files (`render`), the
//! same `Statement.sql` text that generated/ holds, never rendered a second way.

use std::collections::BTreeMap;

use crate::catalog::Live;
use crate::model::{Epoch, Policy, Project};
use crate::plan::checks;
use crate::plan::impact::expired_partitions;
use crate::plan::{Change, ChangeKind, Impact, Plan, PlannedStatement, RuleImpact, SettingChange};
use crate::policy::error::PolicyErrors;
use crate::policy::ident::QualifiedName;
use crate::policy::interval::parse_interval;
use crate::render::{BOOTSTRAP_FILE, CompiledFile, Renderer, SettingValue};
use crate::state::{self, AppliedTable, State, TableState};

pub const FORMAT_VERSION: u32 = 1;

/// Planner row estimates for new or changed delete rules, by (`schema.table`, rule name).
pub type RuleEstimates = BTreeMap<(String, String), Option<u64>>;

/// The `-- Rule <name>: ...` lines of a prune body, by rule name, without the batch size
/// (a new batch size deletes nothing new).
fn rule_lines(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("-- Rule ")?;
            let (name, _) = rest.split_once(':')?;
            let condition = rest.rsplit_once("; ").map(|(c, _)| c).unwrap_or(rest);
            Some((name.to_string(), condition.to_string()))
        })
        .collect()
}

/// Rules of `desired` that `live` does not have with the same condition: the ones that
/// would delete rows nobody deleted before.
pub fn changed_rules(desired: &str, live: Option<&str>) -> Vec<String> {
    let before = live.map(rule_lines).unwrap_or_default();
    rule_lines(desired)
        .into_iter()
        .filter(|(name, line)| before.get(name) != Some(line))
        .map(|(name, _)| name)
        .collect()
}

/// (table, rule) pairs whose rows plan should estimate (one EXPLAIN each).
pub fn rules_to_estimate(project: &Project, live: &Live) -> Vec<(String, String)> {
    let renderer = Renderer::new();
    let live_state = state::live(live, project);
    let mut out = Vec::new();
    for policy in &project.policies {
        if policy.prune_procedure().is_none() {
            continue;
        }
        let table = policy.table.to_string();
        let desired = renderer.prune_body(&project.config, policy);
        let live_body = live_state
            .tables
            .get(&table)
            .and_then(|t| t.procedure.as_deref());
        for rule in changed_rules(&desired, live_body) {
            out.push((table.clone(), rule));
        }
    }
    out
}

fn planned(file: Option<&str>, statement: &crate::render::Statement) -> PlannedStatement {
    PlannedStatement {
        key: statement.key.clone(),
        file: file.map(str::to_string),
        sql: statement.sql.clone(),
    }
}

fn statements(file: &CompiledFile, keys: &[&str]) -> Vec<PlannedStatement> {
    keys.iter()
        .filter_map(|k| file.statement(k))
        .map(|s| planned(Some(&file.file_name), s))
        .collect()
}

fn change(
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
    }
}

/// The plan: what apply would do to make `live` match `project`. Errors are the
/// plan-time checks, each naming its policy file, line and key.
pub fn diff(
    project: &Project,
    live: &Live,
    estimates: &RuleEstimates,
) -> Result<Plan, PolicyErrors> {
    let errors = checks::check(project, live);
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    let config = &project.config;
    let renderer = Renderer::new();
    let desired = state::desired(project, &renderer);
    let live_state = state::live(live, project);
    let mut changes = Vec::new();

    if let Some(c) = bootstrap_change(&renderer, project, &desired, &live_state) {
        changes.push(c);
    }

    let applied = |table: &str| {
        live.last_apply
            .as_ref()
            .and_then(|a| state::applied_table(&a.applied_state, table))
    };
    let mut policies: Vec<&Policy> = project.policies.iter().collect();
    policies.sort_by_key(|p| p.table.to_string());
    for policy in policies {
        let table = policy.table.to_string();
        let file = renderer.policy(config, policy);
        let want = &desired.tables[&table];
        let empty = TableState::default();
        let have = live_state.tables.get(&table).unwrap_or(&empty);
        table_changes(
            policy,
            &file,
            want,
            have,
            applied(&table).as_ref(),
            live,
            estimates,
            &mut changes,
        );
    }

    let mut unmanaged_tables = Vec::new();
    for (table, have) in &live_state.tables {
        if desired.tables.contains_key(table) {
            continue;
        }
        let retention_on = have
            .settings
            .get("retention")
            .is_some_and(|v| *v != SettingValue::Null);
        let recorded = applied(table);
        let ever_managed = have.procedure.is_some()
            || have.schedule.is_some()
            || live
                .last_apply
                .as_ref()
                .is_some_and(|a| a.policy_hashes.contains_key(table));
        // Retention is disabled only where retentionc set it: the last apply recorded a
        // retention for the table, or (no history) its job ran pg_partman maintenance,
        // which only a policy with partitioning schedules. A delete-only policy on a table
        // whose retention someone else set leaves that retention alone when removed.
        let set_retention = match &recorded {
            Some(a) => a.settings.contains_key("retention"),
            None => have.schedule.as_ref().is_some_and(|s| {
                s.command.contains("p_run_maintenance => true")
                    || s.command.contains("\"maintain\"(")
            }),
        };
        let disable = retention_on && set_retention;
        let name = QualifiedName::parse(table).ok();
        if let (true, Some(name)) = (
            ever_managed && (disable || have.procedure.is_some() || have.schedule.is_some()),
            name,
        ) {
            changes.push(removal_change(&renderer, project, &name, have, disable));
        } else if have.registration.is_some() {
            unmanaged_tables.push(table.clone());
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
        changes,
        planned_at: Some(crate::plan::impact::time_text(live.now)),
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
    let mut missing = Vec::new();
    let schema = project.config.schema.as_str();
    if !have.schema {
        missing.push(format!("schema {schema}"));
    }
    if !have.apply_history {
        missing.push(format!("table {schema}.apply_history"));
    }
    if !have.run_log {
        missing.push(format!("table {schema}.run_log"));
    }
    if !have.run_log_index {
        missing.push("index run_log_table_started".to_string());
    }
    // The bootstrap routines: missing ones are created, changed ones replaced (with a diff).
    let routines = [
        (
            "function",
            "maintain",
            &have.maintain_body,
            &want.maintain_body,
        ),
        (
            "procedure",
            "delete_in_batches",
            &have.delete_in_batches_body,
            &want.delete_in_batches_body,
        ),
    ];
    let mut replaced = Vec::new();
    let mut body_diffs = Vec::new();
    for (kind, name, have_body, want_body) in routines {
        match (have_body, want_body) {
            (None, _) => missing.push(format!("{kind} {schema}.{name}")),
            (Some(h), Some(w)) if h != w => {
                replaced.push(format!("{kind} {schema}.{name}"));
                body_diffs.push(unified_diff(h, w));
            }
            _ => {}
        }
    }
    if missing.is_empty() && replaced.is_empty() {
        return None;
    }
    let mut summary = String::from("retentionc's schema and tables: ");
    if !missing.is_empty() {
        summary.push_str(&format!("create {}", missing.join(", ")));
    }
    if !replaced.is_empty() {
        if !missing.is_empty() {
            summary.push_str("; ");
        }
        summary.push_str(&format!("replace {}", replaced.join(", ")));
    }
    let file = renderer.bootstrap(&project.config);
    let all: Vec<PlannedStatement> = file
        .statements
        .iter()
        .map(|s| planned(Some(BOOTSTRAP_FILE), s))
        .collect();
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

fn interval_of(value: Option<&SettingValue>) -> Option<crate::model::Interval> {
    match value {
        Some(SettingValue::Text(t)) => parse_interval(t).ok(),
        _ => None,
    }
}

/// The impact of retention `new` replacing `old` (None: no retention): computed when
/// retention starts or gets shorter.
fn retention_impact(
    policy: &Policy,
    live: &Live,
    old: Option<&SettingValue>,
    new: Option<&SettingValue>,
) -> Option<Impact> {
    let keep = interval_of(new)?;
    let shorter = match interval_of(old) {
        Some(before) => keep.comparable() < before.comparable(),
        None => true,
    };
    if !shorter {
        return None;
    }
    let epoch = policy
        .partitioning
        .as_ref()
        .map(|p| p.epoch)
        .unwrap_or(Epoch::None);
    let expired = policy
        .retention
        .as_ref()
        .map(|r| r.expired.name())
        .unwrap_or("drop");
    let children = live
        .children
        .get(&policy.table.to_string())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    Some(expired_partitions(
        children, epoch, live.now, &keep, expired,
    ))
}

#[allow(clippy::too_many_arguments)]
fn table_changes(
    policy: &Policy,
    file: &CompiledFile,
    want: &TableState,
    have: &TableState,
    applied: Option<&AppliedTable>,
    live: &Live,
    estimates: &RuleEstimates,
    changes: &mut Vec<Change>,
) {
    let table = policy.table.to_string();
    if let Some(p) = &policy.partitioning {
        if have.registration.is_none() {
            let mut c = change(
                &table,
                ChangeKind::Register,
                format!(
                    "register with pg_partman: {} partitions on {}, premake {}{}",
                    p.interval,
                    p.column,
                    p.premake,
                    match &policy.retention {
                        Some(r) => format!(", retention {} ({})", r.keep, r.expired.name()),
                        None => ", no retention".to_string(),
                    }
                ),
                statements(
                    file,
                    &["setup", "archive_schema", "retention", "privileges"],
                ),
            );
            c.settings = want
                .settings
                .iter()
                .map(|(column, v)| SettingChange {
                    column: column.clone(),
                    old: None,
                    new: state::setting_text(v),
                    drift: false,
                })
                .collect();
            c.impact = retention_impact(policy, live, None, want.settings.get("retention"));
            c.destructive = c.impact.as_ref().is_some_and(|i| i.partitions > 0);
            changes.push(c);
        } else {
            settings_change(policy, file, want, have, applied, live, changes);
        }
    }
    procedure_change(policy, file, want, have, applied, estimates, changes);
    schedule_change(policy, file, want, have, applied, changes);
}

fn settings_change(
    policy: &Policy,
    file: &CompiledFile,
    want: &TableState,
    have: &TableState,
    applied: Option<&AppliedTable>,
    live: &Live,
    changes: &mut Vec<Change>,
) {
    let table = policy.table.to_string();
    let mut differing = Vec::new();
    for (column, value) in &want.settings {
        let current = have.settings.get(column);
        if current.is_some_and(|c| state::same_setting(column, c, value)) {
            continue;
        }
        // Drift: the last apply left this very value, and the database no longer has it.
        let drift = applied
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
        return;
    }
    let all_drift = differing.iter().all(|s| s.drift);
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
    let (kind, summary) = if all_drift {
        (
            ChangeKind::Drift,
            format!("changed by hand since the last apply; restore {listed}"),
        )
    } else {
        (ChangeKind::RetentionSettings, listed.clone())
    };
    let schema_changes = differing
        .iter()
        .any(|s| s.column == "retention_schema" && s.new != "NULL");
    let keys: &[&str] = if schema_changes {
        &["archive_schema", "retention"]
    } else {
        &["retention"]
    };
    let mut c = change(&table, kind, summary, statements(file, keys));
    c.drift = differing.iter().any(|s| s.drift);
    c.impact = retention_impact(
        policy,
        live,
        have.settings.get("retention"),
        want.settings.get("retention"),
    );
    c.destructive = c.impact.as_ref().is_some_and(|i| i.partitions > 0);
    c.settings = differing;
    changes.push(c);
}

fn procedure_change(
    policy: &Policy,
    file: &CompiledFile,
    want: &TableState,
    have: &TableState,
    applied: Option<&AppliedTable>,
    estimates: &RuleEstimates,
    changes: &mut Vec<Change>,
) {
    let table = policy.table.to_string();
    let mut c = match (&want.procedure, &have.procedure) {
        (Some(_), None) => change(
            &table,
            ChangeKind::CreateProcedure,
            format!(
                "create the prune procedure ({} delete rule{})",
                policy.deletes.len(),
                plural(policy.deletes.len())
            ),
            statements(file, &["prune", "privileges"]),
        ),
        (Some(w), Some(h)) if w != h => {
            let mut c = change(
                &table,
                ChangeKind::ReplaceProcedure,
                "replace the prune procedure".to_string(),
                statements(file, &["prune", "privileges"]),
            );
            c.body_diff = Some(unified_diff(h, w));
            c.drift = procedure_drift(applied, want.procedure.as_deref(), Some(h));
            if c.drift {
                c.summary =
                    "the prune procedure was changed by hand since the last apply; restore it"
                        .to_string();
            }
            c
        }
        (None, Some(_)) => change(
            &table,
            ChangeKind::DropProcedure,
            "drop the prune procedure (no delete rules)".to_string(),
            statements(file, &["prune"]),
        ),
        _ => return,
    };
    if c.kind != ChangeKind::ReplaceProcedure {
        c.drift = procedure_drift(
            applied,
            want.procedure.as_deref(),
            have.procedure.as_deref(),
        );
    }
    if let Some(w) = &want.procedure {
        let rules = changed_rules(w, have.procedure.as_deref());
        if !rules.is_empty() {
            let impacts: Vec<RuleImpact> = rules
                .iter()
                .map(|r| RuleImpact {
                    rule: r.clone(),
                    estimated_rows: estimates
                        .get(&(table.clone(), r.clone()))
                        .copied()
                        .flatten(),
                })
                .collect();
            c.destructive = true;
            c.impact = Some(Impact {
                partitions: 0,
                from: None,
                to: None,
                estimated_rows: impacts.iter().filter_map(|r| r.estimated_rows).sum(),
                expired: None,
                expired_partitions: Vec::new(),
                partitions_without_statistics: 0,
                rules: impacts,
            });
            let names = rules.join(", ");
            c.summary.push_str(&format!(
                "; new or changed delete rule{}: {names}",
                plural(rules.len())
            ));
        }
    }
    changes.push(c);
}

/// The last apply recorded the procedure the policy wants now (or none), and the live
/// one is not that: it was changed, made or dropped by hand since.
fn procedure_drift(applied: Option<&AppliedTable>, want: Option<&str>, live: Option<&str>) -> bool {
    let Some(recorded) = applied.and_then(|a| a.procedure_sha256.clone()) else {
        return false;
    };
    let sha = |body: Option<&str>| body.map(state::body_sha256);
    recorded == sha(want) && recorded != sha(live)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn schedule_change(
    policy: &Policy,
    file: &CompiledFile,
    want: &TableState,
    have: &TableState,
    applied: Option<&AppliedTable>,
    changes: &mut Vec<Change>,
) {
    let table = policy.table.to_string();
    let job = policy.job_name();
    let recorded = applied.and_then(|a| a.schedule.clone());
    let drift = |live: &Option<state::Schedule>| {
        recorded
            .as_ref()
            .is_some_and(|r| r == &want.schedule && r != live)
    };
    let mut c = match (&want.schedule, &have.schedule) {
        (Some(w), None) => change(
            &table,
            ChangeKind::AddSchedule,
            format!("schedule pg_cron job {job} at \"{}\"", w.schedule),
            statements(file, &["privileges", "schedule"]),
        ),
        (Some(w), Some(h)) if w != h => {
            let what = if w.schedule != h.schedule {
                format!("schedule \"{}\" -> \"{}\"", h.schedule, w.schedule)
            } else {
                format!("command {} -> {}", h.command, w.command)
            };
            change(
                &table,
                ChangeKind::ChangeSchedule,
                format!("pg_cron job {job}: {what}"),
                statements(file, &["privileges", "schedule"]),
            )
        }
        (None, Some(_)) => change(
            &table,
            ChangeKind::RemoveSchedule,
            format!("remove pg_cron job {job}"),
            statements(file, &["schedule"]),
        ),
        _ => return,
    };
    c.drift = drift(&have.schedule);
    if c.drift {
        c.summary
            .push_str(" (changed by hand since the last apply)");
    }
    changes.push(c);
}

fn removal_change(
    renderer: &Renderer,
    project: &Project,
    name: &QualifiedName,
    have: &TableState,
    retention_on: bool,
) -> Change {
    let table = name.to_string();
    let table = table.as_str();
    // removal_statements' `partitioned`: whether to include the retention = NULL update.
    let partitioned = retention_on && have.registration.is_some();
    let statements: Vec<PlannedStatement> = renderer
        .removal_statements(&project.config, name, partitioned)
        .iter()
        .map(|s| planned(None, s))
        .collect();
    let mut what = Vec::new();
    if retention_on {
        what.push("disable retention");
    }
    if have.procedure.is_some() {
        what.push("drop the prune procedure");
    }
    if have.schedule.is_some() {
        what.push("remove the pg_cron job");
    }
    let mut c = change(
        table,
        ChangeKind::PolicyRemoved,
        format!(
            "policy removed: {}; the table stays registered with pg_partman and keeps its data",
            what.join(", ")
        ),
        statements,
    );
    if retention_on {
        c.settings = vec![SettingChange {
            column: "retention".into(),
            old: have.settings.get("retention").map(state::setting_text),
            new: "NULL".into(),
            drift: false,
        }];
    }
    c
}
