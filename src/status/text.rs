//! `status` for people: a few lines per table, then its lapses. Everything read from
//! the database goes through `output::terminal`.

use std::io::{self, Write};

use crate::output::terminal;

use super::checks::{Finding, TableStatus, human_seconds};
use super::facts::DEFAULT_ROWS_CAP;

pub fn write_text(tables: &[TableStatus], out: &mut impl Write) -> io::Result<()> {
    for t in tables {
        writeln!(out, "{}", terminal(&t.table))?;
        if !t.exists {
            writeln!(out, "  table: missing")?;
        }
        if t.registered == Some(false) {
            writeln!(out, "  pg_partman: not registered")?;
        }
        if let Some(s) = &t.schedule {
            writeln!(
                out,
                "  schedule: {} (every {})",
                terminal(&s.cron),
                s.period
            )?;
            if let Some(note) = &s.note {
                writeln!(out, "  note: {}", terminal(note))?;
            }
        }
        if let Some(p) = &t.partitions {
            writeln!(
                out,
                "  partitions: {} from {} to {}; {} premade ahead of now (premake {})",
                p.count,
                p.oldest_bound.as_deref().unwrap_or("-"),
                p.newest_bound.as_deref().unwrap_or("-"),
                p.premade_ahead,
                p.premake
            )?;
            match (p.default_partition, p.default_rows) {
                (false, _) => writeln!(out, "  default partition: none")?,
                (true, Some(n)) if n >= DEFAULT_ROWS_CAP => {
                    writeln!(out, "  default partition: {n} or more rows")?
                }
                (true, Some(n)) => writeln!(out, "  default partition: {n} rows")?,
                (true, None) => writeln!(out, "  default partition: unreadable")?,
            }
        }
        if let Some(r) = &t.retention {
            let verdict = if r.holds { "holds" } else { "LAPSED" };
            match (&r.oldest_row, r.oldest_row_age_seconds) {
                (Some(oldest), Some(age)) => writeln!(
                    out,
                    "  oldest row: {oldest} ({} old); keep {}, allowed {}: retention {verdict}",
                    human_seconds(age),
                    r.keep,
                    r.allowed_age
                )?,
                _ => writeln!(
                    out,
                    "  oldest row: none (empty); keep {}: retention {verdict}",
                    r.keep
                )?,
            }
        }
        for rule in &t.rules {
            let verdict = if rule.holds { "holds" } else { "LAPSED" };
            let what = match (&rule.allowed_age, rule.overdue_rows) {
                (_, None) => "cannot be checked".to_string(),
                (Some(allowed), Some(false)) => format!("no matching row older than {allowed}"),
                (Some(allowed), Some(true)) => format!("matching rows older than {allowed}"),
                (None, Some(false)) => "no matching row".to_string(),
                (None, Some(true)) => "matching rows remain".to_string(),
            };
            writeln!(out, "  rule {}: {what}: {verdict}", terminal(&rule.rule))?;
        }
        if t.exists && t.last_runs.is_empty() {
            writeln!(out, "  last run: never")?;
        }
        for run in &t.last_runs {
            let what = if run.step == "maintenance" {
                format!(
                    "{} created, {} removed",
                    run.partitions_created, run.partitions_removed
                )
            } else {
                format!("{} rows", run.rows_deleted)
            };
            // pg_cron's background workers run without an application_name.
            let by = if run.run_by.is_empty() {
                "a session without application_name (pg_cron)".into()
            } else {
                terminal(&run.run_by)
            };
            writeln!(
                out,
                "  last {}: {} at {} by {by} ({what}){}",
                terminal(&run.step),
                terminal(&run.outcome),
                run.started_at,
                run.error
                    .as_deref()
                    .map(|e| format!(": {}", terminal(e)))
                    .unwrap_or_default()
            )?;
        }
        for f in &t.findings {
            writeln!(out, "  LAPSED: {}", finding_text(f))?;
        }
        for w in &t.warnings {
            writeln!(out, "  warning: {}", terminal(w))?;
        }
    }
    Ok(())
}

/// `<problem>; <fix>` (with the rule or step when there is one), one line.
pub fn finding_text(f: &Finding) -> String {
    format!("{}; {}", terminal(&f.problem), terminal(&f.fix))
}

/// The line `status --check` writes to stderr for a finding.
pub fn check_line(f: &Finding) -> String {
    let what = match (&f.rule, &f.step) {
        (Some(rule), _) => format!(" rule {}", terminal(rule)),
        (None, Some(step)) => format!(" {}", terminal(step)),
        (None, None) => String::new(),
    };
    format!(
        "check failed: {}{what} [{}]: {}",
        terminal(&f.table),
        f.check.name(),
        finding_text(f)
    )
}
