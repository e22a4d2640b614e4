//! The seed scenario against real PostgreSQL + pg_partman (4.7.2 and 5.2.4): one-second
//! partitions kept 15 seconds, rows inserted throughout, `retentionc run` (the binary)
//! every ~3 seconds. Nothing inside the window is lost; after the last run nothing older
//! than the window plus one partition interval is left; the parent table stays.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::cluster::{Cluster, Partman};
use common::project::{TestProject, blocking, text};

const POLICY: &str = include_str!("../policies/test_table1.yaml");
const INSERT_FOR: Duration = Duration::from_secs(32);
const RUN_EVERY: Duration = Duration::from_secs(3);

async fn seed_scenario(partman: Partman) {
    let db = Cluster::shared().database(partman);
    db.psql(&[
        "-c",
        "CREATE TABLE public.test_table1 (id bigserial, mtime timestamptz NOT NULL, payload text) PARTITION BY RANGE (mtime)",
    ]);
    let project = TestProject::for_db(&db)
        .lock_timeout("2s")
        .policy("test_table1.yaml", POLICY)
        .compiled()
        .installed_with_psql(&db);

    // Inserts throughout, each row's id and time kept.
    let client = db.client().await;
    let inserter = tokio::spawn(async move {
        let mut inserted: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
        let mut errors = Vec::new();
        let until = Instant::now() + INSERT_FOR;
        while Instant::now() < until {
            match client
                .query_one(
                    "INSERT INTO public.test_table1 (mtime, payload) VALUES (clock_timestamp(), 'x') RETURNING id, mtime",
                    &[],
                )
                .await
            {
                Ok(row) => {
                    inserted.insert(row.get(0), row.get(1));
                }
                Err(e) => errors.push(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        (inserted, errors)
    });

    let mut runs = 0;
    let mut dropped_lines = 0;
    while !inserter.is_finished() {
        tokio::time::sleep(RUN_EVERY).await;
        let out = blocking(|| project.run(&["run"]));
        assert!(
            out.status.success(),
            "{partman}: run #{runs} failed:\n{}",
            text(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.contains("public.test_table1: ok in"), "{stdout}");
        dropped_lines += stdout
            .lines()
            .filter(|l| l.contains(":   dropped: "))
            .count();
        runs += 1;
    }
    let (inserted, errors) = inserter.await.unwrap();
    assert!(
        errors.is_empty(),
        "{partman}: inserts failed while run ran: {errors:?}"
    );
    assert!(runs >= 8, "{partman}: only {runs} runs");
    assert!(dropped_lines > 0, "{partman}: no run dropped a partition");

    let before_last_run: DateTime<Utc> = db
        .client()
        .await
        .query_one("SELECT now()", &[])
        .await
        .unwrap()
        .get(0);
    let out = project.run(&["run"]);
    assert!(
        out.status.success(),
        "{partman}: last run failed:\n{}",
        text(&out)
    );

    let check = db.client().await;
    let parent: Option<String> = check
        .query_one("SELECT to_regclass('public.test_table1')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        parent.as_deref(),
        Some("test_table1"),
        "{partman}: the parent table is gone"
    );
    let now: DateTime<Utc> = check.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let present: BTreeMap<i64, DateTime<Utc>> = check
        .query("SELECT id, mtime FROM public.test_table1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    // Nothing younger than the window was lost.
    let window_start = now - chrono::Duration::seconds(15);
    let lost: Vec<(&i64, &DateTime<Utc>)> = inserted
        .iter()
        .filter(|(id, mtime)| **mtime > window_start && !present.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{partman}: rows inside the 15 s window were lost: {lost:?}"
    );
    let kept_in_window = inserted.values().filter(|m| **m > window_start).count();
    assert!(
        kept_in_window > 100,
        "{partman}: only {kept_in_window} rows in the window"
    );

    // Nothing older than keep + one interval before the last run began is left.
    let oldest_allowed = before_last_run - chrono::Duration::seconds(16);
    let too_old: Vec<(&i64, &DateTime<Utc>)> = present
        .iter()
        .filter(|(_, m)| **m < oldest_allowed)
        .collect();
    assert!(
        too_old.is_empty(),
        "{partman}: rows older than the window + 1 s remain (oldest allowed {oldest_allowed}): {too_old:?}"
    );
    // And old rows did exist: the inserts ran longer than the window.
    assert!(
        inserted.values().any(|m| *m < oldest_allowed),
        "{partman}: the test never inserted expired rows"
    );

    // Every run was recorded.
    let logged: i64 = check
        .query_one(
            "SELECT count(*) FROM retention.run_log WHERE table_name = 'public.test_table1' AND step = 'maintenance' AND outcome = 'ok' AND run_by = 'retentionc'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, runs + 1, "{partman}: run_log rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_pg_partman_4() {
    seed_scenario(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_pg_partman_5() {
    seed_scenario(Partman::V5).await;
}
