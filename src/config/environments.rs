//! The `environments` section of retentionc.yaml: named sets of databases that receive
//! the same policies (staging, production, every tenant database of a server).
//!
//! An environment says where its databases are, never how to log in: each connection is
//! the value of an environment variable (`url_env`), read when a command runs, so no URL
//! or password is ever written in the file. It may also set the project settings that
//! differ there. When it sets a setting that changes the compiled SQL (schema names,
//! `partman_version`), its SQL is compiled into a folder of its own, `generated/<name>/`,
//! reviewed like the rest of generated/; `lock_timeout` changes no SQL.

use std::path::Path;

use crate::model::{Config, PartmanMajor};
use crate::policy::ident::Ident;
use crate::policy::reader::Reader;
use crate::policy::yaml::{Node, Pos, Value};

const ENVIRONMENT_KEYS: [&str; 6] = [
    "url_env",
    "discover",
    "lock_timeout",
    "schema",
    "partman_schema",
    "partman_version",
];
const DISCOVER_KEYS: [&str; 3] = ["url_env", "databases", "exclude"];

/// At most this many environments, and this many `url_env` variables in one.
pub const MAX_ENVIRONMENTS: usize = 64;
pub const MAX_LISTED_DATABASES: usize = 1_000;
/// Longest environment name (it names a folder under generated/).
const MAX_NAME_BYTES: usize = 63;
/// Longest `databases`/`exclude` pattern.
const MAX_PATTERN_CHARS: usize = 200;

/// One environment, in the order of the file (the order apply takes them in).
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    /// Variables holding one database's connection string each, in the listed order.
    pub url_variables: Vec<String>,
    /// Databases found on one server when the command runs, after the listed ones.
    pub discover: Option<Discovery>,
    pub settings: Overrides,
}

/// Every database of one server whose name matches `databases` (a `LIKE` pattern) and
/// not `exclude`, each reached with the server's connection settings and its own name.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    pub url_variable: String,
    pub databases: String,
    pub exclude: Option<String>,
}

/// Project settings an environment sets for itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub lock_timeout_ms: Option<u64>,
    pub schema: Option<Ident>,
    pub partman_schema: Option<Ident>,
    pub partman_version: Option<PartmanMajor>,
}

impl Environment {
    /// The project settings of this environment: `base` with its overrides; when the
    /// overrides change the compiled SQL, generated/ is `<generated>/<name>/`.
    pub fn config(&self, base: &Config) -> Config {
        let mut config = base.clone();
        let o = &self.settings;
        if let Some(ms) = o.lock_timeout_ms {
            config.lock_timeout_ms = ms;
        }
        if let Some(schema) = &o.schema {
            config.schema = schema.clone();
        }
        if let Some(schema) = &o.partman_schema {
            config.partman_schema = schema.clone();
        }
        if let Some(major) = o.partman_version {
            config.partman_version = major;
        }
        if compiles_differently(base, &config) {
            config.generated_dir = base.generated_dir.join(&self.name);
        }
        config
    }
}

/// Whether two settings give different SQL for the same policies.
pub fn compiles_differently(a: &Config, b: &Config) -> bool {
    a.schema != b.schema
        || a.partman_schema != b.partman_schema
        || a.partman_version != b.partman_version
}

/// Reads the `environments` mapping; errors go to `reader`.
pub fn read_environments(reader: &mut Reader<'_>, node: &Node) -> Vec<Environment> {
    let Value::Map(entries) = &node.value else {
        reader.error(
            node.pos,
            "environments",
            format!(
                "expected a mapping of environment names (staging: ..., production: ...), found {}",
                node.value.kind()
            ),
        );
        return Vec::new();
    };
    if entries.len() > MAX_ENVIRONMENTS {
        reader.error(
            node.pos,
            "environments",
            format!(
                "expected at most {MAX_ENVIRONMENTS} environments, found {}",
                entries.len()
            ),
        );
        return Vec::new();
    }
    let mut environments = Vec::new();
    for (key, value) in entries {
        let path = format!("environments.{}", shown_key(&key.name));
        if let Err(why) = check_name(&key.name) {
            reader.error(key.pos, &path, why);
            continue;
        }
        if let Some(environment) = read_environment(reader, &key.name, key.pos, value, &path) {
            environments.push(environment);
        }
    }
    environments
}

fn read_environment(
    reader: &mut Reader<'_>,
    name: &str,
    name_pos: Pos,
    node: &Node,
    path: &str,
) -> Option<Environment> {
    let fields = reader.mapping(node, path, &ENVIRONMENT_KEYS)?;
    let errors_before = reader.errors.len();
    let mut environment = Environment {
        name: name.to_string(),
        url_variables: Vec::new(),
        discover: None,
        settings: Overrides::default(),
    };
    if let Some(n) = fields.get("url_env") {
        environment.url_variables = read_variables(reader, n, &fields.path_of("url_env"));
    }
    if let Some(n) = fields.get("discover") {
        environment.discover = read_discovery(reader, n, &fields.path_of("discover"));
    }
    if !fields.has("url_env")
        && !fields.has("discover")
        && !fields.was_misspelt("url_env")
        && !fields.was_misspelt("discover")
    {
        reader.error(
            name_pos,
            path,
            format!(
                "environment \"{name}\" names no database: give url_env (the variable holding a database's URL, or a list of them) or discover"
            ),
        );
    }
    let settings = &mut environment.settings;
    if let Some(n) = fields.get("lock_timeout") {
        settings.lock_timeout_ms = reader.parsed(
            n,
            &fields.path_of("lock_timeout"),
            "a duration such as \"5s\"",
            super::parse_lock_timeout,
        );
    }
    if let Some(n) = fields.get("schema") {
        settings.schema =
            reader.parsed(n, &fields.path_of("schema"), "a schema name", Ident::parse);
    }
    if let Some(n) = fields.get("partman_schema") {
        settings.partman_schema = reader.parsed(
            n,
            &fields.path_of("partman_schema"),
            "a schema name",
            Ident::parse,
        );
    }
    if let Some(n) = fields.get("partman_version") {
        settings.partman_version =
            super::read_partman_version(reader, n, &fields.path_of("partman_version"));
    }
    (reader.errors.len() == errors_before).then_some(environment)
}

/// `url_env: NAME` or `url_env: [NAME, ...]`.
fn read_variables(reader: &mut Reader<'_>, node: &Node, path: &str) -> Vec<String> {
    let items: Vec<(&Node, String)> = match &node.value {
        Value::Seq(items) if items.is_empty() => {
            reader.error(
                node.pos,
                path,
                "expected at least one variable name, found an empty list",
            );
            return Vec::new();
        }
        Value::Seq(items) if items.len() > MAX_LISTED_DATABASES => {
            reader.error(
                node.pos,
                path,
                format!(
                    "expected at most {MAX_LISTED_DATABASES} variables (use discover for more databases on one server), found {}",
                    items.len()
                ),
            );
            return Vec::new();
        }
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (item, format!("{path}[{i}]")))
            .collect(),
        _ => vec![(node, path.to_string())],
    };
    let mut names: Vec<String> = Vec::new();
    for (item, item_path) in items {
        let Some(name) = read_variable(reader, item, &item_path) else {
            continue;
        };
        if names.contains(&name) {
            reader.error(
                item.pos,
                &item_path,
                format!("variable {name} is listed twice in this environment"),
            );
            continue;
        }
        names.push(name);
    }
    names
}

/// The name of an environment variable. The value is never echoed when it is not one:
/// it may be a URL with a password that was pasted in by mistake.
fn read_variable(reader: &mut Reader<'_>, node: &Node, path: &str) -> Option<String> {
    let Value::Str(text) = &node.value else {
        reader.error(
            node.pos,
            path,
            format!(
                "expected the name of an environment variable holding a database URL, found {}",
                node.value.kind()
            ),
        );
        return None;
    };
    if is_variable_name(text) {
        return Some(text.clone());
    }
    let hint = if text.contains("://") || text.contains('=') || text.contains('@') {
        "; this looks like a connection string: put it in an environment variable and name the variable here (a URL is never written in retentionc.yaml)"
    } else {
        ""
    };
    reader.error(
        node.pos,
        path,
        format!(
            "expected the name of an environment variable (letters, digits and _, not starting with a digit, at most 128), found a value that is not one{hint}"
        ),
    );
    None
}

fn read_discovery(reader: &mut Reader<'_>, node: &Node, path: &str) -> Option<Discovery> {
    let fields = reader.mapping(node, path, &DISCOVER_KEYS)?;
    let url = reader.require(&fields, "url_env", "the variable holding the server's URL");
    let databases = reader.require(
        &fields,
        "databases",
        "a pattern of database names such as \"tenant_%\"",
    );
    let url_variable = url.and_then(|n| read_variable(reader, n, &fields.path_of("url_env")));
    let databases = databases.and_then(|n| {
        reader.parsed(
            n,
            &fields.path_of("databases"),
            "a LIKE pattern",
            parse_pattern,
        )
    });
    let exclude = match fields.get("exclude") {
        Some(n) => Some(reader.parsed(
            n,
            &fields.path_of("exclude"),
            "a LIKE pattern",
            parse_pattern,
        )?),
        None => None,
    };
    Some(Discovery {
        url_variable: url_variable?,
        databases: databases?,
        exclude,
    })
}

/// A `LIKE` pattern of database names (`%` any text, `_` one character), sent as a bind
/// parameter.
fn parse_pattern(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("expected a LIKE pattern such as \"tenant_%\", found an empty text".into());
    }
    if text.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "expected a pattern of at most {MAX_PATTERN_CHARS} characters, found {}",
            text.chars().count()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err("expected a pattern without control characters".into());
    }
    Ok(text.to_string())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if starts_well && rest_ok && name.len() <= MAX_NAME_BYTES {
        Ok(())
    } else {
        Err(format!(
            "expected an environment name of letters, digits, _ and -, starting with a letter, at most {MAX_NAME_BYTES} characters (it names a folder under generated/), found \"{}\"",
            shown_key(name)
        ))
    }
}

fn shown_key(name: &str) -> String {
    crate::policy::error::shown(name, 80)
}

pub fn is_variable_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 128
}

/// An environment by name, or an error listing the names there are.
pub fn find<'e>(
    environments: &'e [Environment],
    name: &str,
    file: &Path,
) -> Result<&'e Environment, String> {
    environments.iter().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<&str> = environments.iter().map(|e| e.name.as_str()).collect();
        let listed: Vec<&str> = names.clone();
        let near = crate::policy::suggest::nearest(name, &listed)
            .map(|n| format!(" (did you mean \"{n}\"?)"))
            .unwrap_or_default();
        if names.is_empty() {
            format!(
                "--env {}: {} names no environments (add an environments: section; see docs/fleet.md)",
                shown_key(name),
                file.display()
            )
        } else {
            format!(
                "--env {}: no such environment in {}{near}; it names {}",
                shown_key(name),
                file.display(),
                names.join(", ")
            )
        }
    })
}
