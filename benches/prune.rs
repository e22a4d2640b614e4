//! `cargo bench --bench prune`: the generated prune procedure against one single DELETE
//! of the same rows, and the p99 latency of concurrent single-row inserts with and without
//! a prune running, on a throwaway PostgreSQL 15 cluster with pg_partman 5.2.4.
//!
//! Data: BENCH_ROWS rows (default 2,400,000) over 96 hourly partitions, an index on the
//! time column, a quarter of the rows matching the rule (`level = 'debug'`, older than an
//! hour), batch_size 5000. Three identical tables: one for the single DELETE, one for the
//! prune alone, one for the prune with inserts running. Targets (issue 5): prune >= 70% of
//! the single DELETE's rows/s; insert p99 during the prune < 2x its idle value.
//! Figures go to docs/run-status.md. `cargo test --bench prune` is a no-op (so
//! `--all-targets` stays fast); `RETENTIONC_BENCH=1 cargo test --bench prune` runs it
//! without a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman};

const HOURS: i64 = 96;
const TABLES: [&str; 3] = ["logs_a", "logs_b", "logs_c"];

fn main() {
    let asked =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("RETENTIONC_BENCH").is_some();
    if !asked {
        eprintln!(
            "prune benchmark skipped: run `cargo bench --bench prune` (or set RETENTIONC_BENCH=1)"
        );
        return;
    }
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_400_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = Cluster::shared();
    let db = cluster.database(Partman::V5);

    let started = Instant::now();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("retentionc.yaml"),
        "partman_version: 5\n",
    )
    .unwrap();
    std::fs::create_dir(project.path().join("policies")).unwrap();
    let start = db.scalar(&format!(
        "SELECT to_char(date_trunc('hour', now()) - interval '{} hours', 'YYYY-MM-DD HH24:MI:SS')",
        HOURS + 4
    ));
    let mut ddl = String::new();
    for t in TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE public.{t} (id bigint, logged_at timestamptz NOT NULL, level text NOT NULL, msg text) PARTITION BY RANGE (logged_at);\n\
             CREATE INDEX ON public.{t} (logged_at);\n"
        ));
        std::fs::write(
            project.path().join("policies").join(format!("{t}.yaml")),
            format!(
                "table: public.{t}\npartitioning:\n  column: logged_at\n  interval: 1 hour\n  premake: 4\n  start: \"{start}\"\n\
                 deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n    batch_size: 5000\n"
            ),
        )
        .unwrap();
    }
    db.psql(&["-q", "-c", &ddl]);
    let loaded = retentionc::policy::load_project(&project.path().join("retentionc.yaml")).unwrap();
    for file in retentionc::render::compile_project(&loaded.config, &loaded.policies) {
        let path = project.path().join("compiled.sql");
        std::fs::write(&path, &file.text).unwrap();
        db.psql(&["-q", "-f", path.to_str().unwrap()]);
    }
    // Rows in time order from 2 hours ago back over 96 hours; every fourth one matches.
    db.psql(&[
        "-q",
        "-c",
        &format!(
            "CREATE UNLOGGED TABLE src AS SELECT g AS id, now() - interval '2 hours' - make_interval(secs => g * {step}) AS logged_at, \
             CASE WHEN g % 4 = 0 THEN 'debug' ELSE 'info' END AS level, md5(g::text) AS msg \
             FROM generate_series(1, {rows}) g ORDER BY logged_at",
            step = (HOURS * 3600) as f64 / rows as f64
        ),
    ]);
    for t in TABLES {
        db.psql(&[
            "-q",
            "-c",
            &format!("INSERT INTO public.{t} SELECT * FROM src"),
            "-c",
            &format!("VACUUM ANALYZE public.{t}"),
        ]);
    }
    db.psql(&["-q", "-c", "CHECKPOINT"]);
    let matching: i64 = db
        .scalar("SELECT count(*) FROM public.logs_a WHERE level = 'debug'")
        .parse()
        .unwrap();
    let partitions: i64 = db
        .scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.logs_a'::regclass")
        .parse()
        .unwrap();
    eprintln!(
        "setup: {rows} rows x 3 tables, {partitions} partitions each, in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    runtime.block_on(async {
        let client = db.client().await;
        // One single DELETE of the same rows.
        let t0 = Instant::now();
        let deleted = client
            .execute("DELETE FROM public.logs_a WHERE logged_at < now() - interval '1 hour' AND (level = 'debug')", &[])
            .await
            .unwrap() as i64;
        let single = t0.elapsed();
        assert_eq!(deleted, matching);

        // The prune procedure, alone.
        let t0 = Instant::now();
        client.batch_execute("CALL retention.prune_logs_b()").await.unwrap();
        let prune = t0.elapsed();
        let left: i64 = client.query_one("SELECT count(*) FROM public.logs_b WHERE level = 'debug'", &[]).await.unwrap().get(0);
        assert_eq!(left, 0, "the prune left matching rows");

        // Insert latency: idle, then with the prune running on the same table.
        // Insert latency, idle and with the prune running on the same table, in rounds
        // (the matching rows put back between rounds) to have enough samples for a p99.
        // Idle is measured just before and just after each prune, so that other load on
        // the machine weighs on both sides alike.
        let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
        let (mut idle, mut busy, mut loaded_times) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            if round > 0 {
                client.batch_execute("INSERT INTO public.logs_c SELECT * FROM src WHERE level = 'debug'").await.unwrap();
                client.batch_execute("VACUUM ANALYZE public.logs_c").await.unwrap();
            }
            let no_prune = None::<std::future::Ready<Result<(), tokio_postgres::Error>>>;
            idle.extend(insert_latencies(&db, Duration::from_secs(2), no_prune).await);
            let prune_client = db.client().await;
            let t0 = Instant::now();
            busy.extend(insert_latencies(&db, Duration::from_secs(600), Some(prune_client.batch_execute("CALL retention.prune_logs_c()"))).await);
            loaded_times.push(t0.elapsed());
            let no_prune = None::<std::future::Ready<Result<(), tokio_postgres::Error>>>;
            idle.extend(insert_latencies(&db, Duration::from_secs(2), no_prune).await);
        }
        loaded_times.sort();
        let prune_loaded = loaded_times[loaded_times.len() / 2];
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        let rate = |d: Duration| matching as f64 / d.as_secs_f64();
        println!("| measurement | value |");
        println!("|---|---:|");
        println!("| rows, partitions, matching rows | {rows}, {partitions}, {matching} |");
        println!("| single DELETE | {:.2} s, {:.0} rows/s |", single.as_secs_f64(), rate(single));
        println!("| prune procedure (batch 5000) | {:.2} s, {:.0} rows/s, **{:.0}%** of the single DELETE |", prune.as_secs_f64(), rate(prune), 100.0 * rate(prune) / rate(single));
        println!("| prune with inserts running (median of {rounds}) | {:.2} s, {:.0} rows/s |", prune_loaded.as_secs_f64(), rate(prune_loaded));
        println!("| insert latency idle: p50 / p99 / max ({} inserts) | {} / {} / {} |", idle.len(), ms(&idle, 0.50), ms(&idle, 0.99), ms(&idle, 1.0));
        println!("| insert latency during prune: p50 / p99 / max ({} inserts) | {} / {} / {} |", busy.len(), ms(&busy, 0.50), ms(&busy, 0.99), ms(&busy, 1.0));
        println!("| insert p99 during prune / idle | **{:.2}x** |", quantile(&busy, 0.99).as_secs_f64() / quantile(&idle, 0.99).as_secs_f64());
        println!("| load average (1, 5, 15 min) at the end | {} |", load.split_whitespace().take(3).collect::<Vec<_>>().join(", "));
    });
}

/// Single-row inserts into logs_c's current partition, one every millisecond, timed each;
/// for `duration`, or until `until` (a prune) completes.
async fn insert_latencies(
    db: &common::cluster::TestDb,
    duration: Duration,
    until: Option<impl std::future::Future<Output = Result<(), tokio_postgres::Error>>>,
) -> Vec<Duration> {
    let client = db.client().await;
    let statement = client
        .prepare(
            "INSERT INTO public.logs_c (id, logged_at, level, msg) VALUES (0, now(), 'info', 'x')",
        )
        .await
        .unwrap();
    let inserts = async {
        let mut latencies = Vec::new();
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            let t0 = Instant::now();
            client.execute(&statement, &[]).await.unwrap();
            latencies.push(t0.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies
    };
    match until {
        None => inserts.await,
        Some(until) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let runner = async {
                until.await.unwrap();
                let _ = tx.send(());
            };
            let measured = async {
                tokio::pin!(rx);
                let mut latencies = Vec::new();
                loop {
                    let t0 = Instant::now();
                    client.execute(&statement, &[]).await.unwrap();
                    latencies.push(t0.elapsed());
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                        _ = &mut rx => break,
                    }
                }
                latencies
            };
            let ((), latencies) = tokio::join!(runner, measured);
            latencies
        }
    }
}

fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(samples: &[Duration], q: f64) -> String {
    format!("{:.2} ms", quantile(samples, q).as_secs_f64() * 1000.0)
}
