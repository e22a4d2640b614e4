//! The planner as a pure function: policies + a hand-made live state -> plan, no database.
//! Each test states one promise of `retentionc plan`.

mod plan_support;

use plan_support::*;
use retentionc::catalog::Extension;
use retentionc::plan::{ChangeKind, Plan, RuleEstimates, diff};
use retentionc::policy::error::PolicyErrors;
use retentionc::render::Renderer;

#[test]
fn an_empty_database_gets_everything_created() {
    let p = project(&[LOGS, EVENTS, SESSIONS]);
    let plan = plan(&p, &empty_live(&p));
    assert_eq!(
        kinds(&plan),
        vec![
            ("retention".into(), ChangeKind::Bootstrap),
            ("public.app_logs".into(), ChangeKind::Register),
            ("public.app_logs".into(), ChangeKind::CreateProcedure),
            ("public.app_logs".into(), ChangeKind::AddSchedule),
            ("public.events".into(), ChangeKind::Register),
            ("public.user_sessions".into(), ChangeKind::CreateProcedure),
        ]
    );
    let register = &plan.changes[4];
    let keys: Vec<&str> = register.statements.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["setup", "archive_schema", "retention", "privileges"]);
    assert!(
        register
            .settings
            .iter()
            .any(|s| s.column == "retention" && s.old.is_none() && s.new == "90 days")
    );
    assert_eq!(plan.format_version, 2);
    assert_eq!(plan.policy_hashes.len(), 3);
    assert!(plan.unmanaged_tables.is_empty());
}

#[test]
fn a_fully_applied_database_plans_no_changes() {
    let p = project(&[LOGS, EVENTS, SESSIONS]);
    let plan = plan(&p, &applied_live(&p));
    assert!(!plan.has_changes(), "{:#?}", plan.changes);
}

#[test]
fn planned_statements_are_the_generated_statements_verbatim() {
    let p = project(&[LOGS, EVENTS, SESSIONS]);
    let plan = plan(&p, &empty_live(&p));
    let files = retentionc::render::compile_project(&p.config, &p.policies);
    for change in &plan.changes {
        for s in &change.statements {
            let file = files
                .iter()
                .find(|f| f.file_name == s.file)
                .expect("statement names its generated file");
            assert_eq!(file.statement(&s.key).unwrap().sql, s.sql);
            assert!(file.text.contains(&s.sql));
        }
    }
}

#[test]
fn equal_intervals_written_differently_are_not_a_change() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    live.part_config[0].retention = Some("P14D".into());
    live.part_config[0].retention_parsed = Some(retentionc::model::Interval {
        months: 0,
        days: 0,
        micros: 14 * 86_400_000_000,
    });
    assert!(!plan(&p, &live).has_changes());
}

#[test]
fn shorter_retention_shows_old_and_new_and_what_would_expire() {
    let p = project(&[LOGS.replace("keep: 14 days", "keep: 2 hours").as_str()]);
    let mut live = applied_live(&project(&[LOGS]));
    live.children
        .insert("public.app_logs".into(), hourly_children(6));
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::RetentionSettings)]
    );
    let c = &plan.changes[0];
    assert_eq!(c.settings.len(), 1);
    assert_eq!(
        (c.settings[0].old.as_deref(), c.settings[0].new.as_str()),
        (Some("14 days"), "2 hours")
    );
    assert!(c.destructive);
    let impact = c.impact.as_ref().unwrap();
    // Children end 5h, 4h, 3h, 2h, 1h, 0h ago; keep 2 hours expires those ending before now - 2h.
    assert_eq!(impact.partitions, 3);
    assert_eq!(impact.estimated_rows, 300);
    assert_eq!(impact.from.as_deref(), Some("2026-11-25 06:00:00 UTC"));
    assert_eq!(impact.to.as_deref(), Some("2026-11-25 09:00:00 UTC"));
    assert_eq!(
        c.statements
            .iter()
            .map(|s| s.key.as_str())
            .collect::<Vec<_>>(),
        ["retention"]
    );
}

#[test]
fn longer_retention_is_not_destructive() {
    let p = project(&[LOGS.replace("keep: 14 days", "keep: 30 days").as_str()]);
    let mut live = applied_live(&project(&[LOGS]));
    live.children
        .insert("public.app_logs".into(), hourly_children(6));
    let plan = plan(&p, &live);
    assert!(!plan.changes[0].destructive);
    assert!(plan.changes[0].impact.is_none());
}

#[test]
fn registering_with_retention_reports_what_would_expire_at_once() {
    let p = project(&[LOGS.replace("keep: 14 days", "keep: 3 hours").as_str()]);
    let mut live = empty_live(&p);
    live.children
        .insert("public.app_logs".into(), hourly_children(6));
    let plan = plan(&p, &live);
    // The table has partitions already: it is adopted, keeping them.
    let register = plan
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::AdoptTable)
        .unwrap();
    assert!(register.destructive);
    assert_eq!(register.impact.as_ref().unwrap().partitions, 2);
}

#[test]
fn a_hand_edit_since_the_last_apply_is_drift_with_the_value_apply_restores() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    live.part_config[0].retention = Some("30 days".into());
    live.part_config[0].retention_parsed = Some(retentionc::model::Interval {
        months: 0,
        days: 30,
        micros: 0,
    });
    live.part_config[0].premake = 2;
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::Drift)]
    );
    let c = &plan.changes[0];
    assert!(c.drift);
    assert!(c.settings.iter().all(|s| s.drift));
    let retention = c.settings.iter().find(|s| s.column == "retention").unwrap();
    assert_eq!(
        (retention.old.as_deref(), retention.new.as_str()),
        (Some("30 days"), "14 days")
    );
    assert!(c.summary.contains("changed by hand"), "{}", c.summary);
}

#[test]
fn a_setting_whose_policy_changed_since_the_last_apply_is_a_change_not_drift() {
    let old = project(&[LOGS]);
    let new = project(&[LOGS.replace("keep: 14 days", "keep: 20 days").as_str()]);
    let mut live = applied_live(&old);
    with_last_apply(&mut live, &old);
    live.part_config[0].retention = Some("30 days".into());
    live.part_config[0].retention_parsed = Some(retentionc::model::Interval {
        months: 0,
        days: 30,
        micros: 0,
    });
    let plan = plan(&new, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::RetentionSettings)]
    );
    assert!(!plan.changes[0].drift);
}

#[test]
fn a_new_delete_rule_replaces_the_procedure_with_a_diff_and_is_destructive() {
    let rule = "  - name: health_checks\n    where: \"path = '/healthz'\"\n    older_than: 1 day\n";
    let text = LOGS.replace("schedule:", &format!("{rule}schedule:"));
    let p = project(&[text.as_str()]);
    let live = applied_live(&project(&[LOGS]));
    let wanted = retentionc::plan::diff::rules_to_estimate(&p, &live);
    let wanted: Vec<(String, String)> = wanted.into_iter().map(|w| (w.table, w.rule)).collect();
    assert_eq!(
        wanted,
        vec![("public.app_logs".to_string(), "health_checks".to_string())]
    );
    let mut estimates = RuleEstimates::new();
    estimates.insert(wanted[0].clone(), Some(1234));
    let plan = diff(&p, &live, &estimates).unwrap();
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::ReplaceProcedure)]
    );
    let c = &plan.changes[0];
    assert!(c.destructive);
    let impact = c.impact.as_ref().unwrap();
    assert_eq!(impact.rules.len(), 1);
    assert_eq!(impact.rules[0].estimated_rows, Some(1234));
    let body_diff = c.body_diff.as_ref().unwrap();
    assert!(
        body_diff.contains("+    -- Rule health_checks: path = '/healthz'"),
        "{body_diff}"
    );
    assert!(
        body_diff.starts_with("--- live\n+++ policy\n"),
        "{body_diff}"
    );
}

#[test]
fn a_new_batch_size_replaces_the_procedure_without_being_destructive() {
    let p = project(&[LOGS
        .replace(
            "older_than: 1 hour",
            "older_than: 1 hour\n    batch_size: 100",
        )
        .as_str()]);
    let live = applied_live(&project(&[LOGS]));
    assert!(retentionc::plan::diff::rules_to_estimate(&p, &live).is_empty());
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::ReplaceProcedure)]
    );
    assert!(!plan.changes[0].destructive);
}

#[test]
fn removing_every_delete_rule_drops_the_procedure() {
    let without =
        LOGS.split("deletes:").next().unwrap().to_string() + "schedule: \"*/5 * * * *\"\n";
    let p = project(&[without.as_str()]);
    let plan = plan(&p, &applied_live(&project(&[LOGS])));
    let kinds = kinds(&plan);
    assert!(
        kinds.contains(&("public.app_logs".into(), ChangeKind::DropProcedure)),
        "{kinds:?}"
    );
    let drop = plan
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::DropProcedure)
        .unwrap();
    let sql = &drop.statements[0].sql;
    assert!(
        sql.contains("DROP PROCEDURE IF EXISTS \"retention\".\"prune_app_logs\"(boolean)"),
        "{sql}"
    );
    // Dropped only where retentionc recorded making it for this very table.
    assert!(
        sql.contains("name = 'prune_app_logs' AND table_name = 'public.app_logs'"),
        "{sql}"
    );
    // The schedule's command changes too: maintenance only, no prune call.
    assert!(
        kinds.contains(&("public.app_logs".into(), ChangeKind::ChangeSchedule)),
        "{kinds:?}"
    );
}

#[test]
fn schedules_are_added_changed_and_removed() {
    let live = applied_live(&project(&[LOGS]));
    let changed = project(&[LOGS.replace("*/5 * * * *", "0 * * * *").as_str()]);
    let plan_changed = plan(&changed, &live);
    assert_eq!(
        kinds(&plan_changed),
        vec![("public.app_logs".into(), ChangeKind::ChangeSchedule)]
    );
    assert!(
        plan_changed.changes[0]
            .summary
            .contains("\"*/5 * * * *\" -> \"0 * * * *\""),
        "{}",
        plan_changed.changes[0].summary
    );
    let removed = project(&[LOGS.replace("schedule: \"*/5 * * * *\"\n", "").as_str()]);
    let plan_removed = plan(&removed, &live);
    assert_eq!(
        kinds(&plan_removed),
        vec![("public.app_logs".into(), ChangeKind::RemoveSchedule)]
    );
    assert!(
        plan_removed.changes[0].statements[0]
            .sql
            .contains("cron.unschedule")
    );
    let mut no_job = live.clone();
    no_job.jobs.clear();
    assert_eq!(
        kinds(&plan(&project(&[LOGS]), &no_job)),
        vec![("public.app_logs".into(), ChangeKind::AddSchedule)]
    );
}

#[test]
fn a_removed_policy_disables_retention_and_keeps_the_registration() {
    let before = project(&[LOGS, EVENTS]);
    let after = project(&[EVENTS]);
    let plan = plan(&after, &applied_live(&before));
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::PolicyRemoved)]
    );
    let c = &plan.changes[0];
    let keys: Vec<&str> = c.statements.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["retention", "prune", "schedule"]);
    assert!(c.statements[0].sql.contains("SET retention = NULL"));
    assert!(
        c.statements.iter().all(
            |s| !s.sql.contains("undo_partition") && !s.sql.contains("DELETE FROM \"partman\"")
        )
    );
    assert!(!c.destructive);
    assert!(plan.unmanaged_tables.is_empty());
}

#[test]
fn a_removed_policy_known_only_from_the_apply_history_is_disabled_too() {
    let before = project(&[EVENTS]);
    let mut live = applied_live(&before);
    live.managed_objects.clear();
    with_last_apply(&mut live, &before);
    let after = project(&[]);
    let plan = plan(&after, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.events".into(), ChangeKind::PolicyRemoved)]
    );
    let keys: Vec<&str> = plan.changes[0]
        .statements
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    // Recorded first (the history is the only record), then disabled.
    assert_eq!(keys, ["retention_owner", "retention"]);
    assert_eq!(
        plan.changes[0].statements[0].file,
        "_removed/public.events.sql"
    );
}

#[test]
fn tables_retentionc_never_managed_are_listed_and_left_alone() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    let mut other = live.part_config[0].clone();
    other.parent_table = "public.legacy".into();
    live.part_config.push(other);
    let plan = plan(&p, &live);
    assert!(!plan.has_changes());
    assert_eq!(plan.unmanaged_tables, vec!["public.legacy".to_string()]);
}

#[test]
fn a_removed_and_disabled_policy_is_no_longer_a_change() {
    let before = project(&[EVENTS]);
    let mut live = applied_live(&before);
    live.part_config[0].retention = None;
    live.part_config[0].retention_parsed = None;
    let plan = plan(&project(&[]), &live);
    assert!(!plan.has_changes(), "{:#?}", plan.changes);
    assert_eq!(plan.unmanaged_tables, vec!["public.events".to_string()]);
}

#[test]
fn a_different_maintain_function_is_a_bootstrap_change() {
    let p = project(&[EVENTS]);
    let mut live = applied_live(&p);
    live.routines[0].body = "\nBEGIN\n  RETURN NULL;\nEND\n".into();
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("retention".into(), ChangeKind::Bootstrap)]
    );
    assert!(plan.changes[0].body_diff.is_some());
    assert!(
        plan.changes[0]
            .summary
            .contains("replace function retention.maintain"),
        "{}",
        plan.changes[0].summary
    );
    assert_eq!(plan.changes[0].statements.len(), 11);
    assert!(
        plan.changes[0]
            .statements
            .iter()
            .all(|s| s.file == "_retentionc.sql")
    );
}

#[test]
fn a_missing_delete_in_batches_procedure_is_a_bootstrap_change() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    live.routines.retain(|r| r.name != "delete_in_batches");
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("retention".into(), ChangeKind::Bootstrap)]
    );
    assert!(
        plan.changes[0]
            .summary
            .contains("create procedure retention.delete_in_batches"),
        "{}",
        plan.changes[0].summary
    );
}

#[test]
fn the_fingerprint_follows_settings_not_partitions_or_time() {
    let p = project(&[LOGS]);
    let live = applied_live(&p);
    let a = plan(&p, &live).live_fingerprint;
    let mut later = live.clone();
    later.now = now() + chrono::TimeDelta::hours(1);
    later
        .children
        .insert("public.app_logs".into(), hourly_children(3));
    assert_eq!(plan(&p, &later).live_fingerprint, a);
    let mut edited = live.clone();
    edited.part_config[0].premake = 1;
    assert_ne!(plan(&p, &edited).live_fingerprint, a);
    assert_eq!(a.len(), 64);
}

// ---- plan-time checks: each names the policy file, line, column and key ----

#[test]
fn a_missing_table_is_an_error_at_table() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    live.tables.clear();
    let e = errors(&p, &live);
    assert!(
        e.contains("policies/p0.yaml:1:1: table: table public.app_logs does not exist"),
        "{e}"
    );
}

#[test]
fn a_partition_column_that_is_not_the_key_is_an_error() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    let t = live.tables.get_mut("public.app_logs").unwrap();
    t.partition_key = vec!["id".into()];
    let e = errors(&p, &live);
    assert!(e.contains("policies/p0.yaml:3:3: partitioning.column: public.app_logs is partitioned by RANGE (id), not by logged_at"), "{e}");
}

#[test]
fn a_plain_table_under_partitioning_is_a_conversion_with_its_steps_and_statements() {
    let p = project(&[LOGS]);
    let mut live = empty_live(&p);
    let t = live.tables.get_mut("public.app_logs").unwrap();
    t.relkind = "r".into();
    t.partition_strategy = None;
    live.conversions.insert(
        "public.app_logs".into(),
        retentionc::convert::facts::ConversionFacts {
            bytes: 300 << 20,
            estimated_rows: 3_000_000.0,
            keys_extended: vec![("app_logs_pkey".into(), vec!["id".into()])],
            ..Default::default()
        },
    );
    let plan = diff(&p, &live, &Default::default()).unwrap();
    let c = plan
        .changes
        .iter()
        .find(|c| c.table == "public.app_logs")
        .unwrap();
    assert_eq!(c.kind, ChangeKind::ConvertTable);
    assert!(!c.destructive);
    assert!(
        c.summary
            .contains("(about 3,000,000 rows, 300 MB; about 30 s;"),
        "{}",
        c.summary
    );
    let conversion = c.conversion.as_ref().unwrap();
    assert_eq!(
        conversion.keys_extended,
        ["app_logs_pkey (id) -> (id, logged_at)"]
    );
    assert!(conversion.steps.iter().any(|s| s.contains("swap names")));
    // Its statements are the conversion file's, then the owner's rights from the policy's.
    let refs: Vec<(String, String)> = c
        .statements
        .iter()
        .map(|s| (s.file.clone(), s.key.clone()))
        .collect();
    assert_eq!(
        refs.first().unwrap(),
        &(
            "public.app_logs.convert.sql".to_string(),
            "state".to_string()
        )
    );
    assert!(refs.contains(&(
        "public.app_logs.convert.sql".to_string(),
        "swap".to_string()
    )));
    assert_eq!(
        refs.last().unwrap(),
        &("public.app_logs.sql".to_string(), "privileges".to_string())
    );
    // Nothing else of the table is planned before it is converted.
    assert_eq!(
        plan.changes
            .iter()
            .filter(|c| c.table == "public.app_logs")
            .count(),
        1
    );
}

#[test]
fn a_plain_table_that_cannot_be_converted_is_an_error_at_partitioning() {
    let p = project(&[LOGS]);
    let mut live = empty_live(&p);
    let t = live.tables.get_mut("public.app_logs").unwrap();
    t.relkind = "r".into();
    t.partition_strategy = None;
    live.conversions.insert(
        "public.app_logs".into(),
        retentionc::convert::facts::ConversionFacts {
            problems: vec!["public.app_logs has no primary key; rows written during the conversion are tracked by primary key".into()],
            ..Default::default()
        },
    );
    let e = errors(&p, &live);
    assert!(
        e.contains(
            "policies/p0.yaml:2:1: partitioning: public.app_logs is a plain table, and cannot be converted to a partitioned one online: public.app_logs has no primary key"
        ),
        "{e}"
    );
}

#[test]
fn list_partitioning_is_an_error() {
    let p = project(&[LOGS]);
    let mut live = empty_live(&p);
    live.tables
        .get_mut("public.app_logs")
        .unwrap()
        .partition_strategy = Some("l".into());
    assert!(errors(&p, &live).contains("partitioning: public.app_logs is partitioned by LIST"));
}

#[test]
fn wrong_column_types_are_errors() {
    let p = project(&[LOGS]);
    let mut live = empty_live(&p);
    let t = live.tables.get_mut("public.app_logs").unwrap();
    t.columns
        .iter_mut()
        .find(|c| c.name == "logged_at")
        .unwrap()
        .type_name = "text".into();
    let e = errors(&p, &live);
    assert!(e.contains("partitioning.column: column logged_at of public.app_logs is text; expected timestamptz, timestamp or date"), "{e}");
    assert!(
        e.contains("deletes[0].older_than: column logged_at of public.app_logs is text"),
        "{e}"
    );

    let s = project(&[SESSIONS]);
    let mut live = empty_live(&s);
    live.tables
        .get_mut("public.user_sessions")
        .unwrap()
        .columns
        .retain(|c| c.name != "last_seen_at");
    let e = errors(&s, &live);
    assert!(e.contains("policies/p0.yaml:6:5: deletes[0].column: column last_seen_at does not exist in public.user_sessions"), "{e}");
}

#[test]
fn pg_partman_must_be_installed_where_and_as_configured() {
    let p = project(&[LOGS]);
    let mut live = empty_live(&p);
    live.partman = None;
    assert!(
        errors(&p, &live)
            .contains("partitioning: partitioning needs pg_partman, which is not installed")
    );
    live.partman = Some(Extension {
        version: "4.7.2".into(),
        schema: "partman".into(),
    });
    let e = errors(&p, &live);
    assert!(
        e.contains("the database has pg_partman 4.7.2, but the SQL was compiled for pg_partman 5"),
        "{e}"
    );
    live.partman = Some(Extension {
        version: "5.2.4".into(),
        schema: "public".into(),
    });
    assert!(errors(&p, &live).contains(
        "pg_partman is installed in schema public, but retentionc.yaml says partman_schema: partman"
    ));
    let v4 = project_with("partman_version: 4\n", &[LOGS]);
    live.partman = Some(Extension {
        version: "4.7.2".into(),
        schema: "partman".into(),
    });
    assert!(diff(&v4, &live, &RuleEstimates::new()).is_ok());
}

#[test]
fn a_schedule_needs_pg_cron() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    live.cron = None;
    live.jobs.clear();
    let e = errors(&p, &live);
    assert!(
        e.contains("policies/p0.yaml:12:1: schedule: a schedule needs pg_cron"),
        "{e}"
    );
}

#[test]
fn an_existing_partition_set_cannot_be_reshaped() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    live.part_config[0].partition_interval = "1 day".into();
    live.part_config[0].partition_interval_parsed = Some(retentionc::model::Interval {
        months: 0,
        days: 1,
        micros: 0,
    });
    live.part_config[0].epoch = "seconds".into();
    live.part_config[0].control = "id".into();
    let e = errors(&p, &live);
    assert!(e.contains("partitioning.interval: public.app_logs is registered with pg_partman with partitions of 1 day, not 1 hour"), "{e}");
    assert!(e.contains("partitioning.epoch: public.app_logs is registered with pg_partman with epoch seconds, not none"), "{e}");
    assert!(e.contains("partitioning.column: public.app_logs is registered with pg_partman on column id, not logged_at"), "{e}");
    let parsed: Result<Plan, PolicyErrors> = diff(&p, &live, &RuleEstimates::new());
    assert_eq!(parsed.unwrap_err().0.len(), 3);
}

#[test]
fn settings_of_a_policy_without_partitioning_are_left_alone() {
    // A delete-only policy on a table pg_partman manages: part_config is not touched.
    let p = project(&[SESSIONS]);
    let mut live = applied_live(&p);
    let mut row = applied_live(&project(&[EVENTS])).part_config[0].clone();
    row.parent_table = "public.user_sessions".into();
    live.part_config.push(row);
    let plan = plan(&p, &live);
    assert!(!plan.has_changes(), "{:#?}", plan.changes);
    assert!(plan.unmanaged_tables.is_empty());
}

#[test]
fn removing_a_delete_only_policy_leaves_a_retention_retentionc_never_set() {
    let before = project(&[SESSIONS]);
    let mut live = applied_live(&before);
    let mut row = applied_live(&project(&[EVENTS])).part_config[0].clone();
    row.parent_table = "public.user_sessions".into();
    live.part_config.push(row);
    let plan = plan(&project(&[]), &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.user_sessions".into(), ChangeKind::PolicyRemoved)]
    );
    let keys: Vec<&str> = plan.changes[0]
        .statements
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(keys, ["prune"]);
    assert!(plan.changes[0].settings.is_empty());
}

/// What a plan decides about data: which changes destroy data, and which rules would
/// delete rows the live rules keep.
fn classification(plan: &Plan) -> Vec<(String, bool, Vec<String>)> {
    plan.changes
        .iter()
        .filter(|c| c.destructive || c.impact.is_some())
        .map(|c| {
            let rules = c
                .impact
                .as_ref()
                .map(|i| i.rules.iter().map(|r| r.rule.clone()).collect())
                .unwrap_or_default();
            (c.table.clone(), c.destructive, rules)
        })
        .collect()
}

#[test]
fn a_comment_reworded_in_a_template_changes_no_plans_classification() {
    let shipped = Renderer::new();
    let prune = shipped.template_source("prune_body.sql.j2").unwrap();
    assert!(prune.contains("-- Rule {{ rule.name }}:"));
    let reworded = Renderer::new().with_template_source(
        "prune_body.sql.j2",
        prune
            .replace(
                "-- Rule {{ rule.name }}:",
                "-- Deletes, as rule {{ rule.name }}:",
            )
            .replace("-- Cutoffs are fixed", "-- Every cutoff is fixed"),
    );
    let logs_with = |rule: &str| LOGS.replace("schedule:", &format!("{rule}schedule:"));
    let relaxed = LOGS.replace("older_than: 1 hour", "older_than: 2 hours");
    let stricter = LOGS.replace("older_than: 1 hour", "older_than: 30 minutes");
    let batch = LOGS.replace(
        "older_than: 1 hour",
        "older_than: 1 hour\n    batch_size: 10",
    );
    let new_rule = logs_with("  - name: health_checks\n    where: \"path = '/healthz'\"\n");
    let scenarios: [(&str, &str, &str); 5] = [
        ("unchanged", LOGS, LOGS),
        ("relaxed", LOGS, &relaxed),
        ("stricter", LOGS, &stricter),
        ("batch size", LOGS, &batch),
        ("new rule", LOGS, &new_rule),
    ];
    let mut stricter_seen = 0;
    for (what, before, after) in scenarios {
        let live = applied_live(&project(&[before]));
        let after = project(&[after]);
        let estimates = RuleEstimates::new();
        let as_shipped = retentionc::plan::diff::diff_with(&after, &live, &estimates, &shipped)
            .unwrap_or_else(|e| panic!("{e}"));
        let as_reworded = retentionc::plan::diff::diff_with(&after, &live, &estimates, &reworded)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            classification(&as_shipped),
            classification(&as_reworded),
            "{what}"
        );
        stricter_seen += classification(&as_shipped).len();
    }
    // The stricter rule and the new rule were classified destructive both ways.
    assert_eq!(stricter_seen, 2);
}
