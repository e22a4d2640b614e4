//! `retentionc schema` and `retentionc init`, through the real binary where it matters.
//!
//! The schema is for editors; the compiler is the authority. These tests keep the two in
//! agreement: every policy shipped in policies/ (and the one `init` writes) is valid
//! against the schema, and each bad fixture in tests/fixtures/schema_bad/ is rejected by
//! both the schema and the compiler.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::project::{stderr, stdout};
use serde_json::Value;

fn retentionc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retentionc"))
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The schema as `retentionc schema` prints it.
fn printed_schema() -> Value {
    let output = retentionc()
        .arg("schema")
        .output()
        .expect("retentionc runs");
    assert!(
        output.status.success(),
        "retentionc schema failed: {}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).expect("retentionc schema prints JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&printed_schema()).expect("the printed schema is a valid JSON Schema")
}

/// Each YAML document of a file as JSON (what a YAML language server validates).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

/// The schema's complaints about each document of a file, as text.
fn schema_errors(validator: &jsonschema::Validator, path: &Path) -> Vec<String> {
    yaml_documents(path)
        .iter()
        .enumerate()
        .flat_map(|(i, doc)| {
            validator
                .iter_errors(doc)
                .map(|e| format!("document {}: {} at {}", i + 1, e, e.instance_path()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What the compiler says about one policy file, with the default settings.
fn compiler_errors(path: &Path) -> Vec<String> {
    let config = retentionc::config::load_config(Path::new("/nonexistent/retentionc.yaml"))
        .expect("defaults");
    let text = fs::read_to_string(path).unwrap();
    let (_, errors) = retentionc::policy::parse_policy_text(path, &text, &config);
    errors.iter().map(|e| format!("{e:?}")).collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

#[test]
fn schema_is_draft_2020_12_and_matches_the_library() {
    let schema = printed_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema, retentionc::schema::policy_schema());
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys must be flagged"
    );
    assert_eq!(schema["required"], serde_json::json!(["table"]));
    for key in ["table", "partitioning", "retention", "deletes", "schedule"] {
        assert!(schema["properties"][key].is_object(), "no property {key}");
        assert!(
            schema["properties"][key]["description"].is_string(),
            "{key} has no description"
        );
    }
}

#[test]
fn every_shipped_policy_is_valid_against_the_schema() {
    let validator = validator();
    let files = yaml_files(&repo_path("policies"));
    assert!(!files.is_empty(), "policies/ holds no policy");
    let mut documents = 0;
    for file in &files {
        documents += yaml_documents(file).len();
        let errors = schema_errors(&validator, file);
        assert!(
            errors.is_empty(),
            "{} fails the schema:\n{}",
            file.display(),
            errors.join("\n")
        );
    }
    assert!(
        documents > files.len(),
        "app_logs.yaml's two documents are both checked"
    );
}

#[test]
fn schema_and_compiler_both_reject_each_bad_fixture() {
    let validator = validator();
    let files = yaml_files(&repo_path("tests/fixtures/schema_bad"));
    assert!(files.len() >= 8, "expected the schema_bad fixtures");
    for file in &files {
        let schema = schema_errors(&validator, file);
        assert!(!schema.is_empty(), "the schema accepts {}", file.display());
        let compiler = compiler_errors(file);
        assert!(
            !compiler.is_empty(),
            "the compiler accepts {} (schema says: {schema:?})",
            file.display()
        );
    }
}

#[test]
fn schema_reports_the_unknown_key_by_name() {
    let validator = validator();
    let errors = schema_errors(
        &validator,
        &repo_path("tests/fixtures/schema_bad/unknown_top_level_key.yaml"),
    );
    assert!(errors.iter().any(|e| e.contains("retension")), "{errors:?}");
    let errors = schema_errors(
        &validator,
        &repo_path("tests/fixtures/schema_bad/bad_expired_enum.yaml"),
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("delete") && e.contains("/retention/expired")),
        "{errors:?}"
    );
}

#[test]
fn init_writes_a_project_that_compiles_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let output = retentionc()
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "init failed: {}", stderr(&output));
    let said = stdout(&output);
    assert!(
        said.contains("wrote retentionc.yaml") && said.contains("wrote policies/example.yaml"),
        "{said}"
    );
    let example = dir.path().join("policies/example.yaml");
    assert!(dir.path().join("retentionc.yaml").is_file());
    assert!(example.is_file());

    let errors = schema_errors(&validator(), &example);
    assert!(
        errors.is_empty(),
        "the example fails the schema: {errors:?}"
    );

    let output = retentionc()
        .arg("compile")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "compile of the starter project failed:\n{}{}",
        stdout(&output),
        stderr(&output)
    );
    let generated = dir.path().join("generated/public.example_events.sql");
    let sql = fs::read_to_string(&generated).expect("compile wrote the example's SQL");
    assert!(sql.contains("create_parent"), "{sql}");
    assert!(sql.contains("'30 days'"), "{sql}");

    let output = retentionc()
        .args(["compile", "--check"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "compile --check after compile: {}",
        stdout(&output)
    );
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        retentionc()
            .arg("init")
            .current_dir(dir.path())
            .output()
            .unwrap()
            .status
            .success()
    );
    let example = dir.path().join("policies/example.yaml");
    fs::write(&example, "# mine\n").unwrap();

    let output = retentionc()
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "second init must fail");
    let message = stderr(&output);
    assert!(
        message.contains("--force") && message.contains("already exist"),
        "{message}"
    );
    assert_eq!(
        fs::read_to_string(&example).unwrap(),
        "# mine\n",
        "nothing may be overwritten"
    );

    let output = retentionc()
        .args(["init", "--force"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "init --force failed: {}",
        stderr(&output)
    );
    assert_eq!(
        fs::read_to_string(&example).unwrap(),
        retentionc::init::EXAMPLE_POLICY
    );
}

#[test]
fn init_follows_the_config_option() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("db");
    fs::create_dir(&project).unwrap();
    let output = retentionc()
        .args(["--config", "db/retentionc.yaml", "init"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(project.join("retentionc.yaml").is_file());
    assert!(project.join("policies/example.yaml").is_file());
    let output = retentionc()
        .args(["--config", "db/retentionc.yaml", "compile"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        project
            .join("generated/public.example_events.sql")
            .is_file()
    );
}
