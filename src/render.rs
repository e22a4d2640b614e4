//! Model -> SQL text, through the minijinja templates in templates/.
//!
//! Every statement retentionc ever sends to change the database comes from here, one
//! template per statement, grouped into the files `compile` writes under generated/. Each
//! statement has a stable key within its file, so a plan names statements as (file, key)
//! and apply looks them up, byte for byte, in the reviewed files. Facts the planner needs
//! (procedure bodies, settings, the schedule's command) are returned here as values next
//! to the text, never read back out of it.

use std::fmt::Write;

use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::model::{Config, Expired, Policy, QualifiedName};
use crate::policy::ident::{quote_ident, quote_literal};

/// Name of the compiled file holding retentionc's own schema, tables and functions.
pub const BOOTSTRAP_FILE: &str = "_retentionc.sql";

/// Folder (under generated/) of the files that release tables whose policy was removed.
pub const REMOVED_DIR: &str = "_removed";

/// One SQL statement, and what it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// Stable key the plan refers to: `setup`, `retention`, `prune`, `schedule`, ...
    pub key: String,
    /// One line for the section banner in the file.
    pub title: String,
    /// The statement, ending in `;`.
    pub sql: String,
}

/// One file under generated/.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFile {
    /// Path relative to generated/: `public.events.sql`, `_removed/public.events.sql`.
    pub file_name: String,
    pub statements: Vec<Statement>,
    pub text: String,
}

impl CompiledFile {
    pub fn statement(&self, key: &str) -> Option<&Statement> {
        self.statements.iter().find(|s| s.key == key)
    }
}

/// A `part_config` column and the SQL value retentionc sets it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub column: &'static str,
    pub value: SettingValue,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SettingValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
}

impl SettingValue {
    fn sql(&self) -> String {
        match self {
            SettingValue::Null => "NULL".into(),
            SettingValue::Bool(b) => b.to_string(),
            SettingValue::Int(i) => i.to_string(),
            SettingValue::Text(t) => quote_literal(t),
        }
    }
}

fn setting(column: &'static str, value: SettingValue) -> Setting {
    let sql = value.sql();
    Setting { column, value, sql }
}

/// The `part_config` values a policy asks for. Columns that have no effect under the
/// policy are left out and left alone, so that they are never a change: how expired
/// partitions are kept when nothing expires, `retention_keep_index` when expired
/// partitions are dropped, `retention_keep_table` when they are moved to an archive
/// schema (pg_partman moves them whatever it says).
pub fn part_config_settings(policy: &Policy) -> Vec<Setting> {
    let Some(partitioning) = &policy.partitioning else {
        return Vec::new();
    };
    let mut settings = Vec::new();
    match &policy.retention {
        Some(retention) => {
            settings.push(setting(
                "retention",
                SettingValue::Text(retention.keep.to_string()),
            ));
            match &retention.expired {
                Expired::Drop => {
                    settings.push(setting("retention_keep_table", SettingValue::Bool(false)));
                }
                Expired::Detach => {
                    settings.push(setting("retention_keep_table", SettingValue::Bool(true)));
                    settings.push(setting(
                        "retention_keep_index",
                        SettingValue::Bool(retention.keep_index),
                    ));
                }
                Expired::Archive { .. } => settings.push(setting(
                    "retention_keep_index",
                    SettingValue::Bool(retention.keep_index),
                )),
            }
            let schema = match &retention.expired {
                Expired::Archive { schema } => SettingValue::Text(schema.to_string()),
                _ => SettingValue::Null,
            };
            settings.push(setting("retention_schema", schema));
        }
        None => settings.push(setting("retention", SettingValue::Null)),
    }
    settings.push(setting(
        "infinite_time_partitions",
        SettingValue::Bool(partitioning.infinite_time_partitions),
    ));
    settings.push(setting(
        "premake",
        SettingValue::Int(partitioning.premake as i64),
    ));
    settings
}

/// The command a pg_cron job runs: one top-level CALL (or SELECT), since a procedure
/// that commits cannot run inside a multi-statement string.
pub fn schedule_command(config: &Config, policy: &Policy) -> String {
    match (policy.prune_procedure(), &policy.partitioning) {
        (Some(procedure), Some(_)) => format!(
            "CALL {}.{}(p_run_maintenance => true)",
            quote_ident(config.schema.as_str()),
            quote_ident(procedure.as_str())
        ),
        (Some(procedure), None) => {
            format!(
                "CALL {}.{}()",
                quote_ident(config.schema.as_str()),
                quote_ident(procedure.as_str())
            )
        }
        (None, _) => format!(
            "SELECT {}.\"maintain\"({}, {})",
            quote_ident(config.schema.as_str()),
            quote_literal(&policy.table.to_string()),
            quote_literal(policy.time_zone_or_utc())
        ),
    }
}

/// The statement `run` sends for pg_partman maintenance of many tables: one CALL that
/// commits table by table (`$1`: the tables, `$2`: the zone of each).
pub fn maintain_tables_call(config: &Config) -> String {
    format!(
        "CALL {}.\"maintain_tables\"($1::text[], $2::text[])",
        quote_ident(config.schema.as_str())
    )
}

/// The statement `run` sends for a table's delete rules: the prune procedure CALLed alone,
/// so that it can commit between batches.
pub fn prune_call(config: &Config, procedure: &str) -> String {
    format!(
        "CALL {}.{}()",
        quote_ident(config.schema.as_str()),
        quote_ident(procedure)
    )
}

/// A routine of retentionc's own file: its name, `f`unction or `p`rocedure, and its body
/// exactly as `pg_proc.prosrc` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapRoutine {
    pub name: &'static str,
    pub kind: &'static str,
    pub body: String,
}

/// `function` or `procedure`: what the bootstrap routine `name` is, for messages.
pub fn bootstrap_routine_kind(name: &str) -> &'static str {
    match BOOTSTRAP_ROUTINES.iter().find(|(n, _, _)| *n == name) {
        Some((_, "p", _)) => "procedure",
        _ => "function",
    }
}

/// The routines of retentionc's own file and their templates.
const BOOTSTRAP_ROUTINES: [(&str, &str, &str); 6] = [
    ("maintain", "f", "bootstrap_maintain.sql.j2"),
    ("maintain_tables", "p", "bootstrap_maintain_tables.sql.j2"),
    (
        "delete_in_batches",
        "p",
        "bootstrap_delete_in_batches.sql.j2",
    ),
    ("lock_holders", "f", "bootstrap_lock_holders.sql.j2"),
    ("cron_jobs", "f", "bootstrap_cron_jobs.sql.j2"),
    ("read_facts", "f", "bootstrap_read_facts.sql.j2"),
];

pub struct Renderer {
    env: Environment<'static>,
}

macro_rules! templates {
    ($env:expr, $($name:literal),* $(,)?) => {
        $( $env.add_template($name, include_str!(concat!("../templates/", $name)))
              .expect(concat!("template ", $name, " parses")); )*
    };
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("ident", |v: &Value| filter_text(v).map(|t| quote_ident(&t)));
        env.add_filter("literal", |v: &Value| {
            filter_text(v).map(|t| quote_literal(&t))
        });
        templates!(
            env,
            "header.sql.j2",
            "bootstrap_schema.sql.j2",
            "bootstrap_apply_history.sql.j2",
            "bootstrap_run_log.sql.j2",
            "bootstrap_run_log_index.sql.j2",
            "bootstrap_managed_objects.sql.j2",
            "bootstrap_maintain.sql.j2",
            "bootstrap_maintain_tables.sql.j2",
            "bootstrap_delete_in_batches.sql.j2",
            "bootstrap_lock_holders.sql.j2",
            "bootstrap_cron_jobs.sql.j2",
            "bootstrap_read_facts.sql.j2",
            "bootstrap_privileges.sql.j2",
            "setup.sql.j2",
            "adopt.sql.j2",
            "archive_schema.sql.j2",
            "retention.sql.j2",
            "release_retention.sql.j2",
            "record_retention.sql.j2",
            "claim_prune.sql.j2",
            "prune.sql.j2",
            "prune_body.sql.j2",
            "drop_prune.sql.j2",
            "privileges.sql.j2",
            "schedule.sql.j2",
            "unschedule.sql.j2",
            "convert_state.sql.j2",
            "convert_checks.sql.j2",
            "convert_problems.sql.j2",
            "convert_time_index.sql.j2",
            "convert_order.sql.j2",
            "convert_name.sql.j2",
            "convert_triggers.sql.j2",
            "convert_prepare.sql.j2",
            "convert_capture.sql.j2",
            "convert_copy.sql.j2",
            "convert_replay.sql.j2",
            "convert_swap.sql.j2",
            "convert_revert.sql.j2",
            "convert_finish.sql.j2",
            "convert_call.sql.j2",
        );
        Renderer { env }
    }

    /// The same renderer with one template's text replaced: for tests that show a wording
    /// change in a template changes no decision.
    pub fn with_template_source(mut self, name: &'static str, source: String) -> Renderer {
        assert!(
            self.env.get_template(name).is_ok(),
            "no template {name} to replace"
        );
        self.env
            .add_template_owned(name, source)
            .unwrap_or_else(|e| panic!("template {name} does not parse: {e:#}"));
        self
    }

    /// The text of one of the templates as shipped.
    pub fn template_source(&self, name: &str) -> Option<String> {
        self.env
            .get_template(name)
            .ok()
            .map(|t| t.source().to_string())
    }

    /// Renders a template; also returns the text its `{% set body %}` block captured, for
    /// templates of routines (the body is what `pg_proc.prosrc` will hold).
    fn render_with_body(&self, name: &str, ctx: Value) -> (String, Option<String>) {
        let captured = self
            .env
            .get_template(name)
            .and_then(|t| t.render_captured(ctx))
            .unwrap_or_else(|e| panic!("template {name} failed to render: {e:#}"));
        let body = captured
            .state()
            .lookup("body")
            .and_then(|v| v.as_str().map(str::to_string));
        (ending_in_one_newline(captured.into_output()), body)
    }

    fn render(&self, name: &str, ctx: Value) -> String {
        self.render_with_body(name, ctx).0
    }

    fn base_context(config: &Config) -> Value {
        context! {
            schema => config.schema.as_str(),
            partman_schema => config.partman_schema.as_str(),
            partman_major => config.partman_version.number(),
            lock_timeout => format!("{}ms", config.lock_timeout_ms),
        }
    }

    /// generated/_retentionc.sql: the schema, tables and functions every policy uses.
    pub fn bootstrap(&self, config: &Config) -> CompiledFile {
        let ctx = Self::base_context(config);
        let statements = [
            (
                "bootstrap.schema",
                "retentionc's schema",
                "bootstrap_schema.sql.j2",
            ),
            (
                "bootstrap.apply_history",
                "history of every apply",
                "bootstrap_apply_history.sql.j2",
            ),
            (
                "bootstrap.run_log",
                "log of every retention run",
                "bootstrap_run_log.sql.j2",
            ),
            (
                "bootstrap.run_log_index",
                "index for status",
                "bootstrap_run_log_index.sql.j2",
            ),
            (
                "bootstrap.managed_objects",
                "which table each object retentionc made serves",
                "bootstrap_managed_objects.sql.j2",
            ),
            (
                "bootstrap.lock_holders",
                "who holds a lock retentionc could not take (for run_log)",
                "bootstrap_lock_holders.sql.j2",
            ),
            (
                "bootstrap.maintain",
                "pg_partman maintenance of one table, reported from the catalog",
                "bootstrap_maintain.sql.j2",
            ),
            (
                "bootstrap.maintain_tables",
                "pg_partman maintenance of many tables in one call, committed table by table (used by run)",
                "bootstrap_maintain_tables.sql.j2",
            ),
            (
                "bootstrap.delete_in_batches",
                "one delete rule in batches committed one by one (used by every prune procedure)",
                "bootstrap_delete_in_batches.sql.j2",
            ),
            (
                "bootstrap.cron_jobs",
                "retentionc's pg_cron jobs, readable by a plan role",
                "bootstrap_cron_jobs.sql.j2",
            ),
            (
                "bootstrap.read_facts",
                "status's per-table facts in one call, each query's locks released once read",
                "bootstrap_read_facts.sql.j2",
            ),
            (
                "bootstrap.privileges",
                "no routine of retentionc's schema is callable by PUBLIC",
                "bootstrap_privileges.sql.j2",
            ),
        ]
        .into_iter()
        .map(|(key, title, template)| self.statement(key, title, template, &ctx))
        .collect();
        self.file(
            config,
            BOOTSTRAP_FILE.to_string(),
            FileOf::Bootstrap,
            statements,
        )
    }

    /// The routines the bootstrap creates, with their bodies.
    pub fn bootstrap_routines(&self, config: &Config) -> Vec<BootstrapRoutine> {
        let ctx = Self::base_context(config);
        BOOTSTRAP_ROUTINES
            .iter()
            .map(|&(name, kind, template)| BootstrapRoutine {
                name,
                kind,
                body: self
                    .render_with_body(template, ctx.clone())
                    .1
                    .unwrap_or_else(|| panic!("template {template} sets no body")),
            })
            .collect()
    }

    fn statement(&self, key: &str, title: &str, template: &str, ctx: &Value) -> Statement {
        Statement {
            key: key.to_string(),
            title: title.to_string(),
            sql: self.render(template, ctx.clone()),
        }
    }

    /// generated/<schema>.<table>.sql for one policy.
    pub fn policy(&self, config: &Config, policy: &Policy) -> CompiledFile {
        let statements = self.policy_statements(config, policy);
        self.file(
            config,
            policy.generated_file_name(),
            FileOf::Policy(policy),
            statements,
        )
    }

    fn policy_statements(&self, config: &Config, policy: &Policy) -> Vec<Statement> {
        let table = policy.table.to_string();
        let base = Self::base_context(config);
        let ctx = context! { table => table.clone(), ..base };
        let mut statements = Vec::new();
        if let Some(p) = &policy.partitioning {
            let partitioning = context! {
                column => p.column.as_str(),
                interval => p.interval.to_string(),
                premake => p.premake,
                start => p.start.clone(),
                default_partition => p.default_partition,
                epoch => p.epoch.as_str(),
            };
            let epoch_divisor = match p.epoch {
                crate::model::Epoch::None | crate::model::Epoch::Seconds => 1_u64,
                crate::model::Epoch::Milliseconds => 1_000,
                crate::model::Epoch::Microseconds => 1_000_000,
                crate::model::Epoch::Nanoseconds => 1_000_000_000,
            };
            let setup_ctx = context! {
                p => partitioning,
                table_name => policy.table.name.as_str(),
                epoch_divisor => epoch_divisor,
                ..ctx.clone()
            };
            statements.push(self.statement(
                "setup",
                "pg_partman setup: register the partition set (once)",
                "setup.sql.j2",
                &setup_ctx,
            ));
            statements.push(self.statement(
                "adopt",
                "pg_partman setup of a table that has partitions already: kept as they are (once)",
                "adopt.sql.j2",
                &setup_ctx,
            ));
            if let Some(Expired::Archive { schema }) = policy.retention.as_ref().map(|r| &r.expired)
            {
                let archive_ctx = context! { archive_schema => schema.as_str() };
                statements.push(self.statement(
                    "archive_schema",
                    "schema that receives expired partitions",
                    "archive_schema.sql.j2",
                    &archive_ctx,
                ));
            }
            let retention_ctx = context! {
                settings => part_config_settings(policy)
                    .into_iter()
                    .map(|s| context! { column => s.column, sql => s.sql })
                    .collect::<Vec<_>>(),
                keeps_retention => policy.retention.is_some(),
                ..ctx.clone()
            };
            statements.push(self.statement(
                "retention",
                "retention settings in part_config",
                "retention.sql.j2",
                &retention_ctx,
            ));
        }
        statements.extend(self.prune_statements(config, policy, &ctx));
        statements.push(self.privileges_statement(config, policy, &ctx));
        statements.push(self.schedule_statement(config, policy, &ctx));
        statements
    }

    /// Grants the table's owner what running its retention needs (retention runs with
    /// the owner's rights: `db::privileges::owner_grants`, the list `run` checks too), and
    /// gives it the partitions another role made.
    fn privileges_statement(&self, config: &Config, policy: &Policy, ctx: &Value) -> Statement {
        // What the template reads of each grant, the object it is on as SQL names it.
        let grants: Vec<Value> = crate::db::privileges::owner_grants(config, policy)
            .iter()
            .map(|grant| {
                context! {
                    privileges => grant.privileges,
                    kind => grant.kind.keyword(),
                    object => grant_object(grant),
                    if_exists => grant.if_exists,
                    why => grant.why,
                }
            })
            .collect();
        let privileges_ctx = context! {
            grants => grants,
            partitioned => policy.partitioning.is_some(),
            ..ctx.clone()
        };
        self.statement(
            "privileges",
            "the table owner's rights to run its retention",
            "privileges.sql.j2",
            &privileges_ctx,
        )
    }

    /// With delete rules: claim the procedure's name for this table, then create it.
    /// Without: drop the procedure this table had, if retentionc recorded making it.
    fn prune_statements(&self, config: &Config, policy: &Policy, ctx: &Value) -> Vec<Statement> {
        let procedure = crate::model::prune_procedure_name(&policy.table);
        let named = context! { procedure => procedure.as_str(), ..ctx.clone() };
        if policy.deletes.is_empty() {
            return vec![self.statement(
                "prune",
                "no delete rules: no prune procedure",
                "drop_prune.sql.j2",
                &named,
            )];
        }
        let body = self.prune_body(config, policy);
        let record =
            serde_json::to_string_pretty(&crate::model::ProcedureRecord::new(&body, policy))
                .expect("a procedure record serialises");
        // The record holds the conditions' text: the block's dollar quotes must not occur in it.
        let claim_ctx =
            context! { claim_tag => dollar_tag(&record), record => record, ..named.clone() };
        let tag = dollar_tag(&body);
        let prune_ctx = context! { tag => tag, body => body, ..named.clone() };
        vec![
            self.statement(
                "prune_owner",
                "the prune procedure's name belongs to this table; its rules are recorded",
                "claim_prune.sql.j2",
                &claim_ctx,
            ),
            self.statement(
                "prune",
                "prune procedure for the delete rules",
                "prune.sql.j2",
                &prune_ctx,
            ),
        ]
    }

    /// The prune procedure's body exactly as PostgreSQL stores it (`pg_proc.prosrc`).
    pub fn prune_body(&self, config: &Config, policy: &Policy) -> String {
        let rules: Vec<Value> = policy
            .deletes
            .iter()
            .map(|rule| {
                context! {
                    name => rule.name.as_str(),
                    condition => rule.condition.canonical.clone(),
                    older_than => rule.older_than.map(|i| i.to_string()),
                    column => rule.column.as_ref().map(|c| c.as_str().to_string()),
                    batch_size => rule.batch_size,
                }
            })
            .collect();
        let ctx = context! { table => policy.table.to_string(), rules => rules,
        time_zone => policy.time_zone_or_utc(), ..Self::base_context(config) };
        // The body sits between dollar quotes: keep the text exactly, newlines included.
        let body = self
            .env
            .get_template("prune_body.sql.j2")
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| panic!("template prune_body.sql.j2 failed to render: {e:#}"));
        ending_in_one_newline(body)
    }

    fn schedule_statement(&self, config: &Config, policy: &Policy, ctx: &Value) -> Statement {
        match &policy.schedule {
            Some(schedule) => {
                let schedule_ctx = context! { job_name => policy.job_name(),
                schedule => schedule.clone(),
                command => schedule_command(config, policy), ..ctx.clone() };
                self.statement(
                    "schedule",
                    "pg_cron schedule",
                    "schedule.sql.j2",
                    &schedule_ctx,
                )
            }
            None => {
                let unschedule_ctx = context! { job_name => policy.job_name(), ..ctx.clone() };
                self.statement(
                    "schedule",
                    "no schedule: no pg_cron job",
                    "unschedule.sql.j2",
                    &unschedule_ctx,
                )
            }
        }
    }

    /// generated/<schema>.<table>.convert.sql: the statements that convert the plain table
    /// a policy with `partitioning` names into a pg_partman partitioned table (see
    /// `crate::convert`). None for a policy without `partitioning`.
    pub fn conversion(&self, config: &Config, policy: &Policy) -> Option<CompiledFile> {
        let p = policy.partitioning.as_ref()?;
        let names = crate::convert::names::ConversionNames::of(&policy.table);
        let partitioning = context! {
            column => p.column.as_str(),
            interval => p.interval.to_string(),
            premake => p.premake,
            start => p.start.clone(),
            default_partition => p.default_partition,
            epoch => p.epoch.as_str(),
        };
        let ctx = context! {
            table => policy.table.to_string(),
            p => partitioning,
            twin => names.twin.as_str(),
            retired => names.retired.as_str(),
            objects => names.objects.as_str(),
            keep => policy.retention.as_ref().map(|r| r.keep.to_string()),
            time_zone => policy.time_zone_or_utc(),
            ..Self::base_context(config)
        };
        let mut statements: Vec<Statement> = CONVERSION_ROUTINES
            .iter()
            .map(|(key, title, template)| self.statement(key, title, template, &ctx))
            .collect();
        for (step, title) in CONVERSION_STEPS {
            let step_ctx = context! { step => step, ..ctx.clone() };
            statements.push(self.statement(step, title, "convert_call.sql.j2", &step_ctx));
        }
        let file_name = conversion_file_name(&policy.table);
        let header_ctx = context! { source => Some(format!("{} (document {})", policy.source.file.display(), policy.source.document)),
            policy_hash => Some(policy.hash()),
            removed => None::<String>,
            conversion => true,
            file_name => config.generated_dir.join(&file_name).display().to_string(),
            ..Self::base_context(config)
        };
        let text = self.file_text(header_ctx, &statements);
        Some(CompiledFile {
            file_name,
            statements,
            text,
        })
    }

    /// The query plan runs to find what stops a table from being converted: `$1` the
    /// table (`schema.table`), `$2` the partition column, `$3` and `$4` the names the
    /// conversion needs (text), one row per problem.
    pub fn conversion_checks(&self, config: &Config) -> String {
        self.render("convert_checks.sql.j2", Self::base_context(config))
    }

    /// The query plan runs to find the index a conversion's fill would walk to copy rows
    /// oldest first: `$1` the table (`schema.table`), `$2` the partition column; one row
    /// (the index's name, quoted) or none.
    pub fn conversion_time_index(&self, config: &Config) -> String {
        self.render("convert_time_index.sql.j2", Self::base_context(config))
    }

    /// generated/_removed/<schema>.<table>.sql: the statements that release a table whose
    /// policy was removed (retention off, the procedure and the job retentionc made gone;
    /// the registration and the data stay). Plan picks the ones the database needs.
    pub fn removal(&self, config: &Config, table: &QualifiedName) -> CompiledFile {
        let base = Self::base_context(config);
        let procedure = crate::model::prune_procedure_name(table);
        let ctx = context! { table => table.to_string(), procedure => procedure.as_str(), ..base };
        let job_ctx = context! { job_name => crate::model::job_name(table), ..ctx.clone() };
        let statements = vec![
            self.statement(
                "retention_owner",
                "retentionc's apply history says it set this table's retention (planned only then)",
                "record_retention.sql.j2",
                &ctx,
            ),
            self.statement(
                "retention",
                "policy removed: retention disabled (where retentionc set it)",
                "release_retention.sql.j2",
                &ctx,
            ),
            self.statement(
                "prune",
                "policy removed: no prune procedure",
                "drop_prune.sql.j2",
                &ctx,
            ),
            self.statement(
                "schedule",
                "policy removed: no pg_cron job",
                "unschedule.sql.j2",
                &job_ctx,
            ),
        ];
        self.file(
            config,
            removal_file_name(table),
            FileOf::Removed(table),
            statements,
        )
    }

    fn file(
        &self,
        config: &Config,
        file_name: String,
        of: FileOf,
        statements: Vec<Statement>,
    ) -> CompiledFile {
        let (policy, removed) = match of {
            FileOf::Bootstrap => (None, None),
            FileOf::Policy(policy) => (Some(policy), None),
            FileOf::Removed(table) => (None, Some(table.to_string())),
        };
        let header_ctx = context! { source => policy.map(|p| format!("{} (document {})", p.source.file.display(), p.source.document)),
            policy_hash => policy.map(|p| p.hash()),
            removed => removed,
            file_name => config.generated_dir.join(&file_name).display().to_string(),
            ..Self::base_context(config)
        };
        let text = self.file_text(header_ctx, &statements);
        CompiledFile {
            file_name,
            statements,
            text,
        }
    }

    fn file_text(&self, header_ctx: Value, statements: &[Statement]) -> String {
        let mut text = self.render("header.sql.j2", header_ctx);
        text.reserve(
            statements
                .iter()
                .map(|s| s.title.len() + s.key.len() + s.sql.len() + 16)
                .sum(),
        );
        for (index, statement) in statements.iter().enumerate() {
            write!(
                text,
                "\n-- {}. {} [{}]\n{}",
                index + 1,
                statement.title,
                statement.key,
                statement.sql
            )
            .expect("writing to a String cannot fail");
        }
        text
    }
}

/// The object a grant is on, as SQL names it: `"retention"."maintain"(text, text)`.
fn grant_object(grant: &crate::db::privileges::OwnerGrant) -> String {
    let mut object = quote_ident(&grant.schema);
    if !grant.name.is_empty() {
        object.push('.');
        object.push_str(&quote_ident(&grant.name));
    }
    if let Some(args) = grant.args {
        write!(object, "({args})").expect("writing to a String cannot fail");
    }
    object
}

/// `text` without trailing white space, then one newline.
fn ending_in_one_newline(mut text: String) -> String {
    text.truncate(text.trim_end().len());
    text.push('\n');
    text
}

/// The text the `ident` and `literal` filters quote: a string as it is, any other value as
/// a template prints it; undefined is an error, as everywhere in these templates.
fn filter_text(value: &Value) -> Result<std::borrow::Cow<'_, str>, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "an undefined value cannot be quoted",
        ));
    }
    Ok(match value.as_str() {
        Some(text) => text.into(),
        None => value.to_string().into(),
    })
}

/// What a compiled file is for: its header says so.
enum FileOf<'a> {
    Bootstrap,
    Policy(&'a Policy),
    Removed(&'a QualifiedName),
}

/// The routines a conversion runs (keys, titles and templates of its file), created or
/// replaced before each conversion step; the steps call them.
const CONVERSION_ROUTINES: [(&str, &str, &str); 12] = [
    (
        "state",
        "where each conversion stands",
        "convert_state.sql.j2",
    ),
    (
        "problems",
        "what stops a table from being converted",
        "convert_problems.sql.j2",
    ),
    (
        "order",
        "the index the fill walks to copy rows oldest first",
        "convert_order.sql.j2",
    ),
    (
        "names",
        "names of what the conversion renames",
        "convert_name.sql.j2",
    ),
    (
        "triggers",
        "the triggers that record writes during the conversion",
        "convert_triggers.sql.j2",
    ),
    (
        "prepare_routine",
        "step 1: the partitioned copy, registered with pg_partman",
        "convert_prepare.sql.j2",
    ),
    (
        "capture_routine",
        "step 2: record writes to the original",
        "convert_capture.sql.j2",
    ),
    (
        "copy_routine",
        "step 3: copy one batch of rows",
        "convert_copy.sql.j2",
    ),
    (
        "replay_routine",
        "steps 3 and 4: replay recorded writes",
        "convert_replay.sql.j2",
    ),
    (
        "swap_routine",
        "step 4: swap the names",
        "convert_swap.sql.j2",
    ),
    (
        "revert_routine",
        "undo a conversion",
        "convert_revert.sql.j2",
    ),
    (
        "finish_routine",
        "stop recording writes after the swap",
        "convert_finish.sql.j2",
    ),
];

/// The steps of a conversion, in order, and the undo steps (`convert --revert`, `--finish`).
pub const CONVERSION_STEPS: [(&str, &str); 7] = [
    ("prepare", "step 1: prepare the partitioned copy"),
    (
        "capture",
        "step 2: record writes to the original ($1: lock_timeout)",
    ),
    ("batch", "step 3: copy one batch ($1: rows)"),
    ("catch_up", "step 3: replay recorded writes ($1: how many)"),
    ("swap", "step 4: swap the names ($1: lock_timeout)"),
    ("revert", "undo the conversion ($1: lock_timeout)"),
    (
        "finish",
        "stop recording writes for --revert ($1: lock_timeout)",
    ),
];

/// `<schema>.<table>.convert.sql`, relative to generated/.
pub fn conversion_file_name(table: &QualifiedName) -> String {
    format!("{table}.convert.sql")
}

/// `_removed/<schema>.<table>.sql`, relative to generated/.
pub fn removal_file_name(table: &QualifiedName) -> String {
    format!("{REMOVED_DIR}/{table}.sql")
}

/// A dollar-quote tag that does not occur in `body`.
fn dollar_tag(body: &str) -> String {
    let mut tag = "retentionc".to_string();
    let mut n = 1;
    while body.contains(&format!("${tag}$")) {
        tag = format!("retentionc_{n}");
        n += 1;
    }
    tag
}

/// Every file `compile` writes for the policies, in a stable order: the bootstrap first.
/// (Removal files depend on what generated/ held before; see `compile`.)
pub fn compile_project(config: &Config, policies: &[Policy]) -> Vec<CompiledFile> {
    let renderer = Renderer::new();
    let mut files = vec![renderer.bootstrap(config)];
    files.extend(policies.iter().map(|p| renderer.policy(config, p)));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_quote_what_a_template_prints_and_refuse_undefined() {
        let renderer = Renderer::new();
        let render = |source: &str| {
            renderer.env.render_str(
                source,
                context! { s => "it's \"x\"", n => 5, b => true, none => () },
            )
        };
        assert_eq!(
            render("{{ s|literal }} {{ s|ident }}").unwrap(),
            r#"'it''s "x"' "it's ""x""""#
        );
        // Any other value is quoted as the template prints it.
        let printed = render("{{ n }} {{ b }} {{ none }}").unwrap();
        let [n, b, none] = printed.split(' ').collect::<Vec<_>>()[..] else {
            panic!("{printed}")
        };
        assert_eq!(
            render("{{ n|literal }} {{ b|literal }} {{ none|ident }}").unwrap(),
            format!("'{n}' '{b}' \"{none}\"")
        );
        for source in ["{{ missing|literal }}", "{{ missing|ident }}"] {
            assert!(render(source).is_err(), "{source}");
        }
    }
}
