//! Detecting a stalled connection, the watchdog every session has.
//!
//! The socket is watched (`wire`): while a request waits for its answer and nothing has come
//! from the server for half the stall bound, a second connection (the liveness check, kept
//! for later checks) asks `pg_stat_activity` whether the server is still working on it. A
//! server that is working (a long statement, a lock wait) keeps the session alive however long
//! it takes; a server that is not, or no answer to the check within the rest of the bound, and
//! the connection is declared dead: every call waiting on it fails at once. Progress notices
//! (the prune procedure sends one per batch) count as answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::session::{Link, connect_on};

/// The watchdog of one session (see the module documentation). Ends with the connection.
pub(super) async fn watch(link: Arc<Link>, application_name: String) {
    let bound = link.params.stall_timeout;
    let suspicious = bound / 2;
    let tick = (bound / 20).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut checker: Option<Client> = None;
    let mut checked_at: Option<Instant> = None;
    while !link.ended.done.load(Ordering::SeqCst) {
        tokio::time::sleep(tick).await;
        let (outstanding, last_heard, pid) = {
            let state = link.wire.lock();
            (state.outstanding, state.last_heard, state.backend_pid)
        };
        // Silence counts from the last byte, or from the last check that found the server
        // at work.
        let quiet_since = match checked_at {
            Some(at) if at > last_heard => at,
            _ => last_heard,
        };
        if outstanding == 0 || quiet_since.elapsed() < suspicious {
            continue;
        }
        let remaining = bound.saturating_sub(quiet_since.elapsed()).max(tick);
        let verdict = match pid {
            Some(pid) => tokio::time::timeout(
                remaining,
                check_liveness(&link, &mut checker, pid, &application_name),
            )
            .await
            .unwrap_or(Verdict::NoAnswer),
            None => {
                tokio::time::sleep(remaining).await;
                Verdict::NoAnswer
            }
        };
        match verdict {
            Verdict::Working | Verdict::CannotTell => checked_at = Some(Instant::now()),
            Verdict::NoAnswer | Verdict::NotWorking(_) => {
                // A statement that just ended may have its answer on the way: give it a tick.
                if let Verdict::NotWorking(_) = verdict {
                    tokio::time::sleep(tick).await;
                }
                if link.wire.lock().last_heard > quiet_since {
                    continue; // the answer came while checking
                }
                let why = match &verdict {
                    Verdict::NotWorking(state) => format!(
                        "; the server is not working on retentionc's request (its session is {state})"
                    ),
                    _ => String::new(),
                };
                let reason = format!(
                    "no answer from the server at {} for {} s{why}: the connection is considered lost (--stall-timeout {}s)",
                    link.endpoint.describe(),
                    bound.as_secs(),
                    bound.as_secs()
                );
                eprintln!("error: {reason}");
                link.stalled.store(true, Ordering::SeqCst);
                link.wire.kill(reason);
                break;
            }
        }
    }
}

enum Verdict {
    /// The server is running the session's statement (or waiting for a lock for it).
    Working,
    /// The session is gone, idle, or blocked sending to a client that does not read.
    NotWorking(String),
    /// The check itself got no answer.
    NoAnswer,
    /// The server answered the check but could not say (no permission, too many clients).
    CannotTell,
}

async fn check_liveness(
    link: &Link,
    checker: &mut Option<Client>,
    pid: i32,
    application_name: &str,
) -> Verdict {
    if checker.as_ref().is_none_or(|c| c.is_closed()) {
        let name = format!("{application_name} (liveness check)");
        match connect_on(&link.params, &link.endpoint, &name).await {
            Ok(opened) => *checker = Some(opened.client),
            Err(e) if e.contains("db error") => return Verdict::CannotTell,
            Err(_) => return Verdict::NoAnswer,
        }
    }
    let client = checker.as_ref().expect("connected above");
    let row = client
        .query_opt(
            "SELECT coalesce(state, ''), coalesce(wait_event, '') FROM pg_catalog.pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await;
    match row {
        Ok(None) => Verdict::NotWorking("gone".into()),
        Ok(Some(row)) => {
            let state: String = row.get(0);
            let wait_event: String = row.get(1);
            match (state.as_str(), wait_event.as_str()) {
                // Sending a result the client does not read: that is the stall itself.
                ("active", "ClientWrite") => {
                    Verdict::NotWorking("blocked sending its answer".into())
                }
                ("active", _) | ("fastpath function call", _) => Verdict::Working,
                ("", _) => Verdict::CannotTell, // another role's session: state hidden
                (other, _) => Verdict::NotWorking(format!("\"{other}\"")),
            }
        }
        Err(e) if e.as_db_error().is_some() => Verdict::CannotTell,
        Err(_) => {
            *checker = None;
            Verdict::NoAnswer
        }
    }
}
