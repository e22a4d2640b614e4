//! `cargo bench --bench plan`: how long `retentionc plan` takes, and how many statements
//! it sends, for 10, 100 and 1,000 managed tables on a throwaway PostgreSQL 15 cluster
//! with pg_partman 5.2.4. The statement count must not grow with the table count, and
//! 1,000 tables must plan in under 2 s.
//!
//! Setup per size: the tables (every other one with a delete rule, so retentionc's
//! schema holds a prune procedure for half of them), compiled, and applied by running
//! all generated files in one psql session (create_parent for each), so the plan that
//! is measured finds nothing to change, like a plan in a pull request that touches
//! nothing. `BENCH_SIZES=10,100` picks other sizes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman};
use retentionc::cli::DbArgs;

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1000]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = Cluster::shared();
    println!(
        "| managed tables | partitions | setup | plan: best of 5 (median) | statements sent | changes |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let started = Instant::now();
        let db = cluster.database(Partman::V5);
        let project_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            project_dir.path().join("retentionc.yaml"),
            "partman_version: 5\n",
        )
        .unwrap();
        let policies = project_dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        let mut ddl = String::new();
        for i in 0..n {
            ddl.push_str(&format!(
                "CREATE TABLE public.t{i:04} (id bigint, at timestamptz NOT NULL, level text) PARTITION BY RANGE (at);\n"
            ));
            let mut policy = format!(
                "table: public.t{i:04}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\nretention:\n  keep: 30 days\n"
            );
            if i % 2 == 0 {
                policy.push_str("deletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n");
            }
            std::fs::write(policies.join(format!("t{i:04}.yaml")), policy).unwrap();
        }
        db.psql(&["-q", "-c", &ddl]);
        let project =
            retentionc::policy::load_project(&project_dir.path().join("retentionc.yaml")).unwrap();
        // All generated files as one script, one transaction per 100 tables.
        let files = retentionc::render::compile_project(&project.config, &project.policies);
        let mut script = String::from("BEGIN;\n");
        for (i, file) in files.iter().enumerate() {
            script.push_str(&file.text);
            if i % 100 == 0 {
                script.push_str("COMMIT;\nBEGIN;\n");
            }
        }
        script.push_str("COMMIT;\nANALYZE;\n");
        let script_path = project_dir.path().join("all.sql");
        std::fs::write(&script_path, script).unwrap();
        db.psql(&["-q", "-f", script_path.to_str().unwrap()]);
        let partitions = db.scalar("SELECT count(*) FROM pg_inherits");
        let setup = started.elapsed();

        let (times, sent, changes) = runtime.block_on(async {
            let mut times = Vec::new();
            let mut sent = 0;
            let mut changes = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let client =
                    retentionc::db::connect(&DbArgs::url(db.url.clone()), "retentionc bench")
                        .await
                        .unwrap();
                let planned = retentionc::plan::make_plan_detailed(&client, &project)
                    .await
                    .unwrap();
                times.push(t.elapsed());
                sent = planned.statements_sent;
                changes = planned.plan.changes.len();
            }
            (times, sent, changes)
        });
        let mut sorted = times.clone();
        sorted.sort();
        println!(
            "| {n} | {partitions} | {:.1} s | {} ({}) | {sent} | {changes} |",
            setup.as_secs_f64(),
            ms(sorted[0]),
            ms(sorted[sorted.len() / 2])
        );
        assert_eq!(changes, 0, "an applied database plans no changes");
        if n >= 1000 {
            assert!(
                sorted[sorted.len() / 2] < Duration::from_secs(2),
                "1,000 tables must plan in under 2 s"
            );
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
