//! Shared by the run/status/schedule tests: a throwaway retentionc project compiled for
//! the test database's pg_partman major and put in place with psql (not `apply`), and the
//! real binary run against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::cluster::{TestDb, retentionc_bin};

/// A project folder: retentionc.yaml + policies/ + generated/.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Project {
    /// Writes the project for `db` (partman_version = its major, `lock_timeout` given),
    /// compiles it and runs the generated files with psql. `policies` are (file name, YAML).
    /// The tables must exist already.
    pub fn install(db: &TestDb, policies: &[(&str, &str)]) -> Project {
        Project::install_with(db, policies, "lock_timeout: 2s\n")
    }

    pub fn install_with(db: &TestDb, policies: &[(&str, &str)], extra_config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("retentionc.yaml"),
            format!("partman_version: {}\n{extra_config}", db.partman.major()),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for (name, yaml) in policies {
            std::fs::write(dir.path().join("policies").join(name), yaml).unwrap();
        }
        let project = Project {
            dir,
            url: db.url.clone(),
        };
        let out = project.retentionc(&["compile"]);
        assert!(out.status.success(), "compile failed:\n{}", text(&out));
        db.psql_file(project.generated("_retentionc.sql"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(project.dir.path().join("generated"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != "_retentionc.sql")
            .collect();
        files.sort();
        for file in files {
            db.psql_file(file);
        }
        project
    }

    pub fn generated(&self, name: &str) -> PathBuf {
        self.dir.path().join("generated").join(name)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("retentionc.yaml")
    }

    /// `retentionc --config <project> ARGS` (run and status get `--database-url` too).
    pub fn retentionc(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(retentionc_bin());
        cmd.arg("--config").arg(self.config()).args(args);
        if matches!(args.first(), Some(&"run") | Some(&"status")) {
            cmd.args(["--database-url", &self.url]);
        }
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|k| k.starts_with("PG") || k == "DATABASE_URL")
            {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Number of children of `table` in pg_inherits.
pub fn child_count(db: &TestDb, table: &str) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = '{table}'::regclass"
    ))
    .parse()
    .unwrap()
}

/// Rows inserted in the background until stopped: `INSERT_SQL` every few milliseconds.
pub struct Inserter {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Inserter {
    /// Starts inserting with `sql` (one statement, no parameters) on a new connection.
    pub async fn start(db: &TestDb, sql: &str) -> Inserter {
        let client = db.client().await;
        let sql = sql.to_string();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            let (mut count, mut errors) = (0u64, Vec::new());
            while !*stopped.borrow_and_update() {
                match client.execute(sql.as_str(), &[]).await {
                    Ok(n) => count += n,
                    Err(e) => errors.push(format!("{e:?}")),
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
                    _ = stopped.changed() => {}
                }
            }
            (count, errors)
        });
        Inserter { stop, handle }
    }

    /// Stops; returns rows inserted, and panics if any insert failed.
    pub async fn finish(self) -> u64 {
        let _ = self.stop.send(true);
        let (count, errors) = self.handle.await.unwrap();
        assert!(errors.is_empty(), "concurrent inserts failed: {errors:?}");
        assert!(count > 0, "the concurrent inserter inserted nothing");
        count
    }
}

/// Runs a blocking closure (the binary) without stalling the runtime's other tasks.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// `YYYY-MM-DD HH:MM:SS+00` of the database's now() shifted by `seconds`.
pub fn db_time(db: &TestDb, seconds: i64) -> String {
    db.scalar(&format!(
        "SELECT to_char(now() + make_interval(secs => {seconds}), 'YYYY-MM-DD HH24:MI:SS')"
    ))
}
