//! Desired state vs live state -> the changes apply would make. (Being built: issue 3.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A plan: what apply would execute, and the live state it was computed against.
/// Saved with `plan --out` and applied exactly with `apply --plan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Format version of the saved plan and of `--format json`.
    pub format_version: u32,
    /// Hash of the live state the plan was computed against; apply --plan refuses to
    /// run when the database no longer has it.
    pub live_fingerprint: String,
    /// `schema.table` -> policy sha256, recorded in the apply history.
    pub policy_hashes: BTreeMap<String, String>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// `schema.table`
    pub table: String,
    pub kind: ChangeKind,
    /// One line a reviewer reads: "retention 30 days -> 9 days".
    pub summary: String,
    /// True when the change would expire data that exists now.
    pub destructive: bool,
    /// What the next maintenance would expire, for destructive changes.
    pub impact: Option<Impact>,
    /// Statements, verbatim from the file under generated/ (or the removal templates).
    pub statements: Vec<PlannedStatement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Bootstrap,
    Register,
    RetentionSettings,
    Drift,
    CreateProcedure,
    ReplaceProcedure,
    DropProcedure,
    AddSchedule,
    ChangeSchedule,
    RemoveSchedule,
    PolicyRemoved,
    ConvertTable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedStatement {
    /// Key of the statement in its compiled file (`setup`, `retention`, ...).
    pub key: String,
    /// The file under generated/ that holds it, when it comes from one.
    pub file: Option<String>,
    pub sql: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Impact {
    pub partitions: u64,
    /// Lower bound of the oldest and upper bound of the newest expired partition (UTC text).
    pub from: Option<String>,
    pub to: Option<String>,
    /// From pg_class.reltuples (statistics), not a count.
    pub estimated_rows: u64,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
    pub fn is_destructive(&self) -> bool {
        self.changes.iter().any(|c| c.destructive)
    }
}
