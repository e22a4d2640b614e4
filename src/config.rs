//! retentionc.yaml -> `model::Config`, every key optional.

use std::path::{Path, PathBuf};

use crate::model::{Config, PartmanMajor};
use crate::policy::error::{PolicyError, PolicyErrors};
use crate::policy::ident::Ident;
use crate::policy::interval::parse_interval;
use crate::policy::reader::Reader;
use crate::policy::yaml::{Pos, Value, parse_documents};

const CONFIG_KEYS: [&str; 6] = [
    "policies",
    "generated",
    "partman_schema",
    "partman_version",
    "schema",
    "lock_timeout",
];

pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 5_000;

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

/// Reads the config at `path`; a missing file gives the defaults (rooted at its folder).
/// `shown_path` is how the file is named in messages.
pub fn load_config(path: &Path) -> Result<Config, PolicyErrors> {
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(defaults(root)),
        Err(e) => return Err(file_error(path, format!("cannot read the file: {e}"))),
    };
    parse_config(path, &text, root)
}

fn file_error(path: &Path, message: String) -> PolicyErrors {
    PolicyErrors(vec![PolicyError {
        file: path.to_path_buf(),
        pos: Pos { line: 1, column: 1 },
        key: String::new(),
        message,
        line_text: None,
    }])
}

pub fn parse_config(path: &Path, text: &str, root: PathBuf) -> Result<Config, PolicyErrors> {
    let mut config = defaults(root);
    let docs = parse_documents(text).map_err(|e| {
        let mut reader = Reader::new(path, text);
        reader.error(e.pos, "", format!("invalid YAML: {}", e.message));
        PolicyErrors(reader.errors)
    })?;
    let Some(node) = docs.first() else {
        return Ok(config);
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
        if let Some(n) = fields.get("partman_version") {
            let major = match &n.value {
                Value::Int(4) => Some(PartmanMajor::V4),
                Value::Int(5) => Some(PartmanMajor::V5),
                Value::Str(s) if s == "4" => Some(PartmanMajor::V4),
                Value::Str(s) if s == "5" => Some(PartmanMajor::V5),
                other => {
                    reader.error(
                        n.pos,
                        "partman_version",
                        format!("expected 4 or 5 (the pg_partman major version), found {other}"),
                    );
                    None
                }
            };
            if let Some(m) = major {
                config.partman_version = m
            }
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
    }
    if reader.errors.is_empty() {
        Ok(config)
    } else {
        Err(PolicyErrors(reader.errors))
    }
}

/// PostgreSQL setting syntax (`5s`, `500ms`, `1min`) or interval text (`5 seconds`).
pub fn parse_lock_timeout(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = t[digits.len()..].trim();
    let factor = match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "min" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    };
    let ms = match (digits.parse::<u64>(), factor) {
        (Ok(n), Some(f)) => n * f,
        _ => {
            let interval = parse_interval(t).map_err(|_| {
                format!(
                    "expected a duration such as \"5s\", \"500ms\" or \"1min\", found \"{text}\""
                )
            })?;
            if interval.months != 0 || interval.days != 0 {
                return Err(format!(
                    "a lock timeout of \"{text}\" is far too long; expected seconds or minutes"
                ));
            }
            (interval.micros / 1000) as u64
        }
    };
    if ms == 0 {
        return Err("0 disables lock_timeout, so a blocked statement would wait forever; expected a duration such as \"5s\"".into());
    }
    Ok(ms)
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
    fn lock_timeouts() {
        assert_eq!(parse_lock_timeout("5s"), Ok(5000));
        assert_eq!(parse_lock_timeout("2 seconds"), Ok(2000));
        assert_eq!(parse_lock_timeout("1min"), Ok(60000));
        assert!(parse_lock_timeout("0").is_err());
        assert!(parse_lock_timeout("soon").is_err());
    }
}
