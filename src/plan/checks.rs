//! The checks the policy format leaves to plan time, against the live catalog: each
//! failure names the policy file, line, column and key, like a compile error.
//!
//! A plain (unpartitioned) table under a policy with `partitioning` is converted by
//! `retentionc convert` (or `apply --convert`): what would stop that conversion is an
//! error here, before anything changes.

use crate::catalog::{Live, TableInfo};
use crate::model::{Epoch, PartmanMajor, Policy, Pos, Project};
use crate::plan::adoption;
use crate::policy::error::PolicyError;
use crate::policy::interval::parse_interval;

pub const TIME_TYPES: [&str; 3] = [
    "timestamp with time zone",
    "timestamp without time zone",
    "date",
];
pub const INTEGER_TYPES: [&str; 3] = ["smallint", "integer", "bigint"];

pub fn error_at(policy: &Policy, key: &str, message: impl Into<String>) -> PolicyError {
    // Fall back to the nearest recorded parent key, then the first line.
    let mut pos = None;
    let mut k = key.to_string();
    while pos.is_none() {
        pos = policy.source.key_positions.get(&k).copied();
        match k.rfind(['.', '[']) {
            Some(at) if pos.is_none() => k.truncate(at),
            _ => break,
        }
    }
    PolicyError {
        file: policy.source.file.clone(),
        pos: pos.unwrap_or(Pos { line: 1, column: 1 }),
        key: key.to_string(),
        message: message.into(),
        line_text: None,
    }
}

/// Every plan-time problem of the project against `live`; empty when all is well.
pub fn check(project: &Project, live: &Live) -> Vec<PolicyError> {
    let mut errors = Vec::new();
    check_partman(project, live, &mut errors);
    for policy in &project.policies {
        let table = policy.table.to_string();
        if policy.schedule.is_some() && live.cron.is_none() {
            errors.push(error_at(
                policy,
                "schedule",
                "a schedule needs pg_cron, which is not installed in this database \
                 (CREATE EXTENSION pg_cron, with pg_cron in shared_preload_libraries and cron.database_name naming this database); \
                 or remove \"schedule\" and run `retentionc run` from elsewhere",
            ));
        }
        let Some(info) = live.tables.get(&table) else {
            errors.push(error_at(
                policy,
                "table",
                format!("table {table} does not exist in the database"),
            ));
            continue;
        };
        if let Some(why) = not_a_user_table(project, live, policy, info) {
            errors.push(error_at(policy, "table", why));
            continue;
        }
        if policy.partitioning.is_some() {
            let before = errors.len();
            check_partitioning(policy, info, live, &mut errors);
            if errors.len() == before {
                check_registration(project, policy, info, live, &mut errors);
            }
        }
        for (index, rule) in policy.deletes.iter().enumerate() {
            let Some(_) = rule.older_than else { continue };
            let Some(column) = rule
                .column
                .as_ref()
                .or(policy.partitioning.as_ref().map(|p| &p.column))
            else {
                continue;
            };
            let own = format!("deletes[{index}].column");
            let key = if policy.source.key_positions.contains_key(&own) {
                own
            } else {
                format!("deletes[{index}].older_than")
            };
            match info.column(column.as_str()) {
                None => errors.push(error_at(
                    policy,
                    &key,
                    format!("column {column} does not exist in {table}; its columns are: {}", column_list(info)),
                )),
                Some(c) if !TIME_TYPES.contains(&c.type_name.as_str()) => errors.push(error_at(
                    policy,
                    &key,
                    format!(
                        "column {column} of {table} is {}; \"older_than\" needs a time column (timestamptz, timestamp or date)",
                        c.type_name
                    ),
                )),
                Some(c) => {
                    check_time_zone_declared(policy, &key, column.as_str(), &c.type_name, &mut errors)
                }
            }
        }
    }
    errors
}

/// Why the live table is not one retentionc may delete from, if it is not: only ordinary
/// and partitioned tables of users, never the catalog, an extension's tables (pg_partman's
/// part_config, pg_cron's jobs) or retentionc's own.
fn not_a_user_table(
    project: &Project,
    live: &Live,
    policy: &Policy,
    info: &TableInfo,
) -> Option<String> {
    let table = policy.table.to_string();
    let schema = policy.table.schema.as_str();
    let system = schema == "information_schema" || schema.starts_with("pg_");
    // pg_cron's objects are always in schema cron, whatever its extension's schema says.
    let extension_of_schema = if live.partman.as_ref().is_some_and(|e| e.schema == schema) {
        Some("pg_partman")
    } else if live.cron.is_some() && schema == "cron" {
        Some("pg_cron")
    } else {
        None
    };
    if system {
        return Some(format!(
            "{table} is in the system schema {schema}; retentionc manages only user tables"
        ));
    }
    if info.extension_member {
        return Some(format!(
            "{table} belongs to an extension (pg_depend records it as a member, as pg_partman's part_config is); retentionc manages only user tables"
        ));
    }
    if let Some(extension) = extension_of_schema {
        return Some(format!(
            "{table} is in {schema}, the schema of the extension {extension}; retentionc manages only user tables"
        ));
    }
    if schema == project.config.schema.as_str() {
        return Some(format!(
            "{table} is in retentionc's own schema {schema}; retentionc manages only user tables"
        ));
    }
    if !matches!(info.relkind.as_str(), "r" | "p") {
        return Some(format!(
            "{table} is {} (pg_class.relkind {}), not a table; retentionc manages only ordinary and partitioned tables",
            relation_kind(&info.relkind),
            info.relkind
        ));
    }
    if info.persistence == "t" {
        return Some(format!(
            "{table} is a temporary table; retentionc manages only permanent tables"
        ));
    }
    None
}

/// What a pg_class.relkind names, with its article.
fn relation_kind(relkind: &str) -> &'static str {
    match relkind {
        "v" => "a view",
        "m" => "a materialized view",
        "f" => "a foreign table",
        "S" => "a sequence",
        "i" | "I" => "an index",
        "c" => "a composite type",
        "t" => "a TOAST table",
        _ => "a relation of another kind",
    }
}

/// A `timestamp without time zone` column holds times of some zone that the database does
/// not know: retention needs the policy to say which (`time_zone`), or it would expire
/// rows by the wrong clock.
fn check_time_zone_declared(
    policy: &Policy,
    key: &str,
    column: &str,
    type_name: &str,
    errors: &mut Vec<PolicyError>,
) {
    if type_name == "timestamp without time zone" && policy.time_zone.is_none() {
        errors.push(error_at(
            policy,
            key,
            format!(
                "column {column} of {} is a timestamp without time zone; say which zone its values are in \
                 with the policy's top-level \"time_zone\" (for example time_zone: Europe/Paris, or UTC), \
                 so that cutoffs and maintenance use that clock",
                policy.table
            ),
        ));
    }
}

fn column_list(info: &TableInfo) -> String {
    info.columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_partman(project: &Project, live: &Live, errors: &mut Vec<PolicyError>) {
    let config = &project.config;
    let Some(first) = project.policies.iter().find(|p| p.partitioning.is_some()) else {
        return;
    };
    let wanted_major = config.partman_version.number();
    match &live.partman {
        None => errors.push(error_at(
            first,
            "partitioning",
            format!(
                "partitioning needs pg_partman, which is not installed in this database; expected pg_partman {wanted_major} in schema {} \
                 (CREATE SCHEMA {0}; CREATE EXTENSION pg_partman SCHEMA {0})",
                config.partman_schema
            ),
        )),
        Some(ext) => {
            if ext.schema != config.partman_schema.as_str() {
                errors.push(error_at(
                    first,
                    "partitioning",
                    format!(
                        "pg_partman is installed in schema {}, but retentionc.yaml says partman_schema: {}; set partman_schema: {0} and compile again",
                        ext.schema, config.partman_schema
                    ),
                ));
            }
            if ext.major() != Some(wanted_major) {
                errors.push(error_at(
                    first,
                    "partitioning",
                    format!(
                        "the database has pg_partman {}, but the SQL was compiled for pg_partman {wanted_major} (retentionc.yaml partman_version: {wanted_major}); \
                         set partman_version to match the database and compile again",
                        ext.version
                    ),
                ));
            }
        }
    }
}

/// A table pg_partman does not manage yet must be one it can register: its existing
/// partitions adoptable (`adoption`), and, for pg_partman 5, its partition key NOT NULL.
fn check_registration(
    project: &Project,
    policy: &Policy,
    info: &TableInfo,
    live: &Live,
    errors: &mut Vec<PolicyError>,
) {
    let major = project.config.partman_version;
    match adoption::adoption(policy, live, major) {
        Some(Ok(_)) => {}
        Some(Err(found)) => errors.extend(found),
        None => {
            let table = policy.table.to_string();
            let registered = live.part_config.iter().any(|r| r.parent_table == table);
            let column = policy.partitioning.as_ref().map(|p| p.column.as_str());
            let not_null = column.is_some_and(|c| info.not_null_columns.iter().any(|n| n == c));
            if !registered && major == PartmanMajor::V5 && !not_null {
                errors.push(adoption::not_null_error(policy));
            }
        }
    }
}

fn check_partitioning(
    policy: &Policy,
    info: &TableInfo,
    live: &Live,
    errors: &mut Vec<PolicyError>,
) {
    let p = policy.partitioning.as_ref().expect("checked by the caller");
    let table = policy.table.to_string();
    let column = p.column.as_str();
    let plain = info.relkind == "r";
    match (info.relkind.as_str(), info.partition_strategy.as_deref()) {
        // A plain table is converted (crate::convert); its column is checked below.
        ("r", _) | ("p", Some("r")) => {}
        ("p", strategy) => {
            let by = match strategy {
                Some("l") => "LIST",
                Some("h") => "HASH",
                _ => "something other than RANGE",
            };
            errors.push(error_at(
                policy,
                "partitioning",
                format!("{table} is partitioned by {by}; pg_partman time partitioning needs PARTITION BY RANGE ({column})"),
            ));
            return;
        }
        _ => return,
    }
    match info.column(column) {
        None => {
            errors.push(error_at(
                policy,
                "partitioning.column",
                format!(
                    "column {column} does not exist in {table}; its columns are: {}",
                    column_list(info)
                ),
            ));
            return;
        }
        Some(c) => {
            let ok = match p.epoch {
                Epoch::None => TIME_TYPES.contains(&c.type_name.as_str()),
                _ => INTEGER_TYPES.contains(&c.type_name.as_str()),
            };
            if !ok {
                let expected = match p.epoch {
                    Epoch::None => {
                        "timestamptz, timestamp or date (an integer column needs \"epoch\")"
                            .to_string()
                    }
                    e => format!(
                        "an integer column holding Unix time in {} (epoch: {})",
                        e.as_str(),
                        e.as_str()
                    ),
                };
                errors.push(error_at(
                    policy,
                    "partitioning.column",
                    format!(
                        "column {column} of {table} is {}; expected {expected}",
                        c.type_name
                    ),
                ));
            }
            check_time_zone_declared(policy, "partitioning.column", column, &c.type_name, errors);
            if !ok {
                return;
            }
        }
    }
    if plain {
        let problems = live
            .conversions
            .get(&table)
            .map(|f| f.problems.as_slice())
            .unwrap_or_default();
        for problem in problems {
            errors.push(error_at(
                policy,
                "partitioning",
                format!(
                    "{table} is a plain table, and cannot be converted to a partitioned one online: {problem}. \
                     Or remove \"partitioning\" to use only delete rules on the plain table"
                ),
            ));
        }
        return;
    }
    if info.key_count != 1 || info.partition_key.first().map(String::as_str) != Some(column) {
        let key = if info.partition_key.len() as i64 == info.key_count {
            info.partition_key.join(", ")
        } else {
            "an expression".to_string()
        };
        errors.push(error_at(
            policy,
            "partitioning.column",
            format!("{table} is partitioned by RANGE ({key}), not by {column}; partitioning.column must be the partition key"),
        ));
    }
    // An existing registration cannot be reshaped: pg_partman has no way to change the
    // width, control column or epoch of a partition set.
    if let Some(row) = live.part_config.iter().find(|r| r.parent_table == table) {
        if row.control != column {
            errors.push(error_at(
                policy,
                "partitioning.column",
                format!("{table} is registered with pg_partman on column {}, not {column}; retentionc cannot change an existing partition set", row.control),
            ));
        }
        let live_interval = row
            .partition_interval_parsed
            .or_else(|| parse_interval(&row.partition_interval).ok());
        if live_interval.map(|i| i.comparable()) != Some(p.interval.comparable()) {
            let shown = live_interval
                .map(|i| i.to_string())
                .unwrap_or_else(|| row.partition_interval.clone());
            errors.push(error_at(
                policy,
                "partitioning.interval",
                format!(
                    "{table} is registered with pg_partman with partitions of {shown}, not {}; retentionc cannot change the width of an existing partition set \
                     (set interval: {shown}, or re-partition the table by hand)",
                    p.interval
                ),
            ));
        }
        if row.epoch != p.epoch.as_str() {
            errors.push(error_at(
                policy,
                "partitioning.epoch",
                format!("{table} is registered with pg_partman with epoch {}, not {}; retentionc cannot change an existing partition set", row.epoch, p.epoch.as_str()),
            ));
        }
    }
}
