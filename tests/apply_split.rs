//! `apply` on a server whose lock table cannot hold the whole apply in one transaction:
//! plan says so, apply splits it into transactions that each leave the database
//! consistent (a table's changes are never split) under one session-level lock, and an
//! apply killed between them continues where it stopped, a reviewed plan included.
//! A private cluster with `max_locks_per_transaction = 24` and `max_connections = 20`
//! (a lock table of 480 by the documented formula; PostgreSQL sizes it a little larger,
//! counting background processes too), where registering 60 tables in one transaction
//! runs out of shared memory. Both pg_partman majors (their create_parent differ).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOptions, Partman, TestDb};
use common::project::{TestProject, stdout, text};

const TABLES: usize = 60;

fn small_lock_table() -> Arc<Cluster> {
    Arc::new(Cluster::start(ClusterOptions {
        settings: vec![
            ("max_locks_per_transaction".into(), "24".into()),
            ("max_connections".into(), "20".into()),
            // The lock table is sized per server process, background workers included.
            ("max_worker_processes".into(), "8".into()),
        ],
        ..Default::default()
    }))
}

fn table(i: usize) -> String {
    format!("public.t{i:02}")
}

/// `TABLES` partitioned tables, a policy for each (daily, premake 6, 30 days kept).
fn project_with_tables(db: &TestDb, lock_timeout: &str) -> TestProject {
    let mut ddl = String::new();
    let mut project = TestProject::for_db(db).config(&format!("lock_timeout: {lock_timeout}"));
    for i in 0..TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE {} (id bigint, at timestamptz NOT NULL, note text) PARTITION BY RANGE (at);\n",
            table(i)
        ));
        project = project.policy(
            &format!("t{i:02}"),
            &format!(
                "table: {}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 6\nretention:\n  keep: 30 days\n",
                table(i)
            ),
        );
    }
    db.psql(&["-q", "-c", &ddl]);
    project.compiled()
}

fn registered(db: &TestDb) -> BTreeSet<String> {
    db.psql(&["-At", "-c", "SELECT parent_table FROM partman.part_config"])
        .lines()
        .map(String::from)
        .collect()
}

/// Each history row's tables: those whose statements it holds.
fn tables_by_history_row(db: &TestDb) -> BTreeMap<i64, BTreeSet<String>> {
    let rows = db.psql(&[
        "-At",
        "-F",
        "|",
        "-c",
        "SELECT h.id, s FROM retention.apply_history h, unnest(h.statements) s ORDER BY h.id",
    ]);
    let mut by_row: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut id = 0;
    for line in rows.lines() {
        if let Some((n, _)) = line.split_once('|')
            && let Ok(n) = n.parse()
        {
            id = n;
        }
        by_row.entry(id).or_default();
        for i in 0..TABLES {
            if line.contains(&format!("'{}'", table(i))) {
                by_row.get_mut(&id).unwrap().insert(table(i));
            }
        }
    }
    by_row
}

/// Every table's three statements (setup, retention, privileges) are in one history row.
fn assert_tables_never_split(db: &TestDb, context: &str) {
    let statements = db.psql(&[
        "-At",
        "-F",
        "|",
        "-c",
        "SELECT h.id, count(*) FROM retention.apply_history h, unnest(h.statements) s \
          WHERE s LIKE '%''public.t%' GROUP BY h.id ORDER BY h.id",
    ]);
    assert!(!statements.is_empty(), "{context}: no history");
    for (row, tables) in tables_by_history_row(db) {
        for t in &tables {
            let in_row = db.scalar(&format!(
                "SELECT count(*) FROM retention.apply_history h, unnest(h.statements) s \
                  WHERE h.id = {row} AND s LIKE '%''{t}''%'"
            ));
            let everywhere = db.scalar(&format!(
                "SELECT count(*) FROM retention.apply_history h, unnest(h.statements) s \
                  WHERE s LIKE '%''{t}''%'"
            ));
            assert_eq!(
                in_row, everywhere,
                "{context}: the statements of {t} are split across transactions"
            );
        }
    }
}

/// Runs `retentionc apply ARGS` in the background.
fn spawn_apply(project: &TestProject, args: &[&str]) -> Child {
    project
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_until(db: &TestDb, sql: &str, expected: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.scalar(sql) != expected {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_split_apply_registers_every_table_in_consistent_transactions(partman: Partman) {
    let cluster = small_lock_table();
    let db = cluster.database(partman);
    let project = project_with_tables(&db, "5s");

    // What the split avoids: every file in one transaction does not fit this server.
    let mut all = String::from("BEGIN;\n");
    let mut files: Vec<_> = std::fs::read_dir(project.generated_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| p.file_name().unwrap() != "_retentionc.sql");
    for file in &files {
        all.push_str(&std::fs::read_to_string(file).unwrap());
    }
    all.push_str("COMMIT;\n");
    let script = project.root().join("all.sql");
    std::fs::write(&script, all).unwrap();
    let one = db.psql_output(&[
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-f",
        script.to_str().unwrap(),
    ]);
    assert!(
        !one.status.success()
            && String::from_utf8_lossy(&one.stderr).contains("out of shared memory"),
        "{partman}: one transaction should not fit: {}",
        String::from_utf8_lossy(&one.stderr)
    );
    assert!(registered(&db).is_empty(), "{partman}");

    // Plan says so before anything runs.
    let plan = project.run(&["plan"]);
    let plan_text = stdout(&plan);
    assert!(
        plan.status.success() && plan_text.contains("more than one transaction should hold"),
        "{partman}: {}",
        text(&plan)
    );
    assert!(
        plan_text.contains(
            "max_locks_per_transaction 24 x (max_connections 20 + max_prepared_transactions 0)"
        ),
        "{partman}: {plan_text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&project.run(&["plan", "--format", "json"]))).unwrap();
    let split = &json["apply_transactions"];
    assert_eq!(split["lock_capacity"], 480, "{partman}: {split}");
    let parts = split["transactions"].as_array().unwrap();
    assert!(parts.len() > 1, "{partman}: {split}");
    let changes: u64 = parts.iter().map(|p| p["changes"].as_u64().unwrap()).sum();
    assert_eq!(changes as usize, json["changes"].as_array().unwrap().len());

    let out = project.run(&["apply", "--auto-approve"]);
    assert!(out.status.success(), "{partman}: {}", text(&out));
    let said = stdout(&out);
    assert!(
        said.contains(&format!(
            "Transaction {} of {} committed",
            parts.len(),
            parts.len()
        )) && said.contains(&format!("in {} transactions", parts.len())),
        "{partman}: {said}"
    );

    let expected: BTreeSet<String> = (0..TABLES).map(table).collect();
    assert_eq!(registered(&db), expected, "{partman}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM retention.apply_history"),
        parts.len().to_string(),
        "{partman}: one history row per transaction"
    );
    assert_tables_never_split(&db, &partman.to_string());
    // Each row records the tables made so far, never one still to come.
    let by_row = tables_by_history_row(&db);
    let mut so_far = BTreeSet::new();
    for (row, tables) in &by_row {
        so_far.extend(tables.iter().cloned());
        let recorded: BTreeSet<String> = db
            .psql(&[
                "-At",
                "-c",
                &format!(
                    "SELECT jsonb_object_keys(applied_state->'tables') FROM retention.apply_history WHERE id = {row}"
                ),
            ])
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(recorded, so_far, "{partman}: history row {row}");
    }
    let plan = project.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{partman}: {}", text(&plan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_apply_registers_every_table_in_consistent_transactions_pg_partman_4() {
    a_split_apply_registers_every_table_in_consistent_transactions(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_apply_registers_every_table_in_consistent_transactions_pg_partman_5() {
    a_split_apply_registers_every_table_in_consistent_transactions(Partman::V5).await;
}

/// The first table of transaction `number` (1-based) of the plan saved at `path`.
fn first_table_of(path: &std::path::Path, number: usize) -> (String, usize) {
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let parts = plan["apply_transactions"]["transactions"]
        .as_array()
        .unwrap();
    let first = parts[number - 1]["first_change"].as_u64().unwrap() as usize;
    let table = plan["changes"][first]["table"]
        .as_str()
        .unwrap()
        .to_string();
    (table, parts.len())
}

/// Holds ACCESS EXCLUSIVE on `table` in an open transaction until dropped (rolled back).
async fn lock_table(db: &TestDb, table: &str) -> tokio_postgres::Client {
    let holder = db.client().await;
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    holder
}

const WAITING: &str = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                       AND application_name = 'retentionc' AND wait_event_type = 'Lock'";

async fn an_apply_stopped_between_transactions_continues_where_it_stopped(partman: Partman) {
    let cluster = small_lock_table();
    let db = cluster.database(partman);
    let project = project_with_tables(&db, "30s");
    let saved = project.root().join("plan.json");
    let plan = project.run(&["plan", "--out", saved.to_str().unwrap()]);
    assert!(plan.status.success(), "{partman}: {}", text(&plan));
    let (third, parts) = first_table_of(&saved, 3);
    assert!(parts >= 4, "{partman}: {parts} transactions");
    let saved_arg = saved.to_str().unwrap();

    // SIGTERM while transaction 3 waits for a lock: transactions 1 and 2 stay.
    let holder = lock_table(&db, &third).await;
    let child = spawn_apply(&project, &["apply", "--auto-approve", "--plan", saved_arg]);
    wait_until(&db, WAITING, "1", "apply waits in transaction 3").await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM retention.apply_history"),
        "2"
    );
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{partman}: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "transactions 1 to 2 of the apply's {parts} are committed"
        )),
        "{partman}: {}",
        text(&out)
    );
    drop(holder);
    let after_two = registered(&db);
    assert!(!after_two.contains(&third), "{partman}");
    assert_tables_never_split(&db, &format!("{partman}, after SIGTERM"));
    // Consistent: every table registered so far has its retention and owner's rights.
    for t in &after_two {
        assert_eq!(
            db.scalar(&format!(
                "SELECT retention FROM partman.part_config WHERE parent_table = '{t}'"
            )),
            "30 days",
            "{partman}: {t}"
        );
    }

    // The reviewed plan is still what is left to do: applied again, it continues; killed
    // (SIGKILL) while waiting in its next transaction, it leaves that one out.
    let (next, _) = first_table_of(&saved, 4);
    let holder = lock_table(&db, &next).await;
    let mut child = spawn_apply(&project, &["apply", "--auto-approve", "--plan", saved_arg]);
    wait_until(&db, WAITING, "1", "apply waits in its next transaction").await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("The last apply (apply_history id 2,"),
        "{partman}: {}",
        text(&out)
    );
    wait_until(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentionc'",
        "0",
        "the killed apply's session ends",
    )
    .await;
    drop(holder);
    let after_three = registered(&db);
    assert!(
        after_three.contains(&third) && !after_three.contains(&next),
        "{partman}"
    );
    assert_tables_never_split(&db, &format!("{partman}, after SIGKILL"));

    // Plan shows only what is left; apply with the reviewed plan finishes it.
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&project.run(&["plan", "--format", "json"]))).unwrap();
    let left: Vec<&str> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["table"].as_str().unwrap())
        .collect();
    assert!(
        left.iter().all(|t| !after_three.contains(*t)),
        "{partman}: {left:?}"
    );
    assert_eq!(
        left.len(),
        TABLES - after_three.len(),
        "{partman}: {left:?}"
    );
    let out = project.run(&["apply", "--auto-approve", "--plan", saved_arg]);
    assert!(out.status.success(), "{partman}: {}", text(&out));
    assert_eq!(registered(&db).len(), TABLES, "{partman}");
    assert_tables_never_split(&db, &format!("{partman}, finished"));
    let last_progress = db.scalar(
        "SELECT applied_state->'progress'->>'changes_done' = applied_state->'progress'->>'changes' \
           FROM retention.apply_history ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(last_progress, "t", "{partman}");
    let plan = project.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{partman}: {}", text(&plan));
    // Applied whole, the saved plan is done: applying it again is refused.
    let again = project.run(&["apply", "--auto-approve", "--plan", saved_arg]);
    assert_eq!(again.status.code(), Some(1), "{partman}: {}", text(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_stopped_between_transactions_continues_where_it_stopped_pg_partman_4() {
    an_apply_stopped_between_transactions_continues_where_it_stopped(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_stopped_between_transactions_continues_where_it_stopped_pg_partman_5() {
    an_apply_stopped_between_transactions_continues_where_it_stopped(Partman::V5).await;
}
