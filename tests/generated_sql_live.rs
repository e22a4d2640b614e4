//! The generated SQL runs on a real PostgreSQL 15 with pg_partman 4.7.2 and 5.2.4, and
//! running it a second time changes nothing: the files under generated/ are safe to run by
//! hand, and again, as their header says.
//!
//! Policies with `schedule` need pg_cron, which the test cluster only has in its one cron
//! database: the main test runs there (one test at a time), so every statement, the
//! `cron.schedule` calls included, really runs. A second test runs the same files in a
//! database without pg_cron and checks that the schedule statement, the last one in each
//! file, is the only one that fails.

mod common;

use std::path::{Path, PathBuf};

use common::cluster::{Cluster, Partman, TestDb, pg_bin};
use retentionc::config::load_config;
use retentionc::model::{Config, PartmanMajor};
use retentionc::policy::load_policies;
use retentionc::render::{BOOTSTRAP_FILE, compile_project};

/// The tables the example policies (policies/) and the edge cases (tests/fixtures/good/)
/// are about, with the columns their policies name.
const TABLES: &str = "
CREATE TABLE public.test_table1 (mtime timestamptz NOT NULL) PARTITION BY RANGE (mtime);
CREATE TABLE public.events (id bigint, created_at timestamptz NOT NULL, payload jsonb)
    PARTITION BY RANGE (created_at);
CREATE TABLE public.app_logs (id bigserial, level text, path text, status integer,
    logged_at timestamptz NOT NULL) PARTITION BY RANGE (logged_at);
CREATE TABLE public.user_sessions (id bigserial PRIMARY KEY, revoked boolean NOT NULL DEFAULT false,
    remember_me boolean NOT NULL DEFAULT false, last_seen_at timestamptz NOT NULL);
CREATE TABLE public.metrics (recorded_at bigint NOT NULL, value double precision)
    PARTITION BY RANGE (recorded_at);
CREATE SCHEMA audit;
CREATE TABLE audit.changes (id bigint, changed_at timestamptz NOT NULL, note text)
    PARTITION BY RANGE (changed_at);
CREATE TABLE public.notes (id bigint, pinned boolean, updated_at timestamptz NOT NULL);
";

const MANAGED: &str = "('public.test_table1', 'public.events', 'public.app_logs', 'public.user_sessions', \
                       'public.metrics', 'audit.changes', 'public.notes')";

fn major(partman: Partman) -> PartmanMajor {
    match partman {
        Partman::V4 => PartmanMajor::V4,
        Partman::V5 => PartmanMajor::V5,
    }
}

/// Compiles the example policies and the good fixtures for `partman` into `out`;
/// returns the files to run, bootstrap first.
fn compile_into(out: &Path, partman: Partman) -> Vec<PathBuf> {
    let mut repo = load_config(Path::new("retentionc.yaml")).unwrap();
    repo.partman_version = major(partman);
    let mut fixtures: Config = repo.clone();
    fixtures.root = PathBuf::from("tests/fixtures");
    fixtures.policies_dir = PathBuf::from("good");
    let mut paths = Vec::new();
    for config in [&repo, &fixtures] {
        let policies = load_policies(config).unwrap_or_else(|e| panic!("{e}"));
        for file in compile_project(config, &policies) {
            let path = out.join(&file.file_name);
            if file.file_name == BOOTSTRAP_FILE && paths.contains(&path) {
                continue;
            }
            std::fs::write(&path, &file.text).unwrap();
            paths.push(path);
        }
    }
    paths
}

/// What the generated SQL leaves in the catalog, in two forms: `exact` (every relation by
/// name, job ids, full procedure text) for comparing two runs, and `stable` (no partition
/// names, which depend on today's date) for the snapshot.
struct CatalogState {
    exact: String,
    stable: String,
}

fn catalog_state(db: &TestDb) -> CatalogState {
    let part_config = db.psql(&[
        "-A",
        "-c",
        &format!(
            "SELECT parent_table, control, partition_interval, partition_type, premake, retention,
                retention_schema, retention_keep_table, retention_keep_index,
                infinite_time_partitions, epoch, automatic_maintenance
           FROM partman.part_config WHERE parent_table IN {MANAGED} ORDER BY parent_table"
        ),
    ]);
    let routines = db.psql(&[
        "-A",
        "-c",
        "SELECT p.proname, p.prokind, pg_get_function_identity_arguments(p.oid) AS arguments,
                p.prosecdef, p.proconfig
           FROM pg_proc p WHERE p.pronamespace = 'retention'::regnamespace ORDER BY 1, 3",
    ]);
    let has_cron = db.scalar("SELECT to_regclass('cron.job') IS NOT NULL") == "t";
    let jobs = if has_cron {
        db.psql(&["-A", "-c",
            "SELECT jobid, jobname, schedule, command, database, username, active FROM cron.job ORDER BY jobname",
        ])
    } else {
        "(no pg_cron)\n".to_string()
    };
    let schemas = "('public', 'retention', 'archive', 'audit', 'audit_archive')";
    let relations = db.psql(&[
        "-A",
        "-c",
        &format!(
            "SELECT n.nspname, c.relname, c.relkind, c.relispartition
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN {schemas} ORDER BY 1, 2"
        ),
    ]);
    // Partitions are named after the time they cover: the snapshot shows each partition
    // set as its parent with the number of default partitions instead.
    let stable_relations = db.psql(&["-A", "-c", &format!(
        "SELECT n.nspname, c.relname, c.relkind,
                (SELECT count(*) FROM pg_inherits i JOIN pg_class d ON d.oid = i.inhrelid
                  WHERE i.inhparent = c.oid AND pg_get_expr(d.relpartbound, d.oid) = 'DEFAULT') AS default_partitions,
                (SELECT count(*) > 0 FROM pg_inherits i WHERE i.inhparent = c.oid) AS has_partitions
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN {schemas} AND NOT c.relispartition
            AND NOT (c.relkind IN ('i', 'I') AND EXISTS (
                SELECT 1 FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
                 WHERE x.indexrelid = c.oid AND t.relispartition))
          ORDER BY 1, 2"
    )]);
    // The text itself is compared with the generated files (see
    // assert_routines_are_verbatim_in_files), not snapshotted a second time.
    let prosrc = db.psql(&["-A", "-c",
        "SELECT p.proname, p.prosrc FROM pg_proc p WHERE p.pronamespace = 'retention'::regnamespace ORDER BY 1",
    ]);
    let stable = format!(
        "-- part_config\n{part_config}\n-- routines in schema retention\n{routines}\n-- cron.job\n{jobs}\n-- relations (partitions summarised)\n{stable_relations}"
    );
    let exact = format!("{stable}\n-- every relation\n{relations}\n-- procedure text\n{prosrc}");
    CatalogState { exact, stable }
}

/// Every routine retentionc made is, byte for byte, in the reviewed files.
fn assert_routines_are_verbatim_in_files(db: &TestDb, files: &[PathBuf]) {
    let all_text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let client_sql = "SELECT proname || E'\\x1f' || prosrc FROM pg_proc \
                      WHERE pronamespace = 'retention'::regnamespace ORDER BY proname";
    let rows = db.psql(&["-At", "-R", "\x1e", "-c", client_sql]);
    // psql ends its output with a newline after the last record separator-less record.
    let rows = rows.strip_suffix('\n').unwrap_or(&rows);
    let mut count = 0;
    for row in rows.split('\x1e') {
        let (name, body) = row.split_once('\x1f').unwrap();
        assert!(
            all_text.contains(body),
            "the body of retention.{name} is not in the generated files"
        );
        count += 1;
    }
    assert_eq!(
        count, 10,
        "maintain, maintain_tables, lock_holders, delete_in_batches, cron_jobs, read_facts and four prune procedures"
    );
}

/// pg_partman's maintenance lock, held by a session of its own while this lives: the
/// example's pg_cron job (`*/5 * * * *`) may fire between the two runs, and then finds
/// maintenance busy (reported skipped) instead of making or dropping partitions, which
/// would change the catalog the test compares.
struct MaintenanceLockHeld {
    psql: std::process::Child,
    url: String,
}

impl MaintenanceLockHeld {
    const KEY: &str = "pg_catalog.hashtext('pg_partman run_maintenance')";
    const APPLICATION: &str = "retentionc-test-maintenance-lock";

    fn hold(db: &TestDb) -> Self {
        let child = std::process::Command::new(pg_bin("psql"))
            .env("PGAPPNAME", Self::APPLICATION)
            .args(["-X", "-q", "-d", &db.url, "-c"])
            .arg(format!(
                "SELECT pg_catalog.pg_advisory_lock({}); SELECT pg_catalog.pg_sleep(3600)",
                Self::KEY
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql starts");
        let held = Self {
            psql: child,
            url: db.url.clone(),
        };
        // Held once another session cannot take it (taken by mistake: given back at once).
        let probe = format!(
            "SELECT CASE WHEN pg_catalog.pg_try_advisory_lock({key}) \
                    THEN NOT pg_catalog.pg_advisory_unlock({key}) ELSE true END",
            key = Self::KEY
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while db.scalar(&probe) != "t" {
            assert!(
                std::time::Instant::now() < deadline,
                "the maintenance lock was not held within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        held
    }
}

impl Drop for MaintenanceLockHeld {
    fn drop(&mut self) {
        // The server would notice the client gone only when pg_sleep ends: end the session.
        let _ = std::process::Command::new(pg_bin("psql"))
            .args(["-X", "-q", "-d", &self.url, "-c"])
            .arg(format!(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                  WHERE application_name = '{}'",
                Self::APPLICATION
            ))
            .stdin(std::process::Stdio::null())
            .output();
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

fn run_files(db: &TestDb, files: &[PathBuf]) {
    for file in files {
        db.psql(&["-q", "-f", file.to_str().unwrap()]);
    }
}

#[test]
fn generated_sql_runs_on_pg_partman_4_and_5_and_running_it_again_changes_nothing() {
    let cluster = Cluster::shared();
    for partman in Partman::BOTH {
        let started = std::time::Instant::now();
        let out = tempfile::tempdir().unwrap();
        let files = compile_into(out.path(), partman);
        let db = cluster.cron_database(partman);
        db.psql(&["-q", "-c", TABLES]);
        let _no_maintenance_meanwhile = MaintenanceLockHeld::hold(&db);

        run_files(&db, &files);
        let first = catalog_state(&db);
        assert_routines_are_verbatim_in_files(&db, &files);
        run_files(&db, &files);
        let second = catalog_state(&db);
        assert!(
            first.exact == second.exact,
            "{partman}: a second run changed the catalog\n{}",
            similar::TextDiff::from_lines(&first.exact, &second.exact).unified_diff()
        );

        // What the settings came out as, per version.
        insta::assert_snapshot!(format!("catalog_partman_{}", partman.major()), first.stable);
        let v = partman.major();
        let expected_type = if v == 4 { "native" } else { "range" };
        assert!(
            first.stable.contains(&format!(
                "public.events|created_at|1 day|{expected_type}|7|90 days|archive|t|f|t|none|"
            )),
            "{partman}:\n{}",
            first.stable
        );
        eprintln!(
            "{partman}: generated SQL applied twice in {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn without_pg_cron_only_the_schedule_statements_fail() {
    let cluster = Cluster::shared();
    let partman = Partman::V5;
    let out = tempfile::tempdir().unwrap();
    let files = compile_into(out.path(), partman);
    let db = cluster.database(partman);
    db.psql(&["-q", "-c", TABLES]);
    let mut failed = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let output = db.psql_output(&["-q", "-f", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        // psql names the last line of the statement after the banner
        // `-- N. pg_cron schedule [schedule]` (a DO block ending in `$retentionc$;`).
        let lines: Vec<&str> = text.lines().collect();
        let schedule_line = lines
            .iter()
            .position(|l| l.ends_with(". pg_cron schedule [schedule]"))
            .and_then(|banner| {
                lines[banner..]
                    .iter()
                    .position(|l| *l == "$retentionc$;")
                    .map(|end| banner + end + 1)
            });
        match schedule_line {
            None => assert!(output.status.success(), "{}: {stderr}", file.display()),
            Some(line) => {
                assert!(
                    !output.status.success(),
                    "{}: ran without pg_cron",
                    file.display()
                );
                let expected = format!("psql:{}:{line}: ERROR:  the schedule of ", file.display());
                assert!(
                    stderr.contains(&expected),
                    "{}: expected {expected:?} in\n{stderr}",
                    file.display()
                );
                assert_eq!(stderr.matches("ERROR").count(), 1, "{stderr}");
                assert!(
                    stderr.contains("needs pg_cron, which is not installed"),
                    "{stderr}"
                );
                // The schedule is the file's last statement: everything before it ran.
                assert_eq!(
                    text[text.find(". pg_cron schedule [schedule]").unwrap()..]
                        .matches("\n-- ")
                        .count(),
                    0,
                    "{}: schedule is not last",
                    file.display()
                );
                failed.push(file.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    failed.sort();
    assert_eq!(
        failed,
        [
            "audit.changes.sql",
            "public.app_logs.sql",
            "public.events.sql",
            "public.user_sessions.sql"
        ]
    );
    // And what ran before the schedule is all there.
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM partman.part_config WHERE parent_table IN {MANAGED}"
        )),
        "5"
    );
    assert_eq!(
        db.scalar("SELECT string_agg(proname, ' ' ORDER BY proname) FROM pg_proc WHERE pronamespace = 'retention'::regnamespace"),
        "cron_jobs delete_in_batches lock_holders maintain maintain_tables prune_app_logs prune_changes prune_notes prune_user_sessions read_facts"
    );
}
