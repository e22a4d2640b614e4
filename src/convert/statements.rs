//! The statements a conversion runs, taken from the reviewed files under generated/ by key:
//! generated/<table>.convert.sql (its routines and steps) and the policy's own file (the
//! owner's rights, after the swap). Each file must be exactly what compile writes now.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::apply::checks::ReviewedFiles;
use crate::convert::ConvertError;
use crate::convert::planned::{POLICY_KEYS_AFTER_SWAP, applied_keys};
use crate::model::{Policy, Project};
use crate::render::conversion_file_name;

/// The reviewed text of each statement a conversion may run, by key.
pub struct Reviewed {
    statements: BTreeMap<&'static str, String>,
}

/// The routines, created or replaced before every step (idempotent).
pub const ROUTINE_KEYS: [&str; 12] = [
    "state",
    "problems",
    "order",
    "names",
    "triggers",
    "prepare_routine",
    "capture_routine",
    "copy_routine",
    "replay_routine",
    "swap_routine",
    "revert_routine",
    "finish_routine",
];

impl Reviewed {
    pub fn load(project: &Project, policy: &Policy) -> Result<Reviewed> {
        let config = &project.config;
        let table = policy.table.to_string();
        let mut files = ReviewedFiles::of(project)?;
        let file = conversion_file_name(&policy.table);
        if !files.produces(&file) {
            return Err(ConvertError::ReviewedFileMissing {
                path: config.generated_dir.join(&file),
                table,
            }
            .into());
        }
        let mut statements = BTreeMap::new();
        for key in applied_keys().chain(["revert", "finish"]) {
            let statement = files.statement(&file, key, &table)?;
            statements.insert(key, statement.sql);
        }
        for key in POLICY_KEYS_AFTER_SWAP {
            let statement = files.statement(&policy.generated_file_name(), key, &table)?;
            statements.insert(key, statement.sql);
        }
        Ok(Reviewed { statements })
    }

    /// The statement of `key` (one of the conversion's keys or `privileges`).
    pub fn get(&self, key: &str) -> &str {
        self.statements
            .get(key)
            .unwrap_or_else(|| panic!("no reviewed statement [{key}] was loaded"))
    }
}
