//! Escaping for every place retentionc prints text it did not write itself: names and
//! values read from the catalog, database error messages, and policy text. Each output
//! has its own rules:
//!
//! - terminals and logs ([`terminal`], [`terminal_lines`]): no control characters, escape
//!   sequences or bidirectional overrides from data; they are shown as visible escapes
//!   (`\x1b`, `\n`, `\u{202e}`), so a hostile name can neither clear the screen nor
//!   reorder or forge lines;
//! - markdown ([`md_code`], [`md_code_in_table`], [`md_text`], [`md_fence`], [`html_text`]):
//!   data goes in code spans no backtick run inside can close, or in text whose markdown
//!   and HTML characters are escaped, never across lines;
//! - Prometheus label values ([`prometheus_label`]).
//!
//! JSON needs nothing more: serde_json escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A character a terminal or a renderer could act on rather than show: C0 and C1 controls
/// (ESC, CSI, BEL, backspace, carriage return, newline, ...), DEL, the bidirectional
/// controls that reorder what is displayed, and the Unicode line and paragraph
/// separators.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escape_where(text: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Data shown on one line of a terminal or a log: every control character (newline and
/// tab included), DEL and bidirectional control becomes a visible escape.
pub fn terminal(text: &str) -> Cow<'_, str> {
    escape_where(text, is_unsafe)
}

/// A message of several lines (an error with its cause, a policy excerpt): newlines
/// stay, every other unsafe character becomes a visible escape.
pub fn terminal_lines(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| c != '\n' && is_unsafe(c))
}

/// The longest run of backticks in `text`.
fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// Wraps `content` (already free of line breaks) in a code span whose fence is longer
/// than any backtick run inside, padded with a space where the content starts or ends
/// with a backtick or a space (CommonMark strips one such space on each side).
fn code_span(content: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(content) + 1);
    let pad =
        content.is_empty() || content.starts_with(['`', ' ']) || content.ends_with(['`', ' ']);
    let pad = if pad { " " } else { "" };
    format!("{fence}{pad}{content}{pad}{fence}")
}

/// Data as an inline markdown code span: nothing inside can end it, no HTML or markdown
/// inside is interpreted, and no line break from the data survives.
pub fn md_code(text: &str) -> String {
    code_span(&terminal(text))
}

/// [`md_code`] for a table cell: a `|` would end the cell even inside a code span (GFM),
/// so it is escaped as the table extension asks (`\|`, shown as `|`).
pub fn md_code_in_table(text: &str) -> String {
    code_span(&terminal(text).replace('|', "\\|"))
}

/// Data inside markdown prose (also in a table cell): line breaks and control characters
/// become visible escapes, and every character that could start markdown or HTML
/// (emphasis, code, links, images, headings, tables, entities, raw HTML) is escaped.
/// (`>` is left alone: it only quotes at the start of a line, and data never starts one.)
pub fn md_text(text: &str) -> String {
    let safe = terminal(text);
    let mut out = String::with_capacity(safe.len() + 8);
    for c in safe.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '!' | '|' | '~' | '&' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fenced code block (`info`: the language, e.g. `sql`) whose fence no line inside can
/// close: longer than any backtick run in the text. Newlines stay; other control
/// characters become visible escapes.
pub fn md_fence(text: &str, info: &str) -> String {
    let body = terminal_lines(text);
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    let newline = if body.ends_with('\n') || body.is_empty() {
        ""
    } else {
        "\n"
    };
    format!("{fence}{info}\n{body}{newline}{fence}\n")
}

/// Text inside an HTML element of a markdown document (`<summary>...</summary>`).
pub fn html_text(text: &str) -> String {
    let safe = terminal(text);
    let mut out = String::with_capacity(safe.len() + 8);
    for c in safe.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Prometheus/OpenMetrics label value, without its quotes: backslash, double quote and
/// newline escaped as the exposition format requires.
pub fn prometheus_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: [&str; 7] = [
        "public.x\n## Approved",
        "public.`x``y```",
        "public.<img src=x onerror=alert(1)>",
        "public.\x1b[2Jcleared",
        "public.a|b",
        "public.\u{202e}gnp.exe",
        "public.\r\u{9b}31m\u{7f}",
    ];

    #[test]
    fn terminal_text_holds_no_control_or_bidi_character() {
        for name in HOSTILE {
            let shown = terminal(name);
            assert!(!shown.chars().any(is_unsafe), "{shown:?}");
        }
        assert_eq!(terminal("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(terminal("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(terminal("\u{202e}x"), "\\u{202e}x");
        assert_eq!(terminal("\u{9b}"), "\\u{9b}");
        assert!(matches!(terminal("public.events"), Cow::Borrowed(_)));
        assert_eq!(terminal_lines("line 1\nline\x1b2"), "line 1\nline\\x1b2");
    }

    #[test]
    fn code_spans_cannot_be_closed_from_inside() {
        assert_eq!(md_code("public.events"), "`public.events`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x```"), "```` `x``` ````");
        assert_eq!(md_code("x\n## Approved"), "`x\\n## Approved`");
        assert_eq!(md_code_in_table("a|b"), "`a\\|b`");
        for name in HOSTILE {
            let span = md_code(name);
            assert!(!span.contains('\n'), "{span:?}");
            let fence_len = span.chars().take_while(|c| *c == '`').count();
            let inner = &span[fence_len..span.len() - fence_len];
            assert!(
                longest_backtick_run(inner) < fence_len,
                "{span:?}: a backtick run inside is as long as the fence"
            );
            assert!(span.ends_with(&"`".repeat(fence_len)));
        }
    }

    /// The visible escape's backslash is itself escaped: rendered, it reads `\n`.
    #[test]
    fn markdown_text_has_no_live_markdown_or_html() {
        assert_eq!(
            md_text("x\n## Approved <img src=x> *b* [l](u) a|b"),
            "x\\\\n\\#\\# Approved \\<img src=x> \\*b\\* \\[l\\](u) a\\|b"
        );
        for name in HOSTILE {
            let text = md_text(name);
            assert!(!text.contains('\n'), "{text:?}");
            let unescaped = |c: char| {
                text.match_indices(c)
                    .any(|(i, _)| !text[..i].ends_with('\\'))
            };
            assert!(
                !unescaped('<') && !unescaped('`') && !unescaped('#'),
                "{text:?}"
            );
        }
    }

    #[test]
    fn fences_are_longer_than_any_backtick_run_inside() {
        assert_eq!(md_fence("SELECT 1;\n", "sql"), "```sql\nSELECT 1;\n```\n");
        let fenced = md_fence("SELECT '````';", "sql");
        assert!(fenced.starts_with("`````sql\n"), "{fenced}");
        assert!(fenced.ends_with("\n`````\n"), "{fenced}");
    }

    #[test]
    fn html_and_prometheus_escapes() {
        assert_eq!(
            html_text("<img src=\"x\"> & 'y'"),
            "&lt;img src=&quot;x&quot;&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(prometheus_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
