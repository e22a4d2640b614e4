//! `cargo bench --bench run`: `retentionc run` against pg_partman's own
//! `CALL partman.run_maintenance_proc()`, side by side, on identical partition sets in two
//! databases of one throwaway PostgreSQL 15 cluster (pg_partman 5.2.4).
//!
//! Per size (`BENCH_SIZES`, default 100,1000,5000): daily sets with 10 days of children
//! and 4 premade (15 children and a default each), 3 days kept, registered through the
//! generated SQL; that database is the template of every measured pair (`CREATE DATABASE
//! ... TEMPLATE`), so both sides start from the same catalog. Each round (`BENCH_ROUNDS`,
//! default 2) clones a fresh pair and times the release binary `retentionc run` on one and
//! `psql -c "CALL partman.run_maintenance_proc()"` on the other (the order alternates),
//! then checks that both left the same partitions. Target: at 1,000 sets and more,
//! `retentionc run` within 1.1x of `run_maintenance_proc()`.
//!
//! `cargo test --bench run` is a no-op (so `--all-targets` stays fast);
//! `RETENTIONC_BENCH=1 cargo test --bench run` runs it without a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOptions, Partman, TestDb, pg_bin, retentionc_bin};

const TARGET: f64 = 1.1;

fn main() {
    let asked =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("RETENTIONC_BENCH").is_some();
    if !asked {
        eprintln!(
            "run benchmark skipped: run `cargo bench --bench run` (or set RETENTIONC_BENCH=1)"
        );
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000, 5000]);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let jobs = std::env::var("BENCH_JOBS").ok();
    let cluster = Arc::new(Cluster::start(ClusterOptions::default()));
    println!(
        "| sets | children before | retentionc run (each round) | run_maintenance_proc() (each round) | ratio (median) | target <= {TARGET}x |"
    );
    println!("|---:|---:|---:|---:|---:|---|");
    let mut all_met = true;
    for n in sizes {
        let setup_started = Instant::now();
        let project = tempfile::tempdir().unwrap();
        let template = set_up(&cluster, project.path(), n);
        let children = template.scalar("SELECT count(*) FROM pg_inherits");
        eprintln!(
            "{n} sets: set up in {:.1} s ({children} children)",
            setup_started.elapsed().as_secs_f64()
        );
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for round in 0..rounds {
            let a = cluster.database_from(&template);
            let b = cluster.database_from(&template);
            let (t_ours, t_theirs) = if round % 2 == 0 {
                let o = time_retentionc(project.path(), &a, n, jobs.as_deref());
                (o, time_partman(&b))
            } else {
                let t = time_partman(&b);
                (time_retentionc(project.path(), &a, n, jobs.as_deref()), t)
            };
            let layout = "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid";
            assert_eq!(
                a.scalar(layout),
                b.scalar(layout),
                "retentionc run and run_maintenance_proc() left different partitions"
            );
            ours.push(t_ours);
            theirs.push(t_theirs);
        }
        let ratios: Vec<f64> = ours
            .iter()
            .zip(&theirs)
            .map(|(o, t)| o.as_secs_f64() / t.as_secs_f64())
            .collect();
        let ratio = median(&ratios);
        let met = n < 1000 || ratio <= TARGET;
        all_met &= met;
        println!(
            "| {n} | {children} | {} | {} | **{ratio:.2}x** | {} |",
            list(&ours),
            list(&theirs),
            if n < 1000 {
                "(not a target size)"
            } else if met {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average (1, 5, 15 min) at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "target (retentionc run within {TARGET}x of run_maintenance_proc() at 1,000 sets and more): {}",
        if all_met { "met" } else { "NOT met" }
    );
}

/// The template database: `n` daily sets registered through the generated SQL, each
/// with 10 days of children, 4 premade, retention 3 days (dropped).
fn set_up(cluster: &Arc<Cluster>, project: &Path, n: usize) -> TestDb {
    let db = cluster.database(Partman::V5);
    std::fs::write(project.join("retentionc.yaml"), "partman_version: 5\n").unwrap();
    let policies = project.join("policies");
    std::fs::create_dir(&policies).unwrap();
    let start =
        db.scalar("SELECT to_char(date_trunc('day', now()) - interval '10 days', 'YYYY-MM-DD')");
    let mut ddl = String::new();
    for i in 0..n {
        ddl.push_str(&format!(
            "CREATE TABLE public.t{i:05} (id bigint, at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at);\n"
        ));
        std::fs::write(
            policies.join(format!("t{i:05}.yaml")),
            format!(
                "table: public.t{i:05}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 4\n  start: \"{start}\"\nretention:\n  keep: 3 days\n"
            ),
        )
        .unwrap();
    }
    db.psql(&["-q", "-c", &ddl]);
    let out = Command::new(retentionc_bin())
        .arg("--config")
        .arg(project.join("retentionc.yaml"))
        .arg("compile")
        .output()
        .unwrap();
    assert!(out.status.success(), "compile failed: {out:?}");
    let loaded = retentionc::policy::load_project(&project.join("retentionc.yaml")).unwrap();
    // All generated files as one script, one transaction per 20 sets.
    let files = retentionc::render::compile_project(&loaded.config, &loaded.policies);
    let mut script = String::from("BEGIN;\n");
    for (i, file) in files.iter().enumerate() {
        script.push_str(&file.text);
        if i % 20 == 0 {
            script.push_str("COMMIT;\nBEGIN;\n");
        }
    }
    script.push_str("COMMIT;\nVACUUM ANALYZE;\n");
    let script_path = project.join("all.sql");
    std::fs::write(&script_path, script).unwrap();
    db.psql(&["-q", "-f", script_path.to_str().unwrap()]);
    std::fs::remove_file(&script_path).unwrap();
    db
}

fn time_retentionc(project: &Path, db: &TestDb, n: usize, jobs: Option<&str>) -> Duration {
    let mut cmd = Command::new(retentionc_bin());
    cmd.arg("--config")
        .arg(project.join("retentionc.yaml"))
        .args(["run", "--database-url", &db.url]);
    if let Some(jobs) = jobs {
        cmd.args(["--delete-jobs", jobs]);
    }
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("run: {n} ok, 0 skipped, 0 failed")),
        "retentionc run failed: {}\n{}",
        stdout.lines().rev().take(20).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn time_partman(db: &TestDb) -> Duration {
    let started = Instant::now();
    let out = Command::new(pg_bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-c"])
        .arg("CALL partman.run_maintenance_proc()")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(out.status.success(), "run_maintenance_proc failed: {out:?}");
    elapsed
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn list(times: &[Duration]) -> String {
    times
        .iter()
        .map(|t| format!("{:.2} s", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}
