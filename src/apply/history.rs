//! The apply history row: written in the same transaction as the changes it records.
//!
//! `applied_state` is the desired state the apply made true, in the shape plan reads
//! back to tell drift (a hand edit since) from a policy change, and to know the delete
//! rules a live procedure runs: `state::applied_state_json` of `state::desired`.

use anyhow::{Context, Result};
use serde_json::Value;
use tokio_postgres::Client;

use crate::model::{Config, Project};
use crate::plan::Plan;
use crate::policy::ident::quote_ident;
use crate::render::Renderer;
use crate::state;

/// The desired state of every policy of the project (see the module doc for its shape).
pub fn applied_state(project: &Project) -> Value {
    state::applied_state_json(&state::desired(project, &Renderer::new()))
}

/// Inserts the history row; returns its id. Must run after the bootstrap statements.
pub async fn record(
    client: &Client,
    config: &Config,
    plan: &Plan,
    statements: &[String],
    state: &Value,
) -> Result<i64> {
    let hashes = serde_json::to_value(&plan.policy_hashes).expect("hashes serialise");
    let sql = format!(
        "INSERT INTO {}.\"apply_history\" (tool_version, policy_hashes, applied_state, statements) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        quote_ident(config.schema.as_str())
    );
    let row = client
        .query_one(
            &sql,
            &[&env!("CARGO_PKG_VERSION"), &hashes, state, &statements],
        )
        .await
        .with_context(|| format!("recording the apply in {}.apply_history", config.schema))?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_state_lists_what_each_policy_sets() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let project = crate::policy::load_project(&root.join("retentionc.yaml"))
            .expect("the example project loads");
        let applied = applied_state(&project);
        assert_eq!(applied["version"], 2);
        let tables = &applied["tables"];
        let t = &tables["public.test_table1"];
        assert_eq!(t["settings"]["retention"], "15 seconds");
        assert_eq!(t["settings"]["retention_keep_table"], false);
        assert_eq!(t["settings"]["premake"], 30);
        assert_eq!(t["prune"], Value::Null);
        assert_eq!(t["schedule"], Value::Null);
        let logs = &tables["public.app_logs"];
        assert_eq!(logs["prune"]["procedure"], "prune_app_logs");
        assert_eq!(
            logs["prune"]["body_sha256"].as_str().map(str::len),
            Some(64)
        );
        assert_eq!(logs["prune"]["rules"][0]["name"], "debug_rows");
        assert_eq!(logs["prune"]["rules"][0]["condition"], "level = 'debug'");
        assert_eq!(logs["prune"]["rules"][0]["older_than"], "1 hour");
        assert_eq!(logs["schedule"]["schedule"], "*/5 * * * *");
        assert_eq!(
            tables["public.user_sessions"]["settings"],
            serde_json::json!({})
        );
    }
}
