//! The validated, normalised policy model: what every stage after parsing consumes.
//!
//! Values here have passed every compile-time check of the policy format, so render,
//! plan, apply and run never validate again. Serialising a policy gives its canonical
//! form, which is what the policy hash is taken over.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::policy::ident::{Ident, QualifiedName};
pub use crate::policy::interval::Interval;
pub use crate::policy::where_clause::Condition;
pub use crate::policy::yaml::Pos;

/// pg_partman major version the SQL is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PartmanMajor {
    V4,
    V5,
}

impl PartmanMajor {
    pub fn number(self) -> u8 {
        match self {
            PartmanMajor::V4 => 4,
            PartmanMajor::V5 => 5,
        }
    }
}

/// retentionc.yaml, with defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Folder holding retentionc.yaml; the other paths are relative to it.
    #[serde(skip)]
    pub root: PathBuf,
    pub policies_dir: PathBuf,
    pub generated_dir: PathBuf,
    pub partman_schema: Ident,
    pub partman_version: PartmanMajor,
    /// Schema retentionc owns: prune procedures, run log and apply history.
    pub schema: Ident,
    pub lock_timeout_ms: u64,
}

impl Config {
    pub fn policies_path(&self) -> PathBuf {
        self.root.join(&self.policies_dir)
    }
    pub fn generated_path(&self) -> PathBuf {
        self.root.join(&self.generated_dir)
    }
}

/// Where a policy came from, for headers, hashes and error messages.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// Path as the user would type it, relative to the project root.
    pub file: PathBuf,
    /// 1-based document number within a multi-document file.
    pub document: usize,
    /// Position of each key in the file, by dotted path (`deletes[0].column`), so that
    /// later stages (plan-time checks) can point at the line that caused a problem.
    #[serde(skip)]
    pub key_positions: BTreeMap<String, Pos>,
}

impl Source {
    /// `file:line:column` of a key, falling back to the document's first line.
    pub fn locate(&self, key: &str) -> String {
        let pos = self
            .key_positions
            .get(key)
            .copied()
            .unwrap_or(Pos { line: 1, column: 1 });
        format!("{}:{}:{}", self.file.display(), pos.line, pos.column)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    #[serde(skip)]
    pub source: Source,
    pub table: QualifiedName,
    pub partitioning: Option<Partitioning>,
    pub retention: Option<Retention>,
    pub deletes: Vec<DeleteRule>,
    pub schedule: Option<String>,
    /// The zone the table's `timestamp without time zone` values are in (an IANA name such
    /// as `Europe/Paris`); cutoffs and maintenance of the table are computed in it. None:
    /// UTC, and no such column allowed. Left out of the policy hash when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Policy {
    /// The zone retention of this table computes in: `time_zone`, else UTC.
    pub fn time_zone_or_utc(&self) -> &str {
        self.time_zone.as_deref().unwrap_or("UTC")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Epoch {
    None,
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Epoch {
    pub const NAMES: [&'static str; 5] = [
        "none",
        "seconds",
        "milliseconds",
        "microseconds",
        "nanoseconds",
    ];

    pub fn parse(text: &str) -> Option<Epoch> {
        Some(match text {
            "none" => Epoch::None,
            "seconds" => Epoch::Seconds,
            "milliseconds" => Epoch::Milliseconds,
            "microseconds" => Epoch::Microseconds,
            "nanoseconds" => Epoch::Nanoseconds,
            _ => return None,
        })
    }

    /// The value pg_partman's `p_epoch` and `part_config.epoch` use.
    pub fn as_str(self) -> &'static str {
        Epoch::NAMES[self as usize]
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Partitioning {
    pub column: Ident,
    pub interval: Interval,
    pub premake: u32,
    /// Validated date or timestamp text, passed to create_parent as written.
    pub start: Option<String>,
    pub default_partition: bool,
    pub epoch: Epoch,
    /// pg_partman's `infinite_time_partitions`: premake keeps making partitions ahead of
    /// now while no rows arrive. Left out of the policy hash when true (the default), so
    /// that hashes of policies written before the key existed stay the same.
    #[serde(skip_serializing_if = "is_true")]
    pub infinite_time_partitions: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Expired {
    Drop,
    Detach,
    Archive { schema: Ident },
}

impl Expired {
    /// Every mode's name, as policies spell it.
    pub const NAMES: [&'static str; 3] = ["drop", "detach", "archive"];

    pub fn name(&self) -> &'static str {
        match self {
            Expired::Drop => "drop",
            Expired::Detach => "detach",
            Expired::Archive { .. } => "archive",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    pub keep: Interval,
    pub expired: Expired,
    pub keep_index: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeleteRule {
    pub name: Ident,
    /// The rule's `where`, parsed, checked and printed canonically (see
    /// policy::where_clause); later stages use its canonical text, never the policy's.
    /// Serialised under its first name, so policy hashes do not change with the field's.
    #[serde(rename = "where_sql")]
    pub condition: Condition,
    pub older_than: Option<Interval>,
    /// Time column for `older_than`: the rule's own `column`, else partitioning.column.
    pub column: Option<Ident>,
    pub batch_size: u32,
}

impl Policy {
    /// Name of the prune procedure in retentionc's schema, when the policy has delete rules.
    pub fn prune_procedure(&self) -> Option<Ident> {
        (!self.deletes.is_empty()).then(|| prune_procedure_name(&self.table))
    }

    /// pg_cron job name: `retentionc:<schema>.<table>`.
    pub fn job_name(&self) -> String {
        job_name(&self.table)
    }

    /// `<schema>.<table>.sql`, the compiled file's name under generated/.
    pub fn generated_file_name(&self) -> String {
        format!("{}.sql", self.table)
    }

    /// sha256 of the canonical (normalised) policy: stable across comments, key order
    /// and spelling of equal intervals, and across retentionc releases.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_string(self).expect("a policy always serialises");
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// The prune procedure's name for `table`: `prune_<table>`, or, when that would pass
/// PostgreSQL's 63-byte limit (which would silently truncate it, so that two long names
/// could become one), `prune_<start of table>_<8 hex digits of sha256(schema.table)>`.
pub fn prune_procedure_name(table: &QualifiedName) -> Ident {
    let plain = format!("prune_{}", table.name);
    if plain.len() <= crate::policy::ident::MAX_IDENT_BYTES {
        return Ident::derived(plain).expect("prune_ + a plain name is a plain name");
    }
    let hash = hex::encode(Sha256::digest(table.to_string().as_bytes()));
    // prune_ (6) + prefix + _ (1) + 8 hex = 63 bytes; names are ASCII, so any cut is safe.
    let prefix = &table.name.as_str()[..crate::policy::ident::MAX_IDENT_BYTES - 15];
    Ident::derived(format!("prune_{prefix}_{}", &hash[..8]))
        .expect("prune_ + a plain name + hex digits is a plain name")
}

/// pg_cron job name for `table`: `retentionc:<schema>.<table>`.
pub fn job_name(table: &QualifiedName) -> String {
    format!("retentionc:{table}")
}

/// What a delete rule deletes, as typed values: two rules with equal fingerprints delete
/// the same rows. Recorded by apply, compared by plan; stable across retentionc releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFingerprint {
    pub name: String,
    /// The condition in canonical form (what the procedure evaluates).
    pub condition: String,
    /// Time column of `older_than`.
    pub time_column: Option<String>,
    /// Canonical interval text.
    pub older_than: Option<String>,
    pub batch_size: u32,
}

impl RuleFingerprint {
    pub fn of(rule: &DeleteRule) -> RuleFingerprint {
        RuleFingerprint {
            name: rule.name.to_string(),
            condition: rule.condition.canonical.clone(),
            time_column: rule
                .older_than
                .and(rule.column.as_ref())
                .map(|c| c.to_string()),
            older_than: rule.older_than.map(|i| i.to_string()),
            batch_size: rule.batch_size,
        }
    }

    fn older_than(&self) -> Option<Interval> {
        self.older_than
            .as_deref()
            .and_then(|t| crate::policy::interval::parse_interval(t).ok())
    }

    /// Whether this rule deletes only rows that `other` deletes too: the same condition,
    /// and `other` has no age limit, or this one has an age limit on the same column at
    /// least as long.
    pub fn deletes_no_more_than(&self, other: &RuleFingerprint) -> bool {
        if self.condition != other.condition {
            return false;
        }
        match (self.older_than(), other.older_than()) {
            // `other` deletes every matching row, whatever its age.
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => {
                self.time_column == other.time_column && mine.comparable() >= theirs.comparable()
            }
        }
    }
}

/// What the statement that creates a prune procedure records beside it (in retentionc's
/// `managed_objects.detail`): the body it creates and the rules that body runs, so that
/// plan knows a live procedure's rules, typed, for as long as its body is this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcedureRecord {
    pub body_sha256: String,
    pub rules: Vec<RuleFingerprint>,
}

impl ProcedureRecord {
    pub fn new(body: &str, policy: &Policy) -> ProcedureRecord {
        ProcedureRecord {
            body_sha256: hex::encode(Sha256::digest(body.as_bytes())),
            rules: policy.deletes.iter().map(RuleFingerprint::of).collect(),
        }
    }
}

/// Everything `compile` (and later stages) work from.
#[derive(Debug, Clone)]
pub struct Project {
    pub config: Config,
    pub policies: Vec<Policy>,
}

impl Project {
    pub fn policy(&self, table: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.table.to_string() == table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_procedure_names_fit_postgresql_and_stay_apart() {
        let name = |t: &str| prune_procedure_name(&QualifiedName::parse(t).unwrap()).to_string();
        assert_eq!(name("public.app_logs"), "prune_app_logs");
        // prune_ + 57 bytes is 63: still the plain name.
        let fits = format!("public.{}", "e".repeat(57));
        assert_eq!(name(&fits), format!("prune_{}", "e".repeat(57)));
        // Longer: a prefix and a hash of schema.table, 63 bytes, different for names
        // that share their first 48 bytes or their schema.
        let long_a = format!("public.{}a", "e".repeat(62));
        let long_b = format!("public.{}b", "e".repeat(62));
        let other_schema = format!("audit.{}a", "e".repeat(62));
        let names = [name(&long_a), name(&long_b), name(&other_schema)];
        for n in &names {
            assert_eq!(n.len(), 63, "{n}");
            assert!(n.starts_with(&format!("prune_{}_", "e".repeat(48))), "{n}");
        }
        assert_ne!(names[0], names[1]);
        assert_ne!(names[0], names[2]);
        assert_eq!(name(&long_a), names[0], "stable");
    }
}
