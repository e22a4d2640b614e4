//! What `run` did, per table, and how it is written: the lines of run's output. Pure.

use std::io::Write;
use std::time::Duration;

use super::progress::group;
use crate::model::Policy;

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
}

#[derive(Debug, Clone)]
pub struct TableReport {
    pub table: String,
    pub maintenance: Option<Maintenance>,
    pub deletes: Vec<RuleReport>,
    pub elapsed: Duration,
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
            .map(|r| RuleReport {
                rule: r.name.to_string(),
                rows: 0,
                error: Some(deletes.to_string()),
                skipped: Vec::new(),
            })
            .collect();
    }
}

/// The per-table lines of run's output.
pub fn write_report(report: &TableReport, out: &mut impl Write) -> std::io::Result<()> {
    let t = &report.table;
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
        Some(Maintenance::Failed { error }) => writeln!(out, "{t}: maintenance: FAILED: {error}")?,
    }
    for rule in &report.deletes {
        match &rule.error {
            None if !rule.skipped.is_empty() => writeln!(
                out,
                "{t}: delete {}: {} rows; SKIPPED {} locked partition(s): {}",
                rule.rule,
                group(rule.rows),
                rule.skipped.len(),
                rule.skipped.join("; ")
            )?,
            None => writeln!(out, "{t}: delete {}: {} rows", rule.rule, group(rule.rows))?,
            Some(error) => writeln!(
                out,
                "{t}: delete {}: FAILED after {} rows: {error}",
                rule.rule,
                group(rule.rows)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(maintenance: Option<Maintenance>, deletes: Vec<RuleReport>) -> TableReport {
        TableReport {
            table: "public.t".into(),
            maintenance,
            deletes,
            elapsed: Duration::from_millis(1500),
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
                },
                RuleReport {
                    rule: "b".into(),
                    rows: 5,
                    error: Some("boom".into()),
                    skipped: vec![],
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
    fn long_lists_of_partitions_are_abbreviated() {
        let names: Vec<String> = (1..=10).map(|i| format!("p{i}")).collect();
        assert_eq!(abbreviate(&names), "p1, p2, p3, ... 6 more, p10");
        assert_eq!(abbreviate(&names[..2]), "p1, p2");
    }
}
