//! `retentionc compile [--check] [--remove TABLE]`: writes, or checks, generated/.
//!
//! generated/ holds one file per policy, retentionc's own file, and one file under
//! `_removed/` per table whose policy was removed while the database may still hold what
//! retentionc made for it: the statements that release it, so that even a removal runs
//! only statements a reviewer read. A policy's file whose policy is gone becomes such a
//! removal file; a removal file stays until the user deletes it (once every database
//! was applied), or until a policy names the table again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use similar::TextDiff;

use crate::model::{Project, QualifiedName};
use crate::render::{BOOTSTRAP_FILE, CompiledFile, REMOVED_DIR, Renderer, compile_project};

/// What generated/ should hold, given what it holds now (`existing`), the tables the user
/// asks to release (`remove`) and those whose conversion statements they ask for
/// (`convert`; a conversion file, once there, is compiled again until the user deletes it).
pub fn expected_files(
    project: &Project,
    existing: &BTreeMap<String, String>,
    remove: &[QualifiedName],
    convert: &[QualifiedName],
) -> Result<BTreeMap<String, CompiledFile>> {
    let mut files: BTreeMap<String, CompiledFile> =
        compile_project(&project.config, &project.policies)
            .into_iter()
            .map(|f| (f.file_name.clone(), f))
            .collect();
    let with_policy: BTreeSet<String> = project
        .policies
        .iter()
        .map(|p| p.table.to_string())
        .collect();
    for table in remove {
        if with_policy.contains(&table.to_string()) {
            bail!("--remove {table}: a policy still names this table; remove the policy first");
        }
    }
    let renderer = Renderer::new();
    for table in convert {
        let partitioned = project
            .policy(&table.to_string())
            .is_some_and(|p| p.partitioning.is_some());
        if !partitioned {
            bail!(
                "--convert {table}: no policy with \"partitioning\" names this table; a conversion makes the table the policy's partition set"
            );
        }
    }
    for policy in &project.policies {
        let name = crate::render::conversion_file_name(&policy.table);
        if (existing.contains_key(&name) || convert.contains(&policy.table))
            && let Some(file) = renderer.conversion(&project.config, policy)
        {
            files.insert(file.file_name.clone(), file);
        }
    }
    for table in removed_tables(existing, &with_policy)
        .into_iter()
        .chain(remove.iter().cloned())
    {
        let file = renderer.removal(&project.config, &table);
        files.insert(file.file_name.clone(), file);
    }
    Ok(files)
}

/// Tables generated/ has a file for (a policy's or a removal file) that no policy names.
fn removed_tables(
    existing: &BTreeMap<String, String>,
    with_policy: &BTreeSet<String>,
) -> Vec<QualifiedName> {
    existing
        .keys()
        .filter(|name| name.as_str() != BOOTSTRAP_FILE)
        .filter_map(|name| {
            let stem = name
                .strip_prefix(&format!("{REMOVED_DIR}/"))
                .unwrap_or(name)
                .strip_suffix(".sql")?;
            QualifiedName::parse(stem).ok()
        })
        .filter(|table| !with_policy.contains(&table.to_string()))
        .collect()
}

/// The `*.sql` files generated/ holds now (and those in its `_removed/`), by name
/// relative to generated/.
pub fn existing_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for (folder, prefix) in [
        (dir.to_path_buf(), String::new()),
        (dir.join(REMOVED_DIR), format!("{REMOVED_DIR}/")),
    ] {
        if !folder.is_dir() {
            continue;
        }
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?
        {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("sql") && path.is_file() {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                files.insert(format!("{prefix}{name}"), text);
            }
        }
    }
    Ok(files)
}

/// The project's compiled files, as generated/ should hold them now.
pub fn project_files(project: &Project) -> Result<BTreeMap<String, CompiledFile>> {
    let existing = existing_files(&project.config.generated_path())?;
    expected_files(project, &existing, &[], &[])
}

/// Files of generated/ that differ from what compile would write (missing, changed or
/// extra), by name.
pub fn stale_files(project: &Project) -> Result<Vec<String>> {
    let existing = existing_files(&project.config.generated_path())?;
    let expected = expected_files(project, &existing, &[], &[])?;
    let mut stale: Vec<String> = expected
        .iter()
        .filter(|(name, file)| existing.get(*name) != Some(&file.text))
        .map(|(name, _)| name.clone())
        .collect();
    stale.extend(
        existing
            .keys()
            .filter(|n| !expected.contains_key(*n))
            .cloned(),
    );
    stale.sort();
    Ok(stale)
}

/// Writes generated/: every expected file, and removes `.sql` files no policy produces.
/// `retentionc compile`: the project's own generated/, then one folder per environment
/// whose settings compile to other SQL; with `check`, only say whether they are current
/// (exit 1 when not).
pub fn command(
    config_path: &Path,
    check: bool,
    remove: &[String],
    convert: &[String],
    out: &mut impl Write,
) -> Result<ExitCode> {
    let projects = crate::fleet::compiled_projects(config_path)?;
    let tables = |option: &str, names: &[String]| {
        names
            .iter()
            .map(|t| QualifiedName::parse(t).map_err(|e| anyhow!("--{option} {t}: {e}")))
            .collect::<Result<Vec<_>>>()
    };
    let remove = tables("remove", remove)?;
    let convert = tables("convert", convert)?;
    if check {
        let mut up_to_date = true;
        for project in &projects {
            up_to_date &= self::check(project, out)?;
        }
        return Ok(if up_to_date {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    for project in &projects {
        compile_with(project, &remove, &convert, out)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compile(project: &Project, remove: &[QualifiedName], out: &mut impl Write) -> Result<()> {
    compile_with(project, remove, &[], out)
}

/// `compile`, also writing the conversion files of the tables in `convert`.
pub fn compile_with(
    project: &Project,
    remove: &[QualifiedName],
    convert: &[QualifiedName],
    out: &mut impl Write,
) -> Result<()> {
    let dir = project.config.generated_path();
    let existing = existing_files(&dir)?;
    let expected = expected_files(project, &existing, remove, convert)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, file) in &expected {
        if existing.get(name) != Some(&file.text) {
            let path = dir.join(name);
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("creating {}", folder.display()))?;
            }
            std::fs::write(&path, &file.text)
                .with_context(|| format!("writing {}", path.display()))?;
            if name.ends_with(".convert.sql") && !existing.contains_key(name) {
                writeln!(
                    out,
                    "wrote {} (converts the plain table into a partitioned one: review, commit, then `retentionc convert` or `apply --convert`; delete it once every database is converted)",
                    shown(project, name)
                )?;
            } else if name.starts_with(REMOVED_DIR) && !existing.contains_key(name) {
                writeln!(
                    out,
                    "wrote {} (releases a table whose policy was removed: review, commit, apply; delete it once every database is applied)",
                    shown(project, name)
                )?;
            } else {
                writeln!(out, "wrote {}", shown(project, name))?;
            }
        }
    }
    for name in existing.keys().filter(|n| !expected.contains_key(*n)) {
        let path = dir.join(name);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        writeln!(
            out,
            "removed {} (no policy produces it)",
            shown(project, name)
        )?;
    }
    let removed_dir = dir.join(REMOVED_DIR);
    if removed_dir.is_dir() && std::fs::read_dir(&removed_dir)?.next().is_none() {
        std::fs::remove_dir(&removed_dir)
            .with_context(|| format!("removing {}", removed_dir.display()))?;
    }
    writeln!(
        out,
        "{} policies compiled into {}",
        project.policies.len(),
        project.config.generated_dir.display()
    )?;
    Ok(())
}

/// Compares generated/ with what compile would write; returns whether it is up to date,
/// after printing a unified diff of every difference.
pub fn check(project: &Project, out: &mut impl Write) -> Result<bool> {
    let dir = project.config.generated_path();
    let existing = existing_files(&dir)?;
    let expected = expected_files(project, &existing, &[], &[])?;
    let mut stale = false;
    for (name, file) in &expected {
        let text = &file.text;
        let current = existing.get(name).map(String::as_str).unwrap_or("");
        if existing.get(name) != Some(text) {
            stale = true;
            let path = shown(project, name);
            let diff = TextDiff::from_lines(current, text.as_str());
            let old_header = if existing.contains_key(name) {
                format!("a/{path}")
            } else {
                "/dev/null".to_string()
            };
            write!(
                out,
                "{}",
                diff.unified_diff()
                    .context_radius(3)
                    .header(&old_header, &format!("b/{path}"))
            )?;
        }
    }
    for (name, text) in existing.iter().filter(|(n, _)| !expected.contains_key(*n)) {
        stale = true;
        let path = shown(project, name);
        writeln!(
            out,
            "# {path}: no policy produces this file; compile would remove it"
        )?;
        let diff = TextDiff::from_lines(text.as_str(), "");
        write!(
            out,
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(&format!("a/{path}"), "/dev/null")
        )?;
    }
    if stale {
        writeln!(
            out,
            "{}/ is stale: run `retentionc compile` and commit the result",
            project.config.generated_dir.display()
        )?;
    } else {
        writeln!(
            out,
            "{}/ is up to date ({} files)",
            project.config.generated_dir.display(),
            expected.len()
        )?;
    }
    Ok(!stale)
}

fn shown(project: &Project, name: &str) -> String {
    project
        .config
        .generated_dir
        .join(name)
        .display()
        .to_string()
}
