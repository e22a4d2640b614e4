//! `cargo bench --bench apply`: `retentionc apply` registering 1,000 new tables, against
//! the same 1,000 `partman.create_parent()` calls sent directly, each committed, on a
//! throwaway PostgreSQL 15 cluster with the default lock table (`max_locks_per_transaction`
//! 64, `max_connections` 100) and pg_partman 5.2.4.
//!
//! The tables (`BENCH_TABLES`, default 1,000; daily, 10 days back and 4 premade, 3 days
//! kept) are made unregistered in a template database; each round (`BENCH_ROUNDS`,
//! default 2) clones two databases from it and times the release binary
//! `retentionc apply --auto-approve` on one and `psql -f` of the direct calls on the
//! other (the order alternates), then checks that both made the same partitions.
//! Target: apply within 1.2x of the direct calls.
//!
//! `cargo test --bench apply` is a no-op (so `--all-targets` stays fast);
//! `RETENTIONC_BENCH=1 cargo test --bench apply` runs it without a release build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOptions, Partman, TestDb, pg_bin, retentionc_bin};

const TARGET: f64 = 1.2;

fn main() {
    let asked =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("RETENTIONC_BENCH").is_some();
    if !asked {
        eprintln!(
            "apply benchmark skipped: run `cargo bench --bench apply` (or set RETENTIONC_BENCH=1)"
        );
        return;
    }
    let tables: usize = std::env::var("BENCH_TABLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    // The test clusters allow 200 connections; the default server, 100.
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        settings: vec![("max_connections".into(), "100".into())],
        ..Default::default()
    }));
    let project = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (template, direct) = set_up(&cluster, project.path(), tables);
    eprintln!(
        "{tables} tables made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let settings = template.scalar(
        "SELECT current_setting('max_locks_per_transaction') || ' x (' || current_setting('max_connections') || ' + ' || current_setting('max_prepared_transactions') || ')'",
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut transactions = String::new();
    for round in 0..rounds {
        let a = cluster.database_from(&template);
        let b = cluster.database_from(&template);
        let mut apply = || {
            let (elapsed, split) = time_apply(project.path(), &a);
            transactions = split;
            elapsed
        };
        let (o, t) = if round % 2 == 0 {
            let o = apply();
            (o, time_direct(&b, &direct))
        } else {
            let t = time_direct(&b, &direct);
            (apply(), t)
        };
        let layout = "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid";
        assert_eq!(
            a.scalar(layout),
            b.scalar(layout),
            "apply and the direct calls made different partitions"
        );
        ours.push(o);
        theirs.push(t);
    }
    let ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| o.as_secs_f64() / t.as_secs_f64())
        .collect();
    let ratio = median(&ratios);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "| new tables | max_locks_per_transaction x (max_connections + max_prepared_transactions) | retentionc apply (each round) | direct create_parent calls (each round) | ratio (median) | target <= {TARGET}x |"
    );
    println!("|---:|---|---:|---:|---:|---|");
    println!(
        "| {tables} | {settings} | {} ({transactions}) | {} | **{ratio:.2}x** | {} |",
        list(&ours),
        list(&theirs),
        if ratio <= TARGET { "met" } else { "NOT met" }
    );
    println!(
        "load average (1, 5, 15 min) at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The template database (tables made, none registered), the project compiled for them,
/// and the script of direct create_parent calls.
fn set_up(cluster: &Arc<Cluster>, project: &Path, n: usize) -> (TestDb, std::path::PathBuf) {
    let db = cluster.database(Partman::V5);
    std::fs::write(project.join("retentionc.yaml"), "partman_version: 5\n").unwrap();
    let policies = project.join("policies");
    std::fs::create_dir(&policies).unwrap();
    let start =
        db.scalar("SELECT to_char(date_trunc('day', now()) - interval '10 days', 'YYYY-MM-DD')");
    let mut ddl = String::new();
    let mut direct = String::new();
    for i in 0..n {
        let table = format!("public.t{i:05}");
        ddl.push_str(&format!(
            "CREATE TABLE {table} (id bigint, at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at);\n"
        ));
        // What the generated [setup] statement calls, and [retention] sets.
        direct.push_str(&format!(
            "SELECT partman.create_parent(p_parent_table := '{table}', p_control := 'at', p_type := 'range', p_interval := '1 day', p_premake := 4, p_start_partition := '{start}', p_default_table := true, p_epoch := 'none');\n"
        ));
        std::fs::write(
            policies.join(format!("t{i:05}.yaml")),
            format!(
                "table: {table}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 4\n  start: \"{start}\"\nretention:\n  keep: 3 days\n"
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
    let script = project.join("direct.sql");
    std::fs::write(&script, direct).unwrap();
    (db, script)
}

/// `retentionc apply --auto-approve`: its time, and how many transactions it took.
fn time_apply(project: &Path, db: &TestDb) -> (Duration, String) {
    let started = Instant::now();
    let out = Command::new(retentionc_bin())
        .arg("--config")
        .arg(project.join("retentionc.yaml"))
        .args(["apply", "--auto-approve", "--database-url", &db.url])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "apply failed: {}\n{}",
        stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let transactions = stdout
        .lines()
        .find_map(|l| {
            let at = l.find(" transactions, in ")?;
            let start = l[..at].rfind(' ')? + 1;
            Some(format!("{} transactions", &l[start..at]))
        })
        .unwrap_or_else(|| "1 transaction".into());
    (elapsed, transactions)
}

fn time_direct(db: &TestDb, script: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(pg_bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
        .arg(script)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(out.status.success(), "the direct calls failed: {out:?}");
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
        .map(|t| format!("{:.1} s", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}
