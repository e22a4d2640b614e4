//! YAML text -> a tree of nodes that remember where they came from.
//!
//! Policies are read in two steps: serde-saphyr parses the text into this small,
//! span-carrying tree, then `parse.rs` walks the tree and reports *every* problem it
//! finds (serde alone stops at the first one and cannot suggest a misspelt key).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A place in a source file, 1-based, as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// A YAML value together with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; duplicate keys are already refused by the parser.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub pos: Pos,
    pub name: String,
}

impl Value {
    /// How the value is called in "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Seq(_) => write!(f, "a list"),
            Value::Map(_) => write!(f, "a mapping"),
        }
    }
}

/// A YAML syntax error, with the place the parser reports.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Deepest nesting of mappings and lists read; a policy needs four levels. Each level
/// costs stack in the YAML library (tens of KiB in a debug build), so the limit also
/// keeps a parse well inside a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 16;
/// Most YAML nodes in one file (a policy has a few dozen).
pub const MAX_NODES: usize = 20_000;
/// Most events that aliases (`*name`) may replay in one file: a small policy repeated by
/// aliases stays far below it, an alias bomb ("billion laughs") stops at it.
pub const MAX_ALIAS_REPLAY: usize = 10_000;

/// Parses every YAML document in `text`. Empty documents are skipped.
///
/// YAML is read as 1.2: only `true`/`false` are booleans (`yes`, `on`, `y` stay text, so a
/// boolean key can refuse them with a hint), and tags (`!!python/object`, `!custom`,
/// even `!!str`) are refused: a policy says what it means in plain values. Budgets bound
/// the work a hostile file can cause: nesting depth, node count, alias replay.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    // A repeated key is a mistake in a reviewed policy, never an override.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.strict_booleans = true;
    options.reject_unsupported_tags = true;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(crate::policy::source::MAX_FILE_BYTES as usize);
    budget.max_total_scalar_bytes = crate::policy::source::MAX_FILE_BYTES as usize;
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = 5 * MAX_NODES;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_REPLAY;
    options.alias_limits.max_replay_stack_depth = MAX_DEPTH;
    let docs: Vec<Option<Node>> = serde_saphyr::from_str_multiple_with_options::<
        Option<Node>,
        Vec<Option<Node>>,
    >(text, options)
    .map_err(|err| {
        let pos = err
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or_default();
        SyntaxError {
            // The library may not know a place (an error at the end of input); the
            // caller clamps it into the text.
            pos,
            message: first_line(&err.to_string()),
        }
    })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|n| n.value != Value::Null)
        .collect())
}

fn first_line(message: &str) -> String {
    // serde-saphyr appends " at line X column Y"; the caller prints the place itself.
    let line = message.lines().next().unwrap_or(message).trim();
    let line = match line.find(" at line ") {
        Some(i) => &line[..i],
        None => line,
    };
    // Say it in the user's terms, not the library's (which suggests changing its options).
    if line.starts_with("budget breached: Depth") || line.contains("recursion limit exceeded") {
        return format!(
            "mappings and lists nest deeper than {MAX_DEPTH} levels; a policy needs four"
        );
    }
    if line.contains("alias replay limit exceeded")
        || line.starts_with("budget breached: Nodes")
        || line.starts_with("budget breached: Events")
    {
        return format!(
            "the file expands to more than {MAX_NODES} values (aliases repeating aliases?); a policy needs a few dozen"
        );
    }
    if line.starts_with("budget breached: Documents") {
        return "the file holds more than 1024 YAML documents; split it".to_string();
    }
    if line.starts_with("budget breached") {
        return format!("the file is too large or complex to be a policy ({line})");
    }
    if let Some(tag) = line.strip_prefix("unsupported tag ") {
        return format!(
            "the tag {tag} is not allowed; write plain values (policies use no YAML tags)"
        );
    }
    if let Some(rest) = line.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!(
            "the key \"{key}\" appears twice in one mapping; each key may appear only once"
        );
    }
    line.to_string()
}

/// Text as a YAML scalar that reads back as exactly that string: plain when it is a
/// plain name or interval (`created_at`, `30 days`), else double-quoted with every
/// character YAML or a terminal could take for something else escaped (quotes,
/// backslashes, line breaks including U+0085/U+2028/U+2029, control characters).
pub fn scalar(text: &str) -> String {
    if is_plain_safe(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if crate::policy::error::is_unsafe_char(c) || !is_yaml_printable(c) => {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// YAML 1.2's printable characters (c-printable), which may stand unescaped in a
/// double-quoted scalar.
fn is_yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Whether `text` may be written as a plain scalar: lower-case words of letters, digits,
/// `_` and inner dots (`public.events`) separated by single spaces, that YAML reads as a
/// string (not a number, a boolean or null, in YAML 1.1 or 1.2).
fn is_plain_safe(text: &str) -> bool {
    const RESERVED: [&str; 12] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf", "_",
    ];
    let words_ok = !text.is_empty()
        && text.split(' ').all(|w| {
            !w.is_empty()
                && !w.starts_with('.')
                && !w.ends_with('.')
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        });
    let number_like = text.chars().all(|c| c.is_ascii_digit() || c == '_')
        || text.starts_with(|c: char| c.is_ascii_digit()) && !text.contains(' ');
    words_ok && !number_like && !RESERVED.contains(&text)
}

/// Text for one line of a YAML comment: line breaks and control characters are written
/// as escapes (`\n`, `\u{2028}`), so the comment stays one line and adds no key.
pub fn comment_text(text: &str) -> String {
    crate::policy::error::escape_controls(text)
}

thread_local! {
    /// How deep the node being read is nested, so that recursion stops at `MAX_DEPTH`
    /// whatever the parser's own limits (flow collections `[[[...` nest cheaply).
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One level of nesting, given back when the node is read (or fails).
struct DepthGuard;

impl DepthGuard {
    fn enter() -> Option<DepthGuard> {
        let depth = DEPTH.get() + 1;
        if depth > MAX_DEPTH {
            return None;
        }
        DEPTH.set(depth);
        Some(DepthGuard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

const TOO_DEEP: &str = "recursion limit exceeded";

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Some(_depth) = DepthGuard::enter() else {
            return Err(de::Error::custom(TOO_DEEP));
        };
        let spanned = Spanned::<serde_saphyr::Tagged<Value>>::deserialize(deserializer)?;
        if let Some(tag) = spanned.value.1 {
            // Known tags too (`!!str`, `!!binary`): a reviewer reads the plain value.
            let tag = tag.replace("tag:yaml.org,2002:", "!!");
            return Err(de::Error::custom(format!("unsupported tag `{tag}`")));
        }
        Ok(Node {
            pos: Pos {
                line: spanned.referenced.line(),
                column: spanned.referenced.column(),
            },
            value: spanned.value.0,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<KeyText>::deserialize(deserializer)?;
        Ok(Key {
            pos: Pos {
                line: spanned.referenced.line(),
                column: spanned.referenced.column(),
            },
            name: spanned.value.0,
        })
    }
}

/// Mapping keys are read as text whatever their YAML type (`1: x` has key "1").
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a plain mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v)
                    .map(Value::Int)
                    .unwrap_or(Value::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Key>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(node: &Node) -> &Vec<(Key, Node)> {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    #[test]
    fn keys_and_values_carry_their_line_and_column() {
        let docs = parse_documents("table: public.t\nretention:\n  keep: 15 seconds\n").unwrap();
        let top = map_of(&docs[0]);
        assert_eq!(top[0].0.name, "table");
        assert_eq!(top[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(top[0].1.pos, Pos { line: 1, column: 8 });
        let retention = map_of(&top[1].1);
        assert_eq!(retention[0].0.pos, Pos { line: 3, column: 3 });
        assert_eq!(retention[0].1.value, Value::Str("15 seconds".into()));
        assert_eq!(retention[0].1.pos, Pos { line: 3, column: 9 });
    }

    #[test]
    fn scalars_keep_their_yaml_type() {
        let docs = parse_documents("a: 4\nb: true\nc: \"4\"\nd:\ne: [1, x]\n").unwrap();
        let top = map_of(&docs[0]);
        assert_eq!(top[0].1.value, Value::Int(4));
        assert_eq!(top[1].1.value, Value::Bool(true));
        assert_eq!(top[2].1.value, Value::Str("4".into()));
        assert_eq!(top[3].1.value, Value::Null);
        assert!(matches!(top[4].1.value, Value::Seq(ref items) if items.len() == 2));
    }

    #[test]
    fn a_repeated_key_is_an_error_with_a_place() {
        let err = parse_documents("table: a.b\ntable: c.d\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err:?}");
        assert!(err.message.contains("\"table\" appears twice"), "{err:?}");
    }

    #[test]
    fn several_documents_are_read_and_empty_ones_skipped() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].pos.line, 5);
    }

    #[test]
    fn broken_yaml_reports_a_place() {
        let err = parse_documents("table: [unclosed\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
    }
}
