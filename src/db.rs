//! Connecting to PostgreSQL: --database-url, else DATABASE_URL, else the libpq PG* variables.
//!
//! Every session retentionc opens is pinned to UTC (pg_partman's advice for partition
//! maintenance) and named, so pg_stat_activity and the run log show who it was.
//! A password never appears in any message: errors name only user, host, port and db.

use std::str::FromStr;

use anyhow::{Context, Result};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::cli::DbArgs;

/// The connection settings, from the URL or the libpq environment variables.
pub fn resolve(args: &DbArgs) -> Result<Config> {
    match &args.database_url {
        Some(url) => Config::from_str(url).map_err(|e| anyhow::anyhow!("invalid database URL: {}", redact_error(&e.to_string()))),
        None => Ok(from_libpq_env()),
    }
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
    let user = var("PGUSER").or_else(|| var("USER")).unwrap_or_else(|| "postgres".into());
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

/// Error texts from the URL parser may echo the URL; keep only what precedes it.
fn redact_error(message: &str) -> String {
    match message.find("://") {
        Some(_) => "the URL could not be parsed (not shown, as it may hold a password)".into(),
        None => message.to_string(),
    }
}

/// Opens a session pinned to UTC and named `application_name`.
pub async fn connect(args: &DbArgs, application_name: &str) -> Result<Client> {
    let mut config = resolve(args)?;
    config.application_name(application_name);
    config.options("-c TimeZone=UTC -c IntervalStyle=postgres");
    let target = describe(&config);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .with_context(|| format!("cannot connect to {target}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("database connection lost: {e}");
        }
    });
    Ok(client)
}
