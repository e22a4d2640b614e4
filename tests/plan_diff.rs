//! The planner as a pure function: policies + a hand-made live state -> plan, no database.
//! Each test states one promise of `retentionc plan`.

mod common;

use common::planner::*;
use retentionc::catalog::Extension;
use retentionc::plan::{ChangeKind, Plan, RuleEstimates, diff};
use retentionc::policy::error::PolicyErrors;
use retentionc::render::{Renderer, SettingValue};

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
    assert_eq!(impact.estimated_rows, 1234);
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
    // The whole of _retentionc.sql, which is idempotent, in its order.
    let bootstrap = retentionc::render::Renderer::new().bootstrap(&p.config);
    assert_eq!(
        plan.changes[0]
            .statements
            .iter()
            .map(|s| (s.file.as_str(), s.key.as_str()))
            .collect::<Vec<_>>(),
        bootstrap
            .statements
            .iter()
            .map(|s| ("_retentionc.sql", s.key.as_str()))
            .collect::<Vec<_>>()
    );
    assert_eq!(bootstrap.statements.len(), 12);
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

/// The fill goes oldest first when an index on the partition column exists, in heap order
/// (and plan says how to change that) when none does; a fill under way keeps the order it
/// started in, and plan shows where it stands.
#[test]
fn plan_shows_the_fills_order_and_where_a_fill_under_way_stands() {
    let p = project(&[LOGS]);
    let step = |facts: retentionc::convert::facts::ConversionFacts| {
        let mut live = empty_live(&p);
        let t = live.tables.get_mut("public.app_logs").unwrap();
        t.relkind = "r".into();
        t.partition_strategy = None;
        live.conversions.insert("public.app_logs".into(), facts);
        let plan = diff(&p, &live, &Default::default()).unwrap();
        let c = plan
            .changes
            .into_iter()
            .find(|c| c.table == "public.app_logs")
            .unwrap();
        let copy = c.conversion.as_ref().unwrap().steps[2].clone();
        (copy, c.summary)
    };
    let indexed = retentionc::convert::facts::ConversionFacts {
        estimated_rows: 1_000_000.0,
        time_index: Some("app_logs_logged_at_idx".into()),
        ..Default::default()
    };
    let (copy, _) = step(indexed.clone());
    assert!(
        copy.starts_with(
            "copy the rows in committed batches, oldest first (ranges of logged_at on the index app_logs_logged_at_idx)"
        ),
        "{copy}"
    );
    let (copy, _) = step(retentionc::convert::facts::ConversionFacts {
        time_index: None,
        ..indexed.clone()
    });
    assert!(
        copy.starts_with(
            "copy the rows in committed batches, in heap order (no index on logged_at to walk oldest first; CREATE INDEX CONCURRENTLY ON public.app_logs (logged_at) before the conversion starts makes it oldest first)"
        ),
        "{copy}"
    );
    // Started in heap order, an index made since changes nothing; half done, half the time.
    let (copy, summary) = step(retentionc::convert::facts::ConversionFacts {
        progress: Some(retentionc::convert::facts::Progress {
            phase: "filling".into(),
            fill_order: "heap".into(),
            progress: Some("page 500 of 1000".into()),
            progress_share: 0.5,
            rows_copied: 400_000,
        }),
        ..indexed.clone()
    });
    assert!(copy.contains(", in heap order ("), "{copy}");
    assert!(
        summary.contains("(400,000 rows copied so far, page 500 of 1000); about 5 s left"),
        "{summary}"
    );
    let (copy, summary) = step(retentionc::convert::facts::ConversionFacts {
        progress: Some(retentionc::convert::facts::Progress {
            phase: "filling".into(),
            fill_order: "time".into(),
            progress: Some("every row copied".into()),
            progress_share: 1.0,
            rows_copied: 900_000,
        }),
        ..indexed
    });
    assert!(copy.contains(", oldest first ("), "{copy}");
    assert!(
        summary.contains("(all 900,000 rows copied); about a second left"),
        "{summary}"
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

/// pg_partman reads a bare number in `retention` as seconds on a time-based set, so a live
/// `1209600` (which the catalog cannot read as an interval) is the policy's `14 days`: no
/// change. A negative number, or a number on a set that is not time-based, is not seconds
/// and stays the text it is.
#[test]
fn a_bare_number_in_part_config_retention_is_seconds_on_a_time_based_set_only() {
    let p = project(&[LOGS]);
    let renderer = Renderer::new();
    let desired = retentionc::state::desired(&p, &renderer);
    let live_retention = |raw: &str, time_based: bool| {
        let mut live = applied_live(&p);
        let row = live
            .part_config
            .iter_mut()
            .find(|r| r.parent_table == "public.app_logs")
            .unwrap();
        row.retention = Some(raw.to_string());
        row.retention_parsed = None;
        if !time_based {
            row.partition_interval_parsed = None;
        }
        let state = retentionc::state::live(&live, &desired);
        state.tables["public.app_logs"].settings["retention"].clone()
    };
    // Read as 1,209,600 seconds, written in hours; compared as an interval (see below).
    let days_14 = SettingValue::Text("336 hours".into());
    assert_eq!(live_retention("1209600", true), days_14);
    assert_eq!(live_retention(" 1209600 ", true), days_14);
    assert_eq!(
        live_retention("1209600", false),
        SettingValue::Text("1209600".into())
    );
    assert_eq!(
        live_retention("-1209600", true),
        SettingValue::Text("-1209600".into())
    );
    assert_ne!(live_retention("0", true), SettingValue::Text("0".into()));

    // Through the planner: the bare number is no change.
    let mut live = applied_live(&p);
    for row in &mut live.part_config {
        row.retention = Some("1209600".into());
        row.retention_parsed = None;
    }
    let plan = plan(&p, &live);
    assert!(!plan.has_changes(), "{:#?}", plan.changes);
}

/// An earlier version's overload of one of retentionc's routines may linger beside the
/// current one (a routine whose arguments changed): the current body is found, in whichever
/// order the catalog lists them, and nothing is planned.
#[test]
fn a_lingering_older_overload_beside_the_current_routine_is_no_change() {
    let p = project(&[EVENTS]);
    for older_first in [true, false] {
        let mut live = applied_live(&p);
        let mut older = live.routines[0].clone();
        older.arguments = "p_parent text".into();
        older.body = "\nBEGIN\n  RETURN NULL;\nEND\n".into();
        if older_first {
            live.routines.insert(0, older);
        } else {
            live.routines.push(older);
        }
        let plan = plan(&p, &live);
        assert!(!plan.has_changes(), "{:#?}", plan.changes);
    }
}

/// A delete rule's estimate leaves out the partitions the same run's maintenance drops
/// first: plan asks for the estimate from the partition column's lowest surviving value,
/// the upper bound of the newest expired child; with nothing expiring, from nowhere.
#[test]
fn a_rule_is_estimated_from_the_first_partition_that_survives_maintenance() {
    let p = project(&[LOGS]);
    // 14 days kept: of 16 days of hourly children, the oldest 47 expire; the 48th ends
    // exactly at the cutoff, and a child expires only once it ends before it.
    let mut live = empty_live(&p);
    let children = hourly_children(16 * 24);
    let newest_expired_upper = {
        let bound = &children[46].bound;
        let to = bound.split("TO ('").nth(1).unwrap();
        to.trim_end_matches("')").to_string()
    };
    live.children.insert("public.app_logs".into(), children);
    let wanted = diff::rules_to_estimate(&p, &live);
    assert_eq!(wanted.len(), 1, "{wanted:?}");
    assert_eq!(wanted[0].table, "public.app_logs");
    assert_eq!(wanted[0].rule, "debug_rows");
    let (column, from) = wanted[0].survivors_from.clone().expect("partitions expire");
    assert_eq!(column, "logged_at");
    assert_eq!(from, newest_expired_upper);

    let mut young = empty_live(&p);
    young
        .children
        .insert("public.app_logs".into(), hourly_children(6));
    let wanted = diff::rules_to_estimate(&p, &young);
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].survivors_from, None);
}

/// Drift is told from the recorded apply for every kind of setting: a boolean
/// (`retention_keep_table`) and an integer (`premake`) edited by hand are drift too.
#[test]
fn a_hand_edited_boolean_or_integer_setting_is_drift() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    live.part_config[0].retention_keep_table = !live.part_config[0].retention_keep_table;
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::Drift)]
    );
    let setting = &plan.changes[0].settings;
    assert_eq!(setting.len(), 1, "{setting:?}");
    assert_eq!(setting[0].column, "retention_keep_table");
    assert!(setting[0].drift);

    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    live.part_config[0].premake += 3;
    let premake_plan = common::planner::plan(&p, &live);
    assert_eq!(
        kinds(&premake_plan),
        vec![("public.app_logs".into(), ChangeKind::Drift)]
    );
}

/// A table that only retentionc's records name (its retention once recorded, its
/// registration since removed by hand) and no policy wants is neither a change nor an
/// unmanaged pg_partman set.
#[test]
fn a_table_known_only_from_retentioncs_records_is_not_listed_as_unmanaged() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    let mut record = live
        .managed_objects
        .iter()
        .find(|o| o.kind == "retention")
        .cloned()
        .expect("applied_live records the retention it set");
    record.table = "public.gone".into();
    record.name = "public.gone".into();
    live.managed_objects.push(record);
    let plan = plan(&p, &live);
    assert!(!plan.has_changes(), "{:#?}", plan.changes);
    assert!(
        plan.unmanaged_tables.is_empty(),
        "{:?}",
        plan.unmanaged_tables
    );
}

/// Only a retention that starts or gets shorter has an impact: a change of another setting
/// beside an unchanged retention expires nothing and is not destructive, even with
/// partitions older than the retention waiting for the next maintenance.
#[test]
fn a_setting_change_beside_an_unchanged_retention_is_not_destructive() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    live.children
        .insert("public.app_logs".into(), hourly_children(16 * 24));
    live.part_config[0].premake = 1;
    let plan = plan(&p, &live);
    assert_eq!(
        kinds(&plan),
        vec![("public.app_logs".into(), ChangeKind::RetentionSettings)]
    );
    assert!(!plan.changes[0].destructive);
    assert!(
        plan.changes[0].impact.is_none(),
        "{:?}",
        plan.changes[0].impact
    );
}

/// Registering a table whose partitions are all inside the new retention expires nothing:
/// not destructive.
#[test]
fn registering_a_table_with_nothing_to_expire_is_not_destructive() {
    let p = project(&[LOGS]);
    let mut live = empty_live(&p);
    live.children
        .insert("public.app_logs".into(), hourly_children(6));
    let plan = plan(&p, &live);
    let register = plan
        .changes
        .iter()
        .find(|c| c.table == "public.app_logs" && c.impact.is_some())
        .expect("registering reports its impact");
    assert_eq!(register.impact.as_ref().unwrap().partitions, 0);
    assert!(!register.destructive);
}

/// Summaries count in words that agree: one rule, two rules.
#[test]
fn summaries_say_rule_or_rules_as_counted() {
    let one = project(&[LOGS]);
    let plan_one = plan(&one, &empty_live(&one));
    let create = |plan: &Plan| {
        plan.changes
            .iter()
            .find(|c| c.kind == ChangeKind::CreateProcedure && c.table == "public.app_logs")
            .map(|c| c.summary.clone())
            .unwrap()
    };
    let summary = create(&plan_one);
    assert!(
        summary.starts_with("create the prune procedure (1 delete rule)"),
        "{summary}"
    );
    assert!(
        summary.contains("; new or stricter delete rule: debug_rows"),
        "{summary}"
    );

    let two = project(&[LOGS
        .replace(
            "schedule:",
            "  - name: trace_rows\n    where: \"level = 'trace'\"\n    older_than: 1 hour\nschedule:",
        )
        .as_str()]);
    let summary = create(&plan(&two, &empty_live(&two)));
    assert!(
        summary.starts_with("create the prune procedure (2 delete rules)"),
        "{summary}"
    );
    assert!(
        summary.contains("; new or stricter delete rules: debug_rows, trace_rows"),
        "{summary}"
    );
}

/// An owner lacking the rights its retention needs gets a change granting them, unless
/// another change of the same table runs the grants already; an owner with every right
/// gets none.
#[test]
fn missing_owner_rights_are_granted_once() {
    use retentionc::catalog::OwnerRights;
    let p = project(&[LOGS]);
    let lacking = || OwnerRights {
        owner: "app_owner".into(),
        missing: vec!["USAGE ON SCHEMA retention".into()],
    };

    let mut live = applied_live(&p);
    live.owner_rights
        .insert("public.app_logs".into(), lacking());
    let plan_rights = plan(&p, &live);
    assert_eq!(
        kinds(&plan_rights),
        vec![("public.app_logs".into(), ChangeKind::OwnerRights)]
    );
    let c = &plan_rights.changes[0];
    assert!(c.summary.contains("app_owner"), "{}", c.summary);
    assert_eq!(
        c.notes,
        vec!["missing: USAGE ON SCHEMA retention".to_string()]
    );
    let keys: Vec<&str> = c.statements.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["privileges"]);

    // Registering runs `[privileges]` itself: no second grant.
    let mut live = empty_live(&p);
    live.owner_rights
        .insert("public.app_logs".into(), lacking());
    let plan_register = plan(&p, &live);
    assert!(
        !plan_register
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::OwnerRights),
        "{:#?}",
        kinds(&plan_register)
    );

    // A change that does not grant (a setting) leaves the grant to a change of its own.
    let mut live = applied_live(&p);
    live.owner_rights
        .insert("public.app_logs".into(), lacking());
    live.part_config[0].premake = 1;
    assert_eq!(
        kinds(&plan(&p, &live)),
        vec![
            ("public.app_logs".into(), ChangeKind::RetentionSettings),
            ("public.app_logs".into(), ChangeKind::OwnerRights)
        ]
    );

    let mut live = applied_live(&p);
    live.owner_rights.insert(
        "public.app_logs".into(),
        OwnerRights {
            owner: "app_owner".into(),
            missing: Vec::new(),
        },
    );
    assert!(!plan(&p, &live).has_changes());
}

/// The prune procedure, as the last apply left it: edited by hand since is drift, restored
/// as recorded; replaced because the policy changed is not drift; made again after a hand
/// drop is drift but still says it creates it.
#[test]
fn a_prune_procedure_changed_by_hand_is_drift_and_a_policy_change_is_not() {
    let p = project(&[LOGS]);
    let prune_of = |live: &mut retentionc::catalog::Live| -> usize {
        live.routines
            .iter()
            .position(|r| r.name.starts_with("prune_"))
            .expect("applied_live has the prune procedure")
    };

    // Edited by hand.
    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    let at = prune_of(&mut live);
    live.routines[at].body.push_str("\n-- edited\n");
    let edited = plan(&p, &live);
    assert_eq!(
        kinds(&edited),
        vec![("public.app_logs".into(), ChangeKind::ReplaceProcedure)]
    );
    let c = &edited.changes[0];
    assert!(c.drift);
    assert!(c.summary.contains("changed by hand"), "{}", c.summary);

    // Dropped by hand: made again, said as such.
    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    let at = prune_of(&mut live);
    live.routines.remove(at);
    live.managed_objects.retain(|o| o.kind != "procedure");
    let dropped = plan(&p, &live);
    let c = dropped
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::CreateProcedure)
        .expect("the procedure is made again");
    assert!(c.drift);
    assert!(
        c.summary.starts_with("create the prune procedure"),
        "{}",
        c.summary
    );

    // The policy changed since the last apply; the database is as that apply left it.
    let rule = "  - name: health_checks\n    where: \"path = '/healthz'\"\n    older_than: 1 day\n";
    let changed = project(&[LOGS
        .replace("schedule:", &format!("{rule}schedule:"))
        .as_str()]);
    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    let replaced = plan(&changed, &live);
    let c = replaced
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::ReplaceProcedure)
        .unwrap();
    assert!(!c.drift);
    assert!(
        c.summary.starts_with("replace the prune procedure"),
        "{}",
        c.summary
    );

    // Nothing recorded: never drift.
    let live = applied_live(&p);
    let replaced = plan(&changed, &live);
    assert!(replaced.changes.iter().all(|c| !c.drift));
}

/// Moving expired partitions to an archive schema creates the schema first; moving back to
/// dropping them does not.
#[test]
fn the_archive_schema_is_made_only_when_partitions_move_to_it() {
    let archive = LOGS.replace(
        "keep: 14 days",
        "keep: 14 days\n  expired: archive\n  archive_schema: old_logs",
    );
    let keys = |plan: &Plan| -> Vec<String> {
        let c = plan
            .changes
            .iter()
            .find(|c| c.kind == ChangeKind::RetentionSettings)
            .expect("a settings change");
        c.statements.iter().map(|s| s.key.clone()).collect()
    };
    let to_archive = project(&[archive.as_str()]);
    let live = applied_live(&project(&[LOGS]));
    assert_eq!(
        keys(&plan(&to_archive, &live)),
        ["archive_schema", "retention"]
    );

    let to_drop = project(&[LOGS]);
    let live = applied_live(&to_archive);
    assert_eq!(keys(&plan(&to_drop, &live)), ["retention"]);
}

/// The pg_cron job, as the last apply left it: a command edited or a job unscheduled by
/// hand is drift; a job running as another role than the table's owner is a change to
/// make, not drift, when the last apply left the same job.
#[test]
fn a_pg_cron_job_changed_by_hand_is_drift() {
    let p = project(&[LOGS]);
    let suffix = "(changed by hand since the last apply)";

    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    let wanted_command = live.jobs[0].command.clone();
    live.jobs[0].command = "SELECT 1".into();
    let edited = plan(&p, &live);
    assert_eq!(
        kinds(&edited),
        vec![("public.app_logs".into(), ChangeKind::ChangeSchedule)]
    );
    let c = &edited.changes[0];
    assert!(c.drift);
    assert!(
        c.summary
            .contains(&format!("command SELECT 1 -> {wanted_command}")),
        "{}",
        c.summary
    );
    assert!(c.summary.ends_with(suffix), "{}", c.summary);

    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    live.jobs.clear();
    let unscheduled = plan(&p, &live);
    assert_eq!(
        kinds(&unscheduled),
        vec![("public.app_logs".into(), ChangeKind::AddSchedule)]
    );
    assert!(unscheduled.changes[0].drift);

    let mut live = applied_live(&p);
    with_last_apply(&mut live, &p);
    live.jobs[0].username = "postgres".into();
    let other_role = plan(&p, &live);
    assert_eq!(
        kinds(&other_role),
        vec![("public.app_logs".into(), ChangeKind::ChangeSchedule)]
    );
    let c = &other_role.changes[0];
    assert!(!c.drift);
    assert!(
        c.summary
            .contains("runs as postgres, not as the table's owner"),
        "{}",
        c.summary
    );
    assert!(!c.summary.ends_with(suffix), "{}", c.summary);
}
