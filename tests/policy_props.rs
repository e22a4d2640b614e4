//! Property tests of the policy input layer: the file decoder, the YAML reader, the
//! policy parser and validator, and the interval parser.
//!
//! - Arbitrary and mutated inputs never panic, and every error has a line and column
//!   inside the input.
//! - Every policy that is accepted, written back (`policy::write`), reads back as the same
//!   model; so does every generated valid policy.
//! - Intervals written in canonical text read back as the same value; YAML scalars and
//!   comments written by retentionc read back as the same text and add no key.
//!
//! The number of cases is proptest's default (256 per property, a few seconds in all);
//! `PROPTEST_CASES=100000 cargo test --release --test policy_props` runs a longer search.

use std::path::Path;

use proptest::prelude::*;
use retentionc::config::parse_config;
use retentionc::model::{Config, Policy};
use retentionc::policy::interval::{Interval, parse_interval};
use retentionc::policy::source::decode_text;
use retentionc::policy::write::policy_yaml;
use retentionc::policy::yaml::{Value, comment_text, parse_documents, scalar};
use retentionc::policy::{error::PolicyError, parse_policy_text};

fn config() -> Config {
    parse_config(Path::new("retentionc.yaml"), "", ".".into()).unwrap()
}

/// The lines of `text` as YAML counts them (`\n`, `\r\n`, lone `\r`), counted here
/// independently of retentionc's own helpers.
fn lines_of(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .map(str::to_string)
        .collect()
}

/// Every error has a line of the input and a column on it (or just past its end).
fn assert_places_inside(text: &str, errors: &[PolicyError]) -> Result<(), TestCaseError> {
    let lines = lines_of(text);
    for e in errors {
        let line = e.pos.line as usize;
        prop_assert!(
            line >= 1 && line <= lines.len(),
            "line {} of {}: {e}",
            line,
            lines.len()
        );
        let width = lines[line - 1].chars().count() as u64;
        prop_assert!(
            e.pos.column >= 1 && e.pos.column <= width + 1,
            "column {} of a {width}-character line: {e}",
            e.pos.column
        );
        let shown = e.to_string();
        prop_assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in {shown:?}"
        );
    }
    Ok(())
}

/// The canonical form of a policy, for comparing models.
fn model(policy: &Policy) -> serde_json::Value {
    serde_json::to_value(policy).unwrap()
}

/// Parses `text`; checks error places; for each accepted policy, checks that its written
/// form reads back as the same model.
fn check_policy_text(text: &str) -> Result<(), TestCaseError> {
    let config = config();
    let (policies, errors) = parse_policy_text(Path::new("policies/p.yaml"), text, &config);
    assert_places_inside(text, &errors)?;
    for policy in &policies {
        let written = policy_yaml(policy);
        let (again, errors) = parse_policy_text(Path::new("policies/p.yaml"), &written, &config);
        prop_assert!(
            errors.is_empty(),
            "{written}\n{:?}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
        prop_assert_eq!(again.len(), 1);
        prop_assert_eq!(model(&again[0]), model(policy), "written as\n{}", written);
    }
    Ok(())
}

/// Valid policies to mutate: the repository's own and the edge cases.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    for dir in ["policies", "tests/fixtures/good"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    texts.sort();
    texts
}

/// Text that YAML and the policy format care about, for insertions.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            ":",
            ": ",
            "-",
            "- ",
            "#",
            "\n",
            "\r\n",
            "\r",
            "\t",
            " ",
            "  ",
            "\"",
            "'",
            "[",
            "]",
            "{",
            "}",
            ",",
            "&a",
            "*a",
            "!",
            "!!str ",
            "|",
            ">",
            "%",
            "@",
            "`",
            "?",
            "~",
            "null",
            "yes",
            "on",
            "---\n",
            "...\n",
            "\u{feff}",
            "\u{2028}",
            "\u{85}",
            "\u{0}",
            "\u{1b}",
            "é",
            "日",
            "0",
            "1",
            "99999999999999999999",
            "-1",
            "1.5",
            "1e3",
            "P",
            "T",
            "days",
            "table",
            "partitioning",
            "retention",
            "deletes",
            "keep",
            "interval",
            "where",
            "older_than",
            "column",
            "premake",
            "start",
            "schedule",
            "expired",
            "archive",
            "pg_catalog.",
            "public.",
            "\\",
            "\"\\n\"",
        ])
        .prop_map(str::to_string),
        "\\PC{0,8}",
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    DuplicateLine(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), fragment()).prop_map(|(at, s)| Edit::Insert(at, s)),
            (any::<usize>(), 1..20usize).prop_map(|(at, n)| Edit::Delete(at, n)),
            any::<usize>().prop_map(Edit::DuplicateLine),
        ],
        1..6,
    )
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        match edit {
            Edit::Insert(at, s) => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, s.chars());
            }
            Edit::Delete(at, n) if !chars.is_empty() => {
                let at = at % chars.len();
                let end = (at + n).min(chars.len());
                chars.drain(at..end);
            }
            Edit::Delete(..) => {}
            Edit::DuplicateLine(at) => {
                let s: String = chars.iter().collect();
                let lines: Vec<&str> = s.split_inclusive('\n').collect();
                if !lines.is_empty() {
                    let i = at % lines.len();
                    let mut out: Vec<&str> = lines.clone();
                    out.insert(i, lines[i]);
                    chars = out.concat().chars().collect();
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,20}"
}

fn interval_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            1..100i64,
            prop::sample::select(vec![
                "second", "seconds", "minutes", "h", "hours", "d", "days", "w", "weeks", "mons",
                "months", "y"
            ])
        )
            .prop_map(|(n, u)| format!("{n} {u}")),
        (1..100i64).prop_map(|n| format!("P{n}D")),
        (1..48i64).prop_map(|n| format!("PT{n}H")),
        (1..90i64, 1..24i64).prop_map(|(d, h)| format!("{d}d {h}h")),
    ]
}

/// Policies written by hand as users would, all valid (keep is always at least the
/// partition width: both are drawn so that it holds).
fn valid_policy_text() -> impl Strategy<Value = String> {
    (
        ident(),
        ident(),
        ident(),
        prop::option::of(1..1000u32),
        prop::option::of((1..3650i64).prop_map(|d| d)),
        prop::collection::vec(
            (ident(), prop::sample::select(vec!["level = 'debug'", "a = 1 AND b <> 'x''y'", "note LIKE '%#: \\\"%'", "true"]), prop::option::of(interval_text()), 1..1_000_000u32),
            0..3,
        ),
        prop::option::of(prop::sample::select(vec!["*/5 * * * *", "0 3 * * sun", "@daily", "30 seconds", "0-59/15 0,12 1-31 jan-dec mon-fri"])),
        prop::sample::select(vec!["drop", "detach", "archive"]),
    )
        .prop_map(|(schema, table, column, premake, keep_days, rules, schedule, expired)| {
            let schema = format!("s{schema}");
            let mut text = format!("table: {schema}.t{table}\npartitioning:\n  column: c{column}\n  interval: 1 day\n");
            if let Some(premake) = premake {
                text.push_str(&format!("  premake: {premake}\n"));
            }
            if let Some(days) = keep_days {
                text.push_str(&format!("retention:\n  keep: {days} days\n  expired: {expired}\n"));
                if expired == "archive" {
                    text.push_str("  archive_schema: archive\n");
                }
            }
            let mut names = std::collections::BTreeSet::new();
            let rules: Vec<_> = rules.into_iter().filter(|r| names.insert(r.0.clone())).collect();
            if !rules.is_empty() || keep_days.is_none() {
                text.push_str("deletes:\n");
                if rules.is_empty() {
                    text.push_str("  - name: all_rows\n    where: \"true\"\n");
                }
                for (name, condition, older_than, batch) in rules {
                    text.push_str(&format!("  - name: r{name}\n    where: {}\n    batch_size: {batch}\n", scalar(condition)));
                    if let Some(older_than) = older_than {
                        text.push_str(&format!("    older_than: {older_than}\n"));
                    }
                }
            }
            if let Some(schedule) = schedule {
                text.push_str(&format!("schedule: \"{schedule}\"\n"));
            }
            text
        })
}

proptest! {
    // Cases from PROPTEST_CASES (default 256); failures are reported, not saved to files.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_errors_stay_inside_it(text in "\\PC{0,400}") {
        check_policy_text(&text)?;
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_with_a_place_inside(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        match decode_text(&bytes) {
            Ok(text) => check_policy_text(&text)?,
            Err(e) => {
                let lossy = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes)).into_owned();
                let lines = lines_of(&lossy);
                prop_assert!(e.pos.line >= 1 && e.pos.line as usize <= lines.len(), "{e:?}");
                prop_assert!(e.pos.column >= 1, "{e:?}");
            }
        }
    }

    #[test]
    fn mutated_policies_never_panic_and_what_is_accepted_round_trips(
        seed in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        let seeds = seeds();
        let text = apply(&seeds[seed.index(seeds.len())], &edits);
        check_policy_text(&text)?;
    }

    #[test]
    fn generated_valid_policies_are_accepted_and_round_trip(text in valid_policy_text()) {
        let config = config();
        let (policies, errors) = parse_policy_text(Path::new("policies/p.yaml"), &text, &config);
        prop_assert!(errors.is_empty(), "{text}\n{:?}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        prop_assert_eq!(policies.len(), 1);
        check_policy_text(&text)?;
    }

    #[test]
    fn interval_text_never_panics(text in "\\PC{0,40}") {
        let _ = parse_interval(&text);
    }

    #[test]
    fn interval_like_text_never_panics(text in "[+-]?[0-9]{0,22}[ .]?[a-zA-Z]{0,12}( [0-9]{0,22}[a-zA-Z]{0,12}){0,3}|P[0-9YMWDTHS.]{0,20}") {
        if let Ok(interval) = parse_interval(&text) {
            prop_assert_eq!(parse_interval(&interval.to_string()), Ok(interval), "{}", text);
        }
    }

    #[test]
    fn canonical_interval_text_reads_back_as_the_same_value(
        months in 0..1_200i64,
        days in 0..36_525i64,
        micros in 0..86_400_000_000i64,
    ) {
        let interval = Interval { months, days, micros };
        prop_assert_eq!(parse_interval(&interval.to_string()), Ok(interval));
    }

    #[test]
    fn scalars_read_back_as_the_same_string(text in "\\PC{0,60}|[\\x00-\\x7f\u{85}\u{2028}\u{2029}\u{feff}]{0,30}") {
        let yaml = format!("k: {}\n", scalar(&text));
        let docs = parse_documents(&yaml).map_err(|e| TestCaseError::fail(format!("{yaml:?}: {e:?}")))?;
        let Value::Map(entries) = &docs[0].value else { return Err(TestCaseError::fail(format!("{yaml:?}"))) };
        prop_assert_eq!(entries.len(), 1);
        prop_assert_eq!(&entries[0].1.value, &Value::Str(text.clone()), "{:?}", yaml);
    }

    #[test]
    fn comment_text_stays_one_comment_line(text in "\\PC{0,60}|[\\x00-\\x7f\u{85}\u{2028}\u{2029}]{0,30}") {
        let yaml = format!("# {}\nk: v\n", comment_text(&text));
        prop_assert_eq!(yaml.lines().count(), 2, "{:?}", yaml);
        let docs = parse_documents(&yaml).map_err(|e| TestCaseError::fail(format!("{yaml:?}: {e:?}")))?;
        let Value::Map(entries) = &docs[0].value else { return Err(TestCaseError::fail(format!("{yaml:?}"))) };
        prop_assert_eq!(entries.len(), 1);
        prop_assert_eq!(&entries[0].0.name, "k");
    }
}
