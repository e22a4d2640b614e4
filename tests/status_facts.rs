//! How status reads its per-table facts: through retentionc's `read_facts()` in one call
//! per kind of fact whatever the number of tables, each query's locks released once read;
//! the same facts as when the queries are sent one `UNION ALL` per 100 tables (what status
//! does before apply has made `read_facts()`); one failing query is that table's error.

mod common;

use common::cluster::{Cluster, Partman, TestDb};
use common::project::{TestProject, text};

/// `n` daily-partitioned tables with retention and a delete rule, and `n` plain tables with
/// a delete rule, prefixed `prefix`; installed with psql. Every table holds one debug row
/// older than its rule allows and one new row.
fn install_tables(db: &TestDb, prefix: &str, n: usize) -> TestProject {
    let mut ddl = String::new();
    let mut project = TestProject::for_db(db);
    for i in 0..n {
        ddl.push_str(&format!(
            "CREATE TABLE public.{prefix}s{i} (at timestamptz NOT NULL, level text) PARTITION BY RANGE (at);
             CREATE INDEX ON public.{prefix}s{i} (at);
             CREATE TABLE public.{prefix}d{i} (at timestamptz NOT NULL, level text);
             INSERT INTO public.{prefix}d{i} VALUES (now() - interval '40 days', 'debug'), (now(), 'info');"
        ));
        project = project
            .policy(
                &format!("{prefix}s{i}"),
                &format!(
                    "table: public.{prefix}s{i}\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\n\
                     retention:\n  keep: 30 days\ndeletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n"
                ),
            )
            .policy(
                &format!("{prefix}d{i}"),
                &format!(
                    "table: public.{prefix}d{i}\ndeletes:\n  - name: old_debug\n    where: \"level = 'debug'\"\n    column: at\n    older_than: 30 days\n"
                ),
            );
    }
    db.psql(&["-q", "-c", &ddl]);
    let project = project.compiled();
    project.install_with_psql(db);
    for i in 0..n {
        db.psql(&[
            "-q",
            "-c",
            &format!(
                "INSERT INTO public.{prefix}s{i} VALUES (now() - interval '26 hours', 'debug'), (now(), 'info')"
            ),
        ]);
    }
    project
}

async fn read(db: &TestDb, project: &TestProject) -> retentionc::status::facts::Facts {
    let client = db.client().await;
    retentionc::status::facts::read(&client, &project.load())
        .await
        .unwrap()
}

/// The facts as comparable text: oldest rows, rules with rows left, default partition rows.
fn per_table(facts: &retentionc::status::facts::Facts) -> String {
    format!(
        "oldest: {:?}\noverdue: {:?}\ndefault rows: {:?}",
        facts.oldest, facts.overdue, facts.default_rows
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sends_the_same_statements_for_3_and_150_tables() {
    let db = Cluster::shared().database(Partman::V5);
    let mut sent = Vec::new();
    for (prefix, n) in [("a", 3), ("b", 150)] {
        let project = install_tables(&db, prefix, n);
        let facts = read(&db, &project).await;
        assert_eq!(facts.oldest.len(), n, "{prefix}");
        assert_eq!(facts.overdue.len(), 2 * n, "{prefix}");
        // Without a schedule a rule allows `older_than`: every table's old debug row is
        // past it.
        assert!(
            facts.overdue.values().all(|o| o == &Ok(true)),
            "{prefix}: {:?}",
            facts.overdue
        );
        assert!(
            facts.oldest.values().all(|o| matches!(o, Ok(Some(_)))),
            "{prefix}: {:?}",
            facts.oldest
        );
        assert_eq!(facts.default_rows.len(), n, "{prefix}");
        assert!(
            facts.default_rows.values().all(|r| r == &Ok(0)),
            "{:?}",
            facts.default_rows
        );
        sent.push(facts.statements_sent);
    }
    assert_eq!(
        sent[0], sent[1],
        "statements for 6 and 300 tables: {sent:?}"
    );
}

/// Without `read_facts()` (a database whose retentionc schema predates it), status reads
/// the same facts; a failing query is one rule's error on both paths, with the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facts_are_the_same_through_read_facts_and_without_it() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        let project = install_tables(&db, "c", 3);
        // Rows in one default partition, and one rule that no longer plans.
        db.psql(&[
            "-q",
            "-c",
            "INSERT INTO public.cs0_default VALUES (now() - interval '400 days', 'x')",
            "-c",
            "ALTER TABLE public.cd1 DROP COLUMN level",
        ]);
        let through_routine = read(&db, &project).await;
        let error = through_routine
            .overdue
            .get(&("public.cd1".to_string(), "old_debug".to_string()))
            .cloned();
        assert!(
            matches!(&error, Some(Err(e)) if e.contains("column \"level\" does not exist") && e.contains("42703")),
            "{error:?}"
        );
        assert_eq!(
            through_routine.default_rows.get("public.cs0"),
            Some(&Ok(1)),
            "{:?}",
            through_routine.default_rows
        );

        db.psql(&["-q", "-c", "DROP FUNCTION retention.read_facts(text[])"]);
        let sent_as_unions = read(&db, &project).await;
        assert_eq!(
            per_table(&through_routine),
            per_table(&sent_as_unions),
            "{partman:?}"
        );
        assert!(
            sent_as_unions.statements_sent > through_routine.statements_sent,
            "the fallback sends savepoints and retries: {} against {}",
            sent_as_unions.statements_sent,
            through_routine.statements_sent
        );
    }
}

/// Each query's locks are released once it is read: a call over 60 partitioned tables
/// leaves the transaction holding no lock on any of them, where the same queries run
/// directly hold one on each table and partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_facts_releases_each_querys_locks_and_reports_each_error_alone() {
    let db = Cluster::shared().database(Partman::V5);
    install_tables(&db, "l", 60);
    let client = db.client().await;
    let queries: Vec<String> = (0..60)
        .map(|i| format!("SELECT (SELECT min(at) FROM public.ls{i})::text"))
        .chain(["SELECT (1 / 0)::text".to_string()])
        .collect();
    let locks_held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                       WHERE l.pid = pg_backend_pid() AND c.relname LIKE 'ls%'";

    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT query, value, error FROM retention.read_facts($1::text[]) ORDER BY query",
            &[&queries],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 61);
    for row in &rows[..60] {
        assert!(row.get::<_, Option<String>>(1).is_some(), "{row:?}");
        assert!(row.get::<_, Option<serde_json::Value>>(2).is_none());
    }
    let division: serde_json::Value = rows[60].get(2);
    assert_eq!(division["sqlstate"], "22012", "{division}");
    assert!(rows[60].get::<_, Option<String>>(1).is_none());
    let held: i64 = client.query_one(locks_held, &[]).await.unwrap().get(0);
    assert_eq!(held, 0, "locks left by read_facts()");
    client.batch_execute("ROLLBACK").await.unwrap();

    // The same queries sent directly keep their locks to the end of the transaction.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .unwrap();
    for query in &queries[..60] {
        client.query(query.as_str(), &[]).await.unwrap();
    }
    let held: i64 = client.query_one(locks_held, &[]).await.unwrap().get(0);
    assert!(held >= 60 * 2, "locks held by the direct queries: {held}");
    client.batch_execute("ROLLBACK").await.unwrap();
}

/// A role that may not read a table is told the GRANT it needs, through `read_facts()` as
/// without it: a missing privilege is not one table's fact.
#[test]
fn a_missing_select_fails_status_with_the_grant_it_needs() {
    let db = Cluster::shared().database(Partman::V5);
    let project = install_tables(&db, "p", 1);
    let role = format!("{}_reader", db.name);
    db.psql(&[
        "-q",
        "-c",
        &format!("CREATE ROLE {role} LOGIN"),
        "-c",
        &format!(
            "GRANT USAGE ON SCHEMA partman, retention TO {role};
             GRANT SELECT ON partman.part_config, retention.apply_history, retention.managed_objects, retention.run_log TO {role};
             GRANT EXECUTE ON FUNCTION retention.read_facts(text[]) TO {role};
             GRANT SELECT ON public.ps0 TO {role};"
        ),
    ]);
    let url = db.cluster.url_as(&role, None, &db.name);
    let project = project.with_url(&url);
    let out = project.run(&["status"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("GRANT SELECT ON TABLE public.pd0 TO {role}")),
        "{}",
        text(&out)
    );
    db.psql(&[
        "-q",
        "-c",
        &format!("GRANT SELECT ON public.pd0, public.ps0_default TO {role}"),
    ]);
    let out = project.run(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
}
