//! Who is blocking apply: a real lookup in pg_locks, made while a statement waits.
//!
//! Once a statement gives up at lock_timeout its wait is over, and pg_blocking_pids
//! no longer says who held the lock. So while a statement runs longer than a threshold
//! (half of lock_timeout, at most a second), a second connection looks up the lock the
//! apply session waits for and the sessions that hold it, and keeps the last answer.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;

use crate::cli::DbArgs;
use crate::db;

/// The lock an apply statement waited for, and the session that held it.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocker {
    /// `schema.table` the lock is on (for a row lock: the table of the row).
    pub relation: Option<String>,
    /// pg_locks.locktype of the wait: `relation`, `transactionid` (a row), `advisory`, ...
    pub locktype: String,
    /// The mode apply asked for (`AccessExclusiveLock`, ...).
    pub wanted_mode: String,
    pub pid: i32,
    pub user: Option<String>,
    pub application_name: Option<String>,
    /// pg_stat_activity.state: `idle in transaction`, `active`, ...
    pub state: Option<String>,
    pub transaction_seconds: Option<f64>,
    pub query: Option<String>,
}

impl Blocker {
    /// `AccessExclusiveLock`, or `row lock` for a wait on a row (a transaction id).
    pub fn wanted_lock(&self) -> String {
        match self.locktype.as_str() {
            "transactionid" | "tuple" => "row lock".to_string(),
            _ => self.wanted_mode.clone(),
        }
    }

    /// `pid 4242 (user alice, application "psql", idle in transaction, transaction open 12 s, last query: ...)`
    pub fn describe_session(&self) -> String {
        let mut parts = Vec::new();
        if let Some(user) = &self.user {
            parts.push(format!("user {user}"));
        }
        if let Some(app) = self.application_name.as_deref().filter(|a| !a.is_empty()) {
            parts.push(format!("application \"{app}\""));
        }
        if let Some(state) = &self.state {
            parts.push(format!("state \"{state}\""));
        }
        if let Some(seconds) = self.transaction_seconds {
            parts.push(format!("transaction open {seconds:.0} s"));
        }
        if let Some(query) = self.query.as_deref().filter(|q| !q.is_empty()) {
            let one_line: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            parts.push(format!("last query: {one_line}"));
        }
        format!("pid {} ({})", self.pid, parts.join(", "))
    }
}

/// Finds the lock session `pid` waits for and the first session blocking it.
const BLOCKER_QUERY: &str = "
SELECT w.locktype,
       (SELECT format('%s.%s', n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = coalesce(w.relation, (SELECT t.relation FROM pg_locks t
                                              WHERE t.pid = w.pid AND t.locktype = 'tuple' AND t.granted
                                              LIMIT 1))) AS relation,
       w.mode,
       b.pid,
       b.usename::text,
       b.application_name,
       b.state,
       extract(epoch FROM now() - b.xact_start)::float8,
       left(b.query, 200)
  FROM pg_locks w
 CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
  JOIN pg_stat_activity b ON b.pid = bp.pid
 WHERE w.pid = $1 AND NOT w.granted
 LIMIT 1";

/// Whether session `pid` waits for a heavyweight lock now: read from pg_stat_activity,
/// which, unlike pg_locks, takes none of the lock manager's locks.
const WAITING_QUERY: &str =
    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'";

pub async fn find_blocker(
    monitor: &Client,
    pid: i32,
) -> Result<Option<Blocker>, tokio_postgres::Error> {
    if monitor.query_opt(WAITING_QUERY, &[&pid]).await?.is_none() {
        return Ok(None);
    }
    let row = monitor.query_opt(BLOCKER_QUERY, &[&pid]).await?;
    Ok(row.map(|row| Blocker {
        locktype: row.get(0),
        relation: row.get(1),
        wanted_mode: row.get(2),
        pid: row.get(3),
        user: row.get(4),
        application_name: row.get(5),
        state: row.get(6),
        transaction_seconds: row.get(7),
        query: row.get(8),
    }))
}

/// Watches statements of the apply session; opens its own connection on first need.
#[derive(Clone)]
pub struct LockWatch {
    db: Option<DbArgs>,
    threshold: Duration,
    monitor: Arc<tokio::sync::Mutex<Option<Client>>>,
}

impl LockWatch {
    /// `db`: how to open the monitoring connection (None: no lookups).
    pub fn new(db: Option<DbArgs>, lock_timeout: Duration) -> LockWatch {
        let threshold = (lock_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        LockWatch {
            db,
            threshold,
            monitor: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Runs `statement`; if it takes longer than the threshold, looks up (repeatedly, until
    /// it ends) what session `pid` waits for. Returns the statement's result and the last
    /// blocker seen.
    pub async fn watch<T>(
        &self,
        pid: i32,
        statement: impl Future<Output = T>,
    ) -> (T, Option<Blocker>) {
        let watching = self.start(pid);
        let result = statement.await;
        let blocker = watching.take();
        (result, blocker)
    }

    /// Starts watching session `pid` (whatever it runs, for as long as the returned guard
    /// lives): from the threshold on, every 100 ms, whether it waits for a lock, and if so
    /// who holds it. For a long statement that does many things in turn (run's maintenance
    /// of many tables), [`Watching::take`] hands over the blocker seen since the last take.
    pub fn start(&self, pid: i32) -> Watching {
        let seen: Arc<Mutex<Option<Blocker>>> = Arc::new(Mutex::new(None));
        let Some(db) = self.db.clone() else {
            return Watching { seen, task: None };
        };
        let task = {
            let seen = Arc::clone(&seen);
            let monitor = Arc::clone(&self.monitor);
            let threshold = self.threshold;
            tokio::spawn(async move {
                tokio::time::sleep(threshold).await;
                let mut guard = monitor.lock().await;
                loop {
                    if guard.is_none() {
                        match db::connect(&db, "retentionc: lock watch").await {
                            Ok(session) => *guard = Some(session.client),
                            Err(_) => return, // best effort: the error text still names something
                        }
                    }
                    let client = guard.as_ref().expect("connected above");
                    match find_blocker(client, pid).await {
                        Ok(Some(blocker)) => {
                            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(blocker)
                        }
                        Ok(None) => {}
                        Err(_) => *guard = None,
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Watching {
            seen,
            task: Some(task),
        }
    }
}

/// A session being watched (see [`LockWatch::start`]); the watch ends when this is dropped.
pub struct Watching {
    seen: Arc<Mutex<Option<Blocker>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Watching {
    /// The last blocker seen since the last call, if any.
    pub fn take(&self) -> Option<Blocker> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The relation named in an error's context: `... in relation "part_config"`.
/// or `LOCK TABLE public.events IN ...` (pg_partman's create_parent).
pub fn relation_in_error_text(text: &str) -> Option<String> {
    if let Some(at) = text.find("relation \"") {
        let start = at + "relation \"".len();
        let end = text[start..].find('"')?;
        return Some(text[start..start + end].to_string());
    }
    let start = text.find("LOCK TABLE ")? + "LOCK TABLE ".len();
    let name = text[start..].split_whitespace().next()?;
    Some(name.trim_end_matches(['"', ';']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_is_read_from_a_row_lock_context() {
        assert_eq!(
            relation_in_error_text("while updating tuple (0,3) in relation \"part_config\""),
            Some("part_config".to_string())
        );
        assert_eq!(
            relation_in_error_text("canceling statement due to lock timeout"),
            None
        );
        assert_eq!(
            relation_in_error_text(
                "SQL statement \"LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE\""
            ),
            Some("public.events".to_string())
        );
    }

    #[test]
    fn a_session_is_described_on_one_line() {
        let blocker = Blocker {
            relation: Some("public.events".into()),
            locktype: "relation".into(),
            wanted_mode: "AccessExclusiveLock".into(),
            pid: 42,
            user: Some("app".into()),
            application_name: Some("psql".into()),
            state: Some("idle in transaction".into()),
            transaction_seconds: Some(12.4),
            query: Some("SELECT count(*)\n  FROM public.events".into()),
        };
        assert_eq!(
            blocker.describe_session(),
            "pid 42 (user app, application \"psql\", state \"idle in transaction\", transaction open 12 s, last query: SELECT count(*) FROM public.events)"
        );
    }
}
