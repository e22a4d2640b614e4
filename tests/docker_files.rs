//! What can be checked of the Docker files without a Docker engine: the init SQL runs on a
//! real PostgreSQL 15 and leaves the extensions and the demo table; the entrypoint wrapper
//! passes pg_cron's settings; the compose file and the Dockerfiles say what the README
//! promises; and the demo's `--database-url` mode (what `docker compose run --rm demo`
//! runs) passes against a database prepared by the init SQL.
//!
//! The compose file and the example workflows are also validated against their official
//! schemas by `check-jsonschema` (see README.md, "Checking the Docker and CI files").

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cluster::{Cluster, Partman, retentionc_bin};
use serde_json::Value;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn init_sql_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo_path("docker/postgres/initdb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sql"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "docker/postgres/initdb holds no .sql file"
    );
    files
}

/// The cron database with nothing of ours in it: what the image's fresh POSTGRES_DB looks like
/// (where pg_cron's cron.database_name points, as retentionc-entrypoint.sh arranges).
fn fresh_cron_database(
    cluster: &std::sync::Arc<Cluster>,
    partman: Partman,
) -> common::cluster::CronDb {
    let db = cluster.cron_database(partman);
    db.psql(&[
        "-c",
        "DROP EXTENSION IF EXISTS pg_cron CASCADE",
        "-c",
        "DROP EXTENSION IF EXISTS pg_partman CASCADE",
        "-c",
        "DROP SCHEMA IF EXISTS partman CASCADE",
    ]);
    db
}

#[test]
fn init_sql_creates_the_extensions_and_the_demo_table_and_runs_twice() {
    let cluster = Cluster::shared();
    let db = fresh_cron_database(&cluster, Partman::V5);
    for _ in 0..2 {
        for file in init_sql_files() {
            db.psql(&["-v", "ON_ERROR_STOP=1", "-f", file.to_str().unwrap()]);
        }
    }
    assert_eq!(
        db.scalar(
            "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_partman'"
        ),
        "partman"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'"),
        "1"
    );
    assert_eq!(
        db.scalar(
            "SELECT partstrat::text || ':' || pg_get_partkeydef('public.test_table1'::regclass) \
             FROM pg_partitioned_table WHERE partrelid = 'public.test_table1'::regclass"
        ),
        "r:RANGE (mtime)"
    );
    assert_eq!(
        db.scalar(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum) \
             FROM pg_attribute WHERE attrelid = 'public.test_table1'::regclass AND attnum > 0 AND NOT attisdropped"
        ),
        "id bigint not null, mtime timestamp with time zone not null, payload text"
    );
    // pg_cron works there: a job can be scheduled and removed.
    db.psql(&[
        "-c",
        "SELECT cron.schedule('retentionc-docker-test', '* * * * *', 'SELECT 1')",
    ]);
    db.psql(&["-c", "SELECT cron.unschedule('retentionc-docker-test')"]);
}

#[test]
fn entrypoint_wrapper_preloads_pg_cron_for_postgres_db() {
    let fake = tempfile::tempdir().unwrap();
    let stub = fake.path().join("docker-entrypoint.sh");
    fs::write(
        &stub,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str], db: Option<&str>| -> Vec<String> {
        let mut cmd = Command::new("sh");
        cmd.arg(repo_path("docker/postgres/retentionc-entrypoint.sh"))
            .args(args)
            .env("PATH", &path);
        cmd.env_remove("POSTGRES_DB").env_remove("POSTGRES_USER");
        if let Some(db) = db {
            cmd.env("POSTGRES_DB", db);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let args = run(&["postgres", "-c", "work_mem=64MB"], Some("retentionc"));
    assert_eq!(
        args,
        [
            "postgres",
            "-c",
            "shared_preload_libraries=pg_cron",
            "-c",
            "cron.database_name=retentionc",
            "-c",
            "timezone=UTC",
            "-c",
            "log_timezone=UTC",
            "-c",
            "work_mem=64MB",
        ]
    );
    assert!(run(&["postgres"], None).contains(&"cron.database_name=postgres".to_string()));
    // Flags alone mean the server, as for the official image.
    let flags_only = run(&["-c", "work_mem=64MB"], Some("app"));
    assert_eq!(flags_only[0], "postgres");
    assert!(
        flags_only.contains(&"cron.database_name=app".to_string()),
        "{flags_only:?}"
    );
    // Anything but the server (a shell, psql) passes through untouched.
    assert_eq!(
        run(&["bash", "-c", "true"], Some("x")),
        ["bash", "-c", "true"]
    );
}

#[test]
fn compose_file_wires_postgres_and_the_demo() {
    let compose: Value =
        serde_saphyr::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    let postgres = &compose["services"]["postgres"];
    assert_eq!(postgres["build"]["context"], "docker/postgres");
    let health = postgres["healthcheck"]["test"].to_string();
    assert!(
        health.contains("pg_isready") && health.contains("-h 127.0.0.1"),
        "{health}"
    );
    assert_eq!(postgres["environment"]["POSTGRES_DB"], "retentionc");

    let demo = &compose["services"]["demo"];
    assert_eq!(demo["build"]["context"], ".");
    assert_eq!(demo["build"]["target"], "demo");
    assert_eq!(
        demo["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    let url = demo["environment"]["DATABASE_URL"].as_str().unwrap();
    assert!(url.contains("@postgres:5432/retentionc"), "{url}");
    let dockerfile = demo["build"]["dockerfile"].as_str().unwrap();
    assert!(repo_path(dockerfile).is_file(), "{dockerfile} is missing");
    assert!(repo_path(&format!("{dockerfile}.dockerignore")).is_file());
}

#[test]
fn dockerfiles_install_from_the_postgresql_apt_repository_and_build_multi_stage() {
    let postgres = read("docker/postgres/Dockerfile");
    assert!(postgres.contains("FROM postgres:15-bookworm"), "{postgres}");
    for package in [
        "postgresql-${PG_MAJOR}-partman",
        "postgresql-${PG_MAJOR}-cron",
    ] {
        assert!(postgres.contains(package), "{package} not installed");
    }
    assert!(postgres.contains("COPY initdb/ /docker-entrypoint-initdb.d/"));
    assert!(postgres.contains("HEALTHCHECK"));
    assert!(postgres.contains("rm -rf /var/lib/apt/lists/*"));
    assert!(repo_path("docker/postgres/retentionc-entrypoint.sh").is_file());

    let retentionc = read("docker/retentionc/Dockerfile");
    let stages: Vec<&str> = retentionc
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 3, "{stages:?}");
    assert!(stages[0].starts_with("FROM rust:") && stages[0].ends_with(" AS build"));
    assert!(stages[1].ends_with(" AS demo") && stages[2].ends_with(" AS retentionc"));
    assert!(retentionc.contains("cargo build --release --locked"));
    // Every file the build copies is let through by the Dockerfile's own ignore file.
    let ignore = read("docker/retentionc/Dockerfile.dockerignore");
    for needed in [
        "!Cargo.toml",
        "!Cargo.lock",
        "!src/",
        "!templates/",
        "!retentionc.yaml",
        "!policies/",
        "!scripts/demo.sh",
    ] {
        assert!(
            ignore.lines().any(|l| l == needed),
            "{needed} missing from the .dockerignore"
        );
    }
}

/// What `docker compose run --rm demo` does, on the test cluster: the init SQL prepares the
/// database (pg_partman 5 already in place, as the PostgreSQL apt repository's package is
/// 5.x), then `scripts/demo.sh --database-url` compiles, applies, inserts and proves.
#[test]
fn demo_runs_against_a_database_prepared_by_the_init_sql() {
    let cluster = Cluster::shared();
    let db = fresh_cron_database(&cluster, Partman::V5);
    db.psql(&[
        "-c",
        "CREATE SCHEMA partman",
        "-c",
        "CREATE EXTENSION pg_partman SCHEMA partman VERSION '5.2.4'",
    ]);
    for file in init_sql_files() {
        db.psql(&["-v", "ON_ERROR_STOP=1", "-f", file.to_str().unwrap()]);
    }
    let output = Command::new("bash")
        .arg(repo_path("scripts/demo.sh"))
        .args(["--database-url", &db.url, "--seconds", "8"])
        .env("RETENTIONC_BIN", retentionc_bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "demo.sh --database-url failed\n{report}"
    );
    assert!(!stdout.contains("FAIL: "), "{report}");
    assert!(
        stdout.contains("PASS: every row younger than 15s is there"),
        "{report}"
    );
    // The database is left as it was found, apart from the demo's rows: nothing stopped.
    assert_eq!(db.scalar("SELECT 1"), "1");
}
