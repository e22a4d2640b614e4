//! One mistake, one error: a key that fails to parse is reported once, and the checks of
//! keys that depend on it (a rule's default column, keep against the partition width,
//! archive_schema against expired) are skipped rather than reported as mistakes of
//! their own.
//!
//! Each case breaks one line of a policy that uses every dependency between keys, and
//! expects exactly one error, about the broken key.

use std::path::Path;

use retentionc::config::parse_config;
use retentionc::policy::parse_policy_text;

/// A valid policy in which later keys depend on earlier ones: the delete rule's
/// `older_than` takes its column from `partitioning.column`, `keep` is compared with
/// `interval`, `archive_schema` goes with `expired: archive`.
const POLICY: &str = "\
table: public.events
partitioning:
  column: created_at
  interval: 1 day
  premake: 4
  start: \"2026-01-01\"
  epoch: none
retention:
  keep: 90 days
  expired: archive
  archive_schema: archive
  keep_index: true
deletes:
  - name: debug_rows
    where: \"level = 'debug'\"
    older_than: 1 hour
    batch_size: 5000
schedule: \"*/5 * * * *\"
";

fn errors_of(text: &str) -> Vec<(String, String)> {
    let config = parse_config(Path::new("retentionc.yaml"), "", ".".into()).unwrap();
    let (_, errors) = parse_policy_text(Path::new("policies/events.yaml"), text, &config);
    errors
        .into_iter()
        .map(|e| (e.key.clone(), e.to_string()))
        .collect()
}

#[test]
fn the_policy_itself_is_valid() {
    assert_eq!(errors_of(POLICY), Vec::<(String, String)>::new());
}

#[test]
fn each_broken_key_gives_exactly_one_error_about_itself() {
    // (line to replace, its replacement, the key the one error must name)
    let cases = [
        (
            "partitioning:\n  column: created_at\n  interval: 1 day\n  premake: 4\n  start: \"2026-01-01\"\n  epoch: none\n",
            "partitioning: daily\n",
            "partitioning",
        ),
        ("partitioning:", "partitoning:", "partitoning"),
        (
            "  column: created_at",
            "  column: CreatedAt",
            "partitioning.column",
        ),
        (
            "  column: created_at",
            "  colunm: created_at",
            "partitioning.colunm",
        ),
        (
            "  interval: 1 day",
            "  interval: 1 dya",
            "partitioning.interval",
        ),
        (
            "  interval: 1 day",
            "  interval: 200 years",
            "partitioning.interval",
        ),
        (
            "  interval: 1 day",
            "  interval: 500 ms",
            "partitioning.interval",
        ),
        ("  premake: 4", "  premake: 0", "partitioning.premake"),
        (
            "  premake: 4",
            "  premake: 99999999999",
            "partitioning.premake",
        ),
        (
            "  start: \"2026-01-01\"",
            "  start: \"1066-10-14\"",
            "partitioning.start",
        ),
        ("  epoch: none", "  epoch: nanosecond", "partitioning.epoch"),
        ("  keep: 90 days", "  keep: 90 dais", "retention.keep"),
        (
            "  keep: 90 days",
            "  keep: 99999999999 years",
            "retention.keep",
        ),
        ("  keep: 90 days", "  kep: 90 days", "retention.kep"),
        (
            "  expired: archive",
            "  expired: archiv",
            "retention.expired",
        ),
        (
            "  expired: archive",
            "  expird: archive",
            "retention.expird",
        ),
        (
            "  archive_schema: archive",
            "  archive_schema: Archive",
            "retention.archive_schema",
        ),
        (
            "  archive_schema: archive",
            "  archive_schema: pg_catalog",
            "retention.archive_schema",
        ),
        (
            "  keep_index: true",
            "  keep_index: yes",
            "retention.keep_index",
        ),
        ("table: public.events", "table: events", "table"),
        (
            "table: public.events",
            "table: partman.part_config",
            "table",
        ),
        ("  - name: debug_rows", "  - name: Debug", "deletes[0].name"),
        (
            "    where: \"level = 'debug'\"",
            "    where: \"level = 'debug'; drop table x\"",
            "deletes[0].where",
        ),
        (
            "    older_than: 1 hour",
            "    older_than: 1 hours 1 hour",
            "deletes[0].older_than",
        ),
        (
            "    batch_size: 5000",
            "    batch_size: 0",
            "deletes[0].batch_size",
        ),
        (
            "schedule: \"*/5 * * * *\"",
            "schedule: \"*/5 * * * 9\"",
            "schedule",
        ),
    ];
    for (line, replacement, key) in cases {
        assert!(
            POLICY.contains(line),
            "case {key}: {line:?} not in the policy"
        );
        let text = POLICY.replacen(line, replacement, 1);
        let errors = errors_of(&text);
        assert_eq!(
            errors.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [key],
            "{replacement:?}:\n{}",
            errors
                .iter()
                .map(|(_, e)| e.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn a_broken_partitioning_block_hides_no_error_of_its_own_dependants() {
    // With partitioning broken, a rule with its own column is still checked.
    let text = POLICY
        .replacen("  interval: 1 day", "  interval: soon", 1)
        .replacen(
            "    older_than: 1 hour",
            "    older_than: 1 hour\n    column: Bad",
            1,
        );
    let keys: Vec<String> = errors_of(&text).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["partitioning.interval", "deletes[0].column"]);
}
