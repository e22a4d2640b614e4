//! `retentionc import` against real pg_partman 4.7.2 and 5.2.4 set-ups made by hand with
//! pg_partman's own create_parent: the policies it writes describe them exactly, compile,
//! and parse back; it skips tables that have a policy (or rewrites their managed keys with
//! --force), filters by --table, and reports what it skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::cluster::{Cluster, Partman, TestDb, retentionc_bin};

/// A throwaway project folder with `retentionc.yaml` for one pg_partman major.
struct Project {
    dir: tempfile::TempDir,
    url: String,
}

impl Project {
    fn new(db: &TestDb) -> Project {
        Project::with_major(db, db.partman.major())
    }

    fn with_major(db: &TestDb, major: u8) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("retentionc.yaml"),
            format!("partman_version: {major}\n"),
        )
        .unwrap();
        Project {
            dir,
            url: db.url.clone(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn retentionc(&self, args: &[&str]) -> Output {
        std::process::Command::new(retentionc_bin())
            .args(args)
            .current_dir(self.root())
            .env("DATABASE_URL", &self.url)
            .output()
            .unwrap()
    }

    /// `retentionc import ARGS`, which must succeed; returns its stdout.
    fn import(&self, args: &[&str]) -> String {
        let out = self.retentionc(&[&["import"], args].concat());
        assert!(
            out.status.success(),
            "import {args:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn policy_path(&self, table: &str) -> PathBuf {
        self.root().join("policies").join(format!("{table}.yaml"))
    }

    fn policy(&self, table: &str) -> String {
        let path = self.policy_path(table);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn policy_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root().join("policies"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The policy itself: the file without its header comment.
fn body(policy: &str) -> String {
    policy
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// pg_partman's own create_parent, with named arguments as each major wants them.
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
         p_type := '{p_type}', p_interval := '{interval}'{extra});"
    )
}

/// One table per interval and retention mode, as a user would have set them up by hand.
async fn set_up_by_hand(db: &TestDb) {
    let v = db.partman;
    let mut sql = String::from("CREATE SCHEMA archive;\n");
    for table in [
        "daily_drop",
        "weekly_detach",
        "monthly_archive",
        "hourly_drop",
        "per_second",
        "no_retention",
        "tuned_daily",
    ] {
        sql += &format!(
            "CREATE TABLE public.{table} (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at);\n"
        );
    }
    sql += "CREATE TABLE public.epoch_events (id bigint, ts bigint NOT NULL) PARTITION BY RANGE (ts);\n";
    sql += "CREATE TABLE public.by_id (id bigint NOT NULL) PARTITION BY RANGE (id);\n";
    // pg_partman 4.7 still takes its interval keywords; 5.x only interval text.
    sql += &create_parent(
        v,
        "daily_drop",
        "created_at",
        if v == Partman::V4 { "daily" } else { "1 day" },
        "",
    );
    sql += &create_parent(v, "weekly_detach", "created_at", "1 week", "");
    sql += &create_parent(v, "monthly_archive", "created_at", "1 month", "");
    sql += &create_parent(v, "hourly_drop", "created_at", "1 hour", ", p_premake := 6");
    sql += &create_parent(v, "per_second", "created_at", "1 second", "");
    sql += &create_parent(v, "no_retention", "created_at", "1 day", "");
    sql += &create_parent(v, "epoch_events", "ts", "1 day", ", p_epoch := 'seconds'");
    sql += &create_parent(v, "by_id", "id", "10", "");
    sql += &create_parent(
        v,
        "tuned_daily",
        "created_at",
        "1 day",
        ", p_constraint_cols := ARRAY['id']",
    );
    sql += "
        UPDATE partman.part_config SET retention = '30 days', retention_keep_table = false
         WHERE parent_table = 'public.daily_drop';
        UPDATE partman.part_config SET retention = '8 weeks', retention_keep_index = false
         WHERE parent_table = 'public.weekly_detach';
        UPDATE partman.part_config SET retention = '12 months', retention_schema = 'archive', retention_keep_index = true
         WHERE parent_table = 'public.monthly_archive';
        UPDATE partman.part_config SET retention = '2 days', retention_keep_table = false,
               retention_keep_index = false, infinite_time_partitions = true
         WHERE parent_table = 'public.hourly_drop';
        UPDATE partman.part_config SET retention = '15', retention_keep_table = false
         WHERE parent_table = 'public.per_second';
        UPDATE partman.part_config SET retention = '7 days', retention_keep_index = false
         WHERE parent_table = 'public.epoch_events';
        UPDATE partman.part_config SET retention = '100', retention_keep_table = false
         WHERE parent_table = 'public.by_id';
        UPDATE partman.part_config SET retention = '90 days', retention_keep_table = false, retention_keep_index = false,
               infinite_time_partitions = true, automatic_maintenance = 'off', inherit_privileges = true
         WHERE parent_table = 'public.tuned_daily';
    ";
    db.client()
        .await
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{}: set-up failed: {e:?}", db.partman));
}

const IMPORTED: [&str; 7] = [
    "daily_drop",
    "epoch_events",
    "hourly_drop",
    "monthly_archive",
    "per_second",
    "tuned_daily",
    "weekly_detach",
];

async fn import_describes_hand_made_setups(partman: Partman) {
    let db = Cluster::shared().database(partman);
    set_up_by_hand(&db).await;
    let project = Project::new(&db);
    let out = project.import(&[]);

    for table in IMPORTED {
        assert!(
            out.contains(&format!(
                "wrote policies/public.{table}.yaml (public.{table})\n"
            )),
            "{partman}: {table}:\n{out}"
        );
    }
    assert!(out.contains("skipped public.by_id: it is partitioned by id (control column id is bigint, partition_interval 10)"), "{partman}:\n{out}");
    assert!(
        out.contains("skipped public.no_retention: pg_partman keeps its partitions forever"),
        "{partman}:\n{out}"
    );
    assert!(
        out.contains("7 of 9 tables imported into policies; 2 skipped\n"),
        "{partman}:\n{out}"
    );
    let expected_files: Vec<String> = IMPORTED
        .iter()
        .map(|t| format!("public.{t}.yaml"))
        .collect();
    assert_eq!(
        project.policy_files(),
        expected_files,
        "{partman}: unsupported tables get no file"
    );

    assert_eq!(
        body(&project.policy("public.daily_drop")),
        "table: public.daily_drop\npartitioning:\n  column: created_at\n  interval: 1 day\n  premake: 4\n  infinite_time_partitions: false\nretention:\n  keep: 30 days\n  expired: drop\n"
    );
    assert_eq!(
        body(&project.policy("public.weekly_detach")),
        "table: public.weekly_detach\npartitioning:\n  column: created_at\n  interval: 7 days\n  premake: 4\n  infinite_time_partitions: false\nretention:\n  keep: 56 days\n  expired: detach\n"
    );
    assert_eq!(
        body(&project.policy("public.monthly_archive")),
        "table: public.monthly_archive\npartitioning:\n  column: created_at\n  interval: 1 month\n  premake: 4\n  infinite_time_partitions: false\nretention:\n  keep: 1 year\n  expired: archive\n  archive_schema: archive\n  keep_index: true\n"
    );
    assert_eq!(
        body(&project.policy("public.hourly_drop")),
        "table: public.hourly_drop\npartitioning:\n  column: created_at\n  interval: 1 hour\n  premake: 6\nretention:\n  keep: 2 days\n  expired: drop\n"
    );
    assert_eq!(
        body(&project.policy("public.per_second")),
        "table: public.per_second\npartitioning:\n  column: created_at\n  interval: 1 second\n  premake: 4\n  infinite_time_partitions: false\nretention:\n  keep: 15 seconds\n  expired: drop\n"
    );
    assert_eq!(
        body(&project.policy("public.epoch_events")),
        "table: public.epoch_events\npartitioning:\n  column: ts\n  interval: 1 day\n  premake: 4\n  epoch: seconds\n  infinite_time_partitions: false\nretention:\n  keep: 7 days\n  expired: detach\n"
    );

    // Nothing is noted for a set-up the format fully expresses; what is only spelt
    // differently is said so.
    let hourly = project.policy("public.hourly_drop");
    assert!(
        !hourly.contains("#   -"),
        "{partman}: nothing to note for a set-up the format fully expresses:\n{hourly}"
    );
    let section = |table: &str| {
        out.split(&format!("(public.{table})\n"))
            .nth(1)
            .unwrap()
            .split("\nwrote ")
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        !section("hourly_drop").starts_with("  "),
        "{partman}:\n{out}"
    );
    assert!(
        !out.contains("will change"),
        "{partman}: import describes the live settings, it changes none:\n{out}"
    );
    assert!(
        section("per_second").contains(
            "  rewritten: retention \"15\" is written as \"15 seconds\" (pg_partman reads a bare number as seconds)"
        ),
        "{partman}:\n{out}"
    );
    assert!(
        section("weekly_detach").contains(
            "  rewritten: retention \"8 weeks\" is written as \"56 days\" (the same interval)"
        ),
        "{partman}:\n{out}"
    );
    // Settings outside the format are listed, never dropped silently.
    let tuned = project.policy("public.tuned_daily");
    for setting in [
        "constraint_cols = [\"id\"]",
        "automatic_maintenance = \"off\"",
        "inherit_privileges = true",
    ] {
        assert!(
            section("tuned_daily").contains(&format!("  not expressible: {setting}: ")),
            "{partman}: {setting}:\n{out}"
        );
        assert!(
            tuned.contains(&format!("#   - {setting}: ")),
            "{partman}: {setting}:\n{tuned}"
        );
    }
    assert_eq!(
        section("tuned_daily")
            .matches("  not expressible: ")
            .count(),
        3,
        "{partman}:\n{out}"
    );

    // The files are retentionc's own format: they load as a project and compile.
    let loaded = retentionc::policy::load_project(&project.root().join("retentionc.yaml"))
        .unwrap_or_else(|e| panic!("{partman}: {e}"));
    assert_eq!(loaded.policies.len(), 7);
    let compile = project.retentionc(&["compile"]);
    assert!(
        compile.status.success(),
        "{partman}: compile failed:\n{}{}",
        text(&compile.stdout),
        text(&compile.stderr)
    );
    assert!(
        project
            .root()
            .join("generated/public.daily_drop.sql")
            .is_file()
    );

    // Plan against the same database: once retentionc's own schema exists (the one thing
    // retentionc adds to any database), there is nothing to do.
    db.psql(&[
        "-q",
        "-f",
        project
            .root()
            .join("generated/_retentionc.sql")
            .to_str()
            .unwrap(),
    ]);
    let client = db.client().await;
    let plan = retentionc::plan::make_plan(&client, &loaded)
        .await
        .unwrap_or_else(|e| panic!("{partman}: plan failed: {e:#}"));
    assert!(
        plan.changes.is_empty(),
        "{partman}: {:#?}",
        plan.changes
            .iter()
            .map(|c| (&c.table, c.kind, &c.summary))
            .collect::<Vec<_>>()
    );
    let exit = project.retentionc(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        exit.status.code(),
        Some(0),
        "{partman}: {}{}",
        text(&exit.stdout),
        text(&exit.stderr)
    );
}

#[tokio::test]
async fn import_describes_hand_made_setups_partman_4() {
    import_describes_hand_made_setups(Partman::V4).await;
}

#[tokio::test]
async fn import_describes_hand_made_setups_partman_5() {
    import_describes_hand_made_setups(Partman::V5).await;
}

#[tokio::test]
async fn a_table_made_without_default_partition_imports_as_default_partition_false() {
    let db = Cluster::shared().database(Partman::V5);
    let sql = format!(
        "CREATE TABLE public.events (created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at);
         {}
         UPDATE partman.part_config SET retention = '3 days', retention_keep_table = false, retention_keep_index = false,
                infinite_time_partitions = true;",
        create_parent(Partman::V5, "events", "created_at", "1 day", ", p_default_table := false")
    );
    db.client().await.batch_execute(&sql).await.unwrap();
    let project = Project::new(&db);
    let out = project.import(&[]);
    assert_eq!(
        out.lines().next(),
        Some("wrote policies/public.events.yaml (public.events)")
    );
    assert!(
        project
            .policy("public.events")
            .contains("  default_partition: false\n"),
        "{}",
        project.policy("public.events")
    );
}

#[tokio::test]
async fn tables_with_a_policy_are_skipped_and_force_rewrites_their_managed_keys() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        set_up_by_hand(&db).await;
        let project = Project::new(&db);

        // --table: only the tables named.
        let out = project.import(&[
            "--table",
            "public.hourly_drop",
            "--table",
            "public.daily_drop",
        ]);
        assert_eq!(
            project.policy_files(),
            ["public.daily_drop.yaml", "public.hourly_drop.yaml"],
            "{partman}:\n{out}"
        );
        assert!(out.contains("2 of 2 tables imported"), "{partman}:\n{out}");

        // A policy the user edited is skipped, and said so, and left as it is.
        let edited = project
            .policy("public.hourly_drop")
            .replace("keep: 2 days", "keep: 3 days   # three, please");
        std::fs::write(project.policy_path("public.hourly_drop"), &edited).unwrap();
        let out = project.import(&[]);
        assert!(
            out.contains("skipped public.hourly_drop: it already has a policy in policies/public.hourly_drop.yaml; left as it is (import --force rewrites there only the keys import manages)"),
            "{partman}:\n{out}"
        );
        assert!(
            out.contains("skipped public.daily_drop: it already has a policy"),
            "{partman}:\n{out}"
        );
        assert_eq!(project.policy("public.hourly_drop"), edited);
        assert_eq!(
            project.policy_files().len(),
            7,
            "{partman}: the other tables are written"
        );

        // --force puts back the live value, in place: the comment after it stays.
        let out = project.import(&["--force"]);
        assert!(
            out.contains("updated policies/public.hourly_drop.yaml (public.hourly_drop)\n  rewrote retention.keep: 3 days -> 2 days\n"),
            "{partman}:\n{out}"
        );
        assert!(
            out.contains("unchanged policies/public.daily_drop.yaml"),
            "{partman}:\n{out}"
        );
        assert_eq!(
            project.policy("public.hourly_drop"),
            edited.replace("keep: 3 days", "keep: 2 days")
        );
        assert_eq!(project.policy_files().len(), 7);
    }
}

#[tokio::test]
async fn a_policy_kept_in_another_file_is_the_one_import_rewrites() {
    let db = Cluster::shared().database(Partman::V5);
    set_up_by_hand(&db).await;
    let project = Project::new(&db);
    std::fs::create_dir(project.root().join("policies")).unwrap();
    let own = "table: public.hourly_drop\npartitioning:\n  column: created_at\n  interval: 1 hour\nretention:\n  keep: 1 day\n";
    std::fs::write(project.root().join("policies/hourly.yaml"), own).unwrap();
    let skipped = project.retentionc(&["import", "--table", "public.hourly_drop"]);
    assert_eq!(skipped.status.code(), Some(1));
    assert!(
        text(&skipped.stdout).contains(
            "skipped public.hourly_drop: it already has a policy in policies/hourly.yaml"
        ),
        "{}",
        text(&skipped.stdout)
    );

    let out = project.import(&["--table", "public.hourly_drop", "--force"]);
    assert!(
        out.starts_with("updated policies/hourly.yaml (public.hourly_drop)\n  rewrote partitioning.premake: (absent) -> 6\n  rewrote retention.keep: 1 day -> 2 days\n"),
        "{out}"
    );
    assert_eq!(
        project.policy_files(),
        ["hourly.yaml"],
        "no second policy for the same table"
    );
    assert_eq!(
        std::fs::read_to_string(project.root().join("policies/hourly.yaml")).unwrap(),
        "table: public.hourly_drop\npartitioning:\n  column: created_at\n  interval: 1 hour\n  premake: 6\nretention:\n  keep: 2 days\n"
    );

    // A file holding another table's policy is never overwritten, even with --force.
    std::fs::rename(
        project.root().join("policies/hourly.yaml"),
        project.root().join("policies/public.daily_drop.yaml"),
    )
    .unwrap();
    let refused = project.retentionc(&["import", "--table", "public.daily_drop", "--force"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stdout).contains("skipped public.daily_drop: policies/public.daily_drop.yaml holds the policy of public.hourly_drop; it is not overwritten with public.daily_drop's"),
        "{}",
        text(&refused.stdout)
    );
}

#[tokio::test]
async fn wrong_table_names_and_a_mismatched_partman_version_are_errors() {
    let db = Cluster::shared().database(Partman::V4);
    set_up_by_hand(&db).await;
    let project = Project::new(&db);
    let out = project.retentionc(&["import", "--table", "public.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "not registered with pg_partman (no row in partman.part_config): public.nope"
        ),
        "{}",
        text(&out.stderr)
    );
    // A registered table that import cannot describe, named explicitly: reported, exit 1.
    let out = project.retentionc(&["import", "--table", "public.by_id"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("skipped public.by_id: it is partitioned by id"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("not imported, though named with --table: public.by_id"),
        "{}",
        text(&out.stderr)
    );
    let out = project.retentionc(&["import", "--table", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no schema"),
        "{}",
        text(&out.stderr)
    );

    let v5_project = Project::with_major(&db, 5);
    let out = v5_project.retentionc(&["import"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the database has pg_partman 4.7.2, but the project compiles for pg_partman 5: set `partman_version: 4`"), "{}", text(&out.stderr));
    assert!(!v5_project.root().join("policies").exists());
}

#[tokio::test]
async fn sub_partitioned_sets_import_their_top_level_only() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        let sub = match partman {
            Partman::V4 => "p_type := 'native', p_native_check := 'yes'",
            Partman::V5 => "p_declarative_check := 'yes'",
        };
        let sql = format!(
            "CREATE TABLE public.sub_top (created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at);
             {}
             SELECT partman.create_sub_parent(p_top_parent := 'public.sub_top', p_control := 'created_at',
                    p_interval := '1 month', p_premake := 1, {sub});
             UPDATE partman.part_config SET retention = '3 years', retention_keep_table = false
              WHERE parent_table = 'public.sub_top';",
            create_parent(partman, "sub_top", "created_at", "1 year", ", p_premake := 1")
        );
        db.client()
            .await
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{partman}: {e:?}"));
        let project = Project::new(&db);
        let out = project.import(&[]);
        assert!(
            out.starts_with("wrote policies/public.sub_top.yaml (public.sub_top)\n"),
            "{partman}:\n{out}"
        );
        assert!(
            out.contains("  not expressible: sub-partitioned (part_config_sub)"),
            "{partman}:\n{out}"
        );
        let children: usize = db
            .scalar(
                "SELECT count(*) FROM partman.part_config WHERE parent_table <> 'public.sub_top'",
            )
            .parse()
            .unwrap();
        assert!(children >= 2, "{partman}: {children} sub-partition sets");
        assert_eq!(
            out.matches(", which pg_partman sub-partitions;").count(),
            children,
            "{partman}:\n{out}"
        );
        assert_eq!(project.policy_files(), ["public.sub_top.yaml"], "{partman}");
        assert!(
            project
                .policy("public.sub_top")
                .contains("#   - sub-partitioned (part_config_sub)"),
            "{partman}"
        );
    }
}

#[tokio::test]
async fn force_rewrites_each_policy_of_a_file_that_holds_several() {
    let db = Cluster::shared().database(Partman::V5);
    set_up_by_hand(&db).await;
    let project = Project::new(&db);
    std::fs::create_dir(project.root().join("policies")).unwrap();
    let both = "# Both hourly and daily sets, kept together.\ntable: public.hourly_drop\npartitioning:\n  column: created_at\n  interval: 1 hour\n  premake: 6\nretention:\n  keep: 1 day\n---\ntable: public.daily_drop\npartitioning:\n  column: created_at\n  interval: 1 day\n  infinite_time_partitions: false\nretention:\n  keep: 9 days   # nine\nschedule: \"@daily\"\n";
    std::fs::write(project.root().join("policies/sets.yaml"), both).unwrap();
    let out = project.import(&[
        "--force",
        "--table",
        "public.hourly_drop",
        "--table",
        "public.daily_drop",
    ]);
    assert!(
        out.contains("updated policies/sets.yaml (public.daily_drop)\n  rewrote retention.keep: 9 days -> 30 days\n"),
        "{out}"
    );
    assert!(
        out.contains("updated policies/sets.yaml (public.hourly_drop)\n  rewrote retention.keep: 1 day -> 2 days\n"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(project.root().join("policies/sets.yaml")).unwrap(),
        both.replace("keep: 1 day", "keep: 2 days")
            .replace("keep: 9 days", "keep: 30 days"),
        "both edits are in the file"
    );
    assert_eq!(project.policy_files(), ["sets.yaml"]);
}
