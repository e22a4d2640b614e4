//! The SQL that `compile` writes for every example policy (policies/) and for the edge
//! cases in tests/fixtures/good/, under pg_partman 4 and 5, as insta snapshots: a change
//! to a template shows up here as a reviewable diff of the generated files.

use std::path::{Path, PathBuf};

use retentionc::config::load_config;
use retentionc::model::{Config, PartmanMajor, Policy};
use retentionc::policy::load_policies;
use retentionc::render::{BOOTSTRAP_FILE, CompiledFile, compile_project};

/// The repository's own settings, compiled for `major`.
fn repo_config(major: PartmanMajor) -> Config {
    let mut config =
        load_config(Path::new("retentionc.yaml")).expect("the repository's retentionc.yaml loads");
    config.partman_version = major;
    config
}

/// The good fixtures as a project of their own (default settings but `major`).
fn fixtures_config(major: PartmanMajor) -> Config {
    let mut config = repo_config(major);
    config.root = PathBuf::from("tests/fixtures");
    config.policies_dir = PathBuf::from("good");
    config
}

fn compile(config: &Config) -> (Vec<Policy>, Vec<CompiledFile>) {
    let policies = load_policies(config).unwrap_or_else(|e| panic!("{e}"));
    let files = compile_project(config, &policies);
    (policies, files)
}

/// Snapshots every compiled file; the bootstrap only with `with_bootstrap` (it is the
/// same for every project of one configuration).
fn snapshot_all(prefix: &str, config: &Config, with_bootstrap: bool) -> Vec<CompiledFile> {
    let (_, files) = compile(config);
    for file in files
        .iter()
        .filter(|f| with_bootstrap || f.file_name != BOOTSTRAP_FILE)
    {
        let name = format!(
            "{prefix}_v{}__{}",
            config.partman_version.number(),
            file.file_name
        );
        insta::assert_snapshot!(name, file.text);
    }
    files
}

#[test]
fn example_policies_compile_to_the_reviewed_sql_for_pg_partman_4_and_5() {
    for major in [PartmanMajor::V4, PartmanMajor::V5] {
        let files = snapshot_all("policies", &repo_config(major), true);
        let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
        assert_eq!(
            names,
            [
                BOOTSTRAP_FILE,
                "public.app_logs.sql",
                "public.user_sessions.sql",
                "public.events.sql",
                "public.test_table1.sql"
            ],
            "bootstrap first, then the policies in file order"
        );
    }
}

#[test]
fn edge_case_policies_compile_for_pg_partman_4_and_5() {
    for major in [PartmanMajor::V4, PartmanMajor::V5] {
        snapshot_all("good", &fixtures_config(major), false);
    }
}

#[test]
fn compiling_twice_gives_byte_identical_files() {
    for config in [
        repo_config(PartmanMajor::V4),
        repo_config(PartmanMajor::V5),
        fixtures_config(PartmanMajor::V5),
    ] {
        let (_, first) = compile(&config);
        let (_, second) = compile(&config);
        assert_eq!(first.len(), second.len());
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.file_name, b.file_name);
            assert!(
                a.text == b.text,
                "{} differs between two compiles",
                a.file_name
            );
        }
    }
}

#[test]
fn the_repository_generated_folder_matches_a_fresh_compile() {
    // The same promise as `compile --check` (tests/cli_compile.rs runs the binary), checked
    // here without a process so that a failure shows which file went stale.
    let config = load_config(Path::new("retentionc.yaml")).unwrap();
    let (_, files) = compile(&config);
    for file in files {
        let path = config.generated_path().join(&file.file_name);
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            on_disk == file.text,
            "{} is stale: run `retentionc compile`",
            path.display()
        );
    }
}

#[test]
fn setup_calls_create_parent_as_each_pg_partman_major_expects() {
    for (config, label) in [
        (repo_config(PartmanMajor::V4), "v4"),
        (repo_config(PartmanMajor::V5), "v5"),
    ] {
        let (policies, files) = compile(&config);
        let mut partitioned = 0;
        for (policy, file) in policies.iter().zip(&files[1..]) {
            assert_eq!(file.file_name, policy.generated_file_name());
            let Some(setup) = file.statement("setup") else {
                assert!(
                    policy.partitioning.is_none(),
                    "{label} {}: no setup",
                    file.file_name
                );
                continue;
            };
            partitioned += 1;
            let sql = &setup.sql;
            assert!(sql.contains("create_parent\"("), "{label}: {sql}");
            assert!(
                sql.contains("p_parent_table := "),
                "named arguments only: {sql}"
            );
            match config.partman_version {
                PartmanMajor::V4 => {
                    assert!(sql.contains("p_type := 'native'"), "{label}: {sql}");
                    assert!(
                        !sql.contains("p_default_table"),
                        "{label}: 4.7 has no p_default_table: {sql}"
                    );
                    assert!(!sql.contains("'range'"), "{label}: {sql}");
                }
                PartmanMajor::V5 => {
                    assert!(sql.contains("p_type := 'range'"), "{label}: {sql}");
                    assert!(sql.contains("p_default_table := true"), "{label}: {sql}");
                    assert!(!sql.contains("'native'"), "{label}: {sql}");
                }
            }
        }
        assert_eq!(
            partitioned, 3,
            "{label}: three example tables are partitioned"
        );
    }
}

#[test]
fn the_bootstrap_does_not_depend_on_the_policies() {
    let config = repo_config(PartmanMajor::V5);
    let (policies, with_policies) = compile(&config);
    assert!(!policies.is_empty());
    let alone = compile_project(&config, &[]);
    assert_eq!(alone.len(), 1);
    assert_eq!(alone[0].file_name, BOOTSTRAP_FILE);
    assert_eq!(alone[0].text, with_policies[0].text);
}
