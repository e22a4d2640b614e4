//! What `run` did, per table, and how it is written: the lines of run's output (text
//! for people, or one JSON object per event for schedulers and log shippers). Pure.
//! Names and errors come from the database: text output escapes them for terminals.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::progress::group;
use crate::model::Policy;
use crate::output::terminal;

/// How a step, or a whole table, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Skipped,
    Failed,
}

#[derive(Debug, Clone)]
pub enum Maintenance {
    Done {
        created: Vec<String>,
        dropped: Vec<String>,
        detached: Vec<String>,
        moved: Vec<String>,
    },
    /// pg_partman's maintenance lock was held by another session on every attempt.
    Skipped {
        attempts: u32,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone)]
pub struct RuleReport {
    pub rule: String,
    /// Rows deleted and committed (also when the rule failed part-way).
    pub rows: i64,
    /// `None`: finished; `Some(error)`: failed or never reached.
    pub error: Option<String>,
    /// Partitions left out because another session held a lock on them, each described
    /// with who held it (`public.t_p1 (locked by pid 42, application "psql", state "idle in transaction")`).
    pub skipped: Vec<String>,
    /// The rule's time in the server, from its run_log rows (start to last commit, summed
    /// over retried calls); None when it never started or run_log could not be read.
    pub duration: Option<Duration>,
}

impl RuleReport {
    /// A rule that did not run, or whose run cannot be read back: rows 0, no duration.
    pub fn failed(rule: String, error: String) -> RuleReport {
        RuleReport {
            rule,
            rows: 0,
            error: Some(error),
            skipped: Vec::new(),
            duration: None,
        }
    }

    /// `failed`, `partial` (finished, but skipped locked partitions) or `ok`: as run_log
    /// records the rule's step.
    fn outcome_name(&self) -> &'static str {
        match (&self.error, self.skipped.is_empty()) {
            (Some(_), _) => "failed",
            (None, false) => "partial",
            (None, true) => "ok",
        }
    }

    /// The error of a failed rule, or the partitions a partial one skipped.
    fn problem(&self) -> Option<Cow<'_, str>> {
        match &self.error {
            Some(error) => Some(Cow::Borrowed(error.as_str())),
            None if !self.skipped.is_empty() => Some(Cow::Owned(format!(
                "skipped {} locked partition(s): {}",
                self.skipped.len(),
                self.skipped.join("; ")
            ))),
            None => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TableReport {
    pub table: String,
    pub maintenance: Option<Maintenance>,
    pub deletes: Vec<RuleReport>,
    pub elapsed: Duration,
    /// How long maintenance took (None: not run).
    pub maintenance_elapsed: Option<Duration>,
    /// How long the delete rules took together (None: not run).
    pub deletes_elapsed: Option<Duration>,
}

impl TableReport {
    pub fn outcome(&self) -> Outcome {
        let maintenance = match &self.maintenance {
            Some(Maintenance::Failed { .. }) => Outcome::Failed,
            Some(Maintenance::Skipped { .. }) => Outcome::Skipped,
            _ => Outcome::Ok,
        };
        let deletes = if self.deletes.iter().any(|r| r.error.is_some()) {
            Outcome::Failed
        } else if self.deletes.iter().any(|r| !r.skipped.is_empty()) {
            Outcome::Skipped
        } else {
            Outcome::Ok
        };
        maintenance.max(deletes)
    }

    /// Every step of `policy` failed before it ran: maintenance (for a partitioned
    /// table) with `maintenance`, each delete rule with `deletes`.
    pub fn fail_every_step(&mut self, policy: &Policy, maintenance: &str, deletes: &str) {
        if policy.partitioning.is_some() {
            self.maintenance = Some(Maintenance::Failed {
                error: maintenance.to_string(),
            });
        }
        self.deletes = policy
            .deletes
            .iter()
            .map(|r| RuleReport::failed(r.name.to_string(), deletes.to_string()))
            .collect();
    }
}

/// The per-table lines of run's output.
pub fn write_report(report: &TableReport, out: &mut impl Write) -> std::io::Result<()> {
    let t = &terminal(&report.table);
    match &report.maintenance {
        None => {}
        Some(Maintenance::Done {
            created,
            dropped,
            detached,
            moved,
        }) => {
            writeln!(
                out,
                "{t}: maintenance: {} created, {} dropped, {} detached, {} moved",
                created.len(),
                dropped.len(),
                detached.len(),
                moved.len()
            )?;
            for (what, names) in [
                ("dropped", dropped),
                ("detached", detached),
                ("moved", moved),
            ] {
                if !names.is_empty() {
                    writeln!(out, "{t}:   {what}: {}", abbreviate(names))?;
                }
            }
        }
        Some(Maintenance::Skipped { attempts }) => {
            writeln!(
                out,
                "{t}: maintenance: SKIPPED: another pg_partman maintenance is running ({attempts} attempts)"
            )?;
        }
        Some(Maintenance::Failed { error }) => {
            writeln!(out, "{t}: maintenance: FAILED: {}", terminal(error))?
        }
    }
    for rule in &report.deletes {
        match &rule.error {
            None if !rule.skipped.is_empty() => writeln!(
                out,
                "{t}: delete {}: {} rows; SKIPPED {} locked partition(s): {}",
                terminal(&rule.rule),
                group(rule.rows),
                rule.skipped.len(),
                terminal(&rule.skipped.join("; "))
            )?,
            None => writeln!(
                out,
                "{t}: delete {}: {} rows",
                terminal(&rule.rule),
                group(rule.rows)
            )?,
            Some(error) => writeln!(
                out,
                "{t}: delete {}: FAILED after {} rows: {}",
                terminal(&rule.rule),
                group(rule.rows),
                terminal(error)
            )?,
        }
    }
    let outcome = match report.outcome() {
        Outcome::Ok => "ok",
        Outcome::Skipped => "skipped",
        Outcome::Failed => "FAILED",
    };
    writeln!(
        out,
        "{t}: {outcome} in {:.2} s",
        report.elapsed.as_secs_f64()
    )
}

fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 4;
    let names: Vec<String> = names.iter().map(|n| terminal(n).into_owned()).collect();
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, ... {} more, {}",
            names[..SHOWN - 1].join(", "),
            names.len() - SHOWN,
            names[names.len() - 1]
        )
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Skipped => "skipped",
        Outcome::Failed => "failed",
    }
}

/// One line of `run --log-format json`: a step of a table, a table, or the whole run.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    Step {
        time: String,
        table: &'a str,
        /// `maintenance` or `delete:<rule>`, as in run_log.
        step: String,
        outcome: &'static str,
        /// Rows deleted (delete steps).
        #[serde(skip_serializing_if = "Option::is_none")]
        rows: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        partitions_created: Option<usize>,
        /// Dropped, detached or moved.
        #[serde(skip_serializing_if = "Option::is_none")]
        partitions_removed: Option<usize>,
        /// The step's own time: maintenance's as run measured it; a delete rule's from
        /// its run_log rows (None when it never started or they could not be read).
        duration_seconds: Option<f64>,
        /// Why a step failed, was skipped, or (`partial`) which partitions it skipped.
        error: Option<Cow<'a, str>>,
    },
    Table {
        time: String,
        table: &'a str,
        outcome: &'static str,
        duration_seconds: f64,
        maintenance_seconds: Option<f64>,
        deletes_seconds: Option<f64>,
    },
    Run {
        time: String,
        ok: usize,
        skipped: usize,
        failed: usize,
        interrupted: bool,
    },
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One JSON object a line for each step of `report`, then one for the table.
pub fn write_json_events(report: &TableReport, out: &mut impl Write) -> std::io::Result<()> {
    let table = report.table.as_str();
    let mut events = Vec::new();
    if let Some(maintenance) = &report.maintenance {
        let (outcome, created, removed, error) = match maintenance {
            Maintenance::Done {
                created,
                dropped,
                detached,
                moved,
            } => (
                "ok",
                Some(created.len()),
                Some(dropped.len() + detached.len() + moved.len()),
                None,
            ),
            Maintenance::Skipped { .. } => (
                "skipped",
                None,
                None,
                Some(Cow::Borrowed("another pg_partman maintenance is running")),
            ),
            Maintenance::Failed { error } => {
                ("failed", None, None, Some(Cow::Borrowed(error.as_str())))
            }
        };
        events.push(Event::Step {
            time: now(),
            table,
            step: "maintenance".into(),
            outcome,
            rows: None,
            partitions_created: created,
            partitions_removed: removed,
            duration_seconds: report.maintenance_elapsed.map(|d| d.as_secs_f64()),
            error,
        });
    }
    for rule in &report.deletes {
        events.push(Event::Step {
            time: now(),
            table,
            step: format!("delete:{}", rule.rule),
            outcome: rule.outcome_name(),
            rows: Some(rule.rows),
            partitions_created: None,
            partitions_removed: None,
            duration_seconds: rule.duration.map(|d| d.as_secs_f64()),
            error: rule.problem(),
        });
    }
    events.push(Event::Table {
        time: now(),
        table,
        outcome: outcome_name(report.outcome()),
        duration_seconds: report.elapsed.as_secs_f64(),
        maintenance_seconds: report.maintenance_elapsed.map(|d| d.as_secs_f64()),
        deletes_seconds: report.deletes_elapsed.map(|d| d.as_secs_f64()),
    });
    for event in events {
        write_event(&event, out)?;
    }
    Ok(())
}

/// The closing event of `run --log-format json`.
pub fn run_event(ok: usize, skipped: usize, failed: usize, interrupted: bool) -> Event<'static> {
    Event::Run {
        time: now(),
        ok,
        skipped,
        failed,
        interrupted,
    }
}

pub fn write_event(event: &Event, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON events `write_json_events` writes for `r`, one value per line.
    fn json_events(r: &TableReport) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        write_json_events(r, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn report(maintenance: Option<Maintenance>, deletes: Vec<RuleReport>) -> TableReport {
        TableReport {
            table: "public.t".into(),
            maintenance,
            deletes,
            elapsed: Duration::from_millis(1500),
            maintenance_elapsed: Some(Duration::from_millis(250)),
            deletes_elapsed: None,
        }
    }

    #[test]
    fn a_skipped_maintenance_is_never_reported_as_success() {
        let r = report(Some(Maintenance::Skipped { attempts: 4 }), vec![]);
        assert_eq!(r.outcome(), Outcome::Skipped);
        let mut out = Vec::new();
        write_report(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("SKIPPED: another pg_partman maintenance is running"),
            "{text}"
        );
        assert!(text.contains("public.t: skipped in 1.50 s"), "{text}");
    }

    #[test]
    fn a_failed_rule_fails_the_table() {
        let done = Maintenance::Done {
            created: vec!["public.t_p1".into()],
            dropped: vec![],
            detached: vec![],
            moved: vec![],
        };
        let r = report(
            Some(done),
            vec![
                RuleReport {
                    rule: "a".into(),
                    rows: 12000,
                    error: None,
                    skipped: vec![],
                    duration: None,
                },
                RuleReport {
                    rule: "b".into(),
                    rows: 5,
                    error: Some("boom".into()),
                    skipped: vec![],
                    duration: None,
                },
            ],
        );
        assert_eq!(r.outcome(), Outcome::Failed);
        let mut out = Vec::new();
        write_report(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("public.t: maintenance: 1 created, 0 dropped, 0 detached, 0 moved"),
            "{text}"
        );
        assert!(text.contains("public.t: delete a: 12,000 rows"), "{text}");
        assert!(
            text.contains("public.t: delete b: FAILED after 5 rows: boom"),
            "{text}"
        );
    }

    #[test]
    fn json_events_name_table_step_rows_duration_outcome_and_error() {
        let r = report(
            Some(Maintenance::Failed {
                error: "locked\n\x1b[2J".into(),
            }),
            vec![RuleReport {
                rule: "debug".into(),
                rows: 12,
                error: None,
                skipped: Vec::new(),
                duration: None,
            }],
        );
        let lines = json_events(&r);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event"], "step");
        assert_eq!(lines[0]["step"], "maintenance");
        assert_eq!(lines[0]["outcome"], "failed");
        assert_eq!(lines[0]["error"], "locked\n\x1b[2J");
        assert_eq!(lines[0]["duration_seconds"], 0.25);
        assert_eq!(lines[1]["step"], "delete:debug");
        assert_eq!(lines[1]["rows"], 12);
        assert_eq!(lines[1]["outcome"], "ok");
        assert_eq!(lines[1]["error"], serde_json::Value::Null);
        assert_eq!(lines[2]["event"], "table");
        assert_eq!(lines[2]["outcome"], "failed");
        assert_eq!(lines[2]["duration_seconds"], 1.5);
    }

    #[test]
    fn a_delete_step_that_skipped_locked_partitions_is_partial_with_its_duration() {
        let r = report(
            None,
            vec![
                RuleReport {
                    rule: "debug".into(),
                    rows: 7,
                    error: None,
                    skipped: vec!["public.t_p1 (locked by pid 42)".into()],
                    duration: Some(Duration::from_millis(125)),
                },
                RuleReport {
                    rule: "old".into(),
                    rows: 3,
                    error: None,
                    skipped: Vec::new(),
                    duration: Some(Duration::from_millis(500)),
                },
            ],
        );
        let lines = json_events(&r);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["step"], "delete:debug");
        assert_eq!(lines[0]["outcome"], "partial");
        assert_eq!(
            lines[0]["error"],
            "skipped 1 locked partition(s): public.t_p1 (locked by pid 42)"
        );
        assert_eq!(lines[0]["duration_seconds"], 0.125);
        assert_eq!(lines[1]["outcome"], "ok");
        assert_eq!(lines[1]["error"], serde_json::Value::Null);
        assert_eq!(lines[1]["duration_seconds"], 0.5);
        assert_eq!(lines[2]["event"], "table");
        assert_eq!(lines[2]["outcome"], "skipped");
    }

    #[test]
    fn text_output_shows_no_control_character_from_the_database() {
        let r = report(
            Some(Maintenance::Done {
                created: vec![],
                dropped: vec!["public.\"t\x1b[2J\"".into()],
                detached: vec![],
                moved: vec![],
            }),
            vec![RuleReport {
                rule: "r".into(),
                rows: 0,
                error: Some("bad\nnews \u{202e}".into()),
                skipped: Vec::new(),
                duration: None,
            }],
        );
        let mut out = Vec::new();
        write_report(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains("dropped: public.\"t\\x1b[2J\""), "{text}");
        assert!(
            text.contains("FAILED after 0 rows: bad\\nnews \\u{202e}\n"),
            "{text}"
        );
    }

    #[test]
    fn long_lists_of_partitions_are_abbreviated() {
        let names: Vec<String> = (1..=10).map(|i| format!("p{i}")).collect();
        assert_eq!(abbreviate(&names), "p1, p2, p3, ... 6 more, p10");
        assert_eq!(abbreviate(&names[..2]), "p1, p2");
    }
}
