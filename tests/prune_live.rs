//! The prune procedure on a real PostgreSQL 15, with pg_partman 4.7.2 and 5.2.4: it deletes
//! exactly the rows each delete rule matches, never a row inside the window, in batches.
//!
//! The partitions are filled so that their heaps are identical (the same rows inserted in
//! the same order), so the same ctid names a row in every partition. A batch keyed by bare
//! ctid across partitions would then delete rows of young partitions that merely share a
//! ctid with an old matching row; these tests would see them go.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use common::project::TestProject;

/// Rows per partition; several heap pages each, so batches of 7 are many.
const ROWS_PER_PARTITION: i64 = 600;

/// How many more copies of the rows the concurrency test adds, to make the call last.
const COPIES: i64 = 40;

const TABLES: &str = "
CREATE TABLE public.readings (
    id    bigint NOT NULL,
    at    timestamptz NOT NULL,
    kind  text NOT NULL,
    n     integer NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE public.sessions (
    id            bigint PRIMARY KEY,
    revoked       boolean NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    n             integer NOT NULL
);
";

const READINGS_POLICY: &str = "\
table: public.readings
partitioning:
  column: at
  interval: 1 day
  premake: 3
deletes:
  - name: old_debug
    where: \"kind = 'debug'\"
    older_than: 1 day
    batch_size: 7
  - name: every_fifth
    where: \"n % 5 = 0\"
    batch_size: 7
";

const SESSIONS_POLICY: &str = "\
table: public.sessions
deletes:
  - name: revoked
    where: \"revoked\"
    older_than: 1 day
    column: last_seen_at
    batch_size: 7
  - name: sevens
    where: \"n % 7 = 3\"
    batch_size: 7
";

/// The rows each rule should delete, as SQL over the table (evaluated before the call).
const READINGS_MATCH: &str = "(kind = 'debug' AND at < now() - interval '1 day') OR (n % 5 = 0)";
const SESSIONS_MATCH: &str = "(revoked AND last_seen_at < now() - interval '1 day') OR (n % 7 = 3)";

/// A database with the two tables, retentionc's bootstrap and both policies applied
/// through the generated files, as a user would with psql.
fn prepared_database(partman: Partman) -> TestDb {
    let db = Cluster::shared().database(partman);
    db.psql(&["-q", "-c", TABLES]);
    TestProject::for_db(&db)
        .policy("readings", READINGS_POLICY)
        .policy("sessions", SESSIONS_POLICY)
        .compiled()
        .installed_with_psql(&db);
    db
}

/// Fills every non-default partition of public.readings with the same rows in the same
/// order, and the default partition too (times 60 days back; not ahead, where pg_partman
/// 4's maintenance would try to make a partition over them and fail). Rows sit in a
/// 10-hour block of each day chosen at least an hour away from the time of day now, so
/// that no row is near the cutoff of `older_than: 1 day` however long the test takes.
fn fill_readings(db: &TestDb) {
    db.psql(&["-q", "-c", &format!(r#"
DO $$
DECLARE
    v_block  interval := CASE WHEN localtime BETWEEN '11:00' AND '23:00' THEN interval '0 hours'
                              ELSE interval '12 hours' END;
    v_part   record;
    v_next   bigint := 0;
BEGIN
    FOR v_part IN
        SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamptz AS lower_bound
          FROM pg_partition_tree('public.readings') t JOIN pg_class c ON c.oid = t.relid
         WHERE t.isleaf AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
        UNION ALL
        SELECT date_trunc('day', now()) - interval '60 days'
         ORDER BY 1
    LOOP
        INSERT INTO public.readings (id, at, kind, n)
        SELECT v_next + i, v_part.lower_bound + v_block + i * interval '1 minute',
               CASE WHEN i % 3 = 0 THEN 'debug' ELSE 'info' END, i
          FROM generate_series(1, {ROWS_PER_PARTITION}) AS i
         ORDER BY i;
        v_next := v_next + 1000000;
    END LOOP;
END
$$;
ANALYZE public.readings;
"#)]);
    // The trap is set: at least five partitions (the default among them) hold rows at the
    // very same ctids, and both old and young partitions hold debug rows.
    let layouts = db.scalar(
        "SELECT count(*) || ' ' || count(DISTINCT layout) FROM (
            SELECT tableoid, string_agg(ctid::text || ':' || n, ',' ORDER BY ctid) AS layout
              FROM public.readings GROUP BY tableoid) p",
    );
    let (partitions, distinct) = layouts.split_once(' ').unwrap();
    assert!(
        partitions.parse::<i64>().unwrap() >= 5,
        "only {partitions} partitions hold rows"
    );
    assert_eq!(
        distinct, "1",
        "the partitions' heaps differ: the ctid trap is not set"
    );
    let pages = db.scalar(
        "SELECT min(relpages) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid \
                           WHERE i.inhparent = 'public.readings'::regclass AND c.reltuples > 0",
    );
    assert!(
        pages.parse::<i64>().unwrap() >= 3,
        "partitions span only {pages} pages"
    );
    assert_ne!(db.scalar("SELECT count(*) FROM public.readings WHERE kind = 'debug' AND at >= now() - interval '1 day'"), "0");
    assert_ne!(db.scalar("SELECT count(*) FROM public.readings WHERE kind = 'debug' AND at < now() - interval '1 day'"), "0");
}

/// Plain table: revoked sessions half an hour off every whole hour back to two days, so
/// none is near the one-day cutoff.
fn fill_sessions(db: &TestDb) {
    db.psql(&[
        "-q",
        "-c",
        "
INSERT INTO public.sessions (id, revoked, last_seen_at, n)
SELECT i, i % 4 = 0, now() - (i % 48) * interval '1 hour' - interval '30 minutes', i
  FROM generate_series(1, 3000) AS i;
ANALYZE public.sessions;",
    ]);
}

/// Records what must survive (`expected_<table>`) and how many rows each rule should
/// delete, before the call.
fn record_expectations(db: &TestDb, table: &str, matching: &str) {
    db.psql(&["-q", "-c", &format!(
        "CREATE TABLE public.expected_{table} AS SELECT id FROM public.{table} WHERE NOT ({matching});
         CREATE TABLE public.matching_{table} AS SELECT id FROM public.{table} WHERE {matching};"
    )]);
}

/// Rows that should be there but are not, and rows that should be gone but are not.
fn assert_exactly_the_matching_rows_are_gone(db: &TestDb, table: &str, context: &str) {
    let wrongly_deleted = db.scalar(&format!(
        "SELECT count(*) || ': ' || coalesce(string_agg(id::text, ',' ORDER BY id), '')
           FROM (SELECT id FROM public.expected_{table} EXCEPT SELECT id FROM public.{table} ORDER BY 1 LIMIT 20) gone"
    ));
    assert_eq!(
        wrongly_deleted, "0:",
        "{context}: rows outside every rule were deleted (count: first ids)"
    );
    let left_over = db.scalar(&format!(
        "SELECT count(*) FROM (SELECT id FROM public.matching_{table} INTERSECT SELECT id FROM public.{table}) kept"
    ));
    assert_eq!(left_over, "0", "{context}: matching rows were left behind");
    let matched = db.scalar(&format!("SELECT count(*) FROM public.matching_{table}"));
    assert_ne!(matched, "0", "{context}: the test deleted nothing at all");
}

/// The run log's row counts per rule, as `rule=count` lines.
fn logged_deletes(db: &TestDb, table: &str) -> String {
    db.psql(&[
        "-At",
        "-c",
        &format!(
            "SELECT step || '=' || rows_deleted FROM retention.run_log
          WHERE table_name = 'public.{table}' AND step LIKE 'delete:%' ORDER BY id"
        ),
    ])
}

#[test]
fn prune_deletes_exactly_the_matching_rows_of_partitions_whose_ctids_coincide() {
    for partman in Partman::BOTH {
        let started = Instant::now();
        let db = prepared_database(partman);
        fill_readings(&db);
        record_expectations(&db, "readings", READINGS_MATCH);
        let old_debug = db.scalar("SELECT count(*) FROM public.readings WHERE kind = 'debug' AND at < now() - interval '1 day'");
        let every_fifth = db.scalar("SELECT count(*) FROM public.readings WHERE n % 5 = 0 AND NOT (kind = 'debug' AND at < now() - interval '1 day')");
        let young_debug = db.scalar("SELECT count(*) FROM public.readings WHERE kind = 'debug' AND at >= now() - interval '1 day' AND n % 5 <> 0");

        let call = Instant::now();
        db.psql(&[
            "-q",
            "-c",
            "CALL retention.prune_readings(p_run_maintenance => true)",
        ]);
        let call_time = call.elapsed();

        assert_exactly_the_matching_rows_are_gone(&db, "readings", &partman.to_string());
        assert_eq!(
            db.scalar("SELECT count(*) FROM public.readings WHERE kind = 'debug' AND at >= now() - interval '1 day'"),
            young_debug,
            "{partman}: debug rows inside the window went"
        );
        assert_eq!(
            logged_deletes(&db, "readings"),
            format!("delete:old_debug={old_debug}\ndelete:every_fifth={every_fifth}\n"),
            "{partman}: the run log counts other rows"
        );
        assert_eq!(
            db.scalar("SELECT outcome FROM retention.run_log WHERE table_name = 'public.readings' AND step = 'maintenance'"),
            "ok"
        );
        // Committed batch by batch: far more transactions than rules.
        eprintln!(
            "{partman}: readings pruned in {call_time:?} (test {:?})",
            started.elapsed()
        );
    }
}

#[test]
fn prune_deletes_exactly_the_matching_rows_of_a_plain_table() {
    for partman in Partman::BOTH {
        let db = prepared_database(partman);
        fill_sessions(&db);
        record_expectations(&db, "sessions", SESSIONS_MATCH);
        let started = Instant::now();
        db.psql(&["-q", "-c", "CALL retention.prune_sessions()"]);
        eprintln!("{partman}: sessions pruned in {:?}", started.elapsed());
        assert_exactly_the_matching_rows_are_gone(&db, "sessions", &partman.to_string());
        let logged = logged_deletes(&db, "sessions");
        assert!(
            logged.starts_with("delete:revoked=") && logged.contains("\ndelete:sevens="),
            "{logged}"
        );
        // A second call finds nothing more to delete.
        db.psql(&["-q", "-c", "CALL retention.prune_sessions()"]);
        assert!(logged_deletes(&db, "sessions").ends_with("delete:revoked=0\ndelete:sevens=0\n"));
    }
}

#[test]
fn prune_commits_batch_by_batch() {
    let db = prepared_database(Partman::V5);
    fill_sessions(&db);
    let commits = || -> i64 {
        // A new session reads the statistics that finished sessions flushed on exit.
        db.scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            .parse()
            .unwrap()
    };
    let pages: i64 = db
        .scalar("SELECT relpages FROM pg_class WHERE oid = 'public.sessions'::regclass")
        .parse()
        .unwrap();
    let before = commits();
    db.psql(&["-q", "-c", "CALL retention.prune_sessions()"]);
    // One rule at batch_size 7 over a table of `pages` pages takes at least a batch per
    // page, each its own transaction: two rules, at least 2 * pages commits. The counts
    // arrive when the calling session has ended, which may be just after psql returns.
    assert!(pages >= 10, "the table has only {pages} pages");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = commits();
    while after - before < 2 * pages && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = commits();
    }
    assert!(
        after - before >= 2 * pages,
        "{} commits for two rules over {pages} pages",
        after - before
    );
}

/// Inserts rows into public.readings one by one (negative ids) until `stop` and for at
/// least `min_time`, a quarter of them matching the rule without `older_than`; returns
/// (how many rows matching no rule were inserted, when each insert returned, failures).
async fn insert_until(
    db_url: String,
    stop: Arc<AtomicBool>,
    min_time: Duration,
) -> (i64, Vec<Instant>, Vec<String>) {
    let (client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let insert = client
        .prepare("INSERT INTO public.readings (id, at, kind, n) VALUES ($1, now(), $2, $3)")
        .await
        .unwrap();
    let started = Instant::now();
    let mut kept = 0;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    let mut i: i64 = 0;
    while !stop.load(Ordering::Relaxed) || started.elapsed() < min_time {
        i += 1;
        let id = -i;
        let (kind, n) = match i % 4 {
            0 => ("debug", 5), // matches every_fifth: may or may not be deleted
            1 => ("debug", 1), // young debug row: inside the window, must stay
            _ => ("info", 2),
        };
        match client.execute(&insert, &[&id, &kind, &{ n }]).await {
            Ok(_) => {
                done.push(Instant::now());
                if n % 5 != 0 {
                    kept += 1;
                }
            }
            Err(e) => failures.push(format!("{id}: {e}")),
        }
    }
    (kept, done, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_while_rows_are_inserted_concurrently_loses_no_insert_and_no_other_row() {
    for partman in Partman::BOTH {
        let db = prepared_database(partman);
        fill_readings(&db);
        // Forty times the rows (each copy appended in the same order everywhere, so the
        // heaps stay alike), so that the call lasts while the inserts go on.
        db.psql(&[
            "-q",
            "-c",
            &format!(
                "INSERT INTO public.readings (id, at, kind, n)
             SELECT r.id + k * 1000000000::bigint, r.at, r.kind, r.n
               FROM generate_series(1, {COPIES}) AS k, public.readings r ORDER BY k, r.id"
            ),
        ]);
        db.psql(&["-q", "-c", "ANALYZE public.readings"]);
        record_expectations(&db, "readings", READINGS_MATCH);

        let stop = Arc::new(AtomicBool::new(false));
        let inserter = tokio::spawn(insert_until(
            db.url.clone(),
            stop.clone(),
            Duration::from_secs(3),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pruner = db.client().await;
        let started = Instant::now();
        pruner
            .batch_execute("CALL retention.prune_readings()")
            .await
            .unwrap();
        let ended = Instant::now();
        stop.store(true, Ordering::Relaxed);
        let (kept, done, failures) = inserter.await.unwrap();
        let during_call = done.iter().filter(|t| **t > started && **t < ended).count();

        assert!(
            failures.is_empty(),
            "{partman}: inserts failed during prune: {failures:?}"
        );
        assert!(
            during_call >= 20,
            "{partman}: only {during_call} inserts overlapped the call"
        );
        assert_exactly_the_matching_rows_are_gone(&db, "readings", &partman.to_string());
        let present = db.scalar("SELECT count(*) FROM public.readings WHERE id < 0 AND n % 5 <> 0");
        assert_eq!(
            present,
            kept.to_string(),
            "{partman}: concurrently inserted rows outside every rule went"
        );
        let total = db.scalar("SELECT count(*) FROM public.matching_readings");
        eprintln!(
            "{partman}: prune deleted {total} rows in {:?}; {during_call} of {} single-row inserts returned meanwhile",
            ended - started,
            done.len()
        );
    }
}

/// The scheduled call (`p_run_maintenance => true`): when pg_partman's maintenance fails,
/// the delete rules still run, the failure is in the run log, and the call itself fails so
/// that pg_cron reports it.
#[test]
fn a_failed_maintenance_still_runs_the_delete_rules_and_fails_the_call() {
    for partman in Partman::BOTH {
        let db = prepared_database(partman);
        fill_readings(&db);
        record_expectations(&db, "readings", READINGS_MATCH);
        // Make maintain() fail at its very end, deterministically: its success row is refused.
        db.psql(&[
            "-q",
            "-c",
            "
            CREATE FUNCTION public.refuse_maintenance() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.step = 'maintenance' AND NEW.outcome = 'ok' THEN
                    RAISE EXCEPTION 'maintenance refused by the test';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_maintenance BEFORE INSERT ON retention.run_log
                FOR EACH ROW EXECUTE FUNCTION public.refuse_maintenance();",
        ]);

        let output = db.psql_output(&[
            "-q",
            "-c",
            "CALL retention.prune_readings(p_run_maintenance => true)",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{partman}: the call should fail");
        assert!(
            stderr.contains("maintenance of public.readings failed (delete rules ran): maintenance refused by the test"),
            "{partman}: {stderr}"
        );
        assert_exactly_the_matching_rows_are_gone(&db, "readings", &partman.to_string());
        assert_eq!(
            db.scalar("SELECT outcome || ': ' || (detail->>'error') FROM retention.run_log WHERE table_name = 'public.readings' AND step = 'maintenance'"),
            "failed: maintenance refused by the test",
            "{partman}: the failure is not in the run log"
        );
    }
}
