//! Installing retentionc as README.md says: `cargo install --locked --path .` and
//! `cargo install --locked --git URL`, with the release profile, into temporary roots;
//! `--version` names the commit; the manual pages render with `man -l`; and
//! `cargo package --locked` passes.
//!
//! Release builds take minutes on two cores, so this test is `#[ignore]`d in a plain
//! `cargo test` and run once by scripts/test.sh, beside the rest of the suite (whose tests
//! spend much of their time waiting on PostgreSQL). Every build here uses
//! `target/install-check/`, never the suite's `target/`, so the two never wait for each
//! other's lock, and a second run only rebuilds what changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn git(args: &[&str]) -> String {
    let out = run(Command::new("git").args(args).current_dir(repo()));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(repo())
        .env("CARGO_TARGET_DIR", repo().join("target/install-check"));
    cmd
}

fn version_of(bin: &Path) -> String {
    let out = run(Command::new(bin).arg("--version"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
#[ignore = "release builds take minutes: scripts/test.sh runs it once (--ignored)"]
fn cargo_install_from_the_path_and_from_git_gives_a_working_retentionc() {
    let root = tempfile::tempdir().unwrap();
    run(cargo()
        .args(["install", "--locked", "--path", "."])
        .arg("--root")
        .arg(root.path()));
    let bin = root.path().join("bin/retentionc");
    let size = std::fs::metadata(&bin).unwrap().len();
    eprintln!(
        "installed binary: {} bytes ({:.1} MB)",
        size,
        size as f64 / 1e6
    );
    let head = git(&["rev-parse", "--short=12", "HEAD"]);
    let version = version_of(&bin);
    assert_eq!(
        version,
        format!("retentionc {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );

    // The manual pages: every command's, rendered by man itself.
    let pages = tempfile::tempdir().unwrap();
    run(Command::new(&bin)
        .args(["man", "--out-dir"])
        .arg(pages.path()));
    for name in [
        "retentionc",
        "retentionc-status",
        "retentionc-plan",
        "retentionc-run",
    ] {
        let page: PathBuf = pages.path().join(format!("{name}.1"));
        let out = run(Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&page)
            .env("MANWIDTH", "80"));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("NAME") && shown.contains(name),
            "{name}: {shown}"
        );
        assert!(shown.contains("SYNOPSIS"), "{name}: {shown}");
    }

    // From git: the committed HEAD of this repository, by URL, as a user would.
    let common_dir = PathBuf::from(git(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
    ]));
    let full = git(&["rev-parse", "HEAD"]);
    let root_git = tempfile::tempdir().unwrap();
    run(cargo()
        .args(["install", "--locked", "--git"])
        .arg(format!("file://{}", common_dir.display()))
        .args(["--rev", &full, "retentionc", "--root"])
        .arg(root_git.path()));
    assert_eq!(version_of(&root_git.path().join("bin/retentionc")), version);
}

#[test]
#[ignore = "builds the packaged crate: scripts/test.sh runs it once (--ignored)"]
fn cargo_package_passes_with_full_metadata() {
    let out = run(cargo().args(["package", "--locked", "--allow-dirty"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("warning: manifest has no"), "{said}");
    let list = run(cargo().args(["package", "--locked", "--allow-dirty", "--list"]));
    let files = String::from_utf8_lossy(&list.stdout);
    for needed in ["LICENSE", "README.md", "build.rs", "templates/prune.sql.j2"] {
        assert!(
            files.lines().any(|l| l == needed),
            "{needed} not packaged:\n{files}"
        );
    }
}
