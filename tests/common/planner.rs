//! Fixtures for the pure planner (`plan::diff`, no database): projects made by the
//! test-project builder from policy text, and hand-made live states.

use chrono::{DateTime, Utc};
use retentionc::catalog::{
    BootstrapObjects, ChildPartition, Column, CronJob, Extension, LastApply, Live, ManagedObject,
    PartConfigRow, Routine, TableInfo,
};
use retentionc::model::{ProcedureRecord, Project, Retention};
use retentionc::plan::{ChangeKind, Plan, RuleEstimates, diff};
use retentionc::render::{Renderer, SettingValue, part_config_settings, schedule_command};
use retentionc::state;

use crate::common::project::TestProject;

pub const LOGS: &str = "\
table: public.app_logs
partitioning:
  column: logged_at
  interval: 1 hour
  premake: 6
retention:
  keep: 14 days
deletes:
  - name: debug_rows
    where: \"level = 'debug'\"
    older_than: 1 hour
schedule: \"*/5 * * * *\"
";

pub const EVENTS: &str = "\
table: public.events
partitioning:
  column: created_at
  interval: 1 day
retention:
  keep: 90 days
  expired: archive
  archive_schema: archive
";

pub const SESSIONS: &str = "\
table: public.user_sessions
deletes:
  - name: revoked
    where: \"revoked\"
    older_than: 1 day
    column: last_seen_at
";

/// The project of retentionc.yaml `config_text` and one policy file per text
/// (`policies/p0.yaml`, `policies/p1.yaml`, ...), as the library loads it.
pub fn project_with(config_text: &str, policies: &[&str]) -> Project {
    let mut builder = TestProject::new().config(config_text);
    for (i, text) in policies.iter().enumerate() {
        builder = builder.policy(&format!("p{i}"), text);
    }
    builder.load()
}

pub fn project(policies: &[&str]) -> Project {
    project_with("", policies)
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn setting<'a>(settings: &'a [retentionc::render::Setting], column: &str) -> &'a SettingValue {
    &settings.iter().find(|s| s.column == column).unwrap().value
}

pub fn setting_text(v: &SettingValue) -> Option<String> {
    match v {
        SettingValue::Text(t) => Some(t.clone()),
        _ => None,
    }
}

/// What running generated/ with psql leaves behind: everything as the policies say,
/// no apply history.
pub fn applied_live(project: &Project) -> Live {
    let renderer = Renderer::new();
    let config = &project.config;
    let mut live = Live {
        now: now(),
        partman: Some(Extension {
            version: "5.2.4".into(),
            schema: "partman".into(),
        }),
        cron: Some(Extension {
            version: "1.4-1".into(),
            schema: "cron".into(),
        }),
        bootstrap: BootstrapObjects {
            schema: true,
            apply_history: true,
            run_log: true,
            run_log_index: true,
            managed_objects: true,
        },
        routines: renderer
            .bootstrap_routines(config)
            .into_iter()
            .map(|r| Routine {
                name: r.name.into(),
                kind: r.kind.into(),
                arguments: String::new(),
                body: r.body,
                public_execute: false,
            })
            .collect(),
        ..Live::default()
    };
    for policy in &project.policies {
        let table = policy.table.to_string();
        let mut columns = vec![
            Column {
                name: "id".into(),
                type_name: "bigint".into(),
            },
            Column {
                name: "level".into(),
                type_name: "text".into(),
            },
        ];
        let mut info = TableInfo {
            relkind: "r".into(),
            partition_strategy: None,
            partition_key: vec![],
            key_count: 0,
            columns: vec![],
            extension_member: false,
            persistence: "p".into(),
            owner: "app_owner".into(),
            not_null_columns: vec![],
        };
        if let Some(p) = &policy.partitioning {
            columns.push(Column {
                name: p.column.to_string(),
                type_name: "timestamp with time zone".into(),
            });
            info.relkind = "p".into();
            info.partition_strategy = Some("r".into());
            info.partition_key = vec![p.column.to_string()];
            info.key_count = 1;
            info.not_null_columns = vec![p.column.to_string()];
            if policy.retention.is_some() {
                live.managed_objects.push(ManagedObject {
                    kind: "retention".into(),
                    name: table.clone(),
                    table: table.clone(),
                    detail: serde_json::json!({}),
                });
            }
            let settings = part_config_settings(policy);
            let retention = setting_text(setting(&settings, "retention"));
            live.part_config.push(PartConfigRow {
                parent_table: table.clone(),
                control: p.column.to_string(),
                partition_interval: p.interval.to_string(),
                partition_interval_parsed: Some(p.interval),
                premake: p.premake as i64,
                retention_parsed: policy.retention.as_ref().map(|r: &Retention| r.keep),
                retention,
                retention_schema: setting_text(setting(&settings, "retention_schema")),
                retention_keep_table: policy
                    .retention
                    .as_ref()
                    .map(|r| r.expired.name() != "drop")
                    .unwrap_or(true),
                retention_keep_index: policy
                    .retention
                    .as_ref()
                    .map(|r| r.keep_index)
                    .unwrap_or(true),
                infinite_time_partitions: true,
                epoch: "none".into(),
            });
        }
        for rule in &policy.deletes {
            if let Some(c) = &rule.column
                && !columns.iter().any(|x| x.name == c.as_str())
            {
                columns.push(Column {
                    name: c.to_string(),
                    type_name: "timestamp with time zone".into(),
                });
            }
        }
        info.columns = columns;
        live.tables.insert(table.clone(), info);
        if let Some(name) = policy.prune_procedure() {
            let body = renderer.prune_body(config, policy);
            live.managed_objects.push(ManagedObject {
                kind: "procedure".into(),
                name: name.to_string(),
                table: table.clone(),
                detail: serde_json::to_value(ProcedureRecord::new(&body, policy)).unwrap(),
            });
            live.routines.push(Routine {
                name: name.to_string(),
                kind: "p".into(),
                arguments: "p_run_maintenance boolean".into(),
                body: renderer.prune_body(config, policy),
                public_execute: false,
            });
        }
        if let Some(s) = &policy.schedule {
            live.jobs.push(CronJob {
                name: policy.job_name(),
                schedule: s.clone(),
                command: schedule_command(config, policy),
                database: "db".into(),
                username: "app_owner".into(),
            });
        }
    }
    live
}

/// A database with retentionc's tables and policies' tables, nothing else.
pub fn empty_live(project: &Project) -> Live {
    let mut live = applied_live(project);
    live.part_config.clear();
    live.routines.clear();
    live.jobs.clear();
    live.managed_objects.clear();
    live.bootstrap = BootstrapObjects::default();
    live
}

pub fn plan(project: &Project, live: &Live) -> Plan {
    diff(project, live, &RuleEstimates::new()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn errors(project: &Project, live: &Live) -> String {
    diff(project, live, &RuleEstimates::new())
        .map(|_| ())
        .expect_err("plan-time error")
        .to_string()
}

pub fn kinds(plan: &Plan) -> Vec<(String, ChangeKind)> {
    plan.changes
        .iter()
        .map(|c| (c.table.clone(), c.kind))
        .collect()
}

/// Hourly children of public.app_logs from `hours_ago` hours ago to now, 100 rows each.
pub fn hourly_children(hours_ago: i64) -> Vec<ChildPartition> {
    let mut children: Vec<ChildPartition> = (0..hours_ago)
        .map(|h| {
            let from = now() - chrono::TimeDelta::hours(hours_ago - h);
            let to = from + chrono::TimeDelta::hours(1);
            let f = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S+00").to_string();
            ChildPartition {
                name: format!("public.app_logs_p{}", from.format("%Y%m%d_%H%M%S")),
                bound: format!("FOR VALUES FROM ('{}') TO ('{}')", f(from), f(to)),
                estimated_rows: 100.0,
            }
        })
        .collect();
    children.push(ChildPartition {
        name: "public.app_logs_default".into(),
        bound: "DEFAULT".into(),
        estimated_rows: 5.0,
    });
    children
}

pub fn with_last_apply(live: &mut Live, project: &Project) {
    let desired = state::desired(project, &Renderer::new());
    live.last_apply = Some(LastApply {
        id: 7,
        applied_at: now(),
        policy_hashes: project
            .policies
            .iter()
            .map(|p| (p.table.to_string(), p.hash()))
            .collect(),
        applied_state: state::applied_state_json(&desired),
    });
}
