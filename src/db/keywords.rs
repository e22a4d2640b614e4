//! Every libpq connection parameter and what retentionc does with it: honoured, accepted only
//! with the values that mean what retentionc does anyway, or refused with the reason. The
//! user documentation (docs/connections.md) lists the same, and a test keeps the two together.

use anyhow::{Result, bail};

/// What retentionc does with one libpq parameter.
pub(super) enum Rule {
    Honoured,
    /// Accepted only with these values (what retentionc does anyway); why others are not.
    OnlyValues(&'static [&'static str], &'static str),
    Refused(&'static str),
}

pub(super) struct Keyword {
    pub(super) name: &'static str,
    pub(super) env: Option<&'static str>,
    rule: Rule,
}

const fn keyword(name: &'static str, env: Option<&'static str>, rule: Rule) -> Keyword {
    Keyword { name, env, rule }
}

const NO_CLIENT_CERTIFICATES: &str = "client certificates are not supported by retentionc";
const NO_GSS: &str = "Kerberos/GSSAPI is not supported by retentionc";

/// Every libpq connection parameter (PostgreSQL 17), in the order of libpq's documentation.
pub(super) const KEYWORDS: &[Keyword] = &[
    keyword("host", Some("PGHOST"), Rule::Honoured),
    keyword("hostaddr", Some("PGHOSTADDR"), Rule::Honoured),
    keyword("port", Some("PGPORT"), Rule::Honoured),
    keyword("dbname", Some("PGDATABASE"), Rule::Honoured),
    keyword("user", Some("PGUSER"), Rule::Honoured),
    keyword("password", Some("PGPASSWORD"), Rule::Honoured),
    keyword("passfile", Some("PGPASSFILE"), Rule::Honoured),
    keyword(
        "require_auth",
        Some("PGREQUIREAUTH"),
        Rule::Refused("restricting the authentication methods is not supported by retentionc"),
    ),
    keyword("channel_binding", Some("PGCHANNELBINDING"), Rule::Honoured),
    keyword("connect_timeout", Some("PGCONNECT_TIMEOUT"), Rule::Honoured),
    keyword(
        "client_encoding",
        Some("PGCLIENTENCODING"),
        Rule::OnlyValues(
            &[
                "UTF8", "utf8", "UTF-8", "utf-8", "UNICODE", "unicode", "auto",
            ],
            "retentionc's sessions always use UTF8",
        ),
    ),
    keyword("options", Some("PGOPTIONS"), Rule::Honoured),
    keyword("application_name", Some("PGAPPNAME"), Rule::Honoured),
    keyword("fallback_application_name", None, Rule::Honoured),
    keyword("keepalives", None, Rule::Honoured),
    keyword("keepalives_idle", None, Rule::Honoured),
    keyword("keepalives_interval", None, Rule::Honoured),
    keyword("keepalives_count", None, Rule::Honoured),
    keyword("tcp_user_timeout", None, Rule::Honoured),
    keyword(
        "replication",
        None,
        Rule::Refused("retentionc does not open replication connections"),
    ),
    keyword(
        "gssencmode",
        Some("PGGSSENCMODE"),
        Rule::OnlyValues(&["disable", "prefer"], NO_GSS),
    ),
    keyword("sslmode", Some("PGSSLMODE"), Rule::Honoured),
    keyword(
        "sslnegotiation",
        Some("PGSSLNEGOTIATION"),
        Rule::OnlyValues(
            &["postgres"],
            "direct TLS negotiation is not supported by retentionc",
        ),
    ),
    keyword(
        "sslcompression",
        Some("PGSSLCOMPRESSION"),
        Rule::OnlyValues(&["0"], "TLS compression is not supported by retentionc"),
    ),
    keyword(
        "sslcert",
        Some("PGSSLCERT"),
        Rule::Refused(NO_CLIENT_CERTIFICATES),
    ),
    keyword(
        "sslkey",
        Some("PGSSLKEY"),
        Rule::Refused(NO_CLIENT_CERTIFICATES),
    ),
    keyword("sslpassword", None, Rule::Refused(NO_CLIENT_CERTIFICATES)),
    keyword(
        "sslcertmode",
        Some("PGSSLCERTMODE"),
        Rule::OnlyValues(&["disable", "allow"], NO_CLIENT_CERTIFICATES),
    ),
    keyword("sslrootcert", Some("PGSSLROOTCERT"), Rule::Honoured),
    keyword(
        "sslcrl",
        Some("PGSSLCRL"),
        Rule::Refused("certificate revocation lists are not supported by retentionc"),
    ),
    keyword(
        "sslcrldir",
        Some("PGSSLCRLDIR"),
        Rule::Refused("certificate revocation lists are not supported by retentionc"),
    ),
    keyword(
        "sslsni",
        Some("PGSSLSNI"),
        Rule::OnlyValues(&["1"], "retentionc always sends the server name (SNI)"),
    ),
    keyword(
        "sslkeylogfile",
        None,
        Rule::Refused("TLS key logging is not supported by retentionc"),
    ),
    keyword(
        "requirepeer",
        Some("PGREQUIREPEER"),
        Rule::Refused("checking the server's operating-system user is not supported by retentionc"),
    ),
    keyword(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        Rule::OnlyValues(&["TLSv1.2"], "retentionc negotiates TLS 1.2 or 1.3"),
    ),
    keyword(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        Rule::OnlyValues(&["TLSv1.3"], "retentionc negotiates TLS 1.2 or 1.3"),
    ),
    keyword(
        "min_protocol_version",
        Some("PGMINPROTOCOLVERSION"),
        Rule::OnlyValues(&["3.0"], "retentionc speaks protocol 3.0"),
    ),
    keyword(
        "max_protocol_version",
        Some("PGMAXPROTOCOLVERSION"),
        Rule::OnlyValues(&["3.0"], "retentionc speaks protocol 3.0"),
    ),
    keyword("krbsrvname", Some("PGKRBSRVNAME"), Rule::Refused(NO_GSS)),
    keyword("gsslib", Some("PGGSSLIB"), Rule::Refused(NO_GSS)),
    keyword(
        "gssdelegation",
        Some("PGGSSDELEGATION"),
        Rule::OnlyValues(&["0"], NO_GSS),
    ),
    keyword("service", Some("PGSERVICE"), Rule::Honoured),
    keyword(
        "target_session_attrs",
        Some("PGTARGETSESSIONATTRS"),
        Rule::Honoured,
    ),
    keyword(
        "load_balance_hosts",
        Some("PGLOADBALANCEHOSTS"),
        Rule::Honoured,
    ),
];

/// libpq variables that set a session setting rather than a connection parameter.
pub(super) const SESSION_VARIABLES: [(&str, &str); 3] = [
    ("PGTZ", "TimeZone"),
    ("PGDATESTYLE", "DateStyle"),
    ("PGGEQO", "geqo"),
];

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
pub(super) enum Source {
    ConnectionString(&'static str),
    Service(String),
    Variable(&'static str),
}

impl Source {
    pub(super) fn name(&self, key: &str) -> String {
        match self {
            Source::ConnectionString(from) => format!("{from}: {key}"),
            Source::Service(place) => format!("{place}: {key}"),
            Source::Variable(var) => var.to_string(),
        }
    }
}

pub(super) fn find_keyword(key: &str) -> Result<&'static Keyword, String> {
    if let Some(keyword) = KEYWORDS.iter().find(|k| k.name == key) {
        return Ok(keyword);
    }
    let names: Vec<&str> = KEYWORDS.iter().map(|k| k.name).collect();
    let hint = match (key, crate::policy::suggest::nearest(key, &names)) {
        ("keepalives_retries", _) => " (did you mean \"keepalives_count\"?)".to_string(),
        (_, Some(near)) => format!(" (did you mean \"{near}\"?)"),
        (_, None) => String::new(),
    };
    Err(format!("unknown connection parameter \"{key}\"{hint}"))
}

pub(super) fn check_rule(keyword: &Keyword, value: &str, source: &Source) -> Result<()> {
    match &keyword.rule {
        Rule::Honoured => Ok(()),
        Rule::OnlyValues(accepted, _) if accepted.contains(&value) => Ok(()),
        Rule::OnlyValues(accepted, why) => {
            let accepted: Vec<&str> = accepted.iter().copied().filter(|a| *a != "auto").collect();
            bail!(
                "{}={}: {why} (accepted: {}); remove it or change it",
                source.name(keyword.name),
                shown(keyword, value),
                accepted.join(", ")
            )
        }
        Rule::Refused(why) => bail!(
            "{} is set: {why}; remove it{}",
            source.name(keyword.name),
            match source {
                Source::Variable(_) => " from the environment",
                _ => "",
            }
        ),
    }
}

/// A value as messages may show it: never a password.
fn shown(keyword: &Keyword, value: &str) -> String {
    if keyword.name == "password" {
        "***".into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::options;
    use crate::db::params::DEFAULT_STALL_TIMEOUT;

    #[test]
    fn the_user_documentation_names_every_parameter_and_variable() {
        let doc = include_str!("../../docs/connections.md");
        let mut names: Vec<&str> = KEYWORDS
            .iter()
            .flat_map(|k| [Some(k.name), k.env])
            .flatten()
            .collect();
        names.extend(SESSION_VARIABLES.iter().map(|(var, _)| *var));
        names.extend([
            "PGSERVICEFILE",
            "PGSYSCONFDIR",
            "DATABASE_URL",
            "RETENTIONC_STALL_TIMEOUT",
        ]);
        let missing: Vec<&str> = names
            .into_iter()
            .filter(|n| !doc.contains(&format!("`{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/connections.md does not name {missing:?}"
        );
        for pin in options::pinned(DEFAULT_STALL_TIMEOUT) {
            assert!(doc.contains(&format!("`{}`", pin.name)), "{}", pin.name);
        }
    }
}
