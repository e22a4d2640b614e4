//! Every bad policy in tests/fixtures/bad/ is refused at compile time with a message that
//! names the file, the line and column, and the key, and says what was found and what was
//! expected. One fixture, one file (or, for retentionc.yaml cases, one small folder); the
//! full error text of each is an insta snapshot named after it.
//!
//! A fixture says which key its error is about in a comment line `# error at: <key path>`;
//! without one, the error is about the file or the policy as a whole.

use std::path::{Path, PathBuf};

use retentionc::model::Config;
use retentionc::policy::error::PolicyErrors;
use retentionc::policy::{load_policies, load_project};

const BAD: &str = "tests/fixtures/bad";

/// Loads one fixture the way `compile` would: a file alone in a project's policies
/// folder (with default settings), or a folder holding retentionc.yaml.
fn load_fixture(path: &Path) -> Result<usize, PolicyErrors> {
    if path.is_dir() {
        // Relative to the crate root (cargo's working directory for tests), so that the
        // paths in messages are the same on every machine.
        let relative = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        return load_project(&relative.join("retentionc.yaml")).map(|p| p.policies.len());
    }
    let project = tempfile::tempdir().unwrap();
    let policies = project.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(path, policies.join(path.file_name().unwrap())).unwrap();
    // A missing retentionc.yaml gives the defaults, rooted at the project folder.
    let config: Config =
        retentionc::config::load_config(&project.path().join("retentionc.yaml")).unwrap();
    load_policies(&config).map(|p| p.len())
}

/// The key a fixture's error must name (its `# error at:` line), if any.
fn expected_key(path: &Path) -> Option<String> {
    let policy_file = if path.is_dir() {
        let policies = path.join("policies");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&policies)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .next()
            .unwrap_or_else(|| path.join("retentionc.yaml"))
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(policy_file).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("# error at: "))
        .map(|k| k.trim().to_string())
}

#[test]
fn every_bad_policy_is_refused_with_file_line_column_and_key() {
    insta::glob!("fixtures/bad/*", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let errors = match load_fixture(path) {
            Ok(n) => panic!("{name}: expected errors, but {n} policies loaded"),
            Err(errors) => errors,
        };
        assert!(!errors.0.is_empty(), "{name}: an Err without errors");
        let text = errors.to_string();
        // Every error names the file it is about, by the path the user knows it by.
        for error in &errors.0 {
            let file = error.file.display().to_string();
            // A policy by its path from the project root; retentionc.yaml as it was given.
            let names_the_fixture = if path.is_dir() {
                path.join(&file).is_file() || file.starts_with(&format!("{BAD}/{name}/"))
            } else {
                file == format!("policies/{name}")
            };
            assert!(
                names_the_fixture,
                "{name}: error names another file: {error}"
            );
            assert!(
                !Path::new(&file).is_absolute(),
                "{name}: absolute path in {error}"
            );
            assert!(
                error.pos.line >= 1 && error.pos.column >= 1,
                "{name}: no place in {error}"
            );
            let place = format!("{}:{}:{}: ", file, error.pos.line, error.pos.column);
            assert!(
                text.contains(&place),
                "{name}: {place:?} missing from\n{text}"
            );
        }
        match expected_key(path) {
            Some(key) => {
                assert!(
                    errors.0.iter().any(|e| e.key == key),
                    "{name}: no error about {key}:\n{text}"
                );
                assert!(
                    text.contains(&format!(": {key}: ")),
                    "{name}: key {key} not shown in\n{text}"
                );
            }
            None => assert!(
                errors.0.iter().all(|e| e.key.is_empty()),
                "{name}: names a key but has no `# error at:` line:\n{text}"
            ),
        }
        assert!(text.ends_with("nothing was changed"), "{name}: {text}");
        insta::assert_snapshot!("bad", text);
    });
}

#[test]
fn the_corpus_covers_at_least_22_distinct_mistakes() {
    let count = std::fs::read_dir(BAD).unwrap().count();
    assert!(count >= 22, "only {count} bad fixtures");
}

#[test]
fn every_mistake_in_a_file_is_reported_not_only_the_first() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(BAD)
        .join("several_mistakes.yaml");
    let errors = load_fixture(&path).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "table",
            "partitioning.premake",
            "retention.keep",
            "deletes[0].where",
            "deletes[0].batchsize"
        ],
        "{errors}"
    );
    assert!(
        errors
            .to_string()
            .ends_with("5 errors found; nothing was changed"),
        "{errors}"
    );
}

#[test]
fn errors_of_every_file_are_reported_together() {
    let project = tempfile::tempdir().unwrap();
    let policies = project.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for name in [
        "expired_misspelt.yaml",
        "name_upper_case.yaml",
        "batch_size_zero.yaml",
    ] {
        std::fs::copy(Path::new(BAD).join(name), policies.join(name)).unwrap();
    }
    let config = retentionc::config::load_config(&project.path().join("retentionc.yaml")).unwrap();
    let errors = load_policies(&config).unwrap_err();
    let files: Vec<String> = errors
        .0
        .iter()
        .map(|e| e.file.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "policies/batch_size_zero.yaml",
            "policies/expired_misspelt.yaml",
            "policies/name_upper_case.yaml"
        ],
        "{errors}"
    );
}
