//! `retentionc apply` through the real binary, against real PostgreSQL + pg_partman, with
//! writers inserting throughout (none of their inserts may fail or be lost). A partitioned
//! table takes no rows before it has partitions, so the writers start once it is registered.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::data::{Writer, create_table, history_count, part_config, policy_yaml};
use common::project::{TestProject, text};

const TABLE: &str = "public.events";

fn ok(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails(output: &std::process::Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    eprintln!("expected failure:\n{}", text(output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The table, its policy, and a first apply through the binary.
fn applied(partman: Partman, lock_timeout: &'static str) -> (TestDb, TestProject) {
    let db = Cluster::shared().database(partman);
    create_table(&db, TABLE);
    let project = TestProject::for_db(&db).lock_timeout(lock_timeout);
    project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
    let out = ok(&project.run(&["apply", "--auto-approve"]));
    assert!(out.contains("Applied"), "{out}");
    eprintln!("first apply:\n{out}");
    (db, project)
}

fn assert_no_changes(project: &TestProject) {
    let output = project.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "plan should show no changes: {}",
        text(&output)
    );
    let out = ok(&project.run(&["apply", "--auto-approve"]));
    assert!(out.contains("No changes"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_from_empty_then_a_second_apply_is_a_no_op() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s");
        assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t", "{partman}");
        assert_eq!(history_count(&db), 1);
        let writer = Writer::start(&db, TABLE).await;
        assert_no_changes(&project);
        writer.finish(&db, TABLE).await;
        assert_eq!(
            history_count(&db),
            1,
            "{partman}: a no-op apply records nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_kind_applies_and_then_plans_clean() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s");
        let writer = Writer::start(&db, TABLE).await;

        project.write_policy_compiled("events", &policy_yaml(TABLE, "3 days", ""));
        ok(&project.run(&["apply", "--auto-approve"]));
        assert_eq!(part_config(&db, TABLE), "3 days | f | 4 | t", "{partman}");
        assert_no_changes(&project);

        let rule = "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n";
        project.write_policy_compiled("events", &policy_yaml(TABLE, "3 days", rule));
        ok(&project.run(&["apply", "--auto-approve", "--allow-data-loss"]));
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "1",
            "{partman}"
        );
        assert_no_changes(&project);

        project.write_policy_compiled("events", &policy_yaml(TABLE, "3 days", ""));
        ok(&project.run(&["apply", "--auto-approve"]));
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "0",
            "{partman}"
        );
        assert_no_changes(&project);

        writer.finish(&db, TABLE).await;
        assert_eq!(history_count(&db), 4, "{partman}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_policy_disables_retention_and_keeps_registration_and_data() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s");
        project.write_policy_compiled(
            "events",
            &policy_yaml(
                TABLE,
                "2 days",
                "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n",
            ),
        );
        ok(&project.run(&["apply", "--auto-approve", "--allow-data-loss"]));
        let writer = Writer::start(&db, TABLE).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        project.remove_policy("events");
        project.compile();
        let out = ok(&project.run(&["apply", "--auto-approve"]));
        assert!(out.contains("Applied"), "{partman}: {out}");
        let report = writer.finish(&db, TABLE).await;
        assert_eq!(
            part_config(&db, TABLE),
            "f | 4 | t",
            "{partman}: still registered, retention off"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "0",
            "{partman}"
        );
        assert_eq!(
            db.scalar(&format!("SELECT count(*) FROM {TABLE}")),
            report.succeeded.to_string(),
            "{partman}: data kept"
        );
        assert_no_changes(&project);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_applied_exactly_once() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s");
        let writer = Writer::start(&db, TABLE).await;
        project.write_policy_compiled("events", &policy_yaml(TABLE, "5 days", ""));
        let plan_file = project.root().join("plan.json");
        let plan_file = plan_file.to_str().unwrap();
        let output = project.run(&["plan", "--out", plan_file, "--detailed-exitcode"]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(plan_file).unwrap()).unwrap();

        let out = ok(&project.run(&["apply", "--plan", plan_file, "--auto-approve"]));
        assert!(out.contains("Applied"), "{out}");
        assert_eq!(part_config(&db, TABLE), "5 days | f | 4 | t", "{partman}");
        let executed = db.scalar("SELECT array_to_json(statements)::text FROM retention.apply_history ORDER BY id DESC LIMIT 1");
        let executed: Vec<String> = serde_json::from_str(&executed).unwrap();
        let planned: Vec<String> = saved["changes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| {
                c["statements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["sql"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(executed, planned, "{partman}: exactly the saved statements");

        // Applying it again: the database is no longer what it was planned against.
        let err = fails(&project.run(&["apply", "--plan", plan_file, "--auto-approve"]));
        assert!(
            err.contains("the database changed since the plan was made; run plan again"),
            "{partman}: {err}"
        );
        writer.finish(&db, TABLE).await;
        assert_eq!(history_count(&db), 2, "{partman}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_saved_plan_is_refused() {
    let (db, project) = applied(Partman::V5, "2s");
    let writer = Writer::start(&db, TABLE).await;
    project.write_policy_compiled("events", &policy_yaml(TABLE, "5 days", ""));
    let plan_file = project.root().join("plan.json");
    let plan_file = plan_file.to_str().unwrap();
    ok(&project.run(&["plan", "--out", plan_file]));
    // Someone changes the database by hand in between.
    db.psql(&[
        "-c",
        "UPDATE partman.part_config SET premake = 9 WHERE parent_table = 'public.events'",
    ]);
    let err = fails(&project.run(&["apply", "--plan", plan_file, "--auto-approve"]));
    assert!(
        err.contains("the database changed since the plan was made; run plan again"),
        "{err}"
    );
    assert_eq!(
        part_config(&db, TABLE),
        "2 days | f | 9 | t",
        "nothing applied"
    );
    writer.finish(&db, TABLE).await;
    assert_eq!(history_count(&db), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_from_other_policies_is_refused() {
    let (db, project) = applied(Partman::V5, "2s");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "5 days", ""));
    let plan_file = project.root().join("plan.json");
    let plan_file = plan_file.to_str().unwrap();
    ok(&project.run(&["plan", "--out", plan_file]));
    project.write_policy_compiled("events", &policy_yaml(TABLE, "6 days", ""));
    let err = fails(&project.run(&["apply", "--plan", plan_file, "--auto-approve"]));
    assert!(
        err.contains("the policies changed since the plan was made (public.events)"),
        "{err}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_change_needs_allow_data_loss() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "2s");
        let writer = Writer::start(&db, TABLE).await;
        project.write_policy_compiled("events", &policy_yaml(TABLE, "3 hours", ""));
        let err = fails(&project.run(&["apply", "--auto-approve"]));
        assert!(
            err.contains("--allow-data-loss") && err.contains("public.events"),
            "{partman}: {err}"
        );
        assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t", "{partman}");

        let out = ok(&project.run(&["apply", "--auto-approve", "--allow-data-loss"]));
        assert!(out.contains("Applied"), "{out}");
        assert_eq!(part_config(&db, TABLE), "3 hours | f | 4 | t", "{partman}");
        writer.finish(&db, TABLE).await;
    }
}

/// Two applies started at the same moment: the second waits for the first's advisory lock,
/// plans again under it, finds nothing to do. The end state is that of one apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_applies_give_the_result_of_one() {
    for partman in Partman::BOTH {
        // From empty: both would register the table; pg_partman must not see it twice.
        let db = Cluster::shared().database(partman);
        create_table(&db, TABLE);
        let project = TestProject::for_db(&db).lock_timeout("2s");
        project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
        let (a, b) = run_two(&project, &["apply", "--auto-approve"]);
        let outs = [ok(&a), ok(&b)];
        assert_eq!(
            outs.iter().filter(|o| o.contains("Applied")).count(),
            1,
            "{partman}: {outs:?}"
        );
        assert_eq!(
            outs.iter().filter(|o| o.contains("No changes")).count(),
            1,
            "{partman}: {outs:?}"
        );
        for o in [&a, &b] {
            assert!(
                !String::from_utf8_lossy(&o.stderr)
                    .to_lowercase()
                    .contains("partman"),
                "{partman}: {}",
                text(o)
            );
        }
        assert_eq!(history_count(&db), 1, "{partman}");
        assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config"), "1");

        // A change, with writers: same again.
        let writer = Writer::start(&db, TABLE).await;
        project.write_policy_compiled("events", &policy_yaml(TABLE, "4 days", "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n"));
        let (a, b) = run_two(&project, &["apply", "--auto-approve", "--allow-data-loss"]);
        let outs = [ok(&a), ok(&b)];
        assert_eq!(
            outs.iter().filter(|o| o.contains("Applied")).count(),
            1,
            "{partman}: {outs:?}"
        );
        writer.finish(&db, TABLE).await;
        assert_eq!(history_count(&db), 2, "{partman}");
        assert_no_changes(&project);
    }
}

fn run_two(project: &TestProject, args: &[&str]) -> (std::process::Output, std::process::Output) {
    let spawn = || {
        project
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
}

/// Someone holds the part_config row apply must update: apply retries, then fails naming
/// the relation and the session, and the writers never notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_transaction_holding_a_lock_makes_apply_retry_then_fail_clearly() {
    let (db, project) = applied(Partman::V5, "300ms");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "4 days", ""));
    let holder = db.client().await;
    holder.batch_execute("SET application_name = 'long report'; BEGIN; SELECT * FROM partman.part_config FOR UPDATE").await.unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let writer = Writer::start(&db, TABLE).await;
    let started = Instant::now();
    let output = project.run(&["apply", "--auto-approve"]);
    let took = started.elapsed();
    let report = writer.finish(&db, TABLE).await;
    let err = fails(&output);
    assert!(
        err.contains("gave up after 5 attempts") && err.contains("part_config"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {holder_pid}"))
            && err.contains("long report")
            && err.contains("idle in transaction"),
        "{err}"
    );
    assert_eq!(err.matches("retrying in").count(), 4, "{err}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Apply never held a lock writers need; allow for a loaded machine, far below the
    // ~10 s the five attempts took.
    assert!(
        report.max_latency < Duration::from_millis(300 + 700),
        "{report:?}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
    assert_eq!(history_count(&db), 1);
    holder.batch_execute("ROLLBACK").await.unwrap();
    ok(&project.run(&["apply", "--auto-approve"]));
    assert_eq!(part_config(&db, TABLE), "4 days | f | 4 | t");
}

/// Killed while it waits for a lock: the transaction dies with the connection, nothing of it
/// remains, and the next apply does the whole job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_mid_way_leaves_nothing_half_applied() {
    for partman in Partman::BOTH {
        let (db, project) = applied(partman, "10s");
        let writer = Writer::start(&db, TABLE).await;
        // The change: retention (a part_config row), a new procedure, and a second table to
        // register, whose parent a long reader keeps locked, so apply is waiting there.
        let other = "public.other_events";
        create_table(&db, other);
        let rule = "deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n";
        project.write_policy_compiled("events", &policy_yaml(TABLE, "6 days", rule));
        project.write_policy_compiled("other", &policy_yaml(other, "2 days", ""));
        let reader = db.client().await;
        reader
            .batch_execute(&format!("BEGIN; SELECT count(*) FROM {other}"))
            .await
            .unwrap();

        let mut child = project
            .command(&["apply", "--auto-approve", "--allow-data-loss"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // It is waiting: its session wants a lock it cannot have.
        let waiting = db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc' AND wait_event_type = 'Lock'");
        assert_eq!(
            waiting, "1",
            "{partman}: apply should be waiting for the lock"
        );
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait_with_output();
        // Its server session notices within about a second (client_connection_check_interval),
        // although the lock it waits for is still held and lock_timeout is 10 s.
        let gone_by = Instant::now() + Duration::from_secs(3);
        while db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc'") != "0" {
            assert!(Instant::now() < gone_by, "{partman}: the killed apply's session is still there");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let unchanged = || {
            assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t", "{partman}");
            assert_eq!(
                db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
                "0",
                "{partman}"
            );
            assert_eq!(
                db.scalar(&format!(
                    "SELECT count(*) FROM partman.part_config WHERE parent_table = '{other}'"
                )),
                "0",
                "{partman}"
            );
            assert_eq!(history_count(&db), 1, "{partman}");
        };
        unchanged();
        reader.batch_execute("ROLLBACK").await.unwrap();
        unchanged();

        let out = ok(&project.run(&["apply", "--auto-approve", "--allow-data-loss"]));
        assert!(out.contains("Applied"), "{out}");
        assert_eq!(part_config(&db, TABLE), "6 days | f | 4 | t", "{partman}");
        assert_eq!(part_config(&db, other), "2 days | f | 4 | t", "{partman}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'prune_events'"),
            "1",
            "{partman}"
        );
        writer.finish(&db, TABLE).await;
        assert_no_changes(&project);
    }
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let db = Cluster::shared().database(Partman::V5);
    create_table(&db, TABLE);
    let project = TestProject::for_db(&db).lock_timeout("2s");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
    let err = fails(&project.run(&["apply"]));
    assert!(
        err.contains("--auto-approve") && err.contains("not a terminal"),
        "{err}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'retention'"),
        "0",
        "nothing changed"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config"), "0");
}

/// Runs `retentionc apply` on a pseudo-terminal (util-linux `script`), typing `answer` once
/// the question is shown; `meanwhile` runs while the question waits.
fn apply_on_terminal(
    db: &TestDb,
    project: &TestProject,
    answer: &str,
    meanwhile: impl FnOnce(),
) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let bin = common::cluster::retentionc_bin();
    let line = format!(
        "{} --config {} apply",
        bin.display(),
        project.config_path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("DATABASE_URL", &db.url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.lock().unwrap().contains("Enter a value") {
        assert!(
            Instant::now() < deadline,
            "no question asked: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    meanwhile();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let out = seen.lock().unwrap().clone();
    (status.code(), out)
}

#[test]
fn on_a_terminal_apply_asks_and_applies_only_on_yes() {
    let db = Cluster::shared().database(Partman::V5);
    create_table(&db, TABLE);
    let project = TestProject::for_db(&db).lock_timeout("2s");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));

    let (code, out) = apply_on_terminal(&db, &project, "no", || {});
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("public.events")
            && out.contains("register")
            && out.contains("apply cancelled"),
        "{out}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM partman.part_config"), "0");

    let (code, out) = apply_on_terminal(&db, &project, "yes", || {});
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Applied"), "{out}");
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
}

#[test]
fn a_database_changed_while_the_question_waits_is_not_applied() {
    let (db, project) = applied(Partman::V5, "2s");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "5 days", ""));
    let (code, out) = apply_on_terminal(&db, &project, "yes", || {
        db.psql(&[
            "-c",
            "UPDATE partman.part_config SET premake = 9 WHERE parent_table = 'public.events'",
        ]);
    });
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the database changed while the plan awaited confirmation"),
        "{out}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 9 | t");
}

/// pg_cron lives in one database of the cluster (see `Cluster::cron_database`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_added_changed_and_removed() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().cron_database(partman);
        create_table(&db, TABLE);
        let project = TestProject::for_db(&db).lock_timeout("2s");
        // Yearly: the job must not actually run during the test.
        project.write_policy_compiled(
            "events",
            &policy_yaml(TABLE, "2 days", "schedule: \"0 0 1 1 *\"\n"),
        );
        ok(&project.run(&["apply", "--auto-approve"]));
        let job = || {
            db.scalar("SELECT coalesce(string_agg(schedule || ' ' || command, ','), '') FROM cron.job WHERE jobname = 'retentionc:public.events'")
        };
        assert_eq!(
            job(),
            "0 0 1 1 * SELECT \"retention\".\"maintain\"('public.events', 'UTC')",
            "{partman}"
        );
        let writer = Writer::start(&db, TABLE).await;
        assert_no_changes(&project);

        project.write_policy_compiled(
            "events",
            &policy_yaml(TABLE, "2 days", "schedule: \"0 0 2 1 *\"\n"),
        );
        ok(&project.run(&["apply", "--auto-approve"]));
        assert!(job().starts_with("0 0 2 1 * "), "{partman}: {}", job());
        assert_no_changes(&project);

        project.write_policy_compiled("events", &policy_yaml(TABLE, "2 days", ""));
        ok(&project.run(&["apply", "--auto-approve"]));
        assert_eq!(job(), "", "{partman}");
        assert_no_changes(&project);
        writer.finish(&db, TABLE).await;
    }
}

/// What apply executes must be in the reviewed files: a policy edited without `compile`
/// is refused, and nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_changed_without_compile_is_not_applied() {
    let (db, project) = applied(Partman::V5, "2s");
    let writer = Writer::start(&db, TABLE).await;
    project.write_policy("events", &policy_yaml(TABLE, "7 days", ""));
    let err = fails(&project.run(&["apply", "--auto-approve"]));
    assert!(
        err.contains("generated/public.events.sql") && err.contains("retentionc compile"),
        "{err}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
    project.compile();
    ok(&project.run(&["apply", "--auto-approve"]));
    assert_eq!(part_config(&db, TABLE), "7 days | f | 4 | t");
    writer.finish(&db, TABLE).await;
}

/// Another apply holds retentionc's advisory lock for longer than this one will wait
/// (`RETENTIONC_APPLY_WAIT`): it fails, saying so, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_that_waits_too_long_for_another_says_so() {
    let (db, project) = applied(Partman::V5, "2s");
    project.write_policy_compiled("events", &policy_yaml(TABLE, "8 days", ""));
    let other = db.client().await;
    other
        .batch_execute("SET application_name = 'retentionc'")
        .await
        .unwrap();
    other
        .query_one(
            "SELECT pg_advisory_lock($1)",
            &[&retentionc::apply::ADVISORY_LOCK_KEY],
        )
        .await
        .unwrap();
    let other_pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let output = project
        .command(&["apply", "--auto-approve"])
        .env("RETENTIONC_APPLY_WAIT", "1s")
        .output()
        .unwrap();
    let err = fails(&output);
    assert!(
        err.contains("another retentionc apply is running")
            && err.contains(&format!("pid {other_pid}")),
        "{err}"
    );
    assert_eq!(part_config(&db, TABLE), "2 days | f | 4 | t");
    other
        .query_one(
            "SELECT pg_advisory_unlock($1)",
            &[&retentionc::apply::ADVISORY_LOCK_KEY],
        )
        .await
        .unwrap();
    ok(&project.run(&["apply", "--auto-approve"]));
    assert_eq!(part_config(&db, TABLE), "8 days | f | 4 | t");
}

/// The repository's own example project (partitioned and plain tables, delete rules,
/// archive, schedules), applied to a database with its tables: then nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_project_applies_and_then_plans_clean() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().cron_database(partman);
        db.psql(&["-c", "
            CREATE TABLE public.app_logs (id bigserial, logged_at timestamptz NOT NULL DEFAULT now(), level text, path text, status int, payload text) PARTITION BY RANGE (logged_at);
            CREATE TABLE public.events (id bigserial, created_at timestamptz NOT NULL DEFAULT now(), payload text) PARTITION BY RANGE (created_at);
            CREATE TABLE public.test_table1 (id bigserial, mtime timestamptz NOT NULL DEFAULT now(), payload text) PARTITION BY RANGE (mtime);
            CREATE TABLE public.user_sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL DEFAULT now(), revoked boolean NOT NULL DEFAULT false, remember_me boolean NOT NULL DEFAULT false);
        "]);
        let project = TestProject::for_db(&db).lock_timeout("2s");
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(repo.join("policies")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                project
                    .root()
                    .join("policies")
                    .join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        project.compile();
        // New delete rules count as destructive: they will delete rows that exist now.
        let out = ok(&project.run(&["apply", "--auto-approve", "--allow-data-loss"]));
        assert!(out.contains("Applied"), "{partman}: {out}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM partman.part_config"),
            "3",
            "{partman}"
        );
        assert_eq!(db.scalar("SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc WHERE proname LIKE 'prune\\_%'"), "prune_app_logs,prune_user_sessions", "{partman}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM cron.job WHERE jobname LIKE 'retentionc:%'"),
            "3",
            "{partman}"
        );
        assert_eq!(
            part_config(&db, "public.events"),
            "90 days | t | archive | 7 | t",
            "{partman}"
        );
        let writer = Writer::start(&db, "public.app_logs").await;
        assert_no_changes(&project);
        writer.finish(&db, "public.app_logs").await;
    }
}
