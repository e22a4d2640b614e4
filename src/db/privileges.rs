//! Rights: what a table owner's retention needs, and a missing privilege told as the GRANT
//! that gives it, naming the step that needed it (docs/privileges.md).
//!
//! - [`owner_grants`] is the one list of what a managed table's owner needs to run its
//!   retention (`run` acts as the owner, the pg_cron job runs as it): apply grants exactly
//!   this list (templates/privileges.sql.j2 renders it), and `run` checks it before it
//!   changes anything ([`missing_grants`], for all its tables at once), so a missing grant
//!   fails a table before any partition or row is touched.
//! - A read-only command (plan, status, run --dry-run) that is refused is explained by
//!   [`read_failure`]: the object PostgreSQL named ("permission denied for table run_log")
//!   is looked up in the catalog and named in full, as the GRANT its role lacks.
//! - [`connect_denied`]: a role without CONNECT on the database; [`APPLY_NEEDS`]: apply.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

use crate::catalog::PolicyTable;
use crate::model::{Config, Policy};
use crate::policy::error::escape_controls;
use crate::policy::ident::quote_ident;

/// Where the privileges of each role are described.
pub const SEE_DOCS: &str = "see docs/privileges.md";

/// What apply needs, told when a statement of an apply is refused.
pub const APPLY_NEEDS: &str = "apply needs a superuser (see docs/privileges.md)";

/// The kind of object a privilege is on, as GRANT spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ObjectKind {
    /// The database the policies are applied in.
    Database,
    Schema,
    Table,
    Sequence,
    Function,
    Procedure,
}

impl ObjectKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Database => "DATABASE",
            ObjectKind::Schema => "SCHEMA",
            ObjectKind::Table => "TABLE",
            ObjectKind::Sequence => "SEQUENCE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Procedure => "PROCEDURE",
        }
    }
}

/// The part of a table's retention that needs a privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// pg_partman's maintenance of the partition set (`maintain`).
    Maintenance,
    /// The delete rules (the prune procedure).
    Deletes,
    /// Both.
    Every,
    /// The pg_cron job, which logs in as the owner (`run` sets its role instead).
    Job,
}

impl Step {
    pub fn covers(self, step: Step) -> bool {
        self == step || (self == Step::Every && step != Step::Job)
    }
}

/// One privilege a table's owner needs to run the table's retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerGrant {
    /// As GRANT lists them: `SELECT, INSERT, UPDATE`.
    pub privileges: &'static str,
    pub kind: ObjectKind,
    pub schema: String,
    /// The object's name; empty for a schema or the database.
    pub name: String,
    /// A routine's argument types, as `pg_catalog.oidvectortypes` writes them.
    pub args: Option<&'static str>,
    pub step: Step,
    /// Granted only once the object exists: the prune procedure is made by its own
    /// statement, which may come later in the same apply.
    pub if_exists: bool,
    /// Why, in a few words (a comment in the generated SQL, and in run's message).
    pub why: &'static str,
}

const DELETE_IN_BATCHES_ARGS: &str =
    "regclass, text, text, text, timestamp with time zone, integer, bigint";

/// What the owner of `policy`'s table needs for its retention, in the order apply grants it.
pub fn owner_grants(config: &Config, policy: &Policy) -> Vec<OwnerGrant> {
    owner_grants_for(config, &PolicyTable::of(policy))
}

/// [`owner_grants`] for a table described as the catalog reads it.
pub fn owner_grants_for(config: &Config, table: &PolicyTable) -> Vec<OwnerGrant> {
    let schema = config.schema.as_str();
    let partman = config.partman_schema.as_str();
    let table_schema = table
        .name
        .split_once('.')
        .map(|(schema, _)| schema)
        .unwrap_or_default();
    let grant = |privileges, kind, on: &str, name: &str, step, why| OwnerGrant {
        privileges,
        kind,
        schema: on.to_string(),
        name: name.to_string(),
        args: None,
        step,
        if_exists: false,
        why,
    };
    let mut grants = vec![
        grant(
            "USAGE",
            ObjectKind::Schema,
            schema,
            "",
            Step::Every,
            "retentionc's schema",
        ),
        grant(
            "SELECT, INSERT, UPDATE",
            ObjectKind::Table,
            schema,
            "run_log",
            Step::Every,
            "a run_log row per step, updated as it goes",
        ),
        grant(
            "USAGE",
            ObjectKind::Sequence,
            schema,
            "run_log_id_seq",
            Step::Every,
            "run_log's ids",
        ),
    ];
    if table.partitioned {
        grants.push(OwnerGrant {
            args: Some("text, text"),
            ..grant(
                "EXECUTE",
                ObjectKind::Function,
                schema,
                "maintain",
                Step::Maintenance,
                "pg_partman's maintenance of this set",
            )
        });
        grants.push(OwnerGrant {
            args: Some("text[], text[]"),
            ..grant(
                "EXECUTE",
                ObjectKind::Procedure,
                schema,
                "maintain_tables",
                Step::Maintenance,
                "run maintains its tables in one call, with the rights its role has through the owners",
            )
        });
        grants.extend([
            grant(
                "USAGE",
                ObjectKind::Schema,
                partman,
                "",
                Step::Maintenance,
                "pg_partman's schema",
            ),
            grant(
                "SELECT, UPDATE, DELETE",
                ObjectKind::Table,
                partman,
                "part_config",
                Step::Maintenance,
                "maintenance updates its set's row, and deletes the row of a child it removes",
            ),
            grant(
                "SELECT",
                ObjectKind::Table,
                partman,
                "part_config_sub",
                Step::Maintenance,
                "maintenance reads it for every set",
            ),
            grant(
                "USAGE, CREATE",
                ObjectKind::Schema,
                table_schema,
                "",
                Step::Maintenance,
                "new partitions are made in the table's schema",
            ),
        ]);
        if let Some(archive) = &table.archive_schema {
            grants.push(grant(
                "USAGE, CREATE",
                ObjectKind::Schema,
                archive.as_str(),
                "",
                Step::Maintenance,
                "expired partitions move to the archive schema",
            ));
        }
    } else {
        grants.push(grant(
            "USAGE",
            ObjectKind::Schema,
            table_schema,
            "",
            Step::Deletes,
            "the table's schema",
        ));
    }
    if table.scheduled {
        grants.push(grant(
            "CONNECT",
            ObjectKind::Database,
            "",
            "",
            Step::Job,
            "the pg_cron job logs in as the owner",
        ));
    }
    if let Some(procedure) = &table.procedure {
        grants.extend([
            OwnerGrant {
                args: Some(DELETE_IN_BATCHES_ARGS),
                ..grant(
                    "EXECUTE",
                    ObjectKind::Procedure,
                    schema,
                    "delete_in_batches",
                    Step::Deletes,
                    "the batched DELETEs of every rule",
                )
            },
            OwnerGrant {
                args: Some("oid"),
                ..grant(
                    "EXECUTE",
                    ObjectKind::Function,
                    schema,
                    "lock_holders",
                    Step::Deletes,
                    "who holds a partition it skips",
                )
            },
            OwnerGrant {
                args: Some("boolean"),
                if_exists: true,
                ..grant(
                    "EXECUTE",
                    ObjectKind::Procedure,
                    schema,
                    procedure.as_str(),
                    Step::Deletes,
                    "this table's prune procedure",
                )
            },
        ]);
    }
    grants
}

/// A statement a DBA runs to give a role what it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub step: Step,
    /// `GRANT USAGE, CREATE ON SCHEMA archive TO app_owner`, or `ALTER TABLE ... OWNER TO ...`.
    pub statement: String,
    pub why: &'static str,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.statement, self.why)
    }
}

/// What a table's owner lacks of [`owner_grants`], each as the statement that gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerRights {
    /// The owner, quoted as SQL names it.
    pub owner: String,
    pub missing: Vec<Missing>,
}

/// Objects a grant is on that do not exist (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Count as lacking (plan: apply makes them, and must grant them), except for a
    /// superuser owner.
    Lacking,
    /// Leave out (run: their absence is reported when retention runs).
    LeftOut,
}

/// For every table (that exists), which of [`owner_grants`] its owner lacks for the steps
/// `steps` keeps, and the partitions of the table it does not own: two statements, whatever
/// the number of tables. The catalog is read by name, so this works whatever schemas the
/// session's role may use.
pub async fn missing_grants<C: GenericClient + Sync>(
    client: &C,
    config: &Config,
    tables: &[PolicyTable],
    steps: impl Fn(Step) -> bool,
    absent: Absent,
) -> Result<BTreeMap<String, OwnerRights>, tokio_postgres::Error> {
    let wanted: Vec<(String, OwnerGrant)> = tables
        .iter()
        .flat_map(|table| {
            owner_grants_for(config, table)
                .into_iter()
                .filter(|grant| steps(grant.step))
                .map(|grant| (table.name.clone(), grant))
        })
        .collect();
    let column = |f: &dyn Fn(&OwnerGrant) -> String| -> Vec<String> {
        wanted.iter().map(|(_, g)| f(g)).collect()
    };
    let names: Vec<String> = wanted.iter().map(|(t, _)| t.clone()).collect();
    let kinds = column(&|g| g.kind.keyword().to_string());
    let schemas = column(&|g| g.schema.clone());
    let objects = column(&|g| g.name.clone());
    let args: Vec<Option<String>> = wanted
        .iter()
        .map(|(_, g)| g.args.map(String::from))
        .collect();
    let privileges = column(&|g| g.privileges.to_string());
    let absent_lacks = absent == Absent::Lacking;
    let rows = client
        .query(
            MISSING_GRANTS_SQL,
            &[
                &names,
                &kinds,
                &schemas,
                &objects,
                &args,
                &privileges,
                &absent_lacks,
            ],
        )
        .await?;
    let mut rights: BTreeMap<String, OwnerRights> = BTreeMap::new();
    for row in &rows {
        let entry = rights.entry(row.get(0)).or_default();
        entry.owner = row.get(1);
        let grant = usize::try_from(row.get::<_, i64>(2))
            .ok()
            .and_then(|ord| ord.checked_sub(1))
            .and_then(|i| wanted.get(i))
            .map(|(_, grant)| grant);
        let lacking: Vec<String> = row.get(3);
        if let (Some(grant), false) = (grant, lacking.is_empty()) {
            entry.missing.push(Missing {
                step: grant.step,
                statement: escape_controls(&format!(
                    "GRANT {} ON {} {} TO {}",
                    lacking.join(", "),
                    grant.kind.keyword(),
                    row.get::<_, String>(4),
                    entry.owner
                )),
                why: grant.why,
            });
        }
    }
    let partitioned: Vec<String> = tables
        .iter()
        .filter(|t| t.partitioned)
        .map(|t| t.name.clone())
        .collect();
    if steps(Step::Maintenance) && !partitioned.is_empty() {
        for row in client
            .query(FOREIGN_PARTITIONS_SQL, &[&partitioned])
            .await?
        {
            let entry = rights.entry(row.get(0)).or_default();
            entry.owner = row.get(2);
            entry.missing.push(Missing {
                step: Step::Maintenance,
                statement: escape_controls(&format!(
                    "ALTER TABLE {} OWNER TO {}",
                    row.get::<_, String>(1),
                    row.get::<_, String>(2)
                )),
                why: "maintenance drops, detaches or moves partitions as the table's owner",
            });
        }
    }
    Ok(rights)
}

/// Of `owners` (role names), those this session's role may not act as (`SET ROLE` needs
/// membership): each with this session's role and the owner, both as SQL names them. One
/// statement, whatever the number of owners.
pub async fn refused_owners(
    client: &Client,
    owners: &[String],
) -> Result<BTreeMap<String, (String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.rolname::text, pg_catalog.format('%I', session_user), pg_catalog.format('%I', r.rolname)
               FROM pg_catalog.pg_roles r
              WHERE r.rolname::text = ANY ($1::text[])
                AND NOT pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')",
            &[&owners],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect())
}

/// Why `user` may not act as `owner` (both as SQL names them), the owner of `table`,
/// naming the GRANT that allows it.
pub fn refused_role(user: &str, owner: &str, table: &str) -> String {
    escape_controls(&format!(
        "{user} may not act as {owner}, the owner of {table}: retention runs with the owner's rights; {user} needs: GRANT {owner} TO {user} ({SEE_DOCS})"
    ))
}

/// For each wanted grant (by ordinality), with the owner of its table: the privileges the
/// owner lacks (all of them for an object that does not exist yet, when `$7`), and the
/// object as GRANT names it. Tables that do not exist are left out. Every lookup is one
/// index scan per wanted row, in CTEs computed once: joined instead, the planner (which
/// cannot estimate the arrays) picked nested loops that re-ran them for every table, in
/// time quadratic in the number of tables.
const MISSING_GRANTS_SQL: &str = "
WITH wanted AS MATERIALIZED (
    SELECT w.*,
           (SELECT c.relowner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = pg_catalog.split_part(w.tbl, '.', 1)
               AND c.relname = pg_catalog.split_part(w.tbl, '.', 2)) AS owner
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           WITH ORDINALITY AS w(tbl, kind, schema, name, args, privileges, ord)
), found AS MATERIALIZED (
    SELECT w.*,
           CASE w.kind
             WHEN 'DATABASE' THEN (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
             WHEN 'SCHEMA' THEN (SELECT s.oid FROM pg_catalog.pg_namespace s WHERE s.nspname = w.schema)
             WHEN 'TABLE' THEN (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
                                 WHERE s.nspname = w.schema AND c.relname = w.name)
             WHEN 'SEQUENCE' THEN (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
                                    WHERE s.nspname = w.schema AND c.relname = w.name)
             ELSE (SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace s ON s.oid = p.pronamespace
                    WHERE s.nspname = w.schema AND p.proname = w.name
                      AND pg_catalog.oidvectortypes(p.proargtypes) = w.args)
           END AS oid
      FROM wanted w
     WHERE w.owner IS NOT NULL
)
SELECT f.tbl, pg_catalog.format('%I', r.rolname), f.ord::int8,
       CASE WHEN f.oid IS NULL THEN pg_catalog.string_to_array(f.privileges, ', ')
            ELSE ARRAY(SELECT p FROM unnest(pg_catalog.string_to_array(f.privileges, ', ')) AS p
                        WHERE NOT CASE f.kind
                                    WHEN 'DATABASE' THEN pg_catalog.has_database_privilege(f.owner, f.oid, p)
                                    WHEN 'SCHEMA' THEN pg_catalog.has_schema_privilege(f.owner, f.oid, p)
                                    WHEN 'TABLE' THEN pg_catalog.has_table_privilege(f.owner, f.oid, p)
                                    WHEN 'SEQUENCE' THEN pg_catalog.has_sequence_privilege(f.owner, f.oid, p)
                                    ELSE pg_catalog.has_function_privilege(f.owner, f.oid, p)
                                  END) END,
       CASE f.kind WHEN 'DATABASE' THEN pg_catalog.format('%I', pg_catalog.current_database())
                   WHEN 'SCHEMA' THEN pg_catalog.format('%I', f.schema)
                   ELSE pg_catalog.format('%I.%I', f.schema, f.name) END
         || coalesce('(' || f.args || ')', '')
  FROM found f
  JOIN pg_catalog.pg_roles r ON r.oid = f.owner
 WHERE f.oid IS NOT NULL OR ($7::bool AND NOT r.rolsuper)
 ORDER BY f.tbl, f.ord";

/// Partitions (at any level) of each table that the table's owner does not own: one pass
/// over pg_inherits for all tables (pg_partition_tree per table is slow for thousands).
const FOREIGN_PARTITIONS_SQL: &str = "
WITH RECURSIVE roots AS MATERIALIZED (
    SELECT t.tbl, c.oid, c.relowner
      FROM unnest($1::text[]) AS t(tbl)
      CROSS JOIN LATERAL (
          SELECT c.oid, c.relowner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = pg_catalog.split_part(t.tbl, '.', 1)
             AND c.relname = pg_catalog.split_part(t.tbl, '.', 2)) c
), tree(tbl, owner, relid) AS (
    SELECT r.tbl, r.relowner, i.inhrelid FROM roots r JOIN pg_catalog.pg_inherits i ON i.inhparent = r.oid
    UNION ALL
    SELECT tree.tbl, tree.owner, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.relid
)
SELECT tree.tbl, pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.format('%I', o.rolname)
  FROM tree
  JOIN pg_catalog.pg_class c ON c.oid = tree.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_roles o ON o.oid = tree.owner
 WHERE c.relkind IN ('r', 'p') AND c.relowner <> tree.owner
 ORDER BY 1, 2";

/// The first line of a refused statement's message: PostgreSQL's own (42501), or as
/// pg_partman re-raises it (P0001, with its context folded into the message).
pub fn denial(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    let message = db.message().lines().next().unwrap_or_default();
    let denied = db.code() == &SqlState::INSUFFICIENT_PRIVILEGE
        || (db.code() == &SqlState::RAISE_EXCEPTION
            && message.starts_with("permission denied for "));
    denied.then_some(message)
}

/// The object a "permission denied for <kind> <name>" message names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denied<'m> {
    kind: DeniedKind,
    name: &'m str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeniedKind {
    Schema,
    Relation,
    Sequence,
    Routine,
    Database,
}

fn denied_object(message: &str) -> Option<Denied<'_>> {
    let rest = message.strip_prefix("permission denied for ")?;
    let (kind, name) = rest.split_once(' ')?;
    let kind = match kind {
        "schema" => DeniedKind::Schema,
        "table" | "relation" | "view" | "materialized" => DeniedKind::Relation,
        "sequence" => DeniedKind::Sequence,
        "function" | "procedure" | "routine" => DeniedKind::Routine,
        "database" => DeniedKind::Database,
        _ => return None,
    };
    // "materialized view x": the name is the last word.
    let name = if kind == DeniedKind::Relation && rest.starts_with("materialized view ") {
        &rest["materialized view ".len()..]
    } else {
        name
    };
    let name = name.trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    Some(Denied { kind, name })
}

/// A read-only command's error; when it is a missing privilege, rewritten as one line:
/// the step that was refused, the server's message and the GRANT the role lacks, looked
/// up in the catalog (the session must be usable: outside a failed transaction).
pub async fn read_failure(client: &Client, error: anyhow::Error) -> anyhow::Error {
    match explain_read_failure(client, &error).await {
        Some(text) => anyhow::anyhow!(text),
        None => error,
    }
}

/// [`read_failure`]'s text, for callers that report errors themselves.
pub async fn explain_read_failure(client: &Client, error: &anyhow::Error) -> Option<String> {
    let (steps, db_error) = split_chain(error)?;
    let message = denial(db_error)?;
    let code = db_error.code().map(|c| c.code()).unwrap_or_default();
    let needs = match read_grant(client, message).await {
        Some((role, grant)) => format!("{role} needs: {grant} ({SEE_DOCS})"),
        None => SEE_DOCS.to_string(),
    };
    let steps = if steps.is_empty() {
        String::new()
    } else {
        format!("{}: ", steps.join(": "))
    };
    Some(escape_controls(&format!(
        "{steps}{message} (SQLSTATE {code}); {needs}"
    )))
}

/// An apply's error; when it is a missing privilege, rewritten as one line: the step that
/// was refused, the server's message, and what apply needs.
pub fn apply_failure(error: anyhow::Error) -> anyhow::Error {
    let Some((steps, db_error)) = split_chain(&error) else {
        return error;
    };
    let Some(message) = denial(db_error) else {
        return error;
    };
    let code = db_error.code().map(|c| c.code()).unwrap_or_default();
    let steps = if steps.is_empty() {
        String::new()
    } else {
        format!("{}: ", steps.join(": "))
    };
    anyhow::anyhow!(escape_controls(&format!(
        "{steps}{message} (SQLSTATE {code}); {APPLY_NEEDS}; nothing was changed"
    )))
}

/// The contexts an error was given (the steps, outermost first) and the database error
/// under them.
fn split_chain(error: &anyhow::Error) -> Option<(Vec<String>, &tokio_postgres::Error)> {
    let mut steps = Vec::new();
    for cause in error.chain() {
        if let Some(db_error) = cause.downcast_ref::<tokio_postgres::Error>() {
            return Some((steps, db_error));
        }
        steps.push(cause.to_string());
    }
    None
}

/// The session role and the GRANT of the read privilege `message` says it lacks, the
/// object named in full (schema-qualified, a routine with its argument types).
async fn read_grant(client: &Client, message: &str) -> Option<(String, String)> {
    let denied = denied_object(message)?;
    let (keyword, privilege, sql) = match denied.kind {
        DeniedKind::Schema => (
            "SCHEMA",
            "USAGE",
            "SELECT pg_catalog.format('%I', $1::text)",
        ),
        DeniedKind::Database => (
            "DATABASE",
            "CONNECT",
            "SELECT pg_catalog.format('%I', $1::text)",
        ),
        DeniedKind::Relation | DeniedKind::Sequence => (
            if denied.kind == DeniedKind::Sequence {
                "SEQUENCE"
            } else {
                "TABLE"
            },
            "SELECT",
            // The relation of that name the role may not read (the message names no schema).
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relname = $1
              ORDER BY pg_catalog.has_table_privilege(c.oid, 'SELECT'), n.nspname LIMIT 1",
        ),
        DeniedKind::Routine => (
            "",
            "EXECUTE",
            "SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END
                    || pg_catalog.format('%I.%I', n.nspname, p.proname)
                    || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')'
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE p.proname = $1
              ORDER BY pg_catalog.has_function_privilege(p.oid, 'EXECUTE'), n.nspname LIMIT 1",
        ),
    };
    let object: String = client.query_opt(sql, &[&denied.name]).await.ok()??.get(0);
    let role: String = client
        .query_one("SELECT pg_catalog.format('%I', current_user)", &[])
        .await
        .ok()?
        .get(0);
    let on = if keyword.is_empty() {
        object
    } else {
        format!("{keyword} {object}")
    };
    Some((role.clone(), format!("GRANT {privilege} ON {on} TO {role}")))
}

/// A connection refused for want of CONNECT on the database, in one line naming the GRANT.
pub fn connect_denied(e: &tokio_postgres::Error, user: &str, dbname: &str) -> Option<String> {
    let db = e.as_db_error()?;
    if db.code() != &SqlState::INSUFFICIENT_PRIVILEGE {
        return None;
    }
    denied_object(db.message()).filter(|d| d.kind == DeniedKind::Database)?;
    let user = display_ident(user);
    Some(format!(
        "permission denied for database {} (SQLSTATE 42501); {user} needs: GRANT CONNECT ON DATABASE {} TO {user} ({SEE_DOCS})",
        display_ident(dbname),
        display_ident(dbname)
    ))
}

/// A name as a DBA would type it: bare when plain, else quoted, with control characters
/// escaped (a name from the environment is shown, never its raw bytes).
pub fn display_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote_ident(&escape_controls(name))
    }
}

/// The GRANT that gives `role` what a "permission denied for ..." `message` lacks, from
/// the message alone (the name as the server gave it), for a denial inside code retention
/// runs (a trigger, a function a condition calls): the privilege asked for is the usual
/// one of its kind.
pub fn grant_for(message: &str, role: &str) -> Option<String> {
    let denied = denied_object(message.lines().next()?)?;
    let role = display_ident(role);
    let name = denied.name;
    Some(match denied.kind {
        DeniedKind::Schema => format!("GRANT USAGE ON SCHEMA {} TO {role}", display_ident(name)),
        DeniedKind::Routine => format!("GRANT EXECUTE ON FUNCTION {name} TO {role}"),
        DeniedKind::Relation => format!("GRANT SELECT ON TABLE {name} TO {role}"),
        DeniedKind::Sequence => format!("GRANT USAGE ON SEQUENCE {name} TO {role}"),
        DeniedKind::Database => {
            format!(
                "GRANT CONNECT ON DATABASE {} TO {role}",
                display_ident(name)
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_objects_are_read_from_the_message() {
        assert_eq!(
            denied_object("permission denied for table run_log"),
            Some(Denied {
                kind: DeniedKind::Relation,
                name: "run_log"
            })
        );
        assert_eq!(
            denied_object("permission denied for database \"app\""),
            Some(Denied {
                kind: DeniedKind::Database,
                name: "app"
            })
        );
        assert_eq!(
            denied_object("permission denied for materialized view mv"),
            Some(Denied {
                kind: DeniedKind::Relation,
                name: "mv"
            })
        );
        assert_eq!(denied_object("division by zero"), None);
    }

    #[test]
    fn each_kind_of_denial_names_its_grant() {
        assert_eq!(
            grant_for("permission denied for schema partman", "app_owner").as_deref(),
            Some("GRANT USAGE ON SCHEMA partman TO app_owner")
        );
        assert_eq!(
            grant_for("permission denied for function f\nCONTEXT: x", "App").as_deref(),
            Some("GRANT EXECUTE ON FUNCTION f TO \"App\"")
        );
        assert_eq!(
            grant_for("permission denied for database \"app\"", "r").as_deref(),
            Some("GRANT CONNECT ON DATABASE app TO r")
        );
        assert_eq!(grant_for("division by zero", "r"), None);
    }

    #[test]
    fn names_from_outside_are_shown_quoted_and_without_control_bytes() {
        assert_eq!(display_ident("app_owner"), "app_owner");
        assert_eq!(display_ident("App"), "\"App\"");
        assert_eq!(display_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(display_ident("a\u{1b}[31mb"), "\"a\\u{1b}[31mb\"");
    }
}
