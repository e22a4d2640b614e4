//! Command entry points not yet built; each moves to its own module when built.
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{ApplyArgs, ImportArgs, PlanArgs, RunArgs, StatusArgs};

pub async fn plan(config: &Path, args: &PlanArgs) -> Result<ExitCode> {
    crate::plan::command(config, args).await
}
pub async fn apply(config: &Path, args: &ApplyArgs) -> Result<ExitCode> {
    crate::apply::command(config, args).await
}
pub async fn run(config: &Path, args: &RunArgs) -> Result<ExitCode> {
    crate::run::run(config, args).await
}
pub async fn status(config: &Path, args: &StatusArgs) -> Result<ExitCode> {
    crate::status::status(config, args).await
}
pub async fn import(config: &Path, args: &ImportArgs) -> Result<ExitCode> {
    crate::import::import(config, args).await
}
pub fn init(config: &Path, force: bool) -> Result<ExitCode> {
    crate::init::init(config, force, &mut std::io::stdout().lock())
}
pub fn schema() -> Result<ExitCode> {
    crate::schema::print(&mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}
