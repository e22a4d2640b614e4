//! Why a conversion refuses or stops: each a value carrying its facts. A refusal before a
//! step runs says that nothing was changed; a step that stops says what stays.

use std::fmt;
use std::path::PathBuf;

use crate::model::QualifiedName;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{given}: {reason}")]
    NotATableName { given: String, reason: String },

    #[error(
        "no policy with \"partitioning\" names {table}: a conversion makes the table the partition set its policy describes"
    )]
    NoPolicy { table: QualifiedName },

    #[error(
        "retentionc's own schema ({schema}) is missing or not up to date, and the conversion needs it: run `retentionc apply --convert`, which installs it first and then converts (nothing was changed)"
    )]
    SchemaMissing { schema: String },

    #[error("{table} is converted already (finished)")]
    AlreadyFinished { table: String },

    #[error(
        "{table} is not a plain table: nothing to convert (plan shows what apply would change)"
    )]
    NotPlain { table: String },

    #[error("another retentionc convert of {table} is running; nothing was changed")]
    AnotherConvertRunning { table: String },

    #[error(
        "{}: no such file; run `retentionc compile --convert {table}`, review and commit it, then convert (nothing was changed)",
        .path.display()
    )]
    ReviewedFileMissing { path: PathBuf, table: String },

    #[error("no conversion of {table} was ever started; nothing to {undo}")]
    NeverStarted { table: String, undo: Undo },

    #[error(
        "the conversion of {table} is {phase}, not swapped: run `retentionc convert {table}` to swap first"
    )]
    NotSwapped { table: String, phase: String },

    #[error(
        "{table}: the swap gave up after {attempts} attempts, each waiting at most lock_timeout ({lock_timeout_ms} ms) for another session's lock on the table; the conversion is copied and caught up, writes are still recorded: run `retentionc convert {table}` again to swap"
    )]
    SwapGaveUp {
        table: String,
        attempts: u32,
        lock_timeout_ms: u64,
    },

    /// A step that needs a lock writers wait for (capture, revert, ...) never got it.
    #[error(
        "{step}: gave up after {attempts} attempts, each waiting at most lock_timeout ({lock_timeout_ms} ms) for a lock another session holds; nothing changed in the last attempt. Run it again later"
    )]
    GaveUp {
        step: String,
        attempts: u32,
        lock_timeout_ms: u64,
    },

    /// The server refused or failed a step: its message, detail and hint are the text;
    /// the error itself is kept for its SQLSTATE.
    #[error("{step} failed: {}", server_text(.cause))]
    StepFailed {
        step: String,
        cause: tokio_postgres::Error,
    },

    /// A step failed without an answer from the server (the connection, ...).
    #[error("{step} failed")]
    StepLost {
        step: String,
        #[source]
        cause: tokio_postgres::Error,
    },

    #[error("creating the conversion routine [{key}]")]
    CreateRoutine {
        key: &'static str,
        #[source]
        cause: tokio_postgres::Error,
    },
}

impl ConvertError {
    /// `step failed`, from the error `step` got from the server or the connection.
    pub fn step_failed(step: &str, cause: tokio_postgres::Error) -> ConvertError {
        let step = step.to_string();
        if cause.as_db_error().is_some() {
            ConvertError::StepFailed { step, cause }
        } else {
            ConvertError::StepLost { step, cause }
        }
    }
}

/// What `--revert` and `--finish` undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    Revert,
    Finish,
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Undo::Revert => "revert",
            Undo::Finish => "finish",
        })
    }
}

/// `message; detail; hint: hint` of a server's error.
fn server_text(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut text = db.message().to_string();
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> String {
        "public.events".into()
    }

    #[test]
    fn refusals_before_a_step_say_that_nothing_was_changed() {
        for e in [
            ConvertError::SchemaMissing {
                schema: "retention".into(),
            },
            ConvertError::AnotherConvertRunning { table: events() },
            ConvertError::ReviewedFileMissing {
                path: "generated/public.events.convert.sql".into(),
                table: events(),
            },
        ] {
            assert!(e.to_string().contains("nothing was changed"), "{e}");
        }
    }

    #[test]
    fn a_table_without_a_partitioning_policy_is_named() {
        let e = ConvertError::NoPolicy {
            table: QualifiedName::parse("public.events").unwrap(),
        };
        assert_eq!(
            e.to_string(),
            "no policy with \"partitioning\" names public.events: a conversion makes the table the partition set its policy describes"
        );
        let e = ConvertError::NotATableName {
            given: "a.b.c".into(),
            reason: "expected schema.table".into(),
        };
        assert_eq!(e.to_string(), "a.b.c: expected schema.table");
    }

    #[test]
    fn what_is_already_done_or_not_there_says_so() {
        assert_eq!(
            ConvertError::AlreadyFinished { table: events() }.to_string(),
            "public.events is converted already (finished)"
        );
        assert_eq!(
            ConvertError::NotPlain { table: events() }.to_string(),
            "public.events is not a plain table: nothing to convert (plan shows what apply would change)"
        );
        assert_eq!(
            ConvertError::NeverStarted {
                table: events(),
                undo: Undo::Revert
            }
            .to_string(),
            "no conversion of public.events was ever started; nothing to revert"
        );
        assert_eq!(
            ConvertError::NeverStarted {
                table: events(),
                undo: Undo::Finish
            }
            .to_string(),
            "no conversion of public.events was ever started; nothing to finish"
        );
        assert_eq!(
            ConvertError::NotSwapped {
                table: events(),
                phase: "filling".into()
            }
            .to_string(),
            "the conversion of public.events is filling, not swapped: run `retentionc convert public.events` to swap first"
        );
    }

    #[test]
    fn the_reviewed_file_to_compile_is_named() {
        let e = ConvertError::ReviewedFileMissing {
            path: "generated/public.events.convert.sql".into(),
            table: events(),
        };
        assert_eq!(
            e.to_string(),
            "generated/public.events.convert.sql: no such file; run `retentionc compile --convert public.events`, review and commit it, then convert (nothing was changed)"
        );
    }

    #[test]
    fn giving_up_on_a_lock_says_what_stays_and_what_to_do() {
        assert_eq!(
            ConvertError::SwapGaveUp {
                table: events(),
                attempts: 10,
                lock_timeout_ms: 3000
            }
            .to_string(),
            "public.events: the swap gave up after 10 attempts, each waiting at most lock_timeout (3000 ms) for another session's lock on the table; the conversion is copied and caught up, writes are still recorded: run `retentionc convert public.events` again to swap"
        );
        assert_eq!(
            ConvertError::GaveUp {
                step: "step 2 (record writes)".into(),
                attempts: 3,
                lock_timeout_ms: 500
            }
            .to_string(),
            "step 2 (record writes): gave up after 3 attempts, each waiting at most lock_timeout (500 ms) for a lock another session holds; nothing changed in the last attempt. Run it again later"
        );
    }
}
