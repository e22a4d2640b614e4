//! `status --format prometheus` and the monitoring examples: the metrics of a real
//! database (both pg_partman majors) pass `promtool check metrics`, hostile label values
//! are escaped, and the Grafana dashboard and the alert rules in examples/monitoring/ use
//! only metrics status emits (the rules also pass `promtool check rules`).
//! promtool is Debian's `prometheus` package (scripts/install-deps.sh installs it).

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::cluster::{Cluster, Partman};
use common::project::{TestProject, text};
use retentionc::status::checks::{LastRun, RuleStatus, TableStatus};
use retentionc::status::prometheus::{METRICS, write_prometheus};

fn repo_path(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `promtool check metrics` on `metrics`: its exit status and what it said.
fn promtool_check_metrics(metrics: &[u8]) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus; scripts/install-deps.sh)");
    child.stdin.take().unwrap().write_all(metrics).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every `retentionc_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("retentionc_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn emitted() -> BTreeSet<String> {
    METRICS.iter().map(|(name, _)| name.to_string()).collect()
}

#[test]
fn metrics_of_a_real_database_pass_promtool() {
    for partman in Partman::BOTH {
        let db = Cluster::shared().database(partman);
        db.psql(&[
            "-c",
            "CREATE TABLE public.events (at timestamptz NOT NULL) PARTITION BY RANGE (at)",
            "-c",
            "CREATE TABLE public.sessions (at timestamptz NOT NULL, revoked boolean NOT NULL)",
            "-c",
            "INSERT INTO public.sessions VALUES (now() - interval '3 days', true)",
        ]);
        let project = TestProject::for_db(&db)
            .policy(
                "events",
                "table: public.events\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\nretention:\n  keep: 30 days\n",
            )
            .policy(
                "sessions",
                "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked\"\n    older_than: 1 day\n    column: at\n",
            )
            .compiled();
        project.install_with_psql(&db);
        let out = project.run(&["run", "--table", "public.events"]);
        assert!(out.status.success(), "{partman}: {}", text(&out));

        let out = project.run(&["status", "--format", "prometheus"]);
        assert!(out.status.success(), "{partman}: {}", text(&out));
        let metrics = String::from_utf8(out.stdout.clone()).unwrap();
        let (ok, said) = promtool_check_metrics(&out.stdout);
        assert!(
            ok && said.trim().is_empty(),
            "{partman}: promtool: {said}\n{metrics}"
        );
        for line in [
            "retentionc_lapsed{table=\"public.sessions\",rule=\"revoked\"} 1",
            "retentionc_lapsed{table=\"public.events\",rule=\"\"} 0",
            "retentionc_overdue_rows{table=\"public.sessions\",rule=\"revoked\"} 1",
            "retentionc_finding{table=\"public.sessions\",rule=\"revoked\",check=\"delete_rule\"} 1",
            "retentionc_table_exists{table=\"public.events\"} 1",
            "retentionc_partitions_premake{table=\"public.events\"} 2",
            "retentionc_default_partition_rows{table=\"public.events\"} 0",
            "retentionc_last_run_outcome{table=\"public.events\",step=\"maintenance\",outcome=\"ok\"} 1",
            "retentionc_last_run_outcome{table=\"public.events\",step=\"maintenance\",outcome=\"failed\"} 0",
            "retentionc_allowed_age_seconds{table=\"public.sessions\",rule=\"revoked\"} 86400",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "{partman}: no line {line}\n{metrics}"
            );
        }
        // Every family has its HELP and TYPE, and only listed metrics appear.
        for (name, _) in METRICS {
            assert!(metrics.contains(&format!("# HELP {name} ")), "{name}");
            assert!(metrics.contains(&format!("# TYPE {name} gauge")), "{name}");
        }
        assert!(metric_names(&metrics).is_subset(&emitted()), "{metrics}");
    }
}

#[test]
fn hostile_label_values_are_escaped() {
    let table = "public.\"a\\b\nc\"";
    let status = TableStatus {
        table: table.into(),
        exists: true,
        registered: None,
        schedule: None,
        partitions: None,
        retention: None,
        rules: vec![RuleStatus {
            rule: "r\"}\n# HELP x".into(),
            allowed_age: None,
            allowed_age_seconds: None,
            overdue_rows: Some(true),
            holds: false,
        }],
        last_runs: vec![LastRun {
            step: "delete:x\ny".into(),
            outcome: "failed".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            run_by: "retentionc".into(),
            partitions_created: 0,
            partitions_removed: 0,
            rows_deleted: 5,
            error: Some("boom\n\x1b[2J".into()),
            last_ok_at: None,
        }],
        findings: vec![],
        warnings: vec![],
    };
    let mut out = Vec::new();
    write_prometheus(&[status], chrono::Utc::now(), &mut out).unwrap();
    let metrics = String::from_utf8(out.clone()).unwrap();
    let (ok, said) = promtool_check_metrics(&out);
    assert!(ok, "promtool: {said}\n{metrics}");
    assert!(
        metrics.contains(
            "retentionc_lapsed{table=\"public.\\\"a\\\\b\\nc\\\"\",rule=\"r\\\"}\\n# HELP x\"} 1"
        ),
        "{metrics}"
    );
    // No sample line starts with anything but a metric name or a comment.
    for line in metrics.lines() {
        assert!(
            line.starts_with("retentionc_")
                || line.starts_with("# HELP retentionc_")
                || line.starts_with("# TYPE retentionc_"),
            "{line:?}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool_and_use_emitted_metrics() {
    let rules = repo_path("examples/monitoring/retentionc-alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool runs");
    assert!(out.status.success(), "{}", text(&out));
    let used = metric_names(&std::fs::read_to_string(&rules).unwrap());
    assert!(!used.is_empty());
    let emitted = emitted();
    let unknown: Vec<_> = used.difference(&emitted).collect();
    assert!(
        unknown.is_empty(),
        "alert rules use metrics status never emits: {unknown:?}"
    );
}

#[test]
fn grafana_dashboard_is_json_and_uses_emitted_metrics() {
    let path = repo_path("examples/monitoring/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            exprs.push(query.to_string());
        }
    }
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(used.len() >= 8, "{used:?}");
    let emitted = emitted();
    let unknown: Vec<_> = used.difference(&emitted).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses metrics status never emits: {unknown:?}"
    );
}
