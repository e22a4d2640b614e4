//! Every number and interval of the policy format at its documented bound is accepted,
//! and just past it refused with an error that names the bound (docs/policy-format.md,
//! "Bounds"). The hostile corpus covers values far past the bounds through the binary.

use std::path::Path;

use retentionc::config::parse_config;
use retentionc::policy::parse_policy_text;

/// A policy with one line replaced, parsed with the default settings: the messages of
/// its errors, empty when it is accepted.
fn errors_with(line: &str, replacement: &str) -> Vec<String> {
    const POLICY: &str = "\
table: public.events
partitioning:
  column: created_at
  interval: 1 day
  premake: 4
retention:
  keep: 90 days
deletes:
  - name: old_rows
    where: \"true\"
    older_than: 1 hour
    batch_size: 5000
";
    assert!(POLICY.contains(line), "{line:?}");
    let text = POLICY.replacen(line, replacement, 1);
    let config = parse_config(Path::new("retentionc.yaml"), "", ".".into()).unwrap();
    let (_, errors) = parse_policy_text(Path::new("policies/events.yaml"), &text, &config);
    errors
        .iter()
        .map(|e| format!("{}: {}", e.key, e.message))
        .collect()
}

#[test]
fn each_bound_holds_at_its_edge_and_is_named_just_past_it() {
    // (line, at the bound, just past it, what the error must say)
    let cases = [
        (
            "  keep: 90 days",
            "  keep: 100 years",
            "  keep: 100 years 1 second",
            "expected at most 100 years (36525 days)",
        ),
        (
            "  keep: 90 days",
            "  keep: 36525 days",
            "  keep: 36526 days",
            "expected at most 100 years (36525 days)",
        ),
        (
            "  interval: 1 day",
            "  interval: 1 second",
            "  interval: 999 milliseconds",
            "expected at least 1 second",
        ),
        (
            "  interval: 1 day",
            "  interval: 90 days",
            "  interval: 100 years 1 day",
            "expected at most 100 years",
        ),
        (
            "    older_than: 1 hour",
            "    older_than: 1 second",
            "    older_than: 999999 microseconds",
            "expected at least 1 second",
        ),
        (
            "    older_than: 1 hour",
            "    older_than: 1200 months",
            "    older_than: 1201 months",
            "expected at most 100 years",
        ),
        (
            "  premake: 4",
            "  premake: 1",
            "  premake: 0",
            "expected a whole number from 1 to 1000",
        ),
        (
            "  premake: 4",
            "  premake: 1000",
            "  premake: 1001",
            "expected a whole number from 1 to 1000",
        ),
        (
            "    batch_size: 5000",
            "    batch_size: 1",
            "    batch_size: 0",
            "expected a whole number from 1 to 1000000",
        ),
        (
            "    batch_size: 5000",
            "    batch_size: 1000000",
            "    batch_size: 1000001",
            "expected a whole number from 1 to 1000000",
        ),
        (
            "  premake: 4",
            "  premake: 4\n  start: \"1900-01-01\"",
            "  premake: 4\n  start: \"1899-12-31 23:59:59\"",
            "expected a start from 1900-01-01 to 9999-12-31",
        ),
        (
            "  premake: 4",
            "  premake: 4\n  start: \"9999-12-31 23:59:59+00\"",
            "  premake: 4\n  start: \"10000-01-01\"",
            "expected a start from 1900-01-01 to 9999-12-31",
        ),
        (
            "table: public.events",
            &format!("table: public.{}", "e".repeat(63)),
            &format!("table: public.{}", "e".repeat(64)),
            "is 64 bytes long; PostgreSQL names are at most 63",
        ),
        (
            "  column: created_at",
            &format!("  column: {}", "c".repeat(63)),
            &format!("  column: {}", "c".repeat(64)),
            "is 64 bytes long; PostgreSQL names are at most 63",
        ),
        (
            "  - name: old_rows",
            &format!("  - name: {}", "r".repeat(63)),
            &format!("  - name: {}", "r".repeat(64)),
            "is 64 bytes long",
        ),
        // With epoch: nanoseconds, premade partitions must end before April 2262.
        (
            "  premake: 4",
            "  premake: 15\n  epoch: nanoseconds",
            "  premake: 16\n  epoch: nanoseconds",
            "reach past April 2262",
        ),
    ];
    for (line, at, past, message) in cases {
        // The epoch case uses 10-year partitions: 2100 + (15 + 1) * 10 years ends in 2260,
        // inside a bigint of nanoseconds; 2100 + (16 + 1) * 10 years does not.
        let check = |replacement: &str| {
            if message.contains("2262") {
                errors_with_interval("10 years", line, replacement)
            } else {
                errors_with(line, replacement)
            }
        };
        assert_eq!(check(at), Vec::<String>::new(), "{at:?} is at the bound");
        let past_errors = check(past);
        assert_eq!(past_errors.len(), 1, "{past:?}: {past_errors:?}");
        assert!(
            past_errors[0].contains(message),
            "{past:?}: {past_errors:?}"
        );
    }
}

/// `errors_with` for a policy whose partitions are `interval` wide (keep 100 years).
fn errors_with_interval(interval: &str, line: &str, replacement: &str) -> Vec<String> {
    let config = parse_config(Path::new("retentionc.yaml"), "", ".".into()).unwrap();
    let text = format!(
        "table: public.events\npartitioning:\n  column: created_at\n  interval: {interval}\n{}\nretention:\n  keep: 100 years\n",
        "  premake: 4".replacen(line, replacement, 1)
    );
    let (_, errors) = parse_policy_text(Path::new("policies/events.yaml"), &text, &config);
    errors
        .iter()
        .map(|e| format!("{}: {}", e.key, e.message))
        .collect()
}

#[test]
fn lock_timeout_holds_from_1_millisecond_to_1_hour() {
    for (text, ok) in [
        ("1ms", true),
        ("1h", true),
        ("3600s", true),
        ("0ms", false),
        ("3601s", false),
    ] {
        let result = parse_config(
            Path::new("retentionc.yaml"),
            &format!("lock_timeout: {text}\n"),
            ".".into(),
        );
        assert_eq!(
            result.is_ok(),
            ok,
            "{text}: {:?}",
            result.err().map(|e| e.to_string())
        );
    }
}
