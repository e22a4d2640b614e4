//! What retentionc prints, through the real binary: output to a closed pipe ends quietly
//! for every command; names and messages from the database and from the command line
//! reach the markdown plan (a pull-request comment), the terminal and the logs escaped;
//! `run --log-format json` writes one JSON object per event.

mod common;

use std::process::{Command, Stdio};

use common::cluster::{Cluster, Partman, TestDb};
use common::project::{TestProject, stderr, stdout, text};

/// Runs `cmd` with its stdout a pipe whose reader is already gone.
fn run_into_closed_pipe(mut cmd: Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database with one managed, applied table that has rows, for the database commands.
fn applied_project(db: &TestDb) -> TestProject {
    db.psql(&[
        "-c",
        "CREATE TABLE public.events (at timestamptz NOT NULL, level text) PARTITION BY RANGE (at)",
    ]);
    let project = TestProject::for_db(db)
        .policy(
            "events",
            "table: public.events\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\nretention:\n  keep: 30 days\ndeletes:\n  - name: debug\n    where: \"level = 'debug'\"\n    older_than: 1 day\n",
        )
        .compiled();
    let out = project.run(&["apply", "--auto-approve", "--allow-data-loss"]);
    assert!(out.status.success(), "{}", text(&out));
    project
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_for_every_command() {
    let db = Cluster::shared().database(Partman::V5);
    let project = applied_project(&db);
    let commands: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec!["compile", "--check"],
        vec!["compile"],
        vec!["schema"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["plan"],
        vec!["plan", "--format", "markdown"],
        vec!["plan", "--format", "json"],
        vec!["status"],
        vec!["status", "--format", "json"],
        vec!["status", "--format", "prometheus"],
        vec!["status", "--check"],
        vec!["run"],
        vec!["run", "--log-format", "json"],
        vec!["run", "--dry-run"],
        vec!["import", "--force"],
        vec!["apply", "--auto-approve"],
    ];
    for args in commands {
        let (code, err) = run_into_closed_pipe(project.command(&args));
        assert!(
            matches!(code, Some(0) | Some(141)),
            "retentionc {args:?} into a closed pipe: exit {code:?}\n{err}"
        );
        assert!(
            !err.contains("Broken pipe") && !err.contains("panicked") && !err.contains("error"),
            "retentionc {args:?} into a closed pipe said:\n{err}"
        );
    }
}

/// A table registered with pg_partman (named by no policy) whose name holds a newline,
/// markdown, HTML, backticks, a terminal escape, a table pipe and a bidi override.
const HOSTILE: &str = "evil\n## Approved <img src=x> ```x`` | \u{1b}[2J \u{202e}gnp";

#[test]
fn hostile_catalog_names_are_escaped_in_markdown_text_and_json() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        let project = applied_project(&db);
        let quoted = format!("\"{}\"", HOSTILE.replace('"', "\"\""));
        let create_parent = match partman {
            Partman::V4 => format!(
                "SELECT partman.create_parent(p_parent_table := 'public.{}', p_control := 'at', p_type := 'native', p_interval := '1 day')",
                HOSTILE.replace('\'', "''")
            ),
            Partman::V5 => format!(
                "SELECT partman.create_parent(p_parent_table := 'public.{}', p_control := 'at', p_interval := '1 day')",
                HOSTILE.replace('\'', "''")
            ),
        };
        db.psql(&[
            "-c",
            &format!(
                "CREATE TABLE public.{quoted} (at timestamptz NOT NULL) PARTITION BY RANGE (at)"
            ),
            "-c",
            &create_parent,
        ]);

        let out = project.run(&["plan", "--format", "markdown"]);
        assert!(out.status.success(), "{partman}: {}", text(&out));
        let markdown = stdout(&out);
        assert!(
            markdown.contains("Unmanaged tables"),
            "{partman}: the hostile table is not listed:\n{markdown}"
        );
        for line in markdown.lines() {
            assert!(!line.starts_with("## Approved"), "{partman}: {markdown}");
            assert!(
                !line.contains('\u{1b}') && !line.contains('\u{202e}'),
                "{partman}: {line:?}"
            );
        }
        // The name sits in one code span, on one line, that its backticks cannot close;
        // `<img` appears only there, as code, never as HTML.
        let listed = markdown
            .lines()
            .find(|l| l.starts_with("- ") && l.contains("evil"))
            .unwrap_or_else(|| panic!("{partman}: {markdown}"));
        for line in markdown.lines().filter(|l| *l != listed) {
            assert!(
                !line.contains("<img"),
                "{partman}: raw HTML got through:\n{markdown}"
            );
        }
        assert!(listed.starts_with("- ````"), "{partman}: {listed}");
        assert!(listed.ends_with("````"), "{partman}: {listed}");
        assert!(
            listed.contains("evil\\n## Approved <img"),
            "{partman}: {listed}"
        );

        for args in [
            vec!["plan"],
            vec!["status"],
            vec!["run"],
            vec!["import", "--force"],
        ] {
            let out = project.run(&args);
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert!(
                !all.contains('\u{1b}') && !all.contains('\u{202e}'),
                "{partman}: retentionc {args:?} printed a control character:\n{all:?}"
            );
        }
        let out = project.run(&["plan"]);
        assert!(
            stdout(&out)
                .contains("public.evil\\n## Approved <img src=x> ```x`` | \\x1b[2J \\u{202e}gnp"),
            "{partman}: {}",
            text(&out)
        );
        // JSON keeps the name exactly, escaped by JSON itself.
        let out = project.run(&["plan", "--format", "json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            json["unmanaged_tables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_str() == Some(&format!("public.{HOSTILE}"))),
            "{partman}: {json}"
        );
    }
}

#[test]
fn error_messages_carry_no_control_characters() {
    let project = TestProject::new();
    let out = project.run(&["run", "--table", "public.x\u{1b}[2J\u{202e}\r"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no policy for \"public.x\\x1b[2J\\u{202e}\\r\""),
        "{err:?}"
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
}

#[test]
fn run_log_format_json_writes_one_object_per_event() {
    let db = Cluster::shared().database(Partman::V4);
    let project = applied_project(&db);
    db.psql(&[
        "-c",
        "INSERT INTO public.events VALUES (now() - interval '36 hours', 'debug'), (now() - interval '36 hours', 'info'), (now(), 'debug')",
    ]);
    let out = project.run(&["run", "--log-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["step", "step", "table", "run"], "{events:?}");
    assert_eq!(events[0]["table"], "public.events");
    assert_eq!(events[0]["step"], "maintenance");
    assert_eq!(events[0]["outcome"], "ok");
    assert!(events[0]["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(events[1]["step"], "delete:debug");
    assert_eq!(events[1]["rows"], 1);
    assert_eq!(events[1]["outcome"], "ok");
    assert_eq!(events[1]["error"], serde_json::Value::Null);
    // The rule's own time, from run_log.
    assert!(
        events[1]["duration_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0 && s <= events[2]["deletes_seconds"].as_f64().unwrap()),
        "{events:?}"
    );
    assert_eq!(events[2]["outcome"], "ok");
    assert!(events[2]["deletes_seconds"].as_f64().is_some());
    assert_eq!(events[3]["ok"], 1);
    assert_eq!(events[3]["failed"], 0);
    // Text stays the default.
    let out = project.run(&["run"]);
    assert!(
        stdout(&out).contains("run: 1 ok, 0 skipped, 0 failed"),
        "{}",
        text(&out)
    );
}
