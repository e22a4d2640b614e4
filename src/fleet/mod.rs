//! Environments and fleets of databases: `plan`, `apply`, `run` and `status` with `--env
//! NAME` or `--all` reach every database of the environments retentionc.yaml names.
//!
//! `load` turns the chosen environments into projects (the policies read with each
//! environment's settings, its SQL under its generated/ folder); `targets` finds their
//! databases (listed variables, discovery on a server); `runner` works on them a bounded
//! number at a time and keeps what each wrote in a spool, so that memory does not grow with
//! the number of databases; `report` writes the combined report. Each command's own work on
//! one database (`plan::plan_database`, `apply::execute`, `run::run_database`,
//! `status::database_status`) is what runs on every database.

pub mod apply;
pub mod plan;
pub mod report;
pub mod run;
pub mod runner;
pub mod status;
pub mod targets;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::cli::FleetArgs;
use crate::config::{self, Environment, Settings};
use crate::model::Project;
use crate::policy::{self, error::PolicyErrors};

/// Databases worked on at once unless `--jobs` says otherwise: planning mostly waits on
/// the network, and a few sessions at a time load no server much.
pub const DEFAULT_JOBS: usize = 4;

/// One environment ready to work on: its settings and its project.
pub struct EnvironmentProject {
    pub environment: Environment,
    pub project: Arc<Project>,
}

/// The environments `fleet` chooses, in the order of retentionc.yaml, each with its project.
pub fn load(config_path: &Path, fleet: &FleetArgs) -> Result<Vec<EnvironmentProject>> {
    let settings = config::load_settings(config_path)?;
    let chosen = choose(&settings, config_path, fleet)?;
    let mut loaded = Vec::new();
    for environment in chosen {
        let project = environment_project(&settings, &environment)?;
        loaded.push(EnvironmentProject {
            environment,
            project: Arc::new(project),
        });
    }
    Ok(loaded)
}

/// The policies read with `environment`'s settings.
pub fn environment_project(
    settings: &Settings,
    environment: &Environment,
) -> Result<Project, PolicyErrors> {
    let config = environment.config(&settings.config);
    let policies = policy::load_policies(&config)?;
    Ok(Project { config, policies })
}

/// Every project compile writes: the default one (generated/) and one per environment
/// whose settings compile to other SQL (generated/<name>/).
pub fn compiled_projects(config_path: &Path) -> Result<Vec<Project>> {
    let settings = config::load_settings(config_path)?;
    let config = settings.config.clone();
    let policies = policy::load_policies(&config)?;
    let mut projects = vec![Project { config, policies }];
    for environment in &settings.environments {
        let env_config = environment.config(&settings.config);
        if env_config.generated_dir != settings.config.generated_dir {
            projects.push(environment_project(&settings, environment)?);
        }
    }
    Ok(projects)
}

fn choose(settings: &Settings, config_path: &Path, fleet: &FleetArgs) -> Result<Vec<Environment>> {
    if fleet.all {
        if settings.environments.is_empty() {
            bail!(
                "--all: {} names no environments (add an environments: section; see docs/fleet.md)",
                config_path.display()
            );
        }
        return Ok(settings.environments.clone());
    }
    for name in &fleet.environments {
        config::environments::find(&settings.environments, name, config_path)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(settings
        .environments
        .iter()
        .filter(|e| fleet.environments.contains(&e.name))
        .cloned()
        .collect())
}

/// `--jobs`, else the default.
pub fn jobs(fleet: &FleetArgs) -> usize {
    fleet.jobs.map_or(DEFAULT_JOBS, usize::from)
}

/// An error as the report shows it: every line, control characters made visible, long
/// lines cut.
pub fn error_text(error: &anyhow::Error) -> String {
    let text = match error.downcast_ref::<PolicyErrors>() {
        Some(errors) => errors.to_string(),
        None => format!("{error:#}"),
    };
    text.lines()
        .map(|line| policy::error::shown(line, 2_000))
        .collect::<Vec<_>>()
        .join("\n")
}
