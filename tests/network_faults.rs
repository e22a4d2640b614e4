//! A network path that stalls mid-command: a proxy between retentionc and the server is frozen
//! (SIGSTOP) while `run`, `apply` or `plan` works through it.
//!
//! Each command ends within its stall bound (`RETENTIONC_STALL_TIMEOUT`, 4 s here) with a clear
//! message, or within seconds of SIGTERM / Ctrl-C; the server lets go of what the stalled
//! session held within the same bound; no row inside a retention window is lost, nothing is
//! half-applied, and the next command completes once the network is back. A server that is
//! merely slow, with the network working, is never taken for a stalled one.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::data::{Writer, create_table, history_count, part_config, policy_yaml};
use common::project::{TestProject, stderr, text, wait_at_most};
use common::proxy::Proxy;

/// The stall bound the commands run with.
const STALL: Duration = Duration::from_secs(4);

/// Allowance on top of a bound for a loaded machine (2 cores shared by many tests).
const SLACK: Duration = Duration::from_secs(5);

fn with_stall_bound(mut command: Command) -> Command {
    command
        .env("RETENTIONC_STALL_TIMEOUT", format!("{}s", STALL.as_secs()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `condition` (a query returning t/f) until true, at most `limit`.
async fn wait_until(db: &TestDb, sql: &str, limit: Duration, what: &str) -> Duration {
    let started = Instant::now();
    while db.scalar(sql) != "t" {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Running a command through another URL than the project's (the proxy).
trait ThroughUrl {
    fn run_through(&self, url: &str, args: &[&str]) -> Output;
}

impl ThroughUrl for TestProject {
    fn run_through(&self, url: &str, args: &[&str]) -> Output {
        self.command(args)
            .env("DATABASE_URL", url)
            .env("RETENTIONC_STALL_TIMEOUT", format!("{}s", STALL.as_secs()))
            .output()
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// run

/// public.sessions: `rows` three-day-old revoked sessions, and a rule on revoked sessions
/// older than a day that costs a millisecond a row in batches of 50, so the prune lasts and
/// reports a batch every ~50 ms.
fn slow_prune_project(db: &TestDb, rows: i64) -> TestProject {
    db.psql(&[
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        &format!("INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', n % 4 <> 0 FROM generate_series(1, {rows}) n"),
        "-c",
        "VACUUM ANALYZE public.sessions",
        // A condition may not call pg_sleep; a STABLE function of the row may.
        "-c",
        "CREATE FUNCTION public.slowly_true(bigint) RETURNS boolean STABLE LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(0.001); RETURN true; END'",
    ]);
    let slow = "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked AND public.slowly_true(id)\"\n    older_than: 1 day\n    column: last_seen_at\n    batch_size: 50\n";
    let project = TestProject::for_db(db).policy("sessions", slow).compiled();
    project.install_with_psql(db);
    project
}

fn expired_revoked(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM public.sessions WHERE revoked AND last_seen_at < now() - interval '1 day'")
        .parse()
        .unwrap()
}

/// Revoked sessions seen just now: inside the window, they must stay.
const YOUNG_REVOKED: &str =
    "INSERT INTO public.sessions (last_seen_at, revoked) VALUES (now(), true) RETURNING id";

/// Starts `run` through `proxy` and returns once it has committed some batches.
async fn run_pruning(db: &TestDb, project: &TestProject, proxy: &Proxy) -> (Child, i64) {
    let before = expired_revoked(db);
    let child = with_stall_bound(project.command(&["run"]))
        .env("DATABASE_URL", proxy.url(db))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while expired_revoked(db) > before - 200 {
        assert!(Instant::now() < deadline, "the prune never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_network_freezes_mid_prune_ends_within_the_stall_bound() {
    let db = Cluster::shared().database(Partman::V5);
    let project = slow_prune_project(&db, 10_000);
    let not_matching_before = db.scalar("SELECT count(*) FROM public.sessions WHERE NOT revoked");
    let proxy = Proxy::start(db.cluster.port());
    let ledger = Writer::start_sql(&db, YOUNG_REVOKED, Duration::from_millis(5)).await;
    let (child, matching) = run_pruning(&db, &project, &proxy).await;

    proxy.freeze();
    let (out, took) = wait_at_most(child, STALL + SLACK, "a run on a frozen network");
    eprintln!("run ended {took:?} after the freeze:\n{}", text(&out));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took >= STALL / 2, "ended before any bound: {took:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "no answer from the server at 127.0.0.1:{} for 4 s",
            proxy.port()
        )) && err.contains("the connection is considered lost (--stall-timeout 4s)"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("public.sessions: delete revoked: FAILED after"),
        "{}",
        text(&out)
    );
    let left = expired_revoked(&db);
    assert!(
        left < matching,
        "committed batches stay: {left} of {matching} left"
    );

    // Back on the network, the next run finishes the job; nothing else went.
    proxy.thaw();
    let out = wait_at_most(
        with_stall_bound(project.command(&["run"]))
            .env("DATABASE_URL", proxy.url(&db))
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
        "the run after the network came back",
    )
    .0;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(expired_revoked(&db), 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.sessions WHERE NOT revoked"),
        not_matching_before,
        "a row no rule matches went"
    );
    let kept = ledger.finish_kept(&db, "public.sessions").await;
    eprintln!("{kept} rows inserted inside the window meanwhile, all kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_or_ctrl_c_end_a_run_on_a_frozen_network_within_seconds() {
    for (signal_name, expected) in [("-TERM", "SIGTERM"), ("-INT", "Ctrl-C")] {
        let db = Cluster::shared().database(Partman::V5);
        let project = slow_prune_project(&db, 10_000);
        let proxy = Proxy::start(db.cluster.port());
        let ledger = Writer::start_sql(&db, YOUNG_REVOKED, Duration::from_millis(5)).await;
        let (child, matching) = run_pruning(&db, &project, &proxy).await;
        proxy.freeze();
        tokio::time::sleep(Duration::from_millis(500)).await;
        signal(&child, signal_name);
        let (out, took) = wait_at_most(child, Duration::from_secs(10), "a run sent a signal");
        eprintln!(
            "{expected}: run ended {took:?} after the signal:\n{}",
            text(&out)
        );
        // The cancel request (2 s at most) and the wait for the statement (2 s at most).
        assert!(took < Duration::from_secs(6), "{expected}: took {took:?}");
        assert_eq!(out.status.code(), Some(130), "{}", text(&out));
        assert!(
            stderr(&out).contains("interrupted: committed batches stay"),
            "{}",
            text(&out)
        );
        assert!(expired_revoked(&db) < matching);
        proxy.thaw();
        let out = project.run_through(&proxy.url(&db), &["run"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(expired_revoked(&db), 0);
        ledger.finish_kept(&db, "public.sessions").await;
    }
}

/// A TCP proxy to `target` that records each connection's first request code: SSLRequest
/// (80877103) when the client starts TLS, CancelRequest (80877102) for a cancel sent in clear.
async fn recording_proxy(target: u16) -> (String, Arc<std::sync::Mutex<Vec<u32>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let codes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&codes);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut first = [0u8; 8];
                if client.read_exact(&mut first).await.is_err() {
                    return;
                }
                let code = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
                seen.lock().unwrap().push(code);
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", target))
                    .await
                    .unwrap();
                server.write_all(&first).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (address, codes)
}

/// The cancel request is sent as the session was opened: over TLS, the certificate checked
/// (sslmode=verify-full), never in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_request_goes_over_tls_like_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let certs = common::cluster::make_test_certs(dir.path());
    let cluster = Arc::new(Cluster::start(common::cluster::ClusterOptions {
        ssl: Some(certs.server.clone()),
        require_ssl: true,
        ..Default::default()
    }));
    let db = cluster.database(Partman::V5);
    let project = slow_prune_project(&db, 10_000);
    let (address, codes) = recording_proxy(cluster.port()).await;
    let url = format!(
        "postgres://postgres@{address}/{}?sslmode=verify-full&sslrootcert={}",
        db.name,
        certs.ca_cert.display()
    );
    let before = expired_revoked(&db);
    let child = with_stall_bound(project.command(&["run"]))
        .env("DATABASE_URL", &url)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while expired_revoked(&db) > before - 200 {
        assert!(Instant::now() < deadline, "the prune never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&child, "-TERM");
    let (out, took) = wait_at_most(child, Duration::from_secs(10), "a run sent SIGTERM");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took < Duration::from_secs(3), "{took:?}: {}", text(&out));
    assert!(!stderr(&out).contains("could not cancel"), "{}", text(&out));
    // The session and its cancel request (and nothing else) connected, all of them over TLS.
    let codes = codes.lock().unwrap().clone();
    assert!(codes.len() >= 2, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 80_877_103), "{codes:?}");
    // The cancel arrived: the prune stopped.
    let left = expired_revoked(&db);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(expired_revoked(&db), left, "the prune went on");
}

/// With the network working, a statement that runs longer than the stall bound without
/// sending anything (here one row that takes 6 s to check) is left to finish: the server
/// says it is working on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_statement_that_sends_nothing_is_not_taken_for_a_stall() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&[
        "-c",
        "CREATE TABLE public.jobs (id bigserial PRIMARY KEY, finished_at timestamptz NOT NULL)",
        "-c",
        "INSERT INTO public.jobs (finished_at) VALUES (now() - interval '3 days')",
        "-c",
        "CREATE FUNCTION public.after_six_seconds(bigint) RETURNS boolean STABLE LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(6); RETURN true; END'",
    ]);
    let slow = "table: public.jobs\ndeletes:\n  - name: old\n    where: \"public.after_six_seconds(id)\"\n    older_than: 1 day\n    column: finished_at\n";
    let project = TestProject::for_db(&db).policy("jobs", slow).compiled();
    project.install_with_psql(&db);
    let proxy = Proxy::start(db.cluster.port());
    let (out, took) = wait_at_most(
        with_stall_bound(project.command(&["run"]))
            .env("DATABASE_URL", proxy.url(&db))
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
        "a slow run",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        took > STALL,
        "the statement should outlast the bound: {took:?}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM public.jobs"), "0");
    assert!(!stderr(&out).contains("no answer"), "{}", text(&out));
}

// ---------------------------------------------------------------------------------------
// apply

/// public.events applied and written to; then public.a_events and public.b_events to
/// register, b_events kept locked by a reader so that the apply waits there, holding the
/// locks it took registering a_events.
struct ApplyWaiting {
    db: TestDb,
    project: TestProject,
    proxy: Proxy,
    reader: tokio_postgres::Client,
    writer: Writer,
    /// The apply, taken by the test that waits for it.
    child: Option<Child>,
    pid: String,
}

async fn apply_waiting_for_a_lock(partman: Partman) -> ApplyWaiting {
    let db = Cluster::shared().database(partman);
    create_table(&db, "public.events");
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 60s")
        .policy("events", &policy_yaml("public.events", "2 days", ""))
        .compiled();
    let out = project.run(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "{}", text(&out));
    let writer = Writer::start(&db, "public.events").await;

    create_table(&db, "public.a_events");
    create_table(&db, "public.b_events");
    project.write_policy("a_events", &policy_yaml("public.a_events", "2 days", ""));
    project.write_policy("b_events", &policy_yaml("public.b_events", "2 days", ""));
    project.compile();
    let reader = db.client().await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM public.b_events")
        .await
        .unwrap();
    let proxy = Proxy::start(db.cluster.port());
    let child = with_stall_bound(project.command(&["apply", "--auto-approve"]))
        .env("DATABASE_URL", proxy.url(&db))
        .spawn()
        .unwrap();
    wait_until(
        &db,
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc' AND wait_event_type = 'Lock'",
        Duration::from_secs(20),
        "apply waiting for b_events",
    )
    .await;
    let pid = db.scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc' AND wait_event_type = 'Lock'");
    let exclusive: i64 = db
        .scalar(&format!(
            "SELECT count(*) FROM pg_locks WHERE pid = {pid} AND granted AND mode = 'AccessExclusiveLock'"
        ))
        .parse()
        .unwrap();
    assert!(
        exclusive > 0,
        "{partman}: apply holds no AccessExclusive lock yet"
    );
    ApplyWaiting {
        db,
        project,
        proxy,
        reader,
        writer,
        child: Some(child),
        pid,
    }
}

impl ApplyWaiting {
    /// Nothing of the second apply is in place.
    fn assert_nothing_applied(&self, partman: Partman) {
        for table in ["public.a_events", "public.b_events"] {
            assert_eq!(
                part_config(&self.db, table),
                "",
                "{partman}: {table} registered"
            );
        }
        assert_eq!(
            self.db.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent IN ('public.a_events'::regclass, 'public.b_events'::regclass)"),
            "0",
            "{partman}: partitions were left"
        );
        assert_eq!(history_count(&self.db), 1, "{partman}");
    }

    /// After the freeze: the reader lets go, so the server finishes the statement, and the
    /// apply's session then sits idle in its transaction, holding its locks, until
    /// idle_in_transaction_session_timeout (the stall bound) ends it. A writer of a_events
    /// waits that long at most.
    async fn server_lets_go_within_the_bound(&self, partman: Partman) {
        let blocked_writer = self.db.client().await;
        let write = tokio::spawn(async move {
            let started = Instant::now();
            blocked_writer
                .batch_execute("BEGIN; LOCK TABLE public.a_events IN ROW EXCLUSIVE MODE; ROLLBACK")
                .await
                .unwrap();
            started.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !write.is_finished(),
            "{partman}: the writer should be blocked by apply"
        );
        self.reader.batch_execute("ROLLBACK").await.unwrap();
        let gone = wait_until(
            &self.db,
            &format!(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {0}) AND NOT EXISTS (SELECT 1 FROM pg_locks WHERE pid = {0})",
                self.pid
            ),
            STALL + SLACK,
            "the stalled apply's session and locks",
        )
        .await;
        let waited = write.await.unwrap();
        eprintln!(
            "{partman}: apply's session gone {gone:?} after the reader let go; the writer waited {waited:?}"
        );
        assert!(waited < STALL + SLACK, "{partman}: {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_whose_network_freezes_ends_within_the_bound_and_leaves_nothing_half_applied() {
    for partman in Partman::BOTH {
        let mut waiting = apply_waiting_for_a_lock(partman).await;
        let child = waiting.child.take().unwrap();
        waiting.proxy.freeze();
        let frozen_at = Instant::now();
        let server = waiting.server_lets_go_within_the_bound(partman);
        let client = tokio::task::spawn_blocking(move || {
            wait_at_most(child, STALL + SLACK, "an apply on a frozen network")
        });
        server.await;
        let (out, _) = client.await.unwrap();
        let took = frozen_at.elapsed();
        eprintln!(
            "{partman}: apply ended within {took:?} of the freeze:\n{}",
            text(&out)
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("no answer from the server") && err.contains("for 4 s"),
            "{err}"
        );
        assert!(
            err.contains("the apply was not committed, nothing was changed"),
            "{err}"
        );
        waiting.assert_nothing_applied(partman);

        waiting.proxy.thaw();
        let out = waiting.project.run_through(
            &waiting.proxy.url(&waiting.db),
            &["apply", "--auto-approve"],
        );
        assert!(out.status.success(), "{partman}: {}", text(&out));
        assert_eq!(
            part_config(&waiting.db, "public.a_events"),
            "2 days | f | 4 | t"
        );
        assert_eq!(
            part_config(&waiting.db, "public.b_events"),
            "2 days | f | 4 | t"
        );
        let plan = waiting.project.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
        let ApplyWaiting { db, writer, .. } = waiting;
        writer.finish(&db, "public.events").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_an_apply_on_a_frozen_network_and_nothing_is_changed() {
    let partman = Partman::V5;
    let mut waiting = apply_waiting_for_a_lock(partman).await;
    let child = waiting.child.take().unwrap();
    waiting.proxy.freeze();
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child, "-TERM");
    let (out, took) = wait_at_most(child, Duration::from_secs(10), "an apply sent SIGTERM");
    eprintln!("apply ended {took:?} after SIGTERM:\n{}", text(&out));
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        stderr(&out).contains("interrupted: the apply was not committed, nothing was changed"),
        "{}",
        text(&out)
    );
    waiting.server_lets_go_within_the_bound(partman).await;
    waiting.assert_nothing_applied(partman);
    waiting.proxy.thaw();
    let out = waiting.project.run_through(
        &waiting.proxy.url(&waiting.db),
        &["apply", "--auto-approve"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let ApplyWaiting { db, writer, .. } = waiting;
    writer.finish(&db, "public.events").await;
}

// ---------------------------------------------------------------------------------------
// plan

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_network_freezes_ends_within_the_bound_and_plans_again_after() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&[
        "-c",
        "CREATE TABLE public.logs (id bigserial PRIMARY KEY, logged_at timestamptz NOT NULL, level text NOT NULL)",
    ]);
    let policy = "table: public.logs\ndeletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n    column: logged_at\n";
    let project = TestProject::for_db(&db).policy("logs", policy).compiled();
    let proxy = Proxy::start(db.cluster.port());
    // A reader of the catalog cannot plan past an exclusive lock on the table.
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE public.logs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for signalled in [false, true] {
        let child = with_stall_bound(project.command(&["plan"]))
            .env("DATABASE_URL", proxy.url(&db))
            .spawn()
            .unwrap();
        wait_until(
            &db,
            "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc plan' AND wait_event_type = 'Lock'",
            Duration::from_secs(20),
            "plan waiting for the table",
        )
        .await;
        proxy.freeze();
        let (out, took) = if signalled {
            signal(&child, "-TERM");
            wait_at_most(child, Duration::from_secs(5), "a plan sent SIGTERM")
        } else {
            wait_at_most(child, STALL + SLACK, "a plan on a frozen network")
        };
        eprintln!(
            "plan ended {took:?} after the freeze (SIGTERM: {signalled}):\n{}",
            text(&out)
        );
        if signalled {
            assert_eq!(out.status.code(), Some(130), "{}", text(&out));
            assert!(took < Duration::from_secs(2), "{took:?}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(
                stderr(&out).contains("no answer from the server"),
                "{}",
                text(&out)
            );
        }
        proxy.thaw();
        // The stalled session holds the plan's snapshot: the server ends it as any other.
        wait_until(
            &db,
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc plan'",
            STALL + SLACK,
            "the stalled plan's session",
        )
        .await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    let out = project.run_through(&proxy.url(&db), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
