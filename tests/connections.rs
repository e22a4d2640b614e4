//! Where the connection settings come from, as libpq users expect them (docs/connections.md):
//! `.pgpass` (and libpq's refusal of a file others can read), services, an empty
//! `DATABASE_URL`, the `PG*` variables, `connect_timeout`; session settings merged with the ones
//! retentionc pins; clear messages for strings that are malformed or ask for what retentionc
//! does not do, never showing a password.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOptions, Partman, TestDb};
use common::project::{TestProject, stderr, text};
use retentionc::cli::DbArgs;

const SECRET: &str = "Pa55-word:with\\odd";

/// A cluster where `alice` must give her password.
fn password_cluster() -> (Arc<Cluster>, TestDb) {
    let cluster = Arc::new(Cluster::start(ClusterOptions {
        password_user: Some(("alice".into(), SECRET.into())),
        ..Default::default()
    }));
    let db = cluster.database(Partman::V5);
    (cluster, db)
}

/// `retentionc plan` on an empty project, with only the environment given (`HOME` and
/// `PGSYSCONFDIR` pointing at `home`, so no file of the machine's user is read).
fn plan_with_env(home: &Path, vars: &[(&str, &str)]) -> std::process::Output {
    let project = TestProject::new().compiled();
    let mut command = project.command(&["plan"]);
    command.env("HOME", home).env("PGSYSCONFDIR", home);
    for (key, value) in vars {
        command.env(key, value);
    }
    output_within(command, Duration::from_secs(60))
}

/// Runs `command` to its end, failing (and killing it by its pid) if it takes over `limit`:
/// a connection that hangs must fail the test, not hang it.
fn output_within(mut command: Command, limit: Duration) -> std::process::Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "still running after {limit:?}: {:?}",
                rx.recv().unwrap().map(|o| text(&o))
            );
        }
    }
}

fn connected(out: &std::process::Output) -> bool {
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("retentionc plan:")
}

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_password_file_is_used_unless_others_can_read_it() {
    let (cluster, db) = password_cluster();
    let home = tempfile::tempdir().unwrap();
    let port = cluster.port().to_string();
    let escaped = SECRET.replace('\\', "\\\\").replace(':', "\\:");
    let vars = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "alice"),
        ("PGDATABASE", db.name.as_str()),
    ];

    // ~/.pgpass, mode 0600: used (a line for another database comes first).
    let pgpass = home.path().join(".pgpass");
    let lines = format!("127.0.0.1:{port}:other:alice:wrong\n127.0.0.1:{port}:*:alice:{escaped}\n");
    write_private(&pgpass, &lines, 0o600);
    let out = plan_with_env(home.path(), &vars);
    assert!(connected(&out), "{}", text(&out));

    // Readable by the group: ignored with libpq's warning, so no password is sent.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = plan_with_env(home.path(), &vars);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: password file \"{}\" has group or world access (mode 0640); it is ignored: permissions should be u=rw (0600) or less",
            pgpass.display()
        )),
        "{err}"
    );
    assert!(err.contains("cannot connect to alice@127.0.0.1"), "{err}");
    assert!(!err.contains(SECRET), "{err}");

    // PGPASSFILE, and passfile= in the connection string, name another file.
    let elsewhere = home.path().join("secrets");
    write_private(&elsewhere, &format!("*:*:*:alice:{escaped}\n"), 0o600);
    let mut with_file = vars.to_vec();
    let elsewhere_text = elsewhere.display().to_string();
    with_file.push(("PGPASSFILE", elsewhere_text.as_str()));
    let out = plan_with_env(home.path(), &with_file);
    assert!(connected(&out), "{}", text(&out));
    let url = format!(
        "host=127.0.0.1 port={port} user=alice dbname={} passfile='{}'",
        db.name,
        elsewhere.display()
    );
    let out = plan_with_env(home.path(), &[("DATABASE_URL", &url)]);
    assert!(connected(&out), "{}", text(&out));
}

#[test]
fn a_service_names_the_server() {
    let (cluster, db) = password_cluster();
    let home = tempfile::tempdir().unwrap();
    let service = format!(
        "# nightly retention\n[nightly]\nhost=127.0.0.1\nport={}\nuser=alice\npassword={SECRET}\ndbname={}\n",
        cluster.port(),
        db.name
    );
    let file = home.path().join("services.conf");
    write_private(&file, &service, 0o600);
    let file_text = file.display().to_string();

    for vars in [
        vec![
            ("PGSERVICEFILE", file_text.as_str()),
            ("PGSERVICE", "nightly"),
        ],
        vec![
            ("PGSERVICEFILE", file_text.as_str()),
            ("DATABASE_URL", "service=nightly"),
        ],
        vec![
            ("PGSERVICEFILE", file_text.as_str()),
            ("DATABASE_URL", "postgresql://?service=nightly"),
        ],
    ] {
        let out = plan_with_env(home.path(), &vars);
        assert!(connected(&out), "{vars:?}: {}", text(&out));
    }
    // ~/.pg_service.conf, then pg_service.conf in PGSYSCONFDIR.
    std::fs::copy(&file, home.path().join(".pg_service.conf")).unwrap();
    let out = plan_with_env(home.path(), &[("PGSERVICE", "nightly")]);
    assert!(connected(&out), "{}", text(&out));
    std::fs::remove_file(home.path().join(".pg_service.conf")).unwrap();
    std::fs::copy(&file, home.path().join("pg_service.conf")).unwrap();
    let out = plan_with_env(home.path(), &[("PGSERVICE", "nightly")]);
    assert!(connected(&out), "{}", text(&out));

    // A service nobody defines.
    let out = plan_with_env(home.path(), &[("PGSERVICE", "weekly")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("definition of service \"weekly\" not found (looked in"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_empty_database_url_falls_back_to_the_libpq_variables() {
    let db = Cluster::shared().database(Partman::V5);
    let home = tempfile::tempdir().unwrap();
    let port = db.cluster.port().to_string();
    let out = plan_with_env(
        home.path(),
        &[
            ("DATABASE_URL", ""),
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGUSER", "postgres"),
            ("PGDATABASE", &db.name),
        ],
    );
    assert!(connected(&out), "{}", text(&out));
}

#[test]
fn with_nothing_set_the_error_names_the_target_and_what_was_looked_at() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on the default port of a socket folder that does not exist, nor (on
    // a test machine) on localhost:5432 for this user.
    let out = plan_with_env(home.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("error: cannot connect to "), "{err}");
    assert!(
        err.contains("no connection settings were found (looked at --database-url, DATABASE_URL, PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSERVICE), so libpq's defaults were used"),
        "{err}"
    );
}

#[test]
fn malformed_connection_strings_say_what_is_wrong_and_never_show_the_password() {
    let home = tempfile::tempdir().unwrap();
    let cases = [
        (
            "postgres://alice:hunter2@db.example:54x2/app",
            "error: DATABASE_URL: invalid connection URL \"postgres://alice:***@db.example:54x2/app\": the port \"54x2\" is not a port number (1 to 65535)",
        ),
        (
            "postgres://alice:hunter2@db.example/app?sslmode",
            "the parameter \"sslmode\" has no value: expected key=value",
        ),
        (
            "postgres://alice:hun%ter2@db.example/app",
            "the password holds an invalid percent-encoding",
        ),
        (
            "postgres://alice:hunter2@[::1/app",
            "the IPv6 host \"[::1\" lacks its closing \"]\"",
        ),
        (
            "host=db.example password='hunter2",
            "the password's quoted value is not closed",
        ),
        (
            "postgres://alice:hunter2@db.example/app?sslmod=require",
            "unknown connection parameter \"sslmod\" (did you mean \"sslmode\"?)",
        ),
        (
            "postgres://alice:hunter2@db.example/app?sslcert=client.pem",
            "DATABASE_URL: sslcert is set: client certificates are not supported by retentionc; remove it",
        ),
        (
            "postgres://alice:hunter2@db.example/app?options=-e",
            "DATABASE_URL: options: \"-e\" is not understood: expected -c name=value",
        ),
        (
            "mysql://alice:hunter2@db.example/app",
            "\"mysql://\" is not a PostgreSQL URL",
        ),
    ];
    for (url, expected) in cases {
        let out = plan_with_env(home.path(), &[("DATABASE_URL", url)]);
        assert_eq!(out.status.code(), Some(1), "{url}: {}", text(&out));
        let all = text(&out);
        assert!(all.contains(expected), "{url}: {all}");
        assert!(
            !all.contains("hunter2") && !all.contains("hun%ter2"),
            "{url}: {all}"
        );
    }
    // A variable asking for what retentionc does not do.
    let out = plan_with_env(home.path(), &[("PGSSLCERT", "/etc/client.pem")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("PGSSLCERT is set: client certificates are not supported by retentionc; remove it from the environment"),
        "{}",
        text(&out)
    );
}

#[test]
fn connect_timeout_bounds_a_server_that_never_answers() {
    // Accepts connections (the kernel does) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let home = tempfile::tempdir().unwrap();
    for (vars, limit) in [
        (
            vec![("PGCONNECT_TIMEOUT", "2")],
            "no answer within 2 s (connect_timeout",
        ),
        (
            vec![("RETENTIONC_STALL_TIMEOUT", "3s")],
            "no answer within 3 s",
        ),
    ] {
        let mut all = vec![("PGHOST", "127.0.0.1"), ("PGPORT", port.as_str())];
        all.extend(vars);
        let started = Instant::now();
        let out = plan_with_env(home.path(), &all);
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(stderr(&out).contains(limit), "{}", text(&out));
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
}

async fn show(args: &DbArgs, settings: &[&str]) -> Vec<String> {
    let session = retentionc::db::connect(args, "retentionc test")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut values = Vec::new();
    for setting in settings {
        let rows = session
            .simple_query(&format!("SHOW {setting}"))
            .await
            .unwrap();
        let value = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(String::from),
                _ => None,
            })
            .unwrap();
        values.push(value);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_session_settings_are_kept_and_retentionc_pins_its_own() {
    let db = Cluster::shared().database(Partman::V5);
    let options = "-c statement_timeout=1234 -c default_transaction_read_only=on -c TimeZone=Europe/Paris -c search_path=public -c lock_timeout=7s";
    let url = format!(
        "{}?options={}&application_name=nightly",
        db.url,
        options.replace(' ', "%20").replace('=', "%3D")
    );
    let values = show(
        &DbArgs::url(url),
        &[
            "statement_timeout",
            "default_transaction_read_only",
            "lock_timeout",
            "application_name",
            "TimeZone",
            "search_path",
            "IntervalStyle",
            "DateStyle",
            "standard_conforming_strings",
            "idle_in_transaction_session_timeout",
            "client_connection_check_interval",
        ],
    )
    .await;
    assert_eq!(
        values,
        [
            "1234ms",
            "on",
            "7s",
            "nightly",
            "UTC",
            "pg_catalog, pg_temp",
            "postgres",
            "ISO, MDY",
            "on",
            "30s",
            "1s"
        ]
    );
    // The stall bound is what the server waits for an idle transaction.
    let mut args = DbArgs::url(db.url.clone());
    args.stall_timeout = Some(Duration::from_secs(7));
    assert_eq!(
        show(&args, &["idle_in_transaction_session_timeout"]).await,
        ["7s"]
    );
    // No JIT, unless the user's options ask for it.
    assert_eq!(show(&DbArgs::url(db.url.clone()), &["jit"]).await, ["off"]);
    let url = format!("{}?options=-c%20jit%3Don", db.url);
    assert_eq!(show(&DbArgs::url(url), &["jit"]).await, ["on"]);
}

/// `default_transaction_read_only` given by the user reaches the server, so a run under it
/// deletes nothing: from the URL and from PGOPTIONS alike.
#[test]
fn a_read_only_session_asked_for_deletes_nothing() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&[
        "-c",
        "CREATE TABLE public.sessions (id bigserial PRIMARY KEY, last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        "INSERT INTO public.sessions (last_seen_at, revoked) SELECT now() - interval '3 days', true FROM generate_series(1, 100)",
    ]);
    let policy = "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked\"\n    older_than: 1 day\n    column: last_seen_at\n";
    let project = TestProject::for_db(&db)
        .policy("sessions", policy)
        .compiled();
    project.install_with_psql(&db);
    let read_only = format!("{}?options=-c%20default_transaction_read_only%3Don", db.url);
    for (url, pgoptions) in [
        (read_only.as_str(), None),
        (db.url.as_str(), Some("-c default_transaction_read_only=on")),
    ] {
        let mut command = project.command(&["run"]);
        command.env("DATABASE_URL", url);
        if let Some(options) = pgoptions {
            // PGOPTIONS counts when the connection string has no options of its own.
            command.env("PGOPTIONS", options);
        }
        let out = output_within(command, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("read-only transaction"),
            "{}",
            text(&out)
        );
        assert_eq!(db.scalar("SELECT count(*) FROM public.sessions"), "100");
    }
    // PGAPPNAME names the session, and run_log records it.
    let mut command = project.command(&["run"]);
    command.env("PGAPPNAME", "nightly-retention");
    let out = output_within(command, Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(db.scalar("SELECT count(*) FROM public.sessions"), "0");
    assert_eq!(
        db.scalar(
            "SELECT string_agg(DISTINCT run_by, ',') FROM retention.run_log WHERE outcome = 'ok'"
        ),
        "nightly-retention"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_tried_in_turn_and_target_session_attrs_is_checked() {
    let db = Cluster::shared().database(Partman::V5);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // released at once: nothing listens there
    let both = format!(
        "host=127.0.0.1,127.0.0.1 port={closed},{} user=postgres dbname={}",
        db.cluster.port(),
        db.name
    );
    let values = show(&DbArgs::url(both.clone()), &["port"]).await;
    assert_eq!(values, [db.cluster.port().to_string()]);

    let read_only = format!(
        "{both} target_session_attrs=read-write options='-c default_transaction_read_only=on'"
    );
    let err = retentionc::db::connect(&DbArgs::url(read_only), "t")
        .await
        .err()
        .unwrap();
    let err = format!("{err:#}");
    assert!(
        err.contains(&format!("127.0.0.1:{closed}: "))
            && err.contains("the server is not read-write (target_session_attrs)"),
        "{err}"
    );
}

/// A stall bound under a second is refused on the command line.
#[test]
fn the_binary_refuses_a_bad_stall_timeout() {
    let out = Command::new(common::cluster::retentionc_bin())
        .args(["plan", "--stall-timeout", "100ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("at least 1s"), "{}", text(&out));
}
