//! One policy document (a YAML node tree) -> a validated `model::Policy`.
//!
//! Every check of the policy format that needs no database happens here, and every
//! problem is reported, not only the first.

use crate::model::{
    Config, DeleteRule, Epoch, Expired, Partitioning, PartmanMajor, Policy, Retention, Source,
};
use crate::policy::ident::{Ident, QualifiedName};
use crate::policy::interval::{Interval, POLICY_INTERVAL_BOUNDS, parse_bounded};
use crate::policy::reader::{Fields, Reader};
use crate::policy::where_clause::parse_condition;
use crate::policy::yaml::{Node, Value};

const POLICY_KEYS: [&str; 6] = [
    "table",
    "partitioning",
    "retention",
    "deletes",
    "schedule",
    "time_zone",
];
const PARTITIONING_KEYS: [&str; 7] = [
    "column",
    "interval",
    "premake",
    "start",
    "default_partition",
    "epoch",
    "infinite_time_partitions",
];
const RETENTION_KEYS: [&str; 4] = ["keep", "expired", "archive_schema", "keep_index"];
const DELETE_KEYS: [&str; 5] = ["name", "where", "older_than", "column", "batch_size"];

pub const DEFAULT_PREMAKE: u32 = 4;
/// Partitions kept ready ahead of now: pg_partman makes this many at every maintenance.
pub const PREMAKE_RANGE: std::ops::RangeInclusive<i64> = 1..=1000;
pub const DEFAULT_BATCH_SIZE: u32 = 5000;
pub const MAX_BATCH_SIZE: i64 = 1_000_000;
/// Earliest and latest `partitioning.start`: four-digit years, as pg_partman's partition
/// name suffixes (`YYYYMMDD`) and every integer epoch from seconds to nanoseconds
/// (1677 to 2262) represent them.
pub const START_YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

const INTERVAL_EXAMPLE: &str = "an interval such as \"30 days\"";

/// A block of a policy (`partitioning`): absent, read, or present but broken, its errors
/// already reported. Checks that depend on a broken block are skipped: one error per cause.
enum Block<T> {
    Absent,
    Read(T),
    Broken,
}

impl<T> Block<T> {
    fn read(&self) -> Option<&T> {
        match self {
            Block::Read(value) => Some(value),
            _ => None,
        }
    }
}

/// Reads one document; returns None when it had errors (already in `reader.errors`).
pub fn parse_policy(
    reader: &mut Reader,
    node: &Node,
    document: usize,
    config: &Config,
) -> Option<Policy> {
    let errors_before = reader.errors.len();
    reader.positions.clear();
    let fields = reader.mapping(node, "", &POLICY_KEYS)?;

    let table = reader
        .require(
            &fields,
            "table",
            "the schema-qualified table, such as public.events",
        )
        .and_then(|n| {
            reader.parsed(n, "table", "a table name such as public.events", |text| {
                let name = QualifiedName::parse(text)?;
                check_target_schema(&name.schema, config)
                    .map_err(|why| format!("{name} is not a table retentionc may manage: {why}"))?;
                Ok(name)
            })
        });
    let partitioning = match fields.get("partitioning") {
        Some(n) => {
            parse_partitioning(reader, n, config.partman_version).map_or(Block::Broken, Block::Read)
        }
        None if fields.was_misspelt("partitioning") => Block::Broken,
        None => Block::Absent,
    };
    let retention = fields
        .get("retention")
        .and_then(|n| parse_retention(reader, n, config));
    let deletes = fields
        .get("deletes")
        .map(|n| parse_deletes(reader, n, &partitioning))
        .unwrap_or_default();
    let schedule = fields.get("schedule").and_then(|n| {
        reader.parsed(
            n,
            "schedule",
            "a cron schedule such as \"*/5 * * * *\"",
            check_cron,
        )
    });

    let time_zone = fields.get("time_zone").and_then(|n| {
        reader.parsed(
            n,
            "time_zone",
            "a time zone name such as \"Europe/Paris\"",
            check_time_zone,
        )
    });

    check_policy_shape(reader, &fields, partitioning.read(), retention.as_ref());

    if reader.errors.len() > errors_before {
        return None;
    }
    let partitioning = partitioning.read().cloned();
    let policy = Policy {
        source: Source {
            file: reader.file().to_path_buf(),
            document,
            key_positions: reader.positions.clone(),
        },
        table: table?,
        partitioning,
        retention,
        deletes,
        schedule,
        time_zone,
    };
    Some(policy)
}

/// Checks that relate several keys of one policy.
fn check_policy_shape(
    reader: &mut Reader,
    fields: &Fields,
    partitioning: Option<&Partitioning>,
    retention: Option<&Retention>,
) {
    // A misspelt key ("retension") was already reported with its correction; saying the
    // key is missing as well would only send the reader looking for a second mistake.
    let present_or_misspelt = |key: &str| fields.has(key) || fields.was_misspelt(key);
    // An unknown key no suggestion matched may still be a mangled "retention".
    if !present_or_misspelt("retention") && !present_or_misspelt("deletes") && !fields.had_unknown()
    {
        reader.error(fields.pos(), "", "a policy needs at least one of \"retention\" or \"deletes\"; without them it would do nothing");
    }
    if let Some(node) = fields.get("retention")
        && !present_or_misspelt("partitioning")
    {
        let pos = reader
            .positions
            .get("retention")
            .copied()
            .unwrap_or(node.pos);
        reader.error(pos, "retention", "\"retention\" expires whole partitions and needs \"partitioning\", which this policy does not have; for a plain table use \"deletes\" with \"older_than\"");
    }
    if let (Some(partitioning), Some(retention), Some(node)) =
        (partitioning, retention, fields.get("retention"))
        && retention.keep.comparable() < partitioning.interval.comparable()
    {
        let pos = reader
            .positions
            .get("retention.keep")
            .copied()
            .unwrap_or(node.pos);
        reader.error(pos, "retention.keep", format!(
                "keep ({}) is shorter than one partition ({}); a partition could never be expired whole",
                retention.keep, partitioning.interval
            ));
    }
}

/// An interval within `POLICY_INTERVAL_BOUNDS` (1 second to 100 years).
fn parse_policy_interval(reader: &mut Reader, node: &Node, path: &str) -> Option<Interval> {
    reader.parsed(node, path, INTERVAL_EXAMPLE, |t| {
        parse_bounded(t, &POLICY_INTERVAL_BOUNDS)
    })
}

fn parse_partitioning(
    reader: &mut Reader,
    node: &Node,
    partman: PartmanMajor,
) -> Option<Partitioning> {
    let fields = reader.mapping(node, "partitioning", &PARTITIONING_KEYS)?;
    let column = reader
        .require(&fields, "column", "the partition key column")
        .and_then(|n| reader.parsed(n, "partitioning.column", "a column name", Ident::parse));
    let interval = reader
        .require(
            &fields,
            "interval",
            "the width of one partition, such as \"1 day\"",
        )
        .and_then(|n| parse_policy_interval(reader, n, "partitioning.interval"));
    let premake = match fields.get("premake") {
        Some(n) => reader
            .integer(n, "partitioning.premake", PREMAKE_RANGE)
            .map(|v| v as u32),
        None => Some(DEFAULT_PREMAKE),
    };
    let start = match fields.get("start") {
        Some(n) => reader
            .parsed(
                n,
                "partitioning.start",
                "a date such as \"2026-01-01\"",
                parse_start,
            )
            .map(Some),
        None => Some(None),
    };
    let default_partition = match fields.get("default_partition") {
        Some(n) => reader.boolean(n, "partitioning.default_partition"),
        None => Some(true),
    };
    if default_partition == Some(false) && partman == PartmanMajor::V4 {
        let pos = fields
            .get("default_partition")
            .map(|n| n.pos)
            .unwrap_or_default();
        reader.error(pos, "partitioning.default_partition", "false needs pg_partman 5; pg_partman 4 always creates a default partition (partman_version is 4 in retentionc.yaml)");
    }
    let epoch = match fields.get("epoch") {
        Some(n) => reader
            .choice(n, "partitioning.epoch", &Epoch::NAMES)
            .and_then(|t| Epoch::parse(&t)),
        None => Some(Epoch::None),
    };
    let infinite_time_partitions = match fields.get("infinite_time_partitions") {
        Some(n) => reader.boolean(n, "partitioning.infinite_time_partitions"),
        None => Some(true),
    };
    let partitioning = Partitioning {
        column: column?,
        interval: interval?,
        premake: premake?,
        start: start?,
        default_partition: default_partition?,
        epoch: epoch?,
        infinite_time_partitions: infinite_time_partitions?,
    };
    if partitioning.epoch == Epoch::Nanoseconds
        && let Err(message) = check_nanosecond_horizon(&partitioning)
    {
        let pos = reader
            .positions
            .get("partitioning.premake")
            .or(reader.positions.get("partitioning.interval"))
            .copied()
            .unwrap_or(fields.pos());
        let key = if fields.has("premake") {
            "partitioning.premake"
        } else {
            "partitioning.interval"
        };
        reader.error(pos, key, message);
        return None;
    }
    Some(partitioning)
}

/// The latest time a bigint of nanoseconds holds: 2262-04-11 23:47:16 UTC.
const NANOSECOND_EPOCH_END_YEAR: i32 = 2262;
/// The year up to which partitions premade by pg_partman must fit the column.
const NANOSECOND_PREMAKE_HORIZON_YEAR: i32 = 2100;

/// With `epoch: nanoseconds`, pg_partman's premade partitions must stay below the end of
/// a bigint of nanoseconds (April 2262), or maintenance fails ("bigint out of range").
/// Checked for maintenance running until 2100.
fn check_nanosecond_horizon(partitioning: &Partitioning) -> Result<(), String> {
    let ahead = partitioning
        .interval
        .times(i64::from(partitioning.premake) + 1);
    let from = chrono::NaiveDate::from_ymd_opt(NANOSECOND_PREMAKE_HORIZON_YEAR, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    let end = chrono::NaiveDate::from_ymd_opt(NANOSECOND_EPOCH_END_YEAR, 4, 11)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    match ahead.and_then(|a| a.after(from)) {
        Some(last) if last < end => Ok(()),
        _ => Err(format!(
            "premake ({}) + 1 partitions of {} reach past April {NANOSECOND_EPOCH_END_YEAR}, the last time a bigint of nanoseconds (epoch: nanoseconds) can hold, once maintenance runs in {NANOSECOND_PREMAKE_HORIZON_YEAR}; use a smaller premake or interval",
            partitioning.premake, partitioning.interval
        )),
    }
}

/// `partitioning.start`: a date (`2026-01-01`) or a timestamp (`2026-01-01 00:00`,
/// `2026-11-29 17:00:00+00`, `+05:30`, RFC 3339 `2026-11-29T17:00:00Z`), with a year in
/// `START_YEARS`. The text is passed to create_parent as written, so it is checked
/// strictly here: only shapes PostgreSQL reads the same way in every DateStyle.
pub fn parse_start(text: &str) -> Result<String, String> {
    let t = text.trim();
    let expected = "expected a date such as \"2026-01-01\" or a timestamp such as \"2026-01-01 00:00:00\" (an offset such as +00, +05:30 or Z may follow)";
    let bad = || format!("{expected}, found \"{text}\"");
    let out_of_bounds = || {
        format!(
            "expected a start from {}-01-01 to {}-12-31, found \"{text}\"",
            START_YEARS.start(),
            START_YEARS.end()
        )
    };
    let year_digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if year_digits > 4 && t.as_bytes().get(year_digits) == Some(&b'-') {
        return Err(out_of_bounds());
    }
    let (date, rest) = t.split_at(t.len().min(10));
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|_| date.len() == 10 && date.as_bytes()[4] == b'-')
        .ok_or_else(bad)?;
    if !rest.is_empty() {
        let time_and_offset = rest.strip_prefix(['T', ' ']).ok_or_else(bad)?;
        let (time, offset) = split_offset(time_and_offset);
        check_time(time).ok_or_else(bad)?;
        if let Some(offset) = offset {
            check_offset(offset).ok_or_else(bad)?;
        }
    }
    let year = chrono::Datelike::year(&date);
    if !START_YEARS.contains(&year) {
        return Err(out_of_bounds());
    }
    Ok(t.to_string())
}

/// `17:00:00+05:30` -> (`17:00:00`, Some(`+05:30`)).
fn split_offset(text: &str) -> (&str, Option<&str>) {
    match text.find(['+', '-', 'Z']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    }
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.ffffff`.
fn check_time(text: &str) -> Option<()> {
    let (clock, fraction) = text.split_once('.').unwrap_or((text, ""));
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        || (text.contains('.') && (parts.len() != 3 || fraction.is_empty() || fraction.len() > 6))
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let number = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
    chrono::NaiveTime::from_hms_opt(number(0)?, number(1)?, number(2)?).map(|_| ())
}

/// `Z`, `+HH`, `+HH:MM` or `+HHMM` (or `-`), at most 15:59 as PostgreSQL allows.
fn check_offset(text: &str) -> Option<()> {
    if text == "Z" {
        return Some(());
    }
    let digits = text.strip_prefix(['+', '-'])?.replace(':', "");
    let colons = text.matches(':').count();
    if !matches!((digits.len(), colons), (2, 0) | (4, 0) | (4, 1))
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (colons == 1 && text.as_bytes().get(3) != Some(&b':'))
    {
        return None;
    }
    let hours: u32 = digits[..2].parse().ok()?;
    let minutes: u32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    (hours <= 15 && minutes < 60).then_some(())
}

/// Schemas that hold no user tables retentionc may manage, and why: PostgreSQL's own,
/// pg_partman's, pg_cron's and retentionc's own.
pub fn check_target_schema(schema: &Ident, config: &Config) -> Result<(), String> {
    let name = schema.as_str();
    if matches!(name, "information_schema") || name.starts_with("pg_") {
        return Err(format!("{name} is a PostgreSQL system schema"));
    }
    if schema == &config.partman_schema {
        return Err(format!(
            "{name} is pg_partman's schema (partman_schema in retentionc.yaml)"
        ));
    }
    if name == "cron" {
        return Err("cron is pg_cron's schema".into());
    }
    if schema == &config.schema {
        return Err(format!(
            "{name} is retentionc's own schema (schema in retentionc.yaml)"
        ));
    }
    Ok(())
}

fn parse_retention(reader: &mut Reader, node: &Node, config: &Config) -> Option<Retention> {
    let fields = reader.mapping(node, "retention", &RETENTION_KEYS)?;
    let keep = reader
        .require(
            &fields,
            "keep",
            "how long data is kept, such as \"30 days\"",
        )
        .and_then(|n| parse_policy_interval(reader, n, "retention.keep"));
    let mode = match fields.get("expired") {
        Some(n) => reader.choice(n, "retention.expired", &Expired::NAMES),
        // A misspelt "expired" was reported; its value is unknown, not "drop".
        None if fields.was_misspelt("expired") => None,
        None => Some("drop".to_string()),
    };
    let archive_schema = fields.get("archive_schema").map(|n| {
        (
            n.pos,
            reader.parsed(n, "retention.archive_schema", "a schema name", |text| {
                let schema = Ident::parse(text)?;
                check_target_schema(&schema, config).map_err(|why| {
                    format!("expired partitions cannot be moved into {schema}: {why}; use a schema of their own, such as archive")
                })?;
                Ok(schema)
            }),
        )
    });
    let keep_index = match fields.get("keep_index") {
        Some(n) => reader.boolean(n, "retention.keep_index"),
        None => Some(false),
    };
    let expired = match (mode.as_deref(), archive_schema) {
        (Some("archive"), Some((_, schema))) => Expired::Archive { schema: schema? },
        (Some("archive"), None) => {
            // Point at `expired: archive`, the line that asks for the schema.
            let pos = fields.get("expired").map(|n| n.pos).unwrap_or(fields.pos());
            reader.error(pos, "retention.archive_schema", "missing required key \"archive_schema\" in \"retention\": \"expired: archive\" moves expired partitions into that schema (or use \"expired: detach\" to leave them where they are)");
            return None;
        }
        (Some(other), Some((pos, _))) => {
            reader.error(pos, "retention.archive_schema", format!("\"archive_schema\" is only allowed with \"expired: archive\", but expired is \"{other}\""));
            return None;
        }
        (Some("detach"), None) => Expired::Detach,
        (Some(_), None) => Expired::Drop,
        (None, _) => return None,
    };
    if expired == Expired::Drop && keep_index == Some(true) {
        let pos = fields.get("keep_index").map(|n| n.pos).unwrap_or_default();
        reader.error(pos, "retention.keep_index", "keep_index only applies to detached or archived partitions; with \"expired: drop\" there are no indexes to keep");
        return None;
    }
    Some(Retention {
        keep: keep?,
        expired,
        keep_index: keep_index?,
    })
}

fn parse_deletes(
    reader: &mut Reader,
    node: &Node,
    partitioning: &Block<Partitioning>,
) -> Vec<DeleteRule> {
    let Value::Seq(items) = &node.value else {
        reader.error(
            node.pos,
            "deletes",
            format!(
                "expected a list of delete rules (lines starting with \"- name:\"), found {}",
                node.value.kind()
            ),
        );
        return Vec::new();
    };
    if items.is_empty() {
        reader.error(
            node.pos,
            "deletes",
            "the list of delete rules is empty; remove the key or add a rule",
        );
    }
    let mut rules: Vec<DeleteRule> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("deletes[{index}]");
        let Some(rule) = parse_delete_rule(reader, item, &path, partitioning) else {
            continue;
        };
        if rules.iter().any(|r| r.name == rule.name) {
            let pos = reader
                .positions
                .get(&format!("{path}.name"))
                .copied()
                .unwrap_or(item.pos);
            reader.error(
                pos,
                &format!("{path}.name"),
                format!(
                    "rule name \"{}\" is used twice in this policy; names must be unique",
                    rule.name
                ),
            );
            continue;
        }
        rules.push(rule);
    }
    rules
}

fn rule_name(text: &str) -> Result<Ident, String> {
    let ident = Ident::parse(text)?;
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "\"{text}\" must start with a letter (rule names are [a-z][a-z0-9_]*)"
        ));
    }
    Ok(ident)
}

fn parse_delete_rule(
    reader: &mut Reader,
    node: &Node,
    path: &str,
    partitioning: &Block<Partitioning>,
) -> Option<DeleteRule> {
    let fields = reader.mapping(node, path, &DELETE_KEYS)?;
    let name = reader
        .require(&fields, "name", "a rule name such as debug_rows")
        .and_then(|n| {
            reader.parsed(
                n,
                &fields.path_of("name"),
                "a rule name such as debug_rows",
                rule_name,
            )
        });
    let condition = reader
        .require(
            &fields,
            "where",
            "one SQL boolean expression, such as \"level = 'debug'\"",
        )
        .and_then(|n| {
            reader.parsed(
                n,
                &fields.path_of("where"),
                "one SQL boolean expression",
                parse_condition,
            )
        });
    let older_than = match fields.get("older_than") {
        Some(n) => parse_policy_interval(reader, n, &fields.path_of("older_than")).map(Some),
        None => Some(None),
    };
    let own_column = match fields.get("column") {
        Some(n) => reader
            .parsed(n, &fields.path_of("column"), "a column name", Ident::parse)
            .map(Some),
        None => Some(None),
    };
    let batch_size = match fields.get("batch_size") {
        Some(n) => reader
            .integer(n, &fields.path_of("batch_size"), 1..=MAX_BATCH_SIZE)
            .map(|v| v as u32),
        None => Some(DEFAULT_BATCH_SIZE),
    };
    let column = own_column
        .clone()?
        .or_else(|| partitioning.read().map(|p| p.column.clone()));
    if let (Some(Some(_)), None) = (&older_than, &column) {
        if matches!(partitioning, Block::Broken) {
            // The column would default to partitioning.column, whose block has errors.
            return None;
        }
        let pos = fields.get("older_than").map(|n| n.pos).unwrap_or_default();
        reader.error(pos, &fields.path_of("older_than"), "\"older_than\" needs a time column: set \"column\" on the rule (the table has no \"partitioning.column\" to default to)");
        return None;
    }
    Some(DeleteRule {
        name: name?,
        condition: condition?,
        older_than: older_than?,
        column,
        batch_size: batch_size?,
    })
}

/// pg_cron schedules: five cron fields (minute 0-59, hour 0-23, day of month 1-31,
/// month 1-12 or jan-dec, day of week 0-7 or sun-sat; each `*`, a value, a range `a-b`,
/// with an optional step `/n`, or a comma list of those), `N seconds` (1 to 59, pg_cron
/// 1.5+), or a macro such as `@daily`.
pub fn check_cron(text: &str) -> Result<String, String> {
    let t = text.trim();
    let fields: Vec<&str> = t.split_whitespace().collect();
    let expected = "expected a cron schedule with five fields such as \"*/5 * * * *\"";
    let seconds = fields.len() == 2
        && matches!(fields[1], "second" | "seconds")
        && fields[0].bytes().all(|b| b.is_ascii_digit())
        && fields[0]
            .parse::<u32>()
            .is_ok_and(|n| (1..=59).contains(&n));
    let macro_form = fields.len() == 1
        && [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@hourly",
            "@reboot",
        ]
        .contains(&fields[0]);
    if seconds || macro_form {
        return Ok(fields.join(" "));
    }
    if fields.len() != 5 {
        return Err(format!("{expected}, found \"{text}\""));
    }
    for (field, spec) in fields.iter().zip(CRON_FIELDS.iter()) {
        check_cron_field(field, spec).map_err(|why| {
            format!(
                "{expected}, found \"{text}\": the {} field \"{field}\" {why}",
                spec.name
            )
        })?;
    }
    Ok(fields.join(" "))
}

struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names for the values from `min` on (months, days of the week).
    names: &'static [&'static str],
}

const CRON_FIELDS: [CronField; 5] = [
    CronField {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    CronField {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    CronField {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

fn check_cron_field(field: &str, spec: &CronField) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            let n: u32 = step
                .parse()
                .ok()
                .filter(|_| step.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("has a step \"{step}\" that is not a whole number"))?;
            if n == 0 || n > spec.max {
                return Err(format!("has a step of {n}; expected 1 to {}", spec.max));
            }
        }
        if range == "*" {
            continue;
        }
        let value = |v: &str| -> Result<u32, String> {
            let number = if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
                v.parse::<u32>().ok()
            } else {
                spec.names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(v))
                    .map(|i| spec.min + i as u32)
            };
            number
                .filter(|n| (spec.min..=spec.max).contains(n))
                .ok_or_else(|| {
                    format!(
                        "holds \"{v}\"; expected {} to {}{}",
                        spec.min,
                        spec.max,
                        if spec.names.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " or {} to {}",
                                spec.names[0],
                                spec.names[spec.names.len() - 1]
                            )
                        }
                    )
                })
        };
        match range.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (value(from)?, value(to)?);
                if from > to {
                    return Err(format!("has a range from {from} down to {to}"));
                }
            }
            None if step.is_some() => {
                return Err(
                    "has a step after a single value; write a range such as 0-59/5, or */5".into(),
                );
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

/// A zone name from the IANA time zone database (as PostgreSQL's `pg_timezone_names`
/// knows them), spelt exactly: `Europe/Paris`, `America/New_York`, `UTC`.
fn check_time_zone(text: &str) -> Result<String, String> {
    match text.parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(text.to_string()),
        Err(_) => Err(format!(
            "expected a time zone name such as \"Europe/Paris\" or \"UTC\", found \"{}\"; \
             names are those of the IANA time zone database, spelt exactly (abbreviations such as \"PST\" and offsets such as \"+02\" are not zones)",
            text.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules() {
        assert!(check_cron("*/5 * * * *").is_ok());
        assert!(check_cron("0 3 * * sun").is_ok());
        assert!(check_cron("30 seconds").is_ok());
        assert!(check_cron("@daily").is_ok());
        assert!(check_cron("every 5 minutes").is_err());
        assert!(check_cron("* * * *").is_err());
        assert!(check_cron("*/5 * * * *; select 1").is_err());
        assert!(check_cron("0-59/15 0,12 1-31 jan-dec mon-fri").is_ok());
        assert!(check_cron("59 23 31 12 7").is_ok());
        for bad in [
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5/10 * * * *",
            "10-5 * * * *",
            "* * * foo *",
            "99999999999 * * * *",
            "60 seconds",
            "0 seconds",
        ] {
            assert!(check_cron(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn start_takes_dates_and_timestamps_with_offsets_within_bounds() {
        for ok in [
            "2026-01-01",
            "2026-11-29 17:00:00",
            "2026-11-29 17:00",
            "2026-11-29T17:00:00",
            "2026-11-29T17:00:00Z",
            "2026-11-29 17:00:00+00",
            "2026-11-29 17:00:00+05:30",
            "2026-11-29 17:00:00-0800",
            "2026-11-29 17:00:00.123456+00",
            "1900-01-01",
            "9999-12-31 23:59:59",
        ] {
            assert_eq!(parse_start(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "2026-02-30",
            "26-01-01",
            "2026-1-1",
            "2026-01-01 25:00",
            "2026-01-01 17:00:00+16",
            "2026-01-01 17:00:00+05:3",
            "2026-01-01 17:00:00.1234567",
            "2026-01-01'; drop table x; --",
            "1899-12-31",
            "+10000-01-01",
            "now",
        ] {
            assert!(parse_start(bad).is_err(), "{bad} was accepted");
        }
        assert!(
            parse_start("1899-12-31")
                .unwrap_err()
                .contains("from 1900-01-01 to 9999-12-31")
        );
    }
}
