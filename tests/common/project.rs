//! One test-project builder for every integration test: a temporary project folder
//! (retentionc.yaml, policies/, generated/), optionally bound to a test database, and the
//! real binary run against it.
//!
//! ```ignore
//! let db = Cluster::shared().database(Partman::V5);
//! let project = TestProject::for_db(&db)
//!     .config("lock_timeout: 2s")
//!     .policy("logs", LOGS_YAML)
//!     .compiled();
//! let out = project.run(&["apply", "--auto-approve"]);
//! assert!(out.status.success(), "{}", text(&out));
//! ```
//!
//! Commands run with the libpq variables (`PG*`) and `DATABASE_URL` of the test process
//! removed, `NO_COLOR=1`, stdin closed; `DATABASE_URL` is the bound database's URL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::cluster::{TestDb, retentionc_bin};

/// A temporary retentionc project.
pub struct TestProject {
    dir: tempfile::TempDir,
    /// The database commands run against (`DATABASE_URL`), if bound.
    url: Option<String>,
    /// Lines of retentionc.yaml, written on every change.
    config_lines: Vec<String>,
}

impl TestProject {
    /// An empty project: `retentionc.yaml` with no keys, an empty `policies/`.
    pub fn new() -> TestProject {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        let project = TestProject {
            dir,
            url: None,
            config_lines: Vec::new(),
        };
        project.write_config();
        project
    }

    /// A project for `db`: `partman_version` is the database's pg_partman major, and
    /// commands get `DATABASE_URL` of that database.
    pub fn for_db(db: &TestDb) -> TestProject {
        let mut project = TestProject::new();
        project.url = Some(db.url.clone());
        project
            .config_lines
            .push(format!("partman_version: {}", db.partman.major()));
        project.write_config();
        project
    }

    /// A copy of the repository's own project: its retentionc.yaml and policies/ (not
    /// generated/).
    pub fn from_repository() -> TestProject {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut project = TestProject::new();
        let config = std::fs::read_to_string(repository.join("retentionc.yaml")).unwrap();
        project.config_lines = config.lines().map(String::from).collect();
        project.write_config();
        for entry in std::fs::read_dir(repository.join("policies")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            project.write_policy(name, &std::fs::read_to_string(&path).unwrap());
        }
        project
    }

    /// Adds lines to retentionc.yaml (`"lock_timeout: 2s"`, several lines at once too).
    pub fn config(mut self, lines: &str) -> TestProject {
        self.config_lines.extend(
            lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
        self.write_config();
        self
    }

    /// Adds `lock_timeout: VALUE` to retentionc.yaml.
    pub fn lock_timeout(self, value: &str) -> TestProject {
        self.config(&format!("lock_timeout: {value}"))
    }

    /// Writes `policies/<name>.yaml` (`name` may end in `.yaml` or `.yml` already).
    pub fn policy(self, name: &str, yaml: &str) -> TestProject {
        self.write_policy(name, yaml);
        self
    }

    /// Runs `retentionc compile` and panics unless it succeeds.
    pub fn compiled(self) -> TestProject {
        self.compile();
        self
    }

    /// Runs generated/ with psql on `db` (see [`TestProject::install_with_psql`]).
    pub fn installed_with_psql(self, db: &TestDb) -> TestProject {
        self.install_with_psql(db);
        self
    }

    /// Binds commands to another URL (another role, a proxy, ...).
    pub fn with_url(mut self, url: &str) -> TestProject {
        self.url = Some(url.to_string());
        self
    }

    fn write_config(&self) {
        let mut text = self.config_lines.join("\n");
        text.push('\n');
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Writes (or overwrites) `policies/<name>.yaml`; generated/ is left as it is.
    pub fn write_policy(&self, name: &str, yaml: &str) {
        std::fs::write(self.policy_path(name), yaml).unwrap();
    }

    /// Writes `policies/<name>.yaml` and compiles: an edit as reviewed and committed.
    pub fn write_policy_compiled(&self, name: &str, yaml: &str) {
        self.write_policy(name, yaml);
        self.compile();
    }

    /// Removes `policies/<name>.yaml`.
    pub fn remove_policy(&self, name: &str) {
        std::fs::remove_file(self.policy_path(name)).unwrap();
    }

    pub fn policy_path(&self, name: &str) -> PathBuf {
        let file = if name.ends_with(".yaml") || name.ends_with(".yml") {
            name.to_string()
        } else {
            format!("{name}.yaml")
        };
        self.dir.path().join("policies").join(file)
    }

    /// `retentionc compile`, through the binary; panics with its output unless it succeeds.
    pub fn compile(&self) {
        let out = self.run(&["compile"]);
        assert!(out.status.success(), "compile failed:\n{}", text(&out));
    }

    /// Runs every file under generated/ with psql on `db`, retentionc's own file first
    /// (what a user who does not use `apply` would do).
    pub fn install_with_psql(&self, db: &TestDb) {
        let dir = self.generated_dir();
        db.psql_file(dir.join("_retentionc.sql"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "_retentionc.sql"))
            .collect();
        files.sort();
        for file in files {
            db.psql_file(file);
        }
    }

    /// The project as the library loads it (panics on policy errors).
    pub fn load(&self) -> retentionc::model::Project {
        retentionc::policy::load_project(&self.config_path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `retentionc --config <project> ARGS`, as a command still to be run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare_command();
        cmd.arg("--config").arg(self.config_path()).args(args);
        cmd
    }

    /// `retentionc ARGS` without `--config`, run in the project folder as a user working
    /// there would: the binary finds ./retentionc.yaml, and messages name paths relative
    /// to the folder.
    pub fn command_in_root(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare_command();
        cmd.args(args).current_dir(self.root());
        cmd
    }

    /// The binary with the environment described in the module's documentation.
    fn bare_command(&self) -> Command {
        let mut cmd = Command::new(retentionc_bin());
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|k| k.starts_with("PG") || k == "DATABASE_URL")
            {
                cmd.env_remove(key);
            }
        }
        if let Some(url) = &self.url {
            cmd.env("DATABASE_URL", url);
        }
        cmd.env("NO_COLOR", "1").stdin(Stdio::null());
        cmd
    }

    /// Runs `retentionc --config <project> ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `retentionc ARGS` in the project folder to the end (see
    /// [`TestProject::command_in_root`]).
    pub fn run_in_root(&self, args: &[&str]) -> Output {
        self.command_in_root(args).output().unwrap()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("retentionc.yaml")
    }

    pub fn generated_dir(&self) -> PathBuf {
        self.dir.path().join("generated")
    }

    /// `generated/<name>`.
    pub fn generated(&self, name: &str) -> PathBuf {
        self.generated_dir().join(name)
    }

    /// The URL commands run against, if bound.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

impl Default for TestProject {
    fn default() -> Self {
        TestProject::new()
    }
}

/// Runs a blocking closure (the binary, psql) on a multi-threaded tokio runtime without
/// stalling its other tasks (writers, lock holders).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Output with every run of digits read as one number and runs of spaces as one: what
/// stays the same from run to run (times, counts and column widths vary).
pub fn shape(text: &str) -> String {
    let mut out = String::new();
    let mut last = ' ';
    for c in text.chars() {
        let c = if c.is_ascii_digit() { '9' } else { c };
        if (c == '9' && last == '9') || (c == ' ' && last == ' ') {
            continue;
        }
        out.push(c);
        last = c;
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits for `child` to end, at most `limit`: its output and how long it took. Kills it (by
/// its pid) and fails the test beyond that.
pub fn wait_at_most(
    child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> (Output, std::time::Duration) {
    let started = std::time::Instant::now();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => (output.unwrap(), started.elapsed()),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let output = rx.recv().unwrap().unwrap();
            panic!(
                "{what} was still running after {limit:?}:\n{}",
                text(&output)
            );
        }
    }
}
