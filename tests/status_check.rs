//! `retentionc status --check` against real PostgreSQL + pg_partman 4.7.2 and 5.2.4:
//! every promise of every policy. Each lapse is made to happen for real and must be
//! reported (exit 3, naming the table, the rule or step, and the check), then cleared by
//! `retentionc run` or by the fix the finding names (exit 0).

mod common;

use std::time::Duration;

use common::cluster::{Cluster, Partman, TestDb};
use common::data::Writer;
use common::project::{TestProject, blocking, text};
use serde_json::Value;

/// `status --check --format json`: exit code, the JSON, and stderr.
fn check(project: &TestProject) -> (Option<i32>, Value, String) {
    let out = project.run(&["status", "--check", "--format", "json"]);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status printed no JSON ({e}): {}", text(&out)));
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (table, rule or step, check) of every finding.
fn findings(json: &Value) -> Vec<(String, String, String)> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let what = f["rule"]
                .as_str()
                .or(f["step"].as_str())
                .unwrap_or("")
                .to_string();
            (
                f["table"].as_str().unwrap().to_string(),
                what,
                f["check"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn finding(table: &str, what: &str, check: &str) -> (String, String, String) {
    (table.into(), what.into(), check.into())
}

/// Asserts `status --check` finds exactly `expected` (in any order), exits 3, and names
/// each on stderr; or, with nothing expected, exits 0.
#[track_caller]
fn assert_findings(project: &TestProject, expected: &[(&str, &str, &str)], context: &str) {
    let (code, json, stderr) = check(project);
    let mut found = findings(&json);
    found.sort();
    let mut wanted: Vec<_> = expected.iter().map(|(t, w, c)| finding(t, w, c)).collect();
    wanted.sort();
    assert_eq!(found, wanted, "{context}: {json:#}\n{stderr}");
    if expected.is_empty() {
        assert_eq!(code, Some(0), "{context}: {stderr}");
    } else {
        assert_eq!(code, Some(3), "{context}: {stderr}");
        for (table, what, check) in expected {
            assert!(
                stderr.lines().any(|l| l.starts_with("check failed: ")
                    && l.contains(table)
                    && l.contains(what)
                    && l.contains(&format!("[{check}]"))),
                "{context}: no stderr line names {table} {what} [{check}]:\n{stderr}"
            );
        }
    }
}

fn run_ok(project: &TestProject) {
    let out = project.run(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
}

const EVENTS: &str = "table: public.events
partitioning:
  column: at
  interval: 1 hour
  premake: 4
  start: \"START\"
retention:
  keep: 1 day
";

const SESSIONS: &str = "table: public.sessions
deletes:
  - name: revoked
    where: \"revoked\"
    older_than: 1 day
    column: last_seen_at
  - name: tombstones
    where: \"deleted\"
";

fn setup(db: &TestDb) -> TestProject {
    db.psql(&[
        "-c",
        "CREATE TABLE public.events (id bigserial, at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at)",
        "-c",
        "CREATE INDEX ON public.events (at)",
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL DEFAULT false, deleted boolean NOT NULL DEFAULT false)",
        "-c",
        "CREATE INDEX ON public.sessions (last_seen_at)",
    ]);
    let start = db.scalar(
        "SELECT to_char(date_trunc('hour', now()) - interval '3 days', 'YYYY-MM-DD HH24:MI:SS')",
    );
    let project = TestProject::for_db(db)
        .config("lock_timeout: 200ms")
        .policy("events", &EVENTS.replace("START", &start))
        .policy("sessions", SESSIONS)
        .compiled();
    let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "{}", text(&out));
    project
}

/// Data past its window, rows delete rules should have removed, a failed run, a gap,
/// rows in the default partition, too few premade partitions, no default partition, a
/// missing and an unregistered table: each reported, each cleared.
async fn every_lapse_is_reported_then_cleared(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let project = setup(&db);
    let ctx = partman.to_string();
    assert_findings(&project, &[], &format!("{ctx}: freshly applied"));

    // Data past its window, with inserts running throughout.
    let inserter = Writer::start_sql(
        &db,
        "INSERT INTO public.events (at) VALUES (now())",
        Duration::from_millis(10),
    )
    .await;
    db.psql(&[
        "-c",
        "INSERT INTO public.events (at) SELECT now() - make_interval(hours => h) FROM generate_series(0, 60) h",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', true FROM generate_series(1, 10)",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) VALUES (now(), true)",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, deleted) VALUES (now(), true)",
    ]);
    blocking(|| {
        assert_findings(
            &project,
            &[
                ("public.events", "", "retention"),
                ("public.sessions", "revoked", "delete_rule"),
                ("public.sessions", "tombstones", "delete_rule"),
            ],
            &format!("{ctx}: data past its window"),
        )
    });
    blocking(|| run_ok(&project));
    blocking(|| assert_findings(&project, &[], &format!("{ctx}: after run")));
    // The rule without older_than left nothing; the fresh revoked row stays.
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.sessions WHERE revoked"),
        "1"
    );

    // A failed run: the sessions table is locked for longer than run's retries.
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE public.sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let out = blocking(|| project.run(&["run"]));
    assert_eq!(out.status.code(), Some(1), "{ctx}: {}", text(&out));
    let stdout_of_run = String::from_utf8_lossy(&out.stdout).into_owned();
    locker.batch_execute("ROLLBACK").await.unwrap();
    let (code, json, _) = blocking(|| check(&project));
    assert_eq!(code, Some(3), "{ctx}: {json:#}");
    // Both rules skipped the locked table: its rows are still there.
    assert_eq!(
        findings(&json),
        [
            finding("public.sessions", "revoked", "last_run_failed"),
            finding("public.sessions", "tombstones", "last_run_failed")
        ],
        "{ctx}: {json:#}"
    );
    let problem = json["findings"][0]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("skipped locked partitions") && problem.contains("public.sessions"),
        "{ctx}: {problem}"
    );
    assert!(stdout_of_run.contains("SKIPPED"), "{ctx}: {stdout_of_run}");
    blocking(|| run_ok(&project));
    blocking(|| assert_findings(&project, &[], &format!("{ctx}: after a good run")));

    // A run that fails outright: a trigger refuses the revoked rule's deletes.
    db.psql(&[
        "-c",
        "CREATE FUNCTION public.refuse_delete() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'deletes of revoked sessions are refused today'; END $$",
        "-c",
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON public.sessions FOR EACH ROW
         WHEN (OLD.revoked) EXECUTE FUNCTION public.refuse_delete()",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', true FROM generate_series(1, 5)",
    ]);
    let out = blocking(|| project.run(&["run"]));
    assert_eq!(out.status.code(), Some(1), "{ctx}: {}", text(&out));
    let (code, json, _) = blocking(|| check(&project));
    assert_eq!(code, Some(3), "{ctx}: {json:#}");
    let failed = findings(&json);
    assert!(
        failed.contains(&finding("public.sessions", "revoked", "last_run_failed")),
        "{ctx}: {json:#}"
    );
    let problem = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "last_run_failed" && f["rule"] == "revoked")
        .and_then(|f| f["problem"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        problem.contains("failed at")
            && problem.contains("deletes of revoked sessions are refused today"),
        "{ctx}: {problem}"
    );
    db.psql(&["-c", "DROP TRIGGER refuse_delete ON public.sessions"]);
    blocking(|| run_ok(&project));
    blocking(|| assert_findings(&project, &[], &format!("{ctx}: after the failure is fixed")));
    inserter.stop().await;

    // A gap: a child dropped from the middle; a row for its range lands in the default.
    let middle = db.scalar(
        "SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'public.events'::regclass
            AND pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES FROM (''' || to_char(date_trunc('hour', now()) - interval '6 hours', 'YYYY-MM-DD HH24') || '%'",
    );
    assert!(!middle.is_empty(), "{ctx}: no child 6 hours back");
    db.psql(&[
        "-c",
        &format!("DROP TABLE {middle}"),
        "-c",
        "INSERT INTO public.events (at) VALUES (date_trunc('hour', now()) - interval '6 hours' + interval '1 minute')",
    ]);
    assert_findings(
        &project,
        &[
            ("public.events", "", "partition_gap"),
            ("public.events", "", "default_partition_rows"),
        ],
        &format!("{ctx}: a missing child"),
    );
    let partman_fn = "partman.partition_gap_fill('public.events')";
    db.psql(&[
        "-c",
        "DELETE FROM public.events_default",
        "-c",
        &format!("SELECT {partman_fn}"),
    ]);
    assert_findings(&project, &[], &format!("{ctx}: gap filled"));

    // Too few premade partitions: the future children dropped; maintenance makes them.
    let ahead: Vec<String> = db
        .psql(&[
            "-At",
            "-c",
            "SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'public.events'::regclass
                AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
              ORDER BY c.relname DESC LIMIT 4",
        ])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ahead.len(), 4, "{ctx}: {ahead:?}");
    for child in &ahead {
        db.psql(&["-c", &format!("DROP TABLE {child}")]);
    }
    assert_findings(
        &project,
        &[("public.events", "", "premake_low")],
        &format!("{ctx}: future partitions dropped"),
    );
    run_ok(&project);
    assert_findings(
        &project,
        &[],
        &format!("{ctx}: maintenance premade them again"),
    );

    // No default partition, though the policy wants one.
    db.psql(&["-c", "DROP TABLE public.events_default"]);
    assert_findings(
        &project,
        &[("public.events", "", "default_partition_missing")],
        &format!("{ctx}: default partition dropped"),
    );
    db.psql(&[
        "-c",
        "CREATE TABLE public.events_default PARTITION OF public.events DEFAULT",
    ]);
    assert_findings(&project, &[], &format!("{ctx}: default partition back"));

    // A policy whose table does not exist, and one whose table is not registered.
    db.psql(&[
        "-c",
        "CREATE TABLE public.metrics (at timestamptz NOT NULL) PARTITION BY RANGE (at)",
    ]);
    project.write_policy(
        "metrics",
        "table: public.metrics\npartitioning:\n  column: at\n  interval: 1 day\nretention:\n  keep: 30 days\n",
    );
    project.write_policy(
        "ghost",
        "table: public.ghost\ndeletes:\n  - name: old\n    where: \"true\"\n    older_than: 1 day\n    column: at\n",
    );
    project.compile();
    assert_findings(
        &project,
        &[
            ("public.metrics", "", "not_registered"),
            ("public.ghost", "", "table_missing"),
        ],
        &format!("{ctx}: new policies, not applied"),
    );
    db.psql(&["-c", "CREATE TABLE public.ghost (at timestamptz NOT NULL)"]);
    let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "{ctx}: {}", text(&out));
    assert_findings(&project, &[], &format!("{ctx}: applied"));
    // The parent was never dropped along the way.
    assert_eq!(
        db.scalar("SELECT relkind FROM pg_class WHERE oid = 'public.events'::regclass"),
        "p"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lapse_is_reported_then_cleared_pg_partman_4() {
    every_lapse_is_reported_then_cleared(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lapse_is_reported_then_cleared_pg_partman_5() {
    every_lapse_is_reported_then_cleared(Partman::V5).await;
}

/// A scheduled policy: no run at all one period after apply is a lapse, and so is a
/// last successful run more than two periods old; `run` clears both.
#[test]
fn scheduled_runs_that_never_happen_or_stop_are_lapses() {
    let cluster = Cluster::shared();
    for partman in Partman::BOTH {
        let ctx = partman.to_string();
        let db = cluster.cron_database(partman);
        db.psql(&[
            "-c",
            "DROP TABLE IF EXISTS public.jobs",
            "-c",
            "CREATE TABLE public.jobs (id bigserial PRIMARY KEY, finished_at timestamptz NOT NULL)",
        ]);
        let project = TestProject::for_db(&db)
            .policy(
                "jobs",
                "table: public.jobs\ndeletes:\n  - name: finished\n    where: \"true\"\n    older_than: 7 days\n    column: finished_at\nschedule: \"0 3 * * *\"\n",
            )
            .compiled();
        let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert!(out.status.success(), "{ctx}: {}", text(&out));
        // Applied just now: not yet due.
        assert_findings(&project, &[], &format!("{ctx}: just applied"));
        db.psql(&[
            "-c",
            "UPDATE retention.apply_history SET applied_at = applied_at - interval '2 days'",
        ]);
        assert_findings(
            &project,
            &[("public.jobs", "finished", "never_run")],
            &format!("{ctx}: applied two days ago, never run"),
        );
        run_ok(&project);
        assert_findings(&project, &[], &format!("{ctx}: run"));
        db.psql(&[
            "-c",
            "UPDATE retention.run_log SET started_at = started_at - interval '3 days', finished_at = finished_at - interval '3 days'",
        ]);
        assert_findings(
            &project,
            &[("public.jobs", "finished", "run_stale")],
            &format!("{ctx}: last run three days ago, daily schedule"),
        );
        run_ok(&project);
        assert_findings(&project, &[], &format!("{ctx}: run again"));
        db.psql(&[
            "-c",
            "SELECT cron.unschedule('retentionc:public.jobs')",
            "-c",
            "DROP TABLE public.jobs",
            "-c",
            "DROP SCHEMA retention CASCADE",
        ]);
    }
}

/// A delete rule whose `where` no longer plans (its column was dropped) is reported for
/// that rule; the other tables are still checked.
#[test]
fn a_rule_that_cannot_be_checked_is_a_lapse_of_that_rule_only() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&[
        "-c",
        "CREATE TABLE public.logs (at timestamptz NOT NULL, level text)",
        "-c",
        "CREATE TABLE public.audit (at timestamptz NOT NULL)",
    ]);
    let project = TestProject::for_db(&db)
        .policy(
            "logs",
            "table: public.logs\ndeletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n    column: at\n",
        )
        .policy(
            "audit",
            "table: public.audit\ndeletes:\n  - name: old\n    where: \"true\"\n    older_than: 1 day\n    column: at\n",
        )
        .compiled();
    project.install_with_psql(&db);
    db.psql(&[
        "-c",
        "ALTER TABLE public.logs DROP COLUMN level",
        "-c",
        "INSERT INTO public.audit VALUES (now() - interval '2 days')",
    ]);
    let (code, json, stderr) = check(&project);
    assert_eq!(code, Some(3), "{json:#}");
    let mut found = findings(&json);
    found.sort();
    assert_eq!(
        found,
        [
            finding("public.audit", "old", "delete_rule"),
            finding("public.logs", "debug", "delete_rule"),
        ]
    );
    assert!(
        stderr.contains("rule debug cannot be checked: column \"level\" does not exist"),
        "{stderr}"
    );
}

/// An integer column holding Unix seconds (`epoch: seconds`): bounds, the oldest row and
/// expiry are all read as times.
#[test]
fn epoch_tables_are_checked_in_time_pg_partman_5() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&["-c", "CREATE TABLE public.metrics (id bigserial, ts bigint NOT NULL, v float8) PARTITION BY RANGE (ts)"]);
    let start = db.scalar(
        "SELECT to_char(date_trunc('hour', now()) - interval '3 days', 'YYYY-MM-DD HH24:MI:SS')",
    );
    let project = TestProject::for_db(&db)
        .policy(
            "metrics",
            &format!("table: public.metrics\npartitioning:\n  column: ts\n  interval: 1 hour\n  premake: 4\n  start: \"{start}\"\n  epoch: seconds\nretention:\n  keep: 1 day\n"),
        )
        .compiled();
    project.install_with_psql(&db);
    db.psql(&["-c", "INSERT INTO public.metrics (ts, v) SELECT extract(epoch FROM now() - make_interval(hours => h))::bigint, h FROM generate_series(0, 60) h"]);

    let (code, json, _) = check(&project);
    assert_eq!(code, Some(3), "{json:#}");
    let age = json["tables"][0]["retention"]["oldest_row_age_seconds"]
        .as_f64()
        .unwrap();
    assert!(
        (60.0 * 3600.0 - 5.0..60.0 * 3600.0 + 60.0).contains(&age),
        "oldest row age {age}"
    );
    assert_eq!(
        json["tables"][0]["retention"]["allowed_age"],
        "1 day 1 hour"
    );
    assert_eq!(
        json["tables"][0]["partitions"]["gaps"],
        serde_json::json!([])
    );

    let out = project.run(&["run", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("public.metrics: maintenance would drop "),
        "{}",
        text(&out)
    );
    run_ok(&project);
    assert_findings(&project, &[], "epoch table after run");
    // Kept: the last 24 hours and the partition straddling the cutoff, nothing older.
    let oldest: f64 = db
        .scalar("SELECT extract(epoch FROM now()) - min(ts) FROM public.metrics")
        .parse()
        .unwrap();
    assert!(
        (23.0 * 3600.0..=25.0 * 3600.0 + 5.0).contains(&oldest),
        "oldest row {oldest} s old"
    );
}

/// Text output: the lapse is shown in the table's block, and without --check a lapse is
/// not an error.
#[test]
fn text_shows_lapses_and_exits_0_without_check() {
    let db = Cluster::shared().database(Partman::V4);
    db.psql(&["-c", "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL DEFAULT false, deleted boolean NOT NULL DEFAULT false)"]);
    let project = TestProject::for_db(&db)
        .policy("sessions", SESSIONS)
        .compiled();
    project.install_with_psql(&db);
    db.psql(&[
        "-c",
        "INSERT INTO public.sessions (last_seen_at, deleted) VALUES (now(), true)",
    ]);
    let out = project.run(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rule tombstones: matching rows remain: LAPSED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule revoked: no matching row older than 1 day: holds"),
        "{stdout}"
    );
    assert!(stdout.contains("last run: never"), "{stdout}");
    assert!(
        stdout.contains("  LAPSED: rows matching rule tombstones remain; run `retentionc run`"),
        "{stdout}"
    );
}

/// The statements status sends do not grow with the number of tables: every per-table
/// fact is read by one set-based query for all tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sends_the_same_number_of_statements_for_2_and_12_tables() {
    let db = Cluster::shared().database(Partman::V5);
    let client = db.client().await;
    let mut sent = Vec::new();
    for n in [2, 12] {
        let mut project = TestProject::for_db(&db);
        let mut ddl = String::new();
        for i in 0..n {
            ddl.push_str(&format!(
                "CREATE TABLE public.s{n}_{i} (at timestamptz NOT NULL, level text) PARTITION BY RANGE (at);
                 CREATE TABLE public.d{n}_{i} (at timestamptz NOT NULL, level text);"
            ));
            project = project
                .policy(
                    &format!("s{n}_{i}"),
                    &format!("table: public.s{n}_{i}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\nretention:\n  keep: 30 days\ndeletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n"),
                )
                .policy(
                    &format!("d{n}_{i}"),
                    &format!("table: public.d{n}_{i}\ndeletes:\n  - name: all\n    where: \"true\"\n"),
                );
        }
        db.psql(&["-c", &ddl]);
        let project = project.compiled();
        blocking(|| project.install_with_psql(&db));
        let report = retentionc::status::report(&client, &project.load())
            .await
            .unwrap();
        assert_eq!(report.tables.len(), 2 * n);
        assert!(report.tables.iter().all(|t| !t.lapsed()), "{n} tables");
        sent.push(report.statements_sent);
    }
    assert_eq!(sent[0], sent[1], "statements for 2 and 12 tables: {sent:?}");
}
