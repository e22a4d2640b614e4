//! retentionc: data-retention policies for PostgreSQL, compiled to reviewed SQL.
//!
//! Pipeline: policy text -> (policy/) validated model -> (render) generated SQL;
//! live database -> (catalog) live state -> (plan) changes -> (apply, run) database.
//! This file only dispatches: parse arguments, run one command, map to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use retentionc::cli::{Cli, Command};
use retentionc::policy::error::PolicyErrors;
use retentionc::{apply, compile, config, fleet, import, init, plan, run, schema, status};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if let Some(policy_errors) = err.downcast_ref::<PolicyErrors>() {
                eprintln!("{policy_errors}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let config = match (&cli.command, cli.config) {
        // init writes the settings file, so it need not exist yet; schema and
        // completions do not read it.
        (Command::Init { .. } | Command::Schema | Command::Completions { .. }, Some(path)) => path,
        (_, explicit) => config::config_path(explicit.as_deref())?,
    };
    match cli.command {
        Command::Compile { check, remove } => {
            // The project's own generated/, then one folder per environment whose
            // settings compile to other SQL.
            let projects = fleet::compiled_projects(&config)?;
            let remove = remove
                .iter()
                .map(|t| {
                    retentionc::model::QualifiedName::parse(t)
                        .map_err(|e| anyhow::anyhow!("--remove {t}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if check {
                let mut up_to_date = true;
                for project in &projects {
                    up_to_date &= compile::check(project, &mut stdout)?;
                }
                return Ok(if up_to_date {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            for project in &projects {
                compile::compile(project, &remove, &mut stdout)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "retentionc", &mut stdout);
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { force } => init::init(&config, force, &mut stdout),
        Command::Schema => {
            schema::print(&mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) if args.fleet.selected() => {
            block_on(fleet::plan::command(&config, &args))
        }
        Command::Plan(args) => block_on(plan::command(&config, &args)),
        Command::Apply(args) if args.fleet.selected() => {
            block_on(fleet::apply::command(&config, &args))
        }
        Command::Apply(args) => block_on(apply::command(&config, &args)),
        Command::Run(args) if args.fleet.selected() => {
            block_on(fleet::run::command(&config, &args))
        }
        Command::Run(args) => block_on(run::run(&config, &args)),
        Command::Status(args) if args.fleet.selected() => {
            block_on(fleet::status::command(&config, &args))
        }
        Command::Status(args) => block_on(status::status(&config, &args)),
        Command::Import(args) => block_on(import::import(&config, &args)),
    }
}

/// The database commands are async (tokio-postgres); one runtime per invocation.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}
