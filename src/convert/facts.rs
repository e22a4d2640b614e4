//! What plan knows about a plain table a policy wants partitioned: what stops it from being
//! converted (the same checks the conversion runs before it changes anything), how big it
//! is, which unique keys gain the partition column, whether the fill can go oldest first
//! (the same query the conversion runs), and how far a conversion got.

use std::collections::BTreeMap;

use anyhow::Result;
use tokio_postgres::GenericClient;

use crate::catalog::{Counting, Live};
use crate::convert::names::ConversionNames;
use crate::model::Project;
use crate::policy::ident::quote_ident;
use crate::render::Renderer;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversionFacts {
    /// Why the table cannot be converted safely; empty when it can.
    pub problems: Vec<String>,
    /// pg_total_relation_size: heap, indexes and TOAST.
    pub bytes: i64,
    /// pg_class.reltuples (statistics; -1 when never analysed) and relpages.
    pub estimated_rows: f64,
    pub pages: i64,
    /// Primary key and unique constraints or indexes that lack the partition column, as
    /// (name, columns now): the partitioned table's have the column added.
    pub keys_extended: Vec<(String, Vec<String>)>,
    /// The index on the partition column the fill walks to copy rows oldest first; None:
    /// the fill goes in heap order.
    pub time_index: Option<String>,
    /// A conversion already under way, if any.
    pub progress: Option<Progress>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: String,
    /// `time` (oldest first) or `heap`, once the fill started.
    pub fill_order: String,
    /// Where the fill stands (`page 120 of 4000`, `created_at up to ...`), once it started.
    pub progress: Option<String>,
    /// The share of the fill done, 0 to 1.
    pub progress_share: f64,
    pub rows_copied: i64,
}

/// Facts about each plain table that a policy with `partitioning` names, by `schema.table`.
/// A few queries per such table; none when there is none.
pub async fn read<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    project: &Project,
    live: &Live,
) -> Result<BTreeMap<String, ConversionFacts>> {
    let mut facts = BTreeMap::new();
    let plain: Vec<_> = project
        .policies
        .iter()
        .filter(|p| p.partitioning.is_some())
        .filter(|p| {
            live.tables
                .get(&p.table.to_string())
                .is_some_and(|t| t.relkind == "r")
        })
        .collect();
    if plain.is_empty() {
        return Ok(facts);
    }
    let schema = project.config.schema.as_str();
    let state_table = format!("{}.\"conversions\"", quote_ident(schema));
    let has_state: bool = client
        .query(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
            &[&state_table],
        )
        .await?[0]
        .get(0);
    let renderer = Renderer::new();
    let checks = renderer.conversion_checks(&project.config);
    let time_index = renderer.conversion_time_index(&project.config);
    for policy in plain {
        let table = policy.table.to_string();
        let column = policy
            .partitioning
            .as_ref()
            .expect("filtered")
            .column
            .to_string();
        let progress = if has_state {
            client
                .query(
                    &format!(
                        "SELECT phase, fill_order, progress, progress_share, rows_copied
                           FROM {state_table} WHERE table_name = $1"
                    ),
                    &[&table],
                )
                .await?
                .first()
                .map(|r| Progress {
                    phase: r.get(0),
                    fill_order: r.get(1),
                    progress: r.get(2),
                    progress_share: r.get(3),
                    rows_copied: r.get(4),
                })
                .filter(|p| matches!(p.phase.as_str(), "prepared" | "filling"))
        } else {
            None
        };
        // Once started, the conversion's own names exist: they are its, not in the way.
        let names = ConversionNames::of(&policy.table);
        let (twin, retired) = match progress {
            Some(_) => (None, None),
            None => (
                Some(names.twin.to_string()),
                Some(names.retired.to_string()),
            ),
        };
        let problems = client
            .query(&checks, &[&table, &column, &twin, &retired])
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        let time_index = client
            .query(&time_index, &[&table, &column])
            .await?
            .first()
            .map(|r| r.get::<_, String>(0));
        let size = client
            .query(
                "SELECT pg_catalog.pg_total_relation_size(c.oid), c.reltuples::float8, c.relpages::int8
                   FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
                &[&table],
            )
            .await?;
        let keys = client
            .query(
                "SELECT ic.relname::text,
                        ARRAY(SELECT a.attname::text
                                FROM pg_catalog.unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, n)
                                JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                               ORDER BY k.n)
                   FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                  WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique
                  ORDER BY i.indisprimary DESC, ic.relname",
                &[&table],
            )
            .await?;
        let mut fact = ConversionFacts {
            problems,
            progress,
            time_index,
            keys_extended: keys
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<String>>(1)))
                .filter(|(_, columns)| !columns.contains(&column))
                .collect(),
            ..ConversionFacts::default()
        };
        if let Some(row) = size.first() {
            fact.bytes = row.get(0);
            fact.estimated_rows = row.get(1);
            fact.pages = row.get(2);
        }
        facts.insert(table, fact);
    }
    Ok(facts)
}
