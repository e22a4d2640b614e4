//! A session: one connection, opened with the resolved settings, whose notices reach the
//! caller, whose running statement can be cancelled, and which is declared dead when the
//! server stops answering (`stall`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::sync::mpsc;
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, CancelToken, Client, Connection, NoTls};

use super::params::{Params, TargetSessionAttrs};
use super::pgpass;
use super::tls::{self, WatchedTls};
use super::transport::{self, Endpoint, Socket};
use super::wire::{Watched, Wire};
use super::{interrupt, options, stall};

/// A connected session. The fields are public so that a caller can borrow them apart (the
/// client for a statement, the notices while it runs); the session also derefs to its client.
pub struct Session {
    pub client: Client,
    /// Notices and warnings the server sends, in order.
    pub notices: mpsc::UnboundedReceiver<DbError>,
    /// Cancel, close, and why the connection was lost.
    pub control: Control,
}

impl std::ops::Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Session {
    /// Notices received so far, without waiting.
    pub fn drain_notices(&mut self) -> Vec<DbError> {
        let mut out = Vec::new();
        while let Ok(notice) = self.notices.try_recv() {
            out.push(notice);
        }
        out
    }

    /// Why the connection ended, when it did (`no answer from the server ...`).
    pub fn lost(&self) -> Option<String> {
        self.control.lost()
    }
}

/// What can be done to a session from beside it, even while a statement runs.
#[derive(Clone)]
pub struct Control {
    link: Arc<Link>,
}

/// One connection, as the session, its control and its watchdog share it.
pub(super) struct Link {
    pub(super) params: Arc<Params>,
    pub(super) endpoint: Endpoint,
    pub(super) wire: Wire,
    token: CancelToken,
    pub(super) ended: Arc<Ended>,
    /// The watchdog declared the connection dead.
    pub(super) stalled: AtomicBool,
}

/// Set by the task driving the connection when it ends.
#[derive(Default)]
pub(super) struct Ended {
    pub(super) done: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Control {
    /// Asks the server to cancel the statement the session runs (PostgreSQL's cancel request,
    /// over a new connection with the session's TLS settings), giving up after a few seconds.
    pub async fn cancel(&self) {
        let limit = interrupt::AFTER_CANCEL;
        match tokio::time::timeout(limit, self.send_cancel()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not cancel the running statement: {e}"),
            Err(_) => eprintln!(
                "warning: could not cancel the running statement: no answer from {} within {} s",
                self.link.endpoint.describe(),
                limit.as_secs()
            ),
        }
    }

    async fn send_cancel(&self) -> Result<()> {
        let link = &self.link;
        let socket = transport::open(&link.endpoint, &link.params, None).await?;
        let tls = if link.endpoint.is_unix() {
            None
        } else {
            tls::connector::<Socket>(&link.params.tls, &link.endpoint.host)?
        };
        match tls {
            Some(tls) => link.token.cancel_query_raw(socket, tls).await?,
            None => link.token.cancel_query_raw(socket, NoTls).await?,
        }
        Ok(())
    }

    /// Closes the connection now: nothing more is sent, every waiting call fails.
    pub fn close(&self, reason: &str) {
        self.link.wire.kill(reason.to_string());
    }

    /// Whether the request waiting for an answer is a COMMIT.
    pub fn commit_in_flight(&self) -> bool {
        let state = self.link.wire.lock();
        state.outstanding > 0 && state.commit_in_flight
    }

    /// Why the connection ended, when it did.
    pub fn lost(&self) -> Option<String> {
        if !self.link.ended.done.load(Ordering::SeqCst) {
            return None;
        }
        let reason = self
            .link
            .ended
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(
            reason
                .clone()
                .unwrap_or_else(|| "the connection was closed".to_string()),
        )
    }

    /// Whether the connection was declared dead because the server stopped answering.
    pub fn stalled(&self) -> bool {
        self.link.stalled.load(Ordering::SeqCst)
    }

    /// The stall bound of this session.
    pub fn stall_timeout(&self) -> Duration {
        self.link.params.stall_timeout
    }

    /// The server this session is connected to (`host:port`).
    pub fn endpoint(&self) -> String {
        self.link.endpoint.describe()
    }
}

/// Opens a session with `params`, trying each host and address in turn (libpq's order, or
/// shuffled with `load_balance_hosts=random`) until one accepts and matches
/// `target_session_attrs`.
pub async fn open(params: Arc<Params>, application_name: &str) -> Result<Session> {
    let passes: &[TargetSessionAttrs] = match params.target_session_attrs {
        TargetSessionAttrs::PreferStandby => {
            &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any]
        }
        ref wanted => std::slice::from_ref(wanted),
    };
    let mut failures: Vec<String> = Vec::new();
    for wanted in passes {
        let mut hosts = params.hosts.clone();
        if params.load_balance_hosts {
            shuffle(&mut hosts);
        }
        for spec in &hosts {
            let endpoints = match transport::endpoints(spec).await {
                Ok(endpoints) => endpoints,
                Err(e) => {
                    failures.push(format!(
                        "{}: cannot resolve the host name: {e}",
                        spec.name()
                    ));
                    continue;
                }
            };
            for endpoint in endpoints {
                match attempt(&params, &endpoint, application_name, *wanted).await {
                    Ok(session) => return Ok(session),
                    Err(e) => failures.push(format!("{}: {e}", endpoint.describe())),
                }
            }
        }
    }
    let detail = scrub(&failures.join("; "), &params.secrets());
    Err(anyhow!(
        "cannot connect to {} ({}): {detail}",
        params.target(),
        params.origin.describe()
    ))
}

async fn attempt(
    params: &Arc<Params>,
    endpoint: &Endpoint,
    application_name: &str,
    wanted: TargetSessionAttrs,
) -> Result<Session, String> {
    let opened = match params.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, connect_on(params, endpoint, application_name))
            .await
            .map_err(|_| {
                format!(
                    "no answer within {} s (connect_timeout, or --stall-timeout when connect_timeout is not set)",
                    limit.as_secs()
                )
            })??,
        None => connect_on(params, endpoint, application_name).await?,
    };
    let link = Arc::new(Link {
        params: Arc::clone(params),
        endpoint: endpoint.clone(),
        wire: opened.wire,
        token: opened.client.cancel_token(),
        ended: opened.ended,
        stalled: AtomicBool::new(false),
    });
    let session = Session {
        client: opened.client,
        notices: opened.notices,
        control: Control {
            link: Arc::clone(&link),
        },
    };
    tokio::spawn(stall::watch(link, application_name.to_string()));
    if !matches_target(&session.client, wanted)
        .await
        .map_err(|e| error_text(&e))?
    {
        return Err(format!("the server is not {}", describe_target(wanted)));
    }
    session
        .client
        .batch_execute(CONNECTION_CHECK)
        .await
        .map_err(|e| {
            super::privileges::connect_denied(&e, &params.user, &params.dbname)
                .unwrap_or_else(|| error_text(&e))
        })?;
    Ok(session)
}

/// The server checks every second, even while a statement runs or waits for a lock, that
/// its client is still connected, and ends the session when it is not (PostgreSQL 14+, on
/// platforms that support it; elsewhere the setting is left alone). A session whose client
/// vanished then lets go of its locks as soon as the server learns of it.
const CONNECTION_CHECK: &str = "DO $retentionc$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        PERFORM set_config('client_connection_check_interval', '1000', false);
    END IF;
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$retentionc$";

/// A connection on one endpoint, with the task that drives it.
pub(super) struct Opened {
    pub(super) client: Client,
    notices: mpsc::UnboundedReceiver<DbError>,
    wire: Wire,
    ended: Arc<Ended>,
}

pub(super) async fn connect_on(
    params: &Params,
    endpoint: &Endpoint,
    application_name: &str,
) -> Result<Opened, String> {
    let socket = transport::open(endpoint, params, None)
        .await
        .map_err(|e| e.to_string())?;
    let wire = Wire::default();
    let mut config = tokio_postgres::Config::new();
    config
        .user(&params.user)
        .dbname(&params.dbname)
        .options(options::merged(
            &params.settings,
            &options::pinned(params.stall_timeout),
        ))
        .application_name(
            params
                .application_name
                .as_deref()
                .or(params.fallback_application_name.as_deref())
                .unwrap_or(application_name),
        )
        .channel_binding(params.channel_binding);
    if let Some(password) = password_for(params, endpoint) {
        config.password(password);
    }
    let tls_mode = if endpoint.is_unix() {
        // As libpq: TLS is never used over a Unix socket.
        super::SslMode::Disable
    } else {
        params.tls.mode
    };
    config.ssl_mode(tls_mode.negotiation());
    let inner = if tls_mode == super::SslMode::Disable {
        None
    } else {
        tls::connector::<Watched<Socket>>(&params.tls, &endpoint.host)
            .map_err(|e| format!("{e:#}"))?
    };
    let connector = WatchedTls {
        inner,
        wire: wire.clone(),
    };
    let (client, connection) = config
        .connect_raw(wire.socket(socket), connector)
        .await
        .map_err(|e| {
            super::privileges::connect_denied(&e, &params.user, &params.dbname)
                .unwrap_or_else(|| error_text(&e))
        })?;
    let (tx, notices) = mpsc::unbounded_channel();
    let ended = Arc::new(Ended::default());
    tokio::spawn(drive(connection, tx, Arc::clone(&ended), wire.clone()));
    Ok(Opened {
        client,
        notices,
        wire,
        ended,
    })
}

/// The password: given, else from the password file for this host.
fn password_for(params: &Params, endpoint: &Endpoint) -> Option<String> {
    if let Some(password) = &params.password {
        return Some(password.clone());
    }
    let file = params.passfile.as_ref()?;
    let found = pgpass::find(
        file,
        &pgpass::Lookup {
            host: &endpoint.host,
            port: endpoint.port,
            dbname: &params.dbname,
            user: &params.user,
        },
    );
    if let Some(warning) = found.warning {
        warn_once(&warning);
    }
    found.password
}

/// Prints a warning the first time it is seen in this process.
pub(super) fn warn_once(warning: &str) {
    static SHOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if !shown.iter().any(|w| w == warning) {
        eprintln!("warning: {warning}");
        shown.push(warning.to_string());
    }
}

/// Drives the connection, forwarding notices; records why it ended.
async fn drive<T>(
    mut connection: Connection<Watched<Socket>, T>,
    notices: mpsc::UnboundedSender<DbError>,
    ended: Arc<Ended>,
    wire: Wire,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let reason = loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notice(notice))) => {
                let _ = notices.send(notice);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let killed = wire.lock().dead.clone();
                break Some(
                    killed
                        .unwrap_or_else(|| format!("database connection lost: {}", error_text(&e))),
                );
            }
            None => break None,
        }
    };
    *ended.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    ended.done.store(true, Ordering::SeqCst);
}

async fn matches_target(
    client: &Client,
    wanted: TargetSessionAttrs,
) -> Result<bool, tokio_postgres::Error> {
    let query = match wanted {
        TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => return Ok(true),
        TargetSessionAttrs::ReadWrite => "SELECT current_setting('transaction_read_only') = 'off'",
        TargetSessionAttrs::ReadOnly => "SELECT current_setting('transaction_read_only') = 'on'",
        TargetSessionAttrs::Primary => "SELECT NOT pg_is_in_recovery()",
        TargetSessionAttrs::Standby => "SELECT pg_is_in_recovery()",
    };
    Ok(client.query_one(query, &[]).await?.get(0))
}

fn describe_target(wanted: TargetSessionAttrs) -> &'static str {
    match wanted {
        TargetSessionAttrs::ReadWrite => "read-write (target_session_attrs)",
        TargetSessionAttrs::ReadOnly => "read-only (target_session_attrs)",
        TargetSessionAttrs::Primary => "a primary (target_session_attrs)",
        TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => {
            "a standby (target_session_attrs)"
        }
        TargetSessionAttrs::Any => "usable",
    }
}

/// An error and its sources: tokio-postgres's own text is terse ("db error"); the reason is
/// in its sources.
pub(super) fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// `text` with every secret replaced by `***`.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
}

/// A Fisher-Yates shuffle seeded from the clock (`load_balance_hosts=random`).
fn shuffle<T>(items: &mut [T]) {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}
