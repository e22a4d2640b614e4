//! What each policy table's owner may not do yet of what running its retention needs:
//! `db::privileges::owner_grants`, the one list apply grants and run checks, read for
//! every table at once (a superuser owner has them all).

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::{Counting, PolicyTable};
use crate::db::privileges::{self, Absent};
use crate::model::Config;

/// A policy table's owner and what it lacks, each as the statement that gives it;
/// partitions another role owns are counted in one line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OwnerRights {
    pub owner: String,
    pub missing: Vec<String>,
}

/// The owner and missing rights of every policy table that exists. An object apply has
/// not made yet counts as missing (apply makes it, and must grant it).
pub async fn read<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    config: &Config,
    tables: &[PolicyTable],
) -> Result<Vec<(String, OwnerRights)>> {
    let rights =
        privileges::missing_grants(client.client, config, tables, |_| true, Absent::Lacking)
            .await
            .context("reading the rights of the tables' owners")?;
    // One statement for the grants, one more for the partitions of partitioned tables.
    client.count_sent(1 + u32::from(tables.iter().any(|t| t.partitioned)));
    Ok(rights
        .into_iter()
        .map(|(table, rights)| {
            let (owners, grants): (Vec<_>, Vec<_>) = rights
                .missing
                .into_iter()
                .partition(|m| m.statement.starts_with("ALTER TABLE "));
            let mut missing: Vec<String> = grants.into_iter().map(|m| m.statement).collect();
            match owners.len() {
                0 => {}
                1 => missing.push(owners[0].statement.clone()),
                n => missing.push(format!(
                    "{n} partitions owned by other roles (ALTER TABLE ... OWNER TO {})",
                    rights.owner
                )),
            }
            let owner = rights.owner;
            (table, OwnerRights { owner, missing })
        })
        .filter(|(_, rights)| !rights.owner.is_empty())
        .collect())
}
