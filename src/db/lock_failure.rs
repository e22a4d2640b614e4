//! Whether a database error means "could not get a lock in time": the one classification
//! `apply` and `run` share, so both retry the same failures.
//!
//! pg_partman re-raises errors caught inside its functions as SQLSTATE P0001 (4.7's
//! create_parent, 5.x's run_maintenance), with the original text in the message: a lock
//! timeout in its maintenance arrives as P0001 "canceling statement due to lock timeout".
//! So for P0001 the message is read too.

use tokio_postgres::error::SqlState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFailure {
    /// lock_timeout ran out (55P03), or NOWAIT found the lock taken.
    Timeout,
    /// The server broke a deadlock by cancelling this statement (40P01).
    Deadlock,
}

/// The lock failure `e` is, if it is one.
pub fn lock_failure(e: &tokio_postgres::Error) -> Option<LockFailure> {
    let db = e.as_db_error()?;
    classify(db.code(), db.message())
}

/// [`lock_failure`] from a SQLSTATE and a message.
pub fn classify(code: &SqlState, message: &str) -> Option<LockFailure> {
    if code == &SqlState::LOCK_NOT_AVAILABLE {
        return Some(LockFailure::Timeout);
    }
    if code == &SqlState::T_R_DEADLOCK_DETECTED {
        return Some(LockFailure::Deadlock);
    }
    if code == &SqlState::RAISE_EXCEPTION {
        if message.contains("canceling statement due to lock timeout")
            || message.contains("could not obtain lock")
        {
            return Some(LockFailure::Timeout);
        }
        if message.contains("deadlock detected") {
            return Some(LockFailure::Deadlock);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_partmans_re_raised_lock_timeout_is_a_lock_failure() {
        // What pg_partman 5.2.4's run_maintenance raises after a lock timeout inside it.
        let message = "canceling statement due to lock timeout\nCONTEXT: SQL statement \"ALTER TABLE public.events DETACH PARTITION public.events_p20260101\"\nPL/pgSQL function partman.drop_partition_time(text,interval,boolean,boolean,text,timestamp with time zone) line 185 at EXECUTE\nDETAIL: \nHINT: ";
        assert_eq!(
            classify(&SqlState::RAISE_EXCEPTION, message),
            Some(LockFailure::Timeout)
        );
        assert_eq!(
            classify(
                &SqlState::LOCK_NOT_AVAILABLE,
                "canceling statement due to lock timeout"
            ),
            Some(LockFailure::Timeout)
        );
        assert_eq!(
            classify(&SqlState::RAISE_EXCEPTION, "deadlock detected"),
            Some(LockFailure::Deadlock)
        );
        assert_eq!(
            classify(&SqlState::RAISE_EXCEPTION, "no such partition"),
            None
        );
        assert_eq!(classify(&SqlState::UNDEFINED_TABLE, "lock timeout"), None);
    }
}
