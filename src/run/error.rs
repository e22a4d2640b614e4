//! Why run refuses or stops before running a table: each a value carrying its facts.
//! (A table that fails on its own is reported in its table's lines, see `step`, and the
//! other tables still run.)

use super::step::StepError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--table` names a table no policy covers.
    #[error(
        "no policy for {}: the policies cover {}",
        .unknown.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", "),
        if .known.is_empty() { "no table".to_string() } else { .known.join(", ") }
    )]
    NoPolicy {
        unknown: Vec<String>,
        known: Vec<String>,
    },

    /// retentionc's schema lacks the procedure run maintains tables with.
    #[error(
        "procedure {schema}.maintain_tables(text[], text[]) does not exist: run `retentionc apply` first (retentionc's own schema is missing or older than this retentionc); nothing was run"
    )]
    RoutinesMissing { schema: String },

    /// The maintenance CALL found a routine of retentionc's schema missing.
    #[error(
        "{}: run `retentionc apply` (retentionc's own schema is older than this retentionc); nothing was maintained",
        .error.describe("", "")
    )]
    SchemaOlder { error: StepError },

    /// The session was lost and is not opened again (stalled, or interrupted).
    #[error("{reason}")]
    ConnectionLost { reason: String },
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::*;
    use crate::run::step::ServerError;

    #[test]
    fn an_unknown_table_is_named_with_the_tables_the_policies_cover() {
        let e = RunError::NoPolicy {
            unknown: vec!["public.nope".into(), "x".into()],
            known: vec!["public.events".into(), "public.logs".into()],
        };
        assert_eq!(
            e.to_string(),
            "no policy for \"public.nope\", \"x\": the policies cover public.events, public.logs"
        );
        let e = RunError::NoPolicy {
            unknown: vec!["public.nope".into()],
            known: Vec::new(),
        };
        assert_eq!(
            e.to_string(),
            "no policy for \"public.nope\": the policies cover no table"
        );
    }

    #[test]
    fn missing_routines_say_to_apply_first_and_that_nothing_ran() {
        let e = RunError::RoutinesMissing {
            schema: "retention".into(),
        };
        assert_eq!(
            e.to_string(),
            "procedure retention.maintain_tables(text[], text[]) does not exist: run `retentionc apply` first (retentionc's own schema is missing or older than this retentionc); nothing was run"
        );
        let e = RunError::SchemaOlder {
            error: StepError::Db(
                ServerError {
                    code: SqlState::UNDEFINED_FUNCTION,
                    message: "function retention.table_owner(text) does not exist".into(),
                    detail: None,
                    hint: None,
                },
                None,
            ),
        };
        assert_eq!(
            e.to_string(),
            "function retention.table_owner(text) does not exist (SQLSTATE 42883); is the policy applied? (`retentionc apply`): run `retentionc apply` (retentionc's own schema is older than this retentionc); nothing was maintained"
        );
    }

    #[test]
    fn a_lost_connection_says_why() {
        let e = RunError::ConnectionLost {
            reason: "the connection stalled: no answer for 30 s".into(),
        };
        assert_eq!(e.to_string(), "the connection stalled: no answer for 30 s");
    }
}
