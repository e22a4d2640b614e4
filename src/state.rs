//! One typed state for what the policies want and what the database has, so that the
//! diff compares data, not SQL text.
//!
//! `desired` comes from the model through render (the same values the generated files
//! hold); `live` from the catalog. Both use `render::SettingValue` for part_config values,
//! normalised the same way (intervals as canonical text), and prosrc-exact procedure bodies.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::Live;
use crate::model::{Interval, Project};
use crate::policy::interval::parse_interval;
use crate::render::{self, Renderer, SettingValue};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct State {
    pub bootstrap: Bootstrap,
    /// By `schema.table`.
    pub tables: BTreeMap<String, TableState>,
}

/// retentionc's own schema, tables and maintain() function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bootstrap {
    pub schema: bool,
    pub apply_history: bool,
    pub run_log: bool,
    pub run_log_index: bool,
    /// prosrc of `<schema>.maintain(text, text)`.
    pub maintain_body: Option<String>,
    /// prosrc of the `<schema>.delete_in_batches(...)` procedure.
    pub delete_in_batches_body: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableState {
    /// Registered with pg_partman (a part_config row).
    pub registration: Option<Registration>,
    /// part_config columns and values: desired holds only the columns the policy sets;
    /// live holds every column retentionc may set.
    pub settings: BTreeMap<String, SettingValue>,
    /// prosrc of the prune procedure.
    pub procedure: Option<String>,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub control: String,
    /// Canonical interval text (`1 day`); the stored text for a set that is not time-based.
    pub interval: String,
    pub epoch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub schedule: String,
    pub command: String,
}

/// The prosrc of a statement `CREATE ... AS $tag$<body>$tag$;`.
pub fn dollar_quoted_body(sql: &str) -> Option<String> {
    let as_at = sql.find("\nAS $")?;
    let rest = &sql[as_at + 4..];
    let tag_end = rest[1..].find('$')? + 2;
    let tag = &rest[..tag_end];
    let body_and_end = &rest[tag_end..];
    let end = body_and_end.rfind(tag)?;
    Some(body_and_end[..end].to_string())
}

/// What the policies want.
pub fn desired(project: &Project, renderer: &Renderer) -> State {
    let config = &project.config;
    let bootstrap_file = renderer.bootstrap(config);
    let maintain_body = bootstrap_file
        .statement("bootstrap.maintain")
        .and_then(|s| dollar_quoted_body(&s.sql));
    let delete_in_batches_body = bootstrap_file
        .statement("bootstrap.delete_in_batches")
        .and_then(|s| dollar_quoted_body(&s.sql));
    let mut state = State {
        bootstrap: Bootstrap {
            schema: true,
            apply_history: true,
            run_log: true,
            run_log_index: true,
            maintain_body,
            delete_in_batches_body,
        },
        tables: BTreeMap::new(),
    };
    for policy in &project.policies {
        let registration = policy.partitioning.as_ref().map(|p| Registration {
            control: p.column.to_string(),
            interval: p.interval.to_string(),
            epoch: p.epoch.as_str().to_string(),
        });
        let settings = render::part_config_settings(policy)
            .into_iter()
            .map(|s| (s.column.to_string(), s.value))
            .collect();
        let procedure = policy
            .prune_procedure()
            .map(|_| renderer.prune_body(config, policy));
        let schedule = policy.schedule.as_ref().map(|s| Schedule {
            schedule: s.clone(),
            command: render::schedule_command(config, policy),
        });
        state.tables.insert(
            policy.table.to_string(),
            TableState {
                registration,
                settings,
                procedure,
                schedule,
            },
        );
    }
    state
}

/// The text of an interval as retentionc writes it, so equal values compare equal.
fn interval_text(parsed: Option<Interval>, raw: &str) -> String {
    match parsed {
        Some(interval) => interval.to_string(),
        None => raw.to_string(),
    }
}

/// The table a prune procedure serves, read from its body (`v_parent ... := 'schema.table'`),
/// since the procedure's name (`prune_<table>`) leaves the schema out.
pub fn prune_target(body: &str) -> Option<String> {
    let line = body
        .lines()
        .find(|l| l.trim_start().starts_with("v_parent") && l.contains("regclass :="))?;
    let start = line.find(":= '")? + 4;
    let end = line[start..].find('\'')? + start;
    Some(line[start..end].to_string())
}

/// What the database has, in the same shape.
pub fn live(live: &Live, project: &Project) -> State {
    let maintain_body = live
        .routines
        .iter()
        .find(|r| {
            r.name == "maintain"
                && r.kind == "f"
                && r.arguments == "p_parent_table text, p_time_zone text"
        })
        .map(|r| r.body.clone());
    let delete_in_batches_body = live
        .routines
        .iter()
        .find(|r| r.name == "delete_in_batches" && r.kind == "p")
        .map(|r| r.body.clone());
    let mut state = State {
        bootstrap: Bootstrap {
            schema: live.bootstrap.schema,
            apply_history: live.bootstrap.apply_history,
            run_log: live.bootstrap.run_log,
            run_log_index: live.bootstrap.run_log_index,
            maintain_body,
            delete_in_batches_body,
        },
        tables: BTreeMap::new(),
    };
    for row in &live.part_config {
        let table = state.tables.entry(row.parent_table.clone()).or_default();
        table.registration = Some(Registration {
            control: row.control.clone(),
            interval: interval_text(row.partition_interval_parsed, &row.partition_interval),
            epoch: row.epoch.clone(),
        });
        let retention = match &row.retention {
            None => SettingValue::Null,
            Some(raw) => SettingValue::Text(interval_text(row.retention_parsed, raw)),
        };
        let settings = [
            ("retention", retention),
            (
                "retention_keep_table",
                SettingValue::Bool(row.retention_keep_table),
            ),
            (
                "retention_keep_index",
                SettingValue::Bool(row.retention_keep_index),
            ),
            (
                "retention_schema",
                row.retention_schema
                    .clone()
                    .map(SettingValue::Text)
                    .unwrap_or(SettingValue::Null),
            ),
            (
                "infinite_time_partitions",
                SettingValue::Bool(row.infinite_time_partitions),
            ),
            ("premake", SettingValue::Int(row.premake)),
        ];
        table.settings = settings
            .into_iter()
            .map(|(c, v)| (c.to_string(), v))
            .collect();
    }
    for routine in &live.routines {
        if routine.kind != "p" || !routine.name.starts_with("prune_") {
            continue;
        }
        // The body names its table; fall back to a policy whose procedure has this name.
        let target = prune_target(&routine.body).or_else(|| {
            project
                .policies
                .iter()
                .find(|p| {
                    p.prune_procedure()
                        .is_some_and(|n| n.as_str() == routine.name)
                })
                .map(|p| p.table.to_string())
        });
        if let Some(target) = target {
            state.tables.entry(target).or_default().procedure = Some(routine.body.clone());
        }
    }
    for job in &live.jobs {
        if let Some(target) = job.name.strip_prefix("retentionc:") {
            state.tables.entry(target.to_string()).or_default().schedule = Some(Schedule {
                schedule: job.schedule.clone(),
                command: job.command.clone(),
            });
        }
    }
    state
}

/// Whether two part_config values are the same: intervals compare as PostgreSQL compares
/// them (`1 day` = `24 hours`), everything else exactly.
pub fn same_setting(column: &str, a: &SettingValue, b: &SettingValue) -> bool {
    if let ("retention", SettingValue::Text(x), SettingValue::Text(y)) = (column, a, b)
        && let (Ok(x), Ok(y)) = (parse_interval(x), parse_interval(y))
    {
        return x.comparable() == y.comparable();
    }
    a == b
}

/// SQL text of a value, as a reviewer reads it (`'14 days'`, `NULL`, `true`).
pub fn setting_text(value: &SettingValue) -> String {
    match value {
        SettingValue::Null => "NULL".into(),
        SettingValue::Bool(b) => b.to_string(),
        SettingValue::Int(i) => i.to_string(),
        SettingValue::Text(t) => t.clone(),
    }
}

fn setting_to_json(value: &SettingValue) -> serde_json::Value {
    serde_json::to_value(value).expect("a setting serialises")
}

fn setting_from_json(value: &serde_json::Value) -> Option<SettingValue> {
    Some(match value {
        serde_json::Value::Null => SettingValue::Null,
        serde_json::Value::Bool(b) => SettingValue::Bool(*b),
        serde_json::Value::Number(n) => SettingValue::Int(n.as_i64()?),
        serde_json::Value::String(s) => SettingValue::Text(s.clone()),
        _ => return None,
    })
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What apply records in `apply_history.applied_state`, from the desired state it made
/// live: `{"<schema.table>": {"settings": {"retention": "14 days", ...},
/// "procedure_sha256": "..."|null, "schedule": {"schedule": .., "command": ..}|null}}`.
/// Plan reads it back to tell drift (a hand edit since) from a policy change.
pub fn applied_state_json(desired: &State) -> serde_json::Value {
    let tables: serde_json::Map<String, serde_json::Value> = desired
        .tables
        .iter()
        .map(|(name, t)| {
            let settings: serde_json::Map<String, serde_json::Value> = t
                .settings
                .iter()
                .map(|(c, v)| (c.clone(), setting_to_json(v)))
                .collect();
            let entry = serde_json::json!({
                "settings": settings,
                "procedure_sha256": t.procedure.as_deref().map(sha256),
                "schedule": t.schedule,
            });
            (name.clone(), entry)
        })
        .collect();
    serde_json::Value::Object(tables)
}

/// One table's entry of a recorded `applied_state`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedTable {
    pub settings: BTreeMap<String, SettingValue>,
    /// `None` when not recorded; `Some(None)` when recorded as "no procedure".
    pub procedure_sha256: Option<Option<String>>,
    pub schedule: Option<Option<Schedule>>,
}

pub fn applied_table(applied_state: &serde_json::Value, table: &str) -> Option<AppliedTable> {
    let entry = applied_state.get(table)?;
    let settings = entry
        .get("settings")
        .and_then(|s| s.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(c, v)| Some((c.clone(), setting_from_json(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let procedure_sha256 = entry
        .get("procedure_sha256")
        .map(|v| v.as_str().map(str::to_string));
    let schedule = entry.get("schedule").map(|v| {
        Some(Schedule {
            schedule: v.get("schedule")?.as_str()?.to_string(),
            command: v.get("command")?.as_str()?.to_string(),
        })
    });
    Some(AppliedTable {
        settings,
        procedure_sha256,
        schedule,
    })
}

pub fn body_sha256(body: &str) -> String {
    sha256(body)
}

/// sha256 over a canonical serialisation of what the plan depends on in the live
/// database: the live `State` (registrations, settings, procedures, schedules, retentionc's
/// objects), the extensions and the last apply. Partitions and row counts are left out:
/// maintenance changes them all the time and no planned statement depends on them.
pub fn fingerprint(live: &Live, live_state: &State) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        state: &'a State,
        partman: Option<&'a crate::catalog::Extension>,
        cron: Option<&'a crate::catalog::Extension>,
        last_apply_id: Option<i64>,
    }
    let canonical = Canonical {
        state: live_state,
        partman: live.partman.as_ref(),
        cron: live.cron.as_ref(),
        last_apply_id: live.last_apply.as_ref().map(|a| a.id),
    };
    sha256(&serde_json::to_string(&canonical).expect("the live state serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_quoted_body_is_what_prosrc_holds() {
        let sql = "CREATE OR REPLACE FUNCTION \"r\".\"maintain\"(p text)\nRETURNS jsonb\nLANGUAGE plpgsql\nAS $retentionc$\nBEGIN\nEND\n$retentionc$;\n";
        assert_eq!(dollar_quoted_body(sql).as_deref(), Some("\nBEGIN\nEND\n"));
    }

    #[test]
    fn prune_target_reads_the_table_from_the_body() {
        let body =
            "\nDECLARE\n    v_parent          constant regclass := 'public.app_logs'::regclass;\n";
        assert_eq!(prune_target(body).as_deref(), Some("public.app_logs"));
    }

    #[test]
    fn equal_intervals_are_the_same_setting() {
        let a = SettingValue::Text("1 day".into());
        let b = SettingValue::Text("24 hours".into());
        assert!(same_setting("retention", &a, &b));
        assert!(!same_setting(
            "retention",
            &a,
            &SettingValue::Text("2 days".into())
        ));
        assert!(!same_setting("retention", &a, &SettingValue::Null));
    }

    #[test]
    fn applied_state_round_trips() {
        let mut desired = State::default();
        let mut t = TableState::default();
        t.settings
            .insert("retention".into(), SettingValue::Text("14 days".into()));
        t.settings.insert("premake".into(), SettingValue::Int(4));
        t.settings
            .insert("retention_schema".into(), SettingValue::Null);
        t.procedure = Some("body".into());
        desired.tables.insert("public.a".into(), t.clone());
        let json = applied_state_json(&desired);
        let back = applied_table(&json, "public.a").unwrap();
        assert_eq!(back.settings, t.settings);
        assert_eq!(back.procedure_sha256, Some(Some(body_sha256("body"))));
        assert_eq!(back.schedule, Some(None));
        assert!(applied_table(&json, "public.b").is_none());
    }
}
