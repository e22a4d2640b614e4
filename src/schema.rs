//! The policy format as a JSON Schema, for editors (`retentionc schema`).
//!
//! Not a stage of the pipeline: the compiler never reads this. It mirrors
//! docs/policy-format.md with serde-shaped structs whose only job is to be described by
//! `schemars`, so that yaml-language-server (VS Code, Neovim, JetBrains...) can complete
//! keys and flag mistakes while a policy is typed. The compiler stays the authority: it
//! checks more (interval arithmetic, `where` parsing, uniqueness across files), and
//! tests/schema_init.rs keeps the two in agreement on every file in policies/ and on a
//! few bad fixtures.

use std::process::ExitCode;

use anyhow::Result;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

/// A plain PostgreSQL identifier as the policy format allows it (lower case, at most 63 bytes).
const IDENT: &str = r"^[a-z_][a-z0-9_]*$";
/// `schema.table`, both parts plain identifiers.
const QUALIFIED_NAME: &str = r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$";
/// A delete rule's name.
const RULE_NAME: &str = r"^[a-z][a-z0-9_]*$";
/// `N unit` pairs (`1 day 12 hours`, `180d`, `6 mons`) or ISO 8601 (`P30D`, `PT1H`); a bare
/// number is refused. Units are checked by the compiler, which suggests the nearest one.
const INTERVAL: &str = concat!(
    r"^\s*(?:P[0-9YMWDTHS.]+",
    r"|\+?[0-9]+\s*[A-Za-z]+(?:\s+\+?[0-9]+\s*[A-Za-z]+)*)\s*$"
);
/// A date or a timestamp: `2026-01-01`, `2026-01-01 00:00:00`, RFC 3339.
const START: &str = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}.*)?\s*$";
/// Five cron fields, `N seconds` (pg_cron 1.5+), or a macro such as `@daily`.
const CRON: &str = concat!(
    r"^\s*(?:[0-9A-Za-z*/,-]+(?:\s+[0-9A-Za-z*/,-]+){4}",
    r"|[0-9]{1,2}\s+seconds?",
    r"|@(?:yearly|annually|monthly|weekly|daily|hourly|reboot))\s*$"
);

/// A retentionc policy: one table, how it is partitioned, and how long its data is kept.
/// A file may hold several policies as separate YAML documents (`---`). Reference:
/// docs/policy-format.md.
#[derive(JsonSchema)]
#[schemars(
    title = "retentionc policy",
    deny_unknown_fields,
    extend(
        "anyOf" = [{ "required": ["retention"] }, { "required": ["deletes"] }],
        "dependentRequired" = { "retention": ["partitioning"] },
        "examples" = [{
            "table": "public.test_table1",
            "partitioning": { "column": "mtime", "interval": "1 second", "premake": 30 },
            "retention": { "keep": "15 seconds", "expired": "drop" }
        }]
    )
)]
pub struct PolicyDocument {
    /// Schema-qualified table, such as `public.events`: lower-case plain identifiers.
    /// Unique across all policies.
    #[schemars(pattern(QUALIFIED_NAME), length(max = 127))]
    pub table: String,
    /// How the table is partitioned by pg_partman (`create_parent`). Omit for a plain,
    /// unpartitioned table (which can then only have `deletes`).
    pub partitioning: Option<Partitioning>,
    /// Time-based retention of whole partitions (pg_partman's `part_config.retention`).
    /// Needs `partitioning`.
    pub retention: Option<Retention>,
    /// Condition-based retention: batched DELETEs in a procedure `<schema>.prune_<table>()`,
    /// committing between batches.
    #[schemars(length(min = 1))]
    pub deletes: Option<Vec<DeleteRule>>,
    /// Run retention for this table by pg_cron on this schedule (a job named
    /// `retentionc:<schema>.<table>`), for example `*/5 * * * *`.
    #[schemars(pattern(CRON))]
    pub schedule: Option<String>,
    /// The time zone of the table's `timestamp without time zone` columns, an IANA name
    /// such as `Europe/Paris`; cutoffs and maintenance are computed in it. Required when
    /// the partition or a rule's column is a `timestamp without time zone`.
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
}

/// pg_partman's partition set: `create_parent(p_control, p_interval, p_premake, ...)`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Partitioning {
    /// The partition key: a timestamptz, timestamp or date column (an integer column
    /// holding Unix time needs `epoch`).
    #[schemars(pattern(IDENT), length(max = 63))]
    pub column: String,
    /// Width of one partition: PostgreSQL interval text such as `1 second`, `1 day`,
    /// `1 day 12 hours`, or ISO 8601 such as `P1D`. A unit is required.
    #[schemars(pattern(INTERVAL))]
    pub interval: String,
    /// Partitions kept ready ahead of now (default 4).
    #[schemars(range(min = 1, max = 1000))]
    pub premake: Option<u32>,
    /// First partition (`create_parent`'s `p_start_partition`), such as `2026-01-01`.
    #[schemars(pattern(START))]
    pub start: Option<String>,
    /// Create a default partition for rows no child covers (default true; pg_partman 4
    /// always creates one, so `false` needs `partman_version: 5`).
    pub default_partition: Option<bool>,
    /// The column is an integer holding Unix time in this unit (default `none`: a time column).
    #[schemars(extend("enum" = crate::model::Epoch::NAMES))]
    pub epoch: Option<String>,
    /// Keep making `premake` partitions ahead of now while no rows arrive (pg_partman's
    /// `infinite_time_partitions`; default true). With false, pg_partman premakes only
    /// ahead of the newest row.
    pub infinite_time_partitions: Option<bool>,
}

/// How long whole partitions are kept, and what happens to expired ones.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("allOf" = [
        {
            "if": { "properties": { "expired": { "const": "archive" } }, "required": ["expired"] },
            "then": { "required": ["archive_schema"] },
            "else": { "not": { "required": ["archive_schema"] } }
        },
        {
            "if": { "properties": { "keep_index": { "const": true } }, "required": ["keep_index"] },
            "then": { "properties": { "expired": { "enum": ["detach", "archive"] } }, "required": ["expired"] }
        }
    ])
)]
pub struct Retention {
    /// Data older than this is expired, such as `30 days`; not shorter than
    /// `partitioning.interval`.
    #[schemars(pattern(INTERVAL))]
    pub keep: String,
    /// What happens to an expired partition: `drop` (default), `detach` (kept as a plain
    /// table), or `archive` (detached and moved to `archive_schema`).
    #[schemars(extend("enum" = crate::model::Expired::NAMES))]
    pub expired: Option<String>,
    /// Schema that archived partitions move to. Required with `expired: archive`,
    /// forbidden otherwise.
    #[schemars(pattern(IDENT), length(max = 63))]
    pub archive_schema: Option<String>,
    /// With `detach` or `archive`: keep the detached table's indexes (default false).
    pub keep_index: Option<bool>,
}

/// One delete rule: rows matching `where` (and older than `older_than`) are deleted in batches.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeleteRule {
    /// The rule's name, unique within the policy: `[a-z][a-z0-9_]*`.
    #[schemars(pattern(RULE_NAME), length(max = 63))]
    pub name: String,
    /// One SQL boolean expression over the table's columns, such as `level = 'debug'`
    /// (not a statement, not two).
    #[schemars(length(min = 1))]
    pub r#where: String,
    /// Also require `<column> < now() - older_than`, such as `1 hour`.
    #[schemars(pattern(INTERVAL))]
    pub older_than: Option<String>,
    /// The time column `older_than` compares; defaults to `partitioning.column`.
    #[schemars(pattern(IDENT), length(max = 63))]
    pub column: Option<String>,
    /// Rows per batch, committed one by one (default 5000).
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_size: Option<u32>,
}

/// The JSON Schema (draft 2020-12) of one policy document.
pub fn policy_schema() -> serde_json::Value {
    let schema: Schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<PolicyDocument>();
    let mut schema = schema.to_value();
    // An optional key is left out, never written as `null`: the compiler rejects null, so
    // the `null` that schemars allows for every `Option` field is taken out again.
    forbid_null(&mut schema);
    schema
}

/// Removes `null` from every `"type": [.., "null"]` and every `anyOf` alternative
/// `{"type": "null"}` in the schema.
fn forbid_null(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_string(), only);
                }
            }
            if let Some(Value::Array(alternatives)) = map.get_mut("anyOf") {
                alternatives.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                if alternatives.len() == 1
                    && let Some(Value::Object(only)) = alternatives.pop()
                {
                    map.remove("anyOf");
                    for (k, v) in only {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            map.values_mut().for_each(forbid_null);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_null),
        _ => {}
    }
}

/// The schema as pretty-printed JSON, ending in a newline.
pub fn policy_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&policy_schema()).expect("a schema serialises");
    text.push('\n');
    text
}

/// `retentionc schema`: print the schema on stdout.
pub fn command(out: &mut impl std::io::Write) -> Result<ExitCode> {
    out.write_all(policy_schema_json().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
