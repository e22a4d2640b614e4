//! One live pg_partman set-up -> the policy text that describes it, plus notes on what
//! the policy cannot say. Pure: no database, no files, unit-tested below.
//!
//! A table is either imported (and its text is checked by retentionc's own parser before
//! anyone sees it) or skipped with a reason. The policy describes the set exactly as it
//! is, so that applying it changes nothing: every setting that takes effect is written,
//! and every `part_config` setting the format cannot express (which retentionc leaves
//! alone) becomes a note, shown in the command's output and in a comment at the top of
//! the file.

use std::fmt::Write as _;
use std::path::Path;

use crate::import::live::LiveTable;
use crate::import::pg_interval::parse_pg_interval;
use crate::model::{Config, Epoch, Interval, PartmanMajor, Policy};
use crate::policy::ident::{Ident, QualifiedName};
use crate::policy::parse::DEFAULT_PREMAKE;
use crate::policy::parse_policy_text;
use crate::policy::yaml::{comment_text, scalar};

/// What import does with one registered table.
#[derive(Debug)]
pub enum Outcome {
    Imported(Box<ImportedPolicy>),
    Skipped(Skipped),
}

#[derive(Debug)]
pub struct Skipped {
    /// `part_config.parent_table`.
    pub table: String,
    /// Why no policy was written, and what the user can do.
    pub reason: String,
}

#[derive(Debug)]
pub struct ImportedPolicy {
    pub table: QualifiedName,
    /// The file's full text, header comment included.
    pub text: String,
    /// The policy as retentionc's parser reads `text` back.
    pub policy: Policy,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: NoteKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// A `part_config` setting (or catalog fact) the policy format cannot express; apply
    /// leaves it as it is.
    NotExpressed,
    /// A value written in the policy format's own spelling; the setting is the same.
    Rewritten,
}

impl NoteKind {
    pub fn label(self) -> &'static str {
        match self {
            NoteKind::NotExpressed => "not expressible",
            NoteKind::Rewritten => "rewritten",
        }
    }
}

/// Describes one table as a policy for the project `config`, to be written at `file`
/// (the path shown in messages). `version` is the installed pg_partman version.
pub fn import_table(live: &LiveTable, config: &Config, version: &str, file: &Path) -> Outcome {
    match describe(live, config) {
        Ok(draft) => {
            let text = draft.render(config, version);
            let (mut policies, errors) = parse_policy_text(file, &text, config);
            if !errors.is_empty() || policies.len() != 1 {
                let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                return skip(
                    live,
                    format!(
                        "its settings do not make a valid policy: {}",
                        messages.join("; ")
                    ),
                );
            }
            Outcome::Imported(Box::new(ImportedPolicy {
                table: draft.table,
                text,
                policy: policies.remove(0),
                notes: draft.notes,
            }))
        }
        Err(reason) => skip(live, reason),
    }
}

fn skip(live: &LiveTable, reason: String) -> Outcome {
    Outcome::Skipped(Skipped {
        table: live.parent_table.clone(),
        reason,
    })
}

/// The policy's values, before they become text.
struct Draft {
    table: QualifiedName,
    column: Ident,
    interval: Interval,
    premake: i64,
    /// Only ever false on pg_partman 5.
    default_partition: bool,
    epoch: Epoch,
    keep: Interval,
    expired: ExpiredDraft,
    keep_index: bool,
    infinite_time_partitions: bool,
    notes: Vec<Note>,
}

enum ExpiredDraft {
    Drop,
    Detach,
    Archive(Ident),
}

fn describe(live: &LiveTable, config: &Config) -> Result<Draft, String> {
    let major = config.partman_version;
    let table = QualifiedName::parse(&live.parent_table)
        .map_err(|e| format!("its name cannot be written in a policy: {e}"))?;
    if let Some(parent) = &live.partition_of {
        return Err(format!(
            "it is a partition of {parent}, which pg_partman sub-partitions; the policy format describes the top-level table only \
             (its partitions expire with {parent}'s retention)"
        ));
    }
    let partition_type = live.text("partition_type").unwrap_or_default();
    if !matches!(partition_type, "native" | "range") {
        return Err(format!(
            "its partition_type is \"{partition_type}\"; the policy format describes native range partitioning by time only"
        ));
    }
    if live.strategy.as_deref() != Some("r") {
        return Err("it is not a natively range-partitioned table (PARTITION BY RANGE); the policy format describes only those".into());
    }
    let control = live.text("control").unwrap_or_default();
    let column = Ident::parse(control)
        .map_err(|e| format!("its control column cannot be written in a policy: {e}"))?;
    let epoch_text = live.text("epoch").unwrap_or("none");
    let epoch = Epoch::parse(epoch_text).ok_or_else(|| {
        format!(
            "its epoch \"{epoch_text}\" is not one the policy format knows ({})",
            Epoch::NAMES.join(", ")
        )
    })?;
    let control_type = live
        .control_type
        .as_deref()
        .ok_or_else(|| format!("its control column \"{control}\" does not exist"))?;
    let time_typed = control_type.starts_with("timestamp") || control_type == "date";
    let interval_text = live.text("partition_interval").unwrap_or_default();
    if epoch == Epoch::None && !time_typed {
        return Err(format!(
            "it is partitioned by id (control column {control} is {control_type}, partition_interval {interval_text}); \
             the policy format describes time-based partitioning only (a timestamp or date column, or an integer with epoch)"
        ));
    }
    let interval = parse_pg_interval(interval_text)
        .map_err(|e| format!("its partition_interval cannot be read: {e}"))?;
    let premake = live.integer("premake").unwrap_or(DEFAULT_PREMAKE as i64);
    if !(1..=1000).contains(&premake) {
        return Err(format!(
            "its premake {premake} is outside what the policy format allows (1 to 1000)"
        ));
    }

    let mut notes = Vec::new();
    let mut note = |kind: NoteKind, text: String| notes.push(Note { kind, text });

    let default_partition = match major {
        PartmanMajor::V5 => live.has_default_partition,
        PartmanMajor::V4 => {
            if !live.has_default_partition {
                note(NoteKind::NotExpressed, "the table has no default partition; pg_partman 4 always makes one, so the policy says default_partition: true".into());
            }
            true
        }
    };

    let Some(retention_text) = live.text("retention") else {
        return Err(
            "pg_partman keeps its partitions forever (part_config.retention is NULL), and a policy needs \"retention\" or \"deletes\"; \
             write its policy by hand if retentionc should manage it"
                .into(),
        );
    };
    let keep = parse_pg_interval(retention_text)
        .map_err(|e| format!("its retention cannot be read: {e}"))?;
    if keep.comparable() < interval.comparable() {
        return Err(format!(
            "its retention ({retention_text}) is shorter than one partition ({interval}); the policy format refuses that, \
             as no partition could ever expire whole"
        ));
    }
    let canonical_keep = keep.to_string();
    let raw_keep = retention_text.trim();
    if raw_keep != canonical_keep {
        let why = if raw_keep.chars().all(|c| c.is_ascii_digit()) {
            "pg_partman reads a bare number as seconds"
        } else {
            "the same interval"
        };
        note(
            NoteKind::Rewritten,
            format!("retention \"{raw_keep}\" is written as \"{canonical_keep}\" ({why})"),
        );
    }

    // Only the settings that take effect are written: retention_keep_index when expired
    // partitions are dropped, and retention_keep_table when they are moved to a schema,
    // change nothing, and retentionc leaves them as they are.
    let keep_table = live.boolean("retention_keep_table").unwrap_or(true);
    let live_keep_index = live.boolean("retention_keep_index").unwrap_or(true);
    let expired = match live.text("retention_schema") {
        Some(schema) => ExpiredDraft::Archive(
            Ident::parse(schema)
                .map_err(|e| format!("its retention_schema cannot be written in a policy: {e}"))?,
        ),
        None if keep_table => ExpiredDraft::Detach,
        None => ExpiredDraft::Drop,
    };
    let keep_index = !matches!(expired, ExpiredDraft::Drop) && live_keep_index;
    let infinite_time_partitions = live.boolean("infinite_time_partitions").unwrap_or(false);

    for text in not_expressed(live, config, &table, &interval) {
        note(NoteKind::NotExpressed, text);
    }

    Ok(Draft {
        table,
        column,
        interval,
        premake,
        default_partition,
        epoch,
        keep,
        expired,
        keep_index,
        infinite_time_partitions,
        notes,
    })
}

/// The `part_config` settings outside the policy format that differ from what
/// create_parent would have set for such a table.
fn not_expressed(
    live: &LiveTable,
    config: &Config,
    table: &QualifiedName,
    interval: &Interval,
) -> Vec<String> {
    let major = config.partman_version;
    let mut out = Vec::new();
    let mut differs = |column: &str, default: &str, what: &str| {
        if live.is_set(column) && live.shown(column) != default {
            out.push(format!("{column} = {}: {what}", live.shown(column)));
        }
    };
    differs(
        "constraint_cols",
        "null",
        "pg_partman adds constraints on these columns to old partitions",
    );
    differs(
        "optimize_constraint",
        "30",
        "how many partitions back those constraints start",
    );
    differs(
        "automatic_maintenance",
        "\"on\"",
        "pg_partman's general run_maintenance() skips this table",
    );
    differs("jobmon", "true", "pg_jobmon logging of maintenance");
    differs(
        "inherit_privileges",
        "false",
        "new partitions get the parent's privileges",
    );
    differs(
        "constraint_valid",
        "true",
        "constraints on old partitions are made NOT VALID",
    );
    let ignore_default = if major == PartmanMajor::V4 {
        "false"
    } else {
        "true"
    };
    differs(
        "ignore_default_data",
        ignore_default,
        "whether maintenance looks at data in the default partition",
    );
    differs(
        "retention_keep_publication",
        "false",
        "expired partitions stay in their publications",
    );
    differs(
        "date_trunc_interval",
        "null",
        "partition boundaries are aligned with this interval",
    );
    differs(
        "time_encoder",
        "null",
        "a function that encodes time into the control column",
    );
    differs(
        "time_decoder",
        "null",
        "a function that decodes time from the control column",
    );
    differs(
        "maintenance_order",
        "null",
        "the order of this table in run_maintenance()",
    );
    differs(
        "publications",
        "null",
        "new partitions are added to these publications",
    );
    differs("inherit_fk", "true", "foreign keys on new partitions");
    differs(
        "drop_cascade_fk",
        "false",
        "expired partitions are dropped with CASCADE",
    );
    differs(
        "subscription_refresh",
        "null",
        "a subscription refreshed after maintenance",
    );
    differs("upsert", "\"\"", "trigger-based upsert");
    differs(
        "undo_in_progress",
        "false",
        "an undo_partition of this table was started and has not finished",
    );
    if live.sub_partitioned {
        out.push("sub-partitioned (part_config_sub): each partition is partitioned again; the policy describes the top level only".into());
    }
    let defaults = default_datetime_strings(major, interval);
    if let Some(datetime) = live
        .text("datetime_string")
        .filter(|d| !defaults.contains(d))
    {
        let choices = defaults
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        out.push(format!("datetime_string = \"{datetime}\": the suffix of partition names (create_parent would choose {choices})"));
    }
    if let Some(template) = live.text("template_table") {
        let default_prefix = format!("{}.template_{}_", config.partman_schema, table.schema);
        if !template.starts_with(&default_prefix) {
            out.push(format!("template_table = \"{template}\": the table whose indexes and settings new partitions copy"));
        }
    }
    out
}

/// The partition name suffixes create_parent picks for this interval.
fn default_datetime_strings(major: PartmanMajor, interval: &Interval) -> Vec<&'static str> {
    let day = Interval {
        months: 0,
        days: 1,
        micros: 0,
    };
    match major {
        PartmanMajor::V5 if *interval < day => vec!["YYYYMMDD_HH24MISS"],
        PartmanMajor::V5 => vec!["YYYYMMDD"],
        PartmanMajor::V4 => {
            let minute = Interval {
                months: 0,
                days: 0,
                micros: 60_000_000,
            };
            let month = Interval {
                months: 1,
                days: 0,
                micros: 0,
            };
            let year = Interval {
                months: 12,
                days: 0,
                micros: 0,
            };
            let mut names = if *interval >= year {
                vec!["YYYY"]
            } else if *interval >= month {
                vec!["YYYY_MM", "YYYY\"q\"Q"]
            } else if *interval >= day {
                vec!["YYYY_MM_DD", "IYYY\"w\"IW"]
            } else if *interval >= minute {
                vec!["YYYY_MM_DD_HH24MI"]
            } else {
                vec!["YYYY_MM_DD_HH24MISS"]
            };
            // With p_date_trunc_interval, 4.7 uses one of these two.
            names.extend(["YYYY_MM_DD", "YYYY_MM_DD_HH24MISS"]);
            names
        }
    }
}

impl Draft {
    fn render(&self, config: &Config, version: &str) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# {}",
            comment_text(&format!(
                "Imported by `retentionc import` from {}.part_config (pg_partman {version}).",
                config.partman_schema
            ))
        );
        for (kind, heading) in [
            (
                NoteKind::NotExpressed,
                "Settings of this table that a policy cannot express (apply leaves them as they are):",
            ),
            (
                NoteKind::Rewritten,
                "Values written in the policy format's own spelling (the same settings):",
            ),
        ] {
            let notes: Vec<&Note> = self.notes.iter().filter(|n| n.kind == kind).collect();
            if !notes.is_empty() {
                let _ = writeln!(text, "#\n# {heading}");
                for n in notes {
                    let _ = writeln!(text, "#   - {}", comment_text(&n.text));
                }
            }
        }
        let _ = writeln!(text, "table: {}", scalar(&self.table.to_string()));
        let _ = writeln!(text, "partitioning:");
        let _ = writeln!(text, "  column: {}", scalar(self.column.as_str()));
        let _ = writeln!(text, "  interval: {}", scalar(&self.interval.to_string()));
        let _ = writeln!(text, "  premake: {}", self.premake);
        if self.epoch != Epoch::None {
            let _ = writeln!(text, "  epoch: {}", self.epoch.as_str());
        }
        if !self.default_partition {
            let _ = writeln!(text, "  default_partition: false");
        }
        if !self.infinite_time_partitions {
            let _ = writeln!(text, "  infinite_time_partitions: false");
        }
        let _ = writeln!(text, "retention:");
        let _ = writeln!(text, "  keep: {}", scalar(&self.keep.to_string()));
        match &self.expired {
            ExpiredDraft::Drop => {
                let _ = writeln!(text, "  expired: drop");
            }
            ExpiredDraft::Detach => {
                let _ = writeln!(text, "  expired: detach");
            }
            ExpiredDraft::Archive(schema) => {
                let _ = writeln!(text, "  expired: archive");
                let _ = writeln!(text, "  archive_schema: {}", scalar(schema.as_str()));
            }
        }
        if self.keep_index {
            let _ = writeln!(text, "  keep_index: true");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::config::parse_config;
    use crate::model::Expired;

    fn config(major: u8) -> Config {
        parse_config(
            Path::new("retentionc.yaml"),
            &format!("partman_version: {major}\n"),
            PathBuf::from("."),
        )
        .unwrap()
    }

    /// A part_config row as pg_partman 5.2.4 leaves it after create_parent of a daily set.
    fn v5_daily(extra: serde_json::Value) -> LiveTable {
        let mut config = json!({
            "parent_table": "public.events", "control": "created_at", "partition_interval": "1 day",
            "partition_type": "range", "premake": 4, "automatic_maintenance": "on",
            "template_table": "partman.template_public_events", "retention": null, "retention_schema": null,
            "retention_keep_index": true, "retention_keep_table": true, "epoch": "none",
            "constraint_cols": null, "optimize_constraint": 30, "infinite_time_partitions": false,
            "datetime_string": "YYYYMMDD", "jobmon": true, "sub_partition_set_full": false,
            "undo_in_progress": false, "inherit_privileges": false, "constraint_valid": true,
            "ignore_default_data": true, "date_trunc_interval": null, "maintenance_order": null,
            "retention_keep_publication": false, "maintenance_last_run": null,
            "time_encoder": null, "time_decoder": null
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        LiveTable {
            parent_table: config["parent_table"].as_str().unwrap().to_string(),
            config: config.as_object().unwrap().clone(),
            strategy: Some("r".into()),
            has_default_partition: true,
            control_type: Some("timestamp with time zone".into()),
            sub_partitioned: false,
            partition_of: None,
        }
    }

    fn imported(live: &LiveTable, major: u8) -> ImportedPolicy {
        match import_table(
            live,
            &config(major),
            "5.2.4",
            Path::new("policies/public.events.yaml"),
        ) {
            Outcome::Imported(p) => *p,
            Outcome::Skipped(s) => panic!("skipped: {}", s.reason),
        }
    }

    fn skipped(live: &LiveTable) -> String {
        match import_table(live, &config(5), "5.2.4", Path::new("policies/x.yaml")) {
            Outcome::Imported(p) => panic!("imported:\n{}", p.text),
            Outcome::Skipped(s) => s.reason,
        }
    }

    #[test]
    fn drop_retention_round_trips_through_the_policy_parser() {
        let live = v5_daily(json!({"retention": "30 days", "retention_keep_table": false}));
        let p = imported(&live, 5);
        let retention = p.policy.retention.as_ref().unwrap();
        assert_eq!(retention.keep.to_string(), "30 days");
        assert_eq!(retention.expired, Expired::Drop);
        let partitioning = p.policy.partitioning.as_ref().unwrap();
        assert_eq!(partitioning.interval.to_string(), "1 day");
        assert_eq!(partitioning.premake, 4);
        assert!(partitioning.default_partition);
        assert!(!partitioning.infinite_time_partitions);
        assert!(p.text.contains("table: public.events\npartitioning:\n  column: created_at\n  interval: 1 day\n  premake: 4\n  infinite_time_partitions: false\nretention:\n  keep: 30 days\n  expired: drop\n"), "{}", p.text);
        // keep_index has no effect on dropped partitions: not written, not a note.
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert!(!p.text.contains("keep_index"), "{}", p.text);
    }

    #[test]
    fn the_imported_policy_asks_for_exactly_the_live_settings() {
        // Whatever the mode, the part_config values the policy sets are the live ones, so
        // that applying it changes nothing.
        for extra in [
            json!({"retention": "30 days", "retention_keep_table": false, "retention_keep_index": true}),
            json!({"retention": "30 days", "retention_keep_table": false, "retention_keep_index": false, "infinite_time_partitions": true}),
            json!({"retention": "7 days", "retention_keep_index": false}),
            json!({"retention": "7 days", "retention_keep_index": true, "infinite_time_partitions": true, "premake": 9}),
            json!({"retention": "1 year", "retention_schema": "archive", "retention_keep_table": false}),
            json!({"retention": "1 year", "retention_schema": "archive", "retention_keep_index": false}),
            json!({"retention": "86400", "retention_keep_table": false}),
        ] {
            let live = v5_daily(extra.clone());
            let p = imported(&live, 5);
            for setting in crate::render::part_config_settings(&p.policy) {
                let want = match &setting.value {
                    crate::render::SettingValue::Null => serde_json::Value::Null,
                    crate::render::SettingValue::Bool(b) => json!(b),
                    crate::render::SettingValue::Int(i) => json!(i),
                    crate::render::SettingValue::Text(t) => json!(t),
                };
                let have = live.config.get(setting.column).cloned().unwrap();
                let same = match (setting.column, &want, &have) {
                    ("retention", serde_json::Value::String(w), serde_json::Value::String(h)) => {
                        parse_pg_interval(w).unwrap().comparable()
                            == parse_pg_interval(h).unwrap().comparable()
                    }
                    _ => want == have,
                };
                assert!(
                    same,
                    "{extra}: {} is {have}, the policy sets {want}\n{}",
                    setting.column, p.text
                );
            }
        }
    }

    #[test]
    fn detach_and_archive_keep_their_indexes_setting() {
        let p = imported(
            &v5_daily(json!({"retention": "7 days", "infinite_time_partitions": true})),
            5,
        );
        assert_eq!(
            p.policy.retention.as_ref().unwrap().expired,
            Expired::Detach
        );
        assert!(p.policy.retention.as_ref().unwrap().keep_index);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert!(!p.text.contains("#   -"), "{}", p.text);

        let live = v5_daily(
            json!({"retention": "7 days", "retention_schema": "archive", "retention_keep_index": false, "infinite_time_partitions": true}),
        );
        let p = imported(&live, 5);
        let retention = p.policy.retention.as_ref().unwrap();
        assert_eq!(
            retention.expired,
            Expired::Archive {
                schema: Ident::parse("archive").unwrap()
            }
        );
        assert!(!retention.keep_index);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn intervals_are_written_in_canonical_text() {
        let live = v5_daily(
            json!({"partition_interval": "00:00:01", "retention": "15", "datetime_string": "YYYYMMDD_HH24MISS", "retention_keep_table": false, "retention_keep_index": false}),
        );
        let p = imported(&live, 5);
        assert!(p.text.contains("  interval: 1 second\n"), "{}", p.text);
        assert!(p.text.contains("  keep: 15 seconds\n"), "{}", p.text);
        assert!(
            p.notes.contains(&Note {
                kind: NoteKind::Rewritten,
                text: "retention \"15\" is written as \"15 seconds\" (pg_partman reads a bare number as seconds)".into()
            }),
            "{:?}",
            p.notes
        );
        let p = imported(
            &v5_daily(json!({"retention": "8 weeks", "datetime_string": "YYYYMMDD"})),
            5,
        );
        assert!(
            p.notes.contains(&Note {
                kind: NoteKind::Rewritten,
                text: "retention \"8 weeks\" is written as \"56 days\" (the same interval)".into()
            }),
            "{:?}",
            p.notes
        );
        let p = imported(
            &v5_daily(
                json!({"partition_interval": "1 mon", "retention": "1 year", "datetime_string": "YYYYMMDD"}),
            ),
            5,
        );
        assert!(p.text.contains("  interval: 1 month\n"), "{}", p.text);
    }

    #[test]
    fn epoch_tables_and_v5_without_default_partition() {
        let mut live =
            v5_daily(json!({"control": "ts", "epoch": "seconds", "retention": "2 days"}));
        live.control_type = Some("bigint".into());
        live.has_default_partition = false;
        let p = imported(&live, 5);
        let partitioning = p.policy.partitioning.as_ref().unwrap();
        assert_eq!(partitioning.epoch, Epoch::Seconds);
        assert!(!partitioning.default_partition);
    }

    #[test]
    fn v4_without_default_partition_is_noted_not_written() {
        let mut live = v5_daily(
            json!({"partition_type": "native", "retention": "2 days", "datetime_string": "YYYY_MM_DD", "ignore_default_data": false}),
        );
        live.config.remove("time_encoder");
        live.has_default_partition = false;
        let p = imported(&live, 4);
        assert!(p.policy.partitioning.as_ref().unwrap().default_partition);
        assert!(
            p.notes.iter().any(
                |n| n.kind == NoteKind::NotExpressed && n.text.contains("no default partition")
            ),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn settings_outside_the_format_are_listed() {
        let live = v5_daily(json!({
            "retention": "30 days", "constraint_cols": ["region"], "automatic_maintenance": "off",
            "datetime_string": "YYYY_MM_DD", "jobmon": false, "template_table": "public.my_template",
            "ignore_default_data": false
        }));
        let p = imported(&live, 5);
        let listed: Vec<&str> = p
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::NotExpressed)
            .map(|n| n.text.as_str())
            .collect();
        for column in [
            "constraint_cols = [\"region\"]",
            "automatic_maintenance = \"off\"",
            "datetime_string = \"YYYY_MM_DD\"",
            "jobmon = false",
            "template_table = \"public.my_template\"",
            "ignore_default_data = false",
        ] {
            assert!(
                listed.iter().any(|n| n.starts_with(column)),
                "{column} missing from {listed:?}"
            );
            assert!(
                p.text.contains(&format!("#   - {column}")),
                "{column} missing from\n{}",
                p.text
            );
        }
        assert_eq!(listed.len(), 6, "{listed:?}");
    }

    #[test]
    fn tables_the_format_cannot_describe_are_skipped_with_a_reason() {
        let mut id_based =
            v5_daily(json!({"control": "id", "partition_interval": "10", "retention": "100"}));
        id_based.control_type = Some("bigint".into());
        assert!(
            skipped(&id_based).contains("partitioned by id"),
            "{}",
            skipped(&id_based)
        );
        assert!(skipped(&v5_daily(json!({}))).contains("retention is NULL"));
        assert!(
            skipped(&v5_daily(json!({"retention": "1 hour"})))
                .contains("shorter than one partition")
        );
        assert!(
            skipped(&v5_daily(
                json!({"partition_type": "list", "retention": "2 days"})
            ))
            .contains("list")
        );
        assert!(
            skipped(&v5_daily(
                json!({"parent_table": "public.\"Events\"", "retention": "2 days"})
            ))
            .contains("name")
        );
        let mut sub_partition = v5_daily(json!({"retention": "2 days"}));
        sub_partition.partition_of = Some("public.events_top".into());
        assert!(skipped(&sub_partition).starts_with(
            "it is a partition of public.events_top, which pg_partman sub-partitions"
        ));
        let mut trigger_based = v5_daily(json!({"retention": "2 days"}));
        trigger_based.strategy = None;
        assert!(skipped(&trigger_based).contains("not a natively range-partitioned"));
    }

    #[test]
    fn yaml_reserved_words_are_quoted() {
        let mut live = v5_daily(json!({"control": "on", "retention": "2 days"}));
        live.control_type = Some("date".into());
        let p = imported(&live, 5);
        assert_eq!(
            p.policy.partitioning.as_ref().unwrap().column.as_str(),
            "on"
        );
    }

    #[test]
    fn catalog_text_stays_inside_its_comment_line() {
        let hostile = [
            "YYYY\ndeletes:\n  - name: all\n    where: \"true\"\nschedule: \"* * * * *\"",
            "YYYY\r\nschedule: '* * * * *'",
            "YYYY\rschedule: x",
            "YYYY\u{2028}schedule: x",
            "YYYY\u{85}schedule: x",
            "YYYY\u{2029}# x",
            "a # b: c \"d\" 'e' : f - [g] {h} &i *j !k |l >m %n @o `p",
            "\u{1b}[31mred\u{7}\u{0}\u{9b}",
        ];
        for text in hostile {
            let live = v5_daily(json!({
                "retention": "30 days",
                "datetime_string": text,
                "template_table": text,
                "constraint_cols": [text],
            }));
            let p = match import_table(&live, &config(5), text, Path::new("policies/x.yaml")) {
                Outcome::Imported(p) => *p,
                Outcome::Skipped(s) => panic!("{text:?} skipped: {}", s.reason),
            };
            assert!(p.policy.deletes.is_empty(), "{text:?}:\n{}", p.text);
            assert!(p.policy.schedule.is_none(), "{text:?}:\n{}", p.text);
            // Every line is a comment or one of the keys import writes.
            for line in p.text.lines() {
                let key = line.trim_start().split(':').next().unwrap_or_default();
                assert!(
                    line.starts_with('#')
                        || [
                            "table",
                            "partitioning",
                            "column",
                            "interval",
                            "premake",
                            "retention",
                            "keep",
                            "expired",
                            "keep_index",
                            "infinite_time_partitions",
                        ]
                        .contains(&key),
                    "{text:?}: stray line {line:?} in\n{}",
                    p.text
                );
            }
            let comments = p.text.lines().filter(|l| l.starts_with('#')).count();
            // The header, two lines per heading of a kind of note, and one line per note.
            let mut kinds: Vec<NoteKind> = p.notes.iter().map(|n| n.kind).collect();
            kinds.sort_by_key(|k| k.label());
            kinds.dedup();
            assert_eq!(
                comments,
                1 + 2 * kinds.len() + p.notes.len(),
                "{text:?}:\n{}",
                p.text
            );
            assert!(
                !p.text
                    .chars()
                    .any(|c| crate::policy::error::is_unsafe_char(c) && c != '\n'),
                "{text:?}: raw control character in\n{:?}",
                p.text
            );
        }
    }

    #[test]
    fn every_scalar_import_writes_reads_back_as_the_same_string() {
        for text in [
            "created_at",
            "on",
            "null",
            "1 day",
            "30",
            "1e3",
            "a: b",
            "a #b",
            "#a",
            "- a",
            "'q'",
            "\"q\"",
            "back\\slash",
            "line\nbreak",
            "\u{2028}\u{2029}\u{85}",
            "\u{1b}\u{0}\u{7f}\u{feff}",
            " lead",
            "trail ",
            "",
            "é ü 日本",
            "[a]",
            "{a}",
            "*a",
            "&a",
            "!a",
            "|",
            ">",
            "%a",
            "@a",
            "`a",
            "~",
            ".inf",
            "0x1f",
            "public.events",
        ] {
            let yaml = format!("k: {}\n", scalar(text));
            let docs = crate::policy::yaml::parse_documents(&yaml)
                .unwrap_or_else(|e| panic!("{text:?} as {yaml:?}: {e:?}"));
            let crate::policy::yaml::Value::Map(entries) = &docs[0].value else {
                panic!("{yaml:?}")
            };
            assert_eq!(entries.len(), 1, "{yaml:?}");
            assert_eq!(
                entries[0].1.value,
                crate::policy::yaml::Value::Str(text.to_string()),
                "{text:?} written as {yaml:?}"
            );
        }
    }
}
