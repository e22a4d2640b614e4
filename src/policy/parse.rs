//! One policy document (a YAML node tree) -> a validated `model::Policy`.
//!
//! Every check of the policy format that needs no database happens here, and every
//! problem is reported, not only the first.

use crate::model::{
    DeleteRule, Epoch, Expired, Partitioning, PartmanMajor, Policy, Retention, Source,
};
use crate::policy::ident::{Ident, QualifiedName};
use crate::policy::interval::{Interval, parse_interval};
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
const PARTITIONING_KEYS: [&str; 6] = [
    "column",
    "interval",
    "premake",
    "start",
    "default_partition",
    "epoch",
];
const RETENTION_KEYS: [&str; 4] = ["keep", "expired", "archive_schema", "keep_index"];
const DELETE_KEYS: [&str; 5] = ["name", "where", "older_than", "column", "batch_size"];
const EXPIRED_MODES: [&str; 3] = ["drop", "detach", "archive"];

pub const DEFAULT_PREMAKE: u32 = 4;
pub const DEFAULT_BATCH_SIZE: u32 = 5000;
pub const MAX_BATCH_SIZE: i64 = 1_000_000;

const INTERVAL_EXAMPLE: &str = "an interval such as \"30 days\"";

/// Reads one document; returns None when it had errors (already in `reader.errors`).
pub fn parse_policy(
    reader: &mut Reader,
    node: &Node,
    document: usize,
    partman: PartmanMajor,
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
            reader.parsed(
                n,
                "table",
                "a table name such as public.events",
                QualifiedName::parse,
            )
        });
    let partitioning = fields
        .get("partitioning")
        .and_then(|n| parse_partitioning(reader, n, partman));
    let retention = fields
        .get("retention")
        .and_then(|n| parse_retention(reader, n));
    let deletes = fields
        .get("deletes")
        .map(|n| parse_deletes(reader, n, partitioning.as_ref()))
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

    check_policy_shape(reader, &fields, partitioning.as_ref(), retention.as_ref());

    if reader.errors.len() > errors_before {
        return None;
    }
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
    if !present_or_misspelt("retention") && !present_or_misspelt("deletes") {
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
        && retention.keep < partitioning.interval
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

fn parse_positive_interval(reader: &mut Reader, node: &Node, path: &str) -> Option<Interval> {
    let interval = reader.parsed(node, path, INTERVAL_EXAMPLE, |t| {
        parse_interval(t).map_err(|e| format!("expected {INTERVAL_EXAMPLE}: {}", e.0))
    })?;
    if !interval.is_positive() {
        reader.error(
            node.pos,
            path,
            format!("expected an interval longer than zero, found \"{interval}\""),
        );
        return None;
    }
    Some(interval)
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
        .and_then(|n| parse_positive_interval(reader, n, "partitioning.interval"));
    let premake = match fields.get("premake") {
        Some(n) => reader
            .integer(n, "partitioning.premake", 1..=1000)
            .map(|v| v as u32),
        None => Some(DEFAULT_PREMAKE),
    };
    let start = match fields.get("start") {
        Some(n) => reader
            .parsed(
                n,
                "partitioning.start",
                "a date such as \"2026-01-01\"",
                check_start,
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
    Some(Partitioning {
        column: column?,
        interval: interval?,
        premake: premake?,
        start: start?,
        default_partition: default_partition?,
        epoch: epoch?,
    })
}

fn check_start(text: &str) -> Result<String, String> {
    let t = text.trim();
    let ok = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok()
        || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok()
        || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").is_ok()
        || chrono::DateTime::parse_from_rfc3339(t).is_ok();
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "expected a date such as \"2026-01-01\" or a timestamp such as \"2026-01-01 00:00:00\", found \"{text}\""
        ))
    }
}

fn parse_retention(reader: &mut Reader, node: &Node) -> Option<Retention> {
    let fields = reader.mapping(node, "retention", &RETENTION_KEYS)?;
    let keep = reader
        .require(
            &fields,
            "keep",
            "how long data is kept, such as \"30 days\"",
        )
        .and_then(|n| parse_positive_interval(reader, n, "retention.keep"));
    let mode = match fields.get("expired") {
        Some(n) => reader.choice(n, "retention.expired", &EXPIRED_MODES),
        None => Some("drop".to_string()),
    };
    let archive_schema = fields.get("archive_schema").map(|n| {
        (
            n.pos,
            reader.parsed(n, "retention.archive_schema", "a schema name", Ident::parse),
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
    partitioning: Option<&Partitioning>,
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
    partitioning: Option<&Partitioning>,
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
        Some(n) => parse_positive_interval(reader, n, &fields.path_of("older_than")).map(Some),
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
        .or_else(|| partitioning.map(|p| p.column.clone()));
    if let (Some(Some(_)), None) = (&older_than, &column) {
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

/// pg_cron schedules: five cron fields, or `N seconds` (pg_cron 1.5+), or `@daily`-style.
fn check_cron(text: &str) -> Result<String, String> {
    let t = text.trim();
    let fields: Vec<&str> = t.split_whitespace().collect();
    let cron_field = |f: &&str| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "*/,-".contains(c))
    };
    let seconds = fields.len() == 2
        && matches!(fields[1], "second" | "seconds")
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
    if (fields.len() == 5 && fields.iter().all(cron_field)) || seconds || macro_form {
        Ok(fields.join(" "))
    } else {
        Err(format!(
            "expected a cron schedule with five fields such as \"*/5 * * * *\", found \"{text}\""
        ))
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
    }
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
