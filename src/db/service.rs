//! Connection services (`service=name`, `PGSERVICE`): `[name]` sections of `key=value`
//! connection parameters, looked up as libpq does: in `PGSERVICEFILE` (else
//! `~/.pg_service.conf`), then in `pg_service.conf` of `PGSYSCONFDIR` (else
//! `/etc/postgresql-common`, where Debian's libpq looks). The first file holding the service
//! is the only one read for it.

use std::path::{Path, PathBuf};

/// libpq's system configuration folder on Debian and its derivatives.
const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// A service's parameters, each with the file line it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub file: PathBuf,
    pub params: Vec<Param>,
}

/// `(key, value, line)`.
pub type Param = (String, String, usize);

/// The files looked in, in order; `env` reads an environment variable (None when unset or
/// empty).
pub fn files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match env("PGSERVICEFILE") {
        Some(file) => files.push(PathBuf::from(file)),
        None => {
            if let Some(home) = env("HOME") {
                files.push(PathBuf::from(home).join(".pg_service.conf"));
            }
        }
    }
    let sysconfdir = env("PGSYSCONFDIR").unwrap_or_else(|| DEFAULT_SYSCONFDIR.into());
    files.push(PathBuf::from(sysconfdir).join("pg_service.conf"));
    files
}

pub fn find(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Service, String> {
    let files = files(env);
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read service file {}: {e}", file.display())),
        };
        if let Some(params) = section(&text, name, file)? {
            return Ok(Service {
                file: file.clone(),
                params,
            });
        }
    }
    Err(format!(
        "definition of service \"{name}\" not found (looked in {})",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The `key=value` lines of section `[name]`, if the file has it.
fn section(text: &str, name: &str, file: &Path) -> Result<Option<Vec<Param>>, String> {
    let mut current: Option<&str> = None;
    let mut found: Option<Vec<Param>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some(section) = header.strip_suffix(']') else {
                return Err(format!(
                    "{}:{line_number}: a section header must end with \"]\"",
                    file.display()
                ));
            };
            if found.is_some() {
                break; // the service's section has ended
            }
            current = Some(section);
            if section == name {
                found = Some(Vec::new());
            }
            continue;
        }
        if current != Some(name) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "{}:{line_number}: expected key=value in service \"{name}\"",
                file.display()
            ));
        };
        let key = key.trim();
        if key == "service" {
            return Err(format!(
                "{}:{line_number}: a service cannot name another service",
                file.display()
            ));
        }
        if let Some(params) = found.as_mut() {
            params.push((key.to_string(), value.trim().to_string(), line_number));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# a comment
[other]
host=elsewhere

[nightly]
host = db.example
port=5433
options=-c statement_timeout=5min
";

    #[test]
    fn a_section_is_read_with_its_lines() {
        let params = section(FILE, "nightly", Path::new("f")).unwrap().unwrap();
        assert_eq!(
            params,
            vec![
                ("host".into(), "db.example".into(), 6),
                ("port".into(), "5433".into(), 7),
                ("options".into(), "-c statement_timeout=5min".into(), 8),
            ]
        );
        assert_eq!(section(FILE, "missing", Path::new("f")).unwrap(), None);
    }

    #[test]
    fn broken_files_are_refused_with_their_line() {
        let err = section("[a]\nhost\n", "a", Path::new("s.conf")).unwrap_err();
        assert_eq!(err, "s.conf:2: expected key=value in service \"a\"");
        let err = section("[a]\nservice=b\n", "a", Path::new("s.conf")).unwrap_err();
        assert!(err.contains("cannot name another service"), "{err}");
        let err = section("[a\n", "a", Path::new("s.conf")).unwrap_err();
        assert!(err.contains("s.conf:1"), "{err}");
    }
}
