//! The password file (`~/.pgpass`, `PGPASSFILE`, `passfile`), read as libpq reads it:
//! `hostname:port:database:username:password` lines, `*` matching anything, `\:` and `\\`
//! escapes, the first matching line wins. A file that group or others may read is ignored,
//! with a warning, as libpq does.

use std::path::Path;

/// What a connection attempt looks up.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The host as given (name, address or socket folder); `localhost` also matches a socket
    /// in one of the usual folders.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The outcome of reading the file: a password, and a warning to show (once).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub password: Option<String>,
    pub warning: Option<String>,
}

pub fn find(path: &Path, wanted: &Lookup<'_>) -> Found {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Found::default(); // no file: nothing to say, as libpq
    };
    if !metadata.is_file() {
        return Found {
            password: None,
            warning: Some(format!(
                "password file \"{}\" is not a plain file; it is ignored",
                path.display()
            )),
        };
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            return Found {
                password: None,
                warning: Some(format!(
                    "password file \"{}\" has group or world access (mode {:04o}); it is ignored: permissions should be u=rw (0600) or less",
                    path.display(),
                    mode & 0o7777
                )),
            };
        }
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return Found {
                password: None,
                warning: Some(format!(
                    "password file \"{}\" cannot be read ({e}); it is ignored",
                    path.display()
                )),
            };
        }
    };
    Found {
        password: find_in(&text, wanted),
        warning: None,
    }
}

/// The password of the first line matching `wanted`.
pub fn find_in(text: &str, wanted: &Lookup<'_>) -> Option<String> {
    let port = wanted.port.to_string();
    let socket_host = wanted.host.starts_with('/')
        && ["/var/run/postgresql", "/run/postgresql", "/tmp"]
            .contains(&wanted.host.trim_end_matches('/'));
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = |field: &str, value: &str| field == "*" || field == value;
            let host_matches =
                matches(&fields[0], wanted.host) || (socket_host && fields[0] == "localhost");
            (host_matches
                && matches(&fields[1], &port)
                && matches(&fields[2], wanted.dbname)
                && matches(&fields[3], wanted.user))
            .then(|| fields[4..].join(":"))
        })
}

/// Fields split at unescaped colons, escapes removed.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.trim_end_matches(['\r', '\n']).chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comment
db.example:5432:app:alice:first
*:5433:*:alice:p\\:ss\\\\word
localhost:*:*:bob:socket
*:*:*:*:fallback
";

    fn lookup<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> Lookup<'a> {
        Lookup {
            host,
            port,
            dbname,
            user,
        }
    }

    #[test]
    fn the_first_matching_line_wins() {
        assert_eq!(
            find_in(FILE, &lookup("db.example", 5432, "app", "alice")).as_deref(),
            Some("first")
        );
        assert_eq!(
            find_in(FILE, &lookup("db.example", 5433, "other", "alice")).as_deref(),
            Some("p:ss\\word")
        );
        assert_eq!(
            find_in(FILE, &lookup("/var/run/postgresql", 5432, "x", "bob")).as_deref(),
            Some("socket")
        );
        assert_eq!(
            find_in(FILE, &lookup("elsewhere", 1, "x", "carol")).as_deref(),
            Some("fallback")
        );
        assert_eq!(
            find_in("h:1:d:u\n", &lookup("h", 1, "d", "u")),
            None,
            "a line of four fields holds no password"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_ignored_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        let wanted = lookup("h", 5432, "d", "u");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(find(&path, &wanted).password.as_deref(), Some("secret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let found = find(&path, &wanted);
        assert_eq!(found.password, None);
        let warning = found.warning.unwrap();
        assert!(
            warning.contains("group or world access (mode 0640)"),
            "{warning}"
        );
        assert!(!warning.contains("secret"));
        assert_eq!(find(&dir.path().join("none"), &wanted), Found::default());
    }
}
