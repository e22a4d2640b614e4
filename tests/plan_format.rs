//! The three views of a plan, as insta snapshots: text (plain and coloured), markdown for
//! a pull-request comment, and the documented JSON (docs/plan-json.md).

mod common;

use common::planner::*;
use retentionc::plan::format::{MARKDOWN_MARKER, write_json, write_markdown, write_text};
use retentionc::plan::{Plan, RuleEstimates, diff};

/// Hashes change whenever a template does; the views are what is under test here.
fn stable(mut plan: Plan) -> Plan {
    plan.live_fingerprint =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into();
    for hash in plan.policy_hashes.values_mut() {
        *hash = "<policy sha256>".into();
    }
    plan
}

/// A review's worth of changes: shorter retention (destructive), drift, a schedule
/// change, a removed policy and an unmanaged table.
fn mixed_plan() -> Plan {
    let before = project(&[LOGS, EVENTS]);
    let after = project(&[
        LOGS.replace("keep: 14 days", "keep: 2 hours")
            .replace("*/5 * * * *", "0 * * * *")
            .as_str(),
        SESSIONS,
    ]);
    let mut live = applied_live(&before);
    live.tables.extend(applied_live(&after).tables);
    with_last_apply(&mut live, &project(&[LOGS]));
    live.part_config[0].premake = 3;
    live.children
        .insert("public.app_logs".into(), hourly_children(6));
    let mut legacy = live.part_config[1].clone();
    legacy.parent_table = "public.legacy".into();
    live.part_config.push(legacy);
    // user_sessions: its procedure exists already, as the policy wants it.
    let sessions = applied_live(&project(&[SESSIONS]));
    live.routines.extend(
        sessions
            .routines
            .into_iter()
            .filter(|r| r.name.starts_with("prune_")),
    );
    live.managed_objects.extend(sessions.managed_objects);
    // events: the policy is gone; retentionc made its pg_cron job.
    live.jobs.push(retentionc::catalog::CronJob {
        name: "retentionc:public.events".into(),
        schedule: "0 * * * *".into(),
        command: "SELECT \"retention\".\"maintain\"('public.events')".into(),
        database: "db".into(),
        username: "app_owner".into(),
    });
    stable(diff(&after, &live, &RuleEstimates::new()).unwrap())
}

fn text(plan: &Plan, color: bool) -> String {
    let mut out = Vec::new();
    write_text(plan, &mut out, color).unwrap();
    String::from_utf8(out).unwrap()
}

fn markdown(plan: &Plan) -> String {
    let mut out = Vec::new();
    write_markdown(plan, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn json(plan: &Plan) -> String {
    let mut out = Vec::new();
    write_json(plan, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn text_shows_each_change_with_old_and_new_values_and_flags_destructive_ones() {
    let plan = mixed_plan();
    let shown = text(&plan, false);
    assert!(!shown.contains('\x1b'));
    insta::assert_snapshot!(shown);
}

#[test]
fn text_in_colour_marks_destructive_changes_red() {
    let shown = text(&mixed_plan(), true);
    assert!(shown.contains("\x1b[1;31m[destructive]\x1b[0m"), "{shown}");
}

#[test]
fn text_without_changes_says_so_and_lists_unmanaged_tables() {
    let p = project(&[LOGS]);
    let mut live = applied_live(&p);
    let mut legacy = live.part_config[0].clone();
    legacy.parent_table = "public.legacy".into();
    live.part_config.push(legacy);
    let plan = stable(diff(&p, &live, &RuleEstimates::new()).unwrap());
    insta::assert_snapshot!(text(&plan, false));
    insta::assert_snapshot!("markdown_without_changes", markdown(&plan));
}

#[test]
fn markdown_starts_with_the_marker_and_puts_destructive_changes_first() {
    let plan = mixed_plan();
    let shown = markdown(&plan);
    assert_eq!(shown.lines().next(), Some(MARKDOWN_MARKER));
    let destructive = shown.find("#### ⚠️ Destructive changes").unwrap();
    let others = shown.find("#### Changes").unwrap();
    assert!(destructive < others);
    insta::assert_snapshot!(shown);
}

#[test]
fn json_is_versioned_and_round_trips() {
    let p = project(&[EVENTS.replace("keep: 90 days", "keep: 30 days").as_str()]);
    let plan = stable(
        diff(
            &p,
            &applied_live(&project(&[EVENTS])),
            &RuleEstimates::new(),
        )
        .unwrap(),
    );
    let shown = json(&plan);
    let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(value["format_version"], 2);
    let back: Plan = serde_json::from_str(&shown).unwrap();
    assert_eq!(json(&back), shown);
    insta::assert_snapshot!(shown);
}
