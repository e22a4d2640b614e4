//! The connection settings, resolved as libpq resolves them: the connection string
//! (`--database-url`, else `DATABASE_URL`; an empty one counts as unset), then the service it
//! or `PGSERVICE` names, then the `PG*` environment variables, then the defaults. Each libpq
//! parameter is either honoured or refused with the reason: none is ignored silently.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::conninfo;
use super::keywords::{KEYWORDS, Keyword, SESSION_VARIABLES, Source, check_rule, find_keyword};
use super::options::{self, Setting};
use super::service;
use super::tls::{SslMode, TlsSettings};

/// How long retentionc waits for an answer from the server (and to connect, unless
/// `connect_timeout` says otherwise) before it declares the connection dead.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// TCP keepalives, on unless `keepalives=0`: idle 60 s, then every 10 s, 6 probes.
const DEFAULT_KEEPALIVES: Keepalives = Keepalives {
    idle: Duration::from_secs(60),
    interval: Duration::from_secs(10),
    count: 6,
};

/// A host to try, with its port (and the address to use instead of resolving the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub host: Host,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// The folder holding the server's socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl HostSpec {
    /// The host as written: what `.pgpass` and messages name.
    pub fn name(&self) -> String {
        match (&self.host, self.hostaddr) {
            (Host::Tcp(name), _) if !name.is_empty() => name.clone(),
            (Host::Tcp(_), Some(addr)) => addr.to_string(),
            (Host::Tcp(name), None) => name.clone(),
            (Host::Unix(dir), _) => dir.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

/// Where the settings came from: for messages that say what was looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// `--database-url` or `DATABASE_URL`, when a connection string was given.
    pub connection_string: Option<&'static str>,
    /// `service "name" (file)`, when a service was used.
    pub service: Option<String>,
    /// The `PG*` variables that supplied something.
    pub variables: Vec<&'static str>,
}

impl Origin {
    pub fn is_empty(&self) -> bool {
        self.connection_string.is_none() && self.service.is_none() && self.variables.is_empty()
    }

    /// `from DATABASE_URL and PGPASSWORD`, or what was looked at when nothing was set.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return format!(
                "no connection settings were found (looked at --database-url, DATABASE_URL, {}), so libpq's defaults were used",
                KEYWORDS
                    .iter()
                    .filter_map(|k| k.env)
                    .filter(|v| LOOKED_AT.contains(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let mut parts: Vec<String> = Vec::new();
        if let Some(source) = self.connection_string {
            parts.push(source.to_string());
        }
        if let Some(service) = &self.service {
            parts.push(service.clone());
        }
        parts.extend(self.variables.iter().map(|v| v.to_string()));
        format!("settings from {}", parts.join(", "))
    }
}

/// The variables named when nothing was set (the ones that say where to connect).
const LOOKED_AT: [&str; 8] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSSLMODE",
];

/// Everything needed to open a session.
#[derive(Debug, Clone)]
pub struct Params {
    pub hosts: Vec<HostSpec>,
    pub user: String,
    pub password: Option<String>,
    /// The password file: `passfile` / `PGPASSFILE`, else `~/.pgpass`.
    pub passfile: Option<PathBuf>,
    pub dbname: String,
    /// The user's session settings (`options`, `PGOPTIONS`, `PGGEQO`).
    pub settings: Vec<Setting>,
    pub application_name: Option<String>,
    pub fallback_application_name: Option<String>,
    pub tls: TlsSettings,
    /// Per host address; None: no limit (`connect_timeout=0`).
    pub connect_timeout: Option<Duration>,
    pub keepalives: Option<Keepalives>,
    /// None: the system's default.
    pub tcp_user_timeout: Option<Duration>,
    pub target_session_attrs: TargetSessionAttrs,
    pub channel_binding: tokio_postgres::config::ChannelBinding,
    pub load_balance_hosts: bool,
    /// No answer from the server for this long while a request is outstanding: the
    /// connection is dead.
    pub stall_timeout: Duration,
    pub origin: Origin,
    /// Things the user should know about the settings (pinned settings overridden).
    pub warnings: Vec<String>,
}

impl Params {
    /// `user@host:port/dbname` (hosts joined with commas), never the password.
    pub fn target(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| format!("{}:{}", h.name(), h.port))
            .collect();
        format!("{}@{}/{}", self.user, hosts.join(","), self.dbname)
    }

    /// Every text that would give the password away, for scrubbing messages.
    pub fn secrets(&self) -> Vec<String> {
        self.password
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect()
    }
}

/// An environment: a variable's value, None when unset or empty (libpq treats both alike).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolves the settings from `connection_string` (named `from` in messages), the service
/// files and `env`.
pub fn resolve(
    connection_string: Option<&str>,
    from: &'static str,
    stall_timeout: Duration,
    env: Env<'_>,
) -> Result<Params> {
    let mut given: Vec<(&'static Keyword, String, Source)> = Vec::new();
    let mut origin = Origin::default();

    let connection_string = connection_string.filter(|s| !s.trim().is_empty());
    if let Some(text) = connection_string {
        origin.connection_string = Some(from);
        let pairs = conninfo::parse(text).map_err(|e| anyhow!("{from}: {e}"))?;
        for (key, value) in pairs {
            let keyword = find_keyword(&key)
                .map_err(|e| anyhow!("{from}: {e} (in \"{}\")", conninfo::redacted(text)))?;
            set(&mut given, keyword, value, Source::ConnectionString(from));
        }
    }

    let service_name = value_of(&given, "service").or_else(|| env("PGSERVICE"));
    if let Some(name) = service_name {
        if value_of(&given, "service").is_none() {
            origin.variables.push("PGSERVICE");
        }
        let service = service::find(&name, env).map_err(|e| anyhow!("{e}"))?;
        let file = service.file.display().to_string();
        origin.service = Some(format!("service \"{name}\" ({file})"));
        for (key, value, line) in service.params {
            let place = format!("{file}:{line}");
            let keyword = find_keyword(&key).map_err(|e| anyhow!("{place}: {e}"))?;
            if !given.iter().any(|(k, _, _)| k.name == keyword.name) {
                set(&mut given, keyword, value, Source::Service(place));
            }
        }
    }

    for keyword in KEYWORDS {
        let Some(var) = keyword.env else { continue };
        if keyword.name == "service" || given.iter().any(|(k, _, _)| k.name == keyword.name) {
            continue;
        }
        if let Some(value) = env(var) {
            origin.variables.push(var);
            set(&mut given, keyword, value, Source::Variable(var));
        }
    }

    for (keyword, value, source) in &given {
        check_rule(keyword, value, source)?;
    }
    build(given, origin, stall_timeout, env)
}

fn set(
    given: &mut Vec<(&'static Keyword, String, Source)>,
    keyword: &'static Keyword,
    value: String,
    source: Source,
) {
    given.retain(|(k, _, _)| k.name != keyword.name);
    given.push((keyword, value, source));
}

fn value_of(given: &[(&'static Keyword, String, Source)], name: &str) -> Option<String> {
    given
        .iter()
        .find(|(k, _, _)| k.name == name)
        .map(|(_, v, _)| v.clone())
}

fn build(
    given: Vec<(&'static Keyword, String, Source)>,
    origin: Origin,
    stall_timeout: Duration,
    env: Env<'_>,
) -> Result<Params> {
    let get = |name: &str| {
        given
            .iter()
            .find(|(k, _, _)| k.name == name)
            .map(|(_, v, s)| (v.as_str(), s.name(name)))
    };
    let invalid = |place: String, value: &str, expected: &str| {
        anyhow!("{place}=\"{value}\": expected {expected}")
    };
    let seconds = |name: &str| -> Result<Option<i64>> {
        get(name)
            .map(|(v, place)| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(place, v, "a whole number of seconds"))
            })
            .transpose()
    };

    let user = match get("user") {
        Some((u, _)) => u.to_string(),
        None => os_user_name(env),
    };
    let dbname = get("dbname")
        .map(|(d, _)| d.to_string())
        .unwrap_or_else(|| user.clone());
    let hosts = host_specs(get("host"), get("hostaddr"), get("port"))?;

    let mut settings = match get("options") {
        Some((text, place)) => options::parse(text).map_err(|e| anyhow!("{place}: {e}"))?,
        None => Vec::new(),
    };
    let mut variables = origin.variables.clone();
    let mut warnings = Vec::new();
    for (var, setting) in SESSION_VARIABLES {
        if let Some(value) = env(var) {
            variables.push(var);
            settings.push(Setting {
                name: setting.into(),
                value,
            });
        }
    }
    let pins = options::pinned(stall_timeout);
    for (user_setting, pin) in options::overridden(&settings, &pins) {
        warnings.push(format!(
            "the session setting {}={} is not used: retentionc's sessions run with {}={}",
            user_setting.name, user_setting.value, pin.name, pin.value
        ));
    }

    let mode = match get("sslmode") {
        Some((m, place)) => SslMode::parse(m).map_err(|e| anyhow!("{place}: {e}"))?,
        None => SslMode::Prefer,
    };
    let tls = TlsSettings {
        mode,
        root_cert: get("sslrootcert").map(|(p, _)| PathBuf::from(p)),
    };

    // libpq: 0 or less waits for ever; 1 is taken as 2.
    let connect_timeout = match seconds("connect_timeout")? {
        Some(s) if s <= 0 => None,
        Some(s) => Some(Duration::from_secs(s.max(2) as u64)),
        None => Some(stall_timeout),
    };
    let keepalives = match get("keepalives") {
        Some(("0", _)) => None,
        Some(("1", _)) | None => {
            let positive = |name: &str, default: Duration| -> Result<Duration> {
                Ok(match seconds(name)? {
                    Some(s) if s > 0 => Duration::from_secs(s as u64),
                    _ => default,
                })
            };
            Some(Keepalives {
                idle: positive("keepalives_idle", DEFAULT_KEEPALIVES.idle)?,
                interval: positive("keepalives_interval", DEFAULT_KEEPALIVES.interval)?,
                count: match seconds("keepalives_count")? {
                    Some(n) if n > 0 => n.min(i64::from(u32::MAX)) as u32,
                    _ => DEFAULT_KEEPALIVES.count,
                },
            })
        }
        Some((other, place)) => return Err(invalid(place, other, "0 or 1")),
    };
    // Milliseconds, as libpq reads it; 0 leaves the system's default.
    let tcp_user_timeout = match get("tcp_user_timeout") {
        Some((v, place)) => match v.trim().parse::<i64>() {
            Ok(ms) if ms > 0 => Some(Duration::from_millis(ms as u64)),
            Ok(_) => None,
            Err(_) => return Err(invalid(place, v, "a whole number of milliseconds")),
        },
        None => None,
    };
    let target_session_attrs = match get("target_session_attrs") {
        None | Some(("any", _)) => TargetSessionAttrs::Any,
        Some(("read-write", _)) => TargetSessionAttrs::ReadWrite,
        Some(("read-only", _)) => TargetSessionAttrs::ReadOnly,
        Some(("primary", _)) => TargetSessionAttrs::Primary,
        Some(("standby", _)) => TargetSessionAttrs::Standby,
        Some(("prefer-standby", _)) => TargetSessionAttrs::PreferStandby,
        Some((other, place)) => {
            return Err(invalid(
                place,
                other,
                "any, read-write, read-only, primary, standby or prefer-standby",
            ));
        }
    };
    use tokio_postgres::config::ChannelBinding;
    let channel_binding = match get("channel_binding") {
        None | Some(("prefer", _)) => ChannelBinding::Prefer,
        Some(("disable", _)) => ChannelBinding::Disable,
        Some(("require", _)) => ChannelBinding::Require,
        Some((other, place)) => return Err(invalid(place, other, "disable, prefer or require")),
    };
    let load_balance_hosts = match get("load_balance_hosts") {
        None | Some(("disable", _)) => false,
        Some(("random", _)) => true,
        Some((other, place)) => return Err(invalid(place, other, "disable or random")),
    };

    Ok(Params {
        hosts,
        user,
        password: get("password").map(|(p, _)| p.to_string()),
        passfile: get("passfile")
            .map(|(p, _)| PathBuf::from(p))
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass"))),
        dbname,
        settings,
        application_name: get("application_name").map(|(a, _)| a.to_string()),
        fallback_application_name: get("fallback_application_name").map(|(a, _)| a.to_string()),
        tls,
        connect_timeout,
        keepalives,
        tcp_user_timeout,
        target_session_attrs,
        channel_binding,
        load_balance_hosts,
        stall_timeout,
        origin: Origin {
            variables,
            ..origin
        },
        warnings,
    })
}

/// The hosts to try: `host` and `hostaddr` lists of equal length (either may be absent),
/// and one port for all or one per host. No host: the local socket folder that has a
/// server socket for the port (`/var/run/postgresql`, then `/tmp`), else localhost.
fn host_specs(
    host: Option<(&str, String)>,
    hostaddr: Option<(&str, String)>,
    port: Option<(&str, String)>,
) -> Result<Vec<HostSpec>> {
    let list = |v: Option<&(&str, String)>| -> Vec<String> {
        v.map(|(text, _)| text.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let names = list(host.as_ref());
    let addrs = list(hostaddr.as_ref());
    let ports = list(port.as_ref());
    let count = names.len().max(addrs.len()).max(1);
    if !names.is_empty() && !addrs.is_empty() && names.len() != addrs.len() {
        bail!(
            "{} lists {} host(s) and {} {}: they must pair up",
            host.as_ref().expect("names").1,
            names.len(),
            addrs.len(),
            hostaddr.as_ref().expect("addrs").1
        );
    }
    if ports.len() > 1 && ports.len() != count {
        bail!(
            "{} lists {} port(s) for {count} host(s): give one port for all, or one per host",
            port.as_ref().expect("ports").1,
            ports.len()
        );
    }
    let mut specs = Vec::with_capacity(count);
    for i in 0..count {
        let port_text = ports
            .get(i)
            .or(ports.first())
            .map(String::as_str)
            .unwrap_or("");
        let port = if port_text.is_empty() {
            5432
        } else {
            match port_text.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    let place = port.as_ref().expect("ports").1.clone();
                    bail!("{place}=\"{port_text}\": expected a port number (1 to 65535)");
                }
            }
        };
        let hostaddr = match addrs.get(i).filter(|a| !a.is_empty()) {
            Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
                anyhow!(
                    "{}=\"{text}\": expected a numeric IP address",
                    hostaddr.as_ref().expect("addrs").1
                )
            })?),
            None => None,
        };
        let name = names.get(i).cloned().unwrap_or_default();
        let host = if name.starts_with('/') {
            Host::Unix(PathBuf::from(name))
        } else if name.starts_with('@') {
            bail!("host \"{name}\": abstract Unix sockets are not supported by retentionc");
        } else if name.is_empty() && hostaddr.is_none() {
            default_host(port)
        } else {
            Host::Tcp(name)
        };
        specs.push(HostSpec {
            host,
            hostaddr,
            port,
        });
    }
    Ok(specs)
}

fn default_host(port: u16) -> Host {
    ["/var/run/postgresql", "/tmp"]
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join(format!(".s.PGSQL.{port}")).exists())
        .map(Host::Unix)
        .unwrap_or_else(|| Host::Tcp("localhost".into()))
}

/// The operating-system user, as libpq defaults `user` to it.
fn os_user_name(env: Env<'_>) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            if let Some(name) = passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2].parse() == Ok(uid)).then(|| fields[0].to_string())
            }) {
                return name;
            }
        }
    }
    env("USER")
        .or_else(|| env("LOGNAME"))
        .unwrap_or_else(|| "postgres".into())
}

/// A duration for `--stall-timeout`: `30s`, `500ms`, `2min`; at least one second.
pub fn parse_stall_timeout(text: &str) -> Result<Duration, String> {
    let ms = crate::config::parse_lock_timeout(text).map_err(|_| {
        format!("expected a duration such as \"30s\" or \"2min\", found \"{text}\"")
    })?;
    if ms < 1000 {
        return Err(format!(
            "\"{text}\" is too short: at least 1s, so that a busy network is not taken for a dead one"
        ));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn resolve_with(url: Option<&str>, vars: &[(&str, &str)]) -> Result<Params> {
        let env = env_of(vars);
        resolve(url, "DATABASE_URL", DEFAULT_STALL_TIMEOUT, &env)
    }

    #[test]
    fn an_empty_connection_string_falls_back_to_the_variables() {
        let vars = [
            ("PGHOST", "db.example"),
            ("PGPORT", "5433"),
            ("PGUSER", "alice"),
            ("PGDATABASE", "app"),
        ];
        for url in [Some(""), Some("  "), None] {
            let params = resolve_with(url, &vars).unwrap();
            assert_eq!(params.target(), "alice@db.example:5433/app");
            assert_eq!(params.origin.connection_string, None);
            assert_eq!(
                params.origin.describe(),
                "settings from PGHOST, PGPORT, PGDATABASE, PGUSER"
            );
        }
    }

    #[test]
    fn the_connection_string_wins_over_the_variables() {
        let params = resolve_with(
            Some("postgres://bob@h:1/db"),
            &[
                ("PGUSER", "alice"),
                ("PGPASSWORD", "pw"),
                ("PGAPPNAME", "nightly"),
            ],
        )
        .unwrap();
        assert_eq!(params.target(), "bob@h:1/db");
        assert_eq!(params.password.as_deref(), Some("pw"));
        assert_eq!(params.application_name.as_deref(), Some("nightly"));
        assert_eq!(
            params.origin.describe(),
            "settings from DATABASE_URL, PGPASSWORD, PGAPPNAME"
        );
    }

    #[test]
    fn nothing_set_names_what_was_looked_at() {
        let params = resolve_with(None, &[]).unwrap();
        let text = params.origin.describe();
        assert!(
            text.starts_with("no connection settings were found (looked at --database-url, DATABASE_URL, PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, PGSERVICE)"),
            "{text}"
        );
        assert_eq!(params.hosts[0].port, 5432);
        assert_eq!(params.dbname, params.user);
    }

    #[test]
    fn unsupported_parameters_are_refused_not_ignored() {
        let cases = [
            (
                "postgres://u@h/db?sslcert=c.pem",
                "DATABASE_URL: sslcert is set: client certificates are not supported by retentionc; remove it",
            ),
            (
                "host=h gssencmode=require",
                "DATABASE_URL: gssencmode=require: Kerberos/GSSAPI is not supported by retentionc (accepted: disable, prefer)",
            ),
            (
                "postgres://u@h/db?sslmod=require",
                "unknown connection parameter \"sslmod\" (did you mean \"sslmode\"?)",
            ),
            (
                "host=h keepalives_retries=3",
                "unknown connection parameter \"keepalives_retries\" (did you mean \"keepalives_count\"?)",
            ),
            (
                "postgres://u@h/db?replication=database",
                "replication is set: retentionc does not open replication connections",
            ),
        ];
        for (url, expected) in cases {
            let err = format!("{:#}", resolve_with(Some(url), &[]).unwrap_err());
            assert!(err.contains(expected), "{url}: {err}");
        }
        let err = resolve_with(None, &[("PGSSLCERT", "/c.pem")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PGSSLCERT is set: client certificates are not supported by retentionc; remove it from the environment"
        );
        // Values that mean what retentionc does anyway are accepted.
        assert!(
            resolve_with(
                Some("host=h gssencmode=disable sslcompression=0 client_encoding=UTF8"),
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn values_are_read_in_libpq_units() {
        let params = resolve_with(
            Some("host=h tcp_user_timeout=1500 connect_timeout=1 keepalives_idle=5 keepalives_count=2"),
            &[],
        )
        .unwrap();
        assert_eq!(params.tcp_user_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(params.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            params.keepalives,
            Some(Keepalives {
                idle: Duration::from_secs(5),
                interval: Duration::from_secs(10),
                count: 2
            })
        );
        let params = resolve_with(Some("host=h keepalives=0 connect_timeout=0"), &[]).unwrap();
        assert_eq!(params.keepalives, None);
        assert_eq!(params.connect_timeout, None);
        let params = resolve_with(Some("host=h"), &[("PGCONNECT_TIMEOUT", "7")]).unwrap();
        assert_eq!(params.connect_timeout, Some(Duration::from_secs(7)));
        // Unset: the stall bound.
        let params = resolve_with(Some("host=h"), &[]).unwrap();
        assert_eq!(params.connect_timeout, Some(DEFAULT_STALL_TIMEOUT));
        let err = resolve_with(Some("host=h tcp_user_timeout=1s"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATABASE_URL: tcp_user_timeout=\"1s\": expected a whole number of milliseconds"
        );
    }

    #[test]
    fn options_are_merged_with_the_pins() {
        let params = resolve_with(
            Some("postgres://u@h/db?options=-c%20default_transaction_read_only%3Don%20-c%20TimeZone%3DEurope/Paris"),
            &[("PGOPTIONS", "-c statement_timeout=1s"), ("PGTZ", "Asia/Tokyo")],
        )
        .unwrap();
        // The URL's options replace PGOPTIONS, as in libpq; PGTZ is a setting of its own.
        let names: Vec<&str> = params.settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["default_transaction_read_only", "TimeZone", "TimeZone"]
        );
        assert_eq!(params.warnings.len(), 2, "{:?}", params.warnings);
        assert!(params.warnings[0].contains(
            "TimeZone=Europe/Paris is not used: retentionc's sessions run with TimeZone=UTC"
        ));
    }

    #[test]
    fn hosts_ports_and_addresses_pair_up() {
        let params =
            resolve_with(Some("host=a,b,/run/pg port=1,2,3 hostaddr=10.0.0.1,,"), &[]).unwrap();
        assert_eq!(
            params.hosts,
            vec![
                HostSpec {
                    host: Host::Tcp("a".into()),
                    hostaddr: Some("10.0.0.1".parse().unwrap()),
                    port: 1
                },
                HostSpec {
                    host: Host::Tcp("b".into()),
                    hostaddr: None,
                    port: 2
                },
                HostSpec {
                    host: Host::Unix("/run/pg".into()),
                    hostaddr: None,
                    port: 3
                },
            ]
        );
        let err = resolve_with(Some("host=a,b port=1,2,3"), &[]).unwrap_err();
        assert!(
            err.to_string().contains("lists 3 port(s) for 2 host(s)"),
            "{err}"
        );
        let err = resolve_with(None, &[("PGPORT", "x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PGPORT=\"x\": expected a port number (1 to 65535)"
        );
    }

    #[test]
    fn a_service_fills_what_the_string_leaves_and_beats_the_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.conf");
        std::fs::write(
            &file,
            "[nightly]\nhost=svc-host\nport=6000\nuser=svc\n[broken]\nsslkey=k.pem\n",
        )
        .unwrap();
        let file_text = file.display().to_string();
        let params = resolve_with(
            Some("service=nightly user=alice"),
            &[
                ("PGSERVICEFILE", &file_text),
                ("PGHOST", "env-host"),
                ("PGDATABASE", "app"),
            ],
        )
        .unwrap();
        assert_eq!(params.target(), "alice@svc-host:6000/app");
        assert!(
            params
                .origin
                .describe()
                .contains(&format!("service \"nightly\" ({file_text})"))
        );
        let params = resolve_with(
            None,
            &[("PGSERVICEFILE", &file_text), ("PGSERVICE", "nightly")],
        )
        .unwrap();
        assert_eq!(params.target(), "svc@svc-host:6000/svc");
        let err =
            resolve_with(Some("service=broken"), &[("PGSERVICEFILE", &file_text)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{file_text}:6: sslkey is set: client certificates are not supported by retentionc; remove it"
            )
        );
        let err = resolve_with(
            Some("service=missing"),
            &[
                ("PGSERVICEFILE", &file_text),
                ("PGSYSCONFDIR", "/nonexistent"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "definition of service \"missing\" not found (looked in {file_text}, /nonexistent/pg_service.conf)"
            )
        );
    }

    #[test]
    fn stall_timeouts() {
        assert_eq!(parse_stall_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_stall_timeout("2min"), Ok(Duration::from_secs(120)));
        assert!(
            parse_stall_timeout("500ms")
                .unwrap_err()
                .contains("at least 1s")
        );
        assert!(parse_stall_timeout("soon").is_err());
    }
}
