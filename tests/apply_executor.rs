//! The apply executor against real PostgreSQL + pg_partman: it plans under its lock and
//! runs the reviewed files' statements, with writers inserting throughout: none of their
//! inserts may fail or be lost.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::data::{Writer, create_table, history_count, part_config, policy_yaml};
use common::project::TestProject;
use retentionc::apply::locks::LockWatch;
use retentionc::apply::{
    ADVISORY_LOCK_KEY, ApplyOptions, ApplyOutcome, PlanSource, ReviewedOrigin, execute,
};
use retentionc::plan::{ChangeKind, Plan};

const TABLE: &str = "public.events";

async fn run_executor(
    db: &TestDb,
    project: &TestProject,
    options: &ApplyOptions,
) -> anyhow::Result<ApplyOutcome> {
    execute_source(db, project, PlanSource::Live, options).await
}

async fn execute_source(
    db: &TestDb,
    project: &TestProject,
    source: PlanSource,
    options: &ApplyOptions,
) -> anyhow::Result<ApplyOutcome> {
    let loaded = project.load();
    let client = retentionc::db::connect(&db.args(), "retentionc")
        .await
        .unwrap();
    let watch = LockWatch::new(
        Some(db.args()),
        Duration::from_millis(loaded.config.lock_timeout_ms),
    );
    let mut out = Vec::new();
    execute(&client, &loaded, source, options, &watch, &mut out).await
}

/// The plan `plan` makes now for the project (what a reviewer would have saved).
async fn plan_now(db: &TestDb, project: &TestProject) -> Plan {
    let client = retentionc::db::connect(&db.args(), "retentionc plan")
        .await
        .unwrap();
    retentionc::plan::make_plan(&client, &project.load())
        .await
        .unwrap()
}

/// Writes the policy (compiled), then applies what plan finds.
async fn apply_edit(
    db: &TestDb,
    project: &TestProject,
    policy: &str,
    expected: ChangeKind,
    options: &ApplyOptions,
) -> anyhow::Result<ApplyOutcome> {
    project.write_policy_compiled("events", policy);
    let plan = plan_now(db, project).await;
    assert!(
        plan.changes.iter().any(|c| c.kind == expected),
        "expected a {expected:?} change: {:#?}",
        plan.changes
    );
    run_executor(db, project, options).await
}

fn allowing_data_loss() -> ApplyOptions {
    ApplyOptions {
        allow_data_loss: true,
        ..ApplyOptions::default()
    }
}

fn quick_retries() -> ApplyOptions {
    ApplyOptions {
        max_attempts: 3,
        first_backoff: Duration::from_millis(200),
        ..ApplyOptions::default()
    }
}

fn quick_retries_allowing_data_loss() -> ApplyOptions {
    ApplyOptions {
        allow_data_loss: true,
        ..quick_retries()
    }
}

/// A database with the table, the policy, and a first apply done.
async fn applied(partman: Partman, lock_timeout: &'static str) -> (TestDb, TestProject) {
    let db = Cluster::shared().database(partman);
    create_table(&db, TABLE);
    let project = TestProject::for_db(&db).lock_timeout(lock_timeout);
    project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
    let outcome = run_executor(&db, &project, &ApplyOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApplyOutcome::Applied { .. }),
        "{outcome:?}"
    );
    (db, project)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_from_empty_bootstraps_registers_and_records_history() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_table(&db, TABLE);
        let project = TestProject::for_db(&db).lock_timeout("2s");
        project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n"));
        let plan = plan_now(&db, &project).await;
        let statements: usize = plan.changes.iter().map(|c| c.statements.len()).sum();
        let outcome = run_executor(&db, &project, &allowing_data_loss())
            .await
            .unwrap();
        let ApplyOutcome::Applied {
            changes,
            statements: executed,
            history_id,
            ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        // retentionc's schema, the registration, the prune procedure.
        assert_eq!(
            (changes, executed),
            (plan.changes.len(), statements),
            "{partman}"
        );
        assert_eq!(changes, 3, "{partman}");

        assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t", "{partman}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "1",
            "{partman}"
        );
        let row = db.scalar(&format!(
            "SELECT concat_ws(' | ', tool_version, applied_by, cardinality(statements), policy_hashes ? '{TABLE}', \
                    applied_state -> 'tables' -> '{TABLE}' -> 'settings' ->> 'retention') \
               FROM retention.apply_history WHERE id = {history_id}"
        ));
        assert_eq!(
            row,
            format!(
                "{} | postgres | {statements} | t | 2 days",
                env!("CARGO_PKG_VERSION")
            ),
            "{partman}"
        );

        // Now writers can insert; a second apply finds nothing to do and records nothing.
        let writer = Writer::start(&db, TABLE).await;
        let again = run_executor(&db, &project, &ApplyOptions::default())
            .await
            .unwrap();
        assert_eq!(again, ApplyOutcome::NoChanges, "{partman}");
        writer.finish(&db, TABLE).await;
        assert_eq!(history_count(&db), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_kind_applies_while_writers_insert() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s").await;
        let writer = Writer::start(&db, TABLE).await;

        // Retention setting changed.
        apply_edit(
            &db,
            &project,
            &policy_yaml(TABLE, "3 days", ""),
            ChangeKind::RetentionSettings,
            &ApplyOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(part_config(&db, TABLE), "3 days | f | 4 | t", "{partman}");

        // Delete rule added: the prune procedure appears.
        apply_edit(
            &db,
            &project,
            &policy_yaml(TABLE, "3 days", "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n"),
            ChangeKind::CreateProcedure,
            &allowing_data_loss(),
        )
        .await
        .unwrap();
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "1",
            "{partman}"
        );

        // Delete rule removed: the procedure goes.
        apply_edit(
            &db,
            &project,
            &policy_yaml(TABLE, "3 days", ""),
            ChangeKind::DropProcedure,
            &ApplyOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "0",
            "{partman}"
        );

        writer.finish(&db, TABLE).await;
        assert_eq!(history_count(&db), 4, "{partman}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_policy_keeps_the_registration_and_the_data() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s").await;
        project.write_policy_compiled(
            "events",
            &policy_yaml(
                TABLE,
                "2 days",
                "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n",
            ),
        );
        run_executor(&db, &project, &allowing_data_loss())
            .await
            .unwrap();
        let writer = Writer::start(&db, TABLE).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The policy goes; compile turns its file into the removal file apply runs.
        project.remove_policy("events");
        project.compile();
        assert!(
            project
                .root()
                .join("generated/_removed/public.events.sql")
                .is_file()
        );
        let plan = plan_now(&db, &project).await;
        assert_eq!(plan.changes.len(), 1, "{:#?}", plan.changes);
        assert_eq!(plan.changes[0].kind, ChangeKind::PolicyRemoved);
        run_executor(&db, &project, &ApplyOptions::default())
            .await
            .unwrap();

        let report = writer.finish(&db, TABLE).await;
        assert_eq!(
            part_config(&db, TABLE),
            "f | 4 | t",
            "{partman}: registered, retention off"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "0"
        );
        assert!(
            db.scalar(&format!("SELECT count(*) FROM {TABLE}"))
                .parse::<u64>()
                .unwrap()
                == report.succeeded
        );
        let state = db.scalar(
            "SELECT applied_state::text FROM retention.apply_history ORDER BY id DESC LIMIT 1",
        );
        assert_eq!(
            state, r#"{"tables": {}, "version": 2}"#,
            "no table is managed any more"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_change_needs_allow_data_loss() {
    let db = Cluster::shared().database(Partman::V5);
    create_table(&db, TABLE);
    let project = TestProject::for_db(&db).lock_timeout("2s");
    // Hourly partitions from three days ago, so a shorter retention expires some of them.
    let start = db.scalar("SELECT to_char(now() - interval '3 days', 'YYYY-MM-DD HH24:00:00')");
    let with_start = |keep: &str| {
        policy_yaml(TABLE, keep, "").replace(
            "  premake: 4\n",
            &format!("  premake: 4\n  start: \"{start}\"\n"),
        )
    };
    project.write_policy_compiled("events", &with_start("5 days"));
    run_executor(&db, &project, &ApplyOptions::default())
        .await
        .unwrap();
    let writer = Writer::start(&db, TABLE).await;
    project.write_policy_compiled("events", &with_start("1 day"));

    let err = run_executor(&db, &project, &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--allow-data-loss")
            && err.contains("public.events: retention 5 days -> 1 day"),
        "{err}"
    );
    assert_eq!(part_config(&db, TABLE), "5 days | f | 4 | t");
    assert_eq!(history_count(&db), 1);

    run_executor(&db, &project, &allowing_data_loss())
        .await
        .unwrap();
    assert_eq!(part_config(&db, TABLE), "1 day | f | 4 | t");
    writer.finish(&db, TABLE).await;
}

/// An edit someone makes to a saved plan file.
type PlanEdit = Box<dyn Fn(&mut Plan)>;

/// A saved plan is data: apply makes the plan again under its lock and runs the reviewed
/// files' statements, so a plan edited to run anything else is refused, whatever it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_plan_is_refused_and_changes_nothing() {
    let (db, project) = applied(Partman::V5, "2s").await;
    project.write_policy_compiled("events", &policy_yaml(TABLE, "4 days", ""));
    let reviewed = plan_now(&db, &project).await;
    assert_eq!(reviewed.changes.len(), 1, "{:#?}", reviewed.changes);
    let edits: Vec<(&str, PlanEdit)> = vec![
        (
            "a statement replaced",
            Box::new(|p: &mut Plan| {
                p.changes[0].statements[0].sql = "DROP TABLE public.events;".into()
            }),
        ),
        (
            "a statement added",
            Box::new(|p: &mut Plan| {
                let mut extra = p.changes[0].statements[0].clone();
                extra.sql = "ALTER ROLE postgres NOSUPERUSER;".into();
                p.changes[0].statements.push(extra);
            }),
        ),
        (
            "another file's statement",
            Box::new(|p: &mut Plan| p.changes[0].statements[0].file = "_retentionc.sql".into()),
        ),
        (
            "a change added",
            Box::new(|p: &mut Plan| {
                let mut extra = p.changes[0].clone();
                extra.table = "public.other".into();
                p.changes.push(extra);
            }),
        ),
        (
            "destructive made harmless",
            Box::new(|p: &mut Plan| p.changes[0].destructive = !p.changes[0].destructive),
        ),
    ];
    for (what, edit) in edits {
        let mut plan = reviewed.clone();
        edit(&mut plan);
        let source = PlanSource::Reviewed {
            plan,
            origin: ReviewedOrigin::SavedFile("plan.json".into()),
        };
        let err = execute_source(&db, &project, source, &allowing_data_loss())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run plan again (plan plan.json") && err.contains("nothing was changed"),
            "{what}: {err}"
        );
        assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t", "{what}");
        assert_eq!(history_count(&db), 1, "{what}");
    }
    // The plan as made applies.
    let source = PlanSource::Reviewed {
        plan: reviewed,
        origin: ReviewedOrigin::SavedFile("plan.json".into()),
    };
    execute_source(&db, &project, source, &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(part_config(&db, TABLE), "4 days | f | 4 | t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_file_edited_after_review_is_refused() {
    let (db, project) = applied(Partman::V5, "2s").await;
    project.write_policy_compiled("events", &policy_yaml(TABLE, "4 days", ""));
    let path = project.root().join("generated/public.events.sql");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("4 days", "4 hours")).unwrap();
    let err = run_executor(&db, &project, &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not what `retentionc compile` writes") && err.contains("retentionc compile"),
        "{err}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statement_leaves_nothing_half_applied() {
    let (db, project) = applied(Partman::V5, "2s").await;
    let other = "public.other";
    create_table(&db, other);
    // The second table's registration fails when it runs (not at plan time).
    db.psql(&["-c", "ALTER TABLE partman.part_config ADD CONSTRAINT no_big_premake CHECK (parent_table <> 'public.other' OR premake < 10)"]);
    project.write_policy_compiled("events", &policy_yaml(TABLE, "5 days", ""));
    project.write_policy_compiled(
        "other",
        &policy_yaml(other, "2 days", "").replace("premake: 4", "premake: 20"),
    );
    let err = run_executor(&db, &project, &ApplyOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no_big_premake") && err.contains("rolled back"),
        "{err}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
    assert_eq!(
        db.scalar("SELECT count(*) FROM partman.part_config WHERE parent_table = 'public.other'"),
        "0"
    );
    assert_eq!(history_count(&db), 1);
}

/// A long transaction that read the parent holds ACCESS SHARE: registering the table needs
/// a stronger lock, and writers queue behind that request. Apply must give up within
/// lock_timeout each time (so writers wait no longer), retry, then name the table and the
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_makes_apply_retry_then_name_it_and_writers_wait_at_most_lock_timeout()
 {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_table(&db, TABLE);
        let project = TestProject::for_db(&db).lock_timeout("500ms");
        project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
        run_executor(&db, &project, &ApplyOptions::default())
            .await
            .unwrap();

        // A change that needs a lock the long transaction holds: the part_config row.
        project.write_policy_compiled("events", &policy_yaml(TABLE, "4 days", ""));

        let holder = db.client().await;
        holder.batch_execute("BEGIN; SELECT * FROM partman.part_config FOR UPDATE; SELECT count(*) FROM public.events").await.unwrap();
        let holder_pid: i32 = holder
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let writer = Writer::start(&db, TABLE).await;
        let started = Instant::now();
        let err = run_executor(&db, &project, &quick_retries())
            .await
            .unwrap_err()
            .to_string();
        let took = started.elapsed();
        let report = writer.finish(&db, TABLE).await;
        assert!(err.contains("gave up after 3 attempts"), "{partman}: {err}");
        assert!(
            err.contains("part_config"),
            "{partman}: names the relation: {err}"
        );
        assert!(
            err.contains(&format!("pid {holder_pid}")) && err.contains("idle in transaction"),
            "{partman}: names the session: {err}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{partman}: 3 attempts of 500 ms plus backoff took {took:?}"
        );
        assert!(
            report.max_latency < Duration::from_millis(500 + 700),
            "{partman}: writers unaffected by a part_config row lock: {report:?}"
        );
        assert_eq!(
            part_config(&db, TABLE),
            "2 days | f | 4 | t",
            "{partman}: nothing applied"
        );
        holder.batch_execute("ROLLBACK").await.unwrap();
        run_executor(&db, &project, &quick_retries()).await.unwrap();
        assert_eq!(part_config(&db, TABLE), "4 days | f | 4 | t", "{partman}");
    }
}

/// Registering needs a strong lock on the parent; a reader's long transaction (ACCESS
/// SHARE) makes apply wait, and writers queue behind apply's request: they must never wait
/// much longer than lock_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_queued_behind_a_waiting_apply_wait_at_most_lock_timeout() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        create_table(&db, TABLE);
        let other = "public.other_events";
        create_table(&db, other);
        let project = TestProject::for_db(&db).lock_timeout("500ms");
        project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
        run_executor(&db, &project, &ApplyOptions::default())
            .await
            .unwrap();

        // A second table to register; before that, writers reach it through a partition
        // made by hand (for the year 2000, clear of what create_parent makes; its
        // retention would expire it, hence --allow-data-loss).
        db.psql(&["-c", &format!("CREATE TABLE public.other_events_old PARTITION OF {other} FOR VALUES FROM ('2000-01-01') TO ('2001-01-01')")]);
        project.write_policy_compiled("other", &policy_yaml(other, "2 days", ""));

        let reader = db.client().await;
        reader
            .batch_execute(&format!("BEGIN; SELECT count(*) FROM {other}"))
            .await
            .unwrap();
        let reader_pid: i32 = reader
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        // Inserts into the hand-made partition at a steady pace, keeping the longest wait:
        // an insert queues behind apply's pending ACCESS EXCLUSIVE request on the parent.
        let writer = Writer::start_sql(
            &db,
            &format!("INSERT INTO {other} (mtime) VALUES ('2000-06-01')"),
            Duration::from_millis(10),
        )
        .await;
        let err = run_executor(&db, &project, &quick_retries_allowing_data_loss())
            .await
            .unwrap_err()
            .to_string();
        let report = writer.stop().await;
        let (worst, inserted) = (report.max_latency, report.rows);
        eprintln!("{partman}: {err}\nlongest insert: {worst:?}");
        assert!(
            err.contains("gave up after 3 attempts") && err.contains(other),
            "{partman}: {err}"
        );
        assert!(
            err.contains(&format!("pid {reader_pid}")),
            "{partman}: {err}"
        );
        // They did queue behind apply (so this measured something), and not for longer than
        // lock_timeout plus a little.
        assert!(
            worst > Duration::from_millis(200),
            "{partman}: writers never queued: {worst:?}"
        );
        // (700 ms of slack for a loaded machine; without lock_timeout a writer would wait
        // for as long as the reader's transaction, seconds here.)
        assert!(
            worst < Duration::from_millis(500 + 700),
            "{partman}: a writer waited {worst:?} (lock_timeout 500 ms)"
        );
        assert_eq!(
            db.scalar(&format!("SELECT count(*) FROM {other}")),
            inserted.to_string(),
            "{partman}: rows lost"
        );
        assert_eq!(
            db.scalar(&format!(
                "SELECT count(*) FROM partman.part_config WHERE parent_table = '{other}'"
            )),
            "0"
        );
        reader.batch_execute("ROLLBACK").await.unwrap();
        run_executor(&db, &project, &quick_retries_allowing_data_loss())
            .await
            .unwrap();
        assert_eq!(part_config(&db, other), "2 days | f | 4 | t", "{partman}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_apply_holding_the_advisory_lock_is_waited_for_then_named() {
    let (db, project) = applied(Partman::V5, "2s").await;
    project.write_policy_compiled("events", &policy_yaml(TABLE, "4 days", ""));
    let other = db.client().await;
    other
        .batch_execute("SET application_name = 'retentionc'")
        .await
        .unwrap();
    other
        .query_one("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await
        .unwrap();
    let other_pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let options = ApplyOptions {
        apply_wait: Duration::from_millis(800),
        ..ApplyOptions::default()
    };
    let err = run_executor(&db, &project, &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another retentionc apply is running")
            && err.contains(&format!("pid {other_pid}")),
        "{err}"
    );

    // Released within the wait: the apply goes ahead.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other
            .query_one("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
            .await
            .unwrap();
        other
    });
    let options = ApplyOptions {
        apply_wait: Duration::from_secs(5),
        ..ApplyOptions::default()
    };
    run_executor(&db, &project, &options).await.unwrap();
    drop(release.await.unwrap());
    assert_eq!(history_count(&db), 2);
}
