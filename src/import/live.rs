//! What import reads from the live database: the pg_partman installation, and every
//! `part_config` row with the few catalog facts needed to describe its table.
//!
//! pg_partman 4.7 and 5.x have different `part_config` columns, so each row is read
//! whole as JSON (`to_jsonb(part_config.*)`): one query serves both majors, and a column
//! that one version lacks is simply absent.

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use tokio_postgres::Client;

use crate::policy::ident::{Ident, quote_ident};

/// The installed pg_partman.
#[derive(Debug, Clone)]
pub struct PartmanInstall {
    pub version: String,
    pub schema: String,
}

impl PartmanInstall {
    /// 4 or 5 (the first number of the version).
    pub fn major(&self) -> Option<u8> {
        self.version.split('.').next()?.parse().ok()
    }
}

/// One table registered with pg_partman.
#[derive(Debug, Clone)]
pub struct LiveTable {
    /// `part_config.parent_table`, as pg_partman stores it (`schema.table`).
    pub parent_table: String,
    /// Every `part_config` column of the row, whatever the pg_partman version.
    pub config: Map<String, Value>,
    /// `pg_partitioned_table.partstrat` (`r`, `l`, `h`); None when the table is not
    /// natively partitioned (pg_partman 4's trigger-based sets) or no longer exists.
    pub strategy: Option<String>,
    /// Whether the table has a default partition (from the catalog: pg_partman 5.2 does not
    /// record it in `part_config`).
    pub has_default_partition: bool,
    /// `format_type` of the control column, None when it does not exist.
    pub control_type: Option<String>,
    /// Whether `part_config_sub` holds a sub-partitioning set-up for this table.
    pub sub_partitioned: bool,
    /// The registered table this one is a partition of (a sub-partition set), if any.
    pub partition_of: Option<String>,
}

impl LiveTable {
    pub fn text(&self, column: &str) -> Option<&str> {
        self.config.get(column).and_then(Value::as_str)
    }

    pub fn boolean(&self, column: &str) -> Option<bool> {
        self.config.get(column).and_then(Value::as_bool)
    }

    pub fn integer(&self, column: &str) -> Option<i64> {
        self.config.get(column).and_then(Value::as_i64)
    }

    /// A column's value as JSON text, for notes (`["region"]`, `false`, `"off"`).
    pub fn shown(&self, column: &str) -> String {
        self.config
            .get(column)
            .map(Value::to_string)
            .unwrap_or_else(|| "null".into())
    }

    /// Whether the row has this column and it is not NULL.
    pub fn is_set(&self, column: &str) -> bool {
        self.config.get(column).is_some_and(|v| !v.is_null())
    }
}

/// The pg_partman extension of the database, if any.
pub async fn read_install(client: &Client) -> Result<Option<PartmanInstall>> {
    let row = client
        .query_opt(
            "SELECT extversion, extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_partman'",
            &[],
        )
        .await
        .context("reading the pg_partman extension")?;
    Ok(row.map(|r| PartmanInstall {
        version: r.get(0),
        schema: r.get(1),
    }))
}

/// Every `part_config` row, ordered by table, in one query.
pub async fn read_part_config(client: &Client, partman_schema: &Ident) -> Result<Vec<LiveTable>> {
    let schema = quote_ident(partman_schema.as_str());
    let query = format!(
        "SELECT pc.parent_table,
                to_jsonb(pc.*) AS config,
                pt.partstrat::text AS strategy,
                COALESCE(pt.partdefid <> 0, false) AS has_default_partition,
                (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = to_regclass(pc.parent_table) AND a.attname = pc.control
                    AND a.attnum > 0 AND NOT a.attisdropped) AS control_type,
                EXISTS (SELECT 1 FROM {schema}.part_config_sub s WHERE s.sub_parent = pc.parent_table) AS sub_partitioned,
                (SELECT up.parent_table FROM pg_catalog.pg_inherits i
                   JOIN {schema}.part_config up ON to_regclass(up.parent_table) = i.inhparent
                  WHERE i.inhrelid = to_regclass(pc.parent_table) LIMIT 1) AS partition_of
           FROM {schema}.part_config pc
           LEFT JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = to_regclass(pc.parent_table)
          ORDER BY pc.parent_table"
    );
    let rows = client
        .query(&query, &[])
        .await
        .context("reading pg_partman's part_config")?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let config: Value = r.get("config");
            LiveTable {
                parent_table: r.get("parent_table"),
                config: match config {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                strategy: r.get("strategy"),
                has_default_partition: r.get("has_default_partition"),
                control_type: r.get("control_type"),
                sub_partitioned: r.get("sub_partitioned"),
                partition_of: r.get("partition_of"),
            }
        })
        .collect())
}
