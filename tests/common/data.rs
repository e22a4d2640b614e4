//! What the database holds during a test: the standard partitioned test table and its
//! policy, writers inserting while a command works, and queries for what tests assert on
//! (partition counts, pg_partman's settings, apply history, the server's clock).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio_postgres::SimpleQueryMessage;

use crate::common::cluster::TestDb;

/// The standard test table: hourly range partitions on `mtime`, with `level` and `payload`
/// columns for [`Writer::start`].
pub fn create_table(db: &TestDb, table: &str) {
    db.psql(&["-c", &format!(
        "CREATE TABLE {table} (id bigserial, mtime timestamptz NOT NULL DEFAULT now(), level text NOT NULL DEFAULT 'info', payload text) \
         PARTITION BY RANGE (mtime)"
    )]);
}

/// A policy for a [`create_table`] table: hourly partitions, premake 4, `keep`, then
/// `extra` YAML lines (deletes, schedule, ...).
pub fn policy_yaml(table: &str, keep: &str, extra: &str) -> String {
    format!(
        "table: {table}\npartitioning:\n  column: mtime\n  interval: 1 hour\n  premake: 4\nretention:\n  keep: {keep}\n{extra}"
    )
}

/// Inserts on its own connection, again and again until stopped, and accounts for every
/// insert: how many, how long the slowest took, which failed, the ids returned.
pub struct Writer {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<WriterReport>,
}

#[derive(Debug, Default)]
pub struct WriterReport {
    /// Statements sent.
    pub attempted: u64,
    /// Statements that succeeded.
    pub succeeded: u64,
    /// Rows those inserted.
    pub rows: u64,
    /// Ids returned by a statement ending in `RETURNING id`.
    pub ids: Vec<i64>,
    pub errors: Vec<String>,
    /// The longest one statement took.
    pub max_latency: Duration,
}

/// What a writer sends each time.
enum Insert {
    /// One row of a [`create_table`] table; every fourth at level `debug`.
    TestRow { sql: String },
    /// One statement without parameters.
    Statement { sql: String },
}

impl Writer {
    /// One row into a [`create_table`] table every 5 ms (`level` `info`, every fourth
    /// `debug`); returns once it has been inserting for 100 ms.
    pub async fn start(db: &TestDb, table: &str) -> Writer {
        let sql = format!("INSERT INTO {table} (level, payload) VALUES ($1, $2)");
        let writer = Writer::spawn(db, Insert::TestRow { sql }, Duration::from_millis(5)).await;
        // Let it get going before the test acts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
    }

    /// `sql` (one statement, no parameters) every `period`; the ids a `RETURNING id`
    /// statement gives back are kept.
    pub async fn start_sql(db: &TestDb, sql: &str, period: Duration) -> Writer {
        let insert = Insert::Statement {
            sql: sql.to_string(),
        };
        Writer::spawn(db, insert, period).await
    }

    async fn spawn(db: &TestDb, insert: Insert, period: Duration) -> Writer {
        let client = db.client().await;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut report = WriterReport::default();
            while !*stopped.borrow_and_update() {
                report.attempted += 1;
                let started = Instant::now();
                let result = match &insert {
                    Insert::TestRow { sql } => {
                        let level = if report.attempted.is_multiple_of(4) {
                            "debug"
                        } else {
                            "info"
                        };
                        let payload = format!("row {}", report.attempted);
                        client
                            .execute(sql.as_str(), &[&level, &payload])
                            .await
                            .map(|rows| (rows, Vec::new()))
                    }
                    Insert::Statement { sql } => client
                        .simple_query(sql)
                        .await
                        .map(|messages| rows_and_ids(&messages)),
                };
                match result {
                    Ok((rows, ids)) => {
                        report.succeeded += 1;
                        report.rows += rows;
                        report.ids.extend(ids);
                    }
                    Err(e) => report.errors.push(format!("{e:?}")),
                }
                report.max_latency = report.max_latency.max(started.elapsed());
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = stopped.changed() => {}
                }
            }
            report
        });
        Writer { stop, handle }
    }

    /// Stops it, and checks that it inserted something and that every insert succeeded.
    pub async fn stop(self) -> WriterReport {
        let _ = self.stop.send(true);
        let report = self.handle.await.unwrap();
        assert!(report.errors.is_empty(), "inserts failed: {report:?}");
        assert_eq!(report.attempted, report.succeeded, "{report:?}");
        assert!(report.rows > 0, "the writer inserted nothing: {report:?}");
        report
    }

    /// [`Writer::stop`], and checks that `table` holds exactly the rows it inserted (the
    /// writer was its only source of rows).
    pub async fn finish(self, db: &TestDb, table: &str) -> WriterReport {
        let report = self.stop().await;
        let rows: u64 = db
            .scalar(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap();
        assert_eq!(rows, report.rows, "rows lost: {report:?}");
        report
    }

    /// [`Writer::stop`], and checks that every row whose id it got back is still in
    /// `table`; returns how many there are.
    pub async fn finish_kept(self, db: &TestDb, table: &str) -> usize {
        let report = self.stop().await;
        assert!(!report.ids.is_empty(), "no ids returned: {report:?}");
        let list = report
            .ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let present: HashSet<i64> = db
            .psql(&[
                "-At",
                "-c",
                &format!("SELECT id FROM {table} WHERE id IN ({list})"),
            ])
            .lines()
            .map(|id| id.parse().unwrap())
            .collect();
        let lost: Vec<&i64> = report
            .ids
            .iter()
            .filter(|id| !present.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "rows of {table} inside the window were deleted: ids {lost:?}"
        );
        report.ids.len()
    }
}

/// Rows a simple-protocol statement affected, and the ids it returned (first column).
fn rows_and_ids(messages: &[SimpleQueryMessage]) -> (u64, Vec<i64>) {
    let mut rows = 0;
    let mut ids = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::CommandComplete(n) => rows += n,
            SimpleQueryMessage::Row(row) => ids.push(
                row.get(0)
                    .and_then(|id| id.parse().ok())
                    .expect("a returned id is a bigint"),
            ),
            _ => {}
        }
    }
    (rows, ids)
}

/// pg_partman's settings for `table`: `retention | retention_keep_table |
/// retention_schema | premake | infinite_time_partitions` (empty fields left out).
pub fn part_config(db: &TestDb, table: &str) -> String {
    db.scalar(&format!(
        "SELECT concat_ws(' | ', retention, retention_keep_table, retention_schema, premake, infinite_time_partitions) \
           FROM partman.part_config WHERE parent_table = '{table}'"
    ))
}

/// Rows in `retention.apply_history` (0 before the first apply made it).
pub fn history_count(db: &TestDb) -> i64 {
    db.scalar("SELECT CASE WHEN to_regclass('retention.apply_history') IS NULL THEN 0 ELSE (SELECT count(*) FROM retention.apply_history) END")
        .parse()
        .unwrap()
}

/// Number of children of `table` in pg_inherits.
pub fn child_count(db: &TestDb, table: &str) -> i64 {
    db.scalar(&format!(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = '{table}'::regclass"
    ))
    .parse()
    .unwrap()
}

/// `YYYY-MM-DD HH:MM:SS` of the database's now() shifted by `seconds`.
pub fn db_time(db: &TestDb, seconds: i64) -> String {
    db.scalar(&format!(
        "SELECT to_char(now() + make_interval(secs => {seconds}), 'YYYY-MM-DD HH24:MI:SS')"
    ))
}

/// `YYYY-MM-DD HH:00:00`: the database's wall-clock time (`localtimestamp`, in the
/// session's TimeZone) truncated to the hour and shifted by `hours`.
pub fn db_hour(db: &TestDb, hours: i64) -> String {
    db.scalar(&format!(
        "SELECT to_char(date_trunc('hour', localtimestamp) + make_interval(hours => {hours}), 'YYYY-MM-DD HH24:MI:SS')"
    ))
}
