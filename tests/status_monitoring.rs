//! `status --format prometheus` and the monitoring examples: the metrics of a real
//! database (both pg_partman majors) pass `promtool check metrics`; every lapse
//! `status --check` reports, made real (rows a rule should have removed, a run that
//! skipped a locked partition, a scheduled run that never happened), is `retentionc_lapsed`
//! = 1 of its table and rule, and nothing else is; hostile label values are escaped; and
//! the Grafana dashboard and the alert rules in examples/monitoring/ use only metrics
//! status emits (the rules also pass `promtool check rules`).
//! promtool is Debian's `prometheus` package (scripts/install-deps.sh installs it).

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::cluster::{Cluster, Partman};
use common::data::db_hour;
use common::project::{TestProject, blocking, stdout, text};
use retentionc::status::checks::{Check, Finding, LastRun, RuleStatus, TableStatus};
use retentionc::status::prometheus::{METRICS, write_prometheus};
use serde_json::Value;

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

/// The samples of `family` in Prometheus text: each one's labels and value.
fn samples(metrics: &str, family: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let prefix = format!("{family}{{");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").expect("a labelled sample");
            let labels = labels
                .split("\",")
                .map(|pair| {
                    let (name, value) = pair.split_once("=\"").expect("name=\"value\"");
                    (name.to_string(), value.trim_end_matches('"').to_string())
                })
                .collect();
            (labels, value.parse().expect("a number"))
        })
        .collect()
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no label {name} in {labels:?}"))
}

/// A policy with a rule whose old rows remain (never run), a partitioned table whose
/// last delete skipped a partition another session had locked, a scheduled policy that
/// never ran, and a table that holds: `retentionc_lapsed` is 1 exactly for the tables and
/// rules `status --check` names, every last run has exactly one outcome at 1 (`partial`
/// for the skipped partition), and `promtool check metrics` passes. The run that skipped
/// says so in its JSON step event.
async fn every_lapse_status_check_reports_is_a_lapsed_metric(partman: Partman) {
    let ctx = partman.to_string();
    let db = Cluster::shared().cron_database(partman);
    db.psql(&[
        "-c",
        "CREATE TABLE public.sessions (last_seen_at timestamptz NOT NULL, revoked boolean NOT NULL)",
        "-c",
        "INSERT INTO public.sessions SELECT now() - interval '3 days', true FROM generate_series(1, 5)",
        "-c",
        "CREATE TABLE public.events (at timestamptz NOT NULL, kind text NOT NULL) PARTITION BY RANGE (at)",
        "-c",
        "CREATE TABLE public.jobs (finished_at timestamptz NOT NULL)",
        "-c",
        "CREATE TABLE public.metrics (at timestamptz NOT NULL) PARTITION BY RANGE (at)",
    ]);
    let project = TestProject::for_db(&db)
        .config("lock_timeout: 500ms")
        .policy(
            "sessions",
            "table: public.sessions\ndeletes:\n  - name: revoked\n    where: \"revoked\"\n    older_than: 1 day\n    column: last_seen_at\n",
        )
        .policy(
            "events",
            &format!(
                "table: public.events\npartitioning:\n  column: at\n  interval: 1 hour\n  premake: 2\n  start: \"{}\"\nretention:\n  keep: 30 days\ndeletes:\n  - name: debug\n    where: \"kind = 'debug'\"\n    older_than: 1 hour\n    column: at\n",
                db_hour(&db, -7)
            ),
        )
        .policy(
            "jobs",
            "table: public.jobs\ndeletes:\n  - name: finished\n    where: \"true\"\n    older_than: 7 days\n    column: finished_at\nschedule: \"0 3 * * *\"\n",
        )
        .policy(
            "metrics",
            "table: public.metrics\npartitioning:\n  column: at\n  interval: 1 day\n  premake: 2\nretention:\n  keep: 30 days\n",
        )
        .compiled();
    let out = blocking(|| project.run(&["apply", "--auto-approve", "--allow-data-loss"]));
    assert!(out.status.success(), "{ctx}: {}", text(&out));
    // Only `info` rows, over the last 6 hours: nothing the rule `debug` should remove.
    db.psql(&[
        "-c",
        "INSERT INTO public.events SELECT now() - make_interval(mins => m), 'info' FROM generate_series(1, 360, 10) m",
    ]);
    let out = blocking(|| project.run(&["run", "--table", "public.metrics"]));
    assert!(out.status.success(), "{ctx}: {}", text(&out));

    // The partition two hours back holds rows past the rule's older_than, so the rule
    // visits it; another session holds it in SHARE mode throughout the run.
    let locked = db.scalar(
        "SELECT 'public.' || c.relname FROM pg_partition_tree('public.events') t JOIN pg_class c ON c.oid = t.relid \
          WHERE t.isleaf AND pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES FROM (''' || to_char(date_trunc('hour', now() - interval '2 hours'), 'YYYY-MM-DD HH24') || '%'",
    );
    assert!(!locked.is_empty(), "{ctx}: no partition two hours back");
    let locker = db.client().await;
    locker
        .batch_execute(&format!("BEGIN; LOCK TABLE {locked} IN SHARE MODE"))
        .await
        .unwrap();
    let out =
        blocking(|| project.run(&["run", "--table", "public.events", "--log-format", "json"]));
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{ctx}: {}", text(&out));
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{ctx}: {e}: {l}")))
        .collect();
    let event = |event: &str, step: Option<&str>| -> &Value {
        events
            .iter()
            .find(|e| e["event"] == event && step.is_none_or(|s| e["step"] == s))
            .unwrap_or_else(|| panic!("{ctx}: no {event} {step:?} event: {events:?}"))
    };
    let delete = event("step", Some("delete:debug"));
    assert_eq!(delete["outcome"], "partial", "{ctx}: {delete}");
    assert!(
        delete["error"].as_str().is_some_and(
            |e| e.starts_with("skipped 1 locked partition(s): ") && e.contains(&locked)
        ),
        "{ctx}: {delete}"
    );
    // Measured in the server: it waited lock_timeout (500ms) on the locked partition, and
    // took no longer than the whole prune as run timed it.
    let table = event("table", None);
    let seconds = delete["duration_seconds"].as_f64();
    assert!(
        seconds.is_some_and(|s| s >= 0.5) && seconds <= table["deletes_seconds"].as_f64(),
        "{ctx}: {delete} {table}"
    );
    assert_eq!(table["outcome"], "skipped", "{ctx}: {table}");
    assert_eq!(
        event("step", Some("maintenance"))["outcome"],
        "ok",
        "{ctx}: {events:?}"
    );

    // The scheduled policy was applied two days ago and never ran.
    db.psql(&[
        "-c",
        "UPDATE retention.apply_history SET applied_at = applied_at - interval '2 days'",
    ]);

    let out = blocking(|| project.run(&["status", "--check", "--format", "json"]));
    assert_eq!(out.status.code(), Some(3), "{ctx}: {}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    // (table, rule) of every finding, and its check.
    let findings: Vec<(String, Option<String>, String)> = status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["table"].as_str().unwrap().to_string(),
                f["rule"].as_str().map(String::from),
                f["check"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut found: Vec<(&str, Option<&str>, &str)> = findings
        .iter()
        .map(|(t, r, c)| (t.as_str(), r.as_deref(), c.as_str()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("public.events", Some("debug"), "last_run_failed"),
            ("public.jobs", Some("finished"), "never_run"),
            ("public.sessions", Some("revoked"), "delete_rule"),
        ],
        "{ctx}: {status:#}"
    );

    let out = blocking(|| project.run(&["status", "--format", "prometheus"]));
    assert!(out.status.success(), "{ctx}: {}", text(&out));
    let metrics = String::from_utf8(out.stdout.clone()).unwrap();
    let (ok, said) = promtool_check_metrics(&out.stdout);
    assert!(
        ok && said.trim().is_empty(),
        "{ctx}: promtool: {said}\n{metrics}"
    );

    // Lapsed exactly where status --check found something: the table (rule="") on any
    // of its findings, a rule on a finding of that rule.
    let lapsed = samples(&metrics, "retentionc_lapsed");
    let value_of = |table: &str, rule: &str| -> f64 {
        let matching: Vec<f64> = lapsed
            .iter()
            .filter(|(l, _)| label(l, "table") == table && label(l, "rule") == rule)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{ctx}: retentionc_lapsed {table} {rule:?}\n{metrics}"
        );
        matching[0]
    };
    for (table, rule, check) in &findings {
        assert_eq!(
            value_of(table, ""),
            1.0,
            "{ctx}: {table} {check}\n{metrics}"
        );
        if let Some(rule) = rule {
            assert_eq!(
                value_of(table, rule),
                1.0,
                "{ctx}: {table} {rule} {check}\n{metrics}"
            );
        }
    }
    for (labels, value) in &lapsed {
        let (table, rule) = (label(labels, "table"), label(labels, "rule"));
        let named = findings
            .iter()
            .any(|(t, r, _)| t == table && (rule.is_empty() || r.as_deref() == Some(rule)));
        assert_eq!(
            *value,
            if named { 1.0 } else { 0.0 },
            "{ctx}: {labels:?}\n{metrics}"
        );
    }
    assert_eq!(value_of("public.metrics", ""), 0.0, "{ctx}\n{metrics}");
    assert_eq!(
        lapsed.len(),
        7,
        "{ctx}: one series per table and per rule\n{metrics}"
    );

    // Exactly one outcome at 1 for each step that ran, and it is run_log's.
    let outcomes = samples(&metrics, "retentionc_last_run_outcome");
    let steps: BTreeSet<(String, String)> = outcomes
        .iter()
        .map(|(l, _)| (label(l, "table").to_string(), label(l, "step").to_string()))
        .collect();
    let logged: BTreeSet<(String, String)> = db
        .psql(&[
            "-At",
            "-F",
            " ",
            "-c",
            "SELECT DISTINCT table_name, step FROM retention.run_log",
        ])
        .lines()
        .map(|l| {
            let (t, s) = l.split_once(' ').unwrap();
            (t.to_string(), s.to_string())
        })
        .collect();
    assert_eq!(steps, logged, "{ctx}\n{metrics}");
    for (table, step) in &steps {
        let ones: Vec<&str> = outcomes
            .iter()
            .filter(|(l, v)| label(l, "table") == table && label(l, "step") == step && *v == 1.0)
            .map(|(l, _)| label(l, "outcome"))
            .collect();
        let last = db.scalar(&format!(
            "SELECT outcome FROM retention.run_log WHERE table_name = '{table}' AND step = '{step}' ORDER BY started_at DESC, id DESC LIMIT 1"
        ));
        assert_eq!(ones, [last.as_str()], "{ctx}: {table} {step}\n{metrics}");
    }
    assert!(
        metrics.lines().any(|l| l
            == "retentionc_last_run_outcome{table=\"public.events\",step=\"delete:debug\",outcome=\"partial\"} 1"),
        "{ctx}\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lapse_status_check_reports_is_a_lapsed_metric_pg_partman_4() {
    every_lapse_status_check_reports_is_a_lapsed_metric(Partman::V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lapse_status_check_reports_is_a_lapsed_metric_pg_partman_5() {
    every_lapse_status_check_reports_is_a_lapsed_metric(Partman::V5).await;
}

#[test]
fn hostile_label_values_are_escaped() {
    let table = "public.\"a\\b\nc\"";
    let rule = "r\"}\n# HELP x";
    let status = TableStatus {
        table: table.into(),
        exists: true,
        registered: None,
        schedule: None,
        partitions: None,
        retention: None,
        rules: vec![RuleStatus {
            rule: rule.into(),
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
        findings: vec![Finding {
            check: Check::DeleteRule,
            table: table.into(),
            rule: Some(rule.into()),
            step: Some(format!("delete:{rule}")),
            problem: "rows remain\n\x1b[2J".into(),
            fix: "run".into(),
        }],
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

/// The alert rules fire as documented on series shaped like status's (`promtool test
/// rules`): a rule's lapse, which sets both its rule's series and its table's, is one
/// alert for its table; a partial run is a failed-run alert; a table that holds, none.
#[test]
fn alert_rules_fire_once_per_lapsed_table_and_on_partial_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_path("examples/monitoring/retentionc-alerts.yml");
    let tests = format!(
        r#"rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'retentionc_lapsed{{instance="db1",table="public.sessions",rule=""}}'
        values: '1x30'
      - series: 'retentionc_lapsed{{instance="db1",table="public.sessions",rule="revoked"}}'
        values: '1x30'
      - series: 'retentionc_lapsed{{instance="db1",table="public.events",rule=""}}'
        values: '0x30'
      - series: 'retentionc_last_run_outcome{{instance="db1",table="public.sessions",step="delete:revoked",outcome="partial"}}'
        values: '1x30'
      - series: 'retentionc_last_run_outcome{{instance="db1",table="public.sessions",step="delete:revoked",outcome="ok"}}'
        values: '0x30'
      - series: 'retentionc_status_timestamp_seconds{{instance="db1"}}'
        values: '0+60x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: RetentionLapsed
        exp_alerts:
          - exp_labels:
              severity: critical
              instance: db1
              table: public.sessions
            exp_annotations:
              summary: "Retention lapsed on public.sessions"
              description: "A promise of the retention policy of public.sessions is broken. Run `retentionc status` on db1 for the finding and what to do."
      - eval_time: 20m
        alertname: RetentionLastRunFailed
        exp_alerts:
          - exp_labels:
              severity: warning
              instance: db1
              table: public.sessions
              step: "delete:revoked"
              outcome: partial
            exp_annotations:
              summary: "The last delete:revoked of public.sessions skipped locked partitions"
              description: "See `retentionc status` (the error) and retention.run_log on db1."
"#,
        rules = rules.display()
    );
    let file = dir.path().join("alerts_test.yml");
    std::fs::write(&file, tests).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    assert!(out.status.success(), "{}", text(&out));
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
