//! `retentionc compile [--check]`: writes, or checks, generated/.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use similar::TextDiff;

use crate::model::Project;
use crate::render::compile_project;

/// What generated/ should hold, by file name.
pub fn expected_files(project: &Project) -> BTreeMap<String, String> {
    compile_project(&project.config, &project.policies)
        .into_iter()
        .map(|f| (f.file_name, f.text))
        .collect()
}

/// The `*.sql` files generated/ holds now, by file name.
fn existing_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("sql") && path.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.insert(name, text);
        }
    }
    Ok(files)
}

/// Writes generated/: every expected file, and removes `.sql` files no policy produces.
pub fn compile(project: &Project, out: &mut impl Write) -> Result<()> {
    let dir = project.config.generated_path();
    let expected = expected_files(project);
    let existing = existing_files(&dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &expected {
        if existing.get(name) != Some(text) {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            writeln!(out, "wrote {}", shown(project, name))?;
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
    let expected = expected_files(project);
    let existing = existing_files(&dir)?;
    let mut stale = false;
    for (name, text) in &expected {
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
            "generated/ is stale: run `retentionc compile` and commit the result"
        )?;
    } else {
        writeln!(out, "generated/ is up to date ({} files)", expected.len())?;
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
