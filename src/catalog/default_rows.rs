//! The newest value in the default partition of each policy table pg_partman does not
//! manage yet: pg_partman cannot make a partition over rows the default partition holds,
//! so plan needs it before adopting the table. One statement for every such table, and
//! `max()` of the partition key only (an index on it answers at once), as pg_partman's own
//! maintenance reads it.

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::{Counting, Live};

/// The default partition of a table and the newest partition-key value it holds (text as
/// the server prints it in UTC; None when it is empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefaultRows {
    /// `schema.name`, quoted where needed.
    pub partition: String,
    pub newest: Option<String>,
}

/// Reads `DefaultRows` for the tables of `live` that have a default partition and no
/// part_config row; sends nothing when there are none.
pub async fn read<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    live: &Live,
) -> Result<Vec<(String, DefaultRows)>> {
    let mut parents = Vec::new();
    let mut partitions = Vec::new();
    let mut keys = Vec::new();
    for (table, children) in &live.children {
        let registered = live.part_config.iter().any(|r| &r.parent_table == table);
        let key = live
            .tables
            .get(table)
            .filter(|t| t.key_count == 1)
            .and_then(|t| t.partition_key.first());
        let default = children.iter().find(|c| c.bound == "DEFAULT");
        if let (false, Some(key), Some(default)) = (registered, key, default) {
            parents.push(table.clone());
            partitions.push(default.name.clone());
            keys.push(key.clone());
        }
    }
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    // query_to_xml runs the one dynamic max() per table inside this single statement.
    let rows = client
        .query(
            "SELECT d.parent, d.partition,
                    (xpath('/row/newest/text()',
                           query_to_xml(format('SELECT max(%I)::text AS newest FROM ONLY %s', d.key, d.partition::regclass),
                                        false, true, '')))[1]::text
               FROM unnest($1::text[], $2::text[], $3::text[]) AS d(parent, partition, key)
              ORDER BY 1",
            &[&parents, &partitions, &keys],
        )
        .await
        .context("reading the newest rows of default partitions")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                DefaultRows {
                    partition: r.get(1),
                    newest: r.get(2),
                },
            )
        })
        .collect())
}
