//! `cargo bench --bench fleet`: `retentionc plan --env` over 100 databases of 20 managed
//! tables each, on one throwaway PostgreSQL 15 cluster sharing the machine's cores,
//! against 100 single-database `retentionc plan` runs one after the other (what a shell
//! loop over the databases does); and the peak resident memory of the fleet plan at 25,
//! 50 and 100 databases.
//!
//! Targets (asserted): the fleet plan is at least 2x faster than the sequential plans, and
//! its peak memory is flat in the number of databases (100 databases within 25% and 8 MB
//! of 25 databases).
//!
//! Setup: one template database holding pg_partman 5.2.4 and the 20 tables, every
//! generated file run in it (so each plan finds nothing to change, like a pull request
//! that touches nothing), then 100 copies (`CREATE DATABASE ... TEMPLATE`).
//! `BENCH_DATABASES=40` picks another fleet size for the wall-time comparison.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, quote_ident, retentionc_bin};

const TABLES: usize = 20;
const RUNS: usize = 3;

fn main() {
    let databases: usize = std::env::var("BENCH_DATABASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let cluster = Cluster::shared();
    let started = Instant::now();
    let project = tempfile::tempdir().unwrap();
    let names = make_fleet(&cluster, project.path(), databases);
    let vars: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (format!("DB_{i:03}"), cluster.url(name)))
        .collect();
    write_config(project.path(), &vars, databases);
    eprintln!(
        "setup: {databases} databases of {TABLES} tables in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Sequential: one process per database, one after the other.
    let mut sequential = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for (_, url) in &vars {
            let out = retentionc(project.path(), &vars)
                .arg("plan")
                .env("DATABASE_URL", url)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        sequential.push(t.elapsed());
    }
    let mut fleet = Vec::new();
    let mut one_at_a_time = Vec::new();
    for _ in 0..RUNS {
        fleet.push(measure(project.path(), &vars, &format!("n{databases}"), None).0);
        one_at_a_time.push(measure(project.path(), &vars, &format!("n{databases}"), Some(1)).0);
    }
    let best = |times: &[Duration]| *times.iter().min().unwrap();
    let speedup = best(&sequential).as_secs_f64() / best(&fleet).as_secs_f64();
    println!("| {databases} databases x {TABLES} tables | best of {RUNS} |");
    println!("|---|---:|");
    println!(
        "| {databases} x `retentionc plan`, one after the other | {:.2} s |",
        best(&sequential).as_secs_f64()
    );
    println!(
        "| `retentionc plan --env` (`--jobs 1`) | {:.2} s |",
        best(&one_at_a_time).as_secs_f64()
    );
    println!(
        "| `retentionc plan --env` (default `--jobs {}`) | {:.2} s ({speedup:.1}x faster) |",
        retentionc::fleet::DEFAULT_JOBS,
        best(&fleet).as_secs_f64()
    );

    println!();
    println!("| databases | peak RSS of `plan --env` |");
    println!("|---:|---:|");
    let mut peaks = Vec::new();
    for size in [25, 50, 100].into_iter().filter(|s| *s <= databases) {
        let peak = (0..RUNS)
            .map(|_| measure(project.path(), &vars, &format!("n{size}"), None).1)
            .max()
            .unwrap();
        println!("| {size} | {:.1} MB |", peak as f64 / 1024.0);
        peaks.push(peak);
    }

    drop_fleet(&cluster, &names);
    assert!(
        speedup >= 2.0,
        "plan --env over {databases} databases must be at least 2x faster than sequential plans ({speedup:.2}x)"
    );
    if let (Some(first), Some(last)) = (peaks.first(), peaks.last()) {
        let grew = last.saturating_sub(*first);
        assert!(
            grew * 4 <= *first && grew <= 8 * 1024,
            "peak memory must not grow with the number of databases: {first} kB -> {last} kB"
        );
    }
}

/// A retentionc command in the project, with the database variables set.
fn retentionc(project: &Path, vars: &[(String, String)]) -> Command {
    let mut command = Command::new(retentionc_bin());
    command
        .arg("--config")
        .arg(project.join("retentionc.yaml"))
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Wall time and peak RSS (kB, the kernel's high-water mark, sampled until the process
/// ends) of `plan --env ENVIRONMENT`.
fn measure(
    project: &Path,
    vars: &[(String, String)],
    environment: &str,
    jobs: Option<usize>,
) -> (Duration, u64) {
    let mut command = retentionc(project, vars);
    command.args(["plan", "--env", environment]);
    if let Some(jobs) = jobs {
        command.args(["--jobs", &jobs.to_string()]);
    }
    let t = Instant::now();
    let mut child = command.spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "plan --env {environment} failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (t.elapsed(), peak)
}

/// The template and its copies; returns the copies' names.
fn make_fleet(cluster: &Cluster, project: &Path, databases: usize) -> Vec<String> {
    let policies = project.join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(project.join("retentionc.yaml"), "partman_version: 5\n").unwrap();
    let mut ddl = vec![
        "CREATE SCHEMA partman".to_string(),
        format!(
            "CREATE EXTENSION pg_partman SCHEMA partman VERSION '{}'",
            Partman::V5.version()
        ),
    ];
    for i in 0..TABLES {
        ddl.push(format!(
            "CREATE TABLE public.t{i:02} (id bigint, at timestamptz NOT NULL, level text) PARTITION BY RANGE (at)"
        ));
        let mut policy = format!(
            "table: public.t{i:02}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\nretention:\n  keep: 30 days\n"
        );
        if i % 2 == 0 {
            policy.push_str(
                "deletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n",
            );
        }
        std::fs::write(policies.join(format!("t{i:02}.yaml")), policy).unwrap();
    }
    let template = "fleet_bench_template";
    cluster.admin_psql(
        "postgres",
        &[format!("CREATE DATABASE {}", quote_ident(template))],
    );
    cluster.admin_psql(template, &ddl);
    let loaded = retentionc::policy::load_project(&project.join("retentionc.yaml")).unwrap();
    let out = Command::new(retentionc_bin())
        .arg("--config")
        .arg(project.join("retentionc.yaml"))
        .arg("compile")
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut script = String::from("BEGIN;\n");
    for file in retentionc::render::compile_project(&loaded.config, &loaded.policies) {
        script.push_str(&file.text);
    }
    script.push_str("COMMIT;\nANALYZE;\n");
    let script_path = project.join("all.sql");
    std::fs::write(&script_path, script).unwrap();
    let out = Command::new(common::cluster::pg_bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(cluster.url(template))
        .arg("-f")
        .arg(&script_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = (0..databases)
        .map(|i| format!("fleet_bench_{i:03}"))
        .collect();
    let creates: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(n),
                quote_ident(template)
            )
        })
        .collect();
    cluster.admin_psql("postgres", &creates);
    names
}

/// retentionc.yaml with environments `n25`, `n50` and `n<databases>`, each the first so
/// many databases.
fn write_config(project: &Path, vars: &[(String, String)], databases: usize) {
    let mut config = String::from("partman_version: 5\nenvironments:\n");
    let mut sizes = vec![25, 50, 100, databases];
    sizes.retain(|s| *s <= databases);
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let listed: Vec<&str> = vars.iter().take(size).map(|(n, _)| n.as_str()).collect();
        config.push_str(&format!(
            "  n{size}:\n    url_env: [{}]\n",
            listed.join(", ")
        ));
    }
    std::fs::write(project.join("retentionc.yaml"), config).unwrap();
}

fn drop_fleet(cluster: &Cluster, names: &[String]) {
    let mut drops: Vec<String> = names
        .iter()
        .map(|n| format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(n)))
        .collect();
    drops.push("DROP DATABASE IF EXISTS fleet_bench_template WITH (FORCE)".into());
    cluster.admin_psql("postgres", &drops);
}
