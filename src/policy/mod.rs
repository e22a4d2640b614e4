//! Policy text -> validated model: the first stage of the pipeline.
//!
//! `load_project` reads retentionc.yaml and every policy file, reports all errors of
//! all files together, and returns a `model::Project` only when there are none.

pub mod error;
pub mod ident;
pub mod interval;
pub mod parse;
pub mod reader;
pub mod source;
pub mod suggest;
pub mod where_clause;
pub mod write;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::load_config;
use crate::model::{Config, Policy, Project};
use error::{PolicyError, PolicyErrors};
use reader::Reader;
use yaml::{Pos, parse_documents};

/// Loads the project whose settings are at `config_path` (which may not exist).
pub fn load_project(config_path: &Path) -> Result<Project, PolicyErrors> {
    let config = load_config(config_path)?;
    let policies = load_policies(&config)?;
    Ok(Project { config, policies })
}

/// The policy files of a project: `*.yaml` and `*.yml` in the policies folder, sorted.
/// The folder must lie inside the project folder (links followed); so must each file,
/// which `load_policies` checks as it reads it. Entries that are not folders are listed
/// even when they are not readable files (a broken link), so that a policy never
/// disappears without an error.
pub fn policy_files(config: &Config) -> Result<Vec<PathBuf>, PolicyErrors> {
    let dir = config.policies_path();
    let folder_error = |message: String| {
        PolicyErrors(vec![PolicyError {
            file: display_path(&config.root, &dir),
            pos: Pos { line: 1, column: 1 },
            key: String::new(),
            message,
            line_text: None,
        }])
    };
    source::resolve_inside(&config.root, &dir)
        .map_err(|why| folder_error(format!("the policies folder {why}")))?;
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| folder_error(format!("cannot read the policies folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !is_folder(e))
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

/// Whether a folder entry is a folder, links followed; the entry's own type spares a
/// `stat` for every entry that is not a link.
fn is_folder(entry: &std::fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(kind) if !kind.is_symlink() => kind.is_dir(),
        _ => entry.path().is_dir(),
    }
}

pub fn load_policies(config: &Config) -> Result<Vec<Policy>, PolicyErrors> {
    // Each file is read and parsed on its own, on the machine's cores; policies and errors
    // are taken in file order, as if read one after another.
    let parsed = crate::parallel::map(&policy_files(config)?, |path| {
        let shown = display_path(&config.root, path);
        match source::read_listed_source(path, &shown, &config.root) {
            Ok(text) => parse_policy_text(&shown, &text, config),
            Err(e) => (Vec::new(), vec![e]),
        }
    });
    let mut errors = Vec::new();
    let mut policies = Vec::new();
    for (mut found, mut errs) in parsed {
        policies.append(&mut found);
        errors.append(&mut errs);
    }
    check_across_policies(&config.root, &policies, &mut errors);
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Parses one file's text (any number of YAML documents).
pub fn parse_policy_text(
    file: &Path,
    text: &str,
    config: &Config,
) -> (Vec<Policy>, Vec<PolicyError>) {
    let mut reader = Reader::new(file, text);
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            reader.error(e.pos, "", format!("invalid YAML: {}", e.message));
            return (Vec::new(), reader.errors);
        }
    };
    if docs.is_empty() {
        reader.error(Pos { line: 1, column: 1 }, "", "the file holds no policy");
    }
    let mut policies = Vec::new();
    for (index, node) in docs.iter().enumerate() {
        if let Some(policy) = parse::parse_policy(&mut reader, node, index + 1, config) {
            policies.push(policy);
        }
    }
    // Report in reading order, whatever order the checks ran in.
    let mut errors = reader.errors;
    errors.sort_by_key(|e| (e.pos.line, e.pos.column));
    (policies, errors)
}

/// Checks that span policies: unique tables, unique prune procedure names.
fn check_across_policies(root: &Path, policies: &[Policy], errors: &mut Vec<PolicyError>) {
    let mut tables: BTreeMap<String, &Policy> = BTreeMap::new();
    let mut procedures: BTreeMap<String, &Policy> = BTreeMap::new();
    for policy in policies {
        let table = policy.table.to_string();
        if let Some(first) = tables.get(&table) {
            errors.push(cross_error(
                root,
                policy,
                "table",
                format!(
                    "table {table} already has a policy at {}; each table has exactly one policy",
                    first.source.locate("table")
                ),
            ));
            continue;
        }
        tables.insert(table, policy);
        if let Some(procedure) = policy.prune_procedure() {
            if let Some(first) = procedures.get(procedure.as_str()) {
                errors.push(cross_error(root, policy, "table", format!(
                    "the prune procedure {procedure} would also be made for {} ({}); two tables with the same name in different schemas cannot both have delete rules",
                    first.table,
                    first.source.locate("table")
                )));
                continue;
            }
            procedures.insert(procedure.to_string(), policy);
        }
    }
}

fn cross_error(root: &Path, policy: &Policy, key: &str, message: String) -> PolicyError {
    let pos = policy
        .source
        .key_positions
        .get(key)
        .copied()
        .unwrap_or(Pos { line: 1, column: 1 });
    // source.file is shown relative to the project root, not to the working directory.
    let line_text = source::read_source(&root.join(&policy.source.file), &policy.source.file, None)
        .ok()
        .and_then(|t| error::source_line(&t, pos.line).map(str::to_string));
    PolicyError {
        file: policy.source.file.clone(),
        pos,
        key: key.to_string(),
        message,
        line_text,
    }
}

/// A path relative to the project root when it lies inside it, as users refer to it.
pub fn display_path(root: &Path, path: &Path) -> PathBuf {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .strip_prefix("./")
        .unwrap_or(relative)
        .to_path_buf()
}
