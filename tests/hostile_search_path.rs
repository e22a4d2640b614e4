//! A table owner (not a superuser) who owns a schema `evil` fills it with look-alikes of
//! what retention's SQL uses: functions (`now()`, `clock_timestamp()`, `format`,
//! `set_config`, `current_setting`, `jsonb_build_object`, `pg_relation_size`), operators
//! (`=` on text and `<` on timestamptz that say true, `||` on name and text) and types
//! (domains named `text`, `jsonb`, `regclass`, `timestamptz`, `oid`, `tid`), each
//! recording its call in `evil.tripwire` and doing harm (a clock 100 years ahead, every
//! comparison true). The owner's role says `search_path = evil, public`; the database says
//! `search_path = evil, pg_catalog, public`, which puts `evil` before the system catalog for
//! every session that does not set its own. Then `apply`, `retentionc run`, and the prune
//! procedure CALLed as pg_cron calls it (logged in as the table's owner, with the role's
//! and then the database's search_path) run, on pg_partman 4.7.2 and 5.2.4, with a writer
//! inserting: no look-alike is ever called, and retention is exact (what is inside the
//! windows stays, what is outside goes).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::cluster::{Cluster, Partman, TestDb, quote_ident};
use common::data::{Writer, db_hour};
use common::project::{TestProject, blocking, stdout, text};

static ROLES: AtomicU64 = AtomicU64::new(0);

/// The look-alikes, created by the owner in its schema `evil`. Every name they use is
/// qualified and their own search_path is the catalog's, so they never call each other.
const EVIL_OBJECTS: &str = r#"
CREATE TABLE evil.tripwire (what pg_catalog.text NOT NULL, by_role pg_catalog.text NOT NULL DEFAULT CURRENT_USER);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT, SELECT ON evil.tripwire TO PUBLIC;
CREATE FUNCTION evil.trip(p_what pg_catalog.text) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO evil.tripwire (what) VALUES (p_what);
    RETURN true;
END $$;
CREATE FUNCTION evil.now() RETURNS timestamp with time zone
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('now()'); RETURN pg_catalog.now() + interval '100 years'; END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamp with time zone
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('clock_timestamp()'); RETURN pg_catalog.clock_timestamp() + interval '100 years'; END $$;
CREATE FUNCTION evil.format(pg_catalog.text, pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('format(text, text)'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION evil.format(pg_catalog.text, bigint) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('format(text, bigint)'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION evil.format(pg_catalog.text, pg_catalog.name, pg_catalog.name) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('format(text, name, name)'); RETURN pg_catalog.format($1, $2, $3); END $$;
CREATE FUNCTION evil.set_config(pg_catalog.text, pg_catalog.text, boolean) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('set_config'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION evil.current_setting(pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('current_setting(text)'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION evil.current_setting(pg_catalog.text, boolean) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('current_setting(text, boolean)'); RETURN pg_catalog.current_setting($1, $2); END $$;
CREATE FUNCTION evil.jsonb_build_object(pg_catalog.text, bigint) RETURNS pg_catalog.jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('jsonb_build_object(text, bigint)'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION evil.jsonb_build_object(pg_catalog.text, pg_catalog.text) RETURNS pg_catalog.jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('jsonb_build_object(text, text)'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION evil.pg_relation_size(oid) RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('pg_relation_size(oid)'); RETURN 0; END $$;
CREATE FUNCTION evil.text_equal(pg_catalog.text, pg_catalog.text) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('text = text'); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, FUNCTION = evil.text_equal);
CREATE FUNCTION evil.time_before(timestamp with time zone, timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('timestamptz < timestamptz'); RETURN true; END $$;
CREATE OPERATOR evil.< (LEFTARG = timestamp with time zone, RIGHTARG = timestamp with time zone, FUNCTION = evil.time_before);
CREATE FUNCTION evil.name_concat(pg_catalog.name, pg_catalog.text) RETURNS pg_catalog.text
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM evil.trip('name || text'); RETURN pg_catalog.textcat($1::pg_catalog.text, $2); END $$;
CREATE OPERATOR evil.|| (LEFTARG = pg_catalog.name, RIGHTARG = pg_catalog.text, FUNCTION = evil.name_concat);
CREATE DOMAIN evil.text AS pg_catalog.text CHECK (evil.trip('type text'));
CREATE DOMAIN evil.jsonb AS pg_catalog.jsonb CHECK (evil.trip('type jsonb'));
CREATE DOMAIN evil.regclass AS pg_catalog.regclass CHECK (evil.trip('type regclass'));
CREATE DOMAIN evil.timestamptz AS timestamp with time zone CHECK (evil.trip('type timestamptz'));
CREATE DOMAIN evil.oid AS pg_catalog.oid CHECK (evil.trip('type oid'));
CREATE DOMAIN evil.tid AS pg_catalog.tid CHECK (evil.trip('type tid'));
"#;

/// A query run with the catalog first, whatever the database's search_path says (the
/// test's own reads must not call the look-alikes).
fn trusted(db: &TestDb, sql: &str) -> String {
    db.psql(&[
        "-q",
        "-At",
        "-c",
        "SET search_path = pg_catalog, public",
        "-c",
        sql,
    ])
    .trim()
    .to_string()
}

/// The tables, owned by the owner: public.events (hourly partitions on `mtime`, keep 3
/// hours) and public.audit (a plain table), both with a rule deleting `debug` rows after 1
/// hour; each has a ledger of every row inserted.
const TABLES: [&str; 2] = ["public.events", "public.audit"];

/// The owner, its schema `evil` and the look-alikes, and the [`TABLES`] owned by it.
fn hostile_owner(db: &TestDb) -> String {
    let owner = format!(
        "owner_{}_{}",
        std::process::id(),
        ROLES.fetch_add(1, Ordering::Relaxed)
    );
    let quoted = quote_ident(&owner);
    let columns = "id bigserial NOT NULL, mtime timestamptz NOT NULL DEFAULT now(), \
                   level text NOT NULL DEFAULT 'info', payload text";
    db.psql(&[
        "-c",
        &format!("CREATE ROLE {quoted} LOGIN NOSUPERUSER"),
        "-c",
        &format!("CREATE SCHEMA evil AUTHORIZATION {quoted}"),
        "-c",
        &format!("CREATE TABLE public.events ({columns}) PARTITION BY RANGE (mtime)"),
        "-c",
        &format!("CREATE TABLE public.audit ({columns})"),
        "-c",
        "CREATE TABLE public.ledger (table_name text NOT NULL, id bigint NOT NULL, mtime timestamptz NOT NULL, level text NOT NULL)",
    ]);
    for table in TABLES {
        db.psql(&[
            "-c",
            &format!("ALTER TABLE {table} OWNER TO {quoted}"),
            "-c",
            &format!("ALTER SEQUENCE {table}_id_seq OWNER TO {quoted}"),
        ]);
    }
    db.psql(&["-c", &format!("SET ROLE {quoted}"), "-c", EVIL_OBJECTS]);
    owner
}

/// Rows of each table every 10 minutes from `from_minutes` to `to_minutes` ago,
/// alternately `debug` and `info`, each also in the ledger.
fn insert_old_rows(db: &TestDb, from_minutes: i64, to_minutes: i64) {
    for table in TABLES {
        trusted(
            db,
            &format!(
                "WITH r AS (INSERT INTO {table} (mtime, level) \
                   SELECT now() - make_interval(mins => m), CASE WHEN (m / 10) % 2 = 0 THEN 'debug' ELSE 'info' END \
                     FROM generate_series({to_minutes}, {from_minutes}, 10) m RETURNING id, mtime, level) \
                 INSERT INTO public.ledger SELECT '{table}', id, mtime, level FROM r"
            ),
        );
    }
}

const DEBUG_RULE: &str = "deletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 hour\n    column: mtime\n    batch_size: 5\n";

/// public.events: hourly partitions from 7 hours back, keep 3 hours, and the debug rule.
fn events_policy(db: &TestDb) -> String {
    format!(
        "table: public.events\npartitioning:\n  column: mtime\n  interval: 1 hour\n  premake: 2\n  start: \"{}\"\n\
         retention:\n  keep: 3 hours\n{DEBUG_RULE}",
        db_hour(db, -7)
    )
}

/// Nothing in the windows was deleted (every ledger row younger than keep at `after`, 3
/// hours for public.events, and of `debug` rows younger than 1 hour, is there), and what
/// the rule expires at `before` is gone; `partitions`: partitions of public.events older
/// than keep + one interval are gone too.
fn assert_retention_exact(db: &TestDb, before: &str, after: &str, partitions: bool, context: &str) {
    for table in TABLES {
        // Only public.events has a retention; public.audit keeps every row but old debug ones.
        let inside_keep = match table {
            "public.events" => format!("AND l.mtime > '{after}'::timestamptz - interval '3 hours'"),
            _ => String::new(),
        };
        let lost = trusted(
            db,
            &format!(
                "SELECT count(*) FROM public.ledger l WHERE l.table_name = '{table}' \
                   AND NOT EXISTS (SELECT 1 FROM {table} e WHERE e.id = l.id) {inside_keep} \
                   AND (l.level <> 'debug' OR l.mtime > '{after}'::timestamptz - interval '1 hour')"
            ),
        );
        assert_eq!(
            lost, "0",
            "{context}: rows of {table} inside the window were deleted"
        );
        let old_debug = trusted(
            db,
            &format!(
                "SELECT count(*) FROM {table} WHERE level = 'debug' AND mtime < '{before}'::timestamptz - interval '1 hour 1 minute'"
            ),
        );
        assert_eq!(
            old_debug, "0",
            "{context}: debug rows of {table} past the rule's window remain"
        );
    }
    if partitions {
        let old = trusted(
            db,
            &format!(
                "SELECT count(*) FROM public.events WHERE mtime < '{before}'::timestamptz - interval '4 hours 1 minute'"
            ),
        );
        assert_eq!(old, "0", "{context}: rows past keep + one partition remain");
    }
}

fn assert_no_lookalike_called(db: &TestDb, context: &str) {
    let calls = trusted(
        db,
        "SELECT coalesce(string_agg(DISTINCT what || ' by ' || by_role, ', '), '') FROM evil.tripwire",
    );
    assert_eq!(calls, "", "{context}: look-alikes were called");
}

/// Each policy's pg_cron job command (`CALL retention.prune_events(p_run_maintenance =>
/// true)`, `CALL retention.prune_audit()`), run as pg_cron runs it: in a session of the
/// table's owner, whose role and database settings apply at login, as one simple-protocol
/// statement.
async fn call_as_the_scheduler(db: &TestDb, project: &TestProject, owner: &str) {
    let loaded = project.load();
    let url = db.cluster.url_as(owner, None, &db.name);
    for policy in &loaded.policies {
        let command = retentionc::render::schedule_command(&loaded.config, policy);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let search_path = client
            .query_one("SHOW search_path", &[])
            .await
            .unwrap()
            .get::<_, String>(0);
        eprintln!("{command} as {owner}, search_path {search_path}");
        client
            .batch_execute(&command)
            .await
            .unwrap_or_else(|e| panic!("{command} as {owner} (search_path {search_path}): {e:?}"));
        drop(client);
        let _ = connection.await;
    }
}

async fn lookalikes_are_never_called(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let owner = hostile_owner(&db);
    let context = partman.to_string();
    db.psql(&[
        "-c",
        &format!(
            "ALTER ROLE {} SET search_path = evil, public",
            quote_ident(&owner)
        ),
        "-c",
        &format!(
            "ALTER DATABASE {} SET search_path = evil, pg_catalog, public",
            quote_ident(&db.name)
        ),
    ]);
    // The settings are in force for new sessions: `=` on text is the look-alike's.
    assert_eq!(
        db.scalar("SELECT 'a'::pg_catalog.text = 'b'::pg_catalog.text"),
        "t"
    );
    trusted(&db, "TRUNCATE evil.tripwire");

    let project = TestProject::for_db(&db)
        .lock_timeout("2s")
        .policy("events", &events_policy(&db))
        .policy("audit", &format!("table: public.audit\n{DEBUG_RULE}"))
        .compiled();
    // generated/ run by hand with psql, as the superuser: the session's search_path is the
    // database's.
    project.install_with_psql(&db);
    assert_no_lookalike_called(&db, &format!("{context}: generated/ run with psql"));
    let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "{context}: {}", text(&out));
    assert_no_lookalike_called(&db, &format!("{context}: apply"));

    insert_old_rows(&db, 360, 1);
    let writer = Writer::start_sql(
        &db,
        "INSERT INTO public.events (level, payload) VALUES ('debug', 'writer') RETURNING id",
        Duration::from_millis(5),
    )
    .await;

    // `retentionc run`, connected as the superuser under the database's search_path.
    let before = trusted(&db, "SELECT now()");
    let out = blocking(|| project.run(&["run"]));
    let after = trusted(&db, "SELECT now()");
    assert!(out.status.success(), "{context}: {}", text(&out));
    for table in TABLES {
        assert!(
            stdout(&out).contains(&format!("{table}: ok")),
            "{}",
            text(&out)
        );
    }
    assert_no_lookalike_called(&db, &format!("{context}: run"));
    assert_retention_exact(&db, &before, &after, true, &format!("{context}: run"));

    // The scheduled CALLs as the owner, first under the role's search_path, then (the
    // role's setting removed) under the database's.
    for setting in ["the role's", "the database's"] {
        if setting == "the database's" {
            trusted(
                &db,
                &format!("ALTER ROLE {} RESET search_path", quote_ident(&owner)),
            );
        }
        insert_old_rows(&db, 110, 70);
        for table in TABLES {
            let due = trusted(
                &db,
                &format!(
                    "SELECT count(*) FROM {table} WHERE level = 'debug' AND mtime < now() - interval '1 hour'"
                ),
            );
            assert_ne!(
                due, "0",
                "{context}: nothing in {table} for the rule to delete"
            );
        }
        let before = trusted(&db, "SELECT now()");
        call_as_the_scheduler(&db, &project, &owner).await;
        let after = trusted(&db, "SELECT now()");
        let context = format!("{context}: the scheduled CALLs under {setting} search_path");
        assert_no_lookalike_called(&db, &context);
        assert_retention_exact(&db, &before, &after, false, &context);
    }

    let kept = writer.finish_kept(&db, "public.events").await;
    assert!(kept > 0, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalikes_are_never_called_pg_partman_4() {
    lookalikes_are_never_called(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookalikes_are_never_called_pg_partman_5() {
    lookalikes_are_never_called(Partman::V5).await;
}
