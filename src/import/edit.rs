//! `import --force` on a table that already has a policy: the keys import manages are
//! rewritten in the existing file, in place, by the positions the YAML parser records.
//! Everything else (comments, delete rules, schedule, other keys, key order, quoting,
//! line ends) stays byte for byte. Pure: text in, text out, unit-tested below.
//!
//! A value whose text is replaced keeps its line and any comment after it; a key that is
//! missing is added as a line at the end of its mapping (a missing block at the end of the
//! document's other blocks); a key the new values forbid (`archive_schema` when expired
//! partitions are no longer archived) loses its line. The edited text is parsed again and
//! must give the wanted values, with every other part of the policy unchanged; otherwise
//! the file is left alone and the reason given.

use std::path::Path;

use crate::model::{Config, Epoch, Expired, Policy, RuleFingerprint};
use crate::policy::interval::Interval;
use crate::policy::parse_policy_text;
use crate::policy::yaml::{Key, Node, Pos, Value, parse_documents, scalar};

/// One managed key that an edit changed, for the report (`retention.keep: 30 days -> 14 days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl std::fmt::Display for KeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        write!(
            f,
            "{}: {} -> {}",
            self.key,
            shown(&self.old),
            shown(&self.new)
        )
    }
}

/// The file's new text and what changed; no changes means the file already says it.
#[derive(Debug)]
pub struct Edited {
    pub text: String,
    pub changes: Vec<KeyChange>,
}

/// Rewrites, in `text` (the file `file`), the keys import manages of the policy `existing`
/// to the values of `wanted` (the imported policy of the same table).
pub fn rewrite_managed_keys(
    file: &Path,
    text: &str,
    config: &Config,
    existing: &Policy,
    wanted: &Policy,
) -> Result<Edited, String> {
    let docs =
        parse_documents(text).map_err(|e| format!("it is not valid YAML ({})", e.message))?;
    let doc = docs
        .get(existing.source.document - 1)
        .ok_or("its policy document was not found again")?;
    let top = block_map(text, doc, "the policy")?;
    let lines = Lines::new(text);
    let mut edits = Edits::default();
    let mut changes = Vec::new();

    let blocks = [
        ("partitioning", partitioning_keys(wanted)),
        ("retention", retention_keys(wanted)),
    ];
    for (index, (block, keys)) in blocks.iter().enumerate() {
        let mut place = Place {
            text,
            lines: &lines,
            edits: &mut edits,
            changes: &mut changes,
        };
        match entry(top, block) {
            Some((key, node)) => place.edit_block(block, key, node, keys)?,
            None => {
                // A missing block goes after the blocks before it (or after `table`).
                let (after_key, after_node) = blocks[..index]
                    .iter()
                    .rev()
                    .find_map(|(b, _)| entry(top, b))
                    .or_else(|| entry(top, "table"))
                    .ok_or("the policy has no table key")?;
                place.add_block(block, after_key, after_node, keys)?;
            }
        }
    }

    let edited = edits.apply(text, lines.newline());
    verify(file, text, &edited, config, existing, wanted)?;
    Ok(Edited {
        text: edited,
        changes,
    })
}

/// The text being edited, and the edits and changes found so far.
struct Place<'p, 't> {
    text: &'t str,
    lines: &'p Lines<'t>,
    edits: &'p mut Edits,
    changes: &'p mut Vec<KeyChange>,
}

impl Place<'_, '_> {
    /// Rewrites the managed keys of the existing block `block` (its key and value).
    fn edit_block(
        &mut self,
        block: &str,
        key: &Key,
        node: &Node,
        keys: &[(&'static str, Option<Want>)],
    ) -> Result<(), String> {
        let (text, lines) = (self.text, self.lines);
        let entries = block_map(text, node, block)?;
        let indent = entries
            .first()
            .map(|(k, _)| k.pos.column - 1)
            .unwrap_or(key.pos.column + 1);
        let after = entries
            .last()
            .map(|(k, v)| value_end_line(text, lines, k, v))
            .transpose()?
            .unwrap_or(key.pos.line);
        for (name, want) in keys {
            let path = format!("{block}.{name}");
            match (entry(entries, name), want) {
                (Some((k, v)), Some(want)) => {
                    let current = scalar_text(text, lines, k, v)?;
                    if !same_value(name, &v.value, &want.value) {
                        self.edits.replace(current.range, want.text.clone());
                        self.changes.push(KeyChange {
                            key: path,
                            old: Some(current.text),
                            new: Some(want.text.clone()),
                        });
                    }
                }
                (Some((k, v)), None) => {
                    let current = scalar_text(text, lines, k, v)?;
                    let start = lines.start_of(k.pos.line);
                    let end = lines.after(value_end_line(text, lines, k, v)?);
                    self.edits.replace(start..end, String::new());
                    self.changes.push(KeyChange {
                        key: path,
                        old: Some(current.text),
                        new: None,
                    });
                }
                (None, Some(want)) if want.write_when_absent => {
                    let line = format!("{}{name}: {}", " ".repeat(indent as usize), want.text);
                    self.edits.insert_line_after(lines, after, line);
                    self.changes.push(KeyChange {
                        key: path,
                        old: None,
                        new: Some(want.text.clone()),
                    });
                }
                (None, _) => {}
            }
        }
        Ok(())
    }

    /// Adds the block `block`, with the keys it needs written, after the entry
    /// (`after_key`, `after_node`) of the policy.
    fn add_block(
        &mut self,
        block: &str,
        after_key: &Key,
        after_node: &Node,
        keys: &[(&'static str, Option<Want>)],
    ) -> Result<(), String> {
        let written: Vec<(&str, &Want)> = keys
            .iter()
            .filter_map(|(name, want)| {
                want.as_ref()
                    .filter(|w| w.write_when_absent)
                    .map(|w| (*name, w))
            })
            .collect();
        if written.is_empty() {
            return Ok(());
        }
        let at = value_end_line(self.text, self.lines, after_key, after_node)?;
        let indent = " ".repeat(after_key.pos.column as usize - 1);
        self.edits
            .insert_line_after(self.lines, at, format!("{indent}{block}:"));
        for (name, want) in written {
            self.edits.insert_line_after(
                self.lines,
                at,
                format!("{indent}  {name}: {}", want.text),
            );
            self.changes.push(KeyChange {
                key: format!("{block}.{name}"),
                old: None,
                new: Some(want.text.clone()),
            });
        }
        Ok(())
    }
}

/// The value import wants for one key: its text as written, and its parsed form for
/// comparing with what the file has.
struct Want {
    text: String,
    value: Value,
    /// Write the key when the file lacks it (false: the absent key means this value).
    write_when_absent: bool,
}

fn want(value: Value, text: String, write_when_absent: bool) -> Option<Want> {
    Some(Want {
        text,
        value,
        write_when_absent,
    })
}

fn text_want(text: &str) -> Option<Want> {
    want(Value::Str(text.to_string()), scalar(text), true)
}

fn bool_want(value: bool, default: bool) -> Option<Want> {
    want(Value::Bool(value), value.to_string(), value != default)
}

/// partitioning's managed keys in the order they are written; `start` is the user's.
fn partitioning_keys(policy: &Policy) -> Vec<(&'static str, Option<Want>)> {
    let Some(p) = &policy.partitioning else {
        return Vec::new();
    };
    vec![
        ("column", text_want(p.column.as_str())),
        ("interval", text_want(&p.interval.to_string())),
        (
            "premake",
            want(
                Value::Int(i64::from(p.premake)),
                p.premake.to_string(),
                p.premake != crate::policy::parse::DEFAULT_PREMAKE,
            ),
        ),
        (
            "epoch",
            want(
                Value::Str(p.epoch.as_str().to_string()),
                p.epoch.as_str().to_string(),
                p.epoch != Epoch::None,
            ),
        ),
        ("default_partition", bool_want(p.default_partition, true)),
        (
            "infinite_time_partitions",
            bool_want(p.infinite_time_partitions, true),
        ),
    ]
}

/// retention's managed keys; `archive_schema` is removed unless partitions are archived,
/// and `keep_index` is false whenever they are dropped (it has no effect then).
fn retention_keys(policy: &Policy) -> Vec<(&'static str, Option<Want>)> {
    let Some(r) = &policy.retention else {
        return Vec::new();
    };
    let archive = match &r.expired {
        Expired::Archive { schema } => text_want(schema.as_str()),
        _ => None,
    };
    vec![
        ("keep", text_want(&r.keep.to_string())),
        (
            "expired",
            want(
                Value::Str(r.expired.name().to_string()),
                r.expired.name().to_string(),
                r.expired != Expired::Drop,
            ),
        ),
        ("archive_schema", archive),
        ("keep_index", bool_want(r.keep_index, false)),
    ]
}

/// Whether the file's value already says what import wants: intervals by value
/// (`30d` is `30 days`), everything else exactly.
fn same_value(key: &str, have: &Value, want: &Value) -> bool {
    if matches!(key, "interval" | "keep")
        && let (Value::Str(h), Value::Str(w)) = (have, want)
        && let (Ok(h), Ok(w)) = (
            crate::policy::interval::parse_interval(h),
            crate::policy::interval::parse_interval(w),
        )
    {
        return same_interval(&h, &w);
    }
    have == want
}

/// Equal as pg_partman uses them: the same months, and the same length otherwise
/// (`24 hours` is `1 day`, `30 days` is not `1 month`).
fn same_interval(a: &Interval, b: &Interval) -> bool {
    a.months == b.months && a.comparable() == b.comparable()
}

/// The entries of a block-style mapping.
fn block_map<'n>(text: &str, node: &'n Node, what: &str) -> Result<&'n [(Key, Node)], String> {
    match &node.value {
        Value::Map(entries) => {
            let first = Lines::new(text)
                .offset(node.pos)
                .and_then(|o| text[o..].chars().next());
            if first == Some('{') {
                return Err(format!(
                    "{what} is written in flow style ({{...}}); edit that file by hand"
                ));
            }
            Ok(entries)
        }
        _ => Err(format!("{what} is not a mapping")),
    }
}

fn entry<'n>(entries: &'n [(Key, Node)], name: &str) -> Option<(&'n Key, &'n Node)> {
    entries
        .iter()
        .find(|(k, _)| k.name == name)
        .map(|(k, v)| (k, v))
}

/// A scalar's text in the file and its byte range.
struct ScalarText {
    range: std::ops::Range<usize>,
    text: String,
}

/// The extent of the scalar that starts at `node.pos`: a quoted string up to its closing
/// quote, or a plain scalar up to a comment or the end of its line. Anything else (a
/// block scalar, an alias, a nested collection) is not edited.
fn scalar_text(text: &str, lines: &Lines, key: &Key, node: &Node) -> Result<ScalarText, String> {
    if node.pos.line != key.pos.line {
        return Err(format!(
            "the value of {} does not stand on its key's line; edit that file by hand",
            key.name
        ));
    }
    let start = lines
        .offset(node.pos)
        .ok_or("a value's place is outside the file")?;
    let rest = &text[start..];
    let line_end = rest.find(['\n', '\r']).unwrap_or(rest.len());
    let line = &rest[..line_end];
    let len = match line.chars().next() {
        Some('"') => closing_quote(line, '"', true)?,
        Some('\'') => closing_quote(line, '\'', false)?,
        Some('|' | '>' | '&' | '*' | '[' | '{' | '!') | None => {
            return Err("a managed key's value is not a plain or quoted scalar on one line; edit that file by hand".into());
        }
        Some(_) => {
            let comment = line.find(" #").unwrap_or(line.len());
            line[..comment].trim_end().len()
        }
    };
    Ok(ScalarText {
        range: start..start + len,
        text: line[..len].to_string(),
    })
}

/// Length of a quoted scalar on one line, closing quote included.
fn closing_quote(line: &str, quote: char, backslash_escapes: bool) -> Result<usize, String> {
    let mut chars = line.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if backslash_escapes && c == '\\' {
            chars.next();
        } else if c == quote {
            if !backslash_escapes && chars.peek().map(|(_, c)| *c) == Some(quote) {
                chars.next();
                continue;
            }
            return Ok(i + c.len_utf8());
        }
    }
    Err("a quoted value continues on the next line; edit that file by hand".into())
}

/// The last line of a mapping entry's value: the key's line for a one-line scalar, the
/// last line of the last entry or item of a block collection.
fn value_end_line(text: &str, lines: &Lines, key: &Key, node: &Node) -> Result<u64, String> {
    match &node.value {
        Value::Map(entries) => match entries.last() {
            Some((k, last)) => value_end_line(text, lines, k, last),
            None => Ok(key.pos.line),
        },
        Value::Seq(items) => match items.last() {
            Some(last) => item_end_line(text, lines, last),
            None => Ok(key.pos.line),
        },
        _ => {
            scalar_text(text, lines, key, node)?;
            Ok(node.pos.line)
        }
    }
}

/// The last line of a list item (a delete rule is a mapping).
fn item_end_line(text: &str, lines: &Lines, node: &Node) -> Result<u64, String> {
    match &node.value {
        Value::Map(entries) => match entries.last() {
            Some((k, last)) => value_end_line(text, lines, k, last),
            None => Ok(node.pos.line),
        },
        _ => Err("a list item is not a mapping; edit that file by hand".into()),
    }
}

/// Line starts of a text, with CRLF, LF or CR line ends.
struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
    len: usize,
    newline: &'static str,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Lines<'t> {
        let mut starts = vec![0];
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 2;
                    continue;
                }
                b'\r' | b'\n' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        let newline = if text.contains("\r\n") {
            "\r\n"
        } else if text.contains('\n') || !text.contains('\r') {
            "\n"
        } else {
            "\r"
        };
        Lines {
            text,
            starts,
            len: text.len(),
            newline,
        }
    }

    fn newline(&self) -> &'static str {
        self.newline
    }

    /// Byte offset where a 1-based line starts.
    fn start_of(&self, line: u64) -> usize {
        self.starts
            .get(line.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(self.len)
    }

    /// Byte offset just after a line and its line end.
    fn after(&self, line: u64) -> usize {
        self.starts.get(line as usize).copied().unwrap_or(self.len)
    }

    /// Byte offset of a 1-based (line, column in characters) place.
    fn offset(&self, pos: Pos) -> Option<usize> {
        let start = *self.starts.get(pos.line.checked_sub(1)? as usize)?;
        let column = pos.column.checked_sub(1)? as usize;
        let rest = &self.text[start..];
        match rest.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == column => Some(self.len),
            None => None,
        }
    }
}

/// Replacements and insertions by byte offset, applied from the end.
#[derive(Default)]
struct Edits {
    /// (start, end, replacement); a replacement starting with NUL is a line to insert.
    items: Vec<(usize, usize, String)>,
}

impl Edits {
    fn replace(&mut self, range: std::ops::Range<usize>, text: String) {
        self.items.push((range.start, range.end, text));
    }

    /// A new line after 1-based `line` (marked as a line to insert; the line end is added
    /// when the edits are applied, in the file's own style).
    fn insert_line_after(&mut self, lines: &Lines, line: u64, text: String) {
        let at = lines.after(line);
        self.items.push((at, at, format!("\u{0}{text}")));
    }

    fn apply(mut self, text: &str, newline: &str) -> String {
        // Later places first; at one place, the last added goes in first, so that lines
        // inserted at the same place keep the order they were added in.
        let mut indexed: Vec<(usize, (usize, usize, String))> =
            self.items.drain(..).enumerate().collect();
        indexed.sort_by_key(|(i, (start, end, _))| std::cmp::Reverse((*start, *end, *i)));
        let mut out = text.to_string();
        for (_, (start, end, replacement)) in indexed {
            let replacement = match replacement.strip_prefix('\u{0}') {
                Some(line) => {
                    // A line inserted after the last line of a file without a final line end.
                    let lead =
                        if start == out.len() && !out.is_empty() && !out.ends_with(['\n', '\r']) {
                            newline
                        } else {
                            ""
                        };
                    format!("{lead}{line}{newline}")
                }
                None => replacement,
            };
            out.replace_range(start..end, &replacement);
        }
        out
    }
}

/// The edited text must read back as the wanted policy in every key import manages, and
/// as the existing one in every other (start, delete rules, schedule, time zone), with the
/// file's other documents and errors as they were.
fn verify(
    file: &Path,
    before: &str,
    after: &str,
    config: &Config,
    existing: &Policy,
    wanted: &Policy,
) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "rewriting the keys import manages would {why}; edit that file by hand"
        ))
    };
    let (old_policies, old_errors) = parse_policy_text(file, before, config);
    let (new_policies, new_errors) = parse_policy_text(file, after, config);
    if new_errors.len() != old_errors.len() || new_policies.len() != old_policies.len() {
        return refuse("not read back as a valid policy");
    }
    let table = existing.table.to_string();
    for (old, new) in old_policies.iter().zip(&new_policies) {
        if old.table.to_string() != table {
            if old.hash() != new.hash() {
                return refuse("change another policy of the file");
            }
            continue;
        }
        if new.table != wanted.table {
            return refuse("change the table");
        }
        let managed_same = match (&new.partitioning, &wanted.partitioning) {
            (Some(n), Some(w)) => {
                n.column == w.column
                    && same_interval(&n.interval, &w.interval)
                    && n.premake == w.premake
                    && n.epoch == w.epoch
                    && n.default_partition == w.default_partition
                    && n.infinite_time_partitions == w.infinite_time_partitions
            }
            (n, w) => n.is_none() && w.is_none(),
        } && match (&new.retention, &wanted.retention) {
            (Some(n), Some(w)) => {
                same_interval(&n.keep, &w.keep)
                    && n.expired == w.expired
                    && n.keep_index == w.keep_index
            }
            (n, w) => n.is_none() && w.is_none(),
        };
        if !managed_same {
            return refuse("not give the imported settings");
        }
        let start = |p: &Policy| p.partitioning.as_ref().and_then(|p| p.start.clone());
        let rules = |p: &Policy| {
            p.deletes
                .iter()
                .map(RuleFingerprint::of)
                .collect::<Vec<_>>()
        };
        if start(new) != start(existing)
            || rules(new) != rules(existing)
            || new.schedule != existing.schedule
            || new.time_zone != existing.time_zone
        {
            return refuse("change keys import does not manage");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::parse_config;

    fn config() -> Config {
        parse_config(Path::new("retentionc.yaml"), "", PathBuf::from(".")).unwrap()
    }

    fn policies(text: &str) -> Vec<Policy> {
        let (policies, errors) = parse_policy_text(Path::new("policies/p.yaml"), text, &config());
        assert!(errors.is_empty(), "{errors:?}\n{text}");
        policies
    }

    /// `existing` rewritten to the values of the policy `wanted` (one document).
    fn rewrite(existing: &str, wanted: &str) -> Result<Edited, String> {
        let current = policies(existing);
        let wanted = policies(wanted).remove(0);
        let policy = current
            .iter()
            .find(|p| p.table == wanted.table)
            .expect("the table has a policy");
        rewrite_managed_keys(
            Path::new("policies/p.yaml"),
            existing,
            &config(),
            policy,
            &wanted,
        )
    }

    const USERS_OWN: &str = "\
# Orders: kept a month; test rows go daily.
table: public.orders
partitioning:
  column: created_at   # the insert time
  interval: 1 day
  premake: 4
retention:
  keep: 30 days   # legal asked for 30
  expired: drop
deletes:
  - name: test_rows
    where: \"customer = 'test'\"
    older_than: 1 day
schedule: \"*/5 * * * *\"  # every five minutes
";

    #[test]
    fn only_the_managed_values_that_differ_are_rewritten_and_everything_else_stays() {
        let wanted = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\n  premake: 6\nretention:\n  keep: 14 days\n  expired: drop\n";
        let edited = rewrite(USERS_OWN, wanted).unwrap();
        assert_eq!(
            edited.text,
            USERS_OWN
                .replace("premake: 4", "premake: 6")
                .replace("keep: 30 days   #", "keep: 14 days   #")
        );
        let shown: Vec<String> = edited.changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "partitioning.premake: 4 -> 6",
                "retention.keep: 30 days -> 14 days"
            ]
        );
        // The same values spelt otherwise are no change.
        let same = rewrite(
            &USERS_OWN
                .replace("30 days", "720 hours")
                .replace("1 day\n  premake", "24h\n  premake"),
            &wanted
                .replace("14 days", "30 days")
                .replace("premake: 6", "premake: 4"),
        )
        .unwrap();
        assert!(same.changes.is_empty(), "{:?}", same.changes);
    }

    #[test]
    fn missing_keys_are_added_to_their_mapping_and_forbidden_ones_removed() {
        let archived = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: 30 days\n  expired: archive\n  archive_schema: archive   # for the auditors\n  keep_index: true\nschedule: \"@daily\"\n";
        // To drop: archive_schema goes (line and comment), keep_index becomes false.
        let wanted = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\n  infinite_time_partitions: false\nretention:\n  keep: 30 days\n  expired: drop\n";
        let edited = rewrite(archived, wanted).unwrap();
        assert_eq!(
            edited.text,
            "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\n  infinite_time_partitions: false\nretention:\n  keep: 30 days\n  expired: drop\n  keep_index: false\nschedule: \"@daily\"\n"
        );
        // And back: archive_schema and keep_index are written again.
        let wanted_archive = archived.replace("   # for the auditors", "");
        let back = rewrite(&edited.text, &wanted_archive).unwrap();
        assert_eq!(
            back.text,
            "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\n  infinite_time_partitions: true\nretention:\n  keep: 30 days\n  expired: archive\n  keep_index: true\n  archive_schema: archive\nschedule: \"@daily\"\n"
        );
    }

    #[test]
    fn a_missing_block_is_added_after_the_blocks_before_it() {
        let deletes_only = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\ndeletes:\n  - name: old\n    where: \"true\"\n    older_than: 90 days\n";
        let wanted = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: 30 days\n  expired: detach\n";
        let edited = rewrite(deletes_only, wanted).unwrap();
        assert_eq!(
            edited.text,
            "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: 30 days\n  expired: detach\ndeletes:\n  - name: old\n    where: \"true\"\n    older_than: 90 days\n"
        );
    }

    #[test]
    fn line_ends_quotes_and_other_documents_are_kept() {
        let two = "table: public.other\ndeletes:\n  - name: x\n    where: \"true\"\r\n---\r\ntable: \"public.orders\"\r\npartitioning:\r\n  column: 'created_at'\r\n  interval: \"1 day\"\r\n  premake: 4\r\nretention:\r\n  keep: '30 days'\r\n";
        let wanted = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 hour\n  premake: 4\n  default_partition: false\nretention:\n  keep: 2 days\n";
        let edited = rewrite(two, wanted).unwrap();
        assert_eq!(
            edited.text,
            "table: public.other\ndeletes:\n  - name: x\n    where: \"true\"\r\n---\r\ntable: \"public.orders\"\r\npartitioning:\r\n  column: 'created_at'\r\n  interval: 1 hour\r\n  premake: 4\r\n  default_partition: false\r\nretention:\r\n  keep: 2 days\r\n"
        );
    }

    #[test]
    fn what_cannot_be_edited_in_place_is_refused_and_says_why() {
        let wanted = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: 2 days\n";
        let flow = "table: public.orders\npartitioning: {column: created_at, interval: 1 day}\nretention:\n  keep: 30 days\n";
        assert!(rewrite(flow, wanted).unwrap_err().contains("flow style"));
        let block_scalar = "table: public.orders\npartitioning:\n  column: created_at\n  interval: 1 day\nretention:\n  keep: >\n    30 days\n";
        assert!(
            rewrite(block_scalar, wanted)
                .unwrap_err()
                .contains("edit that file by hand")
        );
    }
}
