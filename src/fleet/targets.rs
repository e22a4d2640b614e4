//! The databases of the chosen environments: one per `url_env` variable, in the listed
//! order, then those discovery finds on a server, by name. A database that cannot be
//! reached or named (variable unset, connection string invalid, discovery failed) is
//! still a target, carrying its problem, so the report shows it next to the others.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;

use super::EnvironmentProject;
use crate::cli::DbArgs;
use crate::config::environments::Discovery;
use crate::db;
use crate::policy::error::shown;

/// At most this many databases from one discovery.
pub const MAX_DISCOVERED: usize = 10_000;

/// One database of an environment.
#[derive(Debug, Clone)]
pub struct Target {
    /// Index of its environment in the chosen list.
    pub environment: usize,
    pub environment_name: String,
    /// How to connect (stall bound and connect timeout as the command line says).
    pub db: DbArgs,
    /// `user@host:port/db`, never a password; `$VARIABLE` when the variable gives none.
    pub database: String,
    /// Where it came from: the variable, or `discovered on $VARIABLE`.
    pub source: String,
    /// Why it cannot be worked on, if it cannot.
    pub problem: Option<String>,
}

impl Target {
    /// `production: app@db1:5432/app`.
    pub fn label(&self) -> String {
        format!("{}: {}", self.environment_name, self.database)
    }
}

/// Every database of `environments`, in order. `cli` gives the stall bound.
pub async fn resolve(environments: &[EnvironmentProject], cli: &DbArgs) -> Vec<Target> {
    let mut targets = Vec::new();
    for (index, chosen) in environments.iter().enumerate() {
        let environment = &chosen.environment;
        for variable in &environment.url_variables {
            targets.push(listed(index, &environment.name, variable, cli));
        }
        if let Some(discovery) = &environment.discover {
            targets.extend(discover(index, &environment.name, discovery, cli).await);
        }
    }
    targets
}

/// The database a variable names.
fn listed(environment: usize, name: &str, variable: &str, cli: &DbArgs) -> Target {
    let mut target = Target {
        environment,
        environment_name: name.to_string(),
        db: connection_args(variable, cli),
        database: format!("${variable}"),
        source: variable.to_string(),
        problem: None,
    };
    match connection_string(variable) {
        Err(problem) => target.problem = Some(problem),
        Ok(url) => {
            target.db.database_url = Some(url);
            match db::resolve(&target.db) {
                Ok(params) => target.database = shown(&params.target(), 200),
                Err(e) => target.problem = Some(format!("{e:#}")),
            }
        }
    }
    target
}

/// The databases of one server whose names match, each a target with its own name; one
/// target carrying the problem when the server cannot be asked.
async fn discover(
    environment: usize,
    name: &str,
    discovery: &Discovery,
    cli: &DbArgs,
) -> Vec<Target> {
    let variable = &discovery.url_variable;
    let server = listed(environment, name, variable, cli);
    let source = format!("discovered on ${variable}");
    let failed = |problem: String| {
        vec![Target {
            source: source.clone(),
            problem: Some(format!(
                "discovery of \"{}\": {problem}",
                discovery.databases
            )),
            ..server.clone()
        }]
    };
    if let Some(problem) = &server.problem {
        return failed(problem.clone());
    }
    let names = match database_names(&server.db, discovery).await {
        Ok(names) => names,
        Err(e) => return failed(format!("{e:#}")),
    };
    if names.len() > MAX_DISCOVERED {
        return failed(format!(
            "found {} databases, more than the {MAX_DISCOVERED} one discovery may reach; narrow the pattern",
            names.len()
        ));
    }
    if names.is_empty() {
        return failed(format!(
            "no database on {} matches \"{}\"",
            server.database, discovery.databases
        ));
    }
    names
        .into_iter()
        .map(|dbname| {
            let mut db = server.db.clone();
            db.dbname = Some(dbname);
            let database = match db::resolve(&db) {
                Ok(params) => shown(&params.target(), 200),
                Err(_) => server.database.clone(),
            };
            Target {
                db,
                database,
                source: source.clone(),
                ..server.clone()
            }
        })
        .collect()
}

/// Names of the server's databases that match, that accept connections and are not
/// templates, sorted.
async fn database_names(server: &DbArgs, discovery: &Discovery) -> Result<Vec<String>> {
    let session = db::connect(server, "retentionc discover").await?;
    let rows = session
        .query(
            "SELECT datname::text FROM pg_catalog.pg_database \
             WHERE datname LIKE $1 AND ($2::text IS NULL OR datname NOT LIKE $2) \
               AND datallowconn AND NOT datistemplate \
             ORDER BY datname COLLATE \"C\" \
             LIMIT $3",
            &[
                &discovery.databases,
                &discovery.exclude,
                &(MAX_DISCOVERED as i64 + 1),
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The arguments of one target: the command line's stall bound, the connection string
/// named after its variable.
fn connection_args(variable: &str, cli: &DbArgs) -> DbArgs {
    DbArgs {
        database_url: None,
        stall_timeout: cli.stall_timeout,
        url_origin: Some(static_name(variable)),
        dbname: None,
    }
}

/// The value of `variable`, which must be set.
fn connection_string(variable: &str) -> Result<String, String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        Ok(_) => Err(format!(
            "the variable {variable} is empty; it should hold the database's connection string"
        )),
        Err(std::env::VarError::NotPresent) => Err(format!(
            "the variable {variable} is not set; it should hold the database's connection string"
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "the variable {variable} is not valid UTF-8; it should hold the database's connection string"
        )),
    }
}

/// A variable name that lives as long as the process, for messages that name where a
/// connection string came from. Each distinct name is kept once; names come from
/// retentionc.yaml, so there are few.
fn static_name(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(|| Mutex::new(BTreeSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let kept: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(kept);
    kept
}

/// The targets and projects a command works on, shared with its workers.
pub struct Fleet {
    pub environments: Vec<EnvironmentProject>,
    pub targets: Arc<Vec<Target>>,
}

impl Fleet {
    /// Each environment's project, in the environments' order (a target's `environment`
    /// indexes it).
    pub fn projects(&self) -> Vec<Arc<crate::model::Project>> {
        self.environments
            .iter()
            .map(|e| Arc::clone(&e.project))
            .collect()
    }

    pub async fn load(
        config_path: &std::path::Path,
        fleet: &crate::cli::FleetArgs,
        cli: &DbArgs,
    ) -> Result<Fleet> {
        let environments = super::load(config_path, fleet)?;
        let targets = resolve(&environments, cli).await;
        Ok(Fleet {
            environments,
            targets: Arc::new(targets),
        })
    }

    pub fn project(&self, target: &Target) -> Arc<crate::model::Project> {
        Arc::clone(&self.environments[target.environment].project)
    }
}
