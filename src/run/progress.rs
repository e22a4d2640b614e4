//! Progress of delete rules, read from the prune procedure's NOTICEs, shown as a bar on a
//! terminal and as plain log lines otherwise.
//!
//! The procedure raises `retentionc progress: rule=<name> deleted=<total>` after each
//! committed batch (when the session sets `retentionc.progress = 'on'`) and ends with
//! `retentionc: <table> deleted {"<rule>": <rows>, ...}`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// What one notice says, when it is one of the procedure's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneNotice {
    /// Rows deleted so far by a rule (committed).
    Progress { rule: String, deleted: i64 },
    /// The closing summary: rows deleted per rule.
    Summary(BTreeMap<String, i64>),
}

/// Parses the procedure's notices; anything else is `None`.
pub fn parse_notice(message: &str) -> Option<PruneNotice> {
    if let Some(rest) = message.strip_prefix("retentionc progress: rule=") {
        let (rule, deleted) = rest.split_once(" deleted=")?;
        return Some(PruneNotice::Progress {
            rule: rule.to_string(),
            deleted: deleted.trim().parse().ok()?,
        });
    }
    let rest = message.strip_prefix("retentionc: ")?;
    let json = &rest[rest.find(" deleted ")? + " deleted ".len()..];
    let summary: BTreeMap<String, i64> = serde_json::from_str(json).ok()?;
    Some(PruneNotice::Summary(summary))
}

/// Shows progress of the rules of one table.
pub struct ProgressDisplay {
    table: String,
    bar: Option<ProgressBar>,
    terminal: bool,
    rule: Option<String>,
    rule_started: Instant,
    /// When the last notice came (or the display was made): a new rule started then.
    last_event: Instant,
    last_log: Instant,
    /// Committed rows per rule, as last reported.
    pub deleted: BTreeMap<String, i64>,
}

/// How often a plain log line is written while a rule is still running.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl ProgressDisplay {
    /// `bars`: a spinner on a terminal (false when several tables are pruned at once,
    /// whose spinners would overwrite each other: plain lines then).
    pub fn new(table: &str, bars: bool) -> ProgressDisplay {
        ProgressDisplay {
            table: table.to_string(),
            bar: None,
            terminal: bars && std::io::stderr().is_terminal(),
            rule: None,
            rule_started: Instant::now(),
            last_event: Instant::now(),
            last_log: Instant::now(),
            deleted: BTreeMap::new(),
        }
    }

    pub fn update(&mut self, rule: &str, deleted: i64) {
        if self.rule.as_deref() != Some(rule) {
            self.finish_rule();
            self.rule = Some(rule.to_string());
            self.rule_started = self.last_event;
            self.last_log = Instant::now();
        }
        self.last_event = Instant::now();
        self.deleted.insert(rule.to_string(), deleted);
        let elapsed = self.rule_started.elapsed().as_secs_f64().max(0.001);
        let rate = deleted as f64 / elapsed;
        let message = format!(
            "{}: delete {rule}: {} rows ({}/s)",
            self.table,
            group(deleted),
            group(rate as i64)
        );
        if self.terminal {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .expect("a valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(message);
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            eprintln!("{message}, still running");
        }
    }

    /// Ends the bar of the current rule, if any.
    pub fn finish_rule(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.rule = None;
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.finish_rule();
    }
}

/// 1234567 -> "1,234,567" (and -1234 -> "-1,234"): the digits grouped as plan groups them.
pub fn group(n: i64) -> String {
    let out = crate::plan::format::thousands(n.unsigned_abs());
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_procedures_notices_are_understood() {
        assert_eq!(
            parse_notice("retentionc progress: rule=debug_rows deleted=15000"),
            Some(PruneNotice::Progress {
                rule: "debug_rows".into(),
                deleted: 15000
            })
        );
        let summary = parse_notice(
            r#"retentionc: public.app_logs deleted {"debug_rows": 12, "health_checks": 0}"#,
        );
        assert_eq!(
            summary,
            Some(PruneNotice::Summary(BTreeMap::from([
                ("debug_rows".into(), 12),
                ("health_checks".into(), 0)
            ])))
        );
        assert_eq!(parse_notice("Partman maintenance already running."), None);
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
