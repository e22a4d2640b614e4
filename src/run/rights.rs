//! Before anything of a run changes: each table's owner, whether this session's role may
//! act as it, and whether the owner has every grant its retention needs
//! (`privileges::owner_grants`), read for all the run's tables at once, in a fixed number
//! of statements. A table that fails runs nothing: its steps are reported failed, naming
//! what is missing, and recorded in run_log when the owner may write it.

use std::collections::BTreeMap;

use chrono::Utc;

use super::report::TableReport;
use super::step::StepError;
use super::worker::Worker;
use crate::catalog::PolicyTable;
use crate::db::privileges::{self, Absent, Missing, Step};
use crate::model::Policy;

/// Whether a table may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Runs,
    Fails(Failure),
}

/// Why a table runs nothing: the error of its maintenance and of its delete rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    maintenance: String,
    deletes: String,
    /// Whether run_log can record it (the owner may write run_log).
    loggable: bool,
}

impl Failure {
    /// The same error for every step, not recorded.
    fn unlogged(error: String) -> Failure {
        Failure {
            maintenance: error.clone(),
            deletes: error,
            loggable: false,
        }
    }
}

/// The verdict of each of `policies`, in their order. A check that cannot be read lets
/// the tables run: their steps then report what fails.
pub async fn check(worker: &mut Worker<'_>, policies: &[&Policy]) -> Vec<Verdict> {
    if let Err(e) = worker.reconnect_if_lost().await {
        let error = format!("{e:#}");
        return policies
            .iter()
            .map(|_| Verdict::Fails(Failure::unlogged(error.clone())))
            .collect();
    }
    let client = &worker.session.client;
    let owners = match owners(client, policies).await {
        Ok(owners) => owners,
        Err(e) => {
            let error = StepError::from_client(&e, None);
            return policies
                .iter()
                .map(|p| {
                    let text = error.describe(&p.table.to_string(), "its owner");
                    Verdict::Fails(Failure::unlogged(text))
                })
                .collect();
        }
    };
    let distinct: Vec<String> = {
        let mut names: Vec<String> = owners.iter().flatten().cloned().collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let refused = privileges::refused_owners(client, &distinct)
        .await
        .unwrap_or_default();
    let tables: Vec<PolicyTable> = policies
        .iter()
        .zip(&owners)
        .filter(|(_, owner)| owner.as_ref().is_some_and(|o| !refused.contains_key(o)))
        .map(|(p, _)| PolicyTable::of(p))
        .collect();
    let missing = if tables.is_empty() {
        BTreeMap::new()
    } else {
        privileges::missing_grants(
            client,
            worker.ctx.config,
            &tables,
            |step| step != Step::Job,
            Absent::LeftOut,
        )
        .await
        .unwrap_or_default()
    };
    policies
        .iter()
        .zip(owners)
        .map(|(policy, owner)| {
            let table = policy.table.to_string();
            let Some(owner) = owner else {
                return Verdict::Fails(Failure::unlogged(format!(
                    "table {table} does not exist; is the policy applied? (`retentionc apply`)"
                )));
            };
            if let Some((user, quoted_owner)) = refused.get(&owner) {
                return Verdict::Fails(Failure::unlogged(privileges::refused_role(
                    user,
                    quoted_owner,
                    &table,
                )));
            }
            match missing.get(&table) {
                Some(rights) if !rights.missing.is_empty() => {
                    Verdict::Fails(lacking(&table, &owner, &rights.missing))
                }
                _ => Verdict::Runs,
            }
        })
        .collect()
}

/// The owner of each policy's table (None: no such table). Read by name from the catalog,
/// so that the session's role needs no rights on the tables' schemas.
async fn owners(
    client: &tokio_postgres::Client,
    policies: &[&Policy],
) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
    let schemas: Vec<&str> = policies.iter().map(|p| p.table.schema.as_str()).collect();
    let names: Vec<&str> = policies.iter().map(|p| p.table.name.as_str()).collect();
    let rows = client
        .query(
            "SELECT t.ord::int8, pg_catalog.pg_get_userbyid(c.relowner)::text
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema_name, table_name, ord)
               JOIN pg_catalog.pg_namespace n ON n.nspname::text = t.schema_name
               JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname::text = t.table_name",
            &[&schemas, &names],
        )
        .await?;
    let mut owners = vec![None; policies.len()];
    for row in rows {
        let index = usize::try_from(row.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
        if let Some(slot) = owners.get_mut(index) {
            *slot = Some(row.get(1));
        }
    }
    Ok(owners)
}

/// The failure of a table whose owner lacks `missing`: each step names what it lacks.
fn lacking(table: &str, owner: &str, missing: &[Missing]) -> Failure {
    let needs = |step: Step| -> Option<String> {
        let lacking: Vec<String> = missing
            .iter()
            .filter(|m| m.step.covers(step))
            .map(|m| m.to_string())
            .collect();
        (!lacking.is_empty()).then(|| {
            format!(
                "not run: retention of {table} runs as its owner {owner}, which needs: {} ({})",
                lacking.join("; "),
                privileges::SEE_DOCS
            )
        })
    };
    Failure {
        maintenance: needs(Step::Maintenance).unwrap_or_else(|| {
            "not run: its owner lacks what the delete rules need (below)".into()
        }),
        deletes: needs(Step::Deletes)
            .unwrap_or_else(|| "not run: its owner lacks what maintenance needs (above)".into()),
        // What every step needs is run_log and its schema.
        loggable: !missing.iter().any(|m| m.step == Step::Every),
    }
}

impl Worker<'_> {
    /// The report of a table that runs nothing, its failure recorded in run_log when the
    /// owner may write it.
    pub async fn refuse(&mut self, policy: &Policy, failure: Failure) -> TableReport {
        let started_at = Utc::now();
        let table = policy.table.to_string();
        let mut report = TableReport {
            table: table.clone(),
            maintenance: None,
            deletes: Vec::new(),
            elapsed: std::time::Duration::ZERO,
            maintenance_elapsed: None,
            deletes_elapsed: None,
        };
        report.fail_every_step(policy, &failure.maintenance, &failure.deletes);
        if failure.loggable {
            if policy.partitioning.is_some() {
                self.log_failure(started_at, &table, "maintenance", &failure.maintenance, 1)
                    .await;
            }
            for rule in &policy.deletes {
                let step = format!("delete:{}", rule.name);
                self.log_failure(started_at, &table, &step, &failure.deletes, 1)
                    .await;
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(step: Step, statement: &str) -> Missing {
        Missing {
            step,
            statement: statement.into(),
            why: "why",
        }
    }

    #[test]
    fn each_step_names_what_it_lacks_and_run_log_is_written_only_when_it_may_be() {
        let failure = lacking(
            "public.events",
            "app_owner",
            &[missing(
                Step::Maintenance,
                "GRANT USAGE, CREATE ON SCHEMA archive TO app_owner",
            )],
        );
        assert_eq!(
            failure.maintenance,
            "not run: retention of public.events runs as its owner app_owner, which needs: GRANT USAGE, CREATE ON SCHEMA archive TO app_owner (why) (see docs/privileges.md)"
        );
        assert_eq!(
            failure.deletes,
            "not run: its owner lacks what maintenance needs (above)"
        );
        assert!(failure.loggable);
        let failure = lacking(
            "public.events",
            "app_owner",
            &[missing(
                Step::Every,
                "GRANT SELECT, INSERT, UPDATE ON TABLE retention.run_log TO app_owner",
            )],
        );
        assert!(failure.maintenance.contains("retention.run_log"));
        assert!(failure.deletes.contains("retention.run_log"));
        assert!(!failure.loggable);
    }
}
