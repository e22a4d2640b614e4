//! Command entry points not yet built; each moves to its own module when built.
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::{ApplyArgs, ImportArgs, PlanArgs, RunArgs, StatusArgs};

pub async fn plan(_config: &Path, _args: &PlanArgs) -> Result<ExitCode> { bail!("plan is not built yet") }
pub async fn apply(_config: &Path, _args: &ApplyArgs) -> Result<ExitCode> { bail!("apply is not built yet") }
pub async fn run(_config: &Path, _args: &RunArgs) -> Result<ExitCode> { bail!("run is not built yet") }
pub async fn status(_config: &Path, _args: &StatusArgs) -> Result<ExitCode> { bail!("status is not built yet") }
pub async fn import(_config: &Path, _args: &ImportArgs) -> Result<ExitCode> { bail!("import is not built yet") }
pub fn init(_config: &Path, _force: bool) -> Result<ExitCode> { bail!("init is not built yet") }
pub fn schema() -> Result<ExitCode> { bail!("schema is not built yet") }
