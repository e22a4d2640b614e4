//! `cargo bench --bench prune`: a delete rule through `retentionc run` against one single
//! DELETE of the same rows, and the p99 latency of concurrent single-row inserts with and
//! without the run, on a throwaway PostgreSQL 15 cluster with pg_partman 5.2.4.
//!
//! Data: BENCH_ROWS rows (default 3,000,000) over 96 hourly partitions (and 8 more, empty,
//! up to now + 4 hours, and a default one), an index on the time column, a quarter of the
//! rows matching the rule (`level = 'debug'`, older than an hour), batch_size 5000. Three
//! identical tables: one for the single DELETE, one for `retentionc run --table` alone
//! (the release binary: connecting, acting as the owner, the prune procedure with its
//! progress notices, the run_log read back), one for the run with inserts (one every ~1 ms,
//! a prepared statement) going to its current partition. The policies have delete rules
//! only (the partitions are made here), so the run does no pg_partman maintenance.
//! BENCH_ROUNDS rounds (default 3; the matching rows are put back between rounds; the
//! single DELETE and the run alternate which goes first), idle insert latency sampled
//! for 2 s before and after each run.
//! Targets: the run deletes at least 0.9x the single DELETE's rows/s (medians), and the
//! insert p99 during the runs is at most 1.5x the idle p99.
//! `cargo test --bench prune` is a no-op (so `--all-targets` stays fast);
//! `RETENTIONC_BENCH=1 cargo test --bench prune` runs it without a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, retentionc_bin};

const HOURS: i64 = 96;
const TABLES: [&str; 3] = ["logs_a", "logs_b", "logs_c"];
const THROUGHPUT_TARGET: f64 = 0.9;
const LATENCY_TARGET: f64 = 1.5;

fn main() {
    let asked =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("RETENTIONC_BENCH").is_some();
    if !asked {
        eprintln!(
            "prune benchmark skipped: run `cargo bench --bench prune` (or set RETENTIONC_BENCH=1)"
        );
        return;
    }
    let rows: i64 = env_number("BENCH_ROWS", 3_000_000);
    let rounds = env_number("BENCH_ROUNDS", 3) as usize;
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
    let mut ddl = String::new();
    for t in TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE public.{t} (id bigint, logged_at timestamptz NOT NULL, level text NOT NULL, msg text) PARTITION BY RANGE (logged_at);\n\
             CREATE INDEX ON public.{t} (logged_at);\n\
             CREATE TABLE public.{t}_default PARTITION OF public.{t} DEFAULT;\n\
             DO $$ DECLARE h int; s timestamptz := date_trunc('hour', now()); BEGIN\n\
               FOR h IN -{back}..4 LOOP\n\
                 EXECUTE format('CREATE TABLE public.%I PARTITION OF public.{t} FOR VALUES FROM (%L) TO (%L)',\n\
                                '{t}_' || to_char(s + h * interval '1 hour', 'YYYYMMDDHH24'), s + h * interval '1 hour', s + (h + 1) * interval '1 hour');\n\
               END LOOP; END $$;\n",
            back = HOURS + 4
        ));
        std::fs::write(
            project.path().join("policies").join(format!("{t}.yaml")),
            format!(
                "table: public.{t}\n\
                 deletes:\n  - name: debug_rows\n    where: \"level = 'debug'\"\n    column: logged_at\n    older_than: 1 hour\n    batch_size: 5000\n"
            ),
        )
        .unwrap();
    }
    db.psql(&["-q", "-c", &ddl]);
    let out = Command::new(retentionc_bin())
        .arg("--config")
        .arg(project.path().join("retentionc.yaml"))
        .arg("compile")
        .output()
        .unwrap();
    assert!(out.status.success(), "compile failed: {out:?}");
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
        let (mut single, mut alone, mut loaded_runs) = (Vec::new(), Vec::new(), Vec::new());
        let (mut idle, mut busy) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round > 0 {
                for t in TABLES {
                    client.batch_execute(&format!("INSERT INTO public.{t} SELECT * FROM src WHERE level = 'debug'")).await.unwrap();
                    client.batch_execute(&format!("VACUUM ANALYZE public.{t}")).await.unwrap();
                }
                client.batch_execute("CHECKPOINT").await.unwrap();
            }
            let delete = async {
                let t0 = Instant::now();
                let deleted = client
                    .execute("DELETE FROM public.logs_a WHERE logged_at < now() - interval '1 hour' AND (level = 'debug')", &[])
                    .await
                    .unwrap() as i64;
                assert_eq!(deleted, matching);
                t0.elapsed()
            };
            if round % 2 == 0 {
                single.push(delete.await);
                alone.push(run_prune(project.path(), &db.url, "public.logs_b", matching).await);
            } else {
                alone.push(run_prune(project.path(), &db.url, "public.logs_b", matching).await);
                single.push(delete.await);
            }
            let left: i64 = client.query_one("SELECT count(*) FROM public.logs_b WHERE level = 'debug'", &[]).await.unwrap().get(0);
            assert_eq!(left, 0, "the run left matching rows");

            // Idle is measured just before and just after each run, so that other load on
            // the machine weighs on both sides alike.
            let no_run = None::<std::future::Ready<Duration>>;
            idle.extend(insert_latencies(&db, Duration::from_secs(2), no_run).await.0);
            let run = run_prune(project.path(), &db.url, "public.logs_c", matching);
            let (latencies, elapsed) = insert_latencies(&db, Duration::from_secs(600), Some(run)).await;
            busy.extend(latencies);
            loaded_runs.push(elapsed);
            let no_run = None::<std::future::Ready<Duration>>;
            idle.extend(insert_latencies(&db, Duration::from_secs(2), no_run).await.0);
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        let rate = |d: Duration| matching as f64 / d.as_secs_f64();
        let throughput = median(&alone).as_secs_f64().recip() / median(&single).as_secs_f64().recip();
        let latency = quantile(&busy, 0.99).as_secs_f64() / quantile(&idle, 0.99).as_secs_f64();
        println!("| measurement | value |");
        println!("|---|---:|");
        println!("| rows, partitions, matching rows | {rows}, {partitions}, {matching} |");
        println!("| single DELETE (each round) | {} |", seconds(&single));
        println!("| `retentionc run` (batch 5000), alone (each round) | {} |", seconds(&alone));
        println!("| medians | single DELETE {:.0} rows/s, run {:.0} rows/s: **{:.0}%** (target at least {:.0}%: {}) |",
            rate(median(&single)), rate(median(&alone)), 100.0 * throughput, 100.0 * THROUGHPUT_TARGET,
            if throughput >= THROUGHPUT_TARGET { "met" } else { "NOT met" });
        println!("| `retentionc run` with inserts running (each round) | {} |", seconds(&loaded_runs));
        println!("| insert latency idle: p50 / p99 / max ({} inserts) | {} / {} / {} |", idle.len(), ms(&idle, 0.50), ms(&idle, 0.99), ms(&idle, 1.0));
        println!("| insert latency during the runs: p50 / p99 / max ({} inserts) | {} / {} / {} |", busy.len(), ms(&busy, 0.50), ms(&busy, 0.99), ms(&busy, 1.0));
        println!("| insert p99 during the runs / idle | **{latency:.2}x** (target at most {LATENCY_TARGET}x: {}) |",
            if latency <= LATENCY_TARGET { "met" } else { "NOT met" });
        println!("| load average (1, 5, 15 min) at the end | {} |", load.split_whitespace().take(3).collect::<Vec<_>>().join(", "));
    });
}

fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `retentionc run --table TABLE` (the delete rule of a policy without partitioning):
/// its wall time, once it reported `matching` rows deleted.
async fn run_prune(project: &Path, url: &str, table: &str, matching: i64) -> Duration {
    let mut cmd = Command::new(retentionc_bin());
    cmd.arg("--config")
        .arg(project.join("retentionc.yaml"))
        .args(["run", "--table", table, "--database-url", url]);
    let t0 = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let elapsed = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains(&format!("delete debug_rows: {} rows", group(matching))),
        "run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn group(n: i64) -> String {
    retentionc::run::progress::group(n)
}

/// Single-row inserts into logs_c's current partition, one every millisecond, timed each;
/// for `duration`, or until `until` (a run) completes, then with the run's time.
async fn insert_latencies<F: std::future::Future<Output = Duration>>(
    db: &common::cluster::TestDb,
    duration: Duration,
    until: Option<F>,
) -> (Vec<Duration>, Duration) {
    let client = db.client().await;
    let statement = client
        .prepare(
            "INSERT INTO public.logs_c (id, logged_at, level, msg) VALUES (0, now(), 'info', 'x')",
        )
        .await
        .unwrap();
    let Some(until) = until else {
        let mut latencies = Vec::new();
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            let t0 = Instant::now();
            client.execute(&statement, &[]).await.unwrap();
            latencies.push(t0.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        return (latencies, duration);
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runner = async {
        let elapsed = until.await;
        let _ = tx.send(());
        elapsed
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
    let (elapsed, latencies) = tokio::join!(runner, measured);
    (latencies, elapsed)
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(samples: &[Duration], q: f64) -> String {
    format!("{:.2} ms", quantile(samples, q).as_secs_f64() * 1000.0)
}

fn seconds(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}
