//! Why apply refuses or stops: each refusal a value carrying its facts (tables, paths,
//! counts, the lock conflict), whose text is what the user reads. Every refusal before
//! the first COMMIT says that nothing was changed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::guard::Forbidden;
use super::locks::Blocker;
use crate::plan::ChangeKind;
use crate::plan::format::kind_name;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "apply asks for confirmation, and stdin is not a terminal: pass --auto-approve to apply without asking (nothing was changed)"
    )]
    NeedsTerminal,

    #[error("apply cancelled; nothing was changed")]
    Cancelled,

    /// The saved plan is not JSON of a plan (the parser's error is the source).
    #[error("{}: not a plan saved by `retentionc plan --out`", .path.display())]
    NotAPlan {
        path: PathBuf,
        #[source]
        cause: serde_json::Error,
    },

    #[error(
        "{}: a plan of format version {found}, and this retentionc reads version {expected}; run plan again with this version",
        .path.display()
    )]
    PlanFormatVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },

    /// The policies' hashes differ from those the saved plan was made with.
    #[error(
        "the policies changed since the plan was made ({}); run plan again (nothing was changed)",
        .tables.join(", ")
    )]
    PoliciesChanged { tables: Vec<String> },

    #[error("{}", data_loss_text(.destructive))]
    DataLossNotAllowed { destructive: Vec<DestructiveChange> },

    /// A saved plan is not the plan the database and the policies give now.
    #[error(
        "{mismatch}; run plan again (plan {}: fingerprint {}, database now {}; nothing was changed)",
        .path.display(),
        short(.planned_fingerprint),
        short(.live_fingerprint)
    )]
    SavedPlanOutdated {
        mismatch: Box<PlanMismatch>,
        path: PathBuf,
        planned_fingerprint: String,
        live_fingerprint: String,
    },

    /// The plan shown for confirmation is not the plan of now.
    #[error(
        "{} while the plan awaited confirmation; run apply again to see the new plan (nothing was changed)",
        .mismatch.without_since()
    )]
    ChangedWhileConfirming { mismatch: Box<PlanMismatch> },

    #[error(
        "another retentionc apply is running{}; waited {} s for it to finish (nothing was changed; run apply again when it is done)",
        .holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(),
        .waited.as_secs_f64()
    )]
    AnotherApplyRunning {
        holder: Option<AdvisoryHolder>,
        waited: Duration,
    },

    #[error(
        "refusing to apply: statement [{key}] of {table} would {}; retentionc never drops, truncates or renames a parent table (nothing was changed)",
        .forbidden.describe()
    )]
    ForbiddenStatement {
        key: String,
        table: String,
        forbidden: Forbidden,
    },

    #[error(
        "{}: the plan takes statement [{key}] of {table} from this file, which the project does not produce; run `retentionc compile`, review and commit generated/, then plan again (nothing was changed)",
        .path.display()
    )]
    FileNotProduced {
        path: PathBuf,
        key: String,
        table: String,
    },

    #[error(
        "{}: the file is not what `retentionc compile` writes, so it is not what was reviewed; run `retentionc compile`, review and commit generated/, then plan again (nothing was changed)",
        .path.display()
    )]
    GeneratedFileChanged { path: PathBuf },

    #[error(
        "{}: no statement [{key}] (for {table}); run plan again (nothing was changed)",
        .path.display()
    )]
    NoSuchStatement {
        path: PathBuf,
        key: String,
        table: String,
    },

    /// Every attempt met a lock held elsewhere (or a deadlock).
    #[error(
        "apply gave up after {attempts} attempts: {} {} on {}, {}. Each attempt waited at most lock_timeout ({lock_timeout_ms} ms) and rolled back, so no writer waited on apply for longer; {}. End that session's transaction, or apply again later.",
        .conflict.statement,
        .conflict.failed_to(),
        .conflict.relation(),
        .conflict.holder(),
        .rolled_back.what_stays()
    )]
    GaveUp {
        attempts: u32,
        conflict: Box<LockConflict>,
        lock_timeout_ms: u64,
        rolled_back: RolledBack,
    },

    /// A planned statement was refused for want of a privilege.
    #[error(
        "{} failed: {denial} (SQLSTATE {sqlstate}); {}; {}",
        .statement,
        crate::db::privileges::APPLY_NEEDS,
        .rolled_back.statement_outcome()
    )]
    StatementDenied {
        statement: PlannedStatementName,
        denial: String,
        sqlstate: String,
        rolled_back: RolledBack,
    },

    /// A planned statement failed. The server's error is kept (its SQLSTATE, detail,
    /// hint) and shown in the message, so it is not repeated as a source.
    #[error(
        "{} failed: {}; {}",
        .statement,
        describe_db_error(.cause),
        .rolled_back.statement_outcome()
    )]
    StatementFailed {
        statement: PlannedStatementName,
        cause: tokio_postgres::Error,
        rolled_back: RolledBack,
    },

    /// A split apply stopped after committing some of its transactions.
    #[error(
        "apply stopped in transaction {failed} of {of}: {cause}. Transactions 1 to {committed} are committed, each leaving the database consistent; the rest is not applied. Run `retentionc apply` again to continue where it stopped"
    )]
    PartlyApplied {
        committed: usize,
        failed: usize,
        of: usize,
        cause: String,
    },
}

impl ApplyError {
    /// The server's SQLSTATE, for a planned statement that failed.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ApplyError::StatementDenied { sqlstate, .. } => Some(sqlstate),
            ApplyError::StatementFailed { cause, .. } => cause.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// A destructive change, as the refusal without `--allow-data-loss` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestructiveChange {
    pub table: String,
    pub summary: String,
    /// What it would expire, as plan says it.
    pub impact: Option<String>,
}

fn data_loss_text(destructive: &[DestructiveChange]) -> String {
    let mut text = String::from(
        "the plan expires existing data, and --allow-data-loss was not given; nothing was changed. Destructive changes:",
    );
    for change in destructive {
        if change.summary.contains(&change.table) {
            text.push_str(&format!("\n  - {}", change.summary));
        } else {
            text.push_str(&format!("\n  - {}: {}", change.table, change.summary));
        }
        if let Some(impact) = &change.impact {
            text.push_str(&format!("\n      {impact}"));
        }
    }
    text.push_str("\nCheck the policy (a typo such as `keep: 9 days` for `90 days`), or apply again with --allow-data-loss.");
    text
}

/// How a reviewed plan differs from the plan of now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanMismatch {
    #[error("the database changed since the plan was made")]
    DatabaseChanged,
    #[error("the policies changed since the plan was made")]
    PoliciesChanged,
    #[error("the plan holds {planned} change(s), and the policies and the database give {now}")]
    ChangeCount { planned: usize, now: usize },
    #[error(
        "the plan's change \"{}\" on {planned_table} is not the change the policies and the database give ({} on {now_table})",
        kind_name(*.planned_kind),
        kind_name(*.now_kind)
    )]
    DifferentChange {
        planned_kind: ChangeKind,
        planned_table: String,
        now_kind: ChangeKind,
        now_table: String,
    },
    #[error(
        "the statements of the plan's change to {table} differ from the reviewed files' statements"
    )]
    DifferentStatements { table: String },
    #[error("the plan's change to {table} does not say what the policies and the database give")]
    DifferentSettings { table: String },
}

impl PlanMismatch {
    /// The text without "since the plan was made", for a plan that was just shown.
    fn without_since(&self) -> String {
        self.to_string().replace(" since the plan was made", "")
    }
}

/// What of an apply a failure rolled back: all of it (its first transaction), or the
/// transaction in progress of a split apply (the earlier ones stay committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolledBack {
    WholeApply,
    ThisTransaction,
}

impl RolledBack {
    /// After a failed statement.
    fn statement_outcome(self) -> &'static str {
        match self {
            RolledBack::WholeApply => "the whole apply was rolled back, nothing was changed",
            RolledBack::ThisTransaction => "this transaction was rolled back",
        }
    }

    /// After giving up on a lock.
    fn what_stays(self) -> &'static str {
        match self {
            RolledBack::WholeApply => "nothing was changed",
            RolledBack::ThisTransaction => "this transaction was rolled back",
        }
    }
}

/// A planned statement, as messages name it: `public.events [setup] (generated/public.events.sql)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStatementName {
    pub table: String,
    pub key: String,
    /// Relative to generated/.
    pub file: String,
}

impl fmt::Display for PlannedStatementName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] (generated/{})", self.table, self.key, self.file)
    }
}

/// A lock an apply attempt could not get (or a deadlock), and who held it.
#[derive(Debug, Clone, PartialEq)]
pub struct LockConflict {
    /// Which statement waited: `public.events [setup] (generated/public.events.sql)`.
    pub statement: String,
    /// The relation the server's error named, when the lock watch saw no blocker.
    pub relation: Option<String>,
    pub blocker: Option<Blocker>,
    pub deadlock: bool,
}

impl LockConflict {
    pub fn relation(&self) -> String {
        self.blocker
            .as_ref()
            .and_then(|b| b.relation.clone())
            .or_else(|| self.relation.clone())
            .unwrap_or_else(|| "a relation (the server did not say which)".to_string())
    }

    pub fn holder(&self) -> String {
        match &self.blocker {
            Some(b) => format!("held by {}", b.describe_session()),
            None => "held by a session that could not be identified".to_string(),
        }
    }

    /// `deadlocked`, `could not get its AccessExclusiveLock`, ...
    fn failed_to(&self) -> String {
        match (&self.blocker, self.deadlock) {
            (_, true) => "deadlocked".to_string(),
            (Some(b), false) => format!("could not get its {}", b.wanted_lock()),
            (None, false) => "could not get its lock".to_string(),
        }
    }
}

/// The session holding retentionc's advisory lock: `pid 123, application "retentionc",
/// its transaction open 4 s`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryHolder {
    pub pid: i32,
    pub application: String,
    pub transaction_seconds: Option<f64>,
}

impl fmt::Display for AdvisoryHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}, application \"{}\"", self.pid, self.application)?;
        if let Some(seconds) = self.transaction_seconds {
            write!(f, ", its transaction open {seconds:.0} s")?;
        }
        Ok(())
    }
}

/// The server's message, SQLSTATE, detail, hint and the first line of its context.
fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            if let Some(place) = db.where_() {
                text.push_str(&format!(
                    "; context: {}",
                    place.lines().next().unwrap_or(place)
                ));
            }
            text
        }
        None => e.to_string(),
    }
}

/// The first 12 characters of a fingerprint (a saved plan's may hold any text).
fn short(fingerprint: &str) -> &str {
    match fingerprint.char_indices().nth(12) {
        Some((end, _)) => &fingerprint[..end],
        None => fingerprint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocker() -> Blocker {
        Blocker {
            relation: Some("public.events".into()),
            locktype: "relation".into(),
            wanted_mode: "AccessExclusiveLock".into(),
            pid: 4242,
            user: Some("alice".into()),
            application_name: Some("psql".into()),
            state: Some("idle in transaction".into()),
            transaction_seconds: Some(12.0),
            query: Some("SELECT 1".into()),
        }
    }

    #[test]
    fn refusals_before_anything_runs_say_what_to_do_and_that_nothing_was_changed() {
        let refusals = [
            ApplyError::NeedsTerminal,
            ApplyError::Cancelled,
            ApplyError::PoliciesChanged {
                tables: vec!["public.events".into(), "public.logs".into()],
            },
            ApplyError::ChangedWhileConfirming {
                mismatch: Box::new(PlanMismatch::DatabaseChanged),
            },
            ApplyError::AnotherApplyRunning {
                holder: None,
                waited: Duration::from_secs(120),
            },
            ApplyError::GeneratedFileChanged {
                path: "generated/public.events.sql".into(),
            },
        ];
        for refusal in refusals {
            let text = refusal.to_string();
            assert!(text.contains("nothing was changed"), "{text}");
        }
    }

    #[test]
    fn a_refusal_to_ask_without_a_terminal_names_the_flag() {
        assert_eq!(
            ApplyError::NeedsTerminal.to_string(),
            "apply asks for confirmation, and stdin is not a terminal: pass --auto-approve to apply without asking (nothing was changed)"
        );
        assert_eq!(
            ApplyError::Cancelled.to_string(),
            "apply cancelled; nothing was changed"
        );
    }

    #[test]
    fn a_plan_of_another_format_says_which_version_was_found_and_which_is_read() {
        let e = ApplyError::PlanFormatVersion {
            path: "plan.json".into(),
            found: 7,
            expected: 3,
        };
        assert_eq!(
            e.to_string(),
            "plan.json: a plan of format version 7, and this retentionc reads version 3; run plan again with this version"
        );
    }

    #[test]
    fn a_file_that_is_not_a_plan_keeps_the_parsers_error_as_its_source() {
        let cause = serde_json::from_str::<crate::plan::Plan>("{").unwrap_err();
        let parser_says = cause.to_string();
        let e = anyhow::Error::from(ApplyError::NotAPlan {
            path: "plan.json".into(),
            cause,
        });
        assert_eq!(
            format!("{e:#}"),
            format!("plan.json: not a plan saved by `retentionc plan --out`: {parser_says}")
        );
    }

    #[test]
    fn changed_policies_are_named() {
        let e = ApplyError::PoliciesChanged {
            tables: vec!["public.events".into(), "public.logs".into()],
        };
        assert_eq!(
            e.to_string(),
            "the policies changed since the plan was made (public.events, public.logs); run plan again (nothing was changed)"
        );
    }

    #[test]
    fn a_refused_data_loss_lists_each_change_with_its_impact() {
        let e = ApplyError::DataLossNotAllowed {
            destructive: vec![
                DestructiveChange {
                    table: "public.events".into(),
                    summary: "keep 9 days (was 90 days)".into(),
                    impact: Some("expires 3 partitions".into()),
                },
                DestructiveChange {
                    table: "public.logs".into(),
                    summary: "public.logs: delete rule added".into(),
                    impact: None,
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "the plan expires existing data, and --allow-data-loss was not given; nothing was changed. Destructive changes:\n  - public.events: keep 9 days (was 90 days)\n      expires 3 partitions\n  - public.logs: delete rule added\nCheck the policy (a typo such as `keep: 9 days` for `90 days`), or apply again with --allow-data-loss."
        );
    }

    #[test]
    fn an_outdated_saved_plan_shows_both_fingerprints_shortened() {
        let e = ApplyError::SavedPlanOutdated {
            mismatch: Box::new(PlanMismatch::DatabaseChanged),
            path: "plan.json".into(),
            planned_fingerprint: "0123456789abcdef".into(),
            live_fingerprint: "fedcba9876543210".into(),
        };
        assert_eq!(
            e.to_string(),
            "the database changed since the plan was made; run plan again (plan plan.json: fingerprint 0123456789ab, database now fedcba987654; nothing was changed)"
        );
        // A hostile plan's fingerprint is cut on a character, not a byte.
        let e = ApplyError::SavedPlanOutdated {
            mismatch: Box::new(PlanMismatch::PoliciesChanged),
            path: "plan.json".into(),
            planned_fingerprint: "ééééééééééééééé".into(),
            live_fingerprint: "abc".into(),
        };
        assert!(
            e.to_string()
                .contains("fingerprint éééééééééééé, database now abc;"),
            "{e}"
        );
    }

    #[test]
    fn a_plan_that_moved_while_awaiting_confirmation_drops_since_the_plan_was_made() {
        let e = ApplyError::ChangedWhileConfirming {
            mismatch: Box::new(PlanMismatch::PoliciesChanged),
        };
        assert_eq!(
            e.to_string(),
            "the policies changed while the plan awaited confirmation; run apply again to see the new plan (nothing was changed)"
        );
        let e = ApplyError::ChangedWhileConfirming {
            mismatch: Box::new(PlanMismatch::ChangeCount { planned: 2, now: 3 }),
        };
        assert_eq!(
            e.to_string(),
            "the plan holds 2 change(s), and the policies and the database give 3 while the plan awaited confirmation; run apply again to see the new plan (nothing was changed)"
        );
    }

    #[test]
    fn each_plan_mismatch_says_what_differs() {
        assert_eq!(
            PlanMismatch::DifferentChange {
                planned_kind: ChangeKind::CreateProcedure,
                planned_table: "public.events".into(),
                now_kind: ChangeKind::DropProcedure,
                now_table: "public.logs".into(),
            }
            .to_string(),
            format!(
                "the plan's change \"{}\" on public.events is not the change the policies and the database give ({} on public.logs)",
                kind_name(ChangeKind::CreateProcedure),
                kind_name(ChangeKind::DropProcedure)
            )
        );
        assert_eq!(
            PlanMismatch::DifferentStatements {
                table: "public.events".into()
            }
            .to_string(),
            "the statements of the plan's change to public.events differ from the reviewed files' statements"
        );
        assert_eq!(
            PlanMismatch::DifferentSettings {
                table: "public.events".into()
            }
            .to_string(),
            "the plan's change to public.events does not say what the policies and the database give"
        );
    }

    #[test]
    fn another_apply_is_named_by_its_session() {
        let e = ApplyError::AnotherApplyRunning {
            holder: Some(AdvisoryHolder {
                pid: 123,
                application: "retentionc".into(),
                transaction_seconds: Some(4.2),
            }),
            waited: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "another retentionc apply is running (pid 123, application \"retentionc\", its transaction open 4 s); waited 1.5 s for it to finish (nothing was changed; run apply again when it is done)"
        );
        let e = ApplyError::AnotherApplyRunning {
            holder: None,
            waited: Duration::from_secs(120),
        };
        assert_eq!(
            e.to_string(),
            "another retentionc apply is running; waited 120 s for it to finish (nothing was changed; run apply again when it is done)"
        );
    }

    #[test]
    fn a_forbidden_statement_names_its_key_table_and_action() {
        let e = ApplyError::ForbiddenStatement {
            key: "setup".into(),
            table: "public.events".into(),
            forbidden: Forbidden {
                action: "DROP TABLE",
                table: "public.events".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "refusing to apply: statement [setup] of public.events would run DROP TABLE on the managed table public.events; retentionc never drops, truncates or renames a parent table (nothing was changed)"
        );
    }

    #[test]
    fn a_generated_file_problem_names_the_file_and_the_statement() {
        let e = ApplyError::FileNotProduced {
            path: "generated/public.gone.sql".into(),
            key: "setup".into(),
            table: "public.gone".into(),
        };
        assert_eq!(
            e.to_string(),
            "generated/public.gone.sql: the plan takes statement [setup] of public.gone from this file, which the project does not produce; run `retentionc compile`, review and commit generated/, then plan again (nothing was changed)"
        );
        let e = ApplyError::NoSuchStatement {
            path: "generated/public.events.sql".into(),
            key: "prune".into(),
            table: "public.events".into(),
        };
        assert_eq!(
            e.to_string(),
            "generated/public.events.sql: no statement [prune] (for public.events); run plan again (nothing was changed)"
        );
        let e = ApplyError::GeneratedFileChanged {
            path: "generated/public.events.sql".into(),
        };
        assert!(
            e.to_string().starts_with(
                "generated/public.events.sql: the file is not what `retentionc compile` writes"
            ),
            "{e}"
        );
    }

    #[test]
    fn giving_up_names_the_statement_the_lock_its_holder_and_what_stays() {
        let conflict = LockConflict {
            statement: "public.events [setup] (generated/public.events.sql)".into(),
            relation: None,
            blocker: Some(blocker()),
            deadlock: false,
        };
        let first = ApplyError::GaveUp {
            attempts: 5,
            conflict: Box::new(conflict.clone()),
            lock_timeout_ms: 3000,
            rolled_back: RolledBack::WholeApply,
        };
        assert_eq!(
            first.to_string(),
            "apply gave up after 5 attempts: public.events [setup] (generated/public.events.sql) could not get its AccessExclusiveLock on public.events, held by pid 4242 (user alice, application \"psql\", state \"idle in transaction\", transaction open 12 s, last query: SELECT 1). Each attempt waited at most lock_timeout (3000 ms) and rolled back, so no writer waited on apply for longer; nothing was changed. End that session's transaction, or apply again later."
        );
        let later = ApplyError::GaveUp {
            attempts: 2,
            conflict: Box::new(LockConflict {
                blocker: None,
                relation: None,
                deadlock: true,
                ..conflict
            }),
            lock_timeout_ms: 3000,
            rolled_back: RolledBack::ThisTransaction,
        };
        let text = later.to_string();
        assert!(
            text.contains("deadlocked on a relation (the server did not say which), held by a session that could not be identified"),
            "{text}"
        );
        assert!(
            text.contains("; this transaction was rolled back. End that session's"),
            "{text}"
        );
    }

    #[test]
    fn a_denied_statement_says_what_apply_needs() {
        let e = ApplyError::StatementDenied {
            statement: PlannedStatementName {
                table: "public.events".into(),
                key: "setup".into(),
                file: "public.events.sql".into(),
            },
            denial: "permission denied for table events".into(),
            sqlstate: "42501".into(),
            rolled_back: RolledBack::WholeApply,
        };
        assert_eq!(e.sqlstate(), Some("42501"));
        assert_eq!(
            e.to_string(),
            format!(
                "public.events [setup] (generated/public.events.sql) failed: permission denied for table events (SQLSTATE 42501); {}; the whole apply was rolled back, nothing was changed",
                crate::db::privileges::APPLY_NEEDS
            )
        );
    }

    #[test]
    fn a_partly_applied_split_apply_says_which_transactions_stay() {
        let e = ApplyError::PartlyApplied {
            committed: 2,
            failed: 3,
            of: 4,
            cause: "interrupted (Ctrl-C or SIGTERM)".into(),
        };
        assert_eq!(
            e.to_string(),
            "apply stopped in transaction 3 of 4: interrupted (Ctrl-C or SIGTERM). Transactions 1 to 2 are committed, each leaving the database consistent; the rest is not applied. Run `retentionc apply` again to continue where it stopped"
        );
    }
}
