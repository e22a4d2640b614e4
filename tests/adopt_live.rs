//! Adopting tables that already exist, against real PostgreSQL with pg_partman 4.7.2 and
//! 5.2.4, with rows inserted throughout and every inserted row kept in a ledger:
//!
//! - `import`, `compile`, `apply` on sets made with pg_partman's own create_parent, every
//!   interval and mode: `part_config` stays byte for byte what it was, only retentionc's
//!   own schema appears (and the grants an owner really lacks), the next plan is empty;
//! - `import` skips tables that have a policy, and `--force` rewrites only the keys it
//!   manages in the user's file, keeping the rest of its text;
//! - a table partitioned by hand (30 daily partitions of its own naming, with and without
//!   a default partition) is adopted with writers running, the next `run` expires exactly
//!   the partitions past `keep` by their bounds and no row inside the window, and the
//!   following plan is empty;
//! - pg_partman's warnings reach stderr during apply and run, one line each, naming the table.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::Duration;

use common::cluster::{Cluster, Partman, TestDb};
use common::data::Writer;
use common::project::{TestProject, blocking, stderr, stdout, text};

/// Runs the binary without stalling the runtime's other tasks (the writers).
fn run(project: &TestProject, args: &[&str]) -> Output {
    blocking(|| project.run(args))
}

fn ok(project: &TestProject, args: &[&str]) -> Output {
    let out = run(project, args);
    assert!(out.status.success(), "retentionc {args:?}:\n{}", text(&out));
    out
}

/// Every `part_config` row, every column, as pg_partman stores it.
fn part_config(db: &TestDb) -> String {
    db.psql(&[
        "-At",
        "-c",
        "SELECT to_jsonb(pc.*)::text FROM partman.part_config pc ORDER BY parent_table",
    ])
}

/// Every relation outside the system schemas and retentionc's own.
fn relations(db: &TestDb) -> String {
    db.psql(&[
        "-At",
        "-c",
        "SELECT c.oid::regclass::text || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname NOT IN ('information_schema', 'retention') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
    ])
}

/// Rows inserted in the background: a writer per table, inserting a row stamped now()
/// every 5 ms and keeping the ids its inserts returned.
async fn start_writers(db: &TestDb, tables: &[&'static str]) -> Vec<(&'static str, Writer)> {
    let mut writers = Vec::new();
    for table in tables {
        let sql =
            format!("INSERT INTO {table} (created_at, note) VALUES (now(), 'live') RETURNING id");
        let writer = Writer::start_sql(db, &sql, Duration::from_millis(5)).await;
        writers.push((*table, writer));
    }
    writers
}

/// Stops the writers, and checks that each inserted more than 3 rows and that every row
/// whose id it got back is still there.
async fn finish_writers(db: &TestDb, writers: Vec<(&str, Writer)>) {
    for (table, writer) in writers {
        let kept = writer.finish_kept(db, table).await;
        assert!(
            kept > 3,
            "the writer into {table} inserted too little: {kept}"
        );
    }
}

fn ids(db: &TestDb, sql: &str) -> BTreeSet<i64> {
    db.psql(&["-At", "-c", sql])
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// pg_partman's own create_parent, with the arguments each major takes.
fn create_parent(
    partman: Partman,
    table: &str,
    control: &str,
    interval: &str,
    extra: &str,
) -> String {
    let p_type = match partman {
        Partman::V4 => "native",
        Partman::V5 => "range",
    };
    format!(
        "SELECT partman.create_parent(p_parent_table := 'public.{table}', p_control := '{control}', \
         p_type := '{p_type}', p_interval := '{interval}'{extra});\n"
    )
}

/// One set per interval and mode, made by hand with create_parent and tuned in
/// part_config as a DBA would; `owned_daily` belongs to a role that is no superuser.
fn sets_made_with_create_parent(db: &TestDb, owner: &str) {
    let v = db.partman;
    let mut sql = format!(
        "CREATE SCHEMA archive;\nCREATE ROLE {owner} NOLOGIN;\nGRANT CREATE ON SCHEMA public TO {owner};\n"
    );
    let sets: [(&str, &str, &str); 12] = [
        ("daily_drop", "1 day", ""),
        ("daily_drop_noindex", "1 day", ", p_premake := 7"),
        ("hourly_detach", "1 hour", ", p_premake := 6"),
        ("hourly_detach_noindex", "1 hour", ""),
        ("weekly_archive", "1 week", ""),
        ("monthly_archive", "1 month", ", p_premake := 2"),
        ("yearly_drop", "1 year", ", p_premake := 1"),
        ("per_second", "1 second", ", p_premake := 10"),
        ("per_minute", "1 minute", ""),
        ("no_retention", "1 day", ""),
        ("owned_daily", "1 day", ""),
        ("epoch_daily", "1 day", ", p_epoch := 'seconds'"),
    ];
    for (table, interval, extra) in sets {
        let column = if table == "epoch_daily" {
            "ts bigint NOT NULL"
        } else {
            "created_at timestamptz NOT NULL"
        };
        sql += &format!(
            "CREATE TABLE public.{table} (id bigint GENERATED ALWAYS AS IDENTITY, {column}, note text) PARTITION BY RANGE ({});\n",
            column.split(' ').next().unwrap()
        );
        if table == "owned_daily" {
            sql += &format!("ALTER TABLE public.{table} OWNER TO {owner};\n");
        }
        sql += &create_parent(v, table, column.split(' ').next().unwrap(), interval, extra);
    }
    sql += "
        UPDATE partman.part_config SET retention = '30 days', retention_keep_table = false WHERE parent_table = 'public.daily_drop';
        UPDATE partman.part_config SET retention = '30 days', retention_keep_table = false, retention_keep_index = false,
               infinite_time_partitions = true WHERE parent_table = 'public.daily_drop_noindex';
        UPDATE partman.part_config SET retention = '2 days', infinite_time_partitions = true WHERE parent_table = 'public.hourly_detach';
        UPDATE partman.part_config SET retention = '48 hours', retention_keep_index = false WHERE parent_table = 'public.hourly_detach_noindex';
        UPDATE partman.part_config SET retention = '8 weeks', retention_schema = 'archive', retention_keep_table = false
         WHERE parent_table = 'public.weekly_archive';
        UPDATE partman.part_config SET retention = '12 months', retention_schema = 'archive', retention_keep_index = false,
               infinite_time_partitions = true WHERE parent_table = 'public.monthly_archive';
        UPDATE partman.part_config SET retention = '3 years', retention_keep_table = false WHERE parent_table = 'public.yearly_drop';
        UPDATE partman.part_config SET retention = '15', retention_keep_table = false, retention_keep_index = false
         WHERE parent_table = 'public.per_second';
        UPDATE partman.part_config SET retention = '1 hour', infinite_time_partitions = true WHERE parent_table = 'public.per_minute';
        UPDATE partman.part_config SET retention = '10 days', retention_keep_table = false WHERE parent_table = 'public.owned_daily';
        UPDATE partman.part_config SET retention = '7 days' WHERE parent_table = 'public.epoch_daily';
    ";
    db.psql(&["-q", "-c", &sql]);
}

async fn import_then_apply_changes_nothing(partman: Partman) {
    let db = Cluster::shared().database(partman);
    let owner = format!("app_owner_{}", db.name);
    sets_made_with_create_parent(&db, &owner);
    let before = part_config(&db);
    let relations_before = relations(&db);
    let writers = start_writers(
        &db,
        &[
            "public.daily_drop",
            "public.hourly_detach",
            "public.per_second",
        ],
    )
    .await;

    let project = TestProject::for_db(&db);
    let imported = ok(&project, &["import"]);
    assert!(
        stdout(&imported).contains("11 of 12 tables imported into policies; 1 skipped"),
        "{partman}: {}",
        text(&imported)
    );
    assert!(
        stdout(&imported)
            .contains("skipped public.no_retention: pg_partman keeps its partitions forever"),
        "{partman}: {}",
        text(&imported)
    );
    ok(&project, &["compile"]);

    // The plan: retentionc's own schema, and the grants the one owner that is no superuser
    // really lacks; nothing for pg_partman's settings.
    let planned = ok(&project, &["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let changes: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["table"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("retention".to_string(), "bootstrap".to_string()),
            ("public.owned_daily".to_string(), "owner_rights".to_string())
        ],
        "{partman}: {}",
        stdout(&planned)
    );
    let grants: Vec<&str> = plan["changes"][1]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // Each as the statement that gives it, from the one list apply grants and run checks.
    for missing in [
        "missing: GRANT USAGE ON SCHEMA retention TO ",
        "missing: GRANT EXECUTE ON FUNCTION retention.maintain(text, text) TO ",
        "missing: GRANT USAGE ON SCHEMA partman TO ",
    ] {
        assert!(
            grants.iter().any(|g| g.starts_with(missing)),
            "{partman}: {missing} in {grants:?}"
        );
    }
    assert!(
        grants.iter().any(|g| g.starts_with("missing: ")
            && g.contains("partitions owned by other roles (ALTER TABLE ... OWNER TO ")),
        "{partman}: {grants:?}"
    );

    let applied = ok(&project, &["apply", "--auto-approve"]);
    assert!(
        !stderr(&applied).contains("warning:"),
        "{partman}: {}",
        text(&applied)
    );
    let replanned = ok(&project, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        stdout(&replanned).lines().next(),
        Some("No changes: the database matches the policies."),
        "{partman}: {}",
        text(&replanned)
    );
    finish_writers(&db, writers).await;

    assert_eq!(part_config(&db), before, "{partman}: part_config changed");
    assert_eq!(
        relations(&db),
        relations_before,
        "{partman}: relations changed"
    );
    // The owner now has what run needs: run acts as it, and maintenance works.
    let out = ok(&project, &["run", "--table", "public.owned_daily"]);
    assert!(
        stdout(&out).contains("run: 1 ok"),
        "{partman}: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_apply_changes_nothing_partman_4() {
    import_then_apply_changes_nothing(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_apply_changes_nothing_partman_5() {
    import_then_apply_changes_nothing(Partman::V5).await;
}

const USERS_POLICY: &str = "\
# Orders: the auditors asked for a month.
table: public.kept
partitioning:
  column: created_at
  interval: 1 day    # one partition a day
  premake: 4
  start: \"2026-01-01\"
retention:
  keep: 30 days
  expired: drop
# Test orders go after a day.
deletes:
  - name: test_rows
    where: \"note = 'test'\"
    older_than: 1 day
schedule: \"*/5 * * * *\"   # every five minutes
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_skips_tables_with_a_policy_and_force_rewrites_only_the_keys_it_manages() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        let mut sql = String::new();
        for table in ["kept", "fresh"] {
            sql += &format!(
                "CREATE TABLE public.{table} (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL, note text) PARTITION BY RANGE (created_at);\n"
            );
            sql += &create_parent(partman, table, "created_at", "1 day", ", p_premake := 6");
        }
        sql +=
            "UPDATE partman.part_config SET retention = '14 days', retention_keep_table = false;";
        db.psql(&["-q", "-c", &sql]);
        let before = part_config(&db);
        let project = TestProject::for_db(&db).policy("kept", USERS_POLICY);

        // Without --force: the table with a policy is skipped and said so; its file stays.
        let out = ok(&project, &["import"]);
        assert!(
            stdout(&out).contains("wrote policies/public.fresh.yaml (public.fresh)\n"),
            "{partman}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains("skipped public.kept: it already has a policy in policies/kept.yaml; left as it is (import --force rewrites there only the keys import manages)\n"),
            "{partman}: {}",
            text(&out)
        );
        assert_eq!(
            std::fs::read_to_string(project.policy_path("kept")).unwrap(),
            USERS_POLICY
        );
        // Named with --table, a skip is a failure of the command.
        let out = run(&project, &["import", "--table", "public.kept"]);
        assert_eq!(out.status.code(), Some(1), "{partman}: {}", text(&out));
        assert!(
            stderr(&out).contains("not imported, though named with --table: public.kept"),
            "{partman}: {}",
            text(&out)
        );

        // --force: the managed keys that differ are rewritten in place, the rest stays.
        let out = ok(&project, &["import", "--force"]);
        assert!(
            stdout(&out).contains(
                "updated policies/kept.yaml (public.kept)\n  rewrote partitioning.premake: 4 -> 6\n  rewrote partitioning.infinite_time_partitions: (absent) -> false\n  rewrote retention.keep: 30 days -> 14 days\n"
            ),
            "{partman}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains("unchanged policies/public.fresh.yaml (public.fresh)"),
            "{partman}: {}",
            text(&out)
        );
        let expected = USERS_POLICY
            .replace("  premake: 4\n", "  premake: 6\n")
            .replace(
                "  start: \"2026-01-01\"\n",
                "  start: \"2026-01-01\"\n  infinite_time_partitions: false\n",
            )
            .replace("keep: 30 days", "keep: 14 days");
        assert_eq!(
            std::fs::read_to_string(project.policy_path("kept")).unwrap(),
            expected,
            "{partman}"
        );
        // Again: nothing left to rewrite.
        let out = ok(&project, &["import", "--force"]);
        assert!(
            stdout(&out).contains("unchanged policies/kept.yaml (public.kept)\n"),
            "{partman}: {}",
            text(&out)
        );
        assert_eq!(
            std::fs::read_to_string(project.policy_path("kept")).unwrap(),
            expected,
            "{partman}"
        );

        // Applied (without the schedule: this database has no pg_cron): pg_partman's settings
        // are as they were; the user's delete rule is made.
        project.write_policy(
            "kept",
            &expected.replace("schedule: \"*/5 * * * *\"   # every five minutes\n", ""),
        );
        ok(&project, &["compile"]);
        let out = ok(&project, &["apply", "--auto-approve", "--allow-data-loss"]);
        assert!(
            stdout(&out).contains("create the prune procedure (1 delete rule"),
            "{partman}: {}",
            text(&out)
        );
        assert_eq!(part_config(&db), before, "{partman}");
        let out = run(&project, &["plan", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(0), "{partman}: {}", text(&out));
    }
}

/// A table partitioned by hand: 30 daily partitions named `<table>_YYYYMMDD`, from 27 days
/// ago to 2 days ahead, 24 rows each (one an hour), and, with `default`, a default
/// partition `<table>_default` holding 5 rows from two months ago.
fn partitioned_by_hand(db: &TestDb, table: &str, default: bool) {
    let mut sql = format!(
        "CREATE TABLE public.{table} (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL, note text) PARTITION BY RANGE (created_at);
         DO $$
         DECLARE d date;
         BEGIN
             FOR i IN 0..29 LOOP
                 d := current_date - 27 + i;
                 EXECUTE format('CREATE TABLE public.%I PARTITION OF public.{table} FOR VALUES FROM (%L) TO (%L)',
                                '{table}_' || to_char(d, 'YYYYMMDD'), d::timestamptz, (d + 1)::timestamptz);
             END LOOP;
         END $$;
         INSERT INTO public.{table} (created_at, note)
         SELECT t, 'old' FROM generate_series((current_date - 27)::timestamptz, date_trunc('hour', now()), interval '1 hour') t;\n"
    );
    if default {
        sql += &format!(
            "CREATE TABLE public.{table}_default PARTITION OF public.{table} DEFAULT;
             INSERT INTO public.{table} (created_at, note) SELECT now() - interval '60 days' - make_interval(hours => h), 'in default' FROM generate_series(1, 5) h;\n"
        );
    }
    sql += &format!("ANALYZE public.{table};");
    db.psql(&["-q", "-c", &sql]);
}

const KEEP_DAYS: i64 = 20;

fn hand_policy(table: &str) -> String {
    format!(
        "table: public.{table}\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: {KEEP_DAYS} days\n"
    )
}

/// The partitions of `table` pg_partman's retention expires now: lower bound + 1 day
/// before now() - keep (its rule, by bounds).
fn due(db: &TestDb, table: &str) -> BTreeSet<String> {
    db.psql(&[
        "-At",
        "-c",
        &format!(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'public.{table}'::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
                AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz + interval '1 day'
                    < now() - interval '{KEEP_DAYS} days'"
        ),
    ])
    .lines()
    .map(String::from)
    .collect()
}

fn partitions(db: &TestDb, table: &str) -> BTreeSet<String> {
    db.psql(&[
        "-At",
        "-c",
        &format!("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.{table}'::regclass"),
    ])
    .lines()
    .map(String::from)
    .collect()
}

async fn a_table_partitioned_by_hand_is_adopted_with_writers_running(partman: Partman) {
    let db = Cluster::shared().database(partman);
    partitioned_by_hand(&db, "orders", true);
    partitioned_by_hand(&db, "payments", false);
    let default_oid = db.scalar("SELECT 'public.orders_default'::regclass::oid");
    let all_before: BTreeMap<&str, BTreeSet<i64>> = ["orders", "payments"]
        .into_iter()
        .map(|t| (t, ids(&db, &format!("SELECT id FROM public.{t}"))))
        .collect();
    let hand_made: BTreeMap<&str, BTreeSet<String>> = ["orders", "payments"]
        .into_iter()
        .map(|t| (t, partitions(&db, t)))
        .collect();
    let project = TestProject::for_db(&db)
        .policy("orders", &hand_policy("orders"))
        .policy("payments", &hand_policy("payments"))
        .compiled();
    let writers = start_writers(&db, &["public.orders", "public.payments"]).await;

    // The plan says how each table is adopted and what the next run expires.
    let planned = ok(&project, &["plan"]);
    let plan = stdout(&planned);
    for table in ["orders", "payments"] {
        let due_now = due(&db, table);
        assert!(
            plan.contains(&format!(
                "+ public.{table}: adopt with pg_partman, keeping its partitions: 1 day partitions on created_at, premake 4, retention {KEEP_DAYS} days (drop) [destructive]\n    keeps its 30 existing partitions as they are, names included (public.{table}_"
            )),
            "{partman}: {plan}"
        );
        assert!(
            plan.contains(&format!(
                "! the next maintenance would drop {} partitions",
                due_now.len()
            )),
            "{partman}: {table} {due_now:?}: {plan}"
        );
    }
    assert!(
        plan.contains("    keeps the default partition public.orders_default as pg_partman's default partition; it holds about 5 rows, which retention never expires"),
        "{partman}: {plan}"
    );
    assert!(
        plan.contains("    pg_partman makes a default partition (public.payments_default)"),
        "{partman}: {plan}"
    );

    let applied = ok(&project, &["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(
        !stderr(&applied).contains("warning:"),
        "{partman}: {}",
        text(&applied)
    );
    for table in ["orders", "payments"] {
        let now = partitions(&db, table);
        assert!(
            now.is_superset(&hand_made[table]),
            "{partman}: {table}: {now:?}"
        );
        assert!(
            now.len() > hand_made[table].len(),
            "{partman}: {table}: nothing made: {now:?}"
        );
    }
    assert_eq!(
        db.scalar("SELECT 'public.orders_default'::regclass::oid"),
        default_oid,
        "{partman}: the default partition is the one the table had"
    );
    assert_eq!(
        db.scalar("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.payments'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'"),
        "payments_default",
        "{partman}"
    );

    // The next run expires exactly the partitions past keep, by their bounds.
    let due_before: BTreeMap<&str, BTreeSet<String>> = ["orders", "payments"]
        .into_iter()
        .map(|t| (t, due(&db, t)))
        .collect();
    let out = ok(&project, &["run"]);
    assert!(
        !stderr(&out).contains("warning:"),
        "{partman}: {}",
        text(&out)
    );
    // Every row of the live inserts is there.
    finish_writers(&db, writers).await;
    for table in ["orders", "payments"] {
        let gone: BTreeSet<String> = hand_made[table]
            .difference(&partitions(&db, table))
            .cloned()
            .collect();
        assert!(!gone.is_empty(), "{partman}: {table}: nothing expired");
        assert_eq!(
            gone,
            due_before[table],
            "{partman}: {table}: {}",
            text(&out)
        );
        // No row inside the window is gone: every row is there unless its partition was
        // expired.
        let qualified = format!("public.{table}");
        let present = ids(&db, &format!("SELECT id FROM {qualified}"));
        let cutoff_kept = ids(
            &db,
            &format!(
                "SELECT id FROM {qualified} WHERE created_at >= now() - interval '{KEEP_DAYS} days'"
            ),
        );
        assert!(cutoff_kept.is_subset(&present));
        let lost: Vec<&i64> = all_before[table].difference(&present).collect();
        let expected_lost = 24 * gone.len();
        assert_eq!(
            lost.len(),
            expected_lost,
            "{partman}: {table}: only the expired partitions' rows go"
        );
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM public.orders_default"),
        "5",
        "{partman}: rows of the default partition stay"
    );
    let out = run(&project, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{partman}: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_partitioned_by_hand_is_adopted_with_writers_running_partman_4() {
    a_table_partitioned_by_hand_is_adopted_with_writers_running(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_partitioned_by_hand_is_adopted_with_writers_running_partman_5() {
    a_table_partitioned_by_hand_is_adopted_with_writers_running(Partman::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_partman_warnings_reach_stderr_one_line_each_naming_the_table() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        // A set whose every partition expires at once, with no rows and no premaking while
        // idle: pg_partman refuses to drop its last partition, and warns.
        db.psql(&["-q", "-c", "
            CREATE TABLE public.lonely (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL, note text) PARTITION BY RANGE (created_at);
            CREATE TABLE public.loud (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL, note text) PARTITION BY RANGE (created_at);
            CREATE FUNCTION public.shout() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.parent_table = 'public.loud' THEN
                    RAISE WARNING E'partman says:\\n   look\\there';
                    RAISE NOTICE 'drop_partition_time already running.';
                    RAISE NOTICE 'just chatter';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER shout BEFORE UPDATE ON partman.part_config FOR EACH ROW EXECUTE FUNCTION public.shout();
        "]);
        let project = TestProject::for_db(&db)
            .policy(
                "lonely",
                "table: public.lonely\npartitioning:\n  column: created_at\n  interval: 1 second\n  premake: 1\n  infinite_time_partitions: false\nretention:\n  keep: 1 second\n",
            )
            .policy(
                "loud",
                "table: public.loud\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: 3 days\n",
            )
            .compiled();
        let out = ok(&project, &["apply", "--auto-approve"]);
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines.contains(&"warning: public.loud: partman says: look here"),
            "{partman}: {}",
            text(&out)
        );
        assert!(
            lines.contains(&"notice: public.loud: drop_partition_time already running."),
            "{partman}: {}",
            text(&out)
        );
        assert!(
            !stderr(&out).contains("chatter"),
            "{partman}: {}",
            text(&out)
        );

        tokio::time::sleep(Duration::from_secs(4)).await;
        let out = ok(&project, &["run", "--table", "public.lonely"]);
        let err = stderr(&out);
        let warned: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("warning: public.lonely: Attempt to drop final partition in partition set public.lonely"))
            .collect();
        assert!(!warned.is_empty(), "{partman}: {}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_that_ended_long_ago_are_expired_and_no_gap_is_filled() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        // Hand partitioning stopped two months ago; since then rows went to no partition
        // (there is no default partition, so none could be written).
        db.psql(&["-q", "-c", "
            CREATE TABLE public.stale (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL, note text) PARTITION BY RANGE (created_at);
            CREATE TABLE public.stale_a PARTITION OF public.stale FOR VALUES FROM (current_date - 62) TO (current_date - 61);
            CREATE TABLE public.stale_b PARTITION OF public.stale FOR VALUES FROM (current_date - 61) TO (current_date - 60);
            INSERT INTO public.stale (created_at, note) VALUES (current_date - 62, 'a'), (current_date - 61, 'b');
        "]);
        let project = TestProject::for_db(&db)
            .policy("stale", &hand_policy("stale"))
            .compiled();
        let out = ok(&project, &["plan"]);
        assert!(
            stdout(&out).contains("pg_partman makes 9 partitions from ")
                && stdout(&out)
                    .contains("(premake partitions back from now; the existing ones end at "),
            "{partman}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains("! the next maintenance would drop 2 partitions"),
            "{partman}: {}",
            text(&out)
        );
        ok(&project, &["apply", "--auto-approve", "--allow-data-loss"]);
        let made = partitions(&db, "stale");
        assert_eq!(made.len(), 2 + 9 + 1, "{partman}: {made:?}");
        ok(&project, &["run"]);
        let left = partitions(&db, "stale");
        assert!(
            !left.contains("stale_a") && !left.contains("stale_b"),
            "{partman}: {left:?}"
        );
        assert!(
            left.len() >= made.len() - 2,
            "{partman}: only the two old partitions go: {left:?}"
        );
        let out = run(&project, &["plan", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(0), "{partman}: {}", text(&out));
    }
}
