//! One typed state for what the policies want and what the database has, so that the
//! diff compares values field by field, never SQL text.
//!
//! `desired` is derived from the model (with the procedure bodies and commands the
//! renderer makes from the same model); `live` from the catalog. A table's delete rules
//! are carried as typed fingerprints: desired ones from the policy, live ones from the
//! last apply's record (`apply_history.applied_state`), valid while the live procedure is
//! still the one that apply made.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Live;
use crate::model::{Interval, Policy, ProcedureRecord, Project, RuleFingerprint};
use crate::policy::interval::parse_interval;
use crate::render::{self, Renderer, SettingValue};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct State {
    pub bootstrap: Bootstrap,
    /// By `schema.table`.
    pub tables: BTreeMap<String, TableState>,
}

/// retentionc's own schema, tables and routines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bootstrap {
    pub schema: bool,
    pub apply_history: bool,
    pub run_log: bool,
    pub run_log_index: bool,
    pub managed_objects: bool,
    /// The body (prosrc) of each of retentionc's routines, by name (`maintain`,
    /// `delete_in_batches`, ...); None when missing.
    pub routines: BTreeMap<String, Option<String>>,
    /// Some routine of retentionc's schema may be executed by PUBLIC.
    pub public_execute: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableState {
    /// Registered with pg_partman (a part_config row).
    pub registration: Option<Registration>,
    /// part_config columns and values: desired holds only the columns the policy sets;
    /// live holds every column retentionc may set.
    pub settings: BTreeMap<String, SettingValue>,
    /// The prune procedure serving this table.
    pub prune: Option<Prune>,
    pub schedule: Option<Schedule>,
    /// retentionc recorded setting this table's retention (`managed_objects`): removing
    /// the policy disables only such a retention. Not compared between desired and live.
    pub retention_recorded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub control: String,
    /// Canonical interval text (`1 day`); the stored text for a set that is not time-based.
    pub interval: String,
    pub epoch: String,
}

/// A prune procedure: its name, its body (prosrc), and the delete rules it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prune {
    pub procedure: String,
    pub body: String,
    /// The rules, by their fingerprints; `None` when the live procedure is not one whose
    /// rules are known (made or changed outside apply).
    pub rules: Option<Vec<RuleFingerprint>>,
}

/// The rules of `desired` that would delete rows the `live` rules keep: each one with no
/// live rule that already deletes at least what it deletes. With the live rules unknown,
/// every desired rule.
pub fn stricter_rules<'d>(
    desired: &'d [RuleFingerprint],
    live: Option<&[RuleFingerprint]>,
) -> Vec<&'d RuleFingerprint> {
    desired
        .iter()
        .filter(|rule| match live {
            None => true,
            Some(live) => !live.iter().any(|l| rule.deletes_no_more_than(l)),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub schedule: String,
    pub command: String,
    /// The role pg_cron runs the job as (live only: the job runs as the table's owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_as: Option<String>,
}

impl Schedule {
    /// The same schedule and command (where the job runs as is compared with the owner).
    pub fn same_job(&self, other: &Schedule) -> bool {
        self.schedule == other.schedule && self.command == other.command
    }
}

/// What the policies want.
pub fn desired(project: &Project, renderer: &Renderer) -> State {
    let config = &project.config;
    let routines = renderer.bootstrap_routines(config);
    let mut state = State {
        bootstrap: Bootstrap {
            schema: true,
            apply_history: true,
            run_log: true,
            run_log_index: true,
            managed_objects: true,
            routines: routines
                .into_iter()
                .map(|r| (r.name.to_string(), Some(r.body)))
                .collect(),
            public_execute: false,
        },
        tables: BTreeMap::new(),
    };
    for policy in &project.policies {
        state.tables.insert(
            policy.table.to_string(),
            desired_table(project, renderer, policy),
        );
    }
    state
}

fn desired_table(project: &Project, renderer: &Renderer, policy: &Policy) -> TableState {
    let config = &project.config;
    TableState {
        registration: policy.partitioning.as_ref().map(|p| Registration {
            control: p.column.to_string(),
            interval: p.interval.to_string(),
            epoch: p.epoch.as_str().to_string(),
        }),
        settings: render::part_config_settings(policy)
            .into_iter()
            .map(|s| (s.column.to_string(), s.value))
            .collect(),
        prune: policy.prune_procedure().map(|procedure| Prune {
            procedure: procedure.to_string(),
            body: renderer.prune_body(config, policy),
            rules: Some(policy.deletes.iter().map(RuleFingerprint::of).collect()),
        }),
        schedule: policy.schedule.as_ref().map(|s| Schedule {
            schedule: s.clone(),
            command: render::schedule_command(config, policy),
            runs_as: None,
        }),
        // A fact of the live database (managed_objects) only.
        retention_recorded: false,
    }
}

/// The text of an interval as retentionc writes it, so equal values compare equal.
fn interval_text(parsed: Option<Interval>, raw: &str) -> String {
    match parsed {
        Some(interval) => interval.to_string(),
        None => raw.to_string(),
    }
}

/// A set's retention as pg_partman reads it: on a time-based set, `retention::interval`,
/// where a bare number (`15`) is seconds, so `15` and `15 seconds` are the same setting.
fn live_retention(row: &crate::catalog::PartConfigRow) -> Option<Interval> {
    let time_based = row.partition_interval_parsed.is_some();
    row.retention_parsed.or_else(|| {
        let raw = row.retention.as_deref()?.trim();
        let seconds: i64 = raw.parse().ok().filter(|s| time_based && *s >= 0)?;
        Some(Interval {
            months: 0,
            days: 0,
            micros: seconds.checked_mul(1_000_000)?,
        })
    })
}

/// What the database has, in the same shape. `desired` supplies the rules of a live
/// procedure that is byte for byte the one the policy wants (made by running generated/
/// by hand, with no apply history).
pub fn live(live: &Live, desired: &State) -> State {
    let routine = |name: &str, kind: &str| {
        live.routines
            .iter()
            .find(|r| r.name == name && r.kind == kind)
            .map(|r| r.body.clone())
    };
    let mut state = State {
        bootstrap: Bootstrap {
            schema: live.bootstrap.schema,
            apply_history: live.bootstrap.apply_history,
            run_log: live.bootstrap.run_log,
            run_log_index: live.bootstrap.run_log_index,
            managed_objects: live.bootstrap.managed_objects,
            routines: desired
                .bootstrap
                .routines
                .iter()
                .map(|(name, want)| (name.clone(), live_routine(live, name, want.as_deref())))
                .collect(),
            public_execute: live
                .routines
                .iter()
                .any(|r| r.public_execute && desired.bootstrap.routines.contains_key(&r.name)),
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
            Some(raw) => SettingValue::Text(interval_text(live_retention(row), raw)),
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
    // A procedure serves the table retentionc recorded making it for; procedures it has
    // no record of are not retentionc's to change.
    for object in live
        .managed_objects
        .iter()
        .filter(|o| o.kind == "procedure")
    {
        let Some(body) = routine(&object.name, "p") else {
            continue;
        };
        let recorded = live
            .last_apply
            .as_ref()
            .and_then(|a| applied_table(&a.applied_state, &object.table));
        let want = desired
            .tables
            .get(&object.table)
            .and_then(|t| t.prune.as_ref());
        let record = serde_json::from_value::<ProcedureRecord>(object.detail.clone()).ok();
        let rules = known_rules(&body, record.as_ref(), recorded.as_ref(), want);
        state.tables.entry(object.table.clone()).or_default().prune = Some(Prune {
            procedure: object.name.clone(),
            body,
            rules,
        });
    }
    for object in live
        .managed_objects
        .iter()
        .filter(|o| o.kind == "retention")
    {
        state
            .tables
            .entry(object.table.clone())
            .or_default()
            .retention_recorded = true;
    }
    for job in &live.jobs {
        if let Some(target) = job.name.strip_prefix("retentionc:") {
            state.tables.entry(target.to_string()).or_default().schedule = Some(Schedule {
                schedule: job.schedule.clone(),
                command: job.command.clone(),
                runs_as: Some(job.username.clone()),
            });
        }
    }
    state
}

/// The body of the live routine `name` of retentionc's schema: of the overload whose body
/// is `want` when there is one (an earlier version's overload may linger), else of any.
fn live_routine(live: &Live, name: &str, want: Option<&str>) -> Option<String> {
    let mut overloads = live.routines.iter().filter(|r| r.name == name);
    let all: Vec<&crate::catalog::Routine> = overloads.by_ref().collect();
    all.iter()
        .find(|r| Some(r.body.as_str()) == want)
        .or(all.first())
        .map(|r| r.body.clone())
}

/// The rules a live procedure runs, when they are known: the statement that made it, or
/// the last apply, recorded them together with this very body; or the body is the one the
/// policy wants now.
fn known_rules(
    body: &str,
    made_with: Option<&ProcedureRecord>,
    recorded: Option<&AppliedTable>,
    want: Option<&Prune>,
) -> Option<Vec<RuleFingerprint>> {
    if let Some(made_with) = made_with
        && made_with.body_sha256 == body_sha256(body)
    {
        return Some(made_with.rules.clone());
    }
    if let Some(AppliedTable {
        prune: Some(Some(prune)),
        ..
    }) = recorded
        && prune.body_sha256 == body_sha256(body)
        && let Some(rules) = &prune.rules
    {
        return Some(rules.clone());
    }
    want.filter(|w| w.body == body)
        .and_then(|w| w.rules.clone())
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

fn setting_from_json(value: &serde_json::Value) -> Option<SettingValue> {
    Some(match value {
        serde_json::Value::Null => SettingValue::Null,
        serde_json::Value::Bool(b) => SettingValue::Bool(*b),
        serde_json::Value::Number(n) => SettingValue::Int(n.as_i64()?),
        serde_json::Value::String(s) => SettingValue::Text(s.clone()),
        _ => return None,
    })
}

pub fn body_sha256(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// Version of the `applied_state` document apply records.
pub const APPLIED_STATE_VERSION: u32 = 2;

/// One table in `applied_state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AppliedTableRecord {
    settings: BTreeMap<String, serde_json::Value>,
    prune: Option<AppliedPrune>,
    schedule: Option<Schedule>,
}

/// A prune procedure as apply left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPrune {
    pub procedure: String,
    pub body_sha256: String,
    /// `None` in records written before rules were recorded.
    pub rules: Option<Vec<RuleFingerprint>>,
}

/// What apply records in `apply_history.applied_state`, from the desired state it made
/// live: `{"version": 2, "tables": {"<schema.table>": {"settings": {"retention": "14 days",
/// ...}, "prune": {"procedure", "body_sha256", "rules": [fingerprint...]} | null,
/// "schedule": {"schedule", "command"} | null}}}`. Plan reads it back to tell drift (a hand
/// edit since) from a policy change, and to know the rules a live procedure runs.
pub fn applied_state_json(desired: &State) -> serde_json::Value {
    let tables: BTreeMap<&String, AppliedTableRecord> = desired
        .tables
        .iter()
        .map(|(name, t)| {
            let record = AppliedTableRecord {
                settings: t
                    .settings
                    .iter()
                    .map(|(c, v)| {
                        (
                            c.clone(),
                            serde_json::to_value(v).expect("a setting serialises"),
                        )
                    })
                    .collect(),
                prune: t.prune.as_ref().map(|p| AppliedPrune {
                    procedure: p.procedure.clone(),
                    body_sha256: body_sha256(&p.body),
                    rules: p.rules.clone(),
                }),
                schedule: t.schedule.clone(),
            };
            (name, record)
        })
        .collect();
    serde_json::json!({ "version": APPLIED_STATE_VERSION, "tables": tables })
}

/// One table's entry of a recorded `applied_state`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedTable {
    pub settings: BTreeMap<String, SettingValue>,
    /// `None` when not recorded; `Some(None)` when recorded as "no procedure".
    pub prune: Option<Option<AppliedPrune>>,
    pub schedule: Option<Option<Schedule>>,
}

/// A table's entry of a recorded `applied_state`, in this version's document or the
/// first one (`{"<table>": {"settings", "procedure_sha256", "schedule"}}`, no rules).
pub fn applied_table(applied_state: &serde_json::Value, table: &str) -> Option<AppliedTable> {
    let versioned = applied_state.get("version").is_some();
    let entry = if versioned {
        applied_state.get("tables")?.get(table)?
    } else {
        applied_state.get(table)?
    };
    let settings = entry
        .get("settings")
        .and_then(|s| s.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(c, v)| Some((c.clone(), setting_from_json(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let prune = if versioned {
        entry.get("prune").map(|v| {
            serde_json::from_value::<Option<AppliedPrune>>(v.clone())
                .ok()
                .flatten()
        })
    } else {
        entry.get("procedure_sha256").map(|v| {
            v.as_str().map(|sha| AppliedPrune {
                procedure: String::new(),
                body_sha256: sha.to_string(),
                rules: None,
            })
        })
    };
    let schedule = entry.get("schedule").map(|v| {
        serde_json::from_value::<Option<Schedule>>(v.clone())
            .ok()
            .flatten()
    });
    Some(AppliedTable {
        settings,
        prune,
        schedule,
    })
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
    body_sha256(&serde_json::to_string(&canonical).expect("the live state serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(condition: &str, older_than: Option<&str>) -> RuleFingerprint {
        RuleFingerprint {
            name: "r".into(),
            condition: condition.into(),
            time_column: older_than.map(|_| "ts".to_string()),
            older_than: older_than.map(str::to_string),
            batch_size: 5000,
        }
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
        // Only retention is read as an interval.
        assert!(!same_setting("retention_schema", &a, &b));
    }

    #[test]
    fn a_rule_is_stricter_when_it_deletes_rows_the_live_rules_keep() {
        let live = [rule("level = 'debug'", Some("30 days"))];
        // Same rule, or a longer age limit: deletes no more.
        assert!(
            stricter_rules(&[rule("level = 'debug'", Some("30 days"))], Some(&live)).is_empty()
        );
        assert!(
            stricter_rules(&[rule("level = 'debug'", Some("60 days"))], Some(&live)).is_empty()
        );
        assert!(
            stricter_rules(&[rule("level = 'debug'", Some("720 hours"))], Some(&live)).is_empty()
        );
        // A shorter age limit, no age limit, another condition, another column: more.
        assert_eq!(
            stricter_rules(&[rule("level = 'debug'", Some("29 days"))], Some(&live)).len(),
            1
        );
        assert_eq!(
            stricter_rules(&[rule("level = 'debug'", None)], Some(&live)).len(),
            1
        );
        assert_eq!(
            stricter_rules(&[rule("level = 'info'", Some("30 days"))], Some(&live)).len(),
            1
        );
        let mut other_column = rule("level = 'debug'", Some("30 days"));
        other_column.time_column = Some("other".into());
        assert_eq!(stricter_rules(&[other_column], Some(&live)).len(), 1);
        // A live rule without an age limit covers any age limit.
        let unlimited = [rule("level = 'debug'", None)];
        assert!(
            stricter_rules(&[rule("level = 'debug'", Some("1 day"))], Some(&unlimited)).is_empty()
        );
        assert!(stricter_rules(&[rule("level = 'debug'", None)], Some(&unlimited)).is_empty());
        // A renamed rule that deletes the same rows is not stricter; unknown live rules are.
        let mut renamed = rule("level = 'debug'", Some("30 days"));
        renamed.name = "other".into();
        assert!(stricter_rules(&[renamed.clone()], Some(&live)).is_empty());
        assert_eq!(stricter_rules(&[renamed], None).len(), 1);
        // A new batch size deletes the same rows.
        let mut batch = rule("level = 'debug'", Some("30 days"));
        batch.batch_size = 10;
        assert!(stricter_rules(&[batch], Some(&live)).is_empty());
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
        t.prune = Some(Prune {
            procedure: "prune_a".into(),
            body: "body".into(),
            rules: Some(vec![rule("x", Some("1 day"))]),
        });
        desired.tables.insert("public.a".into(), t.clone());
        let json = applied_state_json(&desired);
        let back = applied_table(&json, "public.a").unwrap();
        assert_eq!(back.settings, t.settings);
        assert_eq!(
            back.prune,
            Some(Some(AppliedPrune {
                procedure: "prune_a".into(),
                body_sha256: body_sha256("body"),
                rules: Some(vec![rule("x", Some("1 day"))]),
            }))
        );
        assert_eq!(back.schedule, Some(None));
        assert!(applied_table(&json, "public.b").is_none());
    }

    #[test]
    fn the_first_applied_state_document_is_still_read() {
        let json = serde_json::json!({"public.a": {
            "settings": {"retention": "14 days"},
            "procedure_sha256": "abc",
            "schedule": {"schedule": "* * * * *", "command": "SELECT 1"}}});
        let back = applied_table(&json, "public.a").unwrap();
        assert_eq!(
            back.settings.get("retention"),
            Some(&SettingValue::Text("14 days".into()))
        );
        assert_eq!(back.prune.unwrap().unwrap().body_sha256, "abc");
        assert_eq!(back.schedule.unwrap().unwrap().command, "SELECT 1");
    }

    #[test]
    fn live_rules_are_known_only_for_the_procedure_apply_made_or_the_one_wanted() {
        let rules = vec![rule("x", Some("1 day"))];
        let recorded = AppliedTable {
            prune: Some(Some(AppliedPrune {
                procedure: "prune_a".into(),
                body_sha256: body_sha256("made by apply"),
                rules: Some(rules.clone()),
            })),
            ..AppliedTable::default()
        };
        let want = Prune {
            procedure: "prune_a".into(),
            body: "wanted".into(),
            rules: Some(vec![rule("y", None)]),
        };
        assert_eq!(
            known_rules("made by apply", None, Some(&recorded), Some(&want)),
            Some(rules.clone())
        );
        assert_eq!(
            known_rules("wanted", None, Some(&recorded), Some(&want)),
            Some(vec![rule("y", None)])
        );
        assert_eq!(
            known_rules("edited by hand", None, Some(&recorded), Some(&want)),
            None
        );
        assert_eq!(known_rules("edited by hand", None, None, None), None);
        // What the creating statement recorded beside the procedure, for this body.
        let made_with = ProcedureRecord {
            body_sha256: body_sha256("made by psql"),
            rules: vec![rule("z", None)],
        };
        assert_eq!(
            known_rules("made by psql", Some(&made_with), None, Some(&want)),
            Some(vec![rule("z", None)])
        );
        assert_eq!(
            known_rules("edited by hand", Some(&made_with), None, None),
            None
        );
    }
}
