//! `plan` and `apply` refuse, from the live catalog, a policy whose table is not a user
//! table retentionc may delete from, whatever its name says: a view, a materialized view,
//! a foreign table, an extension's table (pg_partman's part_config with pg_partman in a
//! schema of an unusual name, a user table made a member of the extension, a user table in
//! the extension's schema), and a table in retentionc's own schema under a non-default
//! `schema:`. Through the binary, on pg_partman 4.7.2 and 5.2.4; each refusal names the
//! policy file, line, column and the key `table`, and the database is left exactly as it
//! was (no retentionc schema, no registration, no object added).

mod common;

use common::cluster::{Cluster, Partman, TestDb};
use common::project::{TestProject, stderr, text};

/// pg_partman's schema here: a name no compile-time check knows.
const EXTENSION_SCHEMA: &str = "housekeeping";
/// retentionc's own schema (`schema:` in retentionc.yaml).
const OWN_SCHEMA: &str = "ops_retention";

/// A database whose pg_partman lives in [`EXTENSION_SCHEMA`], with a partitioned table and
/// the non-user tables the policies name.
fn database_with_non_user_tables(partman: Partman) -> TestDb {
    let db = Cluster::shared().database(partman);
    db.psql(&[
        "-c",
        "DROP EXTENSION pg_partman",
        "-c",
        "DROP SCHEMA partman",
        "-c",
        &format!("CREATE SCHEMA {EXTENSION_SCHEMA}"),
        "-c",
        &format!(
            "CREATE EXTENSION pg_partman SCHEMA {EXTENSION_SCHEMA} VERSION '{}'",
            partman.version()
        ),
        "-c",
        "CREATE TABLE public.events (id bigint, mtime timestamptz NOT NULL, level text) PARTITION BY RANGE (mtime)",
        "-c",
        "CREATE TABLE public.events_default PARTITION OF public.events DEFAULT",
        "-c",
        "INSERT INTO public.events SELECT g, now() - make_interval(days => g), 'debug' FROM generate_series(1, 50) g",
        "-c",
        "CREATE VIEW public.events_view AS SELECT * FROM public.events",
        "-c",
        "CREATE MATERIALIZED VIEW public.events_daily AS \
           SELECT date_trunc('day', mtime) AS mtime, level, count(*) AS n FROM public.events GROUP BY 1, 2",
        // A foreign table needs a wrapper, not a library: this one can reach nothing.
        "-c",
        "CREATE FOREIGN DATA WRAPPER dummy",
        "-c",
        "CREATE SERVER nowhere FOREIGN DATA WRAPPER dummy",
        "-c",
        "CREATE FOREIGN TABLE public.remote_events (id bigint, mtime timestamptz, level text) SERVER nowhere",
        // A table of the public schema that belongs to the extension (dropped with it).
        "-c",
        "CREATE TABLE public.extension_notes (id bigint, mtime timestamptz, level text)",
        "-c",
        "ALTER EXTENSION pg_partman ADD TABLE public.extension_notes",
        // A table someone made in the extension's schema: not a member, still pg_partman's.
        "-c",
        &format!(
            "CREATE TABLE {EXTENSION_SCHEMA}.local_notes (id bigint, mtime timestamptz, level text)"
        ),
    ]);
    db
}

/// A policy with one delete rule on `mtime` of `table`.
fn delete_policy(table: &str) -> String {
    format!(
        "table: {table}\ndeletes:\n  - name: old_debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n    column: mtime\n"
    )
}

/// What a refusal must leave unchanged: every relation, schema and routine outside the
/// system schemas, extension memberships, pg_partman's registrations, and the roles'
/// attributes.
fn catalog_snapshot(db: &TestDb) -> String {
    db.psql(&[
        "-At",
        "-c",
        "SELECT format('%I.%I %s %s', n.nspname, c.relname, c.relkind, c.relowner::regrole)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
          ORDER BY 1",
        "-c",
        "SELECT nspname FROM pg_namespace ORDER BY 1",
        "-c",
        "SELECT p.oid::regprocedure::text || ' ' || md5(p.prosrc)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        "-c",
        "SELECT count(*) FROM pg_depend WHERE deptype = 'e'",
        "-c",
        &format!(
            "SELECT coalesce(md5(string_agg(p::text, ',' ORDER BY parent_table)), 'none') FROM {EXTENSION_SCHEMA}.part_config p"
        ),
        "-c",
        "SELECT rolname || ' ' || rolsuper FROM pg_roles ORDER BY 1",
        "-c",
        "SELECT count(*) FROM public.events",
    ])
}

/// Runs `args` and checks that it exits 1 naming each `(file, message)` at the key
/// `table`, and that the database is as `before`.
fn assert_refused(
    project: &TestProject,
    db: &TestDb,
    args: &[&str],
    refusals: &[(&str, &str)],
    before: &str,
    context: &str,
) {
    let out = project.run(args);
    assert_eq!(out.status.code(), Some(1), "{context}: {}", text(&out));
    let err = stderr(&out);
    for (file, message) in refusals {
        let at = format!("policies/{file}.yaml:1:1: table: ");
        let line = err
            .lines()
            .find(|l| l.contains(&at))
            .unwrap_or_else(|| panic!("{context}: no error at {at}\n{}", text(&out)));
        assert!(
            line.contains(message),
            "{context}: {file}: expected \"{message}\" in {line}"
        );
    }
    assert_eq!(
        catalog_snapshot(db),
        before,
        "{context}: the database changed"
    );
    for schema in [OWN_SCHEMA, "retention"] {
        assert_eq!(
            db.scalar(&format!("SELECT to_regnamespace('{schema}') IS NULL")),
            "t",
            "{context}: schema {schema} was created"
        );
    }
}

fn non_user_tables_are_refused(partman: Partman) {
    let db = database_with_non_user_tables(partman);
    let refusals: [(&str, &str, &str); 6] = [
        (
            "view",
            "public.events_view",
            "public.events_view is a view (pg_class.relkind v), not a table",
        ),
        (
            "matview",
            "public.events_daily",
            "public.events_daily is a materialized view (pg_class.relkind m), not a table",
        ),
        (
            "foreign",
            "public.remote_events",
            "public.remote_events is a foreign table (pg_class.relkind f), not a table",
        ),
        (
            "part_config",
            "housekeeping.part_config",
            "housekeeping.part_config belongs to an extension (pg_depend records it as a member",
        ),
        (
            "member",
            "public.extension_notes",
            "public.extension_notes belongs to an extension (pg_depend records it as a member",
        ),
        (
            "in_extension_schema",
            "housekeeping.local_notes",
            "housekeeping.local_notes is in housekeeping, the schema of the extension pg_partman",
        ),
    ];
    let mut project = TestProject::for_db(&db).config(&format!("schema: {OWN_SCHEMA}"));
    for (file, table, _) in &refusals {
        project = project.policy(file, &delete_policy(table));
    }
    // Compile knows none of these names: only the live catalog tells what they are.
    project.compile();
    let expected: Vec<(&str, &str)> = refusals.iter().map(|(f, _, m)| (*f, *m)).collect();
    let before = catalog_snapshot(&db);
    let context = format!("{partman}");
    assert_refused(
        &project,
        &db,
        &["plan"],
        &expected,
        &before,
        &format!("{context} plan"),
    );
    assert_refused(
        &project,
        &db,
        &["apply", "--auto-approve", "--allow-data-loss"],
        &expected,
        &before,
        &format!("{context} apply"),
    );

    // retentionc's own schema, made by a first apply of a user table's policy.
    db.psql(&[
        "-c",
        "CREATE TABLE public.plain_events (id bigint, mtime timestamptz, level text)",
    ]);
    let own = TestProject::for_db(&db)
        .config(&format!(
            "schema: {OWN_SCHEMA}\npartman_schema: {EXTENSION_SCHEMA}"
        ))
        .policy("plain", &delete_policy("public.plain_events"))
        .compiled();
    let out = own.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "{context}: {}", text(&out));
    own.write_policy("own", &delete_policy(&format!("{OWN_SCHEMA}.run_log")));
    let before = catalog_snapshot(&db);
    let history = db.scalar(&format!("SELECT count(*) FROM {OWN_SCHEMA}.apply_history"));
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve", "--allow-data-loss"],
    ] {
        let out = own.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{context} {args:?}: {}",
            text(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "policies/own.yaml:1:8: table: {OWN_SCHEMA}.run_log is not a table retentionc may manage: {OWN_SCHEMA} is retentionc's own schema"
            )),
            "{context} {args:?}: {}",
            text(&out)
        );
        assert_eq!(
            catalog_snapshot(&db),
            before,
            "{context} {args:?}: the database changed"
        );
        assert_eq!(
            db.scalar(&format!("SELECT count(*) FROM {OWN_SCHEMA}.apply_history")),
            history,
            "{context} {args:?}"
        );
    }
}

#[test]
fn non_user_tables_are_refused_pg_partman_4() {
    non_user_tables_are_refused(Partman::V4);
}

#[test]
fn non_user_tables_are_refused_pg_partman_5() {
    non_user_tables_are_refused(Partman::V5);
}
