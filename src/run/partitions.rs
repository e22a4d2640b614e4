//! Reading a partition set as pg_partman sees it: its `part_config` row and its children
//! with their bounds, from pg_partman's own `show_partitions` and `show_partition_info`
//! (both majors have them; both read the bounds from the catalog, never from names).
//! Used by `run --dry-run` and by `status`; nothing here writes.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::model::Ident;
use crate::policy::ident::quote_ident;

/// The `part_config` settings that decide what maintenance does.
#[derive(Debug, Clone)]
pub struct PartConfig {
    pub partition_interval: String,
    pub retention: Option<String>,
    pub retention_keep_table: bool,
    pub retention_schema: Option<String>,
    pub premake: i32,
    pub epoch: String,
}

impl PartConfig {
    /// What maintenance does with an expired child, by pg_partman's own rules.
    pub fn expired_action(&self) -> &'static str {
        match (&self.retention_schema, self.retention_keep_table) {
            (Some(_), _) => "move",
            (None, true) => "detach",
            (None, false) => "drop",
        }
    }
}

/// One child of the set, with its bounds `[start, end)`.
#[derive(Debug, Clone)]
pub struct Child {
    pub schema: String,
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `pg_class.reltuples`; `None` when the table was never analyzed.
    pub estimated_rows: Option<f64>,
    /// What pg_partman's retention would do with it now: `start + partition_interval <
    /// now() - retention` (drop_partition_time.sql, the same in 4.7.2 and 5.x).
    pub expired: bool,
    /// The child holds times after now (a premade partition).
    pub ahead: bool,
}

impl Child {
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

pub async fn part_config(
    client: &Client,
    partman: &Ident,
    table: &str,
) -> Result<Option<PartConfig>> {
    let sql = format!(
        "SELECT partition_interval, retention, coalesce(retention_keep_table, true), retention_schema, premake, epoch \
         FROM {}.part_config WHERE parent_table = $1",
        quote_ident(partman.as_str())
    );
    let row = client
        .query_opt(&sql, &[&table])
        .await
        .with_context(|| format!("reading {partman}.part_config"))?;
    Ok(row.map(|r| PartConfig {
        partition_interval: r.get(0),
        retention: r.get(1),
        retention_keep_table: r.get(2),
        retention_schema: r.get(3),
        premake: r.get(4),
        epoch: r.get(5),
    }))
}

/// The children of `table` (not the default partition), oldest first.
pub async fn children(
    client: &Client,
    partman: &Ident,
    table: &str,
    config: &PartConfig,
) -> Result<Vec<Child>> {
    let partman = quote_ident(partman.as_str());
    let sql = format!(
        "SELECT p.partition_schemaname, p.partition_tablename, i.child_start_time, i.child_end_time, \
                CASE WHEN c.reltuples >= 0 THEN c.reltuples::float8 END, \
                coalesce(i.child_start_time + $2::text::interval < now() - $3::text::interval, false), \
                i.child_end_time > now() \
           FROM {partman}.show_partitions($1::text, 'ASC') p \
          CROSS JOIN LATERAL {partman}.show_partition_info(p.partition_schemaname || '.' || p.partition_tablename, $2::text, $1::text) i \
           JOIN pg_catalog.pg_namespace n ON n.nspname = p.partition_schemaname \
           JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.partition_tablename \
          ORDER BY i.child_start_time"
    );
    let rows = client
        .query(
            &sql,
            &[&table, &config.partition_interval, &config.retention],
        )
        .await
        .with_context(|| format!("listing the partitions of {table}"))?;
    let mut children: Vec<Child> = rows
        .iter()
        .map(|r| Child {
            schema: r.get(0),
            name: r.get(1),
            start: r.get(2),
            end: r.get(3),
            estimated_rows: r.get(4),
            expired: r.get(5),
            ahead: r.get(6),
        })
        .collect();
    // pg_partman never drops the last child of a set, even when it is expired.
    if !children.is_empty() && children.iter().all(|c| c.expired) {
        children.last_mut().expect("not empty").expired = false;
    }
    Ok(children)
}

/// The default partition of `table`, found by its bound (`DEFAULT`), not its name.
pub async fn default_partition(client: &Client, table: &str) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "SELECT format('%I.%I', n.nspname, c.relname) \
               FROM pg_catalog.pg_inherits i \
               JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE i.inhparent = $1::text::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
            &[&table],
        )
        .await
        .with_context(|| format!("looking for the default partition of {table}"))?;
    Ok(row.map(|r| r.get(0)))
}
