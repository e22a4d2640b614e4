//! `retentionc compile` and `compile --check` through the real binary, in temporary
//! projects: what is written, what the exit status is, and that a bad policy leaves
//! generated/ exactly as it was.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use common::cluster::retentionc_bin;
use common::project::{TestProject, stderr, stdout, text};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every file under `dir` with its bytes and modification time; None when `dir` is absent.
fn folder_state(dir: &Path) -> Option<BTreeMap<PathBuf, (Vec<u8>, SystemTime)>> {
    if !dir.exists() {
        return None;
    }
    let mut state = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                state.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    (std::fs::read(&path).unwrap(), modified),
                );
            }
        }
    }
    Some(state)
}

const BAD_POLICY: &str = "\
table: public.orders
partitioning:
  column: created_at
  interval: 1 day
retention:
  keep: 30 dayz
";

#[test]
fn compile_writes_the_same_files_as_the_repository_holds() {
    let project = TestProject::from_repository();
    let out = project.run_in_root(&["compile"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = folder_state(&project.generated_dir()).expect("generated/ was made");
    let reviewed = folder_state(&Path::new(REPO).join("generated")).unwrap();
    let names =
        |s: &BTreeMap<PathBuf, (Vec<u8>, SystemTime)>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&written), names(&reviewed));
    for (name, (bytes, _)) in &written {
        assert!(
            bytes == &reviewed[name].0,
            "{} differs from the repository's",
            name.display()
        );
    }
    assert!(
        stdout(&out).contains("wrote generated/_retentionc.sql"),
        "{}",
        text(&out)
    );
    // A second compile has nothing to write and touches nothing.
    let before = folder_state(&project.generated_dir());
    let again = project.run_in_root(&["compile"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(!stdout(&again).contains("wrote"), "{}", text(&again));
    assert_eq!(before, folder_state(&project.generated_dir()));
}

#[test]
fn check_exits_0_when_generated_is_current() {
    let project = TestProject::from_repository();
    project.compile();
    let out = project.run_in_root(&["compile", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("up to date"), "{}", text(&out));
}

#[test]
fn check_exits_1_with_a_unified_diff_when_a_file_was_edited() {
    let project = TestProject::from_repository();
    project.compile();
    let file = project.generated("public.events.sql");
    let original = std::fs::read_to_string(&file).unwrap();
    let edited = original.replace("retention = '90 days'", "retention = '9 days'");
    assert_ne!(original, edited);
    std::fs::write(&file, &edited).unwrap();
    let before = folder_state(&project.generated_dir());

    let out = project.run_in_root(&["compile", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let diff = stdout(&out);
    assert!(
        diff.contains("--- a/generated/public.events.sql\n"),
        "{diff}"
    );
    assert!(
        diff.contains("+++ b/generated/public.events.sql\n"),
        "{diff}"
    );
    assert!(diff.contains("\n@@ -"), "{diff}");
    assert!(diff.contains("\n-SET retention = '9 days',\n"), "{diff}");
    assert!(diff.contains("\n+SET retention = '90 days',\n"), "{diff}");
    assert!(
        !diff.contains("public.app_logs.sql"),
        "only the edited file is shown: {diff}"
    );
    assert_eq!(
        before,
        folder_state(&project.generated_dir()),
        "--check writes nothing"
    );
}

#[test]
fn check_exits_1_when_an_extra_sql_file_exists() {
    let project = TestProject::from_repository();
    project.compile();
    std::fs::write(project.generated("public.orders.sql"), "SELECT 1;\n").unwrap();
    let before = folder_state(&project.generated_dir());
    let out = project.run_in_root(&["compile", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("generated/public.orders.sql"),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains("-SELECT 1;"), "{}", text(&out));
    assert_eq!(
        before,
        folder_state(&project.generated_dir()),
        "--check writes nothing"
    );
    // compile itself removes it.
    project.compile();
    assert!(!project.generated("public.orders.sql").exists());
}

#[test]
fn check_exits_1_when_a_file_is_missing() {
    let project = TestProject::from_repository();
    project.compile();
    std::fs::remove_file(project.generated("public.test_table1.sql")).unwrap();
    let before = folder_state(&project.generated_dir());
    let out = project.run_in_root(&["compile", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let diff = stdout(&out);
    assert!(
        diff.contains("--- /dev/null\n+++ b/generated/public.test_table1.sql\n"),
        "{diff}"
    );
    assert_eq!(
        before,
        folder_state(&project.generated_dir()),
        "--check writes nothing"
    );
}

#[test]
fn check_exits_1_when_generated_does_not_exist() {
    let project = TestProject::from_repository();
    let out = project.run_in_root(&["compile", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!project.generated_dir().exists(), "--check made generated/");
}

#[test]
fn a_bad_policy_fails_with_its_place_and_changes_nothing_in_generated() {
    let project = TestProject::from_repository();
    project.compile();
    // Make generated/ differ from what compile would write, so a compile that went ahead
    // regardless would show.
    std::fs::write(
        project.generated("public.events.sql"),
        "-- edited by hand\n",
    )
    .unwrap();
    project.write_policy("orders", BAD_POLICY);
    let before = folder_state(&project.generated_dir());
    for args in [&["compile"][..], &["compile", "--check"][..]] {
        let out = project.run_in_root(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("policies/orders.yaml:6:9: retention.keep: "),
            "{args:?}: no file:line:col and key in\n{err}"
        );
        assert!(err.contains("\"30 dayz\""), "{args:?}: {err}");
        assert!(err.contains("nothing was changed"), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", text(&out));
        assert_eq!(
            before,
            folder_state(&project.generated_dir()),
            "{args:?} changed generated/"
        );
    }
}

#[test]
fn a_bad_policy_does_not_create_generated() {
    let project = TestProject::from_repository();
    project.write_policy("orders", BAD_POLICY);
    let out = project.run_in_root(&["compile"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("policies/orders.yaml:6:9: retention.keep: "),
        "{}",
        text(&out)
    );
    assert!(
        !project.generated_dir().exists(),
        "generated/ was made despite the error"
    );
}

#[test]
fn a_bad_retentionc_yaml_fails_and_changes_nothing() {
    let project = TestProject::from_repository();
    project.compile();
    std::fs::write(project.config_path(), "partman_version: 6\n").unwrap();
    let before = folder_state(&project.generated_dir());
    let out = project.run_in_root(&["compile"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("retentionc.yaml:1:18: partman_version: "),
        "{}",
        text(&out)
    );
    assert_eq!(before, folder_state(&project.generated_dir()));
}

#[test]
fn config_paths_are_relative_to_retentionc_yaml_not_the_working_directory() {
    let project = TestProject::from_repository();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = project
        .command(&["compile"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(project.generated("_retentionc.sql").is_file());
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "wrote into the working directory"
    );
}

#[test]
fn the_repository_generated_folder_passes_compile_check() {
    let elsewhere = tempfile::tempdir().unwrap();
    let config = Path::new(REPO).join("retentionc.yaml");
    let out = Command::new(retentionc_bin())
        .args(["--config", config.to_str().unwrap(), "compile", "--check"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "generated/ is stale: run `retentionc compile`\n{}",
        text(&out)
    );
}
