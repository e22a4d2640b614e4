//! `retentionc status` against real PostgreSQL + pg_partman 4.7.2 and 5.2.4: `--check`
//! exits 3 while a table holds rows older than keep + one interval (+ the schedule's
//! period), and 0 once `run` has expired them; rows in the default partition are
//! reported; the last run of each step is shown.

mod common;
mod run_support;

use common::cluster::{Cluster, Partman};
use run_support::{Inserter, Project, blocking, db_time, stdout, text};

async fn check_follows_retention(partman: Partman) {
    let db = Cluster::shared().database(partman);
    db.psql(&[
        "-c",
        "CREATE TABLE public.test_table1 (id bigserial, mtime timestamptz NOT NULL, payload text) PARTITION BY RANGE (mtime)",
        "-c",
        "CREATE INDEX ON public.test_table1 (mtime)",
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
    ]);
    let policy = format!(
        "table: public.test_table1\npartitioning:\n  column: mtime\n  interval: 1 second\n  premake: 30\n  start: \"{}\"\nretention:\n  keep: 15 seconds\n",
        db_time(&db, -60)
    );
    let sessions = "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked\"\n    older_than: 1 day\n    column: last_seen_at\n";
    let project = Project::install(
        &db,
        &[("test_table1.yaml", &policy), ("sessions.yaml", sessions)],
    );
    // Old rows in real partitions, and no run since: retention has lapsed.
    db.psql(&["-c", "INSERT INTO public.test_table1 (mtime) SELECT now() - make_interval(secs => s) FROM generate_series(20, 50) s"]);
    let inserter =
        Inserter::start(&db, "INSERT INTO public.test_table1 (mtime) VALUES (now())").await;

    let out = blocking(|| project.retentionc(&["status", "--check"]));
    assert_eq!(out.status.code(), Some(3), "{partman}: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("check failed: public.test_table1 holds rows from"),
        "{partman}: {stderr}"
    );
    assert!(
        stderr.contains("older than its policy allows (16 seconds)"),
        "{partman}: {stderr}"
    );
    assert!(
        stdout(&out).contains("retention LAPSED"),
        "{partman}: {}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("last run: never"),
        "{partman}: {}",
        text(&out)
    );

    let out = blocking(|| project.retentionc(&["status", "--format", "json"]));
    assert!(
        out.status.success(),
        "{partman}: without --check, a lapse is not an error: {}",
        text(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = |name: &str| {
        json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    let t = table("public.test_table1");
    assert_eq!(t["retention"]["holds"], false);
    assert!(
        t["retention"]["oldest_row_age_seconds"].as_f64().unwrap() >= 50.0,
        "{t}"
    );
    assert!(t["partitions"]["count"].as_u64().unwrap() >= 60, "{t}");
    assert!(
        t["partitions"]["premade_ahead"].as_u64().unwrap() >= 1,
        "{t}"
    );
    assert_eq!(t["partitions"]["default_rows"], 0);
    assert!(table("public.sessions").get("retention").is_none());
    assert_eq!(json["lapsed"], serde_json::json!(["public.test_table1"]));

    let out = blocking(|| project.retentionc(&["run"]));
    assert!(out.status.success(), "{partman}: {}", text(&out));
    let out = blocking(|| project.retentionc(&["status", "--check"]));
    assert_eq!(out.status.code(), Some(0), "{partman}: {}", text(&out));
    let report = stdout(&out);
    assert!(report.contains("retention holds"), "{partman}: {report}");
    assert!(
        report.contains("last maintenance: ok at "),
        "{partman}: {report}"
    );
    assert!(
        report.contains("last delete:revoked: ok at "),
        "{partman}: {report}"
    );
    inserter.finish().await;

    // A row no partition covers lands in the default partition: reported, and it fails
    // the check (run cannot expire it).
    db.psql(&[
        "-c",
        "INSERT INTO public.test_table1 (mtime) VALUES (now() - interval '1 day')",
    ]);
    let out = blocking(|| project.retentionc(&["status", "--check"]));
    assert_eq!(out.status.code(), Some(3), "{partman}: {}", text(&out));
    assert!(
        stdout(&out).contains("default partition: 1 rows"),
        "{partman}: {}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("warning: 1 rows in the default partition"),
        "{partman}: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_while_retention_lapsed_and_passes_after_run_pg_partman_4() {
    check_follows_retention(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_while_retention_lapsed_and_passes_after_run_pg_partman_5() {
    check_follows_retention(Partman::V5).await;
}

/// An integer column holding Unix seconds (`epoch: seconds`): bounds, the oldest row and
/// expiry are all read as times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_tables_are_checked_in_time_pg_partman_5() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&["-c", "CREATE TABLE public.metrics (id bigserial, ts bigint NOT NULL, v float8) PARTITION BY RANGE (ts)"]);
    let start = db.scalar(
        "SELECT to_char(date_trunc('hour', now()) - interval '3 days', 'YYYY-MM-DD HH24:MI:SS')",
    );
    let policy = format!(
        "table: public.metrics\npartitioning:\n  column: ts\n  interval: 1 hour\n  premake: 4\n  start: \"{start}\"\n  epoch: seconds\nretention:\n  keep: 1 day\n"
    );
    let project = Project::install(&db, &[("metrics.yaml", &policy)]);
    db.psql(&["-c", "INSERT INTO public.metrics (ts, v) SELECT extract(epoch FROM now() - make_interval(hours => h))::bigint, h FROM generate_series(0, 60) h"]);

    let out = blocking(|| project.retentionc(&["status", "--check", "--format", "json"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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

    let out = blocking(|| project.retentionc(&["run", "--dry-run"]));
    assert!(
        stdout(&out).contains("public.metrics: maintenance would drop "),
        "{}",
        text(&out)
    );
    let out = blocking(|| project.retentionc(&["run"]));
    assert!(out.status.success(), "{}", text(&out));
    let out = blocking(|| project.retentionc(&["status", "--check"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
