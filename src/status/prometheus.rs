//! `status --format prometheus`: the Prometheus text format (what node_exporter's
//! textfile collector reads), one family per fact, each with HELP and TYPE, label values
//! escaped. Every family is a gauge. The metric names are listed in [`METRICS`]; the
//! Grafana dashboard and the alert rules in examples/ use only these (a test checks).

use std::fmt::Write as _;
use std::io::{self, Write};

use chrono::{DateTime, Utc};

use crate::output::prometheus_label;

use super::checks::TableStatus;

/// Every metric status emits, with its help text.
pub const METRICS: [(&str, &str); 17] = [
    (
        "retentionc_status_timestamp_seconds",
        "When retentionc status read the database (its now()), Unix time.",
    ),
    (
        "retentionc_lapsed",
        "1 when a promise of the policy is broken: rule=\"\" for the table's own checks, else one delete rule.",
    ),
    (
        "retentionc_finding",
        "1 for each failing check of a table (check names the check, see docs/run-status.md).",
    ),
    (
        "retentionc_table_exists",
        "1 when the policy's table exists.",
    ),
    (
        "retentionc_oldest_row_age_seconds",
        "Age of the oldest row of a table with partitioned retention.",
    ),
    (
        "retentionc_allowed_age_seconds",
        "Oldest age the policy allows: keep + one interval + the schedule's period (rule=\"\"), or a delete rule's older_than + the period.",
    ),
    (
        "retentionc_overdue_rows",
        "1 when rows a delete rule should have removed remain.",
    ),
    (
        "retentionc_partitions",
        "Child partitions, the default one not counted.",
    ),
    (
        "retentionc_partitions_premade_ahead",
        "Child partitions wholly after now.",
    ),
    (
        "retentionc_partitions_premake",
        "The policy's premake: partitions pg_partman keeps ahead of now.",
    ),
    (
        "retentionc_partition_gaps",
        "Ranges between the first and the last child that no child covers.",
    ),
    (
        "retentionc_default_partition_rows",
        "Rows in the default partition (counted up to 1000): data pg_partman could not place.",
    ),
    (
        "retentionc_last_run_timestamp_seconds",
        "Start of the last run of a step (maintenance, delete:<rule>), Unix time.",
    ),
    (
        "retentionc_last_run_outcome",
        "1 for the outcome (ok, skipped, failed) of the last run of a step, 0 for the others.",
    ),
    (
        "retentionc_last_success_timestamp_seconds",
        "Start of the last successful run of a step, Unix time.",
    ),
    (
        "retentionc_last_run_rows_deleted",
        "Rows the last run of a step deleted.",
    ),
    (
        "retentionc_last_run_partitions_removed",
        "Partitions the last run of a step dropped, detached or moved.",
    ),
];

const OUTCOMES: [&str; 3] = ["ok", "skipped", "failed"];

/// Samples of one family, as `{labels} value` lines.
#[derive(Default)]
struct Samples {
    lines: Vec<String>,
}

impl Samples {
    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut line = String::new();
        if !labels.is_empty() {
            line.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{name}=\"{}\"", prometheus_label(value));
            }
            line.push('}');
        }
        let _ = write!(line, " {value}");
        self.lines.push(line);
    }
}

fn unix(text: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros() as f64 / 1e6)
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

pub fn write_prometheus(
    tables: &[TableStatus],
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut families: Vec<Samples> = METRICS.iter().map(|_| Samples::default()).collect();
    let family = |name: &str| {
        METRICS
            .iter()
            .position(|(n, _)| *n == name)
            .expect("a metric listed in METRICS")
    };
    families[family("retentionc_status_timestamp_seconds")]
        .add(&[], now.timestamp_micros() as f64 / 1e6);
    for t in tables {
        let table = t.table.as_str();
        let table_lapsed = t.findings.iter().any(|f| f.rule.is_none());
        families[family("retentionc_lapsed")]
            .add(&[("table", table), ("rule", "")], flag(table_lapsed));
        for f in &t.findings {
            families[family("retentionc_finding")].add(
                &[
                    ("table", table),
                    ("rule", f.rule.as_deref().unwrap_or("")),
                    ("check", f.check.name()),
                ],
                1.0,
            );
        }
        families[family("retentionc_table_exists")].add(&[("table", table)], flag(t.exists));
        if let Some(r) = &t.retention {
            if let Some(age) = r.oldest_row_age_seconds {
                families[family("retentionc_oldest_row_age_seconds")].add(&[("table", table)], age);
            }
            families[family("retentionc_allowed_age_seconds")]
                .add(&[("table", table), ("rule", "")], r.allowed_age_seconds);
        }
        for rule in &t.rules {
            let labels = [("table", table), ("rule", rule.rule.as_str())];
            families[family("retentionc_lapsed")].add(&labels, flag(!rule.holds));
            if let Some(seconds) = rule.allowed_age_seconds {
                families[family("retentionc_allowed_age_seconds")].add(&labels, seconds);
            }
            if let Some(overdue) = rule.overdue_rows {
                families[family("retentionc_overdue_rows")].add(&labels, flag(overdue));
            }
        }
        if let Some(p) = &t.partitions {
            let labels = [("table", table)];
            families[family("retentionc_partitions")].add(&labels, p.count as f64);
            families[family("retentionc_partitions_premade_ahead")]
                .add(&labels, p.premade_ahead as f64);
            families[family("retentionc_partitions_premake")].add(&labels, p.premake as f64);
            families[family("retentionc_partition_gaps")].add(&labels, p.gaps.len() as f64);
            if let Some(n) = p.default_rows {
                families[family("retentionc_default_partition_rows")].add(&labels, n as f64);
            }
        }
        for run in &t.last_runs {
            let labels = [("table", table), ("step", run.step.as_str())];
            if let Some(started) = unix(&run.started_at) {
                families[family("retentionc_last_run_timestamp_seconds")].add(&labels, started);
            }
            for outcome in OUTCOMES {
                families[family("retentionc_last_run_outcome")].add(
                    &[
                        ("table", table),
                        ("step", run.step.as_str()),
                        ("outcome", outcome),
                    ],
                    flag(run.outcome == outcome),
                );
            }
            if let Some(ok) = run.last_ok_at.as_deref().and_then(unix) {
                families[family("retentionc_last_success_timestamp_seconds")].add(&labels, ok);
            }
            families[family("retentionc_last_run_rows_deleted")]
                .add(&labels, run.rows_deleted as f64);
            families[family("retentionc_last_run_partitions_removed")]
                .add(&labels, run.partitions_removed as f64);
        }
    }
    for ((name, help), samples) in METRICS.iter().zip(&families) {
        writeln!(out, "# HELP {name} {help}")?;
        writeln!(out, "# TYPE {name} gauge")?;
        for line in &samples.lines {
            writeln!(out, "{name}{line}")?;
        }
    }
    Ok(())
}
