//! `retentionc run` against real PostgreSQL + pg_partman 4.7.2 and 5.2.4, with rows
//! inserted concurrently: detach and archive keep expired partitions as standalone
//! tables; delete rules remove exactly the matching rows; --dry-run changes nothing;
//! a held pg_partman lock or a locked table is reported, never passed off as success;
//! SIGTERM stops a long prune with its committed batches kept; `--delete-jobs` prunes
//! tables on several sessions at once, each once and after its maintenance.
//! A lost connection fails the table, keeps the committed batches, and the next run finishes.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::data::{Writer, db_time};
use common::project::{TestProject, blocking, stdout, text};

fn children(db: &TestDb, table: &str) -> BTreeSet<String> {
    db.psql(&[
        "-At",
        "-c",
        &format!(
            "SELECT i.inhrelid::regclass::text FROM pg_inherits i WHERE i.inhparent = '{table}'::regclass ORDER BY 1"
        ),
    ])
    .lines()
    .map(String::from)
    .collect()
}

/// A 1-second partition set starting 20 s ago, keep 2 s, and rows in its past partitions.
fn short_lived_table(db: &TestDb, expired: &str) -> TestProject {
    db.psql(&["-c", "CREATE TABLE public.events (id bigserial, mtime timestamptz NOT NULL, note text) PARTITION BY RANGE (mtime)"]);
    let policy = format!(
        "table: public.events\npartitioning:\n  column: mtime\n  interval: 1 second\n  premake: 4\n  start: \"{}\"\nretention:\n  keep: 2 seconds\n{expired}",
        db_time(db, -20)
    );
    let project = TestProject::for_db(db)
        .lock_timeout("2s")
        .policy("events.yaml", &policy)
        .compiled()
        .installed_with_psql(db);
    db.psql(&["-c", "INSERT INTO public.events (mtime, note) SELECT now() - make_interval(secs => s), 'old' FROM generate_series(5, 15) s"]);
    project
}

async fn expired_partitions_become_standalone_tables(partman: Partman, archive: bool) {
    let db = Cluster::shared().database(partman);
    let mode = if archive {
        "  expired: archive\n  archive_schema: archive\n"
    } else {
        "  expired: detach\n"
    };
    let project = short_lived_table(&db, mode);
    let before = children(&db, "public.events");
    let inserter = Writer::start_sql(
        &db,
        "INSERT INTO public.events (mtime, note) VALUES (now(), 'new')",
        Duration::from_millis(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = blocking(|| project.run(&["run"]));
    let inserted = inserter.stop().await.rows;
    assert!(out.status.success(), "{partman}: {}", text(&out));
    let after = children(&db, "public.events");
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(
        gone.len() >= 10,
        "{partman}: only {gone:?} left the set:\n{}",
        text(&out)
    );
    let verb = if archive { "moved" } else { "detached" };
    assert!(
        stdout(&out).contains(&format!(":   {verb}: ")),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains(" 0 dropped"), "{}", text(&out));
    for child in &gone {
        let name = child.rsplit('.').next().unwrap();
        let schema = if archive { "archive" } else { "public" };
        let (relkind, inherits) = {
            let row = db.scalar(&format!(
                "SELECT c.relkind::text || ',' || EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid) \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' AND c.relname = '{name}'"
            ));
            let (k, i) = row
                .split_once(',')
                .unwrap_or_else(|| panic!("{partman}: {child} is not in schema {schema}"));
            (k.to_string(), i.to_string())
        };
        assert_eq!(relkind, "r", "{partman}: {child} should be a plain table");
        assert_eq!(inherits, "false", "{partman}: {child} is still a partition");
    }
    // No row was lost: the old rows are in the standalone tables, the new ones in the set.
    let schema = if archive { "archive" } else { "public" };
    let mut old_rows = db
        .scalar("SELECT count(*) FROM public.events WHERE note = 'old'")
        .parse::<i64>()
        .unwrap();
    for child in &gone {
        let name = child.rsplit('.').next().unwrap();
        old_rows += db
            .scalar(&format!(
                "SELECT count(*) FROM {schema}.{name} WHERE note = 'old'"
            ))
            .parse::<i64>()
            .unwrap();
    }
    assert_eq!(old_rows, 11, "{partman}: old rows");
    let new_rows: u64 = db
        .scalar("SELECT count(*) FROM public.events WHERE note = 'new'")
        .parse()
        .unwrap();
    assert_eq!(new_rows, inserted, "{partman}: concurrent inserts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_leaves_expired_partitions_as_tables_pg_partman_4() {
    expired_partitions_become_standalone_tables(Partman::V4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_leaves_expired_partitions_as_tables_pg_partman_5() {
    expired_partitions_become_standalone_tables(Partman::V5, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_moves_expired_partitions_to_the_archive_schema_pg_partman_4() {
    expired_partitions_become_standalone_tables(Partman::V4, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_moves_expired_partitions_to_the_archive_schema_pg_partman_5() {
    expired_partitions_become_standalone_tables(Partman::V5, true).await;
}

const LOGS_POLICY: &str = "table: public.logs\npartitioning:\n  column: logged_at\n  interval: 1 hour\n  premake: 2\n  start: \"{start}\"\nretention:\n  keep: 30 days\ndeletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n    batch_size: 50\n";
const SESSIONS_POLICY: &str = "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked\"\n    older_than: 1 day\n    column: last_seen_at\n    batch_size: 7\n";

/// public.logs (hourly partitions over the last 2 days, a rule on debug rows older than
/// an hour) and public.sessions (a plain table, revoked sessions older than a day).
fn logs_and_sessions(db: &TestDb) -> TestProject {
    db.psql(&[
        "-c",
        "CREATE TABLE public.logs (id bigserial, logged_at timestamptz NOT NULL, level text NOT NULL) PARTITION BY RANGE (logged_at)",
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
    ]);
    let start = db.scalar(
        "SELECT to_char(date_trunc('hour', now()) - interval '48 hours', 'YYYY-MM-DD HH24:MI:SS')",
    );
    let project = TestProject::for_db(db)
        .lock_timeout("2s")
        .policy("logs.yaml", &LOGS_POLICY.replace("{start}", &start))
        .policy("sessions.yaml", SESSIONS_POLICY)
        .compiled()
        .installed_with_psql(db);
    // Rows every 97 s over 47 hours, none within 5 minutes of the one-hour cutoff.
    db.psql(&[
        "-c",
        "INSERT INTO public.logs (logged_at, level) \
         SELECT now() - make_interval(secs => s), CASE WHEN s % 3 = 0 THEN 'debug' ELSE 'info' END \
           FROM generate_series(60, 47 * 3600, 97) s WHERE abs(s - 3600) > 300",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) \
         SELECT now() - make_interval(hours => h), h % 2 = 0 FROM generate_series(1, 100) h WHERE abs(h - 24) > 1",
    ]);
    project
}

async fn delete_rules_remove_exactly_the_matching_rows(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let project = logs_and_sessions(&db);
    let expected_logs: i64 = db.scalar("SELECT count(*) FROM public.logs WHERE level = 'debug' AND logged_at < now() - interval '1 hour'").parse().unwrap();
    let kept_logs: BTreeSet<String> = db
        .psql(&["-At", "-c", "SELECT id FROM public.logs WHERE NOT (level = 'debug' AND logged_at < now() - interval '1 hour')"])
        .lines()
        .map(String::from)
        .collect();
    let expected_sessions: i64 = db.scalar("SELECT count(*) FROM public.sessions WHERE revoked AND last_seen_at < now() - interval '1 day'").parse().unwrap();
    let sessions_before: i64 = db
        .scalar("SELECT count(*) FROM public.sessions")
        .parse()
        .unwrap();
    assert!(expected_logs > 100 && expected_sessions > 10);

    let max_id_before: i64 = db
        .scalar("SELECT max(id) FROM public.logs")
        .parse()
        .unwrap();
    // New debug rows arrive meanwhile: inside the window, they must stay.
    let inserter = Writer::start_sql(
        &db,
        "INSERT INTO public.logs (logged_at, level) VALUES (now(), 'debug')",
        Duration::from_millis(10),
    )
    .await;
    let out = blocking(|| project.run(&["run"]));
    let inserted = inserter.stop().await.rows;
    assert!(out.status.success(), "{partman}: {}", text(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!(
            "public.logs: delete debug_rows: {} rows",
            group(expected_logs)
        )),
        "{partman}: {report}"
    );
    assert!(
        report.contains(&format!(
            "public.sessions: delete revoked: {expected_sessions} rows"
        )),
        "{partman}: {report}"
    );

    let left: BTreeSet<String> = db
        .psql(&[
            "-At",
            "-c",
            &format!("SELECT id FROM public.logs WHERE id <= {max_id_before}"),
        ])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        left, kept_logs,
        "{partman}: exactly the matching log rows go"
    );
    let new_rows: u64 = db
        .scalar(&format!(
            "SELECT count(*) FROM public.logs WHERE id > {max_id_before}"
        ))
        .parse()
        .unwrap();
    assert_eq!(
        new_rows, inserted,
        "{partman}: rows inserted during the run"
    );
    let sessions_after: i64 = db
        .scalar("SELECT count(*) FROM public.sessions")
        .parse()
        .unwrap();
    assert_eq!(sessions_after, sessions_before - expected_sessions);
    assert_eq!(db.scalar("SELECT count(*) FROM public.sessions WHERE revoked AND last_seen_at < now() - interval '1 day'"), "0");
    let logged = db.scalar(
        "SELECT string_agg(table_name || ' ' || step || ' ' || outcome || ' ' || rows_deleted, ', ' ORDER BY table_name, step) \
           FROM retention.run_log WHERE step LIKE 'delete:%'",
    );
    assert_eq!(
        logged,
        format!(
            "public.logs delete:debug_rows ok {expected_logs}, public.sessions delete:revoked ok {expected_sessions}"
        ),
        "{partman}"
    );
}

fn group(n: i64) -> String {
    retentionc::run::progress::group(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_rules_remove_exactly_the_matching_rows_pg_partman_4() {
    delete_rules_remove_exactly_the_matching_rows(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_rules_remove_exactly_the_matching_rows_pg_partman_5() {
    delete_rules_remove_exactly_the_matching_rows(Partman::V5).await;
}

/// Relations, partition tree, row counts and run_log: what --dry-run must leave as it was.
fn snapshot(db: &TestDb) -> String {
    db.psql(&[
        "-At",
        "-c",
        "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(i.inhparent::regclass::text, '-') \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_inherits i ON i.inhrelid = c.oid \
          WHERE n.nspname IN ('public', 'archive', 'retention') ORDER BY 1",
        "-c",
        "SELECT 'logs ' || count(*) FROM public.logs",
        "-c",
        "SELECT 'events ' || count(*) FROM public.events",
        "-c",
        "SELECT 'sessions ' || count(*) FROM public.sessions",
        "-c",
        "SELECT 'run_log ' || count(*) FROM retention.run_log",
        "-c",
        "SELECT 'part_config ' || string_agg(parent_table || ':' || retention, ',') FROM partman.part_config",
    ])
}

async fn dry_run_changes_nothing(partman: Partman) {
    let db = Cluster::shared().database(partman);
    drop(short_lived_table(&db, ""));
    let project = logs_and_sessions(&db);
    // One project with all three policies: events' file is added to this one.
    let events_policy = "table: public.events\npartitioning:\n  column: mtime\n  interval: 1 second\n  premake: 4\nretention:\n  keep: 2 seconds\n";
    std::fs::write(project.root().join("policies/events.yaml"), events_policy).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let before = snapshot(&db);
    let out = blocking(|| project.run(&["run", "--dry-run"]));
    assert!(out.status.success(), "{partman}: {}", text(&out));
    assert_eq!(
        snapshot(&db),
        before,
        "{partman}: --dry-run changed the database:\n{}",
        text(&out)
    );
    let report = stdout(&out);
    assert!(
        report.contains("public.events: maintenance would drop "),
        "{report}"
    );
    assert!(
        report.contains("public.logs: delete debug_rows would delete ~"),
        "{report}"
    );
    assert!(
        report.contains("public.sessions: delete revoked would delete ~"),
        "{report}"
    );
    assert!(report.contains("dry run: nothing was changed"), "{report}");

    // What it listed is what the real run drops (which may drop a little more: time passed).
    let predicted: BTreeSet<String> = report
        .lines()
        .filter_map(|l| l.strip_prefix("public.events:   "))
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("public.")
                .to_string()
        })
        .filter(|name| name.starts_with("events_p"))
        .collect();
    // A long list shows its first and last five.
    assert!(predicted.len() >= 10, "{partman}: {report}");
    assert!(
        report.contains("public.events:   ... ") && report.contains(" rows in all"),
        "{partman}: {report}"
    );
    let before_children = children(&db, "public.events");
    let out = blocking(|| project.run(&["run", "--table", "public.events"]));
    assert!(out.status.success(), "{partman}: {}", text(&out));
    let dropped: BTreeSet<String> = before_children
        .difference(&children(&db, "public.events"))
        .cloned()
        .collect();
    assert!(
        predicted.is_subset(&dropped),
        "{partman}: predicted {predicted:?}, dropped {dropped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_pg_partman_4() {
    dry_run_changes_nothing(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_pg_partman_5() {
    dry_run_changes_nothing(Partman::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_is_reported_skipped_while_another_holds_pg_partmans_lock() {
    skipped_while_another_holds("pg_partman run_maintenance").await;
}

/// pg_partman's drop_partition_time returns having dropped nothing while another session
/// holds its lock; maintain() must report that as skipped too, not as a run that expired
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_is_reported_skipped_while_another_holds_the_drop_lock() {
    skipped_while_another_holds("pg_partman drop_partition_time").await;
}

async fn skipped_while_another_holds(lock: &str) {
    let db = Cluster::shared().database(Partman::V5);
    let project = short_lived_table(&db, "");
    let holder = db.client().await;
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock(hashtext('{lock}'))"))
        .await
        .unwrap();
    // Rows go to a partition made at install: while maintenance is held off (several
    // seconds of retries on a loaded machine), now() would outrun the premade partitions,
    // and rows in the default partition would fail the next run's maintenance.
    let inserter = Writer::start_sql(
        &db,
        &format!(
            "INSERT INTO public.events (mtime, note) VALUES ('{}', 'new')",
            db_time(&db, 0)
        ),
        Duration::from_millis(10),
    )
    .await;
    let before = children(&db, "public.events");
    let out = blocking(|| project.run(&["run"]));
    inserter.stop().await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a skipped maintenance is not a success:\n{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains(
            "public.events: maintenance: SKIPPED: another pg_partman maintenance is running"
        ),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: public.events: maintenance skipped"),
        "{}",
        text(&out)
    );
    assert_eq!(
        children(&db, "public.events"),
        before,
        "nothing was maintained"
    );
    assert_eq!(
        db.scalar("SELECT DISTINCT outcome FROM retention.run_log WHERE step = 'maintenance'"),
        "skipped"
    );

    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let out = blocking(|| project.run(&["run"]));
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_table_is_retried_then_reported_and_the_others_still_run() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&[
        "-c",
        "CREATE TABLE public.events (id bigserial, mtime timestamptz NOT NULL, note text) PARTITION BY RANGE (mtime)",
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', true FROM generate_series(1, 20)",
    ]);
    let events = "table: public.events\npartitioning:\n  column: mtime\n  interval: 1 hour\nretention:\n  keep: 1 day\n";
    let project = TestProject::for_db(&db)
        .lock_timeout("300ms")
        .policy("events.yaml", events)
        .policy("sessions.yaml", SESSIONS_POLICY)
        .compiled()
        .installed_with_psql(&db);
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let out = blocking(|| project.run(&["run"]));
    let took = started.elapsed();
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout(&out);
    assert!(
        report.contains(
            "public.events: maintenance: FAILED: stayed locked after 4 attempts: lock timeout: AccessShareLock on public.events_p"
        ),
        "{}",
        text(&out)
    );
    assert!(
        report.contains("public.sessions: delete revoked: 20 rows")
            && report.contains("public.sessions: ok in"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("trying again (1/4)"),
        "{}",
        text(&out)
    );
    assert!(took < Duration::from_secs(15), "retries took {took:?}");
    let logged = db.scalar("SELECT outcome || ' ' || (detail->>'attempts') || ' ' || (detail->>'error') FROM retention.run_log WHERE table_name = 'public.events'");
    assert!(
        logged.starts_with("failed 4 stayed locked after 4 attempts: lock timeout")
            && logged.contains("lock timeout"),
        "{logged}"
    );
}

/// `run --delete-jobs 2`: the delete rules of two tables run on two sessions at once (one
/// table's prune waits on a gate the test holds while the other's finishes), each table's
/// once and after its own maintenance, which all ran in one session; a table whose owner
/// lacks a grant fails alone, before anything of it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_jobs_prune_tables_at_once_each_once_after_its_maintenance() {
    let db = Cluster::shared().database(Partman::V5);
    let owner = format!("delete_jobs_owner_{}", std::process::id());
    db.psql(&[
        "-c",
        "CREATE TABLE public.logs (id bigserial, logged_at timestamptz NOT NULL, level text NOT NULL) PARTITION BY RANGE (logged_at)",
        "-c",
        "CREATE TABLE public.metrics (id bigserial, taken_at timestamptz NOT NULL) PARTITION BY RANGE (taken_at)",
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        "CREATE TABLE public.audit (id bigserial, at timestamptz NOT NULL, kind text NOT NULL) PARTITION BY RANGE (at)",
        "-c",
        &format!("CREATE ROLE {owner}"),
        "-c",
        &format!("ALTER TABLE public.audit OWNER TO {owner}"),
        // True once the test lets go of advisory lock 4242: the rule of public.sessions
        // waits on it (without a lock wait, so lock_timeout does not end it).
        "-c",
        "CREATE FUNCTION public.gate() RETURNS boolean STABLE LANGUAGE plpgsql AS \
         'BEGIN WHILE NOT pg_try_advisory_xact_lock_shared(4242) LOOP PERFORM pg_sleep(0.05); END LOOP; RETURN true; END'",
    ]);
    let start = db.scalar(
        "SELECT to_char(date_trunc('hour', now()) - interval '48 hours', 'YYYY-MM-DD HH24:MI:SS')",
    );
    let metrics = format!(
        "table: public.metrics\npartitioning:\n  column: taken_at\n  interval: 1 hour\n  premake: 2\n  start: \"{start}\"\nretention:\n  keep: 1 day\n"
    );
    let sessions = "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked AND public.gate()\"\n    older_than: 1 day\n    column: last_seen_at\n    batch_size: 7\n";
    let audit = "table: public.audit\npartitioning:\n  column: at\n  interval: 1 day\nretention:\n  keep: 30 days\ndeletes:\n  - name: noise\n    where: \"kind = 'noise'\"\n    older_than: 1 day\n";
    let project = TestProject::for_db(&db)
        .lock_timeout("2s")
        .policy("audit.yaml", audit)
        .policy("logs.yaml", &LOGS_POLICY.replace("{start}", &start))
        .policy("metrics.yaml", &metrics)
        .policy("sessions.yaml", sessions)
        .compiled()
        .installed_with_psql(&db);
    db.psql(&[
        "-c",
        &format!("REVOKE EXECUTE ON FUNCTION retention.maintain(text, text) FROM {owner}"),
        "-c",
        "INSERT INTO public.logs (logged_at, level) \
         SELECT now() - make_interval(secs => s), CASE WHEN s % 3 = 0 THEN 'debug' ELSE 'info' END \
           FROM generate_series(60, 47 * 3600, 97) s WHERE abs(s - 3600) > 300",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', true FROM generate_series(1, 20)",
    ]);
    let holder = db.client().await;
    holder
        .batch_execute("SELECT pg_advisory_lock(4242)")
        .await
        .unwrap();
    let child = project
        .command(&["run", "--delete-jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.scalar("SELECT count(*) FROM retention.run_log WHERE table_name = 'public.logs' AND step = 'delete:debug_rows' AND outcome = 'ok'") != "1" {
        assert!(
            Instant::now() < deadline,
            "public.logs was never pruned while public.sessions waited: one session only?"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.sessions"),
        "20",
        "public.sessions waits on the gate"
    );
    holder
        .batch_execute("SELECT pg_advisory_unlock(4242)")
        .await
        .unwrap();
    let out = blocking(|| child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout(&out);
    for line in [
        format!(
            "public.audit: maintenance: FAILED: not run: retention of public.audit runs as its owner {owner}, which needs: GRANT EXECUTE ON FUNCTION retention.maintain(text, text) TO {owner}"
        ),
        "public.audit: delete noise: FAILED after 0 rows: not run: its owner lacks what maintenance needs (above)".into(),
        "public.sessions: delete revoked: 20 rows".into(),
        "public.metrics: ok in".into(),
        "public.logs: ok in".into(),
        "public.sessions: ok in".into(),
        "run: 3 ok, 0 skipped, 1 failed".into(),
    ] {
        assert!(report.contains(&line), "no {line:?} in:\n{}", text(&out));
    }
    assert_eq!(
        db.scalar(
            "SELECT string_agg(table_name || ' ' || step || ' ' || outcome, ', ' ORDER BY table_name, step) FROM retention.run_log"
        ),
        "public.audit delete:noise failed, public.audit maintenance failed, \
         public.logs delete:debug_rows ok, public.logs maintenance ok, \
         public.metrics maintenance ok, public.sessions delete:revoked ok",
        "one row per step: each table maintained once and pruned once"
    );
    assert_eq!(
        db.scalar(
            "SELECT bool_and(m.finished_at <= d.started_at) FROM retention.run_log m \
               JOIN retention.run_log d ON d.table_name = m.table_name AND d.step LIKE 'delete:%' \
              WHERE m.step = 'maintenance' AND m.outcome = 'ok'"
        ),
        "t",
        "a table is pruned after its maintenance"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM public.sessions"), "0");
}

/// public.sessions with `rows` three-day-old sessions, revoked where `revoked` (SQL over
/// `n`) holds, and a delete rule that costs a millisecond per matching row, so the prune
/// lasts; `retentionc run` is started in the background and returned once it has
/// committed some batches, with the number of matching rows there were.
async fn slow_prune_running(
    db: &TestDb,
    rows: i64,
    revoked: &str,
) -> (TestProject, std::process::Child, i64) {
    db.psql(&[
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        &format!("INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', {revoked} FROM generate_series(1, {rows}) n"),
        "-c",
        "VACUUM ANALYZE public.sessions",
        // A condition may not call pg_sleep; a STABLE function of the row's id may, and is
        // evaluated for every row.
        "-c",
        "CREATE FUNCTION public.slowly_true(bigint) RETURNS boolean STABLE LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(0.001); RETURN true; END'",
    ]);
    let matching = revoked_count(db);
    let slow = "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked AND public.slowly_true(id)\"\n    older_than: 1 day\n    column: last_seen_at\n    batch_size: 50\n";
    let project = TestProject::for_db(db)
        .lock_timeout("2s")
        .policy("sessions.yaml", slow)
        .compiled()
        .installed_with_psql(db);
    let child = project
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while revoked_count(db) > matching - 100 {
        assert!(Instant::now() < deadline, "the prune never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (project, child, matching)
}

fn revoked_count(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM public.sessions WHERE revoked")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_long_prune_and_keeps_its_committed_batches() {
    let db = Cluster::shared().database(Partman::V5);
    // 20,000 matching rows: the whole prune would take 20 s or more.
    let (_project, child, matching) = slow_prune_running(&db, 20_000, "true").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = blocking(move || child.wait_with_output().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted: committed batches stay"),
        "{}",
        text(&out)
    );
    let left = revoked_count(&db);
    assert!(left > 0 && left < matching, "{left} rows left");
    // Nothing is still running (the backend ends once it sees the client gone), nothing
    // more was deleted, and the failure was recorded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'retentionc' AND datname = current_database()")
        != "0"
    {
        assert!(
            Instant::now() < deadline,
            "retentionc's session outlived it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(revoked_count(&db), left, "the prune went on");
    let logged = db.scalar(
        "SELECT outcome || ' ' || step || ' ' || (detail->>'error') FROM retention.run_log",
    );
    assert!(
        logged.starts_with("failed delete:revoked interrupted"),
        "{logged}"
    );
}

/// A connection lost in the middle of a prune (here: its backend terminated) fails that
/// table, keeps the batches already committed, and the next run finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_keeps_committed_batches_and_the_next_run_finishes() {
    let db = Cluster::shared().database(Partman::V5);
    // 3,000 of 6,000 rows match: about 3 s for the whole prune.
    let (project, child, matching) = slow_prune_running(&db, 6_000, "n % 2 = 0").await;
    assert_eq!(
        db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'retentionc' AND state = 'active' AND datname = current_database()"),
        "1"
    );
    let out = blocking(move || child.wait_with_output().unwrap());
    assert_eq!(
        out.status.code(),
        Some(1),
        "a lost connection is a failure:\n{}",
        text(&out)
    );
    let left = revoked_count(&db);
    assert!(left > 0 && left < matching, "{left} matching rows left");
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.sessions WHERE NOT revoked"),
        "3000",
        "a row no rule matches went"
    );

    let out = blocking(move || project.run(&["run"]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(revoked_count(&db), 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.sessions WHERE NOT revoked"),
        "3000"
    );
}
