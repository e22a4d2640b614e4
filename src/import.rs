//! `retentionc import [--table NAME ...] [--force]`: adopt an existing pg_partman set-up.
//!
//! Reads every `part_config` row (live.rs), describes each table as a policy (mapping.rs,
//! pure), and writes one file per table, `policies/<schema>.<table>.yaml`, named like
//! its compiled `generated/<schema>.<table>.sql`. A table that already has a policy is
//! skipped (and said so); with --force, the keys import manages are rewritten in that
//! policy's file, in place (edit.rs), and everything else in it stays. Files are decided
//! first and written last.

pub mod edit;
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
use crate::model::Policy;
use crate::policy::ident::QualifiedName;
use crate::policy::source::decode_text;
use crate::policy::{display_path, parse_policy_text, policy_files};
use edit::{KeyChange, rewrite_managed_keys};
use live::{LiveTable, PartmanInstall};
use mapping::{ImportedPolicy, Outcome, import_table};

/// `retentionc import`.
pub async fn command(config_path: &Path, args: &ImportArgs) -> Result<ExitCode> {
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
    let decided = decide_files(&outcomes, &config, &existing, args.force);
    write_files(&decided.writes, &config)?;
    report(&outcomes, &decided, &config, out)?;
    Ok(decided
        .skipped
        .into_iter()
        .map(|(table, _)| table)
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

/// The project's existing policies, by table, read leniently (a file with errors still
/// tells which tables its valid documents describe).
struct ExistingPolicies {
    /// `schema.table` -> the policy (its source names the file as shown).
    by_table: BTreeMap<String, Policy>,
    /// Every file read (as shown), with the tables it holds policies for.
    files: BTreeMap<PathBuf, Vec<String>>,
}

impl ExistingPolicies {
    fn scan(config: &Config) -> ExistingPolicies {
        let mut by_table = BTreeMap::new();
        let mut files = BTreeMap::new();
        for path in policy_files(config).unwrap_or_default() {
            let Ok(Some(file)) = read_policy_file(config, &path) else {
                continue;
            };
            let (policies, _) = parse_policy_text(&file.shown, &file.text, config);
            files.insert(
                file.shown.clone(),
                policies.iter().map(|p| p.table.to_string()).collect(),
            );
            for policy in policies {
                by_table.entry(policy.table.to_string()).or_insert(policy);
            }
        }
        ExistingPolicies { by_table, files }
    }
}

/// A policy file's text, and whether it began with a byte-order mark (kept on rewrite).
struct PolicyFile {
    shown: PathBuf,
    text: String,
    bom: bool,
}

impl PolicyFile {
    /// The file's content: its text, after the byte-order mark it had.
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = if self.bom {
            b"\xEF\xBB\xBF".to_vec()
        } else {
            Vec::new()
        };
        bytes.extend_from_slice(self.text.as_bytes());
        bytes
    }
}

/// The file at `path`, or None when it does not exist.
fn read_policy_file(config: &Config, path: &Path) -> Result<Option<PolicyFile>, String> {
    let shown = display_path(&config.root, path);
    crate::policy::source::resolve_inside(&config.root, path)
        .map_err(|why| format!("{} {why}; it is not read nor written", shown.display()))?;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read it: {e}", shown.display())),
    };
    let text = decode_text(&bytes).map_err(|e| format!("{}: {}", shown.display(), e.message))?;
    Ok(Some(PolicyFile {
        shown,
        text,
        bom: bytes.starts_with(b"\xEF\xBB\xBF"),
    }))
}

/// One file import writes (or finds already saying what it would write).
struct FileWrite<'a> {
    /// As shown to the user, relative to the project root.
    file: PathBuf,
    policy: &'a ImportedPolicy,
    action: Action,
    /// The file's whole new content.
    bytes: Vec<u8>,
}

enum Action {
    Create,
    /// The keys import manages, rewritten in the table's existing policy.
    Update(Vec<KeyChange>),
    Unchanged,
}

/// What import does with each table: files to write, and tables skipped with the reason.
struct Decided<'a> {
    writes: Vec<FileWrite<'a>>,
    /// (table, why), for tables described but not written.
    skipped: Vec<(String, String)>,
}

/// Decides every file before any is written. A table with a policy already is skipped,
/// or, with --force, has the keys import manages rewritten in that policy's file; a file
/// that holds something else is never overwritten.
fn decide_files<'a>(
    outcomes: &'a [Outcome],
    config: &Config,
    existing: &ExistingPolicies,
    force: bool,
) -> Decided<'a> {
    let mut decided = Decided {
        writes: Vec::new(),
        skipped: Vec::new(),
    };
    // Files edited so far, with their new text: a file holding several policies gets each
    // table's edit in turn.
    let mut edited: BTreeMap<PathBuf, PolicyFile> = BTreeMap::new();
    for outcome in outcomes {
        let policy = match outcome {
            Outcome::Imported(policy) => policy,
            Outcome::Skipped(s) => {
                decided.skipped.push((s.table.clone(), s.reason.clone()));
                continue;
            }
        };
        let table = policy.table.to_string();
        match decide_file(policy, config, existing, force, &mut edited) {
            Ok(write) => decided.writes.push(write),
            Err(why) => decided.skipped.push((table, why)),
        }
    }
    // Every write of an edited file carries its final text.
    for write in &mut decided.writes {
        if let Some(file) = edited.get(&write.file) {
            write.bytes = file.bytes();
        }
    }
    decided
}

fn decide_file<'a>(
    policy: &'a ImportedPolicy,
    config: &Config,
    existing: &ExistingPolicies,
    force: bool,
    edited_files: &mut BTreeMap<PathBuf, PolicyFile>,
) -> Result<FileWrite<'a>, String> {
    let table = policy.table.to_string();
    if let Some(current) = existing.by_table.get(&table) {
        let file = current.source.file.clone();
        if !force {
            return Err(format!(
                "it already has a policy in {}; left as it is (import --force rewrites there only the keys import manages)",
                file.display()
            ));
        }
        let read = match edited_files.remove(&file) {
            Some(read) => read,
            None => read_policy_file(config, &config.root.join(&file))?
                .ok_or_else(|| format!("{} disappeared while import ran", file.display()))?,
        };
        let edited = match rewrite_managed_keys(&file, &read.text, config, current, &policy.policy)
        {
            Ok(edited) => edited,
            Err(why) => {
                edited_files.insert(file.clone(), read);
                return Err(format!("{}: {why}", file.display()));
            }
        };
        let action = if edited.changes.is_empty() {
            Action::Unchanged
        } else {
            Action::Update(edited.changes)
        };
        let now = PolicyFile {
            text: edited.text,
            ..read
        };
        let bytes = now.bytes();
        edited_files.insert(file.clone(), now);
        return Ok(FileWrite {
            file,
            policy,
            action,
            bytes,
        });
    }
    let file = default_file(config, &table);
    if let Some(others) = existing.files.get(&file)
        && let Some(other) = others.first()
    {
        return Err(format!(
            "{} holds the policy of {other}; it is not overwritten with {table}'s",
            file.display()
        ));
    }
    match read_policy_file(config, &config.root.join(&file))? {
        None => Ok(FileWrite {
            file,
            policy,
            action: Action::Create,
            bytes: policy.text.clone().into_bytes(),
        }),
        Some(_) => Err(format!(
            "{} exists and holds no policy retentionc can read; it is not overwritten (move it away, or fix it)",
            file.display()
        )),
    }
}

fn write_files(writes: &[FileWrite], config: &Config) -> Result<()> {
    let changed = |w: &&FileWrite| !matches!(w.action, Action::Unchanged);
    let dir = config.policies_path();
    if writes.iter().any(|w| changed(&w)) {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for write in writes.iter().filter(changed) {
        let full = config.root.join(&write.file);
        std::fs::write(&full, &write.bytes)
            .with_context(|| format!("writing {}", write.file.display()))?;
    }
    Ok(())
}

/// One line per file written, its notes and rewritten keys under it; one line per table
/// skipped.
fn report(
    outcomes: &[Outcome],
    decided: &Decided,
    config: &Config,
    out: &mut impl Write,
) -> Result<()> {
    for write in &decided.writes {
        let verb = match write.action {
            Action::Create => "wrote",
            Action::Update(_) => "updated",
            Action::Unchanged => "unchanged",
        };
        writeln!(
            out,
            "{verb} {} ({})",
            write.file.display(),
            write.policy.table
        )?;
        if let Action::Update(changes) = &write.action {
            for change in changes {
                writeln!(out, "  rewrote {change}")?;
            }
        }
        for note in &write.policy.notes {
            writeln!(out, "  {}: {}", note.kind.label(), note.text)?;
        }
    }
    for (table, reason) in &decided.skipped {
        writeln!(out, "skipped {table}: {reason}")?;
    }
    write!(
        out,
        "{} of {} tables imported into {}",
        decided.writes.len(),
        outcomes.len(),
        config.policies_dir.display()
    )?;
    if !decided.skipped.is_empty() {
        write!(out, "; {} skipped", decided.skipped.len())?;
    }
    writeln!(out)?;
    if !decided.writes.is_empty() {
        writeln!(
            out,
            "next: retentionc compile, then retentionc plan (it plans no change to these tables' pg_partman settings)"
        )?;
    }
    Ok(())
}
