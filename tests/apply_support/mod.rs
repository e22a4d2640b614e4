//! Shared by the apply tests: a temporary project, plans built from its compiled files, and
//! writers that insert throughout a test and account for every row.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use retentionc::cli::DbArgs;
use retentionc::model::Project;

use crate::common::cluster::{Partman, TestDb, retentionc_bin};

/// A project folder: retentionc.yaml, policies/, generated/ (compiled by `write_policy`).
pub struct TestProject {
    pub dir: tempfile::TempDir,
    pub partman: Partman,
    pub lock_timeout: &'static str,
}

impl TestProject {
    pub fn new(partman: Partman, lock_timeout: &'static str) -> TestProject {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        let project = TestProject {
            dir,
            partman,
            lock_timeout,
        };
        std::fs::write(
            project.config_path(),
            format!(
                "partman_version: {}\nlock_timeout: {lock_timeout}\n",
                partman.major()
            ),
        )
        .unwrap();
        project
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("retentionc.yaml")
    }

    /// Writes policies/<name>.yaml and compiles the project (generated/ as reviewed).
    pub fn write_policy(&self, name: &str, yaml: &str) {
        std::fs::write(
            self.dir
                .path()
                .join("policies")
                .join(format!("{name}.yaml")),
            yaml,
        )
        .unwrap();
        self.compile();
    }

    /// Writes policies/<name>.yaml and leaves generated/ as it was (stale).
    pub fn write_policy_uncompiled(&self, name: &str, yaml: &str) {
        std::fs::write(
            self.dir
                .path()
                .join("policies")
                .join(format!("{name}.yaml")),
            yaml,
        )
        .unwrap();
    }

    pub fn remove_policy(&self, name: &str) {
        std::fs::remove_file(
            self.dir
                .path()
                .join("policies")
                .join(format!("{name}.yaml")),
        )
        .unwrap();
        self.compile();
    }

    pub fn compile(&self) {
        let project = self.load();
        retentionc::compile::compile(&project, &[], &mut Vec::new()).unwrap();
    }

    pub fn load(&self) -> Project {
        retentionc::policy::load_project(&self.config_path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the binary with `--config` and `args`, `DATABASE_URL` set, stdin closed.
    pub fn run(&self, db: &TestDb, args: &[&str]) -> Output {
        self.command(db, args).output().unwrap()
    }

    pub fn command(&self, db: &TestDb, args: &[&str]) -> Command {
        let mut cmd = Command::new(retentionc_bin());
        cmd.arg("--config").arg(self.config_path()).args(args);
        cmd.env("DATABASE_URL", &db.url)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn db_args(db: &TestDb) -> DbArgs {
    DbArgs::url(db.url.clone())
}

/// The test table: hourly range partitions on `mtime`.
pub fn create_table(db: &TestDb, table: &str) {
    db.psql(&["-c", &format!(
        "CREATE TABLE {table} (id bigserial, mtime timestamptz NOT NULL DEFAULT now(), level text NOT NULL DEFAULT 'info', payload text) \
         PARTITION BY RANGE (mtime)"
    )]);
}

pub fn policy_yaml(table: &str, keep: &str, extra: &str) -> String {
    format!(
        "table: {table}\npartitioning:\n  column: mtime\n  interval: 1 hour\n  premake: 4\nretention:\n  keep: {keep}\n{extra}"
    )
}

/// Inserts into `table` every few milliseconds on its own connection until stopped,
/// timing every insert.
pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<WriterReport>,
}

#[derive(Debug)]
pub struct WriterReport {
    pub attempted: u64,
    pub succeeded: u64,
    pub errors: Vec<String>,
    pub max_latency: Duration,
}

impl Writer {
    pub async fn start(db: &TestDb, table: &str) -> Writer {
        let client = db.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let sql = format!("INSERT INTO {table} (level, payload) VALUES ($1, $2)");
        let flag = Arc::clone(&stop);
        let handle = tokio::spawn(async move {
            let mut report = WriterReport {
                attempted: 0,
                succeeded: 0,
                errors: Vec::new(),
                max_latency: Duration::ZERO,
            };
            while !flag.load(Ordering::Relaxed) {
                report.attempted += 1;
                let level = if report.attempted.is_multiple_of(4) {
                    "debug"
                } else {
                    "info"
                };
                let started = Instant::now();
                match client
                    .execute(&sql, &[&level, &format!("row {}", report.attempted)])
                    .await
                {
                    Ok(_) => report.succeeded += 1,
                    Err(e) => report.errors.push(format!("{e:?}")),
                }
                report.max_latency = report.max_latency.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            report
        });
        // Let it get going before the test acts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Writer { stop, handle }
    }

    /// Stops it and checks that every insert succeeded and every row is in the table.
    pub async fn finish(self, db: &TestDb, table: &str) -> WriterReport {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.handle.await.unwrap();
        assert!(report.errors.is_empty(), "inserts failed: {report:?}");
        assert_eq!(report.attempted, report.succeeded, "{report:?}");
        assert!(report.succeeded > 0, "{report:?}");
        let rows: u64 = db
            .scalar(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap();
        assert_eq!(rows, report.succeeded, "rows lost: {report:?}");
        report
    }
}

pub fn part_config(db: &TestDb, table: &str) -> String {
    db.scalar(&format!(
        "SELECT concat_ws(' | ', retention, retention_keep_table, retention_schema, premake, infinite_time_partitions) \
           FROM partman.part_config WHERE parent_table = '{table}'"
    ))
}

pub fn history_count(db: &TestDb) -> i64 {
    db.scalar("SELECT CASE WHEN to_regclass('retention.apply_history') IS NULL THEN 0 ELSE (SELECT count(*) FROM retention.apply_history) END")
        .parse()
        .unwrap()
}

pub fn project_root(project: &TestProject) -> &Path {
    project.dir.path()
}
