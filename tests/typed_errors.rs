//! The refusals of apply, run, convert and plan reach a library caller as typed values
//! (`ApplyError`, `RunError`, `ConvertError`, `PlanError`) carrying their facts, driven
//! here through the public API against a real PostgreSQL 15: a caller matches the variant
//! instead of parsing the message, and a refusal changes nothing.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, Partman, TestDb};
use common::project::{TestProject, text};
use retentionc::apply::error::PlanMismatch;
use retentionc::apply::locks::LockWatch;
use retentionc::apply::{
    ADVISORY_LOCK_KEY, ApplyError, ApplyOptions, PlanSource, ReviewedOrigin, execute,
};
use retentionc::cli::{ConvertArgs, DbArgs};
use retentionc::convert::ConvertError;
use retentionc::convert::error::Undo;
use retentionc::model::Project;
use retentionc::plan::{Plan, PlanError};
use retentionc::run::{RunError, RunOptions};

const EVENTS: &str = "public.events";

fn events_policy(keep: &str) -> String {
    format!(
        "table: {EVENTS}\npartitioning:\n  column: mtime\n  interval: 1 day\n  premake: 2\nretention:\n  keep: {keep}\n  expired: drop\n"
    )
}

fn create_events(db: &TestDb) {
    db.psql(&[
        "-c",
        "CREATE TABLE public.events (id bigserial, mtime timestamptz NOT NULL DEFAULT now(), payload text) PARTITION BY RANGE (mtime)",
    ]);
}

fn db_args(db: &TestDb) -> DbArgs {
    DbArgs::url(db.url.clone())
}

/// Whether retentionc's own schema exists (apply made it).
fn schema_exists(db: &TestDb) -> bool {
    db.scalar("SELECT to_regnamespace('retention') IS NOT NULL") == "t"
}

async fn plan_now(db: &TestDb, project: &Project) -> Plan {
    let session = retentionc::db::connect(&db_args(db), "retentionc plan")
        .await
        .unwrap();
    retentionc::plan::make_plan(&session, project)
        .await
        .unwrap()
}

async fn apply(
    db: &TestDb,
    project: &Project,
    source: PlanSource,
    options: &ApplyOptions,
) -> anyhow::Result<retentionc::apply::ApplyOutcome> {
    let session = retentionc::db::connect(&db_args(db), "retentionc")
        .await
        .unwrap();
    let watch = LockWatch::new(Some(db_args(db)), Duration::from_millis(1000));
    execute(&session, project, source, options, &watch, &mut Vec::new()).await
}

fn apply_error(error: &anyhow::Error) -> &ApplyError {
    error
        .downcast_ref::<ApplyError>()
        .unwrap_or_else(|| panic!("not an ApplyError: {error:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_whose_policies_changed_is_refused_as_outdated_and_changes_nothing() {
    let db = Cluster::shared().database(Partman::V5);
    create_events(&db);
    let project = TestProject::for_db(&db)
        .policy("events", &events_policy("30 days"))
        .compiled();
    let saved = plan_now(&db, &project.load()).await;
    assert!(saved.has_changes());

    project.write_policy("events", &events_policy("60 days"));
    project.compile();
    let edited = project.load();

    // The check apply makes before it connects names the table whose policy changed.
    let refused = retentionc::apply::check_policy_hashes(&edited, &saved).unwrap_err();
    assert!(
        matches!(&refused, ApplyError::PoliciesChanged { tables } if tables == &[EVENTS.to_string()]),
        "{refused:?}"
    );

    // The executor refuses it too, under its lock, with both fingerprints.
    let error = apply(
        &db,
        &edited,
        PlanSource::Reviewed {
            plan: saved.clone(),
            origin: ReviewedOrigin::SavedFile("plan.json".into()),
        },
        &ApplyOptions::default(),
    )
    .await
    .unwrap_err();
    match apply_error(&error) {
        ApplyError::SavedPlanOutdated {
            mismatch,
            path,
            planned_fingerprint,
            live_fingerprint,
        } => {
            assert_eq!(**mismatch, PlanMismatch::PoliciesChanged);
            assert_eq!(path, std::path::Path::new("plan.json"));
            assert_eq!(planned_fingerprint, &saved.live_fingerprint);
            assert_eq!(
                live_fingerprint, &saved.live_fingerprint,
                "the database did not move"
            );
        }
        other => panic!("expected SavedPlanOutdated: {other:?}"),
    }
    assert!(
        format!("{error:#}").contains("nothing was changed"),
        "{error:#}"
    );
    assert!(!schema_exists(&db), "a refused apply changed the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_apply_holding_the_lock_is_named_by_its_session() {
    let db = Cluster::shared().database(Partman::V5);
    create_events(&db);
    let project = TestProject::for_db(&db)
        .policy("events", &events_policy("30 days"))
        .compiled();
    let holder = db.client().await;
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await
        .unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let options = ApplyOptions {
        apply_wait: Duration::from_millis(300),
        ..ApplyOptions::default()
    };
    let error = apply(&db, &project.load(), PlanSource::Live, &options)
        .await
        .unwrap_err();
    match apply_error(&error) {
        ApplyError::AnotherApplyRunning { holder, waited } => {
            assert_eq!(*waited, Duration::from_millis(300));
            let holder = holder.as_ref().expect("the holding session is seen");
            assert_eq!(holder.pid, holder_pid);
        }
        other => panic!("expected AnotherApplyRunning: {other:?}"),
    }
    assert!(!schema_exists(&db), "a refused apply changed the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_file_edited_after_compile_is_refused_naming_the_file() {
    let db = Cluster::shared().database(Partman::V5);
    create_events(&db);
    let project = TestProject::for_db(&db)
        .policy("events", &events_policy("30 days"))
        .compiled();
    let file = project.generated("public.events.sql");
    let mut sql = std::fs::read_to_string(&file).unwrap();
    sql.push_str("\n-- edited after review\n");
    std::fs::write(&file, sql).unwrap();
    let error = apply(
        &db,
        &project.load(),
        PlanSource::Live,
        &ApplyOptions::default(),
    )
    .await
    .unwrap_err();
    match apply_error(&error) {
        ApplyError::GeneratedFileChanged { path } => {
            assert!(path.ends_with("public.events.sql"), "{path:?}");
        }
        other => panic!("expected GeneratedFileChanged: {other:?}"),
    }
    assert!(!schema_exists(&db), "a refused apply changed the database");
}

#[test]
fn run_naming_a_table_without_a_policy_names_it_and_the_tables_covered() {
    let project = TestProject::new()
        .policy("events", &events_policy("30 days"))
        .compiled()
        .load();
    let error = retentionc::run::select_policies(
        &project,
        &["public.nope".to_string(), EVENTS.to_string()],
    )
    .unwrap_err();
    let RunError::NoPolicy { unknown, known } = error else {
        panic!("expected NoPolicy: {error:?}");
    };
    assert_eq!(unknown, ["public.nope"]);
    assert_eq!(known, [EVENTS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_before_apply_is_refused_before_anything_runs() {
    let db = Cluster::shared().database(Partman::V5);
    create_events(&db);
    let project = TestProject::for_db(&db)
        .policy("events", &events_policy("30 days"))
        .compiled()
        .load();
    let policies: Vec<_> = project.policies.iter().collect();
    let mut out = Vec::new();
    let error = retentionc::run::run_database(
        &project,
        &policies,
        &db_args(&db),
        RunOptions::default(),
        &mut out,
    )
    .await
    .unwrap_err();
    match error.downcast_ref::<RunError>() {
        Some(RunError::RoutinesMissing { schema }) => assert_eq!(schema, "retention"),
        _ => panic!("expected RoutinesMissing: {error:#}"),
    }
    assert!(out.is_empty(), "nothing ran, nothing is reported");
}

fn convert_args(db: &TestDb, table: &str) -> ConvertArgs {
    ConvertArgs {
        db: db_args(db),
        table: table.to_string(),
        revert: false,
        finish: false,
        no_swap: false,
        batch_rows: 20_000,
        swap_attempts: 3,
    }
}

/// A plain (not partitioned) `public.events`, its policy, and its reviewed conversion file.
fn plain_events_project(db: &TestDb) -> TestProject {
    db.psql(&[
        "-c",
        "CREATE TABLE public.events (id bigint PRIMARY KEY, mtime timestamptz NOT NULL DEFAULT now())",
    ]);
    let project = TestProject::for_db(db).policy("events", &events_policy("30 days"));
    let out = project.run(&["compile", "--convert", EVENTS]);
    assert!(out.status.success(), "{}", text(&out));
    project
}

async fn convert(project: &TestProject, args: &ConvertArgs) -> anyhow::Error {
    retentionc::convert::command(&project.config_path(), args)
        .await
        .expect_err("convert refuses")
}

fn convert_error(error: &anyhow::Error) -> &ConvertError {
    error
        .downcast_ref::<ConvertError>()
        .unwrap_or_else(|| panic!("not a ConvertError: {error:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_of_a_table_no_policy_partitions_is_refused_naming_it() {
    let db = Cluster::shared().database(Partman::V5);
    let project = plain_events_project(&db);
    let error = convert(&project, &convert_args(&db, "public.unknown")).await;
    match convert_error(&error) {
        ConvertError::NoPolicy { table } => assert_eq!(table.to_string(), "public.unknown"),
        other => panic!("expected NoPolicy: {other:?}"),
    }
    let error = convert(&project, &convert_args(&db, "a.b.c")).await;
    assert!(
        matches!(convert_error(&error), ConvertError::NotATableName { given, .. } if given == "a.b.c"),
        "{error:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_before_retentionc_schema_is_installed_is_refused_and_changes_nothing() {
    let db = Cluster::shared().database(Partman::V5);
    let project = plain_events_project(&db);
    let error = convert(&project, &convert_args(&db, EVENTS)).await;
    match convert_error(&error) {
        ConvertError::SchemaMissing { schema } => assert_eq!(schema, "retention"),
        other => panic!("expected SchemaMissing: {other:?}"),
    }
    assert!(!schema_exists(&db));
    assert_eq!(
        db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.events'::regclass"),
        "r",
        "the table is still the plain one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverting_or_finishing_a_conversion_never_started_is_refused() {
    let db = Cluster::shared().database(Partman::V5);
    let project = plain_events_project(&db);
    for (undo, args) in [
        (
            Undo::Revert,
            ConvertArgs {
                revert: true,
                ..convert_args(&db, EVENTS)
            },
        ),
        (
            Undo::Finish,
            ConvertArgs {
                finish: true,
                ..convert_args(&db, EVENTS)
            },
        ),
    ] {
        let error = convert(&project, &args).await;
        match convert_error(&error) {
            ConvertError::NeverStarted { table, undo: found } => {
                assert_eq!(table, EVENTS);
                assert_eq!(*found, undo);
            }
            other => panic!("expected NeverStarted: {other:?}"),
        }
    }
}

#[test]
fn plan_with_generated_files_older_than_the_policies_lists_them() {
    let project = TestProject::new()
        .policy("events", &events_policy("30 days"))
        .compiled();
    project.write_policy("events", &events_policy("60 days"));
    let error = retentionc::plan::check_generated(&project.load(), false).unwrap_err();
    match error.downcast_ref::<PlanError>() {
        Some(PlanError::GeneratedStale { dir, stale }) => {
            assert_eq!(dir, std::path::Path::new("generated"));
            assert_eq!(stale, &["public.events.sql".to_string()]);
        }
        _ => panic!("expected GeneratedStale: {error:#}"),
    }
    // `plan --compile` plans anyway.
    retentionc::plan::check_generated(&project.load(), true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_of_a_removed_policy_without_its_removal_file_names_the_table_and_file() {
    let db = Cluster::shared().database(Partman::V5);
    create_events(&db);
    let project = TestProject::for_db(&db)
        .policy("events", &events_policy("30 days"))
        .compiled();
    let out = project.run(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "{}", text(&out));
    project.remove_policy("events");
    project.compile();
    let removal = project.generated("_removed/public.events.sql");
    std::fs::remove_file(&removal).expect("compile wrote the removal file");

    let error = retentionc::plan::plan_database(&project.load(), &db_args(&db), false)
        .await
        .unwrap_err();
    match error.downcast_ref::<PlanError>() {
        Some(PlanError::RemovalFileMissing { table, path }) => {
            assert_eq!(table, EVENTS);
            assert_eq!(
                path,
                std::path::Path::new("generated/_removed/public.events.sql")
            );
        }
        _ => panic!("expected RemovalFileMissing: {error:#}"),
    }
    // `plan --compile` plans anyway.
    retentionc::plan::plan_database(&project.load(), &db_args(&db), true)
        .await
        .unwrap();
}

/// `apply --auto-approve --plan FILE`.
fn apply_args(plan: &std::path::Path) -> retentionc::cli::ApplyArgs {
    retentionc::cli::ApplyArgs {
        db: DbArgs::default(),
        auto_approve: true,
        plan: Some(plan.to_path_buf()),
        allow_data_loss: false,
        convert: false,
        fleet: Default::default(),
        keep_going: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_that_is_not_a_plan_or_of_another_version_is_refused_and_changes_nothing() {
    let db = Cluster::shared().database(Partman::V5);
    create_events(&db);
    let project = TestProject::for_db(&db)
        .policy("events", &events_policy("30 days"))
        .compiled();
    let garbage = project.root().join("garbage.json");
    std::fs::write(&garbage, "{\"format_version\": ").unwrap();
    let error = retentionc::apply::command(&project.config_path(), &apply_args(&garbage))
        .await
        .unwrap_err();
    assert!(
        matches!(apply_error(&error), ApplyError::NotAPlan { path, .. } if path == &garbage),
        "{error:#}"
    );
    let json_cause = error
        .chain()
        .any(|cause| cause.downcast_ref::<serde_json::Error>().is_some());
    assert!(json_cause, "the parser's error is kept: {error:#}");

    let mut plan = serde_json::to_value(plan_now(&db, &project.load()).await).unwrap();
    plan["format_version"] = serde_json::json!(999);
    let future = project.root().join("future.json");
    std::fs::write(&future, plan.to_string()).unwrap();
    let error = retentionc::apply::command(&project.config_path(), &apply_args(&future))
        .await
        .unwrap_err();
    match apply_error(&error) {
        ApplyError::PlanFormatVersion {
            path,
            found,
            expected,
        } => {
            assert_eq!(path, &future);
            assert_eq!(*found, 999);
            assert_eq!(*expected, retentionc::plan::FORMAT_VERSION);
        }
        other => panic!("expected PlanFormatVersion: {other:?}"),
    }
    assert!(!schema_exists(&db), "a refused apply changed the database");
}
