//! The apply history row: written in the same transaction as the changes it records.
//!
//! `applied_state` is the desired state the apply made true, in the shape plan reads
//! back to tell drift (a hand edit since) from a policy change, and to know the delete
//! rules a live procedure runs: `state::applied_state_json` of `state::desired`.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
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
/// `policy_hashes`: `{"schema.table": sha256}` of what the database now matches.
pub async fn record(
    client: &Client,
    config: &Config,
    policy_hashes: &Value,
    statements: &[String],
    state: &Value,
) -> Result<i64> {
    let sql = format!(
        "INSERT INTO {}.\"apply_history\" (tool_version, policy_hashes, applied_state, statements) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        quote_ident(config.schema.as_str())
    );
    let row = client
        .query_one(
            &sql,
            &[
                &env!("CARGO_PKG_VERSION"),
                policy_hashes,
                state,
                &statements,
            ],
        )
        .await
        .with_context(|| format!("recording the apply in {}.apply_history", config.schema))?;
    Ok(row.get(0))
}

/// The plan's policy hashes, as the history records them.
pub fn plan_hashes(plan: &Plan) -> Value {
    serde_json::to_value(&plan.policy_hashes).expect("hashes serialise")
}

/// The last apply as its history row recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub id: i64,
    pub applied_at: DateTime<Utc>,
    pub policy_hashes: Value,
    pub applied_state: Value,
}

impl Recorded {
    /// Where the split apply this row belongs to had got, if it belongs to one.
    pub fn progress(&self) -> Option<SplitProgress> {
        serde_json::from_value(self.applied_state.get("progress")?.clone()).ok()
    }
}

/// The last history row (None before the first apply, or before retentionc's schema).
pub async fn last_recorded(client: &Client, config: &Config) -> Result<Option<Recorded>> {
    let table = format!("{}.apply_history", quote_ident(config.schema.as_str()));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT id, applied_at, policy_hashes, applied_state FROM {table} ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await
        .context("reading the last apply")?;
    Ok(row.map(|r| Recorded {
        id: r.get(0),
        applied_at: r.get(1),
        policy_hashes: r.get(2),
        applied_state: r.get(3),
    }))
}

/// How far a split apply got: recorded by each of its transactions (in
/// `applied_state.progress`), so that the next apply knows it continues one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitProgress {
    /// The plan it applies (`plan_id`): a reviewed plan may be applied again to continue.
    pub plan: String,
    /// Changes of that plan committed so far, and all of them.
    pub changes_done: usize,
    pub changes: usize,
    /// This apply's transactions committed so far, and all of them.
    pub transaction: usize,
    pub transactions: usize,
}

impl SplitProgress {
    pub fn finished(&self) -> bool {
        self.changes_done >= self.changes
    }
}

/// Identifies a plan by what it would do: the live state it was made against and each
/// change's table, kind and statements (not its wording or impact, which move with time).
pub fn plan_id(plan: &Plan) -> String {
    let changes: Vec<_> = plan
        .changes
        .iter()
        .map(|c| (&c.table, c.kind, &c.statements))
        .collect();
    let canonical =
        serde_json::to_string(&(&plan.live_fingerprint, changes)).expect("a plan serialises");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// What a transaction of a split apply records as the state it left: the desired state
/// of every table except those with changes still `pending`, which keep what the
/// previous apply recorded for them (or nothing); likewise the policy hashes. Plan reads
/// this to tell drift from change, so it must never claim a change not yet committed.
pub fn partial_record(
    desired_state: &Value,
    desired_hashes: &Value,
    previous: Option<&Recorded>,
    pending: &BTreeSet<String>,
    progress: &SplitProgress,
) -> (Value, Value) {
    let mut state = desired_state.clone();
    let mut hashes = desired_hashes.clone();
    let previous_tables = previous
        .filter(|p| p.applied_state.get("version").is_some())
        .and_then(|p| p.applied_state.get("tables"));
    let previous_hashes = previous.map(|p| &p.policy_hashes);
    for table in pending {
        carry(&mut state["tables"], previous_tables, table);
        carry(&mut hashes, previous_hashes, table);
    }
    state["progress"] = serde_json::to_value(progress).expect("progress serialises");
    (state, hashes)
}

/// `into[key]` becomes `from[key]`, or is removed when `from` has none.
fn carry(into: &mut Value, from: Option<&Value>, key: &str) {
    let Some(map) = into.as_object_mut() else {
        return;
    };
    match from.and_then(|f| f.get(key)) {
        Some(value) => {
            map.insert(key.to_string(), value.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_record_keeps_the_previous_state_of_tables_still_pending() {
        let desired = serde_json::json!({"version": 2, "tables": {
            "public.a": {"settings": {"retention": "1 day"}},
            "public.b": {"settings": {"retention": "2 days"}},
            "public.c": {"settings": {"retention": "3 days"}}}});
        let hashes = serde_json::json!({"public.a": "a2", "public.b": "b2", "public.c": "c2"});
        let previous = Recorded {
            id: 7,
            applied_at: Utc::now(),
            policy_hashes: serde_json::json!({"public.b": "b1", "public.gone": "g1"}),
            applied_state: serde_json::json!({"version": 2, "tables": {
                "public.b": {"settings": {"retention": "9 days"}},
                "public.gone": {"settings": {"retention": "5 days"}}}}),
        };
        let progress = SplitProgress {
            plan: "p".into(),
            changes_done: 1,
            changes: 4,
            transaction: 1,
            transactions: 3,
        };
        // Still pending: b (changed), c (new), and the removal of gone.
        let pending: BTreeSet<String> = ["public.b", "public.c", "public.gone"]
            .into_iter()
            .map(String::from)
            .collect();
        let (state, hashes) =
            partial_record(&desired, &hashes, Some(&previous), &pending, &progress);
        assert_eq!(
            state["tables"]["public.a"]["settings"]["retention"],
            "1 day"
        );
        assert_eq!(
            state["tables"]["public.b"]["settings"]["retention"],
            "9 days"
        );
        assert!(state["tables"].get("public.c").is_none(), "{state}");
        assert_eq!(
            state["tables"]["public.gone"]["settings"]["retention"],
            "5 days"
        );
        assert_eq!(state["progress"]["changes_done"], 1);
        assert_eq!(
            hashes,
            serde_json::json!({"public.a": "a2", "public.b": "b1", "public.gone": "g1"})
        );
        let recorded = Recorded {
            applied_state: state,
            ..previous
        };
        assert_eq!(recorded.progress(), Some(progress));
    }

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
