//! Names the commit retentionc was built from, for `retentionc --version`: from git when
//! the crate's folder is the top of a git checkout (a clone, `cargo install --git`), else
//! from `.cargo_vcs_info.json` (what `cargo package` records in a published crate), else
//! "commit unknown". Never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = git_commit(&dir).or_else(|| packaged_commit(&dir));
    let detail = match commit {
        Some(commit) => format!("commit {commit}"),
        None => "commit unknown".to_string(),
    };
    println!("cargo:rustc-env=RETENTIONC_BUILD_COMMIT={detail}");
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn git_commit(dir: &Path) -> Option<String> {
    // Only this crate's own checkout: not a repository it happens to sit inside.
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    // Build again when HEAD moves: HEAD itself, the branch it points to, packed refs.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={}", dir.join(path).display());
        }
    }
    Some(commit)
}

fn packaged_commit(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let start = info.find("\"sha1\"")?;
    let value = info[start + 6..].split('"').nth(1)?;
    let hex = value.len() >= 12 && value.chars().all(|c| c.is_ascii_hexdigit());
    hex.then(|| value[..12].to_string())
}
