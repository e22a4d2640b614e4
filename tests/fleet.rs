//! Environments and fleets, against real clusters: `plan`, `apply`, `run` and `status` with
//! `--env NAME` / `--all` over databases listed by variable and found by discovery, on two
//! clusters, with pg_partman 4 and 5 in different environments. One database that never
//! answers and one whose plan fails never hide the others; apply goes one database at a
//! time and stops at the first failure unless `--keep-going`; a saved plan is applied only
//! where it is still the plan of now.

mod common;

use std::net::TcpListener;
use std::process::Output;
use std::sync::Arc;

use common::cluster::{Cluster, ClusterOptions, Partman, TestDb, quote_ident};
use common::project::{TestProject, stderr, stdout, text};

const EVENTS_POLICY: &str = "table: public.events
partitioning:
  column: created_at
  interval: 1 day
  premake: 2
retention:
  keep: 30 days
";

const EVENTS_TABLE: &str = "CREATE TABLE public.events (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at)";

/// A password in one connection string, which no output may show.
const SECRET: &str = "fleet-secret-pw-7731";

fn with_events(db: &TestDb) -> &TestDb {
    db.psql(&["-q", "-c", EVENTS_TABLE]);
    db
}

/// Databases `<prefix>NN` on one cluster, copies of a template holding pg_partman and the
/// events table (the template matches the prefix too, and is excluded by the config).
struct Tenants {
    cluster: Arc<Cluster>,
    names: Vec<String>,
}

impl Tenants {
    fn make(cluster: &Arc<Cluster>, prefix: &str, count: usize, partman: Partman) -> Tenants {
        let template = format!("{prefix}template");
        cluster.admin_psql(
            "postgres",
            &[format!("CREATE DATABASE {}", quote_ident(&template))],
        );
        cluster.admin_psql(
            &template,
            &[
                "CREATE SCHEMA partman".to_string(),
                format!(
                    "CREATE EXTENSION pg_partman SCHEMA partman VERSION '{}'",
                    partman.version()
                ),
                EVENTS_TABLE.to_string(),
            ],
        );
        let mut names = vec![template.clone()];
        let creates: Vec<String> = (0..count)
            .map(|i| {
                let name = format!("{prefix}{i:02}");
                names.push(name.clone());
                format!(
                    "CREATE DATABASE {} TEMPLATE {}",
                    quote_ident(&name),
                    quote_ident(&template)
                )
            })
            .collect();
        cluster.admin_psql("postgres", &creates);
        Tenants {
            cluster: Arc::clone(cluster),
            names,
        }
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.cluster.try_admin_psql(
                "postgres",
                &[format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(name)
                )],
            );
        }
    }
}

/// Runs the binary in `project` with these variables set; whatever it prints never shows
/// the password some of their connection strings carry.
fn run_with(project: &TestProject, vars: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = project.command(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    assert!(
        !text(&out).contains(SECRET),
        "{args:?} printed a password: {}",
        text(&out)
    );
    out
}

fn registered(db: &TestDb) -> String {
    db.scalar("SELECT count(*) FROM partman.part_config WHERE parent_table = 'public.events'")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[test]
fn plan_all_reaches_forty_databases_on_two_clusters_and_shows_each_error_in_its_row() {
    let first = Cluster::shared();
    let second = Arc::new(Cluster::start(ClusterOptions::default()));
    let staging = first.database(Partman::V5);
    with_events(&staging);
    let production: Vec<TestDb> = (0..4)
        .map(|_| {
            let db = second.database(Partman::V5);
            with_events(&db);
            db
        })
        .collect();
    // Planning fails here: the policy's table does not exist.
    let without_table = second.database(Partman::V5);
    // Accepts connections and never answers: the connect timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!(
        "postgres://app:{SECRET}@127.0.0.1:{}/silent",
        silent.local_addr().unwrap().port()
    );
    let legacy = second.database(Partman::V4);
    with_events(&legacy);
    let tenants = Tenants::make(&first, "fleetplan_t", 32, Partman::V5);

    let project = TestProject::new()
        .config(
            "partman_version: 5
environments:
  staging:
    url_env: STAGING_URL
  production:
    url_env: [PROD_1, PROD_2, PROD_SILENT, PROD_3, PROD_NO_TABLE, PROD_4]
    lock_timeout: 2s
  tenants:
    discover:
      url_env: TENANT_SERVER_URL
      databases: 'fleetplan\\_t%'
      exclude: \"%template\"
  legacy:
    url_env: LEGACY_URL
    partman_version: 4",
        )
        .policy("events", EVENTS_POLICY)
        .compiled();
    assert!(
        project.generated("legacy/public.events.sql").is_file(),
        "an environment compiled for pg_partman 4 has its own folder"
    );
    let legacy_sql =
        std::fs::read_to_string(project.generated("legacy/public.events.sql")).unwrap();
    assert!(legacy_sql.contains("pg_partman 4"), "{legacy_sql}");
    let default_sql = std::fs::read_to_string(project.generated("public.events.sql")).unwrap();
    assert!(default_sql.contains("pg_partman 5"), "{default_sql}");
    let check = project.run(&["compile", "--check"]);
    assert!(check.status.success(), "{}", text(&check));

    let vars = vec![
        ("STAGING_URL", staging.url.clone()),
        ("PROD_1", production[0].url.clone()),
        (
            "PROD_2",
            second.url_as("postgres", Some(SECRET), &production[1].name),
        ),
        ("PROD_SILENT", silent_url),
        ("PROD_3", production[2].url.clone()),
        ("PROD_NO_TABLE", without_table.url.clone()),
        ("PROD_4", production[3].url.clone()),
        ("TENANT_SERVER_URL", first.url("postgres")),
        ("LEGACY_URL", legacy.url.clone()),
    ];
    let out = run_with(
        &project,
        &vars,
        &[
            "plan",
            "--all",
            "--detailed-exitcode",
            "--stall-timeout",
            "2s",
        ],
    );
    let report = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "any database errored: {}",
        text(&out)
    );
    assert!(
        report.starts_with(
            "retentionc plan: 40 databases in 4 environments: 38 with changes, 2 errors\n"
        ),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(SECRET), "{}", text(&out));
    // Every database has its row, in the listed order, then its section.
    let rows: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("ENVIRONMENT"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 40, "{report}");
    assert!(rows[0].starts_with("staging "), "{report}");
    assert!(rows[39].starts_with("legacy "), "{report}");
    let silent_row = rows.iter().find(|r| r.contains("/silent")).unwrap();
    assert!(
        silent_row.contains("app@127.0.0.1:") && silent_row.contains("cannot connect"),
        "{silent_row}"
    );
    let missing_row = rows
        .iter()
        .find(|r| r.contains(&without_table.name))
        .unwrap();
    assert!(missing_row.contains("error"), "{missing_row}");
    assert!(
        report.contains("policies/events.yaml") && report.contains("public.events"),
        "the failed plan's error names the policy: {report}"
    );
    for tenant in tenants.names.iter().skip(1) {
        assert!(
            rows.iter().any(|r| r.starts_with("tenants ")
                && r.contains(&format!("/{tenant}"))
                && r.contains(" 2 ")),
            "{tenant} planned: {report}"
        );
    }
    assert!(
        !report.contains("fleetplan_ttemplate"),
        "the excluded template is not planned"
    );
    assert_eq!(
        report.matches("\n== ").count(),
        40,
        "one section per database: {report}"
    );

    // Markdown: one comment, found by its marker; the 32 same plans shown once.
    let out = run_with(
        &project,
        &vars,
        &[
            "plan",
            "--all",
            "--format",
            "markdown",
            "--stall-timeout",
            "2s",
        ],
    );
    let markdown = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        markdown.starts_with("<!-- retentionc-plan -->\n### retentionc plan: 40 databases"),
        "{markdown}"
    );
    assert!(markdown.contains("| environment | database | changes | destructive | error |"));
    assert!(
        markdown.contains("databases (staging, production, tenants), the same plan: 2 changes"),
        "{markdown}"
    );
    assert!(markdown.len() < 60_000);
    assert!(!markdown.contains(SECRET));

    // JSON, and the same document saved for apply.
    let saved = project.root().join("fleet-plan.json");
    let out = run_with(
        &project,
        &vars,
        &[
            "plan",
            "--all",
            "--format",
            "json",
            "--stall-timeout",
            "2s",
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    let document = json(&out);
    assert_eq!(document["kind"], "retentionc-fleet-plan");
    assert_eq!(document["summary"]["databases"], 40);
    assert_eq!(document["summary"]["with_changes"], 38);
    assert_eq!(document["summary"]["errors"], 2);
    let databases = document["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 40);
    for database in databases {
        assert_eq!(
            database["error"].is_null(),
            !database["plan"].is_null(),
            "{database}"
        );
    }
    let legacy_entry = databases
        .iter()
        .find(|d| d["environment"] == "legacy")
        .unwrap();
    assert_eq!(legacy_entry["changes"], 2, "{legacy_entry}");
    let saved_document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(saved_document["databases"].as_array().unwrap().len(), 40);
    assert!(!std::fs::read_to_string(&saved).unwrap().contains(SECRET));

    // One environment alone.
    let out = run_with(
        &project,
        &vars,
        &["plan", "--env", "legacy", "--detailed-exitcode"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stdout(&out)
            .starts_with("retentionc plan: 1 database in 1 environment: 1 with changes, 0 errors"),
        "{}",
        text(&out)
    );

    // pg_partman 5 and 4 in one apply, each environment from its own generated/ folder.
    let out = run_with(
        &project,
        &vars,
        &[
            "apply",
            "--env",
            "staging",
            "--env",
            "legacy",
            "--auto-approve",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("2 databases: 2 applied, 0 without changes"),
        "{}",
        text(&out)
    );
    assert_eq!(registered(&staging), "1");
    assert_eq!(registered(&legacy), "1");
    let out = run_with(
        &project,
        &vars,
        &[
            "plan",
            "--env",
            "staging",
            "--env",
            "legacy",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    drop(silent);
}

#[test]
fn apply_all_goes_in_order_stops_at_the_first_failure_and_keep_going_goes_on() {
    for partman in Partman::BOTH {
        let cluster = Cluster::shared();
        let staging = cluster.database(partman);
        with_events(&staging);
        let first = cluster.database(partman);
        with_events(&first);
        let broken = cluster.database(partman);
        let last = cluster.database(partman);
        with_events(&last);
        let project = TestProject::new()
            .config(&format!(
                "partman_version: {}
environments:
  staging:
    url_env: STAGING_URL
  production:
    url_env: [PROD_A, PROD_BROKEN, PROD_C]",
                partman.major()
            ))
            .policy("events", EVENTS_POLICY)
            .compiled();
        let vars = vec![
            ("STAGING_URL", staging.url.clone()),
            (
                "PROD_A",
                cluster.url_as("postgres", Some(SECRET), &first.name),
            ),
            (
                "PROD_BROKEN",
                cluster.url_as("postgres", Some(SECRET), &broken.name),
            ),
            ("PROD_C", last.url.clone()),
        ];

        let out = run_with(&project, &vars, &["apply", "--all", "--auto-approve"]);
        assert_eq!(out.status.code(), Some(1), "{partman}: {}", text(&out));
        let report = stdout(&out);
        assert!(
            report.contains(
                "4 databases: 2 applied, 0 without changes, 0 refused, 1 failed, 1 not attempted"
            ),
            "{partman}: {report}"
        );
        let result = |name: &str| {
            report
                .lines()
                .rev()
                .find(|l| l.contains(&format!("/{name} ")))
                .unwrap_or_else(|| panic!("{name}: {report}"))
                .to_string()
        };
        assert!(
            result(&staging.name).contains("applied 2 changes"),
            "{report}"
        );
        assert!(
            result(&first.name).contains("applied 2 changes"),
            "{report}"
        );
        assert!(result(&broken.name).contains("failed: "), "{report}");
        assert!(result(&last.name).contains("not attempted"), "{report}");
        assert_eq!(registered(&staging), "1");
        assert_eq!(registered(&first), "1");
        assert_eq!(
            registered(&last),
            "0",
            "{partman}: nothing after the failure"
        );

        let out = run_with(
            &project,
            &vars,
            &["apply", "--all", "--auto-approve", "--keep-going"],
        );
        assert_eq!(out.status.code(), Some(1), "{partman}: {}", text(&out));
        let report = stdout(&out);
        assert!(
            report.contains("4 databases: 1 applied, 2 without changes, 0 refused, 1 failed, 0 not attempted (--keep-going)"),
            "{partman}: {report}"
        );
        assert_eq!(registered(&last), "1", "{partman}: --keep-going went on");
        // Each database in its own transaction: the failed one holds nothing.
        assert_eq!(
            broken.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'retention'"),
            "0",
            "{partman}"
        );
    }
}

#[test]
fn a_saved_plan_is_applied_only_where_it_is_still_the_plan_of_now() {
    let cluster = Cluster::shared();
    let dbs: Vec<TestDb> = (0..3)
        .map(|_| {
            let db = cluster.database(Partman::V5);
            with_events(&db);
            db
        })
        .collect();
    let project = TestProject::new()
        .config(
            "partman_version: 5
environments:
  production:
    url_env: [PROD_A, PROD_B, PROD_C]",
        )
        .policy("events", EVENTS_POLICY)
        .compiled();
    let vars = vec![
        ("PROD_A", dbs[0].url.clone()),
        ("PROD_B", dbs[1].url.clone()),
        ("PROD_C", dbs[2].url.clone()),
    ];
    let saved = project.root().join("plan.json");
    let out = run_with(
        &project,
        &vars,
        &[
            "plan",
            "--env",
            "production",
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // B changes after the plan: someone applies it alone.
    let alone = project
        .command(&["apply", "--auto-approve"])
        .env("DATABASE_URL", &dbs[1].url)
        .output()
        .unwrap();
    assert!(alone.status.success(), "{}", text(&alone));

    let out = run_with(
        &project,
        &vars,
        &[
            "apply",
            "--env",
            "production",
            "--plan",
            saved.to_str().unwrap(),
            "--auto-approve",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout(&out);
    assert!(
        report.contains(
            "3 databases: 1 applied, 0 without changes, 1 refused, 0 failed, 1 not attempted"
        ),
        "{report}"
    );
    assert!(
        report.contains("refused: the database changed since the plan was made"),
        "{report}"
    );
    assert_eq!(registered(&dbs[0]), "1");
    assert_eq!(registered(&dbs[2]), "0", "stopped at the refused database");

    // With --keep-going the rest is applied; A is now changed too, and refused.
    let out = run_with(
        &project,
        &vars,
        &[
            "apply",
            "--env",
            "production",
            "--plan",
            saved.to_str().unwrap(),
            "--auto-approve",
            "--keep-going",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout(&out);
    assert!(
        report.contains(
            "3 databases: 1 applied, 0 without changes, 2 refused, 0 failed, 0 not attempted"
        ),
        "{report}"
    );
    assert_eq!(registered(&dbs[2]), "1");

    // A one-database plan file is not a fleet's.
    let single = project.root().join("single.json");
    let out = project
        .command(&["plan", "--out", single.to_str().unwrap()])
        .env("DATABASE_URL", &dbs[0].url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = run_with(
        &project,
        &vars,
        &[
            "apply",
            "--all",
            "--plan",
            single.to_str().unwrap(),
            "--auto-approve",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a plan of one database"),
        "{}",
        text(&out)
    );
}

#[test]
fn status_check_all_exits_3_when_any_database_lapsed_and_run_all_restores_it() {
    let cluster = Cluster::shared();
    let lapsing = cluster.database(Partman::V5);
    let holding = cluster.database(Partman::V5);
    let start = lapsing.scalar("SELECT to_char(now() - interval '10 days', 'YYYY-MM-DD')");
    let policy = format!(
        "table: public.events
partitioning:
  column: created_at
  interval: 1 day
  premake: 2
  start: \"{start}\"
retention:
  keep: 1 day
"
    );
    let project = TestProject::new()
        .config(
            "partman_version: 5
environments:
  a:
    url_env: A_URL
  b:
    url_env: [B_URL, B_UNSET_URL]",
        )
        .policy("events", &policy)
        .compiled();
    let vars = vec![
        ("A_URL", lapsing.url.clone()),
        (
            "B_URL",
            cluster.url_as("postgres", Some(SECRET), &holding.name),
        ),
    ];
    for db in [&lapsing, &holding] {
        with_events(db);
        let out = project
            .command(&["apply", "--auto-approve"])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    lapsing.psql(&[
        "-c",
        "INSERT INTO public.events SELECT g, now() - interval '5 days' FROM generate_series(1, 10) g",
    ]);

    let out = run_with(&project, &vars, &["status", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the unset variable is an error: {}",
        text(&out)
    );
    let report = stdout(&out);
    assert!(
        report.starts_with("retentionc status: 3 databases: 1 with lapsed retention, 1 errors"),
        "{report}"
    );
    assert!(
        report.contains("the variable B_UNSET_URL is not set"),
        "{report}"
    );

    let out = run_with(&project, &vars, &["status", "--all", "--check"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains("retention lapsed on 1 of 3 databases"));

    let out = run_with(&project, &vars, &["status", "--all", "--format", "json"]);
    let document = json(&out);
    assert_eq!(document["kind"], "retentionc-fleet-status");
    assert_eq!(document["summary"]["lapsed"], 1);
    let databases = document["databases"].as_array().unwrap();
    assert_eq!(databases[0]["lapsed"][0], "public.events", "{document}");
    assert!(
        databases[2]["error"]
            .as_str()
            .unwrap()
            .contains("B_UNSET_URL")
    );

    // Metrics for a fleet: every sample names its environment and database, and
    // retentionc_database_up says which databases could be read.
    let out = run_with(
        &project,
        &vars,
        &["status", "--all", "--format", "prometheus"],
    );
    let metrics = stdout(&out);
    let samples = |name: &str| -> Vec<String> {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .map(str::to_string)
            .collect()
    };
    let up = samples("retentionc_database_up");
    assert_eq!(up.len(), 3, "{metrics}");
    assert_eq!(
        up.iter().filter(|l| l.ends_with(" 1")).count(),
        2,
        "{metrics}"
    );
    assert!(
        up.iter()
            .any(|l| l.contains("environment=\"b\"") && l.ends_with(" 0")),
        "{metrics}"
    );
    let lapsed: Vec<String> = samples("retentionc_lapsed")
        .into_iter()
        .filter(|l| l.contains("rule=\"\"") && l.ends_with(" 1"))
        .collect();
    assert_eq!(lapsed.len(), 1, "{metrics}");
    assert!(
        lapsed[0].starts_with("retentionc_lapsed{environment=\"a\",database=")
            && lapsed[0].contains("table=\"public.events\""),
        "{metrics}"
    );
    assert_eq!(
        samples("retentionc_status_timestamp_seconds").len(),
        2,
        "one read per database read: {metrics}"
    );
    let out = run_with(&project, &vars, &["run", "--all", "--log-format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("--log-format json reports one database's run"),
        "{}",
        text(&out)
    );

    let out = run_with(&project, &vars, &["run", "--all", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = stdout(&out);
    assert!(
        report.starts_with("retentionc run: 3 databases: 2 ok, 0 with failures, 1 errors"),
        "{report}"
    );
    let out = run_with(&project, &vars, &["status", "--env", "a", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "run restored retention: {}",
        text(&out)
    );
}

#[test]
fn environments_are_named_and_checked_before_any_database_is_reached() {
    let project = TestProject::new()
        .config(
            "environments:
  staging:
    url_env: STAGING_URL
  production:
    url_env: PROD_URL",
        )
        .policy("events", EVENTS_POLICY)
        .compiled();
    let out = project.run(&["plan", "--env", "prodution"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--env prodution: no such environment")
            && stderr(&out).contains("did you mean \"production\"?")
            && stderr(&out).contains("staging, production"),
        "{}",
        text(&out)
    );
    let out = TestProject::new().run(&["status", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("names no environments"),
        "{}",
        text(&out)
    );
    let out = project.run(&["plan", "--env", "staging", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses both: {}",
        text(&out)
    );
    // A conversion is never started across a fleet: refused, not ignored.
    for selection in [&["--all"][..], &["--env", "staging"][..]] {
        let mut args = vec!["apply", "--convert", "--auto-approve"];
        args.extend_from_slice(selection);
        let out = project.run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            stderr(&out).contains("--convert works on one database at a time")
                && stderr(&out).contains("nothing was changed"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn compile_writes_and_checks_a_folder_for_each_environment_whose_sql_differs() {
    let project = TestProject::new()
        .config(
            "partman_version: 5
environments:
  legacy:
    url_env: LEGACY_URL
    partman_version: 4
  patient:
    url_env: PATIENT_URL
    lock_timeout: 30s",
        )
        .policy("events", EVENTS_POLICY)
        .compiled();
    assert!(project.generated("legacy/_retentionc.sql").is_file());
    assert!(project.generated("legacy/public.events.sql").is_file());
    assert!(
        !project.generated("patient").exists(),
        "lock_timeout changes no SQL: generated/ serves it"
    );
    let file = project.generated("legacy/public.events.sql");
    let sql = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, sql.replace("premake", "premake ")).unwrap();
    let out = project.run(&["compile", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("generated/ is up to date")
            && stdout(&out).contains("generated/legacy/ is stale"),
        "{}",
        text(&out)
    );
    // plan and apply refuse an environment whose folder is stale, before any database.
    for command in [
        vec!["plan", "--env", "legacy"],
        vec!["apply", "--env", "legacy", "--auto-approve"],
    ] {
        let out = project.run(&command);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            stderr(&out).contains("generated/legacy is not what `retentionc compile` writes")
                || stderr(&out).contains("generated/legacy/public.events.sql"),
            "{command:?}: {}",
            text(&out)
        );
    }
    project.compile();
    let out = project.run(&["compile", "--check"]);
    assert!(out.status.success(), "{}", text(&out));
}
