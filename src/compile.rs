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

use crate::model::{Policy, Project, QualifiedName};
use crate::render::{
    BOOTSTRAP_FILE, CompiledFile, REMOVED_DIR, Renderer, conversion_file_name, removal_file_name,
};

/// What one file of generated/ is made from.
enum Source<'p> {
    Bootstrap,
    Policy(&'p Policy),
    /// The statements that convert the policy's plain table into a partitioned one.
    Conversion(&'p Policy),
    /// The release of a table whose policy was removed.
    Removal(QualifiedName),
}

/// The files generated/ should hold, by name (relative to generated/), each rendered only
/// when asked for: compile, check and apply take them one at a time, so that memory does
/// not grow with the text of every file at once.
pub struct ProjectFiles<'p> {
    project: &'p Project,
    renderer: Renderer,
    files: BTreeMap<String, Source<'p>>,
}

impl<'p> ProjectFiles<'p> {
    /// What generated/ should hold, given the names it holds now (`existing`), the tables
    /// the user asks to release (`remove`) and those whose conversion statements they ask
    /// for (`convert`; a conversion file, once there, is compiled again until the user
    /// deletes it).
    pub fn new(
        project: &'p Project,
        existing: &BTreeSet<String>,
        remove: &[QualifiedName],
        convert: &[QualifiedName],
    ) -> Result<ProjectFiles<'p>> {
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
        let mut files = BTreeMap::new();
        files.insert(BOOTSTRAP_FILE.to_string(), Source::Bootstrap);
        for policy in &project.policies {
            files.insert(policy.generated_file_name(), Source::Policy(policy));
        }
        // Only a policy with partitioning has a conversion file (see `Renderer::conversion`).
        for policy in project.policies.iter().filter(|p| p.partitioning.is_some()) {
            let name = conversion_file_name(&policy.table);
            if existing.contains(&name) || convert.contains(&policy.table) {
                files.insert(name, Source::Conversion(policy));
            }
        }
        // A file the project produces already (its own, a policy's, a conversion's) is no
        // removed policy's: only the others are read as table names.
        let unclaimed = existing.iter().filter(|name| !files.contains_key(*name));
        for table in removed_tables(unclaimed, &with_policy)
            .into_iter()
            .chain(remove.iter().cloned())
        {
            files.insert(removal_file_name(&table), Source::Removal(table));
        }
        Ok(ProjectFiles {
            project,
            renderer: Renderer::new(),
            files,
        })
    }

    /// What the project's generated/ should hold now.
    pub fn of(project: &'p Project) -> Result<ProjectFiles<'p>> {
        let existing = existing_names(&project.config.generated_path())?;
        ProjectFiles::new(project, &existing, &[], &[])
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// The file of that name, rendered now; None when the project does not produce it.
    pub fn render(&self, name: &str) -> Option<CompiledFile> {
        let config = &self.project.config;
        Some(match self.files.get(name)? {
            Source::Bootstrap => self.renderer.bootstrap(config),
            Source::Policy(policy) => self.renderer.policy(config, policy),
            Source::Conversion(policy) => self
                .renderer
                .conversion(config, policy)
                .expect("a policy with partitioning has a conversion file"),
            Source::Removal(table) => self.renderer.removal(config, table),
        })
    }

    /// `f` of each file, rendered, with its name and the text generated/ holds for it now
    /// (None when it holds no such file), in the files' order. The files are rendered and
    /// read on the machine's cores, and handed to `f`, which keeps what it needs of them.
    fn each<'s, R: Send>(
        &'s self,
        existing: &BTreeSet<String>,
        f: impl Fn(&'s String, CompiledFile, Option<String>) -> Result<R> + Sync,
    ) -> Vec<(&'s String, Result<R>)> {
        let dir = self.project.config.generated_path();
        let names: Vec<&'s String> = self.files.keys().collect();
        let results = crate::parallel::map(&names, |&name| {
            let file = self.render(name).expect("a listed file renders");
            let current = if existing.contains(name) {
                Some(read_text(&dir.join(name))?)
            } else {
                None
            };
            f(name, file, current)
        });
        names.into_iter().zip(results).collect()
    }
}

/// Tables generated/ has a file for (a policy's or a removal file) that no policy names,
/// of the files `names`.
fn removed_tables<'a>(
    names: impl Iterator<Item = &'a String>,
    with_policy: &BTreeSet<String>,
) -> Vec<QualifiedName> {
    let removed_prefix = format!("{REMOVED_DIR}/");
    names
        .filter(|name| name.as_str() != BOOTSTRAP_FILE)
        .filter_map(|name| {
            let stem = name
                .strip_prefix(&removed_prefix)
                .unwrap_or(name)
                .strip_suffix(".sql")?;
            QualifiedName::parse(stem).ok()
        })
        .filter(|table| !with_policy.contains(&table.to_string()))
        .collect()
}

/// The names of the `*.sql` files generated/ holds now (and those in its `_removed/`),
/// relative to generated/.
pub fn existing_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
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
            let entry = entry?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("sql") && is_file(&entry) {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                names.insert(format!("{prefix}{name}"));
            }
        }
    }
    Ok(names)
}

/// Whether a folder entry is a file, links followed; the entry's own type spares a `stat`
/// for every entry that is not a link.
fn is_file(entry: &std::fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(kind) if !kind.is_symlink() => kind.is_file(),
        _ => entry.path().is_file(),
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Files of generated/ that differ from what compile would write (missing, changed or
/// extra), by name.
pub fn stale_files(project: &Project) -> Result<Vec<String>> {
    let existing = existing_names(&project.config.generated_path())?;
    let expected = ProjectFiles::new(project, &existing, &[], &[])?;
    let mut stale = Vec::new();
    for (name, differs) in expected.each(&existing, |_, file, current| {
        Ok(current.as_deref() != Some(file.text.as_str()))
    }) {
        if differs? {
            stale.push(name.clone());
        }
    }
    stale.extend(existing.iter().filter(|n| !expected.contains(n)).cloned());
    stale.sort();
    Ok(stale)
}

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

/// Writes generated/: every expected file that differs from what it holds, and removes
/// `.sql` files no policy produces.
pub fn compile(project: &Project, remove: &[QualifiedName], out: &mut impl Write) -> Result<()> {
    compile_with(project, remove, &[], out)
}

/// What compile did with one expected file.
enum Written {
    /// generated/ held it already, byte for byte.
    Unchanged,
    Changed,
    New,
}

/// `compile`, also writing the conversion files of the tables in `convert`.
pub fn compile_with(
    project: &Project,
    remove: &[QualifiedName],
    convert: &[QualifiedName],
    out: &mut impl Write,
) -> Result<()> {
    let dir = project.config.generated_path();
    let existing = existing_names(&dir)?;
    let expected = ProjectFiles::new(project, &existing, remove, convert)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Files are rendered, compared and (when they differ) written on the machine's cores;
    // what was written is told in the files' order, and then the first failure, if any.
    let outcomes = expected.each(&existing, |name, file, current| {
        let written = match current {
            Some(text) if text == file.text => return Ok(Written::Unchanged),
            Some(_) => Written::Changed,
            None => Written::New,
        };
        write_file(&dir, name, &file.text)?;
        Ok(written)
    });
    let mut first_failure = None;
    for (name, outcome) in outcomes {
        match outcome {
            Ok(Written::Unchanged) => {}
            Ok(Written::New) if name.ends_with(".convert.sql") => writeln!(
                out,
                "wrote {} (converts the plain table into a partitioned one: review, commit, then `retentionc convert` or `apply --convert`; delete it once every database is converted)",
                shown(project, name)
            )?,
            Ok(Written::New) if name.starts_with(REMOVED_DIR) => writeln!(
                out,
                "wrote {} (releases a table whose policy was removed: review, commit, apply; delete it once every database is applied)",
                shown(project, name)
            )?,
            Ok(Written::New | Written::Changed) => writeln!(out, "wrote {}", shown(project, name))?,
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_failure {
        return Err(e);
    }
    for name in existing.iter().filter(|n| !expected.contains(n)) {
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

/// Writes `text` as the file `name` of `dir` (a name under `_removed/` makes that folder).
fn write_file(dir: &Path, name: &str, text: &str) -> Result<()> {
    if let Some(folder) = Path::new(name)
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        let folder = dir.join(folder);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Compares generated/ with what compile would write; returns whether it is up to date,
/// after printing a unified diff of every difference.
pub fn check(project: &Project, out: &mut impl Write) -> Result<bool> {
    let dir = project.config.generated_path();
    let existing = existing_names(&dir)?;
    let expected = ProjectFiles::new(project, &existing, &[], &[])?;
    let mut stale = false;
    // Files are compared on the machine's cores; only the differences are kept, and
    // printed in the files' order.
    let diffs = expected.each(&existing, |name, file, current| {
        if current.as_deref() == Some(file.text.as_str()) {
            return Ok(None);
        }
        let path = shown(project, name);
        let old_header = match current {
            Some(_) => format!("a/{path}"),
            None => "/dev/null".to_string(),
        };
        let diff = TextDiff::from_lines(current.as_deref().unwrap_or(""), file.text.as_str());
        Ok(Some(
            diff.unified_diff()
                .context_radius(3)
                .header(&old_header, &format!("b/{path}"))
                .to_string(),
        ))
    });
    for (_, diff) in diffs {
        if let Some(diff) = diff? {
            stale = true;
            write!(out, "{diff}")?;
        }
    }
    for name in existing.iter().filter(|n| !expected.contains(n)) {
        stale = true;
        let path = shown(project, name);
        let text = read_text(&dir.join(name))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A project of `n` policies (`public.t000`, ...), each with a delete rule.
    fn project(n: usize) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("retentionc.yaml"), "partman_version: 5\n").unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for i in 0..n {
            std::fs::write(
                dir.path().join(format!("policies/t{i:03}.yaml")),
                format!(
                    "table: public.t{i:03}\npartitioning:\n  column: at\n  interval: 1 day\n\
                     deletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n"
                ),
            )
            .unwrap();
        }
        let project = crate::policy::load_project(&dir.path().join("retentionc.yaml")).unwrap();
        (dir, project)
    }

    fn lines(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn what_compile_and_check_tell_comes_in_file_order() {
        // Enough files that they are rendered on several threads.
        let (dir, project) = project(200);
        let generated = dir.path().join("generated");
        let mut out = Vec::new();
        compile(&project, &[], &mut out).unwrap();
        let wrote: Vec<String> = lines(&out)
            .into_iter()
            .filter(|l| l.starts_with("wrote "))
            .collect();
        let expected: Vec<String> = std::iter::once("wrote generated/_retentionc.sql".to_string())
            .chain((0..200).map(|i| format!("wrote generated/public.t{i:03}.sql")))
            .collect();
        assert_eq!(wrote, expected);

        std::fs::write(generated.join("public.t010.sql"), "edited\n").unwrap();
        std::fs::remove_file(generated.join("public.t150.sql")).unwrap();
        std::fs::write(generated.join("public.t190.sql"), "edited\n").unwrap();
        assert_eq!(
            stale_files(&project).unwrap(),
            ["public.t010.sql", "public.t150.sql", "public.t190.sql"]
        );
        let mut out = Vec::new();
        assert!(!check(&project, &mut out).unwrap());
        let headers: Vec<String> = lines(&out)
            .into_iter()
            .filter(|l| l.starts_with("--- "))
            .collect();
        assert_eq!(
            headers,
            [
                "--- a/generated/public.t010.sql",
                "--- /dev/null",
                "--- a/generated/public.t190.sql"
            ]
        );

        let mut out = Vec::new();
        compile(&project, &[], &mut out).unwrap();
        assert_eq!(
            lines(&out)[..3],
            [
                "wrote generated/public.t010.sql",
                "wrote generated/public.t150.sql",
                "wrote generated/public.t190.sql"
            ]
        );
        let mut out = Vec::new();
        assert!(
            check(&project, &mut out).unwrap(),
            "{}",
            lines(&out).join("\n")
        );
    }

    #[test]
    fn a_file_that_cannot_be_written_fails_compile_after_the_others_are_written() {
        let (dir, project) = project(100);
        let generated = dir.path().join("generated");
        // A folder where a policy's file belongs: writing the file fails.
        std::fs::create_dir_all(generated.join("public.t040.sql")).unwrap();
        let mut out = Vec::new();
        let failure = compile(&project, &[], &mut out).unwrap_err();
        assert!(
            format!("{failure:#}").contains("writing ")
                && format!("{failure:#}").contains("public.t040.sql"),
            "{failure:#}"
        );
        let wrote = lines(&out);
        assert_eq!(wrote.len(), 100, "{wrote:?}");
        assert!(!wrote.iter().any(|l| l.contains("t040")), "{wrote:?}");
        let renderer = Renderer::new();
        for policy in &project.policies {
            if policy.table.name.as_str() == "t040" {
                continue;
            }
            let file = renderer.policy(&project.config, policy);
            assert_eq!(
                std::fs::read_to_string(generated.join(&file.file_name)).unwrap(),
                file.text
            );
        }
    }
}
