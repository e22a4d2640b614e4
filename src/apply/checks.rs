//! The last checks before a plan's statements run: data loss needs consent; what runs is
//! what was reviewed under generated/; no statement may harm a managed parent table.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail};
use tokio_postgres::Client;

use super::guard;
use crate::model::{Config, Project};
use crate::plan::Plan;

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

/// Last checks before anything runs: each statement that comes from a file under
/// generated/ must appear in it verbatim (so what runs is what was reviewed), and no
/// statement may drop, truncate or rename a managed parent table.
pub async fn check_statements(client: &Client, project: &Project, plan: &Plan) -> Result<()> {
    let config = &project.config;
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
    for change in &plan.changes {
        for statement in &change.statements {
            if let Some(forbidden) = guard::forbidden_action(&statement.sql, &managed) {
                bail!(
                    "refusing to apply: statement [{}] of {} would {}; retentionc never drops, truncates or renames a parent table (nothing was changed)",
                    statement.key,
                    change.table,
                    forbidden.describe()
                );
            }
            if let Some(file) = &statement.file {
                let path = config.generated_path().join(file);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "reading {} to check the statement [{}] of {}",
                        path.display(),
                        statement.key,
                        change.table
                    )
                })?;
                if !text.contains(statement.sql.as_str()) {
                    bail!(
                        "{}: the statement [{}] for {} is not in this file as reviewed; run `retentionc compile`, review and commit generated/, then plan again (nothing was changed)",
                        config.generated_dir.join(file).display(),
                        statement.key,
                        change.table
                    );
                }
            }
        }
    }
    Ok(())
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
