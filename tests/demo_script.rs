//! The sandbox demo, end to end: `scripts/demo.sh --seconds 20` must pass its own proof.
//!
//! It installs nothing new when scripts/install-deps.sh has run (the script calls it; it
//! returns at once when everything is there), uses the retentionc binary Cargo built for
//! this test run (`RETENTIONC_BIN`), starts its own throwaway cluster, and takes about
//! 30 seconds.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::project::shape;

const DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn demo_script_proves_retention_in_its_last_lines() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("bash")
        .arg(repo.join("scripts/demo.sh"))
        .args(["--seconds", "20"])
        .env("RETENTIONC_BIN", env!("CARGO_BIN_EXE_retentionc"))
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs scripts/demo.sh");

    // Read both pipes on threads so neither fills up while we wait.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            // SIGTERM: the script's trap stops its cluster and removes its folder.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            panic!("scripts/demo.sh did not finish within {DEADLINE:?} ({status})");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let report = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    eprintln!(
        "scripts/demo.sh --seconds 20 took {:.1}s",
        started.elapsed().as_secs_f64()
    );

    assert!(
        status.success(),
        "scripts/demo.sh exited with {status}\n{report}"
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let verdicts: Vec<&str> = lines
        .iter()
        .rev()
        .take_while(|l| l.starts_with("PASS: ") || l.starts_with("FAIL: "))
        .copied()
        .collect();
    assert!(
        verdicts.len() >= 3,
        "the last lines are not PASS/FAIL verdicts\n{report}"
    );
    assert!(
        verdicts.iter().all(|l| l.starts_with("PASS: ")),
        "a check failed\n{report}"
    );
    let last = lines[lines.len() - 3..].join("\n");
    assert!(
        last.contains("PASS: the parent table public.test_table1 is there"),
        "{report}"
    );
    assert!(
        last.contains("PASS: every row younger than 15s is there"),
        "{report}"
    );
    assert!(
        last.contains("PASS: nothing older than the window remains"),
        "{report}"
    );
    assert!(
        stdout.contains("retentionc apply --auto-approve"),
        "{report}"
    );
    assert!(
        stdout.contains("Partitions at the start") && stdout.contains("Partitions at the end"),
        "{report}"
    );
    assert!(
        stderr.contains("cluster stopped"),
        "the script cleans up after itself\n{report}"
    );

    // The README shows this proof: its checks read as this run's, numbers aside.
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let shown = readme
        .split("<!-- checked: shape demo -->\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md shows the demo's proof");
    let checks = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("==> Checks"))
            .map(shape)
            .collect()
    };
    assert_eq!(
        checks(shown),
        checks(&stdout),
        "README.md's demo block\n{report}"
    );
    let headers = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("==> ") || l.trim_start().starts_with("partition "))
            .map(shape)
            .collect()
    };
    assert!(
        headers(&stdout).ends_with(&headers(shown)),
        "README.md's demo block\n{report}"
    );
}
