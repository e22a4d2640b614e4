//! Every promise of every policy, checked against what status read: pure, from
//! `Facts` and the policy to a `TableStatus` with its findings. A finding is a lapse:
//! `status --check` exits 3 on any. Each check is described in docs/run-status.md.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::catalog::ChildPartition;
use crate::model::{Config, Epoch, Policy};
use crate::plan::impact::{bound_time, cutoff, range_bounds};

use super::facts::{DEFAULT_ROWS_CAP, Facts, RunRow, steps};
use super::window;

/// What a check found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The policy's table does not exist.
    TableMissing,
    /// A partitioned policy's table is not registered with pg_partman.
    NotRegistered,
    /// Rows older than keep + one interval + the schedule's period remain.
    Retention,
    /// Rows a delete rule should have removed remain (or the rule cannot be checked).
    DeleteRule,
    /// The last run of a step failed.
    LastRunFailed,
    /// A scheduled step has not succeeded for more than two periods.
    RunStale,
    /// A scheduled step never ran, more than one period after the policy was applied.
    NeverRun,
    /// The policy wants a default partition and there is none.
    DefaultPartitionMissing,
    /// Rows sit in the default partition: data pg_partman could not place.
    DefaultPartitionRows,
    /// Fewer partitions premade ahead of now than half of `premake`.
    PremakeLow,
    /// A child is missing inside the partition range.
    PartitionGap,
}

impl Check {
    pub const ALL: [Check; 11] = [
        Check::TableMissing,
        Check::NotRegistered,
        Check::Retention,
        Check::DeleteRule,
        Check::LastRunFailed,
        Check::RunStale,
        Check::NeverRun,
        Check::DefaultPartitionMissing,
        Check::DefaultPartitionRows,
        Check::PremakeLow,
        Check::PartitionGap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::TableMissing => "table_missing",
            Check::NotRegistered => "not_registered",
            Check::Retention => "retention",
            Check::DeleteRule => "delete_rule",
            Check::LastRunFailed => "last_run_failed",
            Check::RunStale => "run_stale",
            Check::NeverRun => "never_run",
            Check::DefaultPartitionMissing => "default_partition_missing",
            Check::DefaultPartitionRows => "default_partition_rows",
            Check::PremakeLow => "premake_low",
            Check::PartitionGap => "partition_gap",
        }
    }
}

/// One lapse: which table (and rule or step), what is wrong, what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: Check,
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub exists: bool,
    /// Registered with pg_partman (None: the policy does not partition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionStatus>,
    pub rules: Vec<RuleStatus>,
    /// Last run of each step (`maintenance`, `delete:<rule>`).
    pub last_runs: Vec<LastRun>,
    pub findings: Vec<Finding>,
    /// Notes that are not lapses.
    pub warnings: Vec<String>,
}

impl TableStatus {
    pub fn lapsed(&self) -> bool {
        !self.findings.is_empty()
    }
}

#[derive(Debug, Serialize)]
pub struct ScheduleStatus {
    pub cron: String,
    pub period: String,
    pub period_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    pub count: usize,
    pub oldest_bound: Option<String>,
    pub newest_bound: Option<String>,
    /// Children wholly after now.
    pub premade_ahead: usize,
    pub premake: u32,
    pub default_partition: bool,
    /// Rows in the default partition (at most `DEFAULT_ROWS_CAP`): data pg_partman
    /// could not place.
    pub default_rows: Option<i64>,
    /// Ranges no child covers, between the first and the last child.
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Serialize)]
pub struct Gap {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize)]
pub struct RetentionStatus {
    pub keep: String,
    /// keep + one partition interval + the schedule's period.
    pub allowed_age: String,
    pub allowed_age_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_age_note: Option<String>,
    pub oldest_row: Option<String>,
    pub oldest_row_age_seconds: Option<f64>,
    /// False when a row older than `allowed_age` is still there.
    pub holds: bool,
}

#[derive(Debug, Serialize)]
pub struct RuleStatus {
    pub rule: String,
    /// `older_than` + the schedule's period; None for a rule without older_than.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_age_seconds: Option<f64>,
    /// Rows the rule should have removed remain (None: could not be checked).
    pub overdue_rows: Option<bool>,
    pub holds: bool,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub step: String,
    pub outcome: String,
    pub started_at: String,
    pub finished_at: String,
    pub run_by: String,
    pub partitions_created: i32,
    pub partitions_removed: i32,
    pub rows_deleted: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Start of the last run of this step that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ok_at: Option<String>,
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// One child's bounds as times, or None (DEFAULT, MINVALUE, a list partition).
fn child_range(child: &ChildPartition, epoch: Epoch) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (from, to) = range_bounds(&child.bound)?;
    Some((bound_time(&from, epoch)?, bound_time(&to, epoch)?))
}

/// Checks one policy against the facts.
pub fn evaluate(policy: &Policy, config: &Config, facts: &Facts) -> TableStatus {
    let table = policy.table.to_string();
    let now = facts.live.now;
    let exists = facts.live.tables.contains_key(&table);
    let (period, period_note) = window::period(policy);
    let mut status = TableStatus {
        table: table.clone(),
        exists,
        registered: None,
        schedule: policy.schedule.as_ref().map(|cron| ScheduleStatus {
            cron: cron.clone(),
            period: period.to_string(),
            period_seconds: seconds_between(cutoff(now, &period), now),
            note: period_note.clone(),
        }),
        partitions: None,
        retention: None,
        rules: Vec::new(),
        last_runs: Vec::new(),
        findings: Vec::new(),
        warnings: Vec::new(),
    };
    let finding = |check: Check, problem: String, fix: String| Finding {
        check,
        table: table.clone(),
        rule: None,
        step: None,
        problem,
        fix,
    };
    if !exists {
        status.findings.push(finding(
            Check::TableMissing,
            "the table does not exist".into(),
            format!(
                "create it, or remove its policy ({})",
                policy.source.file.display()
            ),
        ));
        return status;
    }

    if let Some(partitioning) = &policy.partitioning {
        let registered = facts
            .live
            .part_config
            .iter()
            .any(|c| c.parent_table == table);
        status.registered = Some(registered);
        if !registered {
            status.findings.push(finding(
                Check::NotRegistered,
                "not registered with pg_partman".into(),
                "run `retentionc apply`".into(),
            ));
        } else {
            let children = facts
                .live
                .children
                .get(&table)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let mut ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = children
                .iter()
                .filter_map(|c| child_range(c, partitioning.epoch))
                .collect();
            ranges.sort();
            let ahead = ranges.iter().filter(|(start, _)| *start > now).count();
            let gaps: Vec<Gap> = ranges
                .windows(2)
                .filter(|w| w[0].1 < w[1].0)
                .map(|w| Gap {
                    from: timestamp(w[0].1),
                    to: timestamp(w[1].0),
                })
                .collect();
            let has_default = children.iter().any(|c| c.bound == "DEFAULT");
            let default_rows = match facts.default_rows.get(&table) {
                Some(Ok(n)) => Some(*n),
                Some(Err(e)) => {
                    status
                        .warnings
                        .push(format!("could not read the default partition: {e}"));
                    None
                }
                None => None,
            };
            if partitioning.default_partition && !has_default {
                status.findings.push(finding(
                    Check::DefaultPartitionMissing,
                    "no default partition, though the policy wants one".into(),
                    format!(
                        "create it (CREATE TABLE {table}_default PARTITION OF {table} DEFAULT), or set partitioning.default_partition: false"
                    ),
                ));
            }
            if let Some(n) = default_rows.filter(|n| *n > 0) {
                let shown = if n >= DEFAULT_ROWS_CAP {
                    format!("{n} or more rows")
                } else {
                    format!("{n} rows")
                };
                status.findings.push(finding(
                    Check::DefaultPartitionRows,
                    format!("{shown} in the default partition: data pg_partman could not place, which retention never expires"),
                    format!(
                        "move them into partitions ({0}.partition_data_time, after {0}.check_default())",
                        config.partman_schema
                    ),
                ));
            }
            if (ahead as u64) * 2 < partitioning.premake as u64 {
                status.findings.push(finding(
                    Check::PremakeLow,
                    format!(
                        "{ahead} partitions premade ahead of now, fewer than half of premake {}: new rows will soon go to the default partition",
                        partitioning.premake
                    ),
                    "run `retentionc run` (maintenance premakes them); if it runs, see why it does not create them".into(),
                ));
            }
            for gap in &gaps {
                status.findings.push(finding(
                    Check::PartitionGap,
                    format!("no partition covers {} to {}", gap.from, gap.to),
                    format!(
                        "fill it with {}.partition_gap_fill('{}')",
                        config.partman_schema, table
                    ),
                ));
            }
            status.partitions = Some(PartitionStatus {
                count: children.iter().filter(|c| c.bound != "DEFAULT").count(),
                oldest_bound: ranges.first().map(|r| timestamp(r.0)),
                newest_bound: ranges.last().map(|r| timestamp(r.1)),
                premade_ahead: ahead,
                premake: partitioning.premake,
                default_partition: has_default,
                default_rows,
                gaps,
            });
        }
        if let (Some(retention), Some(allowed)) =
            (&policy.retention, window::retention_allowed(policy))
        {
            let limit = cutoff(now, &allowed);
            let oldest = match facts.oldest.get(&table) {
                Some(Ok(oldest)) => Ok(*oldest),
                Some(Err(e)) => Err(e.clone()),
                None => Err(format!(
                    "column {} is missing from the table",
                    partitioning.column
                )),
            };
            let holds = match &oldest {
                Ok(oldest) => oldest.is_none_or(|t| t >= limit),
                Err(_) => false,
            };
            let allowed_text = allowed.to_string();
            match &oldest {
                Ok(Some(t)) if !holds => status.findings.push(finding(
                    Check::Retention,
                    format!(
                        "holds rows from {} ({} old), older than its policy allows ({allowed_text})",
                        timestamp(*t),
                        human_seconds(seconds_between(*t, now))
                    ),
                    "run `retentionc run`; if runs succeed, see the last maintenance".into(),
                )),
                Err(e) => status.findings.push(finding(
                    Check::Retention,
                    format!("the oldest row cannot be read: {e}"),
                    "fix the table or the policy".into(),
                )),
                _ => {}
            }
            let oldest = oldest.ok().flatten();
            status.retention = Some(RetentionStatus {
                keep: retention.keep.to_string(),
                allowed_age: allowed_text,
                allowed_age_seconds: seconds_between(limit, now),
                allowed_age_note: period_note.clone(),
                oldest_row: oldest.map(timestamp),
                oldest_row_age_seconds: oldest.map(|t| seconds_between(t, now)),
                holds,
            });
        }
    }

    // Runs first: a rule without older_than is judged against its last successful run.
    let mut last_ok = std::collections::BTreeMap::new();
    for step in steps(policy) {
        let runs = facts
            .runs
            .get(&(table.clone(), step.clone()))
            .cloned()
            .unwrap_or_default();
        last_ok.insert(step.clone(), runs.last_ok_started);
        let rule = step.strip_prefix("delete:").map(String::from);
        let step_finding = |check: Check, problem: String, fix: String| Finding {
            check,
            table: table.clone(),
            rule: rule.clone(),
            step: Some(step.clone()),
            problem,
            fix,
        };
        if let Some(RunRow {
            outcome,
            error,
            started_at,
            ..
        }) = &runs.last
            && (outcome == "failed" || outcome == "partial")
        {
            // A partial run skipped partitions another session had locked: their rows
            // are still there, as after a failure.
            let what = if outcome == "partial" {
                "skipped locked partitions"
            } else {
                "failed"
            };
            status.findings.push(step_finding(
                Check::LastRunFailed,
                format!(
                    "the last {step} {what} at {}: {}",
                    timestamp(*started_at),
                    error.as_deref().unwrap_or("no error recorded")
                ),
                "see the error; run `retentionc run` once it is fixed".into(),
            ));
        } else if let Some(run) = runs.last.as_ref().filter(|r| r.outcome != "ok") {
            status.warnings.push(format!(
                "last {step} {} at {}",
                run.outcome,
                timestamp(run.started_at)
            ));
        }
        if let Some(stale_after) = window::stale_after(policy) {
            let fix = "check that the pg_cron job runs (cron.job_run_details) and succeeds; `retentionc run` catches up".to_string();
            match runs.last_ok_started {
                Some(ok) if ok < cutoff(now, &stale_after) => {
                    status.findings.push(step_finding(
                        Check::RunStale,
                        format!(
                            "no successful {step} since {} ({} ago); the schedule runs every {}",
                            timestamp(ok),
                            human_seconds(seconds_between(ok, now)),
                            period
                        ),
                        fix,
                    ));
                }
                Some(_) => {}
                None => match facts.first_applied.get(&table) {
                    Some(applied) if *applied < cutoff(now, &period) => {
                        status.findings.push(step_finding(
                            Check::NeverRun,
                            format!(
                                "{step} never succeeded since the policy was applied at {}; the schedule runs every {}",
                                timestamp(*applied),
                                period
                            ),
                            fix,
                        ));
                    }
                    Some(_) => {}
                    None => status.warnings.push(format!(
                        "{step} never ran, and no apply is recorded to tell since when"
                    )),
                },
            }
        }
        if let Some(run) = runs.last {
            status.last_runs.push(LastRun {
                step: step.clone(),
                outcome: run.outcome,
                started_at: timestamp(run.started_at),
                finished_at: timestamp(run.finished_at),
                run_by: run.run_by,
                partitions_created: run.partitions_created,
                partitions_removed: run.partitions_removed,
                rows_deleted: run.rows_deleted,
                error: run.error,
                last_ok_at: runs.last_ok_started.map(timestamp),
            });
        }
    }

    for rule in &policy.deletes {
        let name = rule.name.to_string();
        let allowed = window::rule_allowed(policy, rule);
        let overdue = match facts.overdue.get(&(table.clone(), name.clone())) {
            Some(Ok(found)) => Ok(*found),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!(
                "column {} is missing from the table",
                window::rule_column(policy, rule)
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            )),
        };
        // Without older_than, matching rows are overdue only once a run should have
        // removed them: one period after the last successful run (or ever, never run).
        let last_ok_of_rule = last_ok.get(&format!("delete:{name}")).copied().flatten();
        let waited = match allowed {
            Some(_) => true,
            None => last_ok_of_rule.is_none_or(|ok| ok < cutoff(now, &period)),
        };
        let holds = match overdue {
            Ok(found) => !(found && waited),
            Err(_) => false,
        };
        let rule_finding = |problem: String, fix: String| Finding {
            check: Check::DeleteRule,
            table: table.clone(),
            rule: Some(name.clone()),
            step: Some(format!("delete:{name}")),
            problem,
            fix,
        };
        match (&overdue, allowed) {
            (Err(e), _) => status.findings.push(rule_finding(
                format!("rule {name} cannot be checked: {e}"),
                "fix the rule's where or column, or the table".into(),
            )),
            (Ok(_), Some(allowed)) if !holds => status.findings.push(rule_finding(
                format!("rows matching rule {name} older than it allows ({allowed}) remain"),
                "run `retentionc run`; if runs succeed, see the last run of this rule".into(),
            )),
            (Ok(_), None) if !holds => status.findings.push(rule_finding(
                match (period.comparable() > 0, last_ok_of_rule) {
                    (false, _) => format!("rows matching rule {name} remain"),
                    (true, Some(_)) => format!(
                        "rows matching rule {name} remain more than one schedule period ({period}) after its last successful run"
                    ),
                    (true, None) => format!(
                        "rows matching rule {name} remain, and the rule never ran successfully"
                    ),
                },
                "run `retentionc run`; if runs succeed, see the last run of this rule".into(),
            )),
            _ => {}
        }
        status.rules.push(RuleStatus {
            rule: name,
            allowed_age: allowed.map(|a| a.to_string()),
            allowed_age_seconds: allowed.map(|a| seconds_between(cutoff(now, &a), now)),
            overdue_rows: overdue.ok(),
            holds,
        });
    }
    status
}

/// 90061.5 -> "1d 1h 1m 1s"; under a minute with one decimal.
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let total = seconds as i64;
    let (d, h, m, s) = (
        total / 86400,
        total % 86400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    let mut parts = Vec::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::catalog::{PartConfigRow, TableInfo};
    use crate::status::facts::StepRuns;

    fn policy(text: &str) -> (Policy, Config) {
        let config =
            crate::config::parse_config(Path::new("retentionc.yaml"), "", PathBuf::from("."))
                .unwrap();
        let (mut found, errors) =
            crate::policy::parse_policy_text(Path::new("policies/p.yaml"), text, &config);
        assert!(errors.is_empty(), "{errors:?}");
        (found.remove(0), config)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn hourly(table: &str, from_hour: u32, to_hour: u32, skip: &[u32]) -> Vec<ChildPartition> {
        let mut children: Vec<ChildPartition> = (from_hour..to_hour)
            .filter(|h| !skip.contains(h))
            .map(|h| ChildPartition {
                name: format!("{table}_p{h:02}"),
                bound: format!(
                    "FOR VALUES FROM ('2026-11-25 {h:02}:00:00+00') TO ('2026-11-25 {:02}:00:00+00')",
                    h + 1
                ),
                estimated_rows: 0.0,
            })
            .collect();
        children.push(ChildPartition {
            name: format!("{table}_default"),
            bound: "DEFAULT".into(),
            estimated_rows: 0.0,
        });
        children
    }

    /// Facts for `public.t`: exists, registered, the given children, nothing else.
    fn facts(now: &str, children: Vec<ChildPartition>) -> Facts {
        let mut facts = Facts::default();
        facts.live.now = at(now);
        facts.live.tables.insert(
            "public.t".into(),
            TableInfo {
                relkind: "p".into(),
                partition_strategy: Some("r".into()),
                partition_key: vec!["at".into()],
                key_count: 1,
                columns: vec![],
                extension_member: false,
                persistence: "p".into(),
                owner: "app".into(),
                not_null_columns: vec![],
            },
        );
        facts.live.part_config.push(PartConfigRow {
            parent_table: "public.t".into(),
            control: "at".into(),
            partition_interval: "01:00:00".into(),
            partition_interval_parsed: None,
            premake: 4,
            retention: None,
            retention_parsed: None,
            retention_schema: None,
            retention_keep_table: false,
            retention_keep_index: false,
            infinite_time_partitions: true,
            epoch: "none".into(),
        });
        facts.live.children.insert("public.t".into(), children);
        facts.oldest.insert("public.t".into(), Ok(None));
        facts.default_rows.insert("public.t".into(), Ok(0));
        facts
    }

    const HOURLY: &str = "table: public.t\npartitioning:\n  column: at\n  interval: 1 hour\n  premake: 4\nretention:\n  keep: 2 hours\n";

    fn checks(status: &TableStatus) -> Vec<Check> {
        status.findings.iter().map(|f| f.check).collect()
    }

    #[test]
    fn a_missing_child_inside_the_range_is_a_gap_and_premade_children_are_counted() {
        let (policy, config) = policy(HOURLY);
        let status = evaluate(
            &policy,
            &config,
            &facts("2026-11-25T10:30:00Z", hourly("public.t", 8, 15, &[])),
        );
        assert_eq!(checks(&status), []);
        assert_eq!(status.partitions.as_ref().unwrap().premade_ahead, 4);

        let status = evaluate(
            &policy,
            &config,
            &facts("2026-11-25T10:30:00Z", hourly("public.t", 8, 15, &[9])),
        );
        assert_eq!(checks(&status), [Check::PartitionGap]);
        let gap = &status.partitions.as_ref().unwrap().gaps[0];
        assert_eq!(
            (gap.from.as_str(), gap.to.as_str()),
            ("2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z")
        );

        // Two ahead of premake 4 is half: still fine; one is not.
        let status = evaluate(
            &policy,
            &config,
            &facts("2026-11-25T12:30:00Z", hourly("public.t", 8, 15, &[])),
        );
        assert_eq!(checks(&status), []);
        let status = evaluate(
            &policy,
            &config,
            &facts("2026-11-25T13:30:00Z", hourly("public.t", 8, 15, &[])),
        );
        assert_eq!(checks(&status), [Check::PremakeLow]);
    }

    #[test]
    fn oldest_row_is_allowed_keep_plus_one_interval() {
        let (policy, config) = policy(HOURLY);
        let mut f = facts("2026-11-25T12:00:00Z", hourly("public.t", 8, 17, &[]));
        f.oldest
            .insert("public.t".into(), Ok(Some(at("2026-11-25T09:00:00Z"))));
        assert_eq!(checks(&evaluate(&policy, &config, &f)), []);
        f.oldest
            .insert("public.t".into(), Ok(Some(at("2026-11-25T08:59:59Z"))));
        let status = evaluate(&policy, &config, &f);
        assert_eq!(checks(&status), [Check::Retention]);
        assert!(
            status.findings[0]
                .problem
                .contains("older than its policy allows (3 hours)")
        );
    }

    #[test]
    fn a_rule_without_older_than_waits_one_period_after_its_last_run() {
        let (policy, config) = policy(
            "table: public.t\ndeletes:\n  - name: gone\n    where: \"deleted\"\nschedule: \"0 * * * *\"\n",
        );
        let mut f = facts("2026-11-25T12:00:00Z", vec![]);
        f.overdue
            .insert(("public.t".into(), "gone".into()), Ok(true));
        let ran = |started: &str| StepRuns {
            last: Some(RunRow {
                outcome: "ok".into(),
                started_at: at(started),
                finished_at: at(started),
                run_by: "retentionc".into(),
                partitions_created: 0,
                partitions_removed: 0,
                rows_deleted: 0,
                error: None,
            }),
            last_ok_started: Some(at(started)),
        };
        let step = ("public.t".to_string(), "delete:gone".to_string());
        f.runs.insert(step.clone(), ran("2026-11-25T11:30:00Z"));
        assert_eq!(checks(&evaluate(&policy, &config, &f)), []);
        f.runs.insert(step.clone(), ran("2026-11-25T10:30:00Z"));
        assert_eq!(checks(&evaluate(&policy, &config, &f)), [Check::DeleteRule]);
        // Three hourly periods without success: stale as well.
        f.runs.insert(step, ran("2026-11-25T09:00:00Z"));
        assert_eq!(
            checks(&evaluate(&policy, &config, &f)),
            [Check::RunStale, Check::DeleteRule]
        );
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(human_seconds(14.84), "14.8s");
        assert_eq!(human_seconds(90061.5), "1d 1h 1m 1s");
        assert_eq!(human_seconds(3600.0), "1h");
    }
}
