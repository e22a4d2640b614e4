//! retentionc.yaml -> `model::Config`, every key optional; its `environments` section
//! (the databases the policies reach) in `environments`.

pub mod environments;

use std::path::{Path, PathBuf};

use crate::model::{Config, PartmanMajor};
use crate::policy::error::{PolicyError, PolicyErrors};
use crate::policy::ident::Ident;
use crate::policy::interval::{Interval, IntervalBounds, parse_bounded};
use crate::policy::reader::Reader;
use crate::policy::source::{read_source, resolve_inside};
use crate::policy::yaml::{Node, Pos, Value, parse_documents};
pub use environments::Environment;

const CONFIG_KEYS: [&str; 7] = [
    "policies",
    "generated",
    "partman_schema",
    "partman_version",
    "schema",
    "lock_timeout",
    "environments",
];

pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 5_000;
/// `lock_timeout` from 1 millisecond (0 would disable it) to 1 hour (PostgreSQL's own
/// limit is about 24 days; a retention statement should not queue for longer than this).
pub const LOCK_TIMEOUT_BOUNDS: IntervalBounds = IntervalBounds {
    min: Interval {
        months: 0,
        days: 0,
        micros: 1_000,
    },
    max: Interval {
        months: 0,
        days: 0,
        micros: 3_600_000_000,
    },
};

/// The settings file to read: `explicit` (`--config PATH`) must exist; without it,
/// `./retentionc.yaml`, whose absence means the defaults.
pub fn config_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(path) => match std::fs::metadata(path) {
            Ok(_) => Ok(path.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "--config {}: the file does not exist (without --config, a missing ./retentionc.yaml means the defaults)",
                crate::policy::error::shown(&path.display().to_string(), 400)
            ),
            Err(e) => anyhow::bail!("--config {}: {e}", path.display()),
        },
        None => Ok(PathBuf::from(DEFAULT_CONFIG_FILE)),
    }
}

/// The settings file read when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "retentionc.yaml";

fn defaults(root: PathBuf) -> Config {
    Config {
        root,
        policies_dir: PathBuf::from("policies"),
        generated_dir: PathBuf::from("generated"),
        partman_schema: Ident::parse("partman").expect("valid"),
        partman_version: PartmanMajor::V5,
        schema: Ident::parse("retention").expect("valid"),
        lock_timeout_ms: DEFAULT_LOCK_TIMEOUT_MS,
    }
}

/// retentionc.yaml as a whole: the project settings and the environments.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// In the order of the file.
    pub environments: Vec<Environment>,
}

/// Reads the config at `path`; a missing file gives the defaults (rooted at its folder).
pub fn load_config(path: &Path) -> Result<Config, PolicyErrors> {
    Ok(load_settings(path)?.config)
}

/// Reads the settings and environments at `path`; a missing file gives the defaults and
/// no environment.
pub fn load_settings(path: &Path) -> Result<Settings, PolicyErrors> {
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Err(e) = std::fs::symlink_metadata(path)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        let config = defaults(root);
        check_folders(&config, None)?;
        return Ok(Settings {
            config,
            environments: Vec::new(),
        });
    }
    let text = read_source(path, path, None).map_err(|e| PolicyErrors(vec![e]))?;
    parse_settings(path, &text, root)
}

pub fn parse_config(path: &Path, text: &str, root: PathBuf) -> Result<Config, PolicyErrors> {
    Ok(parse_settings(path, text, root)?.config)
}

pub fn parse_settings(path: &Path, text: &str, root: PathBuf) -> Result<Settings, PolicyErrors> {
    let mut config = defaults(root);
    let mut environments = Vec::new();
    let docs = parse_documents(text).map_err(|e| {
        let mut reader = Reader::new(path, text);
        reader.error(e.pos, "", format!("invalid YAML: {}", e.message));
        PolicyErrors(reader.errors)
    })?;
    let Some(node) = docs.first() else {
        check_folders(&config, Some((path, text)))?;
        return Ok(Settings {
            config,
            environments,
        });
    };
    let mut reader = Reader::new(path, text);
    if docs.len() > 1 {
        reader.error(
            docs[1].pos,
            "",
            "retentionc.yaml holds one document; found a second",
        );
    }
    if let Some(fields) = reader.mapping(node, "", &CONFIG_KEYS) {
        if let Some(n) = fields.get("policies")
            && let Some(s) = reader.string(n, "policies", "a folder path")
        {
            config.policies_dir = PathBuf::from(s)
        }
        if let Some(n) = fields.get("generated")
            && let Some(s) = reader.string(n, "generated", "a folder path")
        {
            config.generated_dir = PathBuf::from(s)
        }
        if let Some(n) = fields.get("partman_schema")
            && let Some(v) = reader.parsed(n, "partman_schema", "a schema name", Ident::parse)
        {
            config.partman_schema = v
        }
        if let Some(n) = fields.get("schema")
            && let Some(v) = reader.parsed(n, "schema", "a schema name", Ident::parse)
        {
            config.schema = v
        }
        if let Some(n) = fields.get("partman_version")
            && let Some(major) = read_partman_version(&mut reader, n, "partman_version")
        {
            config.partman_version = major
        }
        if let Some(n) = fields.get("lock_timeout")
            && let Some(ms) = reader.parsed(
                n,
                "lock_timeout",
                "a duration such as \"5s\"",
                parse_lock_timeout,
            )
        {
            config.lock_timeout_ms = ms
        }
        if let Some(n) = fields.get("environments") {
            environments = environments::read_environments(&mut reader, n);
        }
    }
    if !reader.errors.is_empty() {
        return Err(PolicyErrors(reader.errors));
    }
    check_folders(&config, Some((path, text)))?;
    Ok(Settings {
        config,
        environments,
    })
}

/// `partman_version: 4` or `5` (also as text).
fn read_partman_version(reader: &mut Reader<'_>, n: &Node, path: &str) -> Option<PartmanMajor> {
    match &n.value {
        Value::Int(4) => Some(PartmanMajor::V4),
        Value::Int(5) => Some(PartmanMajor::V5),
        Value::Str(s) if s == "4" => Some(PartmanMajor::V4),
        Value::Str(s) if s == "5" => Some(PartmanMajor::V5),
        other => {
            reader.error(
                n.pos,
                path,
                format!("expected 4 or 5 (the pg_partman major version), found {other}"),
            );
            None
        }
    }
}

/// The policies and generated folders must lie inside the project folder (links
/// followed): a policy read from elsewhere, or SQL written elsewhere, is not what the
/// project's reviewers see. Reported at the key in retentionc.yaml when it is set there.
fn check_folders(config: &Config, file: Option<(&Path, &str)>) -> Result<(), PolicyErrors> {
    let mut errors = Vec::new();
    if std::fs::canonicalize(&config.root).is_err() {
        // No project folder yet (a path given for init): nothing can be read or written
        // outside of it, and reading the policies folder reports its absence.
        return Ok(());
    }
    for (key, folder, written) in [
        ("policies", config.policies_path(), &config.policies_dir),
        ("generated", config.generated_path(), &config.generated_dir),
    ] {
        let Err(why) = resolve_inside(&config.root, &folder) else {
            continue;
        };
        let message = format!("the {key} folder \"{}\" {why}", written.display());
        match file {
            Some((path, text)) => {
                let mut reader = Reader::new(path, text);
                let pos = key_position(text, key).unwrap_or(Pos { line: 1, column: 1 });
                reader.error(pos, key, message);
                errors.append(&mut reader.errors);
            }
            None => errors.push(PolicyError {
                file: config.root.join(DEFAULT_CONFIG_FILE),
                pos: Pos { line: 1, column: 1 },
                key: key.to_string(),
                message,
                line_text: None,
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Where `key`'s value stands in retentionc.yaml, if the key is set there.
fn key_position(text: &str, key: &str) -> Option<Pos> {
    let docs = parse_documents(text).ok()?;
    let Value::Map(entries) = &docs.first()?.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(_, value)| value.pos)
}

/// PostgreSQL setting syntax (`5s`, `500ms`, `1min`, `1h`) or interval text (`5 seconds`),
/// within `LOCK_TIMEOUT_BOUNDS`; milliseconds.
pub fn parse_lock_timeout(text: &str) -> Result<u64, String> {
    let interval = parse_bounded(text, &LOCK_TIMEOUT_BOUNDS).map_err(|message| {
        if message.starts_with("expected an interval") {
            format!(
                "expected a duration such as \"5s\", \"500ms\" or \"1min\", found \"{}\"",
                text.trim()
            )
        } else {
            message
        }
    })?;
    if interval.micros % 1000 != 0 {
        return Err(format!(
            "expected whole milliseconds (PostgreSQL's lock_timeout unit), found \"{}\"",
            text.trim()
        ));
    }
    Ok((interval.micros / 1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_optional() {
        let config = parse_config(Path::new("retentionc.yaml"), "", PathBuf::from(".")).unwrap();
        assert_eq!(config.partman_version, PartmanMajor::V5);
        assert_eq!(config.schema.as_str(), "retention");
        assert_eq!(config.lock_timeout_ms, 5_000);
    }

    #[test]
    fn values_are_read_and_checked() {
        let text = "partman_version: 4\nlock_timeout: 750ms\nschema: ops\n";
        let config = parse_config(Path::new("r.yaml"), text, PathBuf::from(".")).unwrap();
        assert_eq!(config.partman_version, PartmanMajor::V4);
        assert_eq!(config.lock_timeout_ms, 750);
        assert_eq!(config.schema.as_str(), "ops");
        let err = parse_config(
            Path::new("r.yaml"),
            "partman_version: 6\nlock_timout: 1s\n",
            PathBuf::from("."),
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(
            err.to_string().contains("did you mean \"lock_timeout\""),
            "{err}"
        );
    }

    #[test]
    fn environments_keep_their_order_and_compile_apart_only_when_the_sql_differs() {
        let text = "schema: ops
environments:
  staging:
    url_env: STAGING_URL
    lock_timeout: 1s
  production:
    url_env: [PROD_EU_URL, PROD_US_URL]
    discover: {url_env: TENANTS_URL, databases: \"tenant_%\", exclude: \"tenant_template\"}
  legacy:
    url_env: LEGACY_URL
    partman_version: 4
    schema: ops
";
        let settings = parse_settings(Path::new("r.yaml"), text, PathBuf::from(".")).unwrap();
        let names: Vec<&str> = settings
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["staging", "production", "legacy"]);
        let production = &settings.environments[1];
        assert_eq!(production.url_variables, ["PROD_EU_URL", "PROD_US_URL"]);
        let discover = production.discover.as_ref().unwrap();
        assert_eq!(discover.databases, "tenant_%");
        assert_eq!(discover.exclude.as_deref(), Some("tenant_template"));
        // lock_timeout changes no SQL: the project's generated/.
        let staging = settings.environments[0].config(&settings.config);
        assert_eq!(staging.lock_timeout_ms, 1000);
        assert_eq!(staging.generated_dir, PathBuf::from("generated"));
        let legacy = settings.environments[2].config(&settings.config);
        assert_eq!(legacy.partman_version, PartmanMajor::V4);
        assert_eq!(legacy.schema.as_str(), "ops");
        assert_eq!(legacy.generated_dir, PathBuf::from("generated/legacy"));
        // Setting a value equal to the project's changes nothing.
        let same = parse_settings(
            Path::new("r.yaml"),
            "environments:\n  prod:\n    url_env: U\n    partman_version: 5\n",
            PathBuf::from("."),
        )
        .unwrap();
        let config = same.environments[0].config(&same.config);
        assert_eq!(config.generated_dir, PathBuf::from("generated"));
    }

    #[test]
    fn environment_mistakes_are_each_named_at_their_key() {
        let text = "environments:
  staging:
    url_env: [A_URL, A_URL]
  2prod:
    url_env: B
  tenants:
    discover: {url_env: C, databases: \"\"}
    partman_version: 3
  empty: {}
";
        let err = parse_settings(Path::new("r.yaml"), text, PathBuf::from(".")).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "environments.staging.url_env[1]",
                "environments.2prod",
                "environments.tenants.discover.databases",
                "environments.tenants.partman_version",
                "environments.empty",
            ],
            "{err}"
        );
    }

    #[test]
    fn lock_timeouts() {
        assert_eq!(parse_lock_timeout("5s"), Ok(5000));
        assert_eq!(parse_lock_timeout("2 seconds"), Ok(2000));
        assert_eq!(parse_lock_timeout("1min"), Ok(60000));
        assert_eq!(parse_lock_timeout("500ms"), Ok(500));
        assert_eq!(parse_lock_timeout("1h"), Ok(3_600_000));
        assert_eq!(parse_lock_timeout("60 min"), Ok(3_600_000));
        assert_eq!(parse_lock_timeout("1 ms"), Ok(1));
        assert!(parse_lock_timeout("0").is_err());
        assert!(parse_lock_timeout("soon").is_err());
        for too_long in [
            "61min",
            "1 hour 1 millisecond",
            "1 day",
            "99999999999h",
            "2147483648ms",
        ] {
            let err = parse_lock_timeout(too_long).unwrap_err();
            assert!(
                err.starts_with("expected at most 1 hour"),
                "{too_long}: {err}"
            );
        }
        for too_short in ["0s", "0 ms", "999 microseconds"] {
            let err = parse_lock_timeout(too_short).unwrap_err();
            assert!(err.contains("at least 1 millisecond"), "{too_short}: {err}");
        }
    }
}
