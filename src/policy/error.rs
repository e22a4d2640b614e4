//! Errors found in policy and config files, each with its place and key.
//!
//! Whatever an error shows of the input (the source line, a value inside the message, a
//! key, a file name) passes through `shown`: secrets are masked, control characters and
//! terminal escape sequences are written as `\u{1b}` escapes, and long text is cut. A
//! policy file may be a link to an environment file, and a terminal must never receive
//! bytes that it would interpret.

use std::fmt;
use std::path::PathBuf;

use crate::policy::yaml::Pos;

/// Longest source line shown under an error, in characters (a window around the caret).
pub const MAX_SHOWN_LINE_CHARS: usize = 160;
/// Longest message, key or file name shown, in characters.
pub const MAX_SHOWN_TEXT_CHARS: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    pub file: PathBuf,
    pub pos: Pos,
    /// Dotted key path (`retention.keep`, `deletes[1].where`); empty for file-level errors.
    pub key: String,
    pub message: String,
    /// The offending source line, shown under the message.
    pub line_text: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            shown(&self.file.display().to_string(), MAX_SHOWN_TEXT_CHARS),
            self.pos.line,
            self.pos.column
        )?;
        if !self.key.is_empty() {
            write!(f, "{}: ", shown(&self.key, MAX_SHOWN_TEXT_CHARS))?;
        }
        write!(f, "{}", shown(&self.message, MAX_SHOWN_TEXT_CHARS))?;
        if let Some(line) = &self.line_text {
            let (line, caret) = shown_line(line, self.pos.column);
            let number = self.pos.line.to_string();
            let gutter = " ".repeat(number.len());
            let caret_at = " ".repeat(caret);
            write!(f, "\n {number} | {line}\n {gutter} | {caret_at}^")?;
        }
        Ok(())
    }
}

/// Every error of one run, reported together.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "error: {error}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "{n} error{} found; nothing was changed",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for PolicyErrors {}

/// Line `line` (1-based) of `text`, without its line break. Lines end where YAML ends
/// them: at `\n`, `\r\n` or a lone `\r`, so the line shown is the line the parser counted.
/// The empty end after a final line break is no line, as for `str::lines`.
pub fn source_line(text: &str, line: u64) -> Option<&str> {
    let mut rest = text;
    let mut number = 1;
    loop {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        if number == line {
            return Some(rest[..end].trim_end());
        }
        if end == rest.len() {
            return None;
        }
        let break_len = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + break_len..];
        number += 1;
    }
}

/// How many lines `text` has, counted as `source_line` counts them (at least 1).
pub fn line_count(text: &str) -> u64 {
    let breaks = text.matches(['\n', '\r']).count() - text.matches("\r\n").count();
    breaks as u64 + 1
}

/// Text as it may be shown: secrets masked, control characters escaped, at most
/// `max_chars` characters (cut with "…").
pub fn shown(text: &str, max_chars: usize) -> String {
    let (rendered, _) = render(text);
    if rendered.chars().count() <= max_chars {
        return rendered;
    }
    let mut cut: String = rendered.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A source line as it may be shown, and the caret's offset in it for 1-based `column`
/// of the original line.
pub fn shown_line(line: &str, column: u64) -> (String, usize) {
    let (rendered, offsets) = render(line);
    let index = (column.max(1) - 1) as usize;
    let caret = offsets
        .get(index)
        .copied()
        .unwrap_or_else(|| rendered.chars().count() + index.saturating_sub(offsets.len()));
    let chars: Vec<char> = rendered.chars().collect();
    if chars.len() <= MAX_SHOWN_LINE_CHARS {
        return (rendered, caret);
    }
    // A window around the caret, marked as cut on the side(s) where text was left out.
    let before = MAX_SHOWN_LINE_CHARS / 3;
    let start = caret.saturating_sub(before).min(chars.len());
    let end = (start + MAX_SHOWN_LINE_CHARS).min(chars.len());
    let mut window = String::new();
    let mut caret_in_window = caret - start;
    if start > 0 {
        window.push('…');
        caret_in_window += 1;
    }
    window.extend(&chars[start..end]);
    if end < chars.len() {
        window.push('…');
    }
    (window, caret_in_window)
}

/// Masks secrets and escapes control characters; returns the result and, for each
/// character of `text`, its character offset in the result (for the caret).
fn render(text: &str) -> (String, Vec<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let secrets = secret_ranges(&chars);
    let mut out = String::new();
    let mut out_len = 0;
    let mut offsets = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(range) = secrets.iter().find(|r| r.start == i) {
            out.push_str("***");
            for _ in range.clone() {
                offsets.push(out_len);
            }
            out_len += 3;
            i = range.end;
            continue;
        }
        offsets.push(out_len);
        out_len += push_char(&mut out, chars[i]);
        i += 1;
    }
    (out, offsets)
}

/// `text` with every character `is_unsafe_char` names written as an escape (`\n`,
/// `\u{1b}`); nothing masked or cut.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_char(&mut out, c);
    }
    out
}

/// Pushes `c`, escaped when unsafe; returns how many characters were written.
fn push_char(out: &mut String, c: char) -> usize {
    if !is_unsafe_char(c) {
        out.push(c);
        return 1;
    }
    let escaped = match c {
        '\t' => "\\t".to_string(),
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        _ => format!("\\u{{{:x}}}", c as u32),
    };
    out.push_str(&escaped);
    escaped.chars().count()
}

/// Characters never written raw to a terminal: C0 and C1 controls and DEL (escape
/// sequences start with one), line and paragraph separators, and the invisible format
/// characters that reorder or hide text (bidirectional overrides, zero-width marks, BOM).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}')
}

/// Words that, as the key of a `key=value` or `key: value` pair, make the value a secret.
const SECRET_KEYS: [&str; 9] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "access_key",
    "private_key",
];

/// Character ranges holding secrets: the password of a URL (`scheme://user:PASSWORD@host`)
/// and the value after a key that names a secret (`password=...`, `PGPASSWORD=...`,
/// `password: ...`, `"password": "..."`).
fn secret_ranges(chars: &[char]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    url_passwords(chars, &mut ranges);
    secret_values(chars, &mut ranges);
    ranges.sort_by_key(|r| r.start);
    // Overlapping ranges merge, so that every character is masked once.
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

fn url_passwords(chars: &[char], ranges: &mut Vec<std::ops::Range<usize>>) {
    let mut i = 0;
    while i + 3 <= chars.len() {
        if chars[i..i + 3] == [':', '/', '/'] {
            let start = i + 3;
            // The authority ends at the first '/', whitespace or quote; the last '@' in it
            // ends the user information.
            let end = (start..chars.len())
                .find(|&j| {
                    matches!(chars[j], '/' | '?' | '#' | '"' | '\'') || chars[j].is_whitespace()
                })
                .unwrap_or(chars.len());
            if let Some(at) = (start..end).rev().find(|&j| chars[j] == '@')
                && let Some(colon) = (start..at).find(|&j| chars[j] == ':')
                && colon + 1 < at
            {
                ranges.push(colon + 1..at);
            }
            i = end.max(start);
        } else {
            i += 1;
        }
    }
}

fn secret_values(chars: &[char], ranges: &mut Vec<std::ops::Range<usize>>) {
    let is_key_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut i = 0;
    while i < chars.len() {
        if !is_key_char(chars[i]) || (i > 0 && is_key_char(chars[i - 1])) {
            i += 1;
            continue;
        }
        let key_end = (i..chars.len())
            .find(|&j| !is_key_char(chars[j]))
            .unwrap_or(chars.len());
        let key: String = chars[i..key_end]
            .iter()
            .collect::<String>()
            .to_lowercase()
            .replace('-', "_");
        let names_a_secret = SECRET_KEYS.iter().any(|s| key.contains(s));
        // Skip a closing quote of a quoted key, then spaces, the separator, spaces.
        let mut j = key_end;
        if j < chars.len() && matches!(chars[j], '"' | '\'') {
            j += 1;
        }
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if names_a_secret && j < chars.len() && matches!(chars[j], '=' | ':') {
            j += 1;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let value_end = match chars.get(j) {
                Some(&quote @ ('"' | '\'')) => (j + 1..chars.len())
                    .find(|&k| chars[k] == quote)
                    .unwrap_or(chars.len()),
                _ => (j..chars.len())
                    .find(|&k| {
                        chars[k].is_whitespace() || matches!(chars[k], '&' | ';' | ',' | '"' | '\'')
                    })
                    .unwrap_or(chars.len()),
            };
            let value_start = if matches!(chars.get(j), Some('"' | '\'')) {
                j + 1
            } else {
                j
            };
            if value_start < value_end {
                ranges.push(value_start..value_end);
            }
            i = value_end.max(key_end);
        } else {
            i = key_end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: &str, column: u64) -> String {
        PolicyError {
            file: PathBuf::from("policies/x.yaml"),
            pos: Pos { line: 1, column },
            key: "table".into(),
            message: format!("found {line:?}"),
            line_text: Some(line.to_string()),
        }
        .to_string()
    }

    #[test]
    fn url_passwords_and_secret_values_are_masked() {
        for (text, hidden) in [
            ("DATABASE_URL=postgres://app:s3cr3t@db:5432/app", "s3cr3t"),
            (
                "url: \"postgresql://u:p%40ss@h/db?sslmode=require\"",
                "p%40ss",
            ),
            ("host=db password=s3cr3t user=app", "s3cr3t"),
            ("PGPASSWORD=s3cr3t", "s3cr3t"),
            ("export PGPASSWORD='two words'", "two words"),
            ("password: hunter2", "hunter2"),
            ("{\"api_key\": \"abc123\"}", "abc123"),
            ("postgres://app:s3cr3t@db/app?password=other", "other"),
            ("unknown key \"password=s3cr3t\"", "s3cr3t"),
        ] {
            let out = shown(text, 1000);
            assert!(!out.contains(hidden), "{text} -> {out}");
            assert!(out.contains("***"), "{text} -> {out}");
        }
        assert_eq!(
            shown("postgres://app@db/app", 1000),
            "postgres://app@db/app"
        );
        assert_eq!(shown("table: public.events", 1000), "table: public.events");
        assert_eq!(shown("\"password=s3cr3t\": 1", 1000), "\"password=***\": 1");
    }

    #[test]
    fn control_characters_are_escaped_and_the_caret_follows() {
        let out = error("table: \u{1b}[31mx", 9);
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(out.contains("\\u{1b}[31mx"), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        let caret = lines[2].find('^').unwrap();
        // Column 9 is the '[' after the escape character.
        assert_eq!(&lines[1][caret..caret + 1], "[", "{out}");
        for c in [
            '\u{0}', '\u{7f}', '\u{85}', '\u{9b}', '\u{2028}', '\u{202e}', '\u{feff}',
        ] {
            let out = error(&format!("a{c}b"), 1);
            assert!(!out.contains(c), "{c:?}: {out:?}");
        }
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("where: \"{}x{}\"", "a".repeat(5000), "b".repeat(5000));
        let out = error(&line, 5009);
        let shown_line = out.lines().nth(1).unwrap();
        assert!(
            shown_line.chars().count() < MAX_SHOWN_LINE_CHARS + 20,
            "{out}"
        );
        let caret_line = out.lines().nth(2).unwrap();
        let caret = caret_line.chars().count() - 1;
        assert_eq!(shown_line.chars().nth(caret), Some('x'), "{out}");
        assert!(out.lines().next().unwrap().chars().count() < MAX_SHOWN_TEXT_CHARS + 100);
    }

    #[test]
    fn source_lines_end_where_yaml_ends_them() {
        let text = "a: 1\r\nb: 2\rc: 3\nd: 4";
        assert_eq!(source_line(text, 1), Some("a: 1"));
        assert_eq!(source_line(text, 2), Some("b: 2"));
        assert_eq!(source_line(text, 3), Some("c: 3"));
        assert_eq!(source_line(text, 4), Some("d: 4"));
        assert_eq!(source_line(text, 5), None);
        assert_eq!(source_line("", 1), None);
        assert_eq!(source_line("a\n\nb", 2), Some(""));
        assert_eq!(line_count(text), 4);
        assert_eq!(line_count("a\n"), 2);
        assert_eq!(source_line("a\n", 2), None);
    }
}
