//! Walks a YAML node tree, collecting every error with its file, place and key.
//!
//! Shared by policy files and retentionc.yaml: typed getters that report "expected X,
//! found Y", unknown keys with a suggestion, and a record of where each key stood.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::policy::error::{PolicyError, line_count, source_line};
use crate::policy::suggest;
use crate::policy::yaml::{Key, Node, Pos, Value};

pub struct Reader<'a> {
    file: PathBuf,
    text: &'a str,
    pub errors: Vec<PolicyError>,
    /// Where every key that was read stood, by dotted path.
    pub positions: BTreeMap<String, Pos>,
}

/// The entries of one mapping, after unknown keys were reported.
pub struct Fields<'n> {
    path: String,
    entries: Vec<(&'n Key, &'n Node)>,
    pos: Pos,
    /// Allowed keys that an unknown key of this mapping was taken for ("did you mean").
    suggested: Vec<String>,
    /// Whether the mapping had a key that is not allowed (reported already).
    unknown: bool,
}

impl<'n> Fields<'n> {
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| *v)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Dotted path of a key of this mapping.
    pub fn path_of(&self, name: &str) -> String {
        join(&self.path, name)
    }

    pub fn pos(&self) -> Pos {
        self.pos
    }

    /// Whether an unknown key of this mapping was reported as a misspelling of `name`:
    /// then "missing key `name`" would only repeat that error.
    pub fn was_misspelt(&self, name: &str) -> bool {
        self.suggested.iter().any(|s| s == name)
    }

    /// Whether an unknown key was reported for this mapping.
    pub fn had_unknown(&self) -> bool {
        self.unknown
    }
}

pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl<'a> Reader<'a> {
    pub fn new(file: &Path, text: &'a str) -> Reader<'a> {
        Reader {
            file: file.to_path_buf(),
            text,
            errors: Vec::new(),
            positions: BTreeMap::new(),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        let pos = self.clamp(pos);
        let line_text = source_line(self.text, pos.line).map(str::to_string);
        self.errors.push(PolicyError {
            file: self.file.clone(),
            pos,
            key: key.to_string(),
            message: message.into(),
            line_text,
        });
    }

    /// `pos` moved inside the text: a parser may report no place (0:0) or the end of input.
    fn clamp(&self, pos: Pos) -> Pos {
        let line = pos.line.clamp(1, line_count(self.text));
        let length = source_line(self.text, line).map_or(0, |l| l.chars().count()) as u64;
        Pos {
            line,
            column: pos.column.clamp(1, length + 1),
        }
    }

    /// The node as a mapping with only `allowed` keys; reports others with a suggestion.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            let what = if path.is_empty() {
                "a policy"
            } else {
                "a mapping"
            };
            self.error(
                node.pos,
                path,
                format!(
                    "expected {what} (key: value lines), found {}",
                    node.value.kind()
                ),
            );
            return None;
        };
        let mut kept = Vec::new();
        let mut suggested = Vec::new();
        let mut unknown = false;
        for (key, value) in entries {
            let key_path = join(path, &key.name);
            if allowed.contains(&key.name.as_str()) {
                self.positions.insert(key_path, key.pos);
                kept.push((key, value));
            } else {
                unknown = true;
                let hint = match suggest::nearest(&key.name, allowed) {
                    Some(near) => {
                        suggested.push(near.to_string());
                        format!("; did you mean \"{near}\"?")
                    }
                    None => format!("; expected one of: {}", allowed.join(", ")),
                };
                self.error(
                    key.pos,
                    &key_path,
                    format!("unknown key \"{}\"{hint}", key.name),
                );
            }
        }
        Some(Fields {
            path: path.to_string(),
            entries: kept,
            pos: node.pos,
            suggested,
            unknown,
        })
    }

    pub fn require<'n>(&mut self, fields: &Fields<'n>, name: &str, what: &str) -> Option<&'n Node> {
        let node = fields.get(name);
        if node.is_none() && !fields.was_misspelt(name) {
            let path = fields.path_of(name);
            let owner = if fields.path.is_empty() {
                "the policy".to_string()
            } else {
                format!("\"{}\"", fields.path)
            };
            // Point at the mapping's own key (`retention:`), where the missing key belongs;
            // list items and the top level have none, so their first line is shown.
            let pos = self
                .positions
                .get(&fields.path)
                .copied()
                .unwrap_or(fields.pos);
            self.error(
                pos,
                &path,
                format!("missing required key \"{name}\" in {owner} ({what})"),
            );
        }
        node
    }

    pub fn string(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected {what}, found {} ({other})", other.kind()),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s)
                if ["y", "yes", "n", "no", "on", "off"]
                    .contains(&s.to_ascii_lowercase().as_str()) =>
            {
                self.error(
                    node.pos,
                    path,
                    format!("expected true or false, found \"{s}\"; YAML 1.1 spellings (yes/no, on/off, y/n) are not booleans in a policy: write true or false"),
                );
                None
            }
            other => {
                self.error(
                    node.pos,
                    path,
                    format!("expected true or false, found {} ({other})", other.kind()),
                );
                None
            }
        }
    }

    /// A whole number within `range`.
    pub fn integer(
        &mut self,
        node: &Node,
        path: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        match &node.value {
            Value::Int(i) if range.contains(i) => Some(*i),
            Value::Int(i) => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "expected a whole number from {} to {}, found {i}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            other => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "expected a whole number from {} to {}, found {} ({other})",
                        range.start(),
                        range.end(),
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    /// One of `names`, with a suggestion when misspelt.
    pub fn choice(&mut self, node: &Node, path: &str, names: &[&str]) -> Option<String> {
        let text = self.string(node, path, &format!("one of {}", names.join(", ")))?;
        if names.contains(&text.as_str()) {
            return Some(text);
        }
        let hint = suggest::nearest(&text, names)
            .map(|n| format!(" (did you mean \"{n}\"?)"))
            .unwrap_or_default();
        self.error(
            node.pos,
            path,
            format!(
                "expected one of {}, found \"{text}\"{hint}",
                names.join(", ")
            ),
        );
        None
    }

    /// Runs a text parser on a string value, reporting its message at the value.
    pub fn parsed<T>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.string(node, path, what)?;
        match parse(&text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(node.pos, path, message);
                None
            }
        }
    }
}
