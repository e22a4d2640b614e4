//! The validated, normalised policy model: what every stage after parsing consumes.
//!
//! Values here have passed every compile-time check of the policy format, so render,
//! plan, apply and run never validate again. Serialising a policy gives its canonical
//! form, which is what the policy hash is taken over.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Expired {
    Drop,
    Detach,
    Archive { schema: Ident },
}

impl Expired {
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
    /// Name of the prune procedure in retentionc's schema (`prune_<table>`).
    pub fn prune_procedure(&self) -> Option<Ident> {
        if self.deletes.is_empty() {
            return None;
        }
        Ident::derived(format!("prune_{}", self.table.name)).ok()
    }

    /// pg_cron job name: `retentionc:<schema>.<table>`.
    pub fn job_name(&self) -> String {
        format!("retentionc:{}", self.table)
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
