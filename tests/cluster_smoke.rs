//! Checks the test harness itself (tests/common/cluster.rs) against a real PostgreSQL 15:
//! both pg_partman majors side by side, pg_cron running jobs, TLS, password roles.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{
    CRON_DATABASE, Cluster, ClusterOptions, POLL_INTERVAL, Partman, make_test_certs, retentionc_bin,
};

#[tokio::test]
async fn both_partman_versions_in_one_shared_cluster() {
    let v4 = Cluster::shared().database(Partman::V4);
    let v5 = Cluster::shared().database(Partman::V5);
    assert!(
        Arc::ptr_eq(&v4.cluster, &v5.cluster),
        "one shared cluster per test process"
    );
    assert_ne!(v4.name, v5.name);
    for db in [&v4, &v5] {
        let client = db.client().await;
        let row = client
            .query_one(
                "SELECT extversion, extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_partman'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), db.partman.version());
        assert_eq!(row.get::<_, String>(1), "partman");
        let tz: String = client.query_one("SHOW timezone", &[]).await.unwrap().get(0);
        assert_eq!(tz, "UTC");
    }
    assert_eq!(
        v4.scalar("SELECT extversion FROM pg_extension WHERE extname='pg_partman'"),
        "4.7.2"
    );
    assert_eq!(
        v5.scalar("SELECT extversion FROM pg_extension WHERE extname='pg_partman'"),
        "5.2.4"
    );
}

async fn create_parent_works(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE public.events (id bigint, created_at timestamptz NOT NULL) \
             PARTITION BY RANGE (created_at)",
        )
        .await
        .unwrap();
    let call = match partman {
        Partman::V4 => {
            "SELECT partman.create_parent(p_parent_table := 'public.events', \
             p_control := 'created_at', p_type := 'native', p_interval := '1 day')"
        }
        Partman::V5 => {
            "SELECT partman.create_parent(p_parent_table := 'public.events', \
             p_control := 'created_at', p_type := 'range', p_interval := '1 day')"
        }
    };
    let created: bool = client.query_one(call, &[]).await.unwrap().get(0);
    assert!(created, "{partman}: create_parent returned false");
    let children: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.events'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // premake 4 on each side of today, plus the default partition.
    assert!(children >= 9, "{partman}: only {children} partitions");
    let interval: String = client
        .query_one(
            "SELECT partition_interval FROM partman.part_config WHERE parent_table = 'public.events'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(interval, "1 day");
    client
        .batch_execute("INSERT INTO public.events VALUES (1, now())")
        .await
        .unwrap();
    client
        .batch_execute("SELECT partman.run_maintenance('public.events')")
        .await
        .unwrap();
}

#[tokio::test]
async fn create_parent_partman_4() {
    create_parent_works(Partman::V4).await;
}

#[tokio::test]
async fn create_parent_partman_5() {
    create_parent_works(Partman::V5).await;
}

#[tokio::test]
async fn pg_cron_runs_a_job_in_the_cron_database() {
    let cluster = Cluster::shared();

    // pg_cron can only be created in cron.database_name.
    let other = cluster.database(Partman::V5);
    let refused = other.psql_output(&["-c", "CREATE EXTENSION pg_cron"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(CRON_DATABASE),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(other);

    let cron = cluster.cron_database(Partman::V5);
    assert_eq!(cron.name, CRON_DATABASE);
    assert_eq!(
        cron.scalar("SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'"),
        "pg_cron 1.4-1, pg_partman 5.2.4"
    );
    let client = cron.client().await;
    // pg_cron 1.4 knows only cron syntax; interval seconds came with 1.5.
    let seconds = client
        .query_one(
            "SELECT cron.schedule('probe', '1 seconds', 'SELECT 1')",
            &[],
        )
        .await;
    let err = seconds.expect_err("pg_cron 1.4 accepted '1 seconds'");
    let err = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or(err.to_string());
    assert!(err.contains("invalid schedule"), "{err}");

    client
        .batch_execute("CREATE TABLE public.cron_probe (at timestamptz)")
        .await
        .unwrap();
    let jobid: i64 = client
        .query_one(
            "SELECT cron.schedule('probe', '* * * * *', 'INSERT INTO public.cron_probe VALUES (now())')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(75);
    let (status, message) = loop {
        let row = client
            .query_opt(
                "SELECT status, return_message FROM cron.job_run_details \
                 WHERE jobid = $1 AND status IN ('succeeded', 'failed') LIMIT 1",
                &[&jobid],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break (row.get::<_, String>(0), row.get::<_, String>(1));
        }
        assert!(
            Instant::now() < deadline,
            "cron job did not run within 75 s; server log:\n{}",
            cluster.log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    eprintln!(
        "cron job ran after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status, "succeeded", "{message}");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM public.cron_probe", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rows >= 1);
    drop(client);
    drop(cron);

    // The next hand-out starts clean, at the asked version.
    let cron = cluster.cron_database(Partman::V4);
    assert_eq!(cron.scalar("SELECT count(*) FROM cron.job"), "0");
    assert_eq!(
        cron.scalar("SELECT to_regclass('public.cron_probe') IS NULL"),
        "t"
    );
    assert_eq!(
        cron.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'"),
        "4.7.2"
    );
    // The scheduler survived the reset: it is still connected to the database.
    assert_eq!(
        cron.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher' AND datname = current_database()"),
        "1"
    );
}

#[test]
fn tls_cluster_accepts_sslmode_require_and_rejects_plain() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_test_certs(dir.path());
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        ssl: Some(certs.server.clone()),
        require_ssl: true,
        ..Default::default()
    }));
    let db = cluster.database(Partman::V4);
    let conninfo = |mode: &str| {
        format!(
            "host=127.0.0.1 port={} sslmode={mode} user=postgres dbname={} sslrootcert={}",
            cluster.port(),
            db.name,
            certs.ca_cert.display()
        )
    };
    for mode in ["require", "verify-full"] {
        let out = std::process::Command::new(common::cluster::pg_bin("psql"))
            .args(["-X", "-At", "-d", &conninfo(mode)])
            .args([
                "-c",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{mode}");
    }
    let plain = std::process::Command::new(common::cluster::pg_bin("psql"))
        .args(["-X", "-At", "-d", &conninfo("disable"), "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(
        !plain.status.success(),
        "a connection without TLS was accepted"
    );
    assert!(String::from_utf8_lossy(&plain.stderr).contains("no encryption"));
}

#[test]
fn password_user_needs_its_password() {
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        password_user: Some(("alice".to_string(), "s3cret p@ss".to_string())),
        ..Default::default()
    }));
    let db = cluster.database(Partman::V5);
    let psql = |url: &str| {
        std::process::Command::new(common::cluster::pg_bin("psql"))
            .args(["-X", "-At", "-w", "-d", url, "-c", "SELECT current_user"])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap()
    };
    let ok = psql(&cluster.url_as("alice", Some("s3cret p@ss"), &db.name));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "alice");
    let wrong = psql(&cluster.url_as("alice", Some("wrong"), &db.name));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"));
    let none = psql(&cluster.url_as("alice", None, &db.name));
    assert!(!none.status.success());
    // Everyone else is still trusted.
    assert_eq!(db.scalar("SELECT current_user"), "postgres");
}

#[test]
#[should_panic(expected = "division by zero")]
fn psql_failure_panics_with_stderr() {
    let db = Cluster::shared().database(Partman::V4);
    db.psql(&["-c", "SELECT 1/0"]);
}

#[test]
fn retentionc_binary_is_built() {
    assert!(retentionc_bin().is_file(), "{}", retentionc_bin().display());
}

#[test]
fn the_test_project_builder_compiles_applies_and_plans_clean() {
    use common::project::{TestProject, text};
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        db.psql(&["-c", "CREATE TABLE public.events (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at)"]);
        let project = TestProject::for_db(&db)
            .config("lock_timeout: 2s")
            .policy(
                "events",
                "table: public.events\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: 30 days\n",
            )
            .compiled();
        assert!(project.generated("public.events.sql").is_file());
        let apply = project.run(&["apply", "--auto-approve"]);
        assert!(apply.status.success(), "{partman}: {}", text(&apply));
        let plan = project.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{partman}: {}", text(&plan));
    }
}
