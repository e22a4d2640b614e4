//! How retention executes and with whose rights, against real PostgreSQL 15 with pg_partman
//! 4.7.2 and 5.2.4, rows inserted meanwhile and checked against a ledger:
//! - `run` and the pg_cron job run a table's maintenance and prune with its owner's rights
//!   (a trigger that tries to make its owner superuser is refused), and retention still works;
//! - a `timestamp without time zone` table on a server whose TimeZone is not UTC needs
//!   `time_zone`, and then nothing inside the window is lost;
//! - a partition locked by another session is skipped and reported, the others pruned;
//! - pg_partman's re-raised lock timeout (P0001) is retried and reported in one line,
//!   naming what was locked and by whom;
//! - after a lost connection run reports what the server committed.

mod common;

use std::io::Read;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::data::{Writer, db_hour};
use common::project::{TestProject, blocking, stderr, stdout, text};
use common::proxy::Proxy;

static ROLES: AtomicU64 = AtomicU64::new(0);

/// A new role (cluster-wide, so named uniquely) with `attributes`, e.g. `LOGIN`.
fn new_role(db: &TestDb, prefix: &str, attributes: &str) -> String {
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        ROLES.fetch_add(1, Ordering::Relaxed)
    );
    db.psql(&["-c", &format!("CREATE ROLE {name} {attributes}")]);
    name
}

/// Inserts rows `(now, kind)` into `table` every 5 ms until stopped, each also recorded in
/// `public.ledger` in the same statement: the ledger is what must survive.
async fn start_inserts(db: &TestDb, table: &str, now: &str) -> Writer {
    let sql = format!(
        "WITH r AS (INSERT INTO {table} (at, kind) VALUES ({now}, CASE WHEN random() < 0.5 THEN 'debug' ELSE 'info' END) RETURNING id, at, kind) \
         INSERT INTO public.ledger SELECT id, at, kind FROM r"
    );
    Writer::start_sql(db, &sql, Duration::from_millis(5)).await
}

/// public.events (hourly partitions on `at`, of `column_type`) owned by `owner`, with a
/// ledger of every row, and rows every 10 minutes over the last 6 hours (`now` is the
/// SQL for the current time in the column's terms).
fn events_table(db: &TestDb, owner: &str, column_type: &str, now: &str) {
    db.psql(&[
        "-c",
        &format!(
            "CREATE TABLE public.events (id bigserial NOT NULL, at {column_type} NOT NULL, kind text NOT NULL) PARTITION BY RANGE (at)"
        ),
        "-c",
        &format!("ALTER TABLE public.events OWNER TO {owner}"),
        "-c",
        &format!("ALTER SEQUENCE public.events_id_seq OWNER TO {owner}"),
        "-c",
        &format!("CREATE TABLE public.ledger (id bigint PRIMARY KEY, at {column_type} NOT NULL, kind text NOT NULL)"),
    ]);
    let _ = now;
}

fn fill_events(db: &TestDb, now: &str) {
    db.psql(&[
        "-c",
        &format!(
            "WITH r AS (INSERT INTO public.events (at, kind) \
               SELECT {now} - make_interval(mins => m), CASE WHEN (m / 10) % 2 = 0 THEN 'debug' ELSE 'info' END \
                 FROM generate_series(1, 360, 10) m RETURNING id, at, kind) \
             INSERT INTO public.ledger SELECT id, at, kind FROM r"
        ),
    ]);
}

/// The policy: hourly partitions from 7 hours back, keep 3 hours (drop), and a rule
/// deleting `debug` rows older than 1 hour.
fn events_policy(db: &TestDb, extra: &str) -> String {
    format!(
        "table: public.events\npartitioning:\n  column: at\n  interval: 1 hour\n  premake: 2\n  start: \"{}\"\nretention:\n  keep: 3 hours\ndeletes:\n  - name: debug\n    where: \"kind = 'debug'\"\n    older_than: 1 hour\n    column: at\n    batch_size: 5\n{extra}",
        db_hour(db, -7)
    )
}

/// The promises, against the ledger, for a run that started at `started` (SQL for a
/// time in the column's terms): every ledger row inside its window is there, and what
/// is older than the window is gone.
fn assert_retention_held(db: &TestDb, started: &str, context: &str) {
    // Inside the window: rows younger than keep (3 h), and debug rows younger than 1 h.
    let lost = db.scalar(&format!(
        "SELECT count(*) FROM public.ledger l WHERE NOT EXISTS (SELECT 1 FROM public.events e WHERE e.id = l.id) \
           AND l.at > {started} - interval '3 hours' AND (l.kind <> 'debug' OR l.at > {started} - interval '1 hour')"
    ));
    assert_eq!(lost, "0", "{context}: rows inside the window were deleted");
    // Outside: partitions wholly older than keep are gone, and so are old debug rows.
    let old = db.scalar(&format!(
        "SELECT count(*) FROM public.events WHERE at < {started} - interval '4 hours 1 minute'"
    ));
    assert_eq!(
        old, "0",
        "{context}: rows older than keep + one partition remain"
    );
    let old_debug = db.scalar(&format!(
        "SELECT count(*) FROM public.events WHERE kind = 'debug' AND at < {started} - interval '1 hour 1 minute'"
    ));
    assert_eq!(
        old_debug, "0",
        "{context}: debug rows older than the rule's window remain"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM public.events WHERE id NOT IN (SELECT id FROM public.ledger)"
        ),
        "0"
    );
}

/// A trigger on public.events, owned by `owner`, that tries to make `owner` superuser on
/// every deleted row and records what happened and as whom in public.trigger_log.
fn escalating_trigger(db: &TestDb, owner: &str) {
    db.psql(&[
        "-c",
        "CREATE TABLE public.trigger_log (who text NOT NULL, attempt text NOT NULL)",
        "-c",
        &format!("ALTER TABLE public.trigger_log OWNER TO {owner}"),
        "-c",
        &format!(
            "CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               BEGIN \
                 EXECUTE 'ALTER ROLE {owner} SUPERUSER'; \
                 INSERT INTO public.trigger_log VALUES (current_user, 'became superuser'); \
               EXCEPTION WHEN insufficient_privilege THEN \
                 INSERT INTO public.trigger_log VALUES (current_user, 'refused'); \
               END; \
               RETURN OLD; \
             END $$"
        ),
        "-c",
        &format!("ALTER FUNCTION public.escalate() OWNER TO {owner}"),
        "-c",
        "CREATE TRIGGER escalate BEFORE DELETE ON public.events FOR EACH ROW EXECUTE FUNCTION public.escalate()",
    ]);
}

fn assert_ran_as_owner_only(db: &TestDb, owner: &str) {
    assert_eq!(
        db.scalar(&format!(
            "SELECT rolsuper FROM pg_roles WHERE rolname = '{owner}'"
        )),
        "f",
        "the table owner's trigger made its owner superuser"
    );
    let log = db
        .scalar("SELECT string_agg(DISTINCT who || ' ' || attempt, ', ') FROM public.trigger_log");
    assert_eq!(log, format!("{owner} refused"), "the trigger ran as: {log}");
}

fn apply(project: &TestProject) {
    let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "apply failed:\n{}", text(&out));
}

async fn run_runs_with_the_owners_rights(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let owner = new_role(&db, "owner", "NOLOGIN");
    events_table(&db, &owner, "timestamptz", "now()");
    escalating_trigger(&db, &owner);
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 2s")
        .policy("events", &events_policy(&db, ""))
        .compiled();
    apply(&project);
    fill_events(&db, "now()");
    let inserts = start_inserts(&db, "public.events", "now()").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = db.scalar("SELECT now()");
    let out = blocking(|| project.run(&["run"]));
    inserts.stop().await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("public.events: ok"), "{}", text(&out));
    assert_ran_as_owner_only(&db, &owner);
    assert_retention_held(&db, &format!("'{started}'::timestamptz"), "run");
    // Maintenance ran as the owner too: what it made, the owner owns.
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM pg_partition_tree('public.events') t JOIN pg_class c ON c.oid = t.relid \
              WHERE pg_get_userbyid(c.relowner) <> '{owner}'"
        )),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_runs_with_the_owners_rights_pg_partman_4() {
    run_runs_with_the_owners_rights(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_runs_with_the_owners_rights_pg_partman_5() {
    run_runs_with_the_owners_rights(Partman::V5).await;
}

/// pg_cron 1.4 takes whole minutes only: this waits for the next minute (up to ~75 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pg_cron_job_runs_as_the_table_owner() {
    let db = Cluster::shared().cron_database(Partman::V5);
    let owner = new_role(&db, "owner", "LOGIN");
    events_table(&db, &owner, "timestamptz", "now()");
    escalating_trigger(&db, &owner);
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 2s")
        .policy("events", &events_policy(&db, "schedule: \"* * * * *\"\n"))
        .compiled();
    apply(&project);
    fill_events(&db, "now()");
    assert_eq!(
        db.scalar("SELECT username FROM cron.job WHERE jobname = 'retentionc:public.events'"),
        owner
    );
    let inserts = start_inserts(&db, "public.events", "now()").await;
    let deadline = Instant::now() + Duration::from_secs(80);
    let details = loop {
        let details = db.scalar("SELECT status || ' ' || coalesce(return_message, '') FROM cron.job_run_details WHERE status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1");
        if !details.is_empty() {
            break details;
        }
        assert!(Instant::now() < deadline, "no scheduled run within 80 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    inserts.stop().await;
    assert!(
        details.starts_with("succeeded"),
        "the job failed: {details}"
    );
    assert_ran_as_owner_only(&db, &owner);
    let started = db.scalar("SELECT min(started_at) FROM retention.run_log");
    assert_retention_held(&db, &format!("'{started}'::timestamptz"), "pg_cron job");
    assert_eq!(
        db.scalar(
            "SELECT string_agg(step || ' ' || outcome, ', ' ORDER BY id) FROM retention.run_log"
        ),
        "maintenance ok, delete:debug ok"
    );
}

async fn local_timestamps_are_expired_by_the_declared_zone(partman: Partman) {
    let db = Cluster::shared().database(partman);
    db.psql(&[
        "-c",
        &format!(
            "ALTER DATABASE {} SET timezone = 'America/New_York'",
            common::cluster::quote_ident(&db.name)
        ),
    ]);
    let owner = new_role(&db, "owner", "NOLOGIN");
    events_table(&db, &owner, "timestamp", "localtimestamp");
    let without_zone = events_policy(&db, "");
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 2s")
        .policy("events", &without_zone)
        .compiled();
    // Without a zone, plan refuses, at the column's key.
    let out = project.run(&["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("events.yaml:3:3: partitioning.column: column at of public.events is a timestamp without time zone")
            && stderr(&out).contains("\"time_zone\""),
        "{}",
        text(&out)
    );
    project.write_policy(
        "events",
        &format!("time_zone: America/New_York\n{without_zone}"),
    );
    project.compile();
    apply(&project);
    fill_events(&db, "localtimestamp");
    let inserts = start_inserts(&db, "public.events", "localtimestamp").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = db.scalar("SELECT localtimestamp");
    let out = blocking(|| project.run(&["run"]));
    inserts.stop().await;
    assert!(out.status.success(), "{}", text(&out));
    assert_retention_held(
        &db,
        &format!("'{started}'::timestamp"),
        "run in New York time",
    );
    // Something did expire: the old partitions and the old debug rows.
    assert!(
        stdout(&out).contains("dropped, 0 detached"),
        "{}",
        text(&out)
    );
    let deleted: i64 = db
        .scalar("SELECT rows_deleted FROM retention.run_log WHERE step = 'delete:debug'")
        .parse()
        .unwrap();
    assert!(deleted > 0, "the rule deleted nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_timestamps_are_expired_by_the_declared_zone_pg_partman_4() {
    local_timestamps_are_expired_by_the_declared_zone(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_timestamps_are_expired_by_the_declared_zone_pg_partman_5() {
    local_timestamps_are_expired_by_the_declared_zone(Partman::V5).await;
}

/// A session holding `lock` on `relation` until dropped, named `locker`.
struct Holder {
    client: tokio_postgres::Client,
    pid: i32,
}

impl Holder {
    async fn take(db: &TestDb, lock: &str) -> Holder {
        let client = db.client().await;
        client
            .batch_execute(&format!("SET application_name = 'locker'; BEGIN; {lock}"))
            .await
            .unwrap();
        let pid = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        Holder { client, pid }
    }

    async fn release(self) {
        self.client.batch_execute("ROLLBACK").await.unwrap();
    }
}

async fn a_locked_partition_is_skipped_and_reported(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let owner = new_role(&db, "owner", "NOLOGIN");
    events_table(&db, &owner, "timestamptz", "now()");
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 500ms")
        .policy("events", &events_policy(&db, ""))
        .compiled();
    apply(&project);
    fill_events(&db, "now()");
    // The partition two hours back holds old debug rows (inside keep, past the rule).
    let locked = db.scalar(
        "SELECT 'public.' || c.relname FROM pg_partition_tree('public.events') t JOIN pg_class c ON c.oid = t.relid \
          WHERE t.isleaf AND pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES FROM (''' || to_char(date_trunc('hour', now() - interval '2 hours'), 'YYYY-MM-DD HH24') || '%'",
    );
    assert!(!locked.is_empty());
    let debug_in = |part: &str| -> i64 {
        db.scalar(&format!(
            "SELECT count(*) FROM ONLY {part} WHERE kind = 'debug'"
        ))
        .parse()
        .unwrap()
    };
    let locked_debug = debug_in(&locked);
    assert!(locked_debug > 0);
    let holder = Holder::take(&db, &format!("LOCK TABLE {locked} IN SHARE MODE")).await;
    let pid = holder.pid;
    let inserts = start_inserts(&db, "public.events", "now()").await;
    let started = db.scalar("SELECT now()");
    let out = blocking(|| project.run(&["run"]));
    inserts.stop().await;
    holder.release().await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!(
            "SKIPPED 1 locked partition(s): {locked} (locked by pid {pid}, "
        )) && report.contains("application \"locker\"")
            && report.contains("public.events: skipped in"),
        "{}",
        text(&out)
    );
    // The locked partition kept its rows; every other old debug row went.
    assert_eq!(debug_in(&locked), locked_debug);
    let other_old_debug = db.scalar(&format!(
        "SELECT count(*) FROM public.events WHERE kind = 'debug' AND at < '{started}'::timestamptz - interval '1 hour 1 minute' \
           AND tableoid <> '{locked}'::regclass"
    ));
    assert_eq!(other_old_debug, "0", "{}", text(&out));
    let logged = db.scalar(
        "SELECT outcome || ' ' || (detail->'skipped'->0->>'partition') || ' ' || (detail->'skipped'->0->'holders'->0->>'application') FROM retention.run_log WHERE step = 'delete:debug'",
    );
    assert_eq!(logged, format!("partial {locked} locker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_partition_is_skipped_and_reported_pg_partman_4() {
    a_locked_partition_is_skipped_and_reported(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_partition_is_skipped_and_reported_pg_partman_5() {
    a_locked_partition_is_skipped_and_reported(Partman::V5).await;
}

async fn a_lock_timeout_inside_pg_partman_is_retried_and_named(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let owner = new_role(&db, "owner", "NOLOGIN");
    events_table(&db, &owner, "timestamptz", "now()");
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 300ms")
        .policy("events", &events_policy(&db, ""))
        .compiled();
    apply(&project);
    fill_events(&db, "now()");
    // The oldest partition is expired: maintenance must drop it, and someone reads it.
    let oldest = db.scalar(
        "SELECT c.oid::regclass::text FROM pg_partition_tree('public.events') t JOIN pg_class c ON c.oid = t.relid \
          WHERE t.isleaf AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT' ORDER BY c.relname LIMIT 1",
    );
    let holder = Holder::take(&db, &format!("SELECT count(*) FROM {oldest}")).await;
    let pid = holder.pid;
    let out = blocking(|| project.run(&["run", "--table", "public.events"]));
    holder.release().await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("trying again").count(), 3, "{}", text(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("maintenance: FAILED"))
        .unwrap_or_else(|| panic!("{}", text(&out)))
        .to_string();
    assert!(
        line.contains("stayed locked after 4 attempts: lock timeout: AccessExclusiveLock on ")
            && line.contains(&format!("held by pid {pid} ("))
            && line.contains("application \"locker\""),
        "{line}\n{}",
        text(&out)
    );
    assert!(
        !line.contains("CONTEXT") && !line.contains("PL/pgSQL"),
        "{line}"
    );
    // The delete rule still ran.
    assert!(
        stdout(&out).contains("public.events: delete debug:"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_inside_pg_partman_is_retried_and_named_pg_partman_4() {
    a_lock_timeout_inside_pg_partman_is_retried_and_named(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_inside_pg_partman_is_retried_and_named_pg_partman_5() {
    a_lock_timeout_inside_pg_partman_is_retried_and_named(Partman::V5).await;
}

/// public.sessions with 6,000 old rows, half matching a rule that costs a millisecond a
/// row (so the prune lasts about 3 s), run through a proxy.
fn slow_sessions(db: &TestDb) -> (TestProject, Proxy) {
    db.psql(&[
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', n % 2 = 0 FROM generate_series(1, 6000) n",
        "-c",
        "VACUUM ANALYZE public.sessions",
        // A condition may not call pg_sleep; a STABLE function of the row may, and is
        // evaluated for every row.
        "-c",
        "CREATE FUNCTION public.slowly_true(bigint) RETURNS boolean STABLE LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(0.001); RETURN true; END'",
    ]);
    let proxy = Proxy::start(db.cluster.port());
    let project = TestProject::for_db(db)
        .config("lock_timeout: 2s")
        .policy(
            "sessions",
            "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked AND public.slowly_true(id)\"\n    older_than: 1 day\n    column: last_seen_at\n    batch_size: 50\n",
        )
        .compiled();
    apply(&project);
    let project = project.with_url(&proxy.url(db));
    (project, proxy)
}

fn revoked_left(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM public.sessions WHERE revoked")
        .parse()
        .unwrap()
}

/// Waits for `sql` (a boolean) to hold; if it never does, stops `child` and fails with
/// its output.
async fn until(db: &TestDb, sql: &str, what: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.scalar(sql) != "t" {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut out = String::new();
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            ]
            .into_iter()
            .flatten()
            {
                let mut pipe = pipe;
                let _ = pipe.read_to_string(&mut out);
            }
            panic!("{what} never happened; run said:\n{out}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn terminate_run(db: &TestDb) {
    db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'retentionc' AND datname = current_database()");
}

fn reported_rows(out: &Output) -> i64 {
    let report = stdout(out);
    let line = report
        .lines()
        .find(|l| l.starts_with("public.sessions: delete revoked:"))
        .unwrap_or_else(|| panic!("{}", text(out)));
    let digits: String = line["public.sessions: delete revoked:".len()..]
        .split(" rows")
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// The connection is lost mid-prune while run has not heard of the last batches: run
/// reports the rows the server committed (run_log), records the failure there, and
/// the rows it reports are the rows that are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_prune_reports_what_the_server_committed() {
    let db = Cluster::shared().database(Partman::V5);
    let (project, proxy) = slow_sessions(&db);
    let mut child = project
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(
        &db,
        "SELECT count(*) FILTER (WHERE revoked) < 2900 FROM public.sessions",
        "the prune's first batches",
        &mut child,
    )
    .await;
    proxy.freeze();
    until(
        &db,
        "SELECT count(*) FILTER (WHERE revoked) < 2000 FROM public.sessions",
        "more batches while run hears nothing",
        &mut child,
    )
    .await;
    terminate_run(&db);
    proxy.cut_connections();
    let out = blocking(move || child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let deleted = 3000 - revoked_left(&db);
    assert!(deleted > 1000 && deleted < 3000, "{deleted}");
    assert_eq!(reported_rows(&out), deleted, "{}", text(&out));
    assert!(stdout(&out).contains("FAILED after"), "{}", text(&out));
    assert_eq!(
        db.scalar("SELECT outcome || ' ' || rows_deleted FROM retention.run_log WHERE step = 'delete:revoked'"),
        format!("failed {deleted}")
    );
}

/// The connection is lost after the prune's last COMMIT, before run heard the CALL end:
/// the prune finished, and run says so (not "interrupted", not "failed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_the_last_commit_reports_the_finished_prune() {
    let db = Cluster::shared().database(Partman::V5);
    let (project, proxy) = slow_sessions(&db);
    let mut child = project
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(
        &db,
        "SELECT count(*) FILTER (WHERE revoked) < 2900 FROM public.sessions",
        "the prune's first batches",
        &mut child,
    )
    .await;
    proxy.freeze();
    until(
        &db,
        "SELECT coalesce(bool_and(outcome = 'ok'), false) FROM retention.run_log WHERE step = 'delete:revoked'",
        "the prune's end",
        &mut child,
    )
    .await;
    terminate_run(&db);
    proxy.cut_connections();
    let out = blocking(move || child.wait_with_output().unwrap());
    assert_eq!(revoked_left(&db), 0);
    assert!(
        out.status.success(),
        "a prune that finished is reported as done:\n{}",
        text(&out)
    );
    assert_eq!(reported_rows(&out), 3000, "{}", text(&out));
    assert!(!stderr(&out).contains("interrupted"), "{}", text(&out));
    assert_eq!(
        db.scalar("SELECT outcome || ' ' || rows_deleted FROM retention.run_log WHERE step = 'delete:revoked'"),
        "ok 3000"
    );
}
