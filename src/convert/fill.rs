//! Steps 1 to 3 of a conversion: prepare the twin, record writes, copy the rows in
//! committed batches, and replay the writes recorded meanwhile.

use std::io::Write;

use anyhow::Result;
use tokio_postgres::Client;

use crate::convert::progress::FillProgress;
use crate::convert::statements::Reviewed;
use crate::convert::{Options, database_error, lock_timeout_text, phase, state, with_lock_retries};
use crate::model::Project;
use crate::plan::format::thousands;

/// Recorded writes replayed per transaction.
const REPLAY_BATCH: i32 = 50_000;

/// Recorded writes left when the swap may start: its final replay, done while writers
/// wait, stays short.
pub const SWAP_BACKLOG: i64 = 1_000;

/// Steps 1 and 2, each skipped when an earlier run did it.
pub async fn prepare_and_capture(
    client: &Client,
    project: &Project,
    table: &str,
    reviewed: &Reviewed,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let phase = phase(client, project, table).await?;
    if !matches!(phase.as_deref(), Some("prepared" | "filling")) {
        writeln!(out, "{table}: preparing the partitioned copy")?;
        // Creating foreign keys locks the tables they reference: under lock_timeout, retried.
        let prepare = reviewed.get("prepare");
        let set_timeout = format!("SET lock_timeout = '{}ms'", options.lock_timeout_ms);
        with_lock_retries(
            "step 1 (prepare)",
            options.lock_attempts,
            options.lock_timeout_ms,
            || async {
                client.batch_execute(&set_timeout).await?;
                let result = client.query(prepare, &[]).await;
                client.batch_execute("RESET lock_timeout").await?;
                result
            },
        )
        .await?;
    }
    if phase.as_deref() != Some("filling") {
        let timeout = lock_timeout_text(options);
        with_lock_retries(
            "step 2 (record writes)",
            options.lock_attempts,
            options.lock_timeout_ms,
            || async { client.query_one(reviewed.get("capture"), &[&timeout]).await },
        )
        .await?;
        writeln!(out, "{table}: writes are recorded from now on; copying")?;
    }
    Ok(())
}

/// Step 3: batches until every row is copied, oldest first (or in heap order; step 2 chose),
/// each committed with its progress.
pub async fn fill(
    client: &Client,
    project: &Project,
    table: &str,
    reviewed: &Reviewed,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let rows = i64::from(options.batch_rows);
    let batch = reviewed.get("batch");
    let start = state(client, project, table)
        .await?
        .expect("step 2 recorded the conversion");
    let started_at = start.progress.as_deref().unwrap_or("no row copied yet");
    if start.fill_started && start.progress_share < 1.0 {
        writeln!(out, "{table}: resuming the fill at {started_at}")?;
    }
    let mut progress = FillProgress::new(table, start.progress_share);
    let mut copied_here = 0i64;
    loop {
        let row = client
            .query_one(batch, &[&rows])
            .await
            .map_err(|e| database_error("step 3 (copy a batch)", e))?;
        let (copied, complete, stands_at, share): (i64, bool, String, f64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        copied_here += copied;
        if complete {
            progress.finish();
            writeln!(
                out,
                "{table}: {stands_at} ({} rows in this run)",
                thousands(copied_here.max(0) as u64)
            )?;
            return Ok(());
        }
        progress.update(share, &stands_at, copied_here);
    }
}

/// Replays recorded writes, one REPEATABLE READ transaction per round, until fewer than
/// [`SWAP_BACKLOG`] are left.
pub async fn catch_up(client: &Client, table: &str, reviewed: &Reviewed) -> Result<i64> {
    let statement = reviewed.get("catch_up");
    let mut total = 0i64;
    loop {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await?;
        let row = match client.query_one(statement, &[&REPLAY_BATCH]).await {
            Ok(row) => row,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(database_error(
                    &format!("step 3 (replay the writes recorded on {table})"),
                    e,
                )
                .into());
            }
        };
        client.batch_execute("COMMIT").await?;
        let (replayed, pending): (i64, i64) = (row.get(0), row.get(1));
        total += replayed;
        if pending < SWAP_BACKLOG {
            return Ok(total);
        }
    }
}
