//! Session settings: the user's `options` (URL, keyword string, service file or `PGOPTIONS`)
//! merged with the settings retentionc pins in every session it opens.
//!
//! A user's setting is kept (`statement_timeout`, `default_transaction_read_only`, ...), unless
//! retentionc pins it: then retentionc's value wins and a warning says so. The pins are what
//! retentionc's reading and writing depend on: times in UTC (pg_partman's advice), interval and
//! date text in the forms it parses, literals as it quotes them, names resolved in the system
//! catalog only (everything retentionc sends is schema-qualified), and an upper bound on how
//! long the server keeps a transaction that its client stopped answering.

use std::time::Duration;

/// One `-c name=value` of the options string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

/// The settings retentionc pins; `idle_in_transaction_session_timeout` is the stall bound.
pub fn pinned(stall_timeout: Duration) -> Vec<Setting> {
    let setting = |name: &str, value: &str| Setting {
        name: name.into(),
        value: value.into(),
    };
    vec![
        setting("TimeZone", "UTC"),
        setting("IntervalStyle", "postgres"),
        setting("DateStyle", "ISO"),
        setting("standard_conforming_strings", "on"),
        setting("search_path", "pg_catalog, pg_temp"),
        setting(
            "idle_in_transaction_session_timeout",
            &format!("{}ms", stall_timeout.as_millis().max(1)),
        ),
    ]
}

/// Reads an options string as PostgreSQL does: words split at unescaped white space (a
/// backslash escapes the next character), each `-c name=value`, `-cname=value` or
/// `--name=value`. Other server switches are refused: they are rarely meant, and retentionc
/// cannot tell whether they conflict with its pins.
pub fn parse(text: &str) -> Result<Vec<Setting>, String> {
    let words = split_words(text);
    let mut settings = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let assignment = if word == "-c" {
            i += 1;
            match words.get(i) {
                Some(next) => next.clone(),
                None => return Err("\"-c\" at the end, without name=value after it".into()),
            }
        } else if let Some(rest) = word.strip_prefix("--") {
            rest.to_string()
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest.to_string()
        } else {
            return Err(format!(
                "\"{word}\" is not understood: expected -c name=value (or --name=value)"
            ));
        };
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(format!(
                "\"{assignment}\" has no value: expected -c name=value"
            ));
        };
        if name.is_empty() {
            return Err(format!("\"{assignment}\" has no setting name"));
        }
        settings.push(Setting {
            name: name.to_string(),
            value: value.to_string(),
        });
        i += 1;
    }
    Ok(settings)
}

fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                current.push(next);
            }
            in_word = true;
        } else if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut current));
                in_word = false;
            }
        } else {
            current.push(c);
            in_word = true;
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Setting names compare as PostgreSQL compares them: case-insensitively, `-` as `_`.
fn same_name(a: &str, b: &str) -> bool {
    let normal = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    normal(a) == normal(b)
}

/// The user's settings that a pin overrides, with the pinned value, for warnings.
pub fn overridden<'a>(user: &'a [Setting], pins: &'a [Setting]) -> Vec<(&'a Setting, &'a Setting)> {
    user.iter()
        .filter_map(|u| {
            pins.iter()
                .find(|p| same_name(&p.name, &u.name))
                .map(|p| (u, p))
        })
        .collect()
}

/// Settings retentionc's sessions use unless the user set them: no JIT compilation, which
/// PostgreSQL's cost estimates start for catalog queries over thousands of tables (about a
/// second for the owner-rights query at 1,000 tables) and for the conversion's batches,
/// never paying back.
pub fn defaults() -> Vec<Setting> {
    vec![Setting {
        name: "jit".into(),
        value: "off".into(),
    }]
}

/// The options string sent to the server: the user's settings that no pin overrides, in
/// their order, then the [`defaults`] the user did not set, then the pins.
pub fn merged(user: &[Setting], pins: &[Setting]) -> String {
    let defaults: Vec<Setting> = defaults()
        .into_iter()
        .filter(|d| !user.iter().any(|u| same_name(&u.name, &d.name)))
        .collect();
    user.iter()
        .filter(|u| !pins.iter().any(|p| same_name(&p.name, &u.name)))
        .chain(&defaults)
        .chain(pins)
        .map(|s| format!("-c {}={}", escape(&s.name), escape(&s.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, value: &str) -> Setting {
        Setting {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn every_spelling_of_a_setting_is_read() {
        assert_eq!(
            parse("-c default_transaction_read_only=on -cstatement_timeout=5s --lock-timeout=1s -c search_path=a,\\ b").unwrap(),
            vec![
                s("default_transaction_read_only", "on"),
                s("statement_timeout", "5s"),
                s("lock-timeout", "1s"),
                s("search_path", "a, b"),
            ]
        );
        assert_eq!(parse("  ").unwrap(), vec![]);
    }

    #[test]
    fn other_switches_and_broken_settings_are_refused() {
        assert!(
            parse("-e")
                .unwrap_err()
                .contains("\"-e\" is not understood")
        );
        assert!(parse("-c").unwrap_err().contains("without name=value"));
        assert!(
            parse("-c statement_timeout")
                .unwrap_err()
                .contains("has no value")
        );
    }

    #[test]
    fn user_settings_are_kept_and_pins_win() {
        let pins = pinned(Duration::from_secs(30));
        let user = parse("-c default_transaction_read_only=on -c timezone=Europe/Paris --search-path=public -c statement_timeout=5s").unwrap();
        let text = merged(&user, &pins);
        assert_eq!(
            text,
            "-c default_transaction_read_only=on -c statement_timeout=5s -c jit=off -c TimeZone=UTC -c IntervalStyle=postgres -c DateStyle=ISO -c standard_conforming_strings=on -c search_path=pg_catalog,\\ pg_temp -c idle_in_transaction_session_timeout=30000ms"
        );
        // A default the user set is the user's.
        let jit_on = parse("-c JIT=on").unwrap();
        assert_eq!(
            merged(&jit_on, &[]),
            "-c JIT=on",
            "the user's jit setting replaces the default"
        );
        assert_eq!(merged(&[], &[]), "-c jit=off");
        // What the server reads back is what was merged.
        let reread = parse(&text).unwrap();
        assert!(reread.contains(&s("search_path", "pg_catalog, pg_temp")));
        let overridden: Vec<String> = overridden(&user, &pins)
            .iter()
            .map(|(u, p)| format!("{}={} -> {}", u.name, u.value, p.value))
            .collect();
        assert_eq!(
            overridden,
            [
                "timezone=Europe/Paris -> UTC",
                "search-path=public -> pg_catalog, pg_temp"
            ]
        );
    }
}
