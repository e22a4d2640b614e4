//! A delete rule's `where` end to end on a real PostgreSQL 15, pg_partman 4.7.2 and 5.2.4,
//! through the binary: the server evaluates exactly the canonical text, reads it the same
//! with `standard_conforming_strings = off`, and conditions that call dangerous or
//! volatile functions are refused with nothing changed in the database.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Partman, TestDb, quote_ident};
use common::project::{TestProject, stderr, text};
use retentionc::policy::ident::quote_literal;
use retentionc::policy::where_clause::parse_condition;

/// Under `standard_conforming_strings = off`, `'a\'` does not end at its second quote: the
/// user's text would end the literal later, after which `) OR true` leaves the rule's
/// parentheses and its time filter. Read as the policy format reads it (standard strings),
/// it matches only old debug rows.
const TRICKY_WHERE: &str = r"(level = 'a\' AND level = ') OR true -- ') OR level = 'debug'";

const NOTES: &str = "
CREATE TABLE public.notes (
    id     bigint NOT NULL,
    at     timestamptz NOT NULL,
    level  text NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
-- Every row ever inserted, written in the same statement as the row itself.
CREATE TABLE public.ledger (id bigint PRIMARY KEY, at timestamptz NOT NULL, level text NOT NULL);
CREATE SEQUENCE public.note_ids;
";

/// Inserts `n` rows `age` old (up to half an hour more), of the given levels in turn,
/// into notes and the ledger.
fn insert_rows(db: &TestDb, n: i64, age: &str, levels: &[&str]) {
    let levels: Vec<String> = levels.iter().map(|l| quote_literal(l)).collect();
    db.psql(&[
        "-q",
        "-c",
        &format!(
            "WITH r AS (
                 INSERT INTO public.notes (id, at, level)
                 SELECT nextval('public.note_ids'), now() - {age}::interval - (g % 30) * interval '1 minute',
                        (ARRAY[{}])[1 + g % {}]
                   FROM generate_series(1, {n}) g
                 RETURNING id, at, level)
             INSERT INTO public.ledger SELECT id, at, level FROM r",
            levels.join(", "),
            levels.len(),
            age = quote_literal(age),
        ),
    ]);
}

/// Inserts young rows (debug and info, inside every window) one statement at a time
/// until `stop`; returns how many went in, and the errors.
async fn insert_until(url: String, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut inserted = 0;
    let mut errors = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let level = if i.is_multiple_of(2) { "debug" } else { "info" };
        let result = client
            .execute(
                "WITH r AS (INSERT INTO public.notes (id, at, level)
                            VALUES (nextval('public.note_ids'), now(), $1) RETURNING id, at, level)
                 INSERT INTO public.ledger SELECT id, at, level FROM r",
                &[&level],
            )
            .await;
        match result {
            Ok(_) => inserted += 1,
            Err(e) => errors.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (inserted, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backslash_condition_with_standard_conforming_strings_off_deletes_only_what_it_matches() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        db.psql(&[
            "-q",
            "-c",
            &format!(
                "ALTER DATABASE {} SET standard_conforming_strings = off",
                quote_ident(&db.name)
            ),
        ]);
        db.psql(&["-q", "-c", NOTES]);
        assert_eq!(db.scalar("SHOW standard_conforming_strings"), "off");
        let start = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
        let policy = format!(
            "table: public.notes\npartitioning:\n  column: at\n  interval: 1 hour\n  premake: 2\n  start: \"{start}\"\n\
             deletes:\n  - name: tricky\n    where: |-\n      {TRICKY_WHERE}\n    older_than: 1 hour\n    batch_size: 50\n"
        );
        let project = TestProject::for_db(&db).policy("notes", &policy).compiled();

        // What reviewers read and what the server runs is the canonical text.
        let canonical = parse_condition(TRICKY_WHERE).unwrap().canonical;
        assert_eq!(
            canonical,
            r"(level = E'a\\' AND level = ') OR true -- ') OR level = 'debug'"
        );
        let generated = std::fs::read_to_string(project.generated("public.notes.sql")).unwrap();
        assert!(
            generated.contains(&quote_literal(&canonical)),
            "{generated}"
        );

        let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert!(out.status.success(), "{partman}: {}", text(&out));
        let prosrc =
            db.scalar("SELECT prosrc FROM pg_proc WHERE oid = 'retention.prune_notes'::regproc");
        assert!(
            prosrc.contains(&format!("p_condition := {},", quote_literal(&canonical))),
            "{partman}: {prosrc}"
        );
        assert!(!prosrc.contains(TRICKY_WHERE), "{partman}: {prosrc}");

        // Old rows of every kind (levels that look like the condition's literals too),
        // and young ones; then the run, with inserts going on.
        let levels = ["debug", "info", r"a\", ") OR true -- ", "a' AND level = "];
        insert_rows(&db, 600, "3 hours", &levels);
        insert_rows(&db, 300, "5 minutes", &levels);
        let stop = Arc::new(AtomicBool::new(false));
        let inserter = tokio::spawn(insert_until(db.url.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let run = {
            let mut command = project.command(&["run"]);
            tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap()
        };
        let ran_for = started.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let (inserted, errors) = inserter.await.unwrap();
        assert!(run.status.success(), "{partman}: {}", text(&run));
        assert!(errors.is_empty(), "{partman}: {errors:?}");
        assert!(inserted > 0, "{partman}: no insert ran alongside");

        let cutoff = db.scalar(
            "SELECT detail->>'cutoff' FROM retention.run_log WHERE step = 'delete:tricky' ORDER BY started_at DESC LIMIT 1",
        );
        assert!(!cutoff.is_empty(), "{partman}: no cutoff logged");
        let should_go = format!(
            "l.level = 'debug' AND l.at < {}::timestamptz",
            quote_literal(&cutoff)
        );
        let wrongly_deleted = db.scalar(&format!(
            "SELECT count(*) FROM public.ledger l
              WHERE NOT ({should_go}) AND NOT EXISTS (SELECT 1 FROM public.notes n WHERE n.id = l.id)"
        ));
        let wrongly_kept = db.scalar(&format!(
            "SELECT count(*) FROM public.ledger l
              WHERE {should_go} AND EXISTS (SELECT 1 FROM public.notes n WHERE n.id = l.id)"
        ));
        let deleted = db.scalar(
            "SELECT count(*) FROM public.ledger l WHERE NOT EXISTS (SELECT 1 FROM public.notes n WHERE n.id = l.id)",
        );
        let inside_window = db.scalar(&format!(
            "SELECT count(*) FROM public.notes WHERE at >= {}::timestamptz",
            quote_literal(&cutoff)
        ));
        assert_eq!(
            wrongly_deleted, "0",
            "{partman}: rows the rule does not match went"
        );
        assert_eq!(wrongly_kept, "0", "{partman}: old debug rows were left");
        assert_eq!(
            deleted, "120",
            "{partman}: 600 old rows, a fifth of them debug"
        );
        eprintln!(
            "{partman}: run took {ran_for:?}; deleted {deleted}; {inside_window} rows inside the window kept, {inserted} inserted during the run"
        );
    }
}

/// A project for `db` whose one policy has a delete rule with `condition`.
fn project_with_condition(db: &TestDb, condition: &str) -> TestProject {
    let policy = format!(
        "table: public.events\ndeletes:\n  - name: rule\n    where: {}\n",
        serde_json::to_string(condition).unwrap()
    );
    TestProject::for_db(db).policy("events", &policy)
}

const EVENTS: &str = "
CREATE TABLE public.events (id bigint PRIMARY KEY, level text, tags text[], user_id bigint);
INSERT INTO public.events SELECT g, 'debug', ARRAY['x'], g FROM generate_series(1, 10) g;
";

/// A role the cron example tries to make superuser (roles are the cluster's, not the
/// database's: made once, whichever test gets there first).
const VICTIM_ROLE: &str = "DO $$ BEGIN CREATE ROLE retentionc_where_victim NOLOGIN; \
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$";

#[test]
fn dangerous_functions_are_refused_before_anything_changes() {
    let db = Cluster::shared().cron_database(Partman::V5);
    db.psql(&["-q", "-c", EVENTS]);
    db.psql(&["-q", "-c", VICTIM_ROLE]);
    let jobs_before = db.scalar("SELECT count(*) FROM cron.job");
    for (condition, function) in [
        (
            "pg_terminate_backend(pg_backend_pid())",
            "pg_terminate_backend",
        ),
        (
            "cron.schedule('x', '* * * * *', 'ALTER ROLE retentionc_where_victim SUPERUSER') > 0",
            "cron.schedule",
        ),
        ("pg_sleep(30) IS NOT NULL", "pg_sleep"),
    ] {
        let project = project_with_condition(&db, condition);
        let started = Instant::now();
        let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert_eq!(out.status.code(), Some(1), "{condition}: {}", text(&out));
        let message = stderr(&out);
        assert!(
            message.contains("policies/events.yaml:4:12: deletes[0].where: calls")
                && message.contains(function),
            "{condition}: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{condition}: slept"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'retention'"),
            "0",
            "{condition}: apply changed the database"
        );
        assert_eq!(db.scalar("SELECT count(*) FROM cron.job"), jobs_before);
        assert_eq!(
            db.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = 'retentionc_where_victim'"),
            "f"
        );
        assert_eq!(db.scalar("SELECT count(*) FROM public.events"), "10");
    }
}

const FUNCTIONS: &str = "
CREATE FUNCTION public.stable_fn(text) RETURNS text STABLE LANGUAGE sql AS 'SELECT upper($1)';
CREATE FUNCTION public.immutable_fn(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT lower($1)';
CREATE FUNCTION public.volatile_fn(text) RETURNS text VOLATILE LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION public.volatile_overlap(int, int) RETURNS boolean VOLATILE LANGUAGE sql AS 'SELECT $1 = $2';
CREATE OPERATOR pg_catalog.@> (LEFTARG = int, RIGHTARG = int, FUNCTION = public.volatile_overlap);
CREATE VIEW public.user_view AS SELECT user_id FROM public.events;
";

#[test]
fn plan_refuses_volatile_or_unknown_functions_and_accepts_stable_and_immutable_ones() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        db.psql(&["-q", "-c", EVENTS]);
        db.psql(&["-q", "-c", FUNCTIONS]);
        for (condition, expected) in [
            ("random() < 0.5", "calls random(), which is VOLATILE"),
            (
                "public.volatile_fn(level) = 'x'",
                "calls public.volatile_fn(text), which is VOLATILE",
            ),
            (
                "stable_fn(level) = 'x'",
                "schema pg_catalog has no such function; the condition runs with search_path pg_catalog, pg_temp, \
                 so a function of your own must be schema-qualified, such as public.stable_fn(...)",
            ),
            ("tags @> ARRAY['x']", "runs a VOLATILE function"),
            (
                "user_id IN (SELECT user_id FROM public.user_view)",
                "is a view",
            ),
            (
                "public.missing(level)",
                "schema public has no such function",
            ),
        ] {
            let project = project_with_condition(&db, condition).compiled();
            for command in [
                &["plan"][..],
                &["apply", "--auto-approve", "--allow-data-loss"],
            ] {
                let out = project.run(command);
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{partman} {command:?} {condition}: {}",
                    text(&out)
                );
                let message = stderr(&out);
                assert!(
                    message.contains("policies/events.yaml:4:5: deletes[0].where:")
                        && message.contains(expected),
                    "{partman} {command:?} {condition}: {message}"
                );
            }
            assert_eq!(
                db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'retention'"),
                "0",
                "{partman} {condition}: changed the database"
            );
        }
        let project = project_with_condition(
            &db,
            "public.stable_fn(level) = 'DEBUG' AND public.immutable_fn(level) = 'debug' AND id > 5",
        )
        .compiled();
        let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
        assert!(out.status.success(), "{partman}: {}", text(&out));
        let out = project.run(&["run"]);
        assert!(out.status.success(), "{partman}: {}", text(&out));
        assert_eq!(
            db.scalar("SELECT count(*) FROM public.events"),
            "5",
            "{partman}"
        );
    }
}
