//! The last checks before a plan's statements run: data loss needs consent; a reviewed
//! plan is the plan of now; what runs is what was reviewed under generated/, looked up by
//! (file, key); no statement may harm a managed parent table.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use tokio_postgres::Client;

use super::error::{ApplyError, DestructiveChange, PlanMismatch};
use super::guard;
use crate::compile::ProjectFiles;
use crate::model::{Config, Project};
use crate::plan::{Change, ChangeKind, Plan};
use crate::render::{CompiledFile, Statement};

/// Refuses destructive changes without `--allow-data-loss`, listing them.
pub fn refuse_data_loss(plan: &Plan, allow_data_loss: bool) -> Result<(), ApplyError> {
    if allow_data_loss || !plan.is_destructive() {
        return Ok(());
    }
    Err(ApplyError::DataLossNotAllowed {
        destructive: plan
            .changes
            .iter()
            .filter(|c| c.destructive)
            .map(|change| DestructiveChange {
                table: change.table.clone(),
                summary: change.summary.clone(),
                impact: change
                    .impact
                    .as_ref()
                    .map(crate::plan::format::impact_sentence),
            })
            .collect(),
    })
}

/// Says which conversions this apply leaves alone: without `--convert`, a plan's
/// conversions are not started (each copies a whole table and can take hours); the rest of
/// the plan is applied.
pub fn note_conversions(plan: &Plan, convert: bool) {
    if convert {
        return;
    }
    for change in &plan.changes {
        if change.kind == ChangeKind::ConvertTable {
            eprintln!(
                "note: not converting {0} (a conversion copies every row and can take hours): run `retentionc convert {0}`, or `retentionc apply --convert`",
                change.table
            );
        }
    }
}

/// The statements a plan's changes make, taken from the reviewed files by (file, key):
/// each file must be in generated/ exactly as compile writes it now, and no statement may
/// drop, truncate or rename a managed parent table. The plan's own text is never run.
pub async fn reviewed_statements(
    client: &Client,
    project: &Project,
    plan: &Plan,
) -> Result<Vec<Vec<String>>> {
    let config = &project.config;
    let mut files = ReviewedFiles::of(project)?;
    let mut managed: BTreeSet<String> = project
        .policies
        .iter()
        .map(|p| p.table.to_string())
        .collect();
    // Changes name their table `schema.table` (the bootstrap change names retentionc's schema).
    managed.extend(
        plan.changes
            .iter()
            .map(|c| c.table.clone())
            .filter(|t| t.contains('.')),
    );
    managed.extend(registered_parents(client, config).await?);
    let mut per_change = Vec::new();
    for change in &plan.changes {
        let mut sqls = Vec::new();
        // A conversion runs step by step, outside apply's transaction (`crate::convert`).
        if change.kind == ChangeKind::ConvertTable {
            per_change.push(sqls);
            continue;
        }
        for planned in &change.statements {
            let statement = files.statement(&planned.file, &planned.key, &change.table)?;
            if let Some(forbidden) = guard::forbidden_action(&statement.sql, &managed) {
                return Err(ApplyError::ForbiddenStatement {
                    key: statement.key,
                    table: change.table.clone(),
                    forbidden,
                }
                .into());
            }
            sqls.push(statement.sql.clone());
        }
        per_change.push(sqls);
    }
    Ok(per_change)
}

/// The compiled files a plan's statements are taken from: each is rendered, and checked to
/// be in generated/ exactly as compile writes it now, once, when a statement of it is
/// first asked for, so that what runs is what was reviewed.
pub struct ReviewedFiles<'p> {
    config: &'p Config,
    files: ProjectFiles<'p>,
    checked: BTreeMap<String, CompiledFile>,
}

impl<'p> ReviewedFiles<'p> {
    pub fn of(project: &'p Project) -> Result<ReviewedFiles<'p>> {
        Ok(ReviewedFiles {
            config: &project.config,
            files: ProjectFiles::of(project)?,
            checked: BTreeMap::new(),
        })
    }

    /// Whether the project produces `file` (relative to generated/).
    pub fn produces(&self, file: &str) -> bool {
        self.files.contains(file)
    }

    /// The statement `key` of the compiled file `file` (relative to generated/), for
    /// `table`.
    pub fn statement(&mut self, file: &str, key: &str, table: &str) -> Result<Statement> {
        let shown = self.config.generated_dir.join(file);
        if !self.checked.contains_key(file) {
            let compiled = self
                .files
                .render(file)
                .ok_or_else(|| ApplyError::FileNotProduced {
                    path: shown.clone(),
                    key: key.to_string(),
                    table: table.to_string(),
                })?;
            let on_disk = std::fs::read_to_string(self.config.generated_path().join(file))
                .with_context(|| {
                    format!(
                        "reading {} for the statement [{key}] of {table}",
                        shown.display(),
                    )
                })?;
            if on_disk != compiled.text {
                return Err(ApplyError::GeneratedFileChanged { path: shown }.into());
            }
            self.checked.insert(file.to_string(), compiled);
        }
        self.checked[file].statement(key).cloned().ok_or_else(|| {
            ApplyError::NoSuchStatement {
                path: shown,
                key: key.to_string(),
                table: table.to_string(),
            }
            .into()
        })
    }
}

/// Why a reviewed plan is not the plan the database and the policies give now, if it is
/// not: the live state moved (fingerprint), or the changes, their statements or what they
/// say to a reviewer differ in any byte (an edited plan file is data, and never runs).
pub fn reviewed_plan_mismatch(reviewed: &Plan, now: &Plan) -> Option<PlanMismatch> {
    if reviewed.live_fingerprint != now.live_fingerprint {
        return Some(PlanMismatch::DatabaseChanged);
    }
    if reviewed.policy_hashes != now.policy_hashes {
        return Some(PlanMismatch::PoliciesChanged);
    }
    if reviewed.changes.len() != now.changes.len() {
        return Some(PlanMismatch::ChangeCount {
            planned: reviewed.changes.len(),
            now: now.changes.len(),
        });
    }
    for (saved, fresh) in reviewed.changes.iter().zip(&now.changes) {
        if (&saved.table, saved.kind) != (&fresh.table, fresh.kind) {
            return Some(PlanMismatch::DifferentChange {
                planned_kind: saved.kind,
                planned_table: saved.table.clone(),
                now_kind: fresh.kind,
                now_table: fresh.table.clone(),
            });
        }
        if saved.statements != fresh.statements {
            return Some(PlanMismatch::DifferentStatements {
                table: saved.table.clone(),
            });
        }
        if saved.destructive != fresh.destructive
            || saved.settings != fresh.settings
            || !same_description(saved, fresh)
        {
            return Some(PlanMismatch::DifferentSettings {
                table: saved.table.clone(),
            });
        }
    }
    None
}

/// Whether two changes say the same to a reviewer: summary, notes, procedure diff and
/// drift, what apply shows of a saved plan before it asks. Left out: what moves between
/// plan and apply with no change to make (the impact, computed against the time of
/// planning; a conversion's summary, which carries row and byte statistics; an adoption's
/// notes, which carry row statistics and the partitions pg_partman makes up to now).
fn same_description(saved: &Change, fresh: &Change) -> bool {
    let statistics_in_summary = saved.kind == ChangeKind::ConvertTable;
    let statistics_in_notes = matches!(
        saved.kind,
        ChangeKind::ConvertTable | ChangeKind::AdoptTable
    );
    (statistics_in_summary || saved.summary == fresh.summary)
        && (statistics_in_notes || saved.notes == fresh.notes)
        && saved.body_diff == fresh.body_diff
        && saved.drift == fresh.drift
}

/// Tables registered in pg_partman's part_config (none when pg_partman is absent).
async fn registered_parents(client: &Client, config: &Config) -> Result<Vec<String>> {
    let table = format!(
        "{}.part_config",
        crate::policy::ident::quote_ident(config.partman_schema.as_str())
    );
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(&format!("SELECT parent_table FROM {table}"), &[])
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diff::change;

    fn plan_of(change: Change) -> Plan {
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            live_fingerprint: "f".into(),
            policy_hashes: BTreeMap::new(),
            changes: vec![change],
            planned_at: None,
            unmanaged_tables: Vec::new(),
            apply_transactions: None,
        }
    }

    /// `now` with `edit` made to its one change, compared as a reviewed plan.
    fn mismatch_after(now: &Change, edit: impl Fn(&mut Change)) -> Option<PlanMismatch> {
        let mut reviewed = now.clone();
        edit(&mut reviewed);
        reviewed_plan_mismatch(&plan_of(reviewed), &plan_of(now.clone()))
    }

    #[test]
    fn what_a_reviewer_reads_must_be_the_plan_of_now() {
        let mut now = change(
            "public.events",
            ChangeKind::ReplaceProcedure,
            "replace the prune procedure".into(),
            Vec::new(),
        );
        now.notes = vec!["missing: USAGE ON SCHEMA retention".into()];
        now.body_diff = Some("-a\n+b\n".into());
        let different = Some(PlanMismatch::DifferentSettings {
            table: "public.events".into(),
        });
        assert_eq!(mismatch_after(&now, |_| {}), None);
        assert_eq!(mismatch_after(&now, |c| c.summary.push('!')), different);
        assert_eq!(mismatch_after(&now, |c| c.notes.clear()), different);
        assert_eq!(mismatch_after(&now, |c| c.body_diff = None), different);
        assert_eq!(mismatch_after(&now, |c| c.drift = true), different);
        // The impact is computed against the time of planning: it may have moved.
        assert_eq!(
            mismatch_after(&now, |c| c.impact = Some(Default::default())),
            None
        );
    }

    #[test]
    fn statistics_in_conversion_and_adoption_words_may_move() {
        let convert = change(
            "public.orders",
            ChangeKind::ConvertTable,
            "convert ... (about 1,000 rows, 8 kB; ...)".into(),
            Vec::new(),
        );
        assert_eq!(
            mismatch_after(&convert, |c| c.summary =
                "convert ... (about 1,200 rows)".into()),
            None
        );
        let mut adopt = change(
            "public.events",
            ChangeKind::AdoptTable,
            "adopt with pg_partman".into(),
            Vec::new(),
        );
        adopt.notes = vec!["it holds about 10 rows".into()];
        assert_eq!(
            mismatch_after(&adopt, |c| c.notes = vec!["it holds about 12 rows".into()]),
            None
        );
        assert!(mismatch_after(&adopt, |c| c.summary.push('!')).is_some());
    }
}
