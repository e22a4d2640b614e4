//! Which files a project reads, through the real binary: policy files, the policies
//! folder and the generated folder must lie inside the project folder (symbolic links
//! within it are fine), a policy that cannot be read is an error rather than a policy
//! that silently disappears, and `--config PATH` must name a file that exists.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use common::project::text;

const POLICY: &str = "\
table: public.events
partitioning:
  column: created_at
  interval: 1 day
retention:
  keep: 30 days
";

const SECRET: &str = "s3cr3t-pw";

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retentionc"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("the retentionc binary runs")
}

/// A workspace holding `project/` (retentionc.yaml, policies/) and, beside it,
/// `outside/` with an environment file holding a password.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("policies")).unwrap();
    std::fs::write(project.join("retentionc.yaml"), "").unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("app.env"),
        format!("DATABASE_URL=postgres://app:{SECRET}@db.internal/app\n"),
    )
    .unwrap();
    std::fs::write(outside.join("events.yaml"), POLICY).unwrap();
    dir
}

#[test]
fn a_policy_linked_to_a_file_outside_the_project_is_refused_without_showing_it() {
    let dir = workspace();
    let project = dir.path().join("project");
    symlink(
        dir.path().join("outside/app.env"),
        project.join("policies/app.yaml"),
    )
    .unwrap();
    let out = run(&project, &["compile"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("error: policies/app.yaml:1:1: leads outside the project folder"),
        "{shown}"
    );
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        !shown.contains("DATABASE_URL"),
        "the target's text is shown:\n{shown}"
    );
    assert!(!project.join("generated").exists());
}

#[test]
fn a_policy_linked_to_a_valid_policy_outside_is_refused_too() {
    let dir = workspace();
    let project = dir.path().join("project");
    symlink(
        dir.path().join("outside/events.yaml"),
        project.join("policies/events.yaml"),
    )
    .unwrap();
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("policies/events.yaml:1:1: leads outside"),
        "{}",
        text(&out)
    );
}

#[test]
fn links_inside_the_project_are_followed() {
    let dir = workspace();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("shared")).unwrap();
    std::fs::write(project.join("shared/events.yaml"), POLICY).unwrap();
    symlink(
        "../shared/events.yaml",
        project.join("policies/events.yaml"),
    )
    .unwrap();
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(project.join("generated/public.events.sql").is_file());

    // The policies folder itself may be a link within the project.
    std::fs::remove_dir_all(project.join("policies")).unwrap();
    std::fs::remove_dir_all(project.join("generated")).unwrap();
    symlink("shared", project.join("policies")).unwrap();
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_policies_folder_linked_outside_the_project_is_refused() {
    let dir = workspace();
    let project = dir.path().join("project");
    std::fs::remove_dir_all(project.join("policies")).unwrap();
    symlink(dir.path().join("outside"), project.join("policies")).unwrap();
    let out = run(&project, &["compile"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("retentionc.yaml:1:1: policies: the policies folder \"policies\" leads outside the project folder"),
        "{shown}"
    );
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn a_generated_folder_linked_outside_the_project_is_refused_and_nothing_written_there() {
    let dir = workspace();
    let project = dir.path().join("project");
    std::fs::write(project.join("policies/events.yaml"), POLICY).unwrap();
    let target = dir.path().join("outside/generated");
    std::fs::create_dir_all(&target).unwrap();
    symlink(&target, project.join("generated")).unwrap();
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("generated: the generated folder \"generated\" leads outside"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

    // Set in retentionc.yaml, the error points at the key.
    std::fs::remove_file(project.join("generated")).unwrap();
    std::fs::write(
        project.join("retentionc.yaml"),
        "generated: ../outside/generated\n",
    )
    .unwrap();
    let out = run(&project, &["compile"]);
    assert!(
        text(&out).contains("retentionc.yaml:1:12: generated: the generated folder \"../outside/generated\" leads outside"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn a_policy_that_cannot_be_read_is_an_error_not_a_missing_policy() {
    let dir = workspace();
    let project = dir.path().join("project");
    std::fs::write(project.join("policies/events.yaml"), POLICY).unwrap();
    symlink("gone.yaml", project.join("policies/broken.yaml")).unwrap();
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "policies/broken.yaml:1:1: is a symbolic link to a place that does not exist"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn a_fifo_named_like_a_policy_is_refused_without_blocking() {
    let dir = workspace();
    let project = dir.path().join("project");
    let fifo = project.join("policies/pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("policies/pipe.yaml:1:1: is not a regular file"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_explicit_config_that_does_not_exist_is_an_error_for_every_command_that_reads_it() {
    let dir = workspace();
    let project = dir.path().join("project");
    std::fs::write(project.join("policies/events.yaml"), POLICY).unwrap();
    for command in [
        vec!["compile"],
        vec!["compile", "--check"],
        vec!["plan"],
        vec!["apply", "--auto-approve"],
        vec!["run"],
        vec!["status"],
        vec!["import"],
    ] {
        let mut args = vec!["--config", "prod.yaml"];
        args.extend(&command);
        let out = run(&project, &args);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .starts_with("error: --config prod.yaml: the file does not exist"),
            "{command:?}: {}",
            text(&out)
        );
    }
    assert!(!project.join("generated").exists());
}

#[test]
fn without_config_a_missing_retentionc_yaml_means_the_defaults() {
    let dir = workspace();
    let project = dir.path().join("project");
    std::fs::remove_file(project.join("retentionc.yaml")).unwrap();
    std::fs::write(project.join("policies/events.yaml"), POLICY).unwrap();
    let out = run(&project, &["compile"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(project.join("generated/public.events.sql").is_file());
    // An explicit path that exists works as before, from another folder too.
    let out = run(
        dir.path(),
        &["--config", "project/retentionc.yaml", "compile", "--check"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the project has no retentionc.yaml: {}",
        text(&out)
    );
    std::fs::write(project.join("retentionc.yaml"), "").unwrap();
    let out = run(
        dir.path(),
        &["--config", "project/retentionc.yaml", "compile", "--check"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn init_schema_and_completions_do_not_need_the_config_to_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--config", "new/retentionc.yaml", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.path().join("new/retentionc.yaml").is_file());
    for args in [
        vec!["--config", "nope.yaml", "schema"],
        vec!["--config", "nope.yaml", "completions", "bash"],
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
}
