//! The GitHub Action (`action.yml`) and the example workflows, checked offline: valid
//! against the official schemas (check-jsonschema's vendored copies; installed by
//! scripts/install-deps.sh into /opt/retentionc-ci/venv, or on PATH), and saying what
//! README.md promises: retentionc installed from the action's own checkout, the plan in
//! markdown with --detailed-exitcode, one comment found by its marker and updated.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn check_jsonschema() -> PathBuf {
    let venv = PathBuf::from("/opt/retentionc-ci/venv/bin/check-jsonschema");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("check-jsonschema")
    }
}

fn validate(schema: &str, files: &[PathBuf]) {
    let out = Command::new(check_jsonschema())
        .args(["--builtin-schema", schema])
        .args(files)
        .output()
        .expect("check-jsonschema runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{schema}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn action_yml_is_a_valid_composite_action() {
    validate("vendor.github-actions", &[repo_path("action.yml")]);
    let action: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(repo_path("action.yml")).unwrap()).unwrap();
    assert_eq!(action["runs"]["using"], "composite");
    assert_eq!(action["inputs"]["database-url"]["required"], true);
    let steps = action["runs"]["steps"].to_string();
    for needed in [
        "cargo install --locked --path \\\"$GITHUB_ACTION_PATH\\\"",
        "compile --check",
        "plan --format markdown --detailed-exitcode",
        "<!-- retentionc-plan -->",
        "updateComment",
        "createComment",
        "actions/github-script@v7",
    ] {
        assert!(steps.contains(needed), "action.yml lacks {needed}");
    }
    // The comment is found by the marker the markdown plan starts with.
    assert!(steps.contains(retentionc::plan::format::MARKDOWN_MARKER));
}

#[test]
fn example_workflows_are_valid() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("examples/github-actions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    validate("vendor.github-workflows", &files);
}
