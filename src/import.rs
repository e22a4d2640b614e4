//! `retentionc import [--table NAME ...] [--force]`: adopt an existing pg_partman set-up.
//!
//! Reads every `part_config` row (live.rs), describes each table as a policy (mapping.rs,
//! pure), and writes one file per table, `policies/<schema>.<table>.yaml`, named like
//! its compiled `generated/<schema>.<table>.sql`. Files are decided first and written
//! last: when any would be refused (it exists, and --force was not given), nothing is
//! written at all.

mod live;
pub mod mapping;
pub mod pg_interval;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::ImportArgs;
use crate::config::load_config;
use crate::db;
use crate::model::Config;
use crate::policy::ident::QualifiedName;
use crate::policy::{parse_policy_text, policy_files};
use live::{LiveTable, PartmanInstall};
use mapping::{ImportedPolicy, NoteKind, Outcome, import_table};

pub async fn import(config_path: &Path, args: &ImportArgs) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let skipped = run(config_path, args, &mut stdout).await?;
    // Skipping a table the user did not name is part of the report; skipping one they
    // named with --table means the command did not do what was asked.
    if !args.tables.is_empty() && !skipped.is_empty() {
        eprintln!(
            "error: not imported, though named with --table: {} (reasons above)",
            skipped.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole command, writing its report to `out`; returns the tables it skipped.
pub async fn run(
    config_path: &Path,
    args: &ImportArgs,
    out: &mut impl Write,
) -> Result<Vec<String>> {
    let config = load_config(config_path)?;
    let wanted = wanted_tables(&args.tables)?;
    let client = db::connect(&args.db, "retentionc import").await?;
    let install = live::read_install(&client)
        .await?
        .context("pg_partman is not installed in this database: there is nothing to import")?;
    check_install(&install, &config)?;
    let mut tables = live::read_part_config(&client, &config.partman_schema).await?;
    if let Some(wanted) = &wanted {
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|w| !tables.iter().any(|t| &&t.parent_table == w))
            .collect();
        if !missing.is_empty() {
            bail!(
                "not registered with pg_partman (no row in {}.part_config): {}",
                config.partman_schema,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tables.retain(|t| wanted.contains(&t.parent_table));
    }
    let outcomes = describe_all(&tables, &config, &install);
    let existing = ExistingPolicies::scan(&config);
    let writes = decide_files(&outcomes, &config, &existing, args.force)?;
    write_files(&writes, &config)?;
    report(&outcomes, &writes, &config, out)?;
    Ok(outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Skipped(s) => Some(s.table.clone()),
            Outcome::Imported(_) => None,
        })
        .collect())
}

/// `--table` names, checked to be `schema.table`; None means every table.
fn wanted_tables(names: &[String]) -> Result<Option<Vec<String>>> {
    if names.is_empty() {
        return Ok(None);
    }
    for name in names {
        QualifiedName::parse(name).map_err(|e| anyhow::anyhow!("--table {name}: {e}"))?;
    }
    Ok(Some(names.to_vec()))
}

/// The policies are compiled for one pg_partman major in one schema: they must be the
/// database's, or the imported policies would describe the wrong SQL.
fn check_install(install: &PartmanInstall, config: &Config) -> Result<()> {
    let configured = config.partman_version.number();
    if install.major() != Some(configured) {
        bail!(
            "the database has pg_partman {}, but the project compiles for pg_partman {configured}: \
             set `partman_version: {}` in retentionc.yaml first",
            install.version,
            install
                .major()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
    if install.schema != config.partman_schema.as_str() {
        bail!(
            "pg_partman lives in schema {} in the database, but retentionc.yaml says partman_schema {}: \
             set `partman_schema: {}` first",
            install.schema,
            config.partman_schema,
            install.schema
        );
    }
    Ok(())
}

/// `policies/<schema>.<table>.yaml`, as shown to the user (relative to the project root).
fn default_file(config: &Config, parent_table: &str) -> PathBuf {
    config.policies_dir.join(format!("{parent_table}.yaml"))
}

fn describe_all(tables: &[LiveTable], config: &Config, install: &PartmanInstall) -> Vec<Outcome> {
    tables
        .iter()
        .map(|t| {
            import_table(
                t,
                config,
                &install.version,
                &default_file(config, &t.parent_table),
            )
        })
        .collect()
}

/// Where the project's existing policies are, by table, read leniently (a file with
/// errors still tells which tables its valid documents describe).
struct ExistingPolicies {
    /// `schema.table` -> (file as shown, number of policies in that file).
    by_table: BTreeMap<String, (PathBuf, usize)>,
}

impl ExistingPolicies {
    fn scan(config: &Config) -> ExistingPolicies {
        let mut by_table = BTreeMap::new();
        for path in policy_files(config).unwrap_or_default() {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let shown = shown_path(config, &path);
            let (policies, _) = parse_policy_text(&shown, &text, config);
            for policy in &policies {
                by_table
                    .entry(policy.table.to_string())
                    .or_insert((shown.clone(), policies.len()));
            }
        }
        ExistingPolicies { by_table }
    }

    /// The table a file (as shown) holds a policy for, other than `table`.
    fn other_table_in(&self, file: &Path, table: &str) -> Option<&str> {
        self.by_table
            .iter()
            .find(|(t, (f, _))| f == file && t.as_str() != table)
            .map(|(t, _)| t.as_str())
    }
}

fn shown_path(config: &Config, path: &Path) -> PathBuf {
    path.strip_prefix(&config.root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// One file import writes.
struct FileWrite<'a> {
    /// As shown to the user, relative to the project root.
    file: PathBuf,
    policy: &'a ImportedPolicy,
    action: Action,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Overwrite,
    Unchanged,
}

/// Decides every file before any is written; refuses (naming every refused file) when
/// one exists and --force was not given, or when writing it would lose another policy.
fn decide_files<'a>(
    outcomes: &'a [Outcome],
    config: &Config,
    existing: &ExistingPolicies,
    force: bool,
) -> Result<Vec<FileWrite<'a>>> {
    let mut writes = Vec::new();
    let mut refusals = Vec::new();
    for outcome in outcomes {
        let Outcome::Imported(policy) = outcome else {
            continue;
        };
        let table = policy.table.to_string();
        let file = match existing.by_table.get(&table) {
            Some((file, count)) if *count > 1 => {
                refusals.push(format!(
                    "{table} already has a policy in {}, beside {} other policies; import writes one policy per file: \
                     move it to a file of its own, or edit it by hand",
                    file.display(),
                    count - 1
                ));
                continue;
            }
            Some((file, _)) => file.clone(),
            None => default_file(config, &table),
        };
        if let Some(other) = existing.other_table_in(&file, &table) {
            refusals.push(format!("{} holds the policy of {other}; it is not overwritten with {table}'s, even with --force", file.display()));
            continue;
        }
        let full = config.root.join(&file);
        let action = match std::fs::read_to_string(&full) {
            Ok(current) if current == policy.text => Action::Unchanged,
            Ok(_) if force => Action::Overwrite,
            Ok(_) => {
                let whose = if existing.by_table.contains_key(&table) {
                    format!("{table}'s policy")
                } else {
                    "a file".into()
                };
                refusals.push(format!(
                    "{} already exists ({whose}); pass --force to overwrite it",
                    file.display()
                ));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Action::Create,
            Err(e) => {
                refusals.push(format!("{}: cannot read it: {e}", file.display()));
                continue;
            }
        };
        writes.push(FileWrite {
            file,
            policy,
            action,
        });
    }
    if !refusals.is_empty() {
        bail!(
            "import refused; nothing was written:\n  {}",
            refusals.join("\n  ")
        );
    }
    Ok(writes)
}

fn write_files(writes: &[FileWrite], config: &Config) -> Result<()> {
    let dir = config.policies_path();
    if writes.iter().any(|w| w.action != Action::Unchanged) {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for write in writes.iter().filter(|w| w.action != Action::Unchanged) {
        let full = config.root.join(&write.file);
        std::fs::write(&full, &write.policy.text)
            .with_context(|| format!("writing {}", write.file.display()))?;
    }
    Ok(())
}

/// One line per file written, its notes under it; one line per table skipped.
fn report(
    outcomes: &[Outcome],
    writes: &[FileWrite],
    config: &Config,
    out: &mut impl Write,
) -> Result<()> {
    for write in writes {
        let verb = match write.action {
            Action::Create => "wrote",
            Action::Overwrite => "overwrote",
            Action::Unchanged => "unchanged",
        };
        writeln!(
            out,
            "{verb} {} ({})",
            write.file.display(),
            write.policy.table
        )?;
        for note in &write.policy.notes {
            writeln!(out, "  {}: {}", note.kind.label(), note.text)?;
        }
    }
    let skipped: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Skipped(s) => Some(s),
            Outcome::Imported(_) => None,
        })
        .collect();
    for s in &skipped {
        writeln!(out, "skipped {}: {}", s.table, s.reason)?;
    }
    let will_change = writes
        .iter()
        .filter(|w| {
            w.policy
                .notes
                .iter()
                .any(|n| n.kind == NoteKind::WillChange)
        })
        .count();
    write!(
        out,
        "{} of {} tables imported into {}",
        writes.len(),
        outcomes.len(),
        config.policies_dir.display()
    )?;
    if !skipped.is_empty() {
        write!(out, "; {} skipped", skipped.len())?;
    }
    writeln!(out)?;
    if !writes.is_empty() {
        write!(out, "next: retentionc compile, then retentionc plan")?;
        if will_change > 0 {
            write!(
                out,
                " (it will show the changes listed under \"will change\")"
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
