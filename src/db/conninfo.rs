//! Connection strings as libpq writes them, split into `key = value` pairs: URLs
//! (`postgresql://user:password@host:port,host2/dbname?key=value`) and keyword/value strings
//! (`host=h port=5432 password='a b'`). Only the syntax is checked here; which keys and values
//! retentionc honours is `params`' job.
//!
//! Error messages name the part that is wrong and show the string with its password replaced
//! by `***`; a token that belongs to the password is never quoted.

use std::fmt;

/// A connection string that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConninfoError {
    message: String,
}

impl fmt::Display for ConninfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConninfoError {}

/// `key = value` pairs in the order written (a later pair wins, as in libpq).
pub type Pairs = Vec<(String, String)>;

/// Whether `text` is a URL (`postgresql://` or `postgres://`) rather than keyword/value pairs.
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgresql://") || text.starts_with("postgres://")
}

pub fn parse(text: &str) -> Result<Pairs, ConninfoError> {
    if is_url(text) {
        parse_url(text)
    } else if let Some((scheme, _)) = text.split_once("://") {
        Err(error(
            text,
            format!(
                "\"{scheme}://\" is not a PostgreSQL URL: expected postgresql:// or postgres://"
            ),
        ))
    } else {
        parse_keywords(text)
    }
}

/// `text` with its password shown as `***` (the userinfo password of a URL, every
/// `password` parameter), for messages.
pub fn redacted(text: &str) -> String {
    if text.contains("://") {
        redact_url(text)
    } else {
        redact_keywords(text)
    }
}

fn error(text: &str, what: String) -> ConninfoError {
    let kind = if text.contains("://") {
        "connection URL"
    } else {
        "connection string"
    };
    ConninfoError {
        message: format!("invalid {kind} \"{}\": {what}", redacted(text)),
    }
}

// ---------------------------------------------------------------------------------------
// URLs

/// The parts of a URL, as written (not yet percent-decoded).
struct UrlParts<'a> {
    userinfo: Option<&'a str>,
    hosts: &'a str,
    dbname: Option<&'a str>,
    query: Option<&'a str>,
}

fn split_url(text: &str) -> UrlParts<'_> {
    let rest = text.split_once("://").map(|(_, r)| r).unwrap_or(text);
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, dbname) = match before_query.split_once('/') {
        Some((a, d)) => (a, Some(d)),
        None => (before_query, None),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    UrlParts {
        userinfo,
        hosts,
        dbname,
        query,
    }
}

fn parse_url(text: &str) -> Result<Pairs, ConninfoError> {
    let parts = split_url(text);
    let mut pairs = Pairs::new();
    let decode = |part: &str, what: &str| {
        percent_decode(part).map_err(|e| error(text, format!("{what}: {e}")))
    };
    if let Some(userinfo) = parts.userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            pairs.push(("user".into(), decode(user, "the user name")?));
        }
        if let Some(password) = password {
            // Never quote the password's own text, not even a bad escape in it.
            let password = percent_decode(password).map_err(|_| {
                error(
                    text,
                    "the password holds an invalid percent-encoding (write a literal % as %25)"
                        .into(),
                )
            })?;
            pairs.push(("password".into(), password));
        }
    }
    let (hosts, ports) = url_hosts(text, parts.hosts)?;
    if hosts.iter().any(|h| !h.is_empty()) {
        pairs.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        pairs.push(("port".into(), ports.join(",")));
    }
    if let Some(dbname) = parts.dbname.filter(|d| !d.is_empty()) {
        pairs.push(("dbname".into(), decode(dbname, "the database name")?));
    }
    for param in parts.query.unwrap_or("").split('&') {
        if param.is_empty() {
            continue;
        }
        let Some((key, value)) = param.split_once('=') else {
            return Err(error(
                text,
                format!("the parameter \"{param}\" has no value: expected key=value"),
            ));
        };
        let key = decode(key, "a parameter name")?;
        let value = if key == "password" {
            percent_decode(value).map_err(|_| {
                error(
                    text,
                    "the password parameter holds an invalid percent-encoding".into(),
                )
            })?
        } else {
            decode(value, &format!("the value of {key}"))?
        };
        // libpq's URL alias for the dbname key.
        let key = if key == "ssl" && value == "true" {
            pairs.push(("sslmode".into(), "require".into()));
            continue;
        } else {
            key
        };
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// The host and port lists of a URL's `host:port,host:port` part (`[::1]:5432` for IPv6).
fn url_hosts(text: &str, spec: &str) -> Result<(Vec<String>, Vec<String>), ConninfoError> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    if spec.is_empty() {
        return Ok((hosts, ports));
    }
    for entry in spec.split(',') {
        let (host, port) = if let Some(inner) = entry.strip_prefix('[') {
            let Some((address, after)) = inner.split_once(']') else {
                return Err(error(
                    text,
                    format!("the IPv6 host \"{entry}\" lacks its closing \"]\""),
                ));
            };
            let port = match after {
                "" => "",
                p => p.strip_prefix(':').ok_or_else(|| {
                    error(
                        text,
                        format!("unexpected \"{after}\" after the IPv6 host [{address}]"),
                    )
                })?,
            };
            (address.to_string(), port)
        } else {
            let (host, port) = entry.split_once(':').unwrap_or((entry, ""));
            let host = percent_decode(host)
                .map_err(|e| error(text, format!("the host name \"{host}\": {e}")))?;
            (host, port)
        };
        if !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(error(
                text,
                format!("the port \"{port}\" is not a port number (1 to 65535)"),
            ));
        }
        hosts.push(host);
        ports.push(port.to_string());
    }
    Ok((hosts, ports))
}

fn redact_url(text: &str) -> String {
    let scheme_end = text.find("://").map(|i| i + 3).unwrap_or(0);
    let parts = split_url(text);
    let mut out = text[..scheme_end].to_string();
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match parts.userinfo {
        Some(userinfo) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(parts.hosts);
        }
        None => out.push_str(&rest[..authority_end]),
    }
    let after_authority = &rest[authority_end..];
    match after_authority.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if percent_decode(key).ok().as_deref() == Some("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(after_authority),
    }
    out
}

/// `%XX` escapes decoded; the result must be UTF-8 and hold no NUL.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(0) => return Err("%00 (a NUL byte) is not allowed".into()),
                Some(b) => out.push(b),
                None => {
                    return Err(
                        "invalid percent-encoding: \"%\" must be followed by two hex digits (write a literal % as %25)"
                            .into(),
                    );
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the percent-encoding is not UTF-8".into())
}

// ---------------------------------------------------------------------------------------
// Keyword/value strings

/// One `key = value` of a keyword/value string, with where its value starts and ends.
struct KeywordPair {
    key: String,
    value: String,
    value_span: (usize, usize),
}

fn parse_keywords(text: &str) -> Result<Pairs, ConninfoError> {
    Ok(keyword_pairs(text)
        .map_err(|what| error(text, what))?
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}

/// libpq's keyword/value syntax: `key = value`, the value either bare (backslash escapes
/// the next character) or in single quotes (backslash escapes `'` and `\`).
fn keyword_pairs(text: &str) -> Result<Vec<KeywordPair>, String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map(|&(o, _)| o).unwrap_or(text.len());
    let mut pairs = Vec::new();
    let mut i = 0;
    loop {
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
        let key = text[offset(start)..offset(i)].to_string();
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) != Some('=') {
            return Err(format!(
                "missing \"=\" after \"{key}\": expected key=value pairs"
            ));
        }
        if key.is_empty() {
            return Err("a \"=\" without a key before it".into());
        }
        i += 1;
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let value_start = offset(i);
        let mut value = String::new();
        if at(i) == Some('\'') {
            i += 1;
            let mut closed = false;
            while let Some(c) = at(i) {
                i += 1;
                match c {
                    '\\' => {
                        if let Some(next) = at(i) {
                            value.push(next);
                            i += 1;
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                let what = if key == "password" {
                    "the password's quoted value is not closed: a \"'\" is missing".to_string()
                } else {
                    format!("the quoted value of {key} is not closed: a \"'\" is missing")
                };
                return Err(what);
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
        pairs.push(KeywordPair {
            key,
            value,
            value_span: (value_start, offset(i)),
        });
    }
    Ok(pairs)
}

fn redact_keywords(text: &str) -> String {
    // A string that does not parse may hold a password anywhere after "password":
    // show nothing from there on.
    let Ok(pairs) = keyword_pairs(text) else {
        return match text.find("password") {
            Some(at) => format!("{}password=***...", &text[..at]),
            None => text.to_string(),
        };
    };
    let mut out = String::new();
    let mut copied = 0;
    for pair in pairs.iter().filter(|p| p.key == "password") {
        let (start, end) = pair.value_span;
        out.push_str(&text[copied..start]);
        out.push_str("***");
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn p(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_are_split_into_libpq_keys() {
        assert_eq!(
            pairs(
                "postgres://al%40ice:p%3Ass@db.example:5433/app%20db?sslmode=verify-full&application_name=nightly"
            ),
            p(&[
                ("user", "al@ice"),
                ("password", "p:ss"),
                ("host", "db.example"),
                ("port", "5433"),
                ("dbname", "app db"),
                ("sslmode", "verify-full"),
                ("application_name", "nightly"),
            ])
        );
        assert_eq!(
            pairs("postgresql://h1:5432,[::1]:5433,h3/db"),
            p(&[
                ("host", "h1,::1,h3"),
                ("port", "5432,5433,"),
                ("dbname", "db")
            ])
        );
        assert_eq!(pairs("postgresql://"), p(&[]));
        assert_eq!(
            pairs("postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql"),
            p(&[("dbname", "db"), ("host", "/var/run/postgresql")])
        );
        assert_eq!(
            pairs("postgres://u@h/db?options=-c%20statement_timeout%3D5s"),
            p(&[
                ("user", "u"),
                ("host", "h"),
                ("dbname", "db"),
                ("options", "-c statement_timeout=5s")
            ])
        );
    }

    #[test]
    fn keyword_strings_follow_libpq_quoting() {
        assert_eq!(
            pairs("host = h  port=5 password='a b\\'c' options=-c\\ x=1"),
            p(&[
                ("host", "h"),
                ("port", "5"),
                ("password", "a b'c"),
                ("options", "-c x=1")
            ])
        );
        assert_eq!(pairs(""), p(&[]));
        assert_eq!(pairs("   "), p(&[]));
    }

    #[test]
    fn malformed_urls_say_what_is_wrong_without_the_password() {
        let cases = [
            (
                "postgres://alice:hunter2@host:abc/db",
                "invalid connection URL \"postgres://alice:***@host:abc/db\": the port \"abc\" is not a port number (1 to 65535)",
            ),
            (
                "postgres://alice:hunter2@host:0/db",
                "the port \"0\" is not a port number",
            ),
            (
                "postgres://alice:hunter2@[::1/db",
                "the IPv6 host \"[::1\" lacks its closing \"]\"",
            ),
            (
                "postgres://alice:hunter2@h/db?sslmode",
                "the parameter \"sslmode\" has no value: expected key=value",
            ),
            (
                "postgres://alice:hu%zznter2@h/db",
                "the password holds an invalid percent-encoding",
            ),
            (
                "postgres://alice@h/d%zzb",
                "the database name: invalid percent-encoding",
            ),
            (
                "postgres://u@h/db?password=hunter2&x%=1",
                "\"postgres://u@h/db?password=***&x%=1\": a parameter name: invalid percent-encoding",
            ),
            (
                "postgress://alice:hunter2@h/db",
                "\"postgress://\" is not a PostgreSQL URL",
            ),
            (
                "host=h password='hunter2 port=5",
                "the password's quoted value is not closed",
            ),
            ("host=h port", "missing \"=\" after \"port\""),
            ("host=h =5", "a \"=\" without a key"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{text}: {err}");
            assert!(!err.contains("hu%zz"), "{text}: {err}");
        }
    }

    #[test]
    fn redaction_hides_every_password() {
        assert_eq!(
            redacted("postgres://u:secret@h:5/db?password=other&sslmode=require"),
            "postgres://u:***@h:5/db?password=***&sslmode=require"
        );
        assert_eq!(
            redacted("host=h password='se cret' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            redacted("host=h password='unterminated"),
            "host=h password=***..."
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
    }
}
