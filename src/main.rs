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
use retentionc::{
    apply, compile, config, convert, fleet, import, init, man, output, plan, run, schema, status,
};

/// Exit status when stdout was closed early (`retentionc status | head -1`): what a
/// shell reports for a program ended by SIGPIPE, without its message.
const EXIT_CLOSED_PIPE: u8 = 141;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) if output_closed(&err) => ExitCode::from(EXIT_CLOSED_PIPE),
        Err(err) => {
            // Messages carry names and text from the database and from policy files:
            // no control character from them reaches the terminal.
            let message = match err.downcast_ref::<PolicyErrors>() {
                Some(policy_errors) => policy_errors.to_string(),
                None => format!("error: {err:#}"),
            };
            eprintln!("{}", output::terminal_lines(&message));
            ExitCode::from(1)
        }
    }
}

/// The reader of our output went away: not an error of ours to report.
fn output_closed(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == broken
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let config = match (&cli.command, cli.config) {
        // init writes the settings file, so it need not exist yet; schema and
        // completions do not read it.
        (
            Command::Init { .. }
            | Command::Schema
            | Command::Completions { .. }
            | Command::Man { .. },
            Some(path),
        ) => path,
        (_, explicit) => config::config_path(explicit.as_deref())?,
    };
    match cli.command {
        Command::Compile {
            check,
            remove,
            convert,
        } => compile::command(&config, check, &remove, &convert, &mut stdout),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "retentionc", &mut script);
            stdout.write_all(&script)?;
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: None } => {
            man::write_main_page(&mut stdout)?;
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: Some(dir) } => {
            for page in man::write_pages(&dir)? {
                writeln!(stdout, "{}", page.display())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { force } => init::command(&config, force, &mut stdout),
        Command::Schema => schema::command(&mut stdout),
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
        Command::Run(args) => block_on(run::command(&config, &args)),
        Command::Status(args) if args.fleet.selected() => {
            block_on(fleet::status::command(&config, &args))
        }
        Command::Status(args) => block_on(status::command(&config, &args)),
        Command::Import(args) => block_on(import::command(&config, &args)),
        Command::Convert(args) => block_on(convert::command(&config, &args)),
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
