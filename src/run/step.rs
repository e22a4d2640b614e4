//! How a step of `run` fails, and the one line that says so.
//!
//! A server error reaches run two ways: as a statement's error (`tokio_postgres::Error`),
//! or inside the maintenance procedure's per-table NOTICE (its SQLSTATE, message, detail
//! and hint as JSON). Both become a [`ServerError`], so that both are classified (a lock
//! failure is retried) and described the same way.

use tokio_postgres::error::SqlState;

use crate::apply::locks::Blocker;
use crate::db::lock_failure::{LockFailure, classify};
use crate::db::privileges;

/// An error the server raised.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    pub code: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    /// The server's error inside a client error, if there is one.
    pub fn from_client(e: &tokio_postgres::Error) -> Option<ServerError> {
        let db = e.as_db_error()?;
        Some(ServerError {
            code: db.code().clone(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
        })
    }

    /// From the fields `sqlstate`, `message`, `detail` and `hint` of a procedure's NOTICE.
    pub fn from_json(value: &serde_json::Value) -> ServerError {
        let text = |key: &str| value[key].as_str().map(str::to_string);
        ServerError {
            code: SqlState::from_code(value["sqlstate"].as_str().unwrap_or("XX000")),
            message: text("message").unwrap_or_else(|| "(no message)".into()),
            detail: text("detail"),
            hint: text("hint"),
        }
    }

    pub fn lock_failure(&self) -> Option<LockFailure> {
        classify(&self.code, &self.message)
    }

    /// The message's first line (pg_partman re-raises errors with their context folded
    /// into the message), its SQLSTATE, detail and hint.
    pub fn describe(&self) -> String {
        let message = self.message.lines().next().unwrap_or_default();
        let mut text = format!("{message} (SQLSTATE {})", self.code.code());
        if let Some(detail) = self.detail.as_deref().filter(|d| !d.trim().is_empty()) {
            text.push_str(&format!("; {}", one_line(detail)));
        }
        if let Some(hint) = self.hint.as_deref().filter(|h| !h.trim().is_empty()) {
            text.push_str(&format!("; hint: {}", one_line(hint)));
        }
        text
    }
}

/// A statement's failure, or the run's interruption.
#[derive(Debug, Clone)]
pub enum StepError {
    /// The server refused or failed the step; with who held the lock it waited for.
    Db(ServerError, Option<Box<Blocker>>),
    /// The client failed without an answer from the server (its message).
    Client(String),
    /// Refused before it ran, with the reason (e.g. the role may not act as the owner).
    Refused(String),
    /// The connection ended (lost or stalled), with the reason.
    Lost(String),
    Interrupted,
}

impl StepError {
    pub fn from_client(e: &tokio_postgres::Error, blocker: Option<Blocker>) -> StepError {
        match ServerError::from_client(e) {
            Some(server) => StepError::Db(server, blocker.map(Box::new)),
            None => StepError::Client(format!("{e:#}")),
        }
    }

    pub fn lock_failure(&self) -> Option<LockFailure> {
        match self {
            StepError::Db(e, _) => e.lock_failure(),
            _ => None,
        }
    }

    /// Whether the step failed because the statement itself does not exist (retentionc's
    /// routines not applied yet).
    pub fn is_missing_routine(&self) -> bool {
        matches!(self, StepError::Db(e, _) if e.code == SqlState::UNDEFINED_FUNCTION)
    }

    /// One line: the server's message (its first line), what was locked and by whom for
    /// a lock failure, the GRANT needed for a missing privilege.
    pub fn describe(&self, table: &str, role: &str) -> String {
        match self {
            StepError::Interrupted => {
                "interrupted (Ctrl-C or SIGTERM); committed batches stay".into()
            }
            StepError::Refused(reason) | StepError::Lost(reason) | StepError::Client(reason) => {
                reason.clone()
            }
            StepError::Db(e, blocker) => {
                if let Some(failure) = e.lock_failure() {
                    let what = match failure {
                        LockFailure::Timeout => "lock timeout",
                        LockFailure::Deadlock => "deadlock",
                    };
                    return match blocker {
                        Some(b) => format!(
                            "{what}: {} on {} held by {}",
                            b.wanted_lock(),
                            b.relation.as_deref().unwrap_or(table),
                            b.describe_session()
                        ),
                        None => format!(
                            "{what} on {table} (the session holding it had gone when looked up)"
                        ),
                    };
                }
                let text = e.describe();
                // pg_partman re-raises a missing privilege as P0001 with the same message.
                let denied = e.code == SqlState::INSUFFICIENT_PRIVILEGE
                    || e.message.starts_with("permission denied for ");
                if denied {
                    return match privileges::grant_for(&e.message, role) {
                        Some(grant) => format!(
                            "{text}; retention of {table} runs as its owner {role}, which needs: {grant} (see docs/privileges.md)"
                        ),
                        None => format!("{text}; {}", privileges::SEE_DOCS),
                    };
                }
                let missing = [
                    SqlState::UNDEFINED_FUNCTION,
                    SqlState::UNDEFINED_TABLE,
                    SqlState::INVALID_SCHEMA_NAME,
                ];
                if missing.contains(&e.code) {
                    format!("{text}; is the policy applied? (`retentionc apply`)")
                } else {
                    text
                }
            }
        }
    }
}

/// The server's message (its first line) with its SQLSTATE and detail/hint, else the
/// client's.
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match ServerError::from_client(e) {
        Some(server) => server.describe(),
        None => format!("{e:#}"),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_from_the_maintenance_notice_is_classified_like_a_statements() {
        let timeout = ServerError::from_json(&serde_json::json!({
            "sqlstate": "P0001",
            "message": "canceling statement due to lock timeout\nCONTEXT: ...",
        }));
        assert_eq!(timeout.lock_failure(), Some(LockFailure::Timeout));
        let denied = StepError::Db(
            ServerError::from_json(&serde_json::json!({
                "sqlstate": "42501",
                "message": "permission denied for schema partman",
                "detail": "",
            })),
            None,
        );
        assert_eq!(denied.lock_failure(), None);
        let text = denied.describe("public.events", "app_owner");
        assert!(
            text.starts_with("permission denied for schema partman (SQLSTATE 42501); retention of public.events runs as its owner app_owner, which needs: GRANT USAGE ON SCHEMA"),
            "{text}"
        );
    }

    #[test]
    fn a_notice_without_a_sqlstate_is_an_internal_error() {
        let e = ServerError::from_json(&serde_json::json!({"message": "boom"}));
        assert_eq!(e.describe(), "boom (SQLSTATE XX000)");
    }
}
