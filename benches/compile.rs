//! `cargo bench --bench compile`: `retentionc compile` and `compile --check` of 1,000 and
//! 10,000 policies, their wall time, CPU time and peak memory. No database.
//!
//! The policies are written into a temporary project, one file each: daily partitions,
//! retention, a delete rule with an `older_than`, and (every other one) a pg_cron
//! schedule. Per size (`BENCH_SIZES`, default 1000,10000), through the release binary,
//! best of `BENCH_ROUNDS` (default 3) of: `compile` into a new, empty generated folder
//! (writes every file), `compile --check` of the result, and `compile` again (nothing to
//! write). CPU time (user and system, all threads) and peak memory (`ru_maxrss`, the
//! kernel's high-water mark of the resident set) are the child's, from `wait4`; CPU time
//! says what a run costs whatever else the machine is doing.
//!
//! Targets (asserted once every figure is printed): at 10,000 policies each of the three
//! takes under 1 s; peak memory grows by at most 16 kB per policy between the smallest and
//! the largest size (a policy's model, not the text of every file held at once).
//!
//! `cargo test --benches` and `cargo clippy --all-targets` build it; it only measures when
//! run as `cargo bench --bench compile` (or with `RETENTIONC_BENCH=1`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::retentionc_bin;

const TIME_TARGET: Duration = Duration::from_secs(1);
const TIME_TARGET_POLICIES: usize = 10_000;
const KB_PER_POLICY_TARGET: f64 = 16.0;

/// One run of the binary: wall time and peak resident memory (kB).
#[derive(Clone, Copy)]
struct Measured {
    wall: Duration,
    /// User and system time on all its threads: what the run costs whatever else the
    /// machine is doing.
    cpu: Duration,
    peak_kb: u64,
}

fn main() {
    let asked =
        std::env::args().any(|a| a == "--bench") || std::env::var_os("RETENTIONC_BENCH").is_some();
    if !asked {
        eprintln!(
            "compile benchmark skipped: run `cargo bench --bench compile` (or set RETENTIONC_BENCH=1)"
        );
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{cores} cores (load average {}), best of {rounds} rounds by wall time, with that run's CPU time; peak RSS: the largest of the rounds",
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "| policies | compile (empty generated/) | compile --check | compile (up to date) | peak RSS: compile / check |"
    );
    println!("|---:|---:|---:|---:|---:|");
    // Every project stays until the end: removing thousands of files just before a run
    // makes the file system's next file creations slower (ext4 skips recently freed
    // inodes), which would be measured as compile's time.
    let mut projects = Vec::new();
    let mut results = Vec::new();
    for &n in &sizes {
        let project = tempfile::tempdir().unwrap();
        write_policies(project.path(), n);
        let (mut compile, mut check, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            // A new, empty generated/ folder for each round.
            std::fs::write(
                project.path().join("retentionc.yaml"),
                format!("partman_version: 5\ngenerated: generated-{round}\n"),
            )
            .unwrap();
            compile.push(measure(project.path(), &["compile"]));
            check.push(measure(project.path(), &["compile", "--check"]));
            again.push(measure(project.path(), &["compile"]));
        }
        let target = if n == TIME_TARGET_POLICIES {
            format!(", target < {} ms", TIME_TARGET.as_millis())
        } else {
            String::new()
        };
        let (compile, check, again) = (best(&compile), best(&check), best(&again));
        println!(
            "| {n} | {}{target} | {}{target} | {}{target} | {:.1} MB / {:.1} MB |",
            shown(compile),
            shown(check),
            shown(again),
            compile.peak_kb as f64 / 1024.0,
            check.peak_kb as f64 / 1024.0,
        );
        results.push((
            n,
            compile.wall.max(check.wall).max(again.wall),
            compile.peak_kb.max(check.peak_kb),
        ));
        projects.push(project);
    }
    let mut missed = Vec::new();
    if let (Some(small), Some(large)) = (results.first(), results.last())
        && large.0 > small.0
    {
        let per_policy = (large.2 as f64 - small.2 as f64) / (large.0 - small.0) as f64;
        println!(
            "peak memory per policy: {per_policy:.1} kB (from {} to {} policies; target at most {KB_PER_POLICY_TARGET} kB)",
            small.0, large.0,
        );
        if per_policy > KB_PER_POLICY_TARGET {
            missed.push(format!(
                "peak memory grows by {per_policy:.1} kB per policy (target at most {KB_PER_POLICY_TARGET} kB)"
            ));
        }
    }
    if let Some(&(n, slowest, _)) = results.iter().find(|r| r.0 == TIME_TARGET_POLICIES) {
        println!(
            "{n} policies: the slowest of compile, check and compile again took {} ms (target under {} ms)",
            slowest.as_millis(),
            TIME_TARGET.as_millis()
        );
        if slowest >= TIME_TARGET {
            missed.push(format!(
                "{n} policies: the slowest of compile, check and compile again took {} ms (target under {} ms)",
                slowest.as_millis(),
                TIME_TARGET.as_millis()
            ));
        }
    }
    assert!(missed.is_empty(), "targets missed: {}", missed.join("; "));
}

/// The fastest of the runs, with the largest peak memory of them all.
fn best(runs: &[Measured]) -> Measured {
    let fastest = runs.iter().min_by_key(|m| m.wall).unwrap();
    Measured {
        peak_kb: runs.iter().map(|m| m.peak_kb).max().unwrap(),
        ..*fastest
    }
}

fn shown(run: Measured) -> String {
    format!(
        "{} ms ({} ms CPU)",
        run.wall.as_millis(),
        run.cpu.as_millis()
    )
}

/// A project of `n` policies, one file each.
fn write_policies(project: &Path, n: usize) {
    let policies = project.join("policies");
    std::fs::create_dir(&policies).unwrap();
    for i in 0..n {
        let mut policy = format!(
            "table: public.t{i:05}\n\
             partitioning:\n  column: at\n  interval: 1 day\n  premake: 4\n\
             retention:\n  keep: 30 days\n\
             deletes:\n  - name: debug_rows\n    where: \"level = 'debug' AND size > 10\"\n    older_than: 1 day\n"
        );
        if i % 2 == 0 {
            policy.push_str("schedule: \"*/5 * * * *\"\n");
        }
        std::fs::write(policies.join(format!("t{i:05}.yaml")), policy).unwrap();
    }
}

/// Runs `retentionc --config <project>/retentionc.yaml ARGS` to its end.
// The child is reaped by `wait4`, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn measure(project: &Path, args: &[&str]) -> Measured {
    let started = Instant::now();
    // Reaped by wait4 below, which also gives the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(retentionc_bin())
        .arg("--config")
        .arg(project.join("retentionc.yaml"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for this program's own child, which nothing else waits for, writing
    // into locals that outlive the call.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "retentionc {args:?} failed (wait status {status})"
    );
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_kb: usage.ru_maxrss as u64,
    }
}
