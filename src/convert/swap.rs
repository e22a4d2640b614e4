//! Step 4 of a conversion: the swap, in one short transaction under lock_timeout, retried
//! after a catch-up while another session holds the table; then the owner's rights to run
//! retention on the partitioned table (the policy's reviewed `privileges` statement).

use std::io::Write;

use anyhow::Result;
use tokio_postgres::Client;

use crate::convert::fill::catch_up;
use crate::convert::statements::Reviewed;
use crate::convert::{ConvertError, Options, database_error, lock_timeout_text};
use crate::db::lock_failure::lock_failure;

pub async fn swap(
    client: &Client,
    table: &str,
    reviewed: &Reviewed,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let timeout = lock_timeout_text(options);
    let mut backoff = std::time::Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        // Writers keep writing while the swap waits its turn: catch up first, so that the
        // replay inside the swap (while writers wait) stays short.
        catch_up(client, table, reviewed).await?;
        match client.query_one(reviewed.get("swap"), &[&timeout]).await {
            Ok(_) => break,
            Err(e) if lock_failure(&e).is_some() && attempt < options.lock_attempts => {
                eprintln!(
                    "{table}: swap attempt {attempt} of {} could not lock the table within lock_timeout ({} ms), so writers waited no longer than that; nothing changed, retrying in {} ms",
                    options.lock_attempts,
                    options.lock_timeout_ms,
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                attempt += 1;
            }
            Err(e) if lock_failure(&e).is_some() => {
                return Err(ConvertError::SwapGaveUp {
                    table: table.to_string(),
                    attempts: attempt,
                    lock_timeout_ms: options.lock_timeout_ms,
                }
                .into());
            }
            Err(e) => return Err(database_error(&format!("step 4 (swap {table})"), e).into()),
        }
    }
    writeln!(out, "{table}: swapped")?;
    grant_owner_rights(client, reviewed, options).await
}

/// The policy's `privileges` statement: what running retention of the (now partitioned)
/// table needs, granted to its owner. Idempotent.
pub async fn grant_owner_rights(
    client: &Client,
    reviewed: &Reviewed,
    options: &Options,
) -> Result<()> {
    let set_timeout = format!("SET LOCAL lock_timeout = '{}ms'", options.lock_timeout_ms);
    crate::convert::with_lock_retries(
        "the owner's rights after the swap (privileges)",
        options.lock_attempts,
        options.lock_timeout_ms,
        || async {
            client.batch_execute("BEGIN").await?;
            let result = async {
                client.batch_execute(&set_timeout).await?;
                client.batch_execute(reviewed.get("privileges")).await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if result.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            result
        },
    )
    .await?;
    Ok(())
}
