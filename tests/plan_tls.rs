//! Connections: TLS by sslmode against a cluster with a certificate the test makes, and
//! passwords that never show, not even in errors.

mod common;

use std::sync::Arc;

use common::cluster::{Cluster, ClusterOptions, Partman, make_test_certs, make_test_certs_for};
use common::project::TestProject;
use retentionc::cli::DbArgs;

fn args(url: String) -> DbArgs {
    DbArgs::url(url)
}

async fn uses_tls(url: String) -> Result<bool, String> {
    let client = retentionc::db::connect(&args(url), "retentionc tls test")
        .await
        .map_err(|e| format!("{e:#}"))?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn tls_modes_against_a_server_that_requires_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_test_certs(dir.path());
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        ssl: Some(certs.server.clone()),
        require_ssl: true,
        ..Default::default()
    }));
    let db = cluster.database(Partman::V5);
    let ca = certs.ca_cert.display().to_string();
    let url = |host: &str, query: &str| {
        format!(
            "postgres://postgres@{host}:{}/{}?{query}",
            cluster.port(),
            db.name
        )
    };

    // require without a root certificate: encrypted, certificate not checked.
    assert_eq!(
        uses_tls(url("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
    // prefer (the default) takes TLS when offered.
    assert_eq!(uses_tls(url("127.0.0.1", "")).await, Ok(true));
    // verify-full: chain and host name (the certificate names localhost and 127.0.0.1).
    assert_eq!(
        uses_tls(url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    assert_eq!(
        uses_tls(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    assert_eq!(
        uses_tls(url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    // key=value strings too.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname={} sslmode=verify-full sslrootcert='{ca}'",
        cluster.port(),
        db.name
    );
    assert_eq!(uses_tls(conninfo).await, Ok(true));

    // Another CA: verify-full and verify-ca refuse the server.
    let other_dir = tempfile::tempdir().unwrap();
    let other = make_test_certs(other_dir.path());
    let other_ca = other.ca_cert.display().to_string();
    for mode in ["verify-full", "verify-ca"] {
        let err = uses_tls(url(
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={other_ca}"),
        ))
        .await
        .unwrap_err();
        assert!(
            err.contains("cannot connect") && err.to_lowercase().contains("certificate"),
            "{mode}: {err}"
        );
    }
    // disable: the server refuses plain connections.
    let err = uses_tls(url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");

    // A whole plan over verify-full, through the binary, with the libpq variables.
    db.psql(&[
        "-c",
        "CREATE TABLE public.t (at timestamptz NOT NULL) PARTITION BY RANGE (at)",
    ]);
    let project = TestProject::new()
        .policy("t", "table: public.t\npartitioning:\n  column: at\n  interval: 1 day\nretention:\n  keep: 30 days\n")
        .compiled();
    let out = project
        .command(&["plan"])
        .env("PGHOST", "localhost")
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db.name)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("public.t: register with pg_partman"),
        "{stdout}"
    );
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate for db.example.com only, not for 127.0.0.1.
    let certs = make_test_certs_for(dir.path(), &["db.example.com"]);
    let (ca, server) = (certs.ca_cert, certs.server);
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        ssl: Some(server),
        require_ssl: true,
        ..Default::default()
    }));
    let db = cluster.database(Partman::V4);
    let url = |mode: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode={mode}&sslrootcert={}",
            cluster.port(),
            db.name,
            ca.display()
        )
    };
    assert_eq!(uses_tls(url("verify-ca")).await, Ok(true));
    assert_eq!(uses_tls(url("require")).await, Ok(true));
    let err = uses_tls(url("verify-full")).await.unwrap_err();
    assert!(
        err.contains("certificate") && err.to_lowercase().contains("name"),
        "{err}"
    );
}

#[tokio::test]
async fn a_password_never_appears_in_any_error() {
    const SECRET: &str = "s3cret-Pa55word";
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        password_user: Some(("alice".into(), SECRET.into())),
        ..Default::default()
    }));
    let db = cluster.database(Partman::V5);

    // The right password works.
    let ok =
        retentionc::db::connect(&args(cluster.url_as("alice", Some(SECRET), &db.name)), "t").await;
    assert!(ok.is_ok(), "{:#}", ok.err().unwrap());

    // A wrong one: the error says so without either password.
    let wrong = format!("{SECRET}-wrong");
    let err = retentionc::db::connect(&args(cluster.url_as("alice", Some(&wrong), &db.name)), "t")
        .await
        .err()
        .unwrap();
    let text = format!("{err:#} {err:?}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    // Bad URLs and strings holding a password.
    for bad in [
        format!("postgres://alice:{SECRET}@127.0.0.1:notaport/db"),
        format!("postgres://alice:{SECRET}@127.0.0.1/db?unknown_option=1"),
        format!("host=127.0.0.1 password={SECRET} port=x"),
        format!("postgres://alice:{SECRET}@127.0.0.1/db?sslmode=maybe"),
    ] {
        let err = retentionc::db::connect(&args(bad.clone()), "t")
            .await
            .err()
            .unwrap();
        let text = format!("{err:#} {err:?}");
        assert!(!text.contains(SECRET), "{bad}: {text}");
    }

    // Through the binary: stderr and stdout hold no password.
    let project = TestProject::new().policy(
        "t",
        "table: public.t\ndeletes:\n  - name: all\n    where: \"true\"\n",
    );
    for url in [
        cluster.url_as("alice", Some(&wrong), &db.name),
        format!("postgres://alice:{SECRET}@127.0.0.1:notaport/db"),
    ] {
        let out = project.run(&["plan", "--database-url", &url]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(!all.contains(SECRET), "{all}");
        assert!(all.contains("error"), "{all}");
    }
    // PGPASSWORD too.
    let out = project
        .command(&["plan"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", "alice")
        .env("PGPASSWORD", &wrong)
        .env("PGDATABASE", &db.name)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains(SECRET), "{all}");
}
