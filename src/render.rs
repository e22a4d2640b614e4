//! Model -> SQL text, through the minijinja templates in templates/.
//!
//! Every statement retentionc ever sends comes from here, one template per statement,
//! so that what plan shows and apply executes is byte for byte what the reviewed
//! files under generated/ hold. No SQL is assembled from strings elsewhere.

use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::model::{Config, Expired, Policy, QualifiedName};
use crate::policy::ident::{quote_ident, quote_literal};

/// Name of the compiled file holding retentionc's own schema, tables and functions.
pub const BOOTSTRAP_FILE: &str = "_retentionc.sql";

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

/// The `part_config` values a policy asks for. Columns it does not care about (how
/// expired partitions are kept, when nothing expires) are left out and left alone.
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
            let keep_table = retention.expired != Expired::Drop;
            settings.push(setting(
                "retention_keep_table",
                SettingValue::Bool(keep_table),
            ));
            settings.push(setting(
                "retention_keep_index",
                SettingValue::Bool(retention.keep_index),
            ));
            let schema = match &retention.expired {
                Expired::Archive { schema } => SettingValue::Text(schema.to_string()),
                _ => SettingValue::Null,
            };
            settings.push(setting("retention_schema", schema));
        }
        None => settings.push(setting("retention", SettingValue::Null)),
    }
    // Premake keeps working when inserts pause only with infinite_time_partitions.
    settings.push(setting(
        "infinite_time_partitions",
        SettingValue::Bool(true),
    ));
    settings.push(setting(
        "premake",
        SettingValue::Int(partitioning.premake as i64),
    ));
    settings
}

/// The settings that disable retention of a table whose policy was removed.
pub fn removal_settings() -> Vec<Setting> {
    vec![setting("retention", SettingValue::Null)]
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
            "SELECT {}.\"maintain\"({})",
            quote_ident(config.schema.as_str()),
            quote_literal(&policy.table.to_string())
        ),
    }
}

/// The statement `run` sends for pg_partman maintenance of one table (`$1`: `schema.table`).
pub fn maintain_call(config: &Config) -> String {
    format!(
        "SELECT {}.\"maintain\"($1::text)",
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
        env.add_filter("ident", |s: String| quote_ident(&s));
        env.add_filter("literal", |s: String| quote_literal(&s));
        templates!(
            env,
            "header.sql.j2",
            "bootstrap_schema.sql.j2",
            "bootstrap_apply_history.sql.j2",
            "bootstrap_run_log.sql.j2",
            "bootstrap_run_log_index.sql.j2",
            "bootstrap_maintain.sql.j2",
            "bootstrap_delete_in_batches.sql.j2",
            "setup.sql.j2",
            "archive_schema.sql.j2",
            "retention.sql.j2",
            "prune.sql.j2",
            "prune_body.sql.j2",
            "drop_prune.sql.j2",
            "schedule.sql.j2",
            "unschedule.sql.j2",
        );
        Renderer { env }
    }

    fn render(&self, name: &str, ctx: Value) -> String {
        let text = self
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| panic!("template {name} failed to render: {e:#}"));
        format!("{}\n", text.trim_end())
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
        let statements = vec![
            self.statement(
                "bootstrap.schema",
                "retentionc's schema",
                "bootstrap_schema.sql.j2",
                &ctx,
            ),
            self.statement(
                "bootstrap.apply_history",
                "history of every apply",
                "bootstrap_apply_history.sql.j2",
                &ctx,
            ),
            self.statement(
                "bootstrap.run_log",
                "log of every retention run",
                "bootstrap_run_log.sql.j2",
                &ctx,
            ),
            self.statement(
                "bootstrap.run_log_index",
                "index for status",
                "bootstrap_run_log_index.sql.j2",
                &ctx,
            ),
            self.statement(
                "bootstrap.maintain",
                "pg_partman maintenance of one table, reported from the catalog",
                "bootstrap_maintain.sql.j2",
                &ctx,
            ),
            self.statement(
                "bootstrap.delete_in_batches",
                "one delete rule in batches committed one by one (used by every prune procedure)",
                "bootstrap_delete_in_batches.sql.j2",
                &ctx,
            ),
        ];
        self.file(config, BOOTSTRAP_FILE.to_string(), None, statements)
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
            Some(policy),
            statements,
        )
    }

    pub fn policy_statements(&self, config: &Config, policy: &Policy) -> Vec<Statement> {
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
            let setup_ctx = context! { p => partitioning, ..ctx.clone() };
            statements.push(self.statement(
                "setup",
                "pg_partman setup: register the partition set (once)",
                "setup.sql.j2",
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
            let retention_ctx = context! { settings => Value::from(minijinja::value::Serde(part_config_settings(policy))), ..ctx.clone() };
            statements.push(self.statement(
                "retention",
                "retention settings in part_config",
                "retention.sql.j2",
                &retention_ctx,
            ));
        }
        statements.push(self.prune_statement(config, policy, &ctx));
        statements.push(self.schedule_statement(config, policy, &ctx));
        statements
    }

    fn prune_statement(&self, config: &Config, policy: &Policy, ctx: &Value) -> Statement {
        let procedure = match policy.prune_procedure() {
            Some(p) => p,
            None => {
                // No delete rules: make sure no procedure from an earlier version remains.
                let name = prune_name(&policy.table);
                let drop_ctx = context! { procedure => name, ..ctx.clone() };
                return self.statement(
                    "prune",
                    "no delete rules: no prune procedure",
                    "drop_prune.sql.j2",
                    &drop_ctx,
                );
            }
        };
        let body = self.prune_body(config, policy);
        let tag = dollar_tag(&body);
        let prune_ctx =
            context! { procedure => procedure.as_str(), tag => tag, body => body, ..ctx.clone() };
        self.statement(
            "prune",
            "prune procedure for the delete rules",
            "prune.sql.j2",
            &prune_ctx,
        )
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
        let ctx = context! { table => policy.table.to_string(), rules => rules, ..Self::base_context(config) };
        // The body sits between dollar quotes: keep the text exactly, newlines included.
        let body = self
            .env
            .get_template("prune_body.sql.j2")
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| panic!("template prune_body.sql.j2 failed to render: {e:#}"));
        format!("{}\n", body.trim_end())
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

    /// Statements that disable retentionc's management of a table whose policy was
    /// removed: retention off, procedure and schedule gone; registration and data stay.
    pub fn removal_statements(
        &self,
        config: &Config,
        table: &QualifiedName,
        partitioned: bool,
    ) -> Vec<Statement> {
        let base = Self::base_context(config);
        let ctx = context! { table => table.to_string(), ..base };
        let mut statements = Vec::new();
        if partitioned {
            let retention_ctx = context! { settings => Value::from(minijinja::value::Serde(removal_settings())), ..ctx.clone() };
            statements.push(self.statement(
                "retention",
                "policy removed: retention disabled",
                "retention.sql.j2",
                &retention_ctx,
            ));
        }
        let drop_ctx = context! { procedure => prune_name(table), ..ctx.clone() };
        statements.push(self.statement(
            "prune",
            "policy removed: no prune procedure",
            "drop_prune.sql.j2",
            &drop_ctx,
        ));
        let job_ctx = context! { job_name => format!("retentionc:{table}"), ..ctx };
        statements.push(self.statement(
            "schedule",
            "policy removed: no pg_cron job",
            "unschedule.sql.j2",
            &job_ctx,
        ));
        statements
    }

    fn file(
        &self,
        config: &Config,
        file_name: String,
        policy: Option<&Policy>,
        statements: Vec<Statement>,
    ) -> CompiledFile {
        let header_ctx = context! { source => policy.map(|p| format!("{} (document {})", p.source.file.display(), p.source.document)),
            policy_hash => policy.map(|p| p.hash()),
            file_name => config.generated_dir.join(&file_name).display().to_string(),
            ..Self::base_context(config)
        };
        let mut text = self.render("header.sql.j2", header_ctx);
        for (index, statement) in statements.iter().enumerate() {
            text.push_str(&format!(
                "\n-- {}. {} [{}]\n{}",
                index + 1,
                statement.title,
                statement.key,
                statement.sql
            ));
        }
        CompiledFile {
            file_name,
            statements,
            text,
        }
    }
}

fn prune_name(table: &QualifiedName) -> String {
    // Names too long for a procedure were refused at parse time when there are rules;
    // without rules the DROP ... IF EXISTS of a truncated name is harmless.
    format!("prune_{}", table.name)
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

/// Every file `compile` writes, in a stable order: the bootstrap first.
pub fn compile_project(config: &Config, policies: &[Policy]) -> Vec<CompiledFile> {
    let renderer = Renderer::new();
    let mut files = vec![renderer.bootstrap(config)];
    files.extend(policies.iter().map(|p| renderer.policy(config, p)));
    files
}
