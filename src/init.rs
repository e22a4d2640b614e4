//! `retentionc init [--force]`: a starter project (retentionc.yaml and one example policy).
//!
//! Not a stage of the pipeline: it only writes two text files that the first stage
//! (src/policy) then reads. The example compiles as written (tests/schema_init.rs checks it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// The starter settings: every key at its default, each explained.
pub const STARTER_CONFIG: &str = r#"# retentionc project settings. Every key is optional; the values below are the defaults.
# Reference: docs/policy-format.md in retentionc's repository.

# Folder of policy files (*.yaml), relative to this file.
policies: policies
# Folder of compiled SQL, committed and reviewed; never edited by hand.
generated: generated
# Schema where the pg_partman extension lives.
partman_schema: partman
# pg_partman major version the SQL is compiled for: 4 or 5.
partman_version: 5
# Schema that retentionc owns: prune procedures, its state and history tables.
schema: retention
# lock_timeout for every statement that `apply` and `run` send.
lock_timeout: 5s
"#;

/// The example policy: daily partitions kept 30 days, with the other keys shown commented out.
pub const EXAMPLE_POLICY: &str = r#"# An example retentionc policy: replace the table and column with yours.
# Editors with yaml-language-server complete and check keys: save the schema with
# `retentionc schema > retentionc.schema.json` and make this file's first line
# `# yaml-language-server: $schema=../retentionc.schema.json`.
table: public.example_events

partitioning:
  column: created_at       # timestamptz, timestamp or date
  interval: 1 day          # one partition per day
  premake: 4               # partitions kept ready ahead of now
  # start: "2026-01-01"    # first partition (default: pg_partman's choice)

retention:
  keep: 30 days            # partitions older than this are expired...
  expired: drop            # ...and dropped (or: detach, archive + archive_schema)

# Condition-based retention: batched DELETEs, committed batch by batch.
# deletes:
#   - name: debug_rows
#     where: "level = 'debug'"
#     older_than: 1 day
#     batch_size: 5000

# Run retention by pg_cron (needs the pg_cron extension); else run `retentionc run` yourself.
# schedule: "*/5 * * * *"
"#;

/// The files `init` writes, relative to the project root, with their text.
pub fn starter_files(config_path: &Path) -> Vec<(PathBuf, &'static str)> {
    let root = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::new(),
    };
    vec![
        (config_path.to_path_buf(), STARTER_CONFIG),
        (root.join("policies").join("example.yaml"), EXAMPLE_POLICY),
    ]
}

/// Writes the starter files; refuses, writing nothing, when one exists and `force` is false.
pub fn command(config_path: &Path, force: bool, out: &mut impl Write) -> Result<ExitCode> {
    let files = starter_files(config_path);
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        bail!(
            "{} already exist{}; nothing was written (use --force to overwrite)",
            existing.join(" and "),
            if existing.len() == 1 { "s" } else { "" }
        );
    }
    for (path, text) in &files {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(
        out,
        "next: edit {}, then `retentionc compile` and review generated/; `retentionc plan` shows what apply would change",
        files[1].0.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
