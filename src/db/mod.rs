//! Connecting to PostgreSQL, in one place: where the settings come from (`params`: a URL or
//! keyword string, services, `.pgpass`, the libpq `PG*` variables; `keywords`: which libpq
//! parameters are honoured), TLS (`tls`), the session settings retentionc pins (`options`), and
//! the session itself (`session`): notices forwarded, its statement cancellable, a stalled
//! connection detected (`stall`, `wire`), Ctrl-C and SIGTERM handled within a bounded time
//! (`interrupt`). A password never appears in any message.
//!
//! Every command opens its sessions with [`connect`]: `db::connect(&args.db, "retentionc plan")`
//! gives a [`Session`], which derefs to a `tokio_postgres::Client`.

mod conninfo;
pub mod interrupt;
mod keywords;
pub mod lock_failure;
pub mod notices;
mod options;
pub mod params;
mod pgpass;
pub mod privileges;
mod service;
mod session;
mod stall;
mod tls;
mod transport;
mod wire;

use std::sync::Arc;

use anyhow::Result;

use crate::cli::DbArgs;

pub use params::{DEFAULT_STALL_TIMEOUT, Params};
pub use session::{Control, Session};
pub use tls::{SslMode, TlsSettings, tls_client_config};

/// Opens a session named `application_name` (unless the user names it: `application_name`,
/// `PGAPPNAME`), with the settings of `args` and the environment.
pub async fn connect(args: &DbArgs, application_name: &str) -> Result<Session> {
    let params = resolve(args)?;
    interrupt::install();
    session::open(Arc::new(params), application_name).await
}

/// The connection settings `args` and the environment give, warnings shown.
pub fn resolve(args: &DbArgs) -> Result<Params> {
    let from = match (
        args.url_origin,
        &args.database_url,
        std::env::var("DATABASE_URL"),
    ) {
        (Some(variable), _, _) => variable,
        (None, Some(given), Ok(env)) if *given == env => "DATABASE_URL",
        _ => "--database-url",
    };
    let mut params = params::resolve(
        args.database_url.as_deref(),
        from,
        args.stall_timeout.unwrap_or(DEFAULT_STALL_TIMEOUT),
        &params::process_env,
    )?;
    for warning in &params.warnings {
        session::warn_once(warning);
    }
    if let Some(dbname) = &args.dbname {
        params.dbname = dbname.clone();
    }
    Ok(params)
}
