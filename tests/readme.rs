//! The README shows files and command output; this test keeps them true.
//!
//! A code block preceded by a marker comment is checked:
//! - `<!-- checked: file PATH -->`: the block is the whole file;
//! - `<!-- checked: excerpt PATH -->`: each run of lines between `...` lines is in the file,
//!   in order;
//! - `<!-- checked: output NAME -->`: the block is what the scenario NAME prints, exactly;
//! - `<!-- checked: shape NAME -->`: the same, with every run of digits read as one number
//!   and runs of spaces as one (times, counts and widths vary from run to run).
//!
//! `RETENTIONC_UPDATE_README=1 cargo test --test readme` writes the output blocks anew.
//! The demo's block (`shape demo`) is compared by tests/demo_script.rs, which runs it.

mod common;

use std::path::Path;

use common::cluster::{Cluster, Partman};
use common::project::{TestProject, shape, stdout, text};

const README: &str = "README.md";

struct Block {
    kind: String,
    arg: String,
    /// Line index of the block's first content line in README.md.
    start: usize,
    lines: Vec<String>,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- checked: ")
            .and_then(|m| m.strip_suffix(" -->"))
        else {
            continue;
        };
        let (kind, arg) = marker.split_once(' ').expect("marker: kind and argument");
        assert!(
            lines.get(i + 1).is_some_and(|l| l.starts_with("```")),
            "README.md:{}: a marker must be followed by a code block",
            i + 1
        );
        let start = i + 2;
        let end = lines[start..]
            .iter()
            .position(|l| l.starts_with("```"))
            .map(|n| start + n)
            .expect("the code block ends");
        found.push(Block {
            kind: kind.to_string(),
            arg: arg.to_string(),
            start,
            lines: lines[start..end].iter().map(|l| l.to_string()).collect(),
        });
    }
    found
}

/// Each run of lines between `...` lines occurs, contiguous and in order, in `text`.
fn is_excerpt(lines: &[String], text: &str) -> Result<(), String> {
    let file: Vec<&str> = text.lines().collect();
    let mut from = 0;
    for run in lines.split(|l| l.trim() == "...") {
        if run.is_empty() {
            continue;
        }
        let at = (from..file.len().saturating_sub(run.len() - 1))
            .find(|&i| run.iter().zip(&file[i..]).all(|(a, b)| a == b))
            .ok_or_else(|| format!("not in the file (after line {from}):\n{}", run.join("\n")))?;
        from = at + run.len();
    }
    Ok(())
}

/// What the scenario `name` prints.
fn scenario(name: &str) -> String {
    match name {
        "compile-errors" => {
            let project = TestProject::new().policy(
                "logs",
                "table: public.app_logs\npartitioning:\n  column: logged_at\n  interval: 1 hour\nretention:\n  keep: 30 dayz\n  expird: drop\n",
            );
            let out = project.run(&["compile"]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
        "plan-empty-database" | "status-after-run" => {
            let db = Cluster::shared().database(Partman::V5);
            db.psql(&[
                "-c",
                "CREATE TABLE public.test_table1 (id bigserial, mtime timestamptz NOT NULL DEFAULT now()) PARTITION BY RANGE (mtime)",
            ]);
            let policy = std::fs::read_to_string(repo().join("policies/test_table1.yaml")).unwrap();
            let project = TestProject::for_db(&db)
                .policy("test_table1", &policy)
                .compiled();
            if name == "plan-empty-database" {
                let out = project.run(&["plan"]);
                assert!(out.status.success(), "{}", text(&out));
                return stdout(&out);
            }
            for args in [&["apply", "--auto-approve"][..], &["run"]] {
                let out = project.run(args);
                assert!(out.status.success(), "{}", text(&out));
            }
            db.psql(&["-c", "INSERT INTO public.test_table1 DEFAULT VALUES"]);
            let out = project.run(&["status"]);
            assert!(out.status.success(), "{}", text(&out));
            stdout(&out)
        }
        other => panic!("README.md names an unknown scenario {other:?}"),
    }
}

#[test]
fn the_readme_shows_the_real_files_and_output() {
    let path = repo().join(README);
    let readme = std::fs::read_to_string(&path).unwrap();
    let update = std::env::var_os("RETENTIONC_UPDATE_README").is_some();
    let mut lines: Vec<String> = readme.lines().map(String::from).collect();
    let mut problems = Vec::new();
    let found = blocks(&readme);
    assert!(
        found.len() >= 6,
        "README.md has {} checked blocks",
        found.len()
    );
    // Rewritten from the last block up, so earlier line numbers stay right.
    for block in found.iter().rev() {
        let place = format!("README.md:{} ({} {})", block.start, block.kind, block.arg);
        match block.kind.as_str() {
            "file" | "excerpt" => {
                let file = std::fs::read_to_string(repo().join(&block.arg))
                    .unwrap_or_else(|e| panic!("{place}: {e}"));
                let outcome = if block.kind == "file" {
                    let expected: Vec<&str> = file.lines().collect();
                    (block.lines.iter().map(String::as_str).collect::<Vec<_>>() == expected)
                        .then_some(())
                        .ok_or_else(|| "the block is not the whole file".to_string())
                } else {
                    is_excerpt(&block.lines, &file)
                };
                if let Err(e) = outcome {
                    problems.push(format!("{place}: {e}"));
                }
            }
            // The demo's own test compares its output with this block.
            "shape" if block.arg == "demo" => {}
            "output" | "shape" => {
                let actual = scenario(&block.arg);
                let shown = block.lines.join("\n");
                let same = if block.kind == "output" {
                    actual.trim_end() == shown.trim_end()
                } else {
                    shape(&actual) == shape(&shown)
                };
                if update && !same {
                    let end = block.start + block.lines.len();
                    lines.splice(
                        block.start..end,
                        actual.trim_end().lines().map(String::from),
                    );
                } else if !same {
                    problems.push(format!(
                        "{place}: the output is now\n{actual}\n(RETENTIONC_UPDATE_README=1 writes it)"
                    ));
                }
            }
            other => problems.push(format!("{place}: unknown kind {other:?}")),
        }
    }
    if update {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn excerpts_and_shapes_are_read_as_documented() {
    let file = "a\nb\nc\nd\ne\n";
    let lines = |t: &str| t.lines().map(String::from).collect::<Vec<_>>();
    assert!(is_excerpt(&lines("b\nc"), file).is_ok());
    assert!(is_excerpt(&lines("a\n...\nd\ne"), file).is_ok());
    assert!(is_excerpt(&lines("a\nc"), file).is_err());
    assert!(is_excerpt(&lines("d\n...\na"), file).is_err());
    assert_eq!(
        shape("took  12.5 s at 2026-11-25"),
        shape("took 3.75 s at 2027-01-01")
    );
    assert_ne!(shape("3 rows"), shape("3 row"));
}

/// The README's layout table names every module under src/: a file `src/x.rs` or a folder
/// `src/x/` is covered when either `src/x.rs` or `src/x/` is in the table, so a new module
/// cannot go unmentioned.
#[test]
fn the_layout_section_names_every_module() {
    let readme = std::fs::read_to_string(repo().join(README)).unwrap();
    let layout = readme
        .split("## How the code is laid out")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a section \"How the code is laid out\"");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo().join("src")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        let named = [format!("`src/{stem}.rs`"), format!("`src/{stem}/`")]
            .iter()
            .any(|path| layout.contains(path.as_str()));
        if !named {
            missing.push(format!("src/{name}"));
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "README.md's layout section does not name: {}",
        missing.join(", ")
    );
}
