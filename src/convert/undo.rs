//! `convert --revert` (undo a conversion that was not finished, losing no write) and
//! `convert --finish` (stop recording writes after the swap; the original stays, renamed).

use std::io::Write;

use anyhow::Result;
use tokio_postgres::Client;

use crate::convert::error::{ConvertError, Undo};
use crate::convert::statements::Reviewed;
use crate::convert::{Options, create_routines, lock_timeout_text, phase, with_lock_retries};
use crate::model::{Policy, Project};

pub async fn revert(
    client: &Client,
    project: &Project,
    policy: &Policy,
    reviewed: &Reviewed,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let table = policy.table.to_string();
    let Some(phase) = phase(client, project, &table).await? else {
        return Err(ConvertError::NeverStarted {
            table,
            undo: Undo::Revert,
        }
        .into());
    };
    create_routines(client, reviewed).await?;
    let timeout = lock_timeout_text(options);
    with_lock_retries(
        &format!("reverting the conversion of {table}"),
        options.lock_attempts,
        options.lock_timeout_ms,
        || async { client.query_one(reviewed.get("revert"), &[&timeout]).await },
    )
    .await?;
    match phase.as_str() {
        "swapped" => writeln!(
            out,
            "{table}: reverted; the original table has its name back, with every write made since the swap; the partitioned table was dropped"
        )?,
        _ => writeln!(
            out,
            "{table}: reverted; the partitioned copy was dropped, the table is as it was"
        )?,
    }
    Ok(())
}

pub async fn finish(
    client: &Client,
    project: &Project,
    policy: &Policy,
    reviewed: &Reviewed,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let table = policy.table.to_string();
    match phase(client, project, &table).await?.as_deref() {
        Some("swapped" | "finished") => {}
        Some(other) => {
            return Err(ConvertError::NotSwapped {
                phase: other.to_string(),
                table,
            }
            .into());
        }
        None => {
            return Err(ConvertError::NeverStarted {
                table,
                undo: Undo::Finish,
            }
            .into());
        }
    }
    create_routines(client, reviewed).await?;
    let timeout = lock_timeout_text(options);
    with_lock_retries(
        &format!("finishing the conversion of {table}"),
        options.lock_attempts,
        options.lock_timeout_ms,
        || async { client.query_one(reviewed.get("finish"), &[&timeout]).await },
    )
    .await?;
    let names = crate::convert::names::ConversionNames::of(&policy.table);
    writeln!(
        out,
        "{table}: finished; writes are no longer recorded. The original stays as {}.{} until you drop it",
        policy.table.schema, names.retired
    )?;
    Ok(())
}
