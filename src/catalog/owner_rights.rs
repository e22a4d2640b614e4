//! What each policy table's owner may not do yet of what running its retention needs:
//! the rights the policy's `[privileges]` statement grants, read with `has_*_privilege`
//! (a superuser owner has them all). One statement for every table.

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use super::{Counting, PolicyTable};
use crate::model::Config;

/// A policy table's owner and the grants it lacks, each as the privilege and object the
/// `[privileges]` statement names (`USAGE ON SCHEMA retention`), plus partitions owned by
/// another role (`OWNER OF 3 partitions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OwnerRights {
    pub owner: String,
    pub missing: Vec<String>,
}

/// The rights, as (what the `[privileges]` statement grants, for which tables, the SQL
/// test of whether the owner `o` already has it). `s` is retentionc's schema, `pm`
/// pg_partman's, `t` the table's row; an object that does not exist yet (made by the
/// same apply) counts as missing, except for a superuser.
const RIGHTS: &str = "
    ('USAGE ON SCHEMA ' || quote_ident($2::text), 'all',
        coalesce(has_schema_privilege(o.oid, to_regnamespace($2::text), 'USAGE'), o.rolsuper)),
    ('SELECT, INSERT, UPDATE ON ' || quote_ident($2::text) || '.run_log', 'all',
        coalesce(has_table_privilege(o.oid, to_regclass(format('%I.run_log', $2::text)), 'SELECT')
             AND has_table_privilege(o.oid, to_regclass(format('%I.run_log', $2::text)), 'INSERT')
             AND has_table_privilege(o.oid, to_regclass(format('%I.run_log', $2::text)), 'UPDATE'), o.rolsuper)),
    ('USAGE ON SEQUENCE ' || quote_ident($2::text) || '.run_log_id_seq', 'all',
        coalesce(has_sequence_privilege(o.oid, to_regclass(format('%I.run_log_id_seq', $2::text)), 'USAGE'), o.rolsuper)),
    ('EXECUTE ON FUNCTION ' || quote_ident($2::text) || '.maintain(text, text)', 'partitioned',
        coalesce(has_function_privilege(o.oid, to_regprocedure(format('%I.maintain(text, text)', $2::text)), 'EXECUTE'), o.rolsuper)),
    ('USAGE ON SCHEMA ' || quote_ident($3::text), 'partitioned',
        coalesce(has_schema_privilege(o.oid, to_regnamespace($3::text), 'USAGE'), o.rolsuper)),
    ('SELECT, UPDATE, DELETE ON ' || quote_ident($3::text) || '.part_config, ' || quote_ident($3::text) || '.part_config_sub', 'partitioned',
        coalesce((SELECT bool_and(has_table_privilege(o.oid, to_regclass(format('%I.%I', $3::text, r)), p))
                    FROM unnest(ARRAY['part_config', 'part_config_sub']) AS r,
                         unnest(ARRAY['SELECT', 'UPDATE', 'DELETE']) AS p), o.rolsuper)),
    ('USAGE, CREATE ON SCHEMA ' || quote_ident(t.schema_name), 'partitioned',
        has_schema_privilege(o.oid, t.schema_oid, 'USAGE') AND has_schema_privilege(o.oid, t.schema_oid, 'CREATE')),
    ('USAGE, CREATE ON SCHEMA ' || quote_ident(coalesce(t.archive, '')), 'archive',
        CASE WHEN t.archive IS NULL THEN true
             ELSE coalesce(has_schema_privilege(o.oid, to_regnamespace(t.archive), 'USAGE')
                       AND has_schema_privilege(o.oid, to_regnamespace(t.archive), 'CREATE'), o.rolsuper) END),
    ('OWNER OF ' || t.foreign_children || ' partition(s) owned by other roles', 'partitioned',
        t.foreign_children = 0),
    ('EXECUTE ON PROCEDURE ' || quote_ident($2::text) || '.delete_in_batches(...), ' || quote_ident($2::text) || '.lock_holders(oid)', 'procedure',
        coalesce(has_function_privilege(o.oid, to_regprocedure(format('%I.delete_in_batches(regclass, text, text, text, timestamptz, integer, bigint)', $2::text)), 'EXECUTE')
             AND has_function_privilege(o.oid, to_regprocedure(format('%I.lock_holders(oid)', $2::text)), 'EXECUTE'), o.rolsuper)),
    ('EXECUTE ON PROCEDURE ' || quote_ident($2::text) || '.' || quote_ident(coalesce(t.procedure, '')) || '(boolean)', 'procedure',
        CASE WHEN t.procedure IS NULL THEN true
             ELSE coalesce(has_function_privilege(o.oid, to_regprocedure(format('%I.%I(boolean)', $2::text, t.procedure)), 'EXECUTE'), true) END)
";

/// The owner and missing rights of every policy table that exists, in one statement.
pub async fn read<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    config: &Config,
    tables: &[PolicyTable],
) -> Result<Vec<(String, OwnerRights)>> {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let archives: Vec<Option<&str>> = tables.iter().map(|t| t.archive_schema.as_deref()).collect();
    let procedures: Vec<Option<&str>> = tables.iter().map(|t| t.procedure.as_deref()).collect();
    let partitioned: Vec<bool> = tables.iter().map(|t| t.partitioned).collect();
    let sql = format!(
        "WITH RECURSIVE w AS (
             SELECT w.name, w.archive, w.procedure, w.partitioned, c.oid, c.relowner,
                    n.nspname::text AS schema_name, n.oid AS schema_oid
               FROM unnest($1::text[], $4::text[], $5::text[], $6::bool[]) AS w(name, archive, procedure, partitioned)
               JOIN pg_class c ON c.oid = to_regclass(w.name)
               JOIN pg_namespace n ON n.oid = c.relnamespace),
         tree(root, relid) AS (
             SELECT w.oid, i.inhrelid FROM w JOIN pg_inherits i ON i.inhparent = w.oid
             UNION ALL
             SELECT tree.root, i.inhrelid FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid),
         foreign_children AS (
             SELECT tree.root, count(*) AS n
               FROM tree JOIN pg_class cc ON cc.oid = tree.relid JOIN w ON w.oid = tree.root
              WHERE cc.relkind IN ('r', 'p') AND cc.relowner <> w.relowner
              GROUP BY tree.root),
         t AS (
             SELECT w.*, coalesce(f.n, 0) AS foreign_children
               FROM w LEFT JOIN foreign_children f ON f.root = w.oid)
         SELECT t.name, o.rolname::text,
                ARRAY(SELECT r.grant_text FROM (VALUES {RIGHTS}) AS r(grant_text, needed_by, held)
                       WHERE NOT r.held
                         AND (r.needed_by = 'all'
                              OR (r.needed_by = 'partitioned' AND t.partitioned)
                              OR (r.needed_by = 'archive' AND t.partitioned AND t.archive IS NOT NULL)
                              OR (r.needed_by = 'procedure' AND t.procedure IS NOT NULL)))
           FROM t JOIN pg_roles o ON o.oid = t.relowner
          ORDER BY t.name"
    );
    let schema = config.schema.as_str();
    let partman = config.partman_schema.as_str();
    let rows = client
        .query(
            &sql,
            &[
                &names,
                &schema,
                &partman,
                &archives,
                &procedures,
                &partitioned,
            ],
        )
        .await
        .context("reading the rights of the tables' owners")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                OwnerRights {
                    owner: r.get(1),
                    missing: r.get(2),
                },
            )
        })
        .collect())
}
