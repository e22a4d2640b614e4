//! Pieces of a fleet's combined report: the summary table in text and markdown, and the
//! heading of each database's section.

use std::io::{self, Write};

use super::targets::Target;

/// A table for a terminal: columns padded to their widest cell; `numeric` columns are
/// aligned right.
pub fn write_text_table(
    out: &mut dyn Write,
    headers: &[&str],
    numeric: &[bool],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i + 1 == cells.len();
            if numeric.get(i).copied().unwrap_or(false) {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                text.push_str("  ");
            }
        }
        text.trim_end().to_string()
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// A markdown table; cells are escaped.
pub fn write_markdown_table(
    out: &mut dyn Write,
    headers: &[&str],
    numeric: &[bool],
    rows: &[Vec<String>],
) -> io::Result<()> {
    writeln!(out, "| {} |", headers.join(" | "))?;
    let rule: Vec<&str> = (0..headers.len())
        .map(|i| {
            if numeric.get(i).copied().unwrap_or(false) {
                "---:"
            } else {
                "---"
            }
        })
        .collect();
    writeln!(out, "|{}|", rule.join("|"))?;
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| markdown_cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    Ok(())
}

/// Text that is safe in a markdown table cell and in HTML: one line, no `|`, no markup.
pub fn markdown_cell(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
}

/// The first line of an error, cut to fit a table cell.
pub fn first_line(error: &str) -> String {
    let line = error
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    crate::policy::error::shown(line, 100)
}

/// `== production: app@db1:5432/app (PROD_DATABASE_URL) ==`
pub fn text_heading(target: &Target) -> String {
    format!("== {} ({}) ==", target.label(), target.source)
}

/// `1 database`, `40 databases`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What a command keeps of each database, in any order, to write in the listed order: its
/// row of the summary table, its text section and its JSON entry, spooled.
pub struct Sections {
    spool: super::runner::Spool,
    entries: std::collections::BTreeMap<usize, Entry>,
}

struct Entry {
    row: Vec<String>,
    text: std::ops::Range<u64>,
    json: std::ops::Range<u64>,
}

impl Sections {
    pub fn new() -> io::Result<Sections> {
        Ok(Sections {
            spool: super::runner::Spool::new()?,
            entries: std::collections::BTreeMap::new(),
        })
    }

    pub fn add(
        &mut self,
        index: usize,
        row: Vec<String>,
        text: &[u8],
        json: &[u8],
    ) -> io::Result<()> {
        let text = self.spool.keep(text)?;
        let json = self.spool.keep(json)?;
        self.entries.insert(index, Entry { row, text, json });
        Ok(())
    }

    /// Summary table, then each database's section under its heading.
    pub fn write_text(
        &mut self,
        targets: &[Target],
        headers: &[&str],
        numeric: &[bool],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let rows: Vec<Vec<String>> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let entry = self.entries.get(&i)?;
                let mut row = vec![t.environment_name.clone(), t.database.clone()];
                row.extend(entry.row.iter().cloned());
                Some(row)
            })
            .collect();
        write_text_table(out, headers, numeric, &rows)?;
        for (i, target) in targets.iter().enumerate() {
            let Some(range) = self.entries.get(&i).map(|e| e.text.clone()) else {
                continue;
            };
            writeln!(out)?;
            writeln!(out, "{}", text_heading(target))?;
            self.spool.copy(&range, out)?;
        }
        Ok(())
    }

    /// `{"kind": ..., "format_version": 1, "summary": ..., "databases": [...]}` with the
    /// JSON entries in the listed order.
    pub fn write_json(
        &mut self,
        kind: &str,
        summary: &impl serde::Serialize,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        writeln!(out, "{{")?;
        writeln!(out, "  \"kind\": {},", serde_json::to_string(kind)?)?;
        writeln!(out, "  \"format_version\": 1,")?;
        let summary = serde_json::to_string_pretty(summary)?;
        writeln!(out, "  \"summary\": {},", indented(&summary, 2))?;
        write!(out, "  \"databases\": ")?;
        let ranges: Vec<std::ops::Range<u64>> =
            self.entries.values().map(|e| e.json.clone()).collect();
        self.spool.write_json_array(&ranges, out)?;
        writeln!(out, "}}")
    }
}

/// Pretty JSON moved right by `spaces` (its first line is placed by the caller); safe
/// because JSON text holds no raw line break.
pub fn indented(json: &str, spaces: usize) -> String {
    json.replace('\n', &format!("\n{}", " ".repeat(spaces)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up_and_cells_cannot_break_markdown() {
        let rows = vec![
            vec!["staging".into(), "a@h:1/x".into(), "2".into()],
            vec!["production".into(), "b|<x>`".into(), "10".into()],
        ];
        let mut text = Vec::new();
        write_text_table(
            &mut text,
            &["ENV", "DATABASE", "N"],
            &[false, false, true],
            &rows,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "ENV         DATABASE   N\nstaging     a@h:1/x    2\nproduction  b|<x>`    10\n"
        );
        let mut md = Vec::new();
        write_markdown_table(&mut md, &["env", "db", "n"], &[false, false, true], &rows).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("|---|---|---:|"), "{md}");
        assert!(md.contains("| production | b\\|&lt;x&gt;' | 10 |"), "{md}");
    }
}
