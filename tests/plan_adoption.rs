//! Planning the adoption of tables retentionc did not set up, as a pure function of the
//! policies and a hand-made live state: a table partitioned by hand is adopted keeping its
//! partitions, or refused with the reason at the policy key it concerns; an owner that
//! lacks rights is planned a grant, and only then.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::planner::*;
use retentionc::catalog::{ChildPartition, DefaultRows, Extension, Live, OwnerRights};
use retentionc::model::Project;
use retentionc::plan::{Change, ChangeKind};

/// Daily partitions, kept 20 days and dropped.
const ORDERS: &str = "\
table: public.orders
partitioning:
  column: created_at
  interval: 1 day
retention:
  keep: 20 days
";

fn day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

fn bound(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let f = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S+00").to_string();
    format!("FOR VALUES FROM ('{}') TO ('{}')", f(from), f(to))
}

/// `count` daily partitions named `orders_YYYYMMDD`, the newest ending `ahead` days after
/// today; 10 rows each.
fn daily_by_hand(count: i64, ahead: i64) -> Vec<ChildPartition> {
    let end = day(now()) + TimeDelta::days(ahead);
    (0..count)
        .map(|i| {
            let from = end - TimeDelta::days(count - i);
            ChildPartition {
                name: format!("public.orders_{}", from.format("%Y%m%d")),
                bound: bound(from, from + TimeDelta::days(1)),
                estimated_rows: 10.0,
            }
        })
        .collect()
}

fn default_partition(rows: f64) -> ChildPartition {
    ChildPartition {
        name: "public.orders_default".into(),
        bound: "DEFAULT".into(),
        estimated_rows: rows,
    }
}

/// The project for pg_partman `major`, and a database with its table unregistered and
/// holding `children`.
fn setup(major: u8, policy: &str, children: Vec<ChildPartition>) -> (Project, Live) {
    let p = project_with(&format!("partman_version: {major}\n"), &[policy]);
    let mut live = empty_live(&p);
    if major == 4 {
        live.partman = Some(Extension {
            version: "4.7.2".into(),
            schema: "partman".into(),
        });
    }
    live.children.insert("public.orders".into(), children);
    (p, live)
}

fn adopt(plan: &retentionc::plan::Plan) -> &Change {
    plan.changes
        .iter()
        .find(|c| c.kind == ChangeKind::AdoptTable)
        .unwrap_or_else(|| panic!("no adoption in {:#?}", kinds(plan)))
}

#[test]
fn a_table_partitioned_by_hand_is_adopted_keeping_its_partitions_on_both_majors() {
    for major in [4, 5] {
        let mut children = daily_by_hand(30, 3);
        children.push(default_partition(0.0));
        let (p, live) = setup(major, ORDERS, children);
        let plan = plan(&p, &live);
        assert_eq!(
            kinds(&plan),
            vec![
                ("retention".into(), ChangeKind::Bootstrap),
                ("public.orders".into(), ChangeKind::AdoptTable)
            ],
            "{major}"
        );
        let c = adopt(&plan);
        let keys: Vec<&str> = c.statements.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["adopt", "retention", "privileges"], "{major}");
        assert_eq!(
            c.notes,
            [
                "keeps its 30 existing partitions as they are, names included (public.orders_20261029 to public.orders_20261127, 2026-10-29 00:00:00 UTC to 2026-11-28 00:00:00 UTC); pg_partman expires them by their bounds like its own",
                "pg_partman makes 2 partitions from 2026-11-28 00:00:00 UTC (where the existing ones end) to 2026-11-30 00:00:00 UTC; later ones at each maintenance",
                "keeps the default partition public.orders_default as pg_partman's default partition; it holds no row; none is at or after 2026-11-28 00:00:00 UTC",
            ],
            "{major}"
        );
        // What the next run expires, by pg_partman's rule: lower bound + 1 day before
        // now - 20 days (2026-11-05 12:00), so the partitions of 10-29 to 11-03.
        assert!(c.destructive, "{major}");
        let impact = c.impact.as_ref().unwrap();
        let expired: Vec<&str> = impact
            .expired_partitions
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            expired,
            [
                "public.orders_20261029",
                "public.orders_20261030",
                "public.orders_20261031",
                "public.orders_20261101",
                "public.orders_20261102",
                "public.orders_20261103",
                "public.orders_20261104",
            ],
            "{major}"
        );
        assert_eq!(impact.estimated_rows, 70);
        let text = render_text(&plan);
        assert!(
            text.contains("    keeps its 30 existing partitions as they are"),
            "{text}"
        );
        assert!(
            text.contains("! the next maintenance would drop 7 partitions"),
            "{text}"
        );
    }
}

#[test]
fn whether_a_default_partition_is_made_is_said() {
    // No default partition: pg_partman 5 makes one unless the policy says not to; 4 always.
    for (major, policy, said) in [
        (
            5,
            ORDERS.to_string(),
            "pg_partman makes a default partition (public.orders_default)",
        ),
        (
            5,
            ORDERS.replace(
                "interval: 1 day",
                "interval: 1 day\n  default_partition: false",
            ),
            "no default partition (default_partition: false)",
        ),
        (
            4,
            ORDERS.to_string(),
            "pg_partman makes a default partition (public.orders_default)",
        ),
    ] {
        let (p, live) = setup(major, &policy, daily_by_hand(5, 1));
        let plan = plan(&p, &live);
        assert_eq!(adopt(&plan).notes[2], said, "{major}: {policy}");
    }
    // A default partition with rows: kept, and its rows said never to expire.
    let mut children = daily_by_hand(5, 1);
    children.push(default_partition(42.0));
    let (p, mut live) = setup(5, ORDERS, children);
    live.default_rows.insert(
        "public.orders".into(),
        DefaultRows {
            partition: "public.orders_default".into(),
            newest: Some("2026-10-01 10:00:00+00".into()),
        },
    );
    let plan = plan(&p, &live);
    assert!(
        adopt(&plan).notes[2].contains("it holds about 42 rows, which retention never expires"),
        "{:?}",
        adopt(&plan).notes
    );
}

#[test]
fn a_table_with_only_a_default_partition_is_adopted_from_premake_back() {
    let (p, live) = setup(4, ORDERS, vec![default_partition(0.0)]);
    let plan = plan(&p, &live);
    let c = adopt(&plan);
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    assert_eq!(
        c.notes[0],
        "pg_partman makes 9 partitions from 2026-11-21 00:00:00 UTC (premake partitions back from now) to 2026-11-30 00:00:00 UTC; later ones at each maintenance"
    );
}

/// The plan errors for the project and live state, as printed.
fn refused(p: &Project, live: &Live) -> String {
    errors(p, live)
}

#[test]
fn partitions_pg_partman_could_not_manage_are_refused_at_the_key_they_concern() {
    // A MINVALUE lower bound.
    let mut children = daily_by_hand(3, 1);
    children[0].bound = format!(
        "FOR VALUES FROM (MINVALUE) TO ('{}')",
        children[1]
            .bound
            .split("FROM ('")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
    );
    let (p, live) = setup(5, ORDERS, children);
    let e = refused(&p, &live);
    assert!(e.contains("policies/p0.yaml:3:3: partitioning.column: public.orders has the partition public.orders_20261123 bounded FOR VALUES FROM (MINVALUE)"), "{e}");

    // A week in one partition of a daily set: its last days would expire early.
    let mut children = daily_by_hand(3, 1);
    let first = day(now()) - TimeDelta::days(9);
    children.insert(
        0,
        ChildPartition {
            name: "public.orders_week".into(),
            bound: bound(first, first + TimeDelta::days(7)),
            estimated_rows: 1.0,
        },
    );
    let (p, live) = setup(5, ORDERS, children.clone());
    let e = refused(&p, &live);
    assert!(
        e.contains("partitioning.interval: the partition public.orders_week of public.orders spans 2026-11-16 00:00:00 UTC to 2026-11-23 00:00:00 UTC, more than one partition of 1 day"),
        "{e}"
    );
    // Wholly older than keep, it only holds rows that expire anyway.
    let (p, live) = setup(
        5,
        &ORDERS.replace("keep: 20 days", "keep: 2 days"),
        children.clone(),
    );
    plan(&p, &live);
    // Ending exactly where the window starts (now - 60 hours) is wholly older too.
    let (p, live) = setup(
        5,
        &ORDERS.replace("keep: 20 days", "keep: 60 hours"),
        children,
    );
    plan(&p, &live);

    // The newest partition ends at 23:00, not on pg_partman's daily grid.
    let mut children = daily_by_hand(3, 1);
    let last = children.last_mut().unwrap();
    last.bound = bound(day(now()), day(now()) + TimeDelta::hours(23));
    let (p, live) = setup(5, ORDERS, children);
    let e = refused(&p, &live);
    assert!(
        e.contains("the newest partition of public.orders ends at 2026-11-25 23:00:00 UTC, which is not where a pg_partman partition of 1 day starts (pg_partman starts them at midnight UTC)"),
        "{e}"
    );

    // start with partitions already.
    let (p, live) = setup(
        5,
        &ORDERS.replace(
            "interval: 1 day",
            "interval: 1 day\n  start: \"2026-01-01\"",
        ),
        daily_by_hand(3, 1),
    );
    let e = refused(&p, &live);
    assert!(
        e.contains("partitioning.start: public.orders has partitions already; pg_partman continues after the newest one"),
        "{e}"
    );
}

#[test]
fn rows_in_the_default_partition_where_pg_partman_would_start_are_refused() {
    let mut children = daily_by_hand(5, 1);
    children.push(default_partition(3.0));
    let (p, mut live) = setup(5, ORDERS, children);
    live.default_rows.insert(
        "public.orders".into(),
        DefaultRows {
            partition: "public.orders_default".into(),
            newest: Some("2026-11-27 08:00:00.5+00".into()),
        },
    );
    let e = refused(&p, &live);
    assert!(
        e.contains("partitioning: the default partition public.orders_default of public.orders holds rows up to 2026-11-27 08:00:00 UTC, at or after 2026-11-26 00:00:00 UTC"),
        "{e}"
    );
    // Rows before that are no obstacle.
    live.default_rows.get_mut("public.orders").unwrap().newest =
        Some("2026-11-25 23:59:59+00".into());
    plan(&p, &live);
}

#[test]
fn a_nullable_partition_key_is_refused_for_pg_partman_5_only() {
    for children in [vec![], daily_by_hand(2, 1)] {
        let (p, mut live) = setup(5, ORDERS, children.clone());
        live.tables
            .get_mut("public.orders")
            .unwrap()
            .not_null_columns
            .clear();
        let e = refused(&p, &live);
        assert!(
            e.contains("partitioning.column: column created_at of public.orders may hold NULL; pg_partman 5 registers only a NOT NULL partition key"),
            "{e}"
        );
        let (p, mut live) = setup(4, ORDERS, children);
        live.tables
            .get_mut("public.orders")
            .unwrap()
            .not_null_columns
            .clear();
        plan(&p, &live);
    }
}

#[test]
fn names_pg_partman_would_misread_are_refused() {
    // pg_partman 4 reads the text after the last "_p" as a time: "orders_part_3" breaks it,
    // its own name for the partition's bounds is fine, names without "_p" are fine.
    let mut children = daily_by_hand(3, 1);
    children[0].name = "public.orders_part_3".into();
    let (p, live) = setup(4, ORDERS, children.clone());
    let e = refused(&p, &live);
    assert!(
        e.contains("partitioning: the partition public.orders_part_3 of public.orders cannot keep its name under pg_partman: pg_partman 4 orders partitions by the text after the last \"_p\""),
        "{e}"
    );
    assert!(e.contains("RENAME TO orders_p2026_11_23"), "{e}");
    children[0].name = "public.orders_p2026_11_23".into();
    let (p, live) = setup(4, ORDERS, children.clone());
    plan(&p, &live);
    // pg_partman 5 orders by bounds: "_p" is harmless, unless the name is one pg_partman
    // gives a partition it still has to make.
    children[0].name = "public.orders_part_3".into();
    let (p, live) = setup(5, ORDERS, children.clone());
    plan(&p, &live);
    children[0].name = "public.orders_p20261127".into();
    let (p, live) = setup(5, ORDERS, children);
    let e = refused(&p, &live);
    assert!(
        e.contains("it bears the name pg_partman gives the partition from 2026-11-27 00:00:00 UTC, which pg_partman would then not make"),
        "{e}"
    );
}

#[test]
fn an_owner_lacking_rights_is_granted_them_and_only_then() {
    let p = project(&[ORDERS]);
    let mut live = applied_live(&p);
    // Nothing missing: no change at all.
    live.owner_rights.insert(
        "public.orders".into(),
        OwnerRights {
            owner: "app_owner".into(),
            missing: vec![],
        },
    );
    assert!(plan(&p, &live).changes.is_empty());
    // Something missing: one change, running [privileges], saying what is missing.
    live.owner_rights.get_mut("public.orders").unwrap().missing = vec![
        "USAGE ON SCHEMA retention".into(),
        "EXECUTE ON FUNCTION retention.maintain(text, text)".into(),
    ];
    let planned = plan(&p, &live);
    assert_eq!(
        kinds(&planned),
        vec![("public.orders".into(), ChangeKind::OwnerRights)]
    );
    let c = &planned.changes[0];
    assert_eq!(c.statements.len(), 1);
    assert_eq!(c.statements[0].key, "privileges");
    assert_eq!(
        c.notes,
        [
            "missing: USAGE ON SCHEMA retention",
            "missing: EXECUTE ON FUNCTION retention.maintain(text, text)"
        ]
    );
    assert!(c.summary.contains("app_owner"), "{}", c.summary);
    assert!(!c.destructive);
    // A change that runs [privileges] anyway (a new schedule) carries the grant: no second one.
    let scheduled = project(&[&format!("{ORDERS}schedule: \"@daily\"\n")]);
    let planned = plan(&scheduled, &live);
    assert_eq!(
        kinds(&planned),
        vec![("public.orders".into(), ChangeKind::AddSchedule)]
    );
}

fn render_text(plan: &retentionc::plan::Plan) -> String {
    let mut out = Vec::new();
    retentionc::plan::format::write_text(plan, &mut out, false).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn partitions_that_end_long_ago_leave_pg_partman_to_start_as_for_a_new_table() {
    // Hand partitioning stopped: the newest partition ended 10 days ago. pg_partman does
    // not fill the gap with partitions; it starts premake partitions back from now.
    let (p, live) = setup(5, ORDERS, daily_by_hand(5, -10));
    let plan = plan(&p, &live);
    assert_eq!(
        adopt(&plan).notes[1],
        "pg_partman makes 9 partitions from 2026-11-21 00:00:00 UTC (premake partitions back from now; the existing ones end at 2026-11-15 00:00:00 UTC, and rows between go to the default partition) to 2026-11-30 00:00:00 UTC; later ones at each maintenance"
    );
}

#[test]
fn settings_without_effect_and_other_spellings_of_a_value_are_never_a_change() {
    // Dropped partitions keep no index: retention_keep_index may say anything.
    let p = project(&[ORDERS]);
    let mut live = applied_live(&p);
    live.part_config[0].retention_keep_index = true;
    assert!(plan(&p, &live).changes.is_empty());
    // pg_partman reads a bare number as seconds: 1728000 is 20 days.
    live.part_config[0].retention = Some("1728000".into());
    live.part_config[0].retention_parsed = None;
    assert!(plan(&p, &live).changes.is_empty());
    // Archived partitions are moved whatever retention_keep_table says.
    let archived = ORDERS.replace(
        "keep: 20 days\n",
        "keep: 20 days\n  expired: archive\n  archive_schema: archive\n",
    );
    let p = project(&[&archived]);
    let mut live = applied_live(&p);
    live.part_config[0].retention_keep_table = false;
    assert!(plan(&p, &live).changes.is_empty());
    // infinite_time_partitions is the policy's: false where the live set premakes while idle
    // is a change.
    let idle = ORDERS.replace(
        "interval: 1 day\n",
        "interval: 1 day\n  infinite_time_partitions: false\n",
    );
    let p = project(&[&idle]);
    let live = applied_live(&project(&[ORDERS]));
    let planned = plan(&p, &live);
    assert_eq!(
        kinds(&planned),
        vec![("public.orders".into(), ChangeKind::RetentionSettings)]
    );
    let s = &planned.changes[0].settings;
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(
        (s[0].column.as_str(), s[0].old.as_deref(), s[0].new.as_str()),
        ("infinite_time_partitions", Some("true"), "false")
    );
}

#[test]
fn another_registered_table_does_not_stop_an_adoption() {
    let (p, mut live) = setup(5, ORDERS, daily_by_hand(3, 1));
    let other = applied_live(&project(&[LOGS]));
    live.part_config.extend(other.part_config);
    assert_eq!(adopt(&plan(&p, &live)).table, "public.orders");
}
