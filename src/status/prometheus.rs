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
pub const METRICS: [(&str, &str); 18] = [
    (
        "retentionc_database_up",
        "1 when status read the database, 0 when it could not (status --env/--all only).",
    ),
    (
        "retentionc_status_timestamp_seconds",
        "When retentionc status read the database (its now()), Unix time.",
    ),
    (
        "retentionc_lapsed",
        "1 when status --check finds a lapse: rule=\"\" for the table (any finding), else for one delete rule (a finding of the rule or of its step delete:<rule>).",
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
        "1 for the outcome (ok, partial, skipped, failed, running) of the last run of a step, 0 for the others.",
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

/// Every outcome run_log records: `partial` (a delete rule skipped locked partitions) and
/// `running` (a rule in progress, or cut off) besides the three of a finished step.
const OUTCOMES: [&str; 5] = ["ok", "partial", "skipped", "failed", "running"];

/// The outcome series of one last run: every known outcome, and the run's own when run_log
/// holds another, so that exactly one is 1.
fn outcome_values(outcome: &str) -> Vec<(&str, f64)> {
    let mut values: Vec<(&str, f64)> = OUTCOMES
        .iter()
        .map(|known| (*known, flag(*known == outcome)))
        .collect();
    if !OUTCOMES.contains(&outcome) {
        values.push((outcome, 1.0));
    }
    values
}

/// `retentionc_lapsed` of a table: the table's value (any finding), then each delete
/// rule's (a finding naming the rule: its data or its step). Derived from the findings
/// `status --check` prints, so the metric and the check cannot disagree.
fn lapses(table: &TableStatus) -> (bool, Vec<(&str, bool)>) {
    let mut rules: Vec<&str> = table.rules.iter().map(|r| r.rule.as_str()).collect();
    for rule in table.findings.iter().filter_map(|f| f.rule.as_deref()) {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    let by_rule = rules
        .into_iter()
        .map(|rule| {
            let lapsed = table
                .findings
                .iter()
                .any(|f| f.rule.as_deref() == Some(rule));
            (rule, lapsed)
        })
        .collect();
    (table.lapsed(), by_rule)
}

/// Samples of one family, as `{labels} value` lines.
#[derive(Default)]
struct Samples {
    lines: Vec<String>,
}

impl Samples {
    /// One sample: the database's labels (none for one database), then the family's own.
    fn add(&mut self, base: &[(&str, &str)], labels: &[(&str, &str)], value: f64) {
        let mut line = String::new();
        if !base.is_empty() || !labels.is_empty() {
            line.push('{');
            for (i, (name, value)) in base.iter().chain(labels).enumerate() {
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

/// One database's status, as a fleet's metrics carry it.
pub struct DatabaseMetrics<'a> {
    /// Labels naming the database (environment, database); every sample carries them.
    pub labels: Vec<(&'a str, &'a str)>,
    /// What status read, or None when it could not read the database.
    pub read: Option<(&'a [TableStatus], DateTime<Utc>)>,
}

/// The metrics of one database.
pub fn write_prometheus(
    tables: &[TableStatus],
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut families = Families::new();
    families.add_database(&[], tables, now);
    families.write(out)
}

/// The metrics of many databases (`status --env/--all`), each sample labelled with its
/// database, and `retentionc_database_up` saying which could be read.
pub fn write_prometheus_fleet(
    databases: &[DatabaseMetrics],
    out: &mut impl Write,
) -> io::Result<()> {
    let mut families = Families::new();
    for database in databases {
        let base = &database.labels;
        families
            .get("retentionc_database_up")
            .add(base, &[], flag(database.read.is_some()));
        if let Some((tables, now)) = database.read {
            families.add_database(base, tables, now);
        }
    }
    families.write(out)
}

/// Every family's samples, in [`METRICS`] order.
struct Families(Vec<Samples>);

impl Families {
    fn new() -> Families {
        Families(METRICS.iter().map(|_| Samples::default()).collect())
    }

    fn get(&mut self, name: &str) -> &mut Samples {
        let index = METRICS
            .iter()
            .position(|(n, _)| *n == name)
            .expect("a metric listed in METRICS");
        &mut self.0[index]
    }

    fn add_database(&mut self, base: &[(&str, &str)], tables: &[TableStatus], now: DateTime<Utc>) {
        self.get("retentionc_status_timestamp_seconds").add(
            base,
            &[],
            now.timestamp_micros() as f64 / 1e6,
        );
        for t in tables {
            let table = t.table.as_str();
            let (table_lapsed, rules_lapsed) = lapses(t);
            self.get("retentionc_lapsed").add(
                base,
                &[("table", table), ("rule", "")],
                flag(table_lapsed),
            );
            for (rule, lapsed) in rules_lapsed {
                self.get("retentionc_lapsed").add(
                    base,
                    &[("table", table), ("rule", rule)],
                    flag(lapsed),
                );
            }
            for f in &t.findings {
                self.get("retentionc_finding").add(
                    base,
                    &[
                        ("table", table),
                        ("rule", f.rule.as_deref().unwrap_or("")),
                        ("check", f.check.name()),
                    ],
                    1.0,
                );
            }
            self.get("retentionc_table_exists")
                .add(base, &[("table", table)], flag(t.exists));
            if let Some(r) = &t.retention {
                if let Some(age) = r.oldest_row_age_seconds {
                    self.get("retentionc_oldest_row_age_seconds").add(
                        base,
                        &[("table", table)],
                        age,
                    );
                }
                self.get("retentionc_allowed_age_seconds").add(
                    base,
                    &[("table", table), ("rule", "")],
                    r.allowed_age_seconds,
                );
            }
            for rule in &t.rules {
                let labels = [("table", table), ("rule", rule.rule.as_str())];
                if let Some(seconds) = rule.allowed_age_seconds {
                    self.get("retentionc_allowed_age_seconds")
                        .add(base, &labels, seconds);
                }
                if let Some(overdue) = rule.overdue_rows {
                    self.get("retentionc_overdue_rows")
                        .add(base, &labels, flag(overdue));
                }
            }
            if let Some(p) = &t.partitions {
                let labels = [("table", table)];
                self.get("retentionc_partitions")
                    .add(base, &labels, p.count as f64);
                self.get("retentionc_partitions_premade_ahead").add(
                    base,
                    &labels,
                    p.premade_ahead as f64,
                );
                self.get("retentionc_partitions_premake")
                    .add(base, &labels, p.premake as f64);
                self.get("retentionc_partition_gaps")
                    .add(base, &labels, p.gaps.len() as f64);
                if let Some(n) = p.default_rows {
                    self.get("retentionc_default_partition_rows")
                        .add(base, &labels, n as f64);
                }
            }
            for run in &t.last_runs {
                let labels = [("table", table), ("step", run.step.as_str())];
                if let Some(started) = unix(&run.started_at) {
                    self.get("retentionc_last_run_timestamp_seconds")
                        .add(base, &labels, started);
                }
                for (outcome, value) in outcome_values(&run.outcome) {
                    self.get("retentionc_last_run_outcome").add(
                        base,
                        &[
                            ("table", table),
                            ("step", run.step.as_str()),
                            ("outcome", outcome),
                        ],
                        value,
                    );
                }
                if let Some(ok) = run.last_ok_at.as_deref().and_then(unix) {
                    self.get("retentionc_last_success_timestamp_seconds")
                        .add(base, &labels, ok);
                }
                self.get("retentionc_last_run_rows_deleted").add(
                    base,
                    &labels,
                    run.rows_deleted as f64,
                );
                self.get("retentionc_last_run_partitions_removed").add(
                    base,
                    &labels,
                    run.partitions_removed as f64,
                );
            }
        }
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        for ((name, help), samples) in METRICS.iter().zip(&self.0) {
            writeln!(out, "# HELP {name} {help}")?;
            writeln!(out, "# TYPE {name} gauge")?;
            for line in &samples.lines {
                writeln!(out, "{name}{line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::checks::{Check, Finding, LastRun, RuleStatus};

    fn rule(name: &str, holds: bool) -> RuleStatus {
        RuleStatus {
            rule: name.into(),
            allowed_age: None,
            allowed_age_seconds: None,
            overdue_rows: Some(!holds),
            holds,
        }
    }

    fn finding(table: &str, check: Check, rule: Option<&str>, step: Option<&str>) -> Finding {
        Finding {
            check,
            table: table.into(),
            rule: rule.map(String::from),
            step: step.map(String::from),
            problem: "p".into(),
            fix: "f".into(),
        }
    }

    fn last_run(step: &str, outcome: &str) -> LastRun {
        LastRun {
            step: step.into(),
            outcome: outcome.into(),
            started_at: "2026-11-25T10:00:00Z".into(),
            finished_at: "2026-11-25T10:00:01Z".into(),
            run_by: "retentionc".into(),
            partitions_created: 0,
            partitions_removed: 0,
            rows_deleted: 0,
            error: None,
            last_ok_at: None,
        }
    }

    fn table(name: &str, rules: Vec<RuleStatus>, findings: Vec<Finding>) -> TableStatus {
        TableStatus {
            table: name.into(),
            exists: true,
            registered: None,
            schedule: None,
            partitions: None,
            retention: None,
            rules,
            last_runs: Vec::new(),
            findings,
            warnings: Vec::new(),
        }
    }

    fn metrics(tables: &[TableStatus]) -> String {
        let mut out = Vec::new();
        write_prometheus(tables, Utc::now(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The value of the sample `name{labels}`, if emitted.
    fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<String> {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let prefix = format!("{name}{{{}}} ", labels.join(","));
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(String::from)
    }

    fn lapsed(metrics: &str, table: &str, rule: &str) -> Option<String> {
        sample(
            metrics,
            "retentionc_lapsed",
            &[("table", table), ("rule", rule)],
        )
    }

    #[test]
    fn every_finding_sets_lapsed_of_its_table_and_of_its_rule() {
        let tables = [
            // A step finding of a rule whose data holds (never run, stale, last run failed).
            table(
                "public.jobs",
                vec![rule("finished", true), rule("other", true)],
                vec![finding(
                    "public.jobs",
                    Check::NeverRun,
                    Some("finished"),
                    Some("delete:finished"),
                )],
            ),
            // A rule's data finding only.
            table(
                "public.sessions",
                vec![rule("revoked", false)],
                vec![finding(
                    "public.sessions",
                    Check::DeleteRule,
                    Some("revoked"),
                    Some("delete:revoked"),
                )],
            ),
            // A finding of the maintenance step: the table's, no rule's.
            table(
                "public.events",
                vec![rule("debug", true)],
                vec![finding(
                    "public.events",
                    Check::LastRunFailed,
                    None,
                    Some("maintenance"),
                )],
            ),
            // A finding naming a rule status has no data for still gets its series.
            table(
                "public.odd",
                vec![],
                vec![finding(
                    "public.odd",
                    Check::RunStale,
                    Some("gone"),
                    Some("delete:gone"),
                )],
            ),
            table("public.fine", vec![rule("r", true)], vec![]),
        ];
        let text = metrics(&tables);
        for t in &tables {
            for f in &t.findings {
                assert_eq!(lapsed(&text, &f.table, "").as_deref(), Some("1"), "{text}");
                if let Some(rule) = &f.rule {
                    assert_eq!(
                        lapsed(&text, &f.table, rule).as_deref(),
                        Some("1"),
                        "{text}"
                    );
                }
            }
        }
        for (table, rule) in [
            ("public.jobs", "other"),
            ("public.events", "debug"),
            ("public.fine", ""),
            ("public.fine", "r"),
        ] {
            assert_eq!(
                lapsed(&text, table, rule).as_deref(),
                Some("0"),
                "{table} {rule}\n{text}"
            );
        }
        // One sample per (table, rule): no series twice.
        let lapsed_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("retentionc_lapsed{"))
            .collect();
        let distinct: std::collections::BTreeSet<&str> = lapsed_lines
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        assert_eq!(lapsed_lines.len(), distinct.len(), "{text}");
        assert_eq!(distinct.len(), 11, "{text}");
    }

    #[test]
    fn exactly_one_outcome_of_a_last_run_is_1() {
        let mut t = table("public.t", vec![], vec![]);
        t.last_runs = ["ok", "partial", "skipped", "failed", "running", "odd\"one"]
            .iter()
            .enumerate()
            .map(|(i, outcome)| last_run(&format!("delete:r{i}"), outcome))
            .collect();
        let text = metrics(&[t]);
        for (i, outcome) in [
            "ok",
            "partial",
            "skipped",
            "failed",
            "running",
            "odd\\\"one",
        ]
        .iter()
        .enumerate()
        {
            let step = format!("delete:r{i}");
            let series: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with(&format!(
                        "retentionc_last_run_outcome{{table=\"public.t\",step=\"{step}\","
                    ))
                })
                .collect();
            let ones: Vec<&&str> = series.iter().filter(|l| l.ends_with(" 1")).collect();
            assert_eq!(ones.len(), 1, "{step}: {series:?}");
            assert!(
                ones[0].contains(&format!("outcome=\"{outcome}\"")),
                "{step}: {series:?}"
            );
            assert!(series.len() >= OUTCOMES.len(), "{step}: {series:?}");
        }
    }
}
