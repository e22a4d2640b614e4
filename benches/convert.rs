//! `cargo bench --bench convert`: `retentionc convert` against one `INSERT INTO ... SELECT`
//! of the same rows into the same partitioned table, and the p99 latency of concurrent
//! single-row inserts into the table while it is converted, against idle; on a throwaway
//! PostgreSQL 15 cluster with pg_partman 5.2.4.
//!
//! Data: BENCH_ROWS rows (default 2,000,000) spread over 60 days, a bigint identity primary
//! key, a unique index, an index on the time column; the policy keeps 30 days, so about half
//! the rows are copied. Row i is (i % 60) days old, so the rows are not stored in time order:
//! the hardest case for the conversion's oldest-first batches, each of which reads pages
//! all over the table (the single INSERT reads it once). Three identical tables: one for the single INSERT, one converted
//! alone, one converted with inserts running. Targets: the conversion (every step, from the
//! first statement to the swap) copies at least 0.7 of the single INSERT's rows/s; the
//! inserts' p99 during the fill is at most 2x idle. Figures go to the README's benchmark
//! section and docs/convert.md. `cargo test --bench convert` is a no-op (so
//! `--all-targets` stays fast); `RETENTIONC_BENCH=1 cargo test --bench convert` runs it
//! without a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb};
use retentionc::cli::DbArgs;
use retentionc::model::QualifiedName;

const TABLES: [&str; 3] = ["orders_a", "orders_b", "orders_c"];
const KEEP_DAYS: i64 = 30;

/// Targets (see the module doc).
const MIN_THROUGHPUT_SHARE: f64 = 0.7;
const MAX_P99_RATIO: f64 = 2.0;

fn main() {
    let asked =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("RETENTIONC_BENCH").is_some();
    if !asked {
        eprintln!(
            "convert benchmark skipped: run `cargo bench --bench convert` (or set RETENTIONC_BENCH=1)"
        );
        return;
    }
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = Cluster::shared();
    let db = cluster.database(Partman::V5);

    let started = Instant::now();
    db.psql(&[
        "-q",
        "-c",
        &format!(
            "CREATE UNLOGGED TABLE src AS SELECT now() - (i % 60) * interval '1 day' - interval '1 hour' AS created_at,
                 'o' || i AS email, (i % 100)::integer AS amount, md5(i::text) AS note
               FROM generate_series(1, {rows}) i"
        ),
    ]);
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("retentionc.yaml"),
        "partman_version: 5\nlock_timeout: 2s\n",
    )
    .unwrap();
    std::fs::create_dir(project.path().join("policies")).unwrap();
    for t in TABLES {
        db.psql(&[
            "-q",
            "-c",
            &format!(
                "CREATE TABLE public.{t} (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL,
                     email text NOT NULL, amount integer NOT NULL CHECK (amount >= 0), note text)"
            ),
            "-c",
            &format!("INSERT INTO public.{t} (created_at, email, amount, note) SELECT * FROM src"),
            "-c",
            &format!("ALTER TABLE public.{t} ADD PRIMARY KEY (id)"),
            "-c",
            &format!("CREATE UNIQUE INDEX ON public.{t} (email)"),
            "-c",
            &format!("CREATE INDEX ON public.{t} (created_at)"),
            "-c",
            &format!("VACUUM ANALYZE public.{t}"),
        ]);
        std::fs::write(
            project.path().join("policies").join(format!("{t}.yaml")),
            format!(
                "table: public.{t}\npartitioning:\n  column: created_at\n  interval: 1 day\n  premake: 4\n\
                 retention:\n  keep: {KEEP_DAYS} days\n"
            ),
        )
        .unwrap();
    }
    let config = project.path().join("retentionc.yaml");
    let loaded = retentionc::policy::load_project(&config).unwrap();
    let converted: Vec<QualifiedName> = TABLES
        .iter()
        .map(|t| QualifiedName::parse(&format!("public.{t}")).unwrap())
        .collect();
    retentionc::compile::compile_with(&loaded, &[], &converted, &mut Vec::new()).unwrap();
    // retentionc's own schema, as apply would make it.
    db.psql(&[
        "-q",
        "-f",
        project
            .path()
            .join("generated/_retentionc.sql")
            .to_str()
            .unwrap(),
    ]);
    db.psql(&["-q", "-c", "CHECKPOINT"]);
    eprintln!(
        "setup: {rows} rows x 3 tables in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    runtime.block_on(async {
        let client = db.client().await;
        // The baseline: the same partitioned table (what prepare makes of orders_a), filled
        // by one INSERT ... SELECT of the rows the conversion copies.
        let project = retentionc::policy::load_project(&config).unwrap();
        let baseline = project.policy("public.orders_a").unwrap();
        let reviewed = retentionc::convert::statements::Reviewed::load(&project, baseline).unwrap();
        let session = retentionc::db::connect(&DbArgs::url(db.url.clone()), "bench").await.unwrap();
        retentionc::convert::create_routines(&session, &reviewed).await.unwrap();
        session.query(reviewed.get("prepare"), &[]).await.unwrap();
        let cutoff: String = client
            .query_one("SELECT cutoff FROM retention.conversions WHERE table_name = 'public.orders_a'", &[])
            .await
            .unwrap()
            .get(0);
        let t0 = Instant::now();
        let copied = client
            .execute(
                &format!(
                    "INSERT INTO public.orders_a_intermediate OVERRIDING SYSTEM VALUE
                     SELECT * FROM public.orders_a WHERE created_at >= '{cutoff}'::timestamptz"
                ),
                &[],
            )
            .await
            .unwrap() as i64;
        let single = t0.elapsed();

        // The conversion alone, every step.
        let t0 = Instant::now();
        convert(&db, &project, "public.orders_b").await;
        let alone = t0.elapsed();
        let converted_rows: i64 = client
            .query_one("SELECT count(*) FROM public.orders_b", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(converted_rows, copied, "the conversion copied other rows");

        // Insert latency: idle, then during the conversion of orders_c, then idle again.
        let mut idle = insert_latencies(&db, Duration::from_secs(3), None::<std::future::Ready<()>>).await;
        let t0 = Instant::now();
        let busy = insert_latencies(&db, Duration::from_secs(3600), Some(convert(&db, &project, "public.orders_c"))).await;
        let loaded_time = t0.elapsed();
        idle.extend(insert_latencies(&db, Duration::from_secs(3), None::<std::future::Ready<()>>).await);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        let rate = |d: Duration| copied as f64 / d.as_secs_f64();
        let share = rate(alone) / rate(single);
        let p99_ratio = quantile(&busy, 0.99).as_secs_f64() / quantile(&idle, 0.99).as_secs_f64();
        println!("| measurement | value |");
        println!("|---|---:|");
        println!("| rows, rows copied (the rest older than keep + 1 day) | {rows}, {copied} |");
        println!("| one INSERT ... SELECT into the partitioned table | {:.2} s, {:.0} rows/s |", single.as_secs_f64(), rate(single));
        println!("| retentionc convert, every step to the swap | {:.2} s, {:.0} rows/s, **{:.0}%** of the single INSERT |", alone.as_secs_f64(), rate(alone), 100.0 * share);
        println!("| retentionc convert with inserts running | {:.2} s, {:.0} rows/s |", loaded_time.as_secs_f64(), rate(loaded_time));
        println!("| insert latency idle: p50 / p99 / max ({} inserts) | {} / {} / {} |", idle.len(), ms(&idle, 0.50), ms(&idle, 0.99), ms(&idle, 1.0));
        println!("| insert latency during the conversion: p50 / p99 / max ({} inserts) | {} / {} / {} |", busy.len(), ms(&busy, 0.50), ms(&busy, 0.99), ms(&busy, 1.0));
        println!("| insert p99 during the conversion / idle | **{p99_ratio:.2}x** |");
        println!("| load average (1, 5, 15 min) at the end | {} |", load.split_whitespace().take(3).collect::<Vec<_>>().join(", "));
        assert!(share >= MIN_THROUGHPUT_SHARE, "the conversion copied {:.0}% of the single INSERT's rows/s; the target is {:.0}%", 100.0 * share, 100.0 * MIN_THROUGHPUT_SHARE);
        assert!(p99_ratio <= MAX_P99_RATIO, "insert p99 during the conversion is {p99_ratio:.2}x idle; the target is at most {MAX_P99_RATIO}x");
    });
}

/// `retentionc convert TABLE`, through the library, on its own session.
async fn convert(db: &TestDb, project: &retentionc::model::Project, table: &str) {
    let policy = project.policy(table).unwrap();
    let reviewed = retentionc::convert::statements::Reviewed::load(project, policy).unwrap();
    let session = retentionc::db::connect(&DbArgs::url(db.url.clone()), "bench")
        .await
        .unwrap();
    let options = retentionc::convert::Options {
        batch_rows: retentionc::convert::DEFAULT_BATCH_ROWS,
        lock_attempts: 10,
        no_swap: false,
        lock_timeout_ms: project.config.lock_timeout_ms,
    };
    retentionc::convert::run(
        &session,
        project,
        policy,
        &reviewed,
        &options,
        &mut Vec::new(),
    )
    .await
    .unwrap();
}

/// Single-row inserts into orders_c, one every millisecond, timed each; for `duration`, or
/// until `until` (a conversion) completes.
async fn insert_latencies(
    db: &TestDb,
    duration: Duration,
    until: Option<impl std::future::Future<Output = ()>>,
) -> Vec<Duration> {
    static INSERTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let client = db.client().await;
    let insert = async || {
        let n = INSERTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t0 = Instant::now();
        client
            .execute(
                "INSERT INTO public.orders_c (created_at, email, amount) VALUES (now(), $1, 1)",
                &[&format!("bench-{}-{n}", std::process::id())],
            )
            .await
            .unwrap();
        t0.elapsed()
    };
    match until {
        None => {
            let mut latencies = Vec::new();
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                latencies.push(insert().await);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        }
        Some(until) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let runner = async {
                until.await;
                let _ = tx.send(());
            };
            let measured = async {
                tokio::pin!(rx);
                let mut latencies = Vec::new();
                loop {
                    latencies.push(insert().await);
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
