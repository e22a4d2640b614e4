//! `retentionc plan` against real PostgreSQL 15 with pg_partman 4.7.2 and 5.2.4: the
//! catalog reads what the generated SQL made, and the plan says what apply would change.

mod common;

use common::cluster::{Cluster, Partman, TestDb};
use common::planner::{EVENTS, SESSIONS};
use common::project::{TestProject, stderr, stdout};
use retentionc::cli::DbArgs;
use retentionc::plan::{ChangeKind, Plan, make_plan, make_plan_detailed};

async fn plan_of(db: &TestDb, project: &TestProject) -> Plan {
    let client = retentionc::db::connect(&DbArgs::url(db.url.clone()), "retentionc test")
        .await
        .unwrap();
    make_plan(&client, &project.load())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

async fn plan_error(db: &TestDb, project: &TestProject) -> String {
    let client = retentionc::db::connect(&DbArgs::url(db.url.clone()), "retentionc test")
        .await
        .unwrap();
    match make_plan(&client, &project.load()).await {
        Ok(plan) => panic!("expected an error, planned {:#?}", plan.changes),
        Err(e) => format!("{e:#}"),
    }
}

fn kinds(plan: &Plan) -> Vec<(String, ChangeKind)> {
    plan.changes
        .iter()
        .map(|c| (c.table.clone(), c.kind))
        .collect()
}

const LOGS: &str = "\
table: public.app_logs
partitioning:
  column: logged_at
  interval: 1 hour
  premake: 2
  start: START
retention:
  keep: 14 days
deletes:
  - name: debug_rows
    where: \"level = 'debug'\"
    older_than: 1 hour
";

const TABLES: &str = "
CREATE TABLE public.app_logs (id bigint, logged_at timestamptz NOT NULL, level text, path text) PARTITION BY RANGE (logged_at);
CREATE TABLE public.events (id bigint, created_at timestamptz NOT NULL, kind text) PARTITION BY RANGE (created_at);
CREATE TABLE public.user_sessions (id bigint, last_seen_at timestamptz, revoked boolean);
";

/// Hourly partitions from 10 hours ago.
fn logs_policy() -> String {
    let start = (chrono::Utc::now() - chrono::TimeDelta::hours(10))
        .format("%Y-%m-%d %H:00:00")
        .to_string();
    LOGS.replace("START", &format!("\"{start}\""))
}

fn setup(partman: Partman) -> (TestDb, TestProject) {
    let db = Cluster::shared().database(partman);
    db.psql(&["-c", TABLES]);
    let logs = logs_policy();
    let project = TestProject::for_db(&db)
        .policy("logs", &logs)
        .policy("events", EVENTS)
        .policy("sessions", SESSIONS)
        .compiled();
    (db, project)
}

async fn empty_database_needs_everything(partman: Partman) {
    let (db, project) = setup(partman);
    let client = retentionc::db::connect(&DbArgs::url(db.url.clone()), "t")
        .await
        .unwrap();
    let planned = make_plan_detailed(&client, &project.load()).await.unwrap();
    assert_eq!(
        kinds(&planned.plan),
        vec![
            ("retention".into(), ChangeKind::Bootstrap),
            ("public.app_logs".into(), ChangeKind::Register),
            ("public.app_logs".into(), ChangeKind::CreateProcedure),
            ("public.events".into(), ChangeKind::Register),
            ("public.user_sessions".into(), ChangeKind::CreateProcedure),
        ],
        "{partman}"
    );
    // BEGIN, 5 catalog queries (no pg_cron, no retentionc schema yet), 2 EXPLAINs with
    // their savepoints (one per new delete rule), COMMIT.
    assert!(
        planned.statements_sent <= 2 + retentionc::catalog::MAX_STATEMENTS + 3 * 2,
        "{}",
        planned.statements_sent
    );
    let rules = planned
        .plan
        .changes
        .iter()
        .filter_map(|c| c.impact.as_ref())
        .flat_map(|i| i.rules.iter())
        .count();
    assert_eq!(rules, 2);
}

#[tokio::test]
async fn empty_database_needs_everything_partman_4() {
    empty_database_needs_everything(Partman::V4).await;
}

#[tokio::test]
async fn empty_database_needs_everything_partman_5() {
    empty_database_needs_everything(Partman::V5).await;
}

async fn applied_then_changed(partman: Partman) {
    let (db, project) = setup(partman);
    project.install_with_psql(&db);
    let plan = plan_of(&db, &project).await;
    assert!(!plan.has_changes(), "{partman}: {:#?}", plan.changes);
    assert!(plan.unmanaged_tables.is_empty());

    // Rows in every hourly partition, and statistics for them.
    db.psql(&["-c", "INSERT INTO public.app_logs SELECT g, now() - (g % 600) * interval '1 minute', CASE WHEN g % 4 = 0 THEN 'debug' ELSE 'info' END FROM generate_series(1, 6000) g"]);
    db.psql(&["-c", "ANALYZE public.app_logs"]);

    // Shorter retention: destructive, with the partitions that would go.
    let shorter = logs_policy().replace("keep: 14 days", "keep: 3 hours");
    let new_rule = "  - name: paths\n    where: \"path IS NULL\"\n";
    let shorter = format!("{shorter}{new_rule}");
    project.write_policy_compiled("logs", &shorter);
    let plan = plan_of(&db, &project).await;
    assert_eq!(
        kinds(&plan),
        vec![
            ("public.app_logs".into(), ChangeKind::RetentionSettings),
            ("public.app_logs".into(), ChangeKind::ReplaceProcedure)
        ],
        "{partman}"
    );
    let settings = &plan.changes[0];
    assert!(settings.destructive);
    let impact = settings.impact.as_ref().unwrap();
    // Data from 10 hours ago to now; partitions ending before now - 3 hours expire.
    assert!(
        (6..=7).contains(&impact.partitions),
        "{partman}: {impact:#?}"
    );
    assert!(
        impact.estimated_rows > 3000 && impact.estimated_rows < 5000,
        "{partman}: {impact:#?}"
    );
    assert_eq!(settings.settings[0].old.as_deref(), Some("14 days"));
    assert_eq!(settings.settings[0].new, "3 hours");
    let procedure = &plan.changes[1];
    assert!(procedure.destructive);
    let rule = &procedure.impact.as_ref().unwrap().rules[0];
    assert_eq!(rule.rule, "paths");
    assert!(rule.estimated_rows.unwrap() >= 1, "{rule:?}");
    assert!(
        procedure
            .body_diff
            .as_ref()
            .unwrap()
            .contains("+    -- Rule paths: path IS NULL")
    );

    // Back to the applied policies; a policy removed; a table registered by hand.
    project.remove_policy("events");
    project.write_policy_compiled("logs", &logs_policy());
    db.psql(&[
        "-c",
        "CREATE TABLE public.legacy (at timestamptz NOT NULL) PARTITION BY RANGE (at)",
    ]);
    let p_type = if partman == Partman::V4 {
        "native"
    } else {
        "range"
    };
    db.psql(&["-c", &format!("SELECT partman.create_parent(p_parent_table := 'public.legacy', p_control := 'at', p_type := '{p_type}', p_interval := '1 day')")]);
    db.psql(&[
        "-c",
        "UPDATE partman.part_config SET retention = '30 days' WHERE parent_table = 'public.legacy'",
    ]);
    // events was applied by psql: its statements recorded that retentionc set its
    // retention, so removing its policy disables that retention; legacy, registered by
    // hand, is left alone.
    let plan = plan_of(&db, &project).await;
    assert_eq!(
        kinds(&plan),
        vec![("public.events".into(), ChangeKind::PolicyRemoved)],
        "{partman}"
    );
    assert_eq!(plan.unmanaged_tables, vec!["public.legacy".to_string()]);

    // Without that record retentionc cannot know it managed events: unmanaged, like legacy.
    db.psql(&[
        "-c",
        "DELETE FROM retention.managed_objects WHERE kind = 'retention' AND name = 'public.events'",
    ]);
    let plan = plan_of(&db, &project).await;
    assert!(!plan.has_changes(), "{partman}: {:#?}", plan.changes);
    assert_eq!(
        plan.unmanaged_tables,
        vec!["public.events".to_string(), "public.legacy".to_string()]
    );

    // With an apply history naming events, its removal disables its retention.
    let events_only = TestProject::for_db(&db).policy("events", EVENTS);
    let applied = retentionc::state::applied_state_json(&retentionc::state::desired(
        &events_only.load(),
        &retentionc::render::Renderer::new(),
    ));
    db.psql(&[
        "-c",
        &format!(
            "INSERT INTO retention.apply_history (tool_version, policy_hashes, applied_state, statements) VALUES ('test', '{{\"public.events\": \"x\", \"public.app_logs\": \"y\"}}', '{}', '{{}}')",
            applied.to_string().replace('\'', "''")
        ),
    ]);
    let plan = plan_of(&db, &project).await;
    assert_eq!(
        kinds(&plan),
        vec![("public.events".into(), ChangeKind::PolicyRemoved)],
        "{partman}"
    );
    assert_eq!(plan.unmanaged_tables, vec!["public.legacy".to_string()]);
    let keys: Vec<&str> = plan.changes[0]
        .statements
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(keys, ["retention_owner", "retention"], "{partman}");
    assert!(
        plan.changes[0].statements[1]
            .sql
            .contains("SET retention = NULL")
    );
    // Running the removal statements makes it unmanaged, still registered, data kept.
    for s in &plan.changes[0].statements {
        db.psql(&["-c", &s.sql]);
    }
    assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config WHERE parent_table = 'public.events' AND retention IS NULL"), "1");
    let plan = plan_of(&db, &project).await;
    assert!(!plan.has_changes(), "{partman}: {:#?}", plan.changes);
}

#[tokio::test]
async fn applied_then_changed_partman_4() {
    applied_then_changed(Partman::V4).await;
}

#[tokio::test]
async fn applied_then_changed_partman_5() {
    applied_then_changed(Partman::V5).await;
}

async fn drift_is_reported(partman: Partman) {
    let (db, project) = setup(partman);
    project.install_with_psql(&db);
    let desired = retentionc::state::desired(&project.load(), &retentionc::render::Renderer::new());
    let hashes: serde_json::Value = project
        .load()
        .policies
        .iter()
        .map(|p| (p.table.to_string(), serde_json::Value::from(p.hash())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    db.psql(&[
        "-c",
        &format!(
            "INSERT INTO retention.apply_history (tool_version, policy_hashes, applied_state, statements) VALUES ('test', '{hashes}', '{}', '{{}}')",
            retentionc::state::applied_state_json(&desired)
                .to_string()
                .replace('\'', "''")
        ),
    ]);
    assert!(!plan_of(&db, &project).await.has_changes());
    db.psql(&["-c", "UPDATE partman.part_config SET retention = '1 year', premake = 9 WHERE parent_table = 'public.events'"]);
    let plan = plan_of(&db, &project).await;
    assert_eq!(
        kinds(&plan),
        vec![("public.events".into(), ChangeKind::Drift)],
        "{partman}"
    );
    let c = &plan.changes[0];
    assert!(c.drift);
    let retention = c.settings.iter().find(|s| s.column == "retention").unwrap();
    assert_eq!(
        (retention.old.as_deref(), retention.new.as_str()),
        (Some("1 year"), "90 days")
    );
    let premake = c.settings.iter().find(|s| s.column == "premake").unwrap();
    assert_eq!(
        (premake.old.as_deref(), premake.new.as_str()),
        (Some("9"), "4")
    );
    // The procedure edited by hand is drift too.
    db.psql(&["-c", "CREATE OR REPLACE PROCEDURE retention.prune_user_sessions(p_run_maintenance boolean DEFAULT false) LANGUAGE plpgsql AS $$ BEGIN END $$"]);
    let plan = plan_of(&db, &project).await;
    let replace = plan
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::ReplaceProcedure)
        .unwrap();
    assert!(replace.drift, "{replace:#?}");
}

#[tokio::test]
async fn drift_is_reported_partman_4() {
    drift_is_reported(Partman::V4).await;
}

#[tokio::test]
async fn drift_is_reported_partman_5() {
    drift_is_reported(Partman::V5).await;
}

async fn plan_time_errors(partman: Partman) {
    let db = Cluster::shared().database(partman);
    db.psql(&[
        "-c",
        "CREATE TABLE public.by_id (id bigint, at timestamptz) PARTITION BY RANGE (id);
         CREATE TABLE public.by_list (kind text, at timestamptz) PARTITION BY LIST (kind);
         CREATE TABLE public.plain (at timestamptz, n int);
         CREATE TABLE public.plain2 (at timestamptz, num int);
         CREATE TABLE public.texty (at text) PARTITION BY RANGE (at);
         CREATE TABLE public.reshaped (at timestamptz NOT NULL) PARTITION BY RANGE (at);",
    ]);
    let p_type = if partman == Partman::V4 {
        "native"
    } else {
        "range"
    };
    db.psql(&["-c", &format!("SELECT partman.create_parent(p_parent_table := 'public.reshaped', p_control := 'at', p_type := '{p_type}', p_interval := '1 day')")]);
    let policy = |table: &str, column: &str| {
        format!(
            "table: public.{table}\npartitioning:\n  column: {column}\n  interval: 1 hour\nretention:\n  keep: 1 day\n"
        )
    };
    let project = TestProject::for_db(&db)
        .policy("a_missing", &policy("missing", "at"))
        .policy("b_by_id", &policy("by_id", "at"))
        .policy("c_by_list", &policy("by_list", "at"))
        .policy("d_plain", &policy("plain", "at"))
        .policy("e_texty", &policy("texty", "at"))
        .policy("f_reshaped", &policy("reshaped", "at"))
        .policy(
            "g_deletes",
            "table: public.plain2\ndeletes:\n  - name: old\n    where: \"num > 0\"\n    older_than: 1 day\n    column: num\n",
        )
        .policy(
            "h_cron",
            "table: public.texty2\ndeletes:\n  - name: all\n    where: \"true\"\nschedule: \"* * * * *\"\n",
        )
        .compiled();
    let e = plan_error(&db, &project).await;
    let expected = [
        "policies/a_missing.yaml:1:1: table: table public.missing does not exist in the database",
        "policies/b_by_id.yaml:3:3: partitioning.column: public.by_id is partitioned by RANGE (id), not by at",
        "policies/c_by_list.yaml:2:1: partitioning: public.by_list is partitioned by LIST",
        "policies/d_plain.yaml:2:1: partitioning: public.plain is a plain table, and cannot be converted to a partitioned one online: public.plain has no primary key",
        "policies/e_texty.yaml:3:3: partitioning.column: column at of public.texty is text; expected timestamptz",
        "policies/f_reshaped.yaml:4:3: partitioning.interval: public.reshaped is registered with pg_partman with partitions of 1 day, not 1 hour",
        "policies/g_deletes.yaml:6:5: deletes[0].column: column num of public.plain2 is integer",
        "policies/h_cron.yaml:5:1: schedule: a schedule needs pg_cron",
        "policies/h_cron.yaml:1:1: table: table public.texty2 does not exist",
    ];
    for want in expected {
        assert!(e.contains(want), "{partman}: missing {want:?} in:\n{e}");
    }

    // pg_partman of another major than compiled for.
    let other = if partman == Partman::V4 {
        Partman::V5
    } else {
        Partman::V4
    };
    let project = TestProject::new()
        .config(&format!("partman_version: {}", other.major()))
        .policy(
            "f_reshaped",
            &policy("reshaped", "at").replace("1 hour", "1 day"),
        )
        .compiled();
    let e = plan_error(&db, &project).await;
    assert!(
        e.contains(&format!(
            "the database has pg_partman {}, but the SQL was compiled for pg_partman {}",
            partman.version(),
            other.major()
        )),
        "{e}"
    );

    // A `where` that does not run against the table is an error at its key.
    let project = TestProject::for_db(&db)
        .policy(
            "g",
            "table: public.plain\ndeletes:\n  - name: old\n    where: \"nope > 0\"\n",
        )
        .compiled();
    let e = plan_error(&db, &project).await;
    assert!(e.contains("policies/g.yaml:4:5: deletes[0].where: the condition does not run against public.plain: column \"nope\" does not exist"), "{e}");
}

#[tokio::test]
async fn plan_time_errors_partman_4() {
    plan_time_errors(Partman::V4).await;
}

#[tokio::test]
async fn plan_time_errors_partman_5() {
    plan_time_errors(Partman::V5).await;
}

#[tokio::test]
async fn schedules_are_read_from_pg_cron() {
    let cluster = Cluster::shared();
    let db = cluster.cron_database(Partman::V5);
    db.psql(&["-c", TABLES]);
    let with_schedule = format!("{}schedule: \"*/5 * * * *\"\n", logs_policy());
    let project = TestProject::for_db(&db)
        .policy("logs", &with_schedule)
        .policy("sessions", &format!("{SESSIONS}schedule: \"17 * * * *\"\n"))
        .compiled();
    let plan = plan_of(&db, &project).await;
    assert!(kinds(&plan).contains(&("public.app_logs".into(), ChangeKind::AddSchedule)));
    project.install_with_psql(&db);
    let plan = plan_of(&db, &project).await;
    assert!(!plan.has_changes(), "{:#?}", plan.changes);
    let changed = with_schedule.replace("*/5", "*/10");
    project.remove_policy("sessions");
    project.write_policy_compiled("logs", &changed);
    let plan = plan_of(&db, &project).await;
    assert_eq!(
        kinds(&plan),
        vec![
            ("public.app_logs".into(), ChangeKind::ChangeSchedule),
            ("public.user_sessions".into(), ChangeKind::PolicyRemoved)
        ],
        "{:#?}",
        plan.changes
    );
    let removal = &plan.changes[1];
    for s in &removal.statements {
        db.psql(&["-c", &s.sql]);
    }
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM cron.job WHERE jobname = 'retentionc:public.user_sessions'"
        ),
        "0"
    );
    assert_eq!(
        db.scalar("SELECT to_regprocedure('retention.prune_user_sessions(boolean)') IS NULL"),
        "t"
    );

    // No schedule and no delete rules any more: the job and the procedure go.
    let bare = logs_policy().split("deletes:").next().unwrap().to_string();
    project.write_policy_compiled("logs", &bare);
    let plan = plan_of(&db, &project).await;
    assert_eq!(
        kinds(&plan),
        vec![
            ("public.app_logs".into(), ChangeKind::DropProcedure),
            ("public.app_logs".into(), ChangeKind::RemoveSchedule)
        ],
        "{:#?}",
        plan.changes
    );
    for s in plan.changes.iter().flat_map(|c| c.statements.iter()) {
        db.psql(&["-c", &s.sql]);
    }
    assert!(!plan_of(&db, &project).await.has_changes());
}

async fn pg_partman_where_configured(partman: Partman) {
    let db = Cluster::shared().database(partman);
    db.psql(&["-c", "CREATE TABLE public.events (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at)"]);
    let project = TestProject::for_db(&db).policy("events", EVENTS).compiled();
    db.psql(&["-c", "DROP EXTENSION pg_partman CASCADE"]);
    let e = plan_error(&db, &project).await;
    assert!(e.contains("policies/events.yaml:2:1: partitioning: partitioning needs pg_partman, which is not installed in this database"), "{e}");
    db.psql(&[
        "-c",
        &format!(
            "CREATE SCHEMA elsewhere; CREATE EXTENSION pg_partman SCHEMA elsewhere VERSION '{}'",
            partman.version()
        ),
    ]);
    let e = plan_error(&db, &project).await;
    assert!(e.contains("pg_partman is installed in schema elsewhere, but retentionc.yaml says partman_schema: partman"), "{e}");
}

#[tokio::test]
async fn pg_partman_where_configured_partman_4() {
    pg_partman_where_configured(Partman::V4).await;
}

#[tokio::test]
async fn pg_partman_where_configured_partman_5() {
    pg_partman_where_configured(Partman::V5).await;
}

#[test]
fn catalog_reads_a_fixed_number_of_statements() {
    // The statement count is independent of the number of tables: see benches and
    // docs/benchmarks.md for 10/100/1000 tables. Here: 1 vs 30 tables.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut counts = Vec::new();
        for n in [1, 30] {
            let db = Cluster::shared().database(Partman::V5);
            let mut project = TestProject::for_db(&db);
            let mut sql = String::new();
            for i in 0..n {
                sql.push_str(&format!("CREATE TABLE public.t{i} (at timestamptz NOT NULL) PARTITION BY RANGE (at);"));
                project = project.policy(&format!("t{i}"), &format!("table: public.t{i}\npartitioning:\n  column: at\n  interval: 1 day\nretention:\n  keep: 30 days\n"));
            }
            db.psql(&["-c", &sql]);
            let project = project.compiled();
            project.install_with_psql(&db);
            let client = retentionc::db::connect(&DbArgs::url(db.url.clone()), "t").await.unwrap();
            let planned = make_plan_detailed(&client, &project.load()).await.unwrap();
            assert!(!planned.plan.has_changes());
            counts.push(planned.statements_sent);
        }
        assert_eq!(counts[0], counts[1], "{counts:?}");
    });
}

/// `retentionc plan --database-url URL EXTRA`: exit status, stdout, stderr.
fn run_plan(project: &TestProject, db: &TestDb, extra: &[&str]) -> (Option<i32>, String, String) {
    let args = [&["plan", "--database-url", db.url.as_str()][..], extra].concat();
    let out = project.run(&args);
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn the_command_exits_0_1_or_2_and_saves_the_plan() {
    let (db, project) = setup(Partman::V5);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    let (code, stdout, stderr) = run_plan(
        &project,
        &db,
        &["--detailed-exitcode", "--out", saved.to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("retentionc plan: 5 changes, 2 destructive"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(json["format_version"], 2);
    assert_eq!(json["live_fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(json["policy_hashes"].as_object().unwrap().len(), 3);
    assert!(
        json["changes"][0]["statements"][0]["sql"]
            .as_str()
            .unwrap()
            .starts_with("CREATE SCHEMA IF NOT EXISTS")
    );
    let _: Plan = serde_json::from_value(json).unwrap();

    let (code, stdout, _) = run_plan(&project, &db, &[]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("public.app_logs: register with pg_partman"),
        "{stdout}"
    );
    let (code, stdout, _) = run_plan(&project, &db, &["--format", "markdown"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().next(), Some("<!-- retentionc-plan -->"));
    let (_, stdout, _) = run_plan(&project, &db, &["--format", "json"]);
    let _: Plan = serde_json::from_str(&stdout).unwrap();

    project.install_with_psql(&db);
    let (code, stdout, stderr) = run_plan(&project, &db, &["--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "No changes: the database matches the policies.\n");

    db.psql(&["-c", "DROP TABLE public.user_sessions"]);
    let (code, stdout, stderr) = run_plan(&project, &db, &["--detailed-exitcode"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error: policies/sessions.yaml:1:1: table: table public.user_sessions does not exist in the database\n 1 | table: public.user_sessions\n   | ^"),
        "{stderr}"
    );
}
