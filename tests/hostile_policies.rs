//! Hostile policies, through the real binary: every file in tests/fixtures/hostile/ (or
//! folder, for retentionc.yaml cases) is one attack or malformed input. For each,
//! `retentionc compile` must exit 1 with errors that carry file:line:column (inside the
//! file) and the key named by the fixture's `# error at:` line, write nothing under
//! generated/, not panic, finish under a memory limit and a watchdog, and print no raw
//! control character and no secret. The full error output is an insta snapshot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOSTILE: &str = "tests/fixtures/hostile";
/// Address space allowed to the binary: far above what compile needs, far below what an
/// alias bomb or a 50 MB file would take if read whole into nodes.
const MEMORY_LIMIT_KIB: u64 = 1024 * 1024;
/// A hang guard, not a speed target: compile of any fixture takes milliseconds.
const WATCHDOG: Duration = Duration::from_secs(60);
/// Secrets planted in the fixtures, which no output may show.
const SECRETS: [&str; 2] = ["s3cr3t-pw", "abc123"];

/// A temporary project holding one fixture: a policy file alone in policies/, or a copy
/// of a fixture folder (retentionc.yaml and policies/).
fn project_with(fixture: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if fixture.is_dir() {
        copy_folder(fixture, dir.path());
    } else {
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::copy(
            fixture,
            dir.path()
                .join("policies")
                .join(fixture.file_name().unwrap()),
        )
        .unwrap();
    }
    dir
}

fn copy_folder(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Runs `retentionc ARGS` in `dir` under the memory limit, killed after the watchdog.
fn run_limited(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_retentionc"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the retentionc binary runs");
    let started = Instant::now();
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).unwrap();
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).unwrap();
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WATCHDOG {
            child.kill().unwrap();
            panic!(
                "retentionc {args:?} in {} still ran after {WATCHDOG:?}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// The key a fixture's error must name (its `# error at:` line), if any.
fn expected_key(fixture: &Path) -> Option<String> {
    let file = if fixture.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixture.join("policies"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.into_iter().next()?
    } else {
        fixture.to_path_buf()
    };
    let text = String::from_utf8_lossy(&std::fs::read(file).ok()?).into_owned();
    text.split(['\n', '\r'])
        .find_map(|l| {
            l.trim_start_matches('\u{feff}')
                .strip_prefix("# error at: ")
        })
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// Lines of a file as YAML counts them (`\n`, `\r\n`, lone `\r`).
fn line_count(bytes: &[u8]) -> u64 {
    let mut lines = 1;
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' || b == b'\r' {
            lines += 1;
        }
        previous = b;
    }
    lines
}

/// (line, column) of every `error: FILE:LINE:COLUMN: ` in `stderr`, by file.
fn places(stderr: &str) -> Vec<(String, u64, u64)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .filter_map(|rest| {
            let mut parts = rest.splitn(4, ':');
            let file = parts.next()?.to_string();
            let line = parts.next()?.parse().ok()?;
            let column = parts.next()?.parse().ok()?;
            Some((file, line, column))
        })
        .collect()
}

/// Characters no output may hold raw: controls (but the newline), DEL, C1 controls,
/// bidirectional overrides, zero-width and line-separator characters.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    })
}

#[test]
fn every_hostile_policy_is_refused_safely_with_its_place() {
    insta::glob!("fixtures/hostile/*", |fixture| {
        let name = fixture.file_name().unwrap().to_str().unwrap();
        let project = project_with(fixture);
        let out = run_limited(project.path(), &["compile"]);
        let stderr = String::from_utf8(out.stderr.clone())
            .unwrap_or_else(|e| panic!("{name}: output is not UTF-8: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            stderr.len() < 64 * 1024,
            "{name}: {} bytes of errors",
            stderr.len()
        );
        assert!(
            !project.path().join("generated").exists(),
            "{name}: generated/ was written"
        );
        if let Some(c) = raw_control(&stderr).or(raw_control(&stdout)) {
            panic!("{name}: raw {c:?} in the output:\n{stderr:?}");
        }
        for secret in SECRETS {
            assert!(
                !stderr.contains(secret),
                "{name}: shows a secret:\n{stderr}"
            );
        }
        let found = places(&stderr);
        assert!(
            !found.is_empty(),
            "{name}: no file:line:column in\n{stderr}"
        );
        for (file, line, column) in &found {
            let path = project.path().join(file);
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                *line >= 1 && *line <= line_count(&bytes) && *column >= 1,
                "{name}: {file}:{line}:{column} lies outside the file"
            );
        }
        if let Some(key) = expected_key(fixture) {
            assert!(
                stderr.contains(&format!(": {key}: ")),
                "{name}: no error about {key}:\n{stderr}"
            );
        }
        assert!(
            stderr.trim_end().ends_with("nothing was changed"),
            "{name}: {stderr}"
        );
        insta::assert_snapshot!("hostile", stderr);
    });
}

#[test]
fn the_hostile_corpus_has_at_least_60_cases() {
    let count = std::fs::read_dir(HOSTILE).unwrap().count();
    assert!(count >= 60, "only {count} hostile fixtures");
}

/// The place of the first byte that is not UTF-8 text, or of the first control
/// character, counted independently of retentionc's reader.
fn first_bad_place(bytes: &[u8]) -> (u64, u64) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let valid = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap(),
    };
    let end = valid
        .char_indices()
        .find(|&(_, c)| raw_control(&c.to_string()).is_some() && !matches!(c, '\t' | '\r'))
        .map_or(valid.len(), |(i, _)| i);
    let prefix = &valid[..end];
    let line = line_count(prefix.as_bytes());
    let last_line = prefix.rsplit(['\n', '\r']).next().unwrap_or("");
    (line, last_line.chars().count() as u64 + 1)
}

#[test]
fn encoding_errors_point_at_the_real_line_and_column() {
    let mut checked = 0;
    for entry in std::fs::read_dir(HOSTILE).unwrap() {
        let fixture = entry.unwrap().path();
        let name = fixture.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&fixture).unwrap_or_default();
        let is_text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes))
            .map(|t| raw_control(&t.replace(['\n', '\r', '\t'], "")).is_none())
            .unwrap_or(false);
        if !name.starts_with("encoding_") || is_text {
            continue;
        }
        let (line, column) = first_bad_place(&bytes);
        let project = project_with(&fixture);
        let out = run_limited(project.path(), &["compile"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("policies/{name}:{line}:{column}: ")),
            "{name}: expected the error at {line}:{column}:\n{stderr}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} encoding fixtures checked");
}

#[test]
fn a_bom_and_crlf_or_cr_line_ends_keep_positions_right() {
    for (name, place) in [
        ("encoding_bom_then_error_on_line_7.yaml", "7:9"),
        ("encoding_crlf_then_error_on_line_7.yaml", "7:9"),
        ("encoding_bom_and_crlf_error_at_column_14.yaml", "6:14"),
        ("encoding_lone_cr_line_ends.yaml", "7:9"),
    ] {
        let project = project_with(&Path::new(HOSTILE).join(name));
        let out = run_limited(project.path(), &["compile"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("policies/{name}:{place}: ")),
            "{name}:\n{stderr}"
        );
        // The caret stands under the value the error is about.
        let lines: Vec<&str> = stderr.lines().collect();
        let caret = lines
            .iter()
            .position(|l| l.trim_end().ends_with('^'))
            .unwrap();
        let column = lines[caret].find('^').unwrap();
        let value = &lines[caret - 1][column..];
        assert!(
            value.starts_with("30 dayz")
                || value.starts_with("nine")
                || value.starts_with("forever"),
            "{name}: the caret points at {value:?}:\n{stderr}"
        );
    }
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_parsed() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("policies")).unwrap();
    let path = project.path().join("policies/huge.yaml");
    // 50 MB of a valid-looking policy: one long list under an unknown key.
    let mut text = String::from("table: public.events\nretention:\n  keep: 30 days\nx:\n");
    let item = "  - aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(item);
    }
    std::fs::write(&path, &text).unwrap();
    let out = run_limited(project.path(), &["compile"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "policies/huge.yaml:1:1: the file is {} bytes; policy files are at most 1048576 bytes (1 MiB)",
            text.len()
        )),
        "{stderr}"
    );
    assert!(!project.path().join("generated").exists());
}

#[test]
fn deep_nesting_does_not_overflow_a_small_stack() {
    // In-process, on a thread with 2 MiB of stack (Rust's default for a new thread): nesting is refused at a fixed depth,
    // long before recursion could exhaust the stack.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let config =
                retentionc::config::parse_config(Path::new("retentionc.yaml"), "", ".".into())
                    .unwrap();
            for text in [
                format!("table: {}{}", "[".repeat(100_000), "]".repeat(100_000)),
                format!("table: {}b{}", "{a: ".repeat(100_000), "}".repeat(100_000)),
                format!("x:\n  {}a\n", "- ".repeat(100_000)),
            ] {
                let (policies, errors) = retentionc::policy::parse_policy_text(
                    Path::new("policies/deep.yaml"),
                    &text,
                    &config,
                );
                assert!(policies.is_empty());
                assert!(
                    errors
                        .iter()
                        .any(|e| e.message.contains("nest deeper than 16 levels")),
                    "{:?}",
                    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                );
            }
        })
        .unwrap();
    handle
        .join()
        .expect("parsing deep nesting panicked or overflowed");
}
