//! The session `run` works in: a connection whose notices reach the caller (the prune
//! procedure reports its progress as NOTICEs), and the signals that interrupt a run.
//!
//! `db::connect` drops notices, so this opens its own connection with the same settings
//! (UTC, application_name, TLS as `db` resolves it) and forwards every notice to a channel.

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, CancelToken, Client, Config, Connection, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::cli::DbArgs;
use crate::db::{self, SslMode};

/// A connected client, the notices it receives, and how to cancel its running statement.
/// The fields are public so that a caller can borrow them apart (the client for a
/// statement, the notices while it runs).
pub struct Session {
    pub client: Client,
    pub notices: mpsc::UnboundedReceiver<DbError>,
    pub canceller: Canceller,
}

/// Cancels the statement a session is running (PostgreSQL's cancel request).
pub struct Canceller {
    token: CancelToken,
    tls: db::TlsSettings,
}

impl Session {
    /// Opens a session named `application_name`, pinned to UTC.
    pub async fn open(args: &DbArgs, application_name: &str) -> Result<Session> {
        let (mut config, tls) = db::resolve_with_tls(args)?;
        config.application_name(application_name);
        config.options("-c TimeZone=UTC -c IntervalStyle=postgres");
        let target = db::describe(&config);
        let (tx, notices) = mpsc::unbounded_channel();
        let client = match tls.mode {
            SslMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config
                    .connect(NoTls)
                    .await
                    .map_err(|e| scrub(e, &config))
                    .with_context(|| format!("cannot connect to {target}"))?;
                forward_notices(connection, tx);
                client
            }
            mode => {
                config.ssl_mode(if mode == SslMode::Prefer {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let connector =
                    MakeRustlsConnect::new(db::tls_client_config(mode, tls.root_cert.as_deref())?);
                let (client, connection) = config
                    .connect(connector)
                    .await
                    .map_err(|e| scrub(e, &config))
                    .with_context(|| format!("cannot connect to {target}"))?;
                forward_notices(connection, tx);
                client
            }
        };
        let canceller = Canceller {
            token: client.cancel_token(),
            tls,
        };
        Ok(Session {
            client,
            notices,
            canceller,
        })
    }

    /// Notices received so far, without waiting.
    pub fn drain_notices(&mut self) -> Vec<DbError> {
        let mut out = Vec::new();
        while let Ok(n) = self.notices.try_recv() {
            out.push(n);
        }
        out
    }
}

impl Canceller {
    /// Asks the server to cancel the statement this session is running (if any).
    pub async fn cancel(&self) {
        let result = match self.tls.mode {
            SslMode::Disable => self.token.cancel_query(NoTls).await,
            mode => match db::tls_client_config(mode, self.tls.root_cert.as_deref()) {
                Ok(tls) => self.token.cancel_query(MakeRustlsConnect::new(tls)).await,
                Err(_) => self.token.cancel_query(NoTls).await,
            },
        };
        if let Err(e) = result {
            eprintln!("warning: could not cancel the running statement: {e}");
        }
    }
}

/// Error text with the password (if any) masked.
fn scrub(e: tokio_postgres::Error, config: &Config) -> anyhow::Error {
    // tokio-postgres's own text is terse; the reason is in its sources.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    match config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
    {
        Some(p) if !p.is_empty() && text.contains(&p) => anyhow!("{}", text.replace(&p, "***")),
        _ => anyhow!("{text}"),
    }
}

/// Drives the connection, sending each notice to `tx`.
fn forward_notices<T>(mut connection: Connection<Socket, T>, tx: mpsc::UnboundedSender<DbError>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notice(notice))) => {
                    let _ = tx.send(notice);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    eprintln!("database connection lost: {e}");
                    break;
                }
                None => break,
            }
        }
    });
}

/// Becomes `true` on Ctrl-C or SIGTERM. A second Ctrl-C is not special: the run stops
/// after cancelling the statement in flight either way.
pub fn interrupt_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = tx.send(true);
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = tx.send(true);
    });
    rx
}
