//! Connecting to PostgreSQL: --database-url, else DATABASE_URL, else the libpq PG* variables.
//!
//! Every session retentionc opens is pinned to UTC (pg_partman's advice for partition
//! maintenance) and named, so pg_stat_activity and the run log show who it was.
//! A password never appears in any message: errors name only user, host, port and db.
//!
//! TLS follows libpq's `sslmode` (rustls, no system OpenSSL): `disable`, `prefer` (the
//! default), `require`, `verify-ca`, `verify-full`, with `sslrootcert`. tokio-postgres only
//! knows the first three and rejects `sslrootcert`, so both are taken out of the connection
//! string here (or read from PGSSLMODE / PGSSLROOTCERT) before it parses the rest.
//! As in libpq, `prefer` and `require` encrypt without checking the certificate unless a
//! root certificate is given, in which case they check it as `verify-ca` does.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::cli::DbArgs;

pub mod lock_failure;
pub mod privileges;
mod tls;
use tls::mode_name;
pub use tls::tls_client_config;

/// libpq's `sslmode` values (`allow` is read as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => bail!(
                "invalid sslmode \"{other}\": expected disable, prefer, require, verify-ca or verify-full"
            ),
        })
    }
}

/// The TLS part of the connection settings, which tokio-postgres does not handle itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// The connection settings, from the URL or the libpq environment variables.
pub fn resolve(args: &DbArgs) -> Result<Config> {
    Ok(resolve_with_tls(args)?.0)
}

/// The connection settings and the TLS settings taken out of them.
pub fn resolve_with_tls(args: &DbArgs) -> Result<(Config, TlsSettings)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (config, mode, root_cert) = match &args.database_url {
        Some(text) => {
            let split = split_tls_params(text)?;
            let config = Config::from_str(&split.rest)
                .map_err(|e| anyhow!("invalid database URL: {}", redact(&error_text(&e), text)))?;
            (config, split.sslmode, split.sslrootcert)
        }
        None => (from_libpq_env(), None, None),
    };
    let mode = match mode.or_else(|| env("PGSSLMODE")) {
        Some(m) => SslMode::parse(&m)?,
        None => SslMode::Prefer,
    };
    let root_cert = root_cert
        .or_else(|| env("PGSSLROOTCERT"))
        .map(PathBuf::from);
    Ok((config, TlsSettings { mode, root_cert }))
}

fn from_libpq_env() -> Config {
    let mut config = Config::new();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("PGHOST") {
        Some(hosts) => {
            for host in hosts.split(',') {
                config.host(host);
            }
        }
        None => {
            config.host("localhost");
        }
    }
    if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
        config.port(port);
    }
    let user = var("PGUSER")
        .or_else(|| var("USER"))
        .unwrap_or_else(|| "postgres".into());
    config.user(&user);
    if let Some(password) = var("PGPASSWORD") {
        config.password(password);
    }
    config.dbname(var("PGDATABASE").unwrap_or(user));
    config
}

/// `user@host:port/dbname`, never the password.
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        port,
        config.get_dbname().unwrap_or("?")
    )
}

/// An error and its sources: tokio-postgres's own text is terse ("db error", "invalid
/// connection string"); the reason is in its sources.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Error texts from the connection-string parser may echo what they were given: the
/// password, wherever it appears, becomes `***`; a text echoing a whole URL is dropped.
fn redact(message: &str, input: &str) -> String {
    let mut text = message.to_string();
    for password in password_texts(input) {
        text = text.replace(&password, "***");
    }
    if text.contains("://") {
        "the connection string could not be parsed (not shown, as it may hold a password)".into()
    } else {
        text
    }
}

/// A connection string with `sslmode` and `sslrootcert` taken out.
#[derive(Debug, PartialEq, Eq)]
struct SplitParams {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

fn split_tls_params(text: &str) -> Result<SplitParams> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        split_url_params(text)
    } else {
        split_keyword_params(text)
    }
}

/// The TLS keys libpq knows that retentionc reads itself (sslcert/sslkey: client
/// certificates are not supported, and say so rather than being ignored).
fn take_tls_param(key: &str, value: String, split: &mut SplitParams) -> Result<bool> {
    match key {
        "sslmode" => split.sslmode = Some(value),
        "sslrootcert" => split.sslrootcert = Some(value),
        "sslcert" | "sslkey" => bail!("{key}: client certificates are not supported by retentionc"),
        _ => return Ok(false),
    }
    Ok(true)
}

fn split_url_params(text: &str) -> Result<SplitParams> {
    let (base, query) = match text.split_once('?') {
        Some((base, query)) => (base, query),
        None => (text, ""),
    };
    let mut split = SplitParams {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !take_tls_param(&percent_decode(key), percent_decode(value), &mut split)? {
            kept.push(pair);
        }
    }
    split.rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(split)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq keyword/value strings: `key = value` pairs, values optionally in single quotes
/// with backslash escapes. Other pairs are kept exactly as written.
fn split_keyword_params(text: &str) -> Result<SplitParams> {
    let mut split = SplitParams {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept: Vec<&str> = Vec::new();
    for (pair, raw) in keyword_pairs(text) {
        match pair {
            Some((key, value)) if take_tls_param(&key, value.clone(), &mut split)? => {}
            _ => kept.push(raw),
        }
    }
    split.rest = kept.join(" ");
    Ok(split)
}

/// The `key = value` pairs of a libpq keyword/value string, each with its raw text;
/// `None` for a word that is not a pair (tokio-postgres reports those).
fn keyword_pairs(text: &str) -> Vec<(Option<(String, String)>, &str)> {
    let mut pairs = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map(|&(o, _)| o).unwrap_or(text.len());
    while i < chars.len() {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while at(i).is_some_and(|c| !c.is_whitespace() && c != '=') {
            i += 1;
        }
        let key: String = text[offset(start)..offset(i)].to_string();
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) != Some('=') {
            pairs.push((None, &text[offset(start)..offset(i)]));
            continue;
        }
        i += 1;
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let mut value = String::new();
        if at(i) == Some('\'') {
            i += 1;
            while let Some(c) = at(i) {
                i += 1;
                match c {
                    '\\' => {
                        if let Some(next) = at(i) {
                            value.push(next);
                            i += 1;
                        }
                    }
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = at(i).filter(|c| !c.is_whitespace()) {
                if c == '\\' {
                    i += 1;
                    if let Some(next) = at(i) {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
                i += 1;
            }
        }
        pairs.push((Some((key, value)), &text[offset(start)..offset(i)]));
    }
    pairs
}

/// Every way the password may be written in a connection string (as typed and decoded).
fn password_texts(input: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(rest) = input.split_once("://").map(|(_, r)| r) {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_string());
            found.push(percent_decode(password));
        }
        if let Some((_, query)) = rest.split_once('?') {
            for pair in query.split('&') {
                if let Some(("password", value)) = pair.split_once('=') {
                    found.push(value.to_string());
                    found.push(percent_decode(value));
                }
            }
        }
    } else {
        for (pair, raw) in keyword_pairs(input) {
            if let Some((key, value)) = pair
                && key == "password"
            {
                found.push(value);
                found.push(raw.to_string());
            }
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// Opens a session pinned to UTC and named `application_name`.
pub async fn connect(args: &DbArgs, application_name: &str) -> Result<Client> {
    let (mut config, tls) = resolve_with_tls(args)?;
    config.application_name(application_name);
    config.options("-c TimeZone=UTC -c IntervalStyle=postgres");
    connect_with(config, &tls).await
}

/// Opens a session with `config` and `tls` as given (no options added).
pub async fn connect_with(mut config: Config, tls: &TlsSettings) -> Result<Client> {
    let target = describe(&config);
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let scrub = |e: tokio_postgres::Error| {
        let text = error_text(&e);
        match &password {
            Some(p) if !p.is_empty() && text.contains(p.as_str()) => {
                anyhow!("{}", text.replace(p.as_str(), "***"))
            }
            _ => anyhow!("{text}"),
        }
    };
    let client = match tls.mode {
        SslMode::Disable => {
            config.ssl_mode(PgSslMode::Disable);
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(scrub)
                .with_context(|| format!("cannot connect to {target}"))?;
            spawn_connection(connection);
            client
        }
        mode => {
            config.ssl_mode(if mode == SslMode::Prefer {
                PgSslMode::Prefer
            } else {
                PgSslMode::Require
            });
            let connector =
                MakeRustlsConnect::new(tls_client_config(mode, tls.root_cert.as_deref())?);
            let (client, connection) = config
                .connect(connector)
                .await
                .map_err(scrub)
                .with_context(|| {
                    format!("cannot connect to {target} (sslmode {})", mode_name(mode))
                })?;
            spawn_connection(connection);
            client
        }
    };
    Ok(client)
}

fn spawn_connection<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("database connection lost: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> DbArgs {
        DbArgs {
            database_url: Some(url.to_string()),
        }
    }

    #[test]
    fn url_tls_params_are_taken_out_before_tokio_postgres_sees_them() {
        let split = split_tls_params("postgres://u:pw@h:5433/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x").unwrap();
        assert_eq!(split.rest, "postgres://u:pw@h:5433/db?application_name=x");
        assert_eq!(split.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(split.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        let (config, tls) = resolve_with_tls(&args(
            "postgresql://u@h/db?sslmode=verify-ca&sslrootcert=ca.pem",
        ))
        .unwrap();
        assert_eq!(config.get_dbname(), Some("db"));
        assert_eq!(
            tls,
            TlsSettings {
                mode: SslMode::VerifyCa,
                root_cert: Some(PathBuf::from("ca.pem"))
            }
        );
    }

    #[test]
    fn keyword_tls_params_are_taken_out() {
        let split = split_tls_params(
            "host=h  sslmode = require password='a b\\'c' sslrootcert='/x y/ca.pem' dbname=d",
        )
        .unwrap();
        assert_eq!(split.rest, "host=h password='a b\\'c' dbname=d");
        assert_eq!(split.sslmode.as_deref(), Some("require"));
        assert_eq!(split.sslrootcert.as_deref(), Some("/x y/ca.pem"));
        let config = Config::from_str(&split.rest).unwrap();
        assert_eq!(config.get_password(), Some(&b"a b'c"[..]));
    }

    #[test]
    fn bad_sslmode_is_refused() {
        let err = resolve_with_tls(&args("postgres://u@h/db?sslmode=sometimes")).unwrap_err();
        assert!(
            err.to_string().contains("invalid sslmode \"sometimes\""),
            "{err}"
        );
    }

    #[test]
    fn a_bad_url_error_never_shows_the_password() {
        for url in [
            "postgres://alice:hunter2secret@host:notaport/db",
            "postgres://alice:hunter2secret@host/db?bogus_option=1",
            "host=h password=hunter2secret port=nope",
        ] {
            let err = resolve_with_tls(&args(url)).unwrap_err();
            let text = format!("{err:#} {err:?}");
            assert!(!text.contains("hunter2secret"), "{text}");
        }
    }

    #[test]
    fn parse_errors_stay_useful_without_the_password() {
        let err = resolve_with_tls(&args("host=h password='p4ss word' port=nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
        assert!(!err.contains("p4ss"), "{err}");
        assert_eq!(
            password_texts("postgres://u:p%40ss@h/db"),
            ["p%40ss", "p@ss"]
        );
        assert_eq!(
            password_texts("user=u password=secret"),
            ["secret", "password=secret"]
        );
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        // SAFETY of the test: HOME points at a folder without .postgresql/root.crt.
        let home = std::env::var_os("HOME");
        let has_default = home
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt").exists())
            .unwrap_or(false);
        if !has_default {
            let err = tls_client_config(SslMode::VerifyFull, None).unwrap_err();
            assert!(err.to_string().contains("sslrootcert"), "{err}");
        }
        assert!(tls_client_config(SslMode::Require, None).is_ok());
    }
}
