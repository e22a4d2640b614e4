//! The last checks before a plan's statements run: data loss needs consent; a reviewed
//! plan is the plan of now; what runs is what was reviewed under generated/, looked up by
//! (file, key); no statement may harm a managed parent table.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};
use tokio_postgres::Client;

use super::guard;
use crate::compile::ProjectFiles;
use crate::model::{Config, Project};
use crate::plan::Plan;
use crate::render::{CompiledFile, Statement};

/// Refuses destructive changes without `--allow-data-loss`, listing them.
pub fn refuse_data_loss(plan: &Plan, allow_data_loss: bool) -> Result<()> {
    if allow_data_loss || !plan.is_destructive() {
        return Ok(());
    }
    let mut text = String::from(
        "the plan expires existing data, and --allow-data-loss was not given; nothing was changed. Destructive changes:",
    );
    for change in plan.changes.iter().filter(|c| c.destructive) {
        if change.summary.contains(&change.table) {
            text.push_str(&format!("\n  - {}", change.summary));
        } else {
            text.push_str(&format!("\n  - {}: {}", change.table, change.summary));
        }
        if let Some(impact) = &change.impact {
            text.push_str(&format!(
                "\n      {}",
                crate::plan::format::impact_sentence(impact)
            ));
        }
    }
    text.push_str("\nCheck the policy (a typo such as `keep: 9 days` for `90 days`), or apply again with --allow-data-loss.");
    Err(anyhow!(text))
}

/// Says which conversions this apply leaves alone: without `--convert`, a plan's
/// conversions are not started (each copies a whole table and can take hours); the rest of
/// the plan is applied.
pub fn note_conversions(plan: &Plan, convert: bool) {
    if convert {
        return;
    }
    for change in &plan.changes {
        if change.kind == crate::plan::ChangeKind::ConvertTable {
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
        if change.kind == crate::plan::ChangeKind::ConvertTable {
            per_change.push(sqls);
            continue;
        }
        for planned in &change.statements {
            let statement = files.statement(&planned.file, &planned.key, &change.table)?;
            if let Some(forbidden) = guard::forbidden_action(&statement.sql, &managed) {
                bail!(
                    "refusing to apply: statement [{}] of {} would {}; retentionc never drops, truncates or renames a parent table (nothing was changed)",
                    statement.key,
                    change.table,
                    forbidden.describe()
                );
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
            let compiled = self.files.render(file).with_context(|| {
                format!(
                    "{}: the plan takes statement [{key}] of {table} from this file, which the project does not produce; run `retentionc compile`, review and commit generated/, then plan again (nothing was changed)",
                    shown.display(),
                )
            })?;
            let on_disk = std::fs::read_to_string(self.config.generated_path().join(file))
                .with_context(|| {
                    format!(
                        "reading {} for the statement [{key}] of {table}",
                        shown.display(),
                    )
                })?;
            if on_disk != compiled.text {
                bail!(
                    "{}: the file is not what `retentionc compile` writes, so it is not what was reviewed; run `retentionc compile`, review and commit generated/, then plan again (nothing was changed)",
                    shown.display()
                );
            }
            self.checked.insert(file.to_string(), compiled);
        }
        self.checked[file].statement(key).cloned().with_context(|| {
            format!(
                "{}: no statement [{key}] (for {table}); run plan again (nothing was changed)",
                shown.display(),
            )
        })
    }
}

/// Why a reviewed plan is not the plan the database and the policies give now, if it is
/// not: the live state moved (fingerprint), or the changes or statements differ in any
/// byte (an edited plan file is data, and never runs).
pub fn reviewed_plan_mismatch(reviewed: &Plan, now: &Plan) -> Option<String> {
    if reviewed.live_fingerprint != now.live_fingerprint {
        return Some("the database changed since the plan was made".into());
    }
    if reviewed.policy_hashes != now.policy_hashes {
        return Some("the policies changed since the plan was made".into());
    }
    if reviewed.changes.len() != now.changes.len() {
        return Some(format!(
            "the plan holds {} change(s), and the policies and the database give {}",
            reviewed.changes.len(),
            now.changes.len()
        ));
    }
    for (saved, fresh) in reviewed.changes.iter().zip(&now.changes) {
        if (&saved.table, saved.kind) != (&fresh.table, fresh.kind) {
            return Some(format!(
                "the plan's change \"{}\" on {} is not the change the policies and the database give ({} on {})",
                crate::plan::format::kind_name(saved.kind),
                saved.table,
                crate::plan::format::kind_name(fresh.kind),
                fresh.table
            ));
        }
        if saved.statements != fresh.statements {
            return Some(format!(
                "the statements of the plan's change to {} differ from the reviewed files' statements",
                saved.table
            ));
        }
        if saved.destructive != fresh.destructive || saved.settings != fresh.settings {
            return Some(format!(
                "the plan's change to {} does not say what the policies and the database give",
                saved.table
            ));
        }
    }
    None
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
