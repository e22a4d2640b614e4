//! Policy and config files -> checked text, before any YAML is parsed.
//!
//! A file is refused, with a place where one exists, when it lies outside the project
//! folder (through a symbolic link), is not a regular file, is larger than
//! `MAX_FILE_BYTES`, is not UTF-8, or holds control characters. A UTF-8 byte-order mark
//! is dropped, so that line 1 column 1 is still the first character a user sees.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::policy::error::{PolicyError, is_unsafe_char};
use crate::policy::yaml::Pos;

/// Largest policy or config file read: 1 MiB, some thousand policies. Larger files are
/// refused before they are read, so no parser ever sees them.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a file's bytes are not policy text, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct TextError {
    pub pos: Pos,
    pub message: String,
    /// The line holding the problem, decoded leniently, for display.
    pub line_text: Option<String>,
}

/// Reads the file at `path` (named `shown` in messages). With `root`, the file must
/// resolve (links followed) to a place inside that folder.
pub fn read_source(path: &Path, shown: &Path, root: Option<&Path>) -> Result<String, PolicyError> {
    if let Some(root) = root {
        resolve_inside(root, path).map_err(|why| file_error(shown, why))?;
    }
    let metadata = std::fs::metadata(path).map_err(|e| {
        if std::fs::symlink_metadata(path).is_ok() {
            file_error(
                shown,
                "is a symbolic link to a file that does not exist".into(),
            )
        } else {
            file_error(shown, format!("cannot read the file: {e}"))
        }
    })?;
    read_text(path, shown, &metadata)
}

/// Reads a file listed in a folder that `resolve_inside` placed inside the project folder
/// `root`: only a symbolic link can lead out of it, so only a link is resolved (and must
/// resolve inside `root`), which spares the resolution of every other file.
pub fn read_listed_source(path: &Path, shown: &Path, root: &Path) -> Result<String, PolicyError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.file_type().is_symlink() => read_text(path, shown, &metadata),
        _ => read_source(path, shown, Some(root)),
    }
}

/// The text of the file at `path`, whose `metadata` (links followed) was just read.
fn read_text(
    path: &Path,
    shown: &Path,
    metadata: &std::fs::Metadata,
) -> Result<String, PolicyError> {
    if !metadata.is_file() {
        return Err(file_error(
            shown,
            "is not a regular file; policies are plain YAML files".into(),
        ));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(file_error(shown, too_large(metadata.len())));
    }
    // Room for the whole file and one byte more, so that it is read in one go.
    let mut bytes = Vec::with_capacity(metadata.len() as usize + 1);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| file_error(shown, format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        // The file grew between the size check and the read.
        return Err(file_error(shown, too_large(bytes.len() as u64)));
    }
    decode_text(&bytes).map_err(|e| PolicyError {
        file: shown.to_path_buf(),
        pos: e.pos,
        key: String::new(),
        message: e.message,
        line_text: e.line_text,
    })
}

/// An error about the file as a whole, placed at its start.
fn file_error(shown: &Path, message: String) -> PolicyError {
    PolicyError {
        file: shown.to_path_buf(),
        pos: Pos { line: 1, column: 1 },
        key: String::new(),
        message,
        line_text: None,
    }
}

fn too_large(bytes: u64) -> String {
    format!(
        "the file is {bytes} bytes; policy files are at most {MAX_FILE_BYTES} bytes (1 MiB): split it, one policy per file"
    )
}

/// Bytes -> text: UTF-8 without control characters; a leading byte-order mark is dropped.
pub fn decode_text(bytes: &[u8]) -> Result<String, TextError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // Every byte before the bad one is valid UTF-8, so the place is exact.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let pos = position_after(prefix);
            let bad = bytes[e.valid_up_to()];
            return Err(TextError {
                pos,
                message: format!(
                    "the file is not valid UTF-8: byte 0x{bad:02X} at line {} column {} starts no UTF-8 character; policy files are UTF-8 text",
                    pos.line, pos.column
                ),
                line_text: Some(lenient_line(bytes, e.valid_up_to())),
            });
        }
    };
    for (offset, c) in text.char_indices() {
        if is_unsafe_char(c) && !matches!(c, '\t' | '\n' | '\r') {
            let pos = position_after(&text[..offset]);
            let name = match c {
                '\0' => "a NUL byte".to_string(),
                '\u{1b}' => "an escape character (U+001B, which starts terminal escape sequences)"
                    .to_string(),
                _ => format!("the invisible or control character U+{:04X}", c as u32),
            };
            return Err(TextError {
                pos,
                message: format!(
                    "{name} at line {} column {}; policy files hold printable text only (write it as an escape such as \"\\u{:04X}\" inside a double-quoted string if it is really meant)",
                    pos.line, pos.column, c as u32
                ),
                line_text: Some(lenient_line(text.as_bytes(), offset)),
            });
        }
    }
    Ok(text.to_string())
}

/// The 1-based place of the character that follows `prefix`, counting lines as YAML
/// does (`\n`, `\r\n`, lone `\r`) and columns in characters.
pub fn position_after(prefix: &str) -> Pos {
    let mut line = 1;
    let mut column = 1;
    let mut previous = '\0';
    for c in prefix.chars() {
        match c {
            '\n' if previous == '\r' => {}
            '\n' | '\r' => {
                line += 1;
                column = 1;
            }
            _ => column += 1,
        }
        previous = c;
    }
    Pos { line, column }
}

/// The line around byte `at`, decoded with replacement characters.
fn lenient_line(bytes: &[u8], at: usize) -> String {
    let start = bytes[..at]
        .iter()
        .rposition(|b| matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    let end = bytes[at..]
        .iter()
        .position(|b| matches!(b, b'\n' | b'\r'))
        .map_or(bytes.len(), |i| at + i);
    String::from_utf8_lossy(&bytes[start..end]).into_owned()
}

/// `path` with links followed, when it lies inside `root` (also with links followed);
/// a message saying where it leads otherwise. Parts of `path` that do not exist yet
/// (a generated/ folder before the first compile) are allowed, but not `..` among them.
pub fn resolve_inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let root = std::fs::canonicalize(root)
        .map_err(|e| format!("cannot resolve the project folder {}: {e}", root.display()))?;
    let mut existing = path.to_path_buf();
    let mut missing: Vec<PathBuf> = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(&existing) {
            Ok(resolved) => break resolved,
            Err(_) => {
                let Some(name) = existing.file_name().map(PathBuf::from) else {
                    return Err("leaves the project folder".to_string());
                };
                if std::fs::symlink_metadata(&existing).is_ok() {
                    return Err("is a symbolic link to a place that does not exist".to_string());
                }
                missing.push(name);
                existing = match existing.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                    _ => PathBuf::from("."),
                };
            }
        }
    };
    let mut full = resolved;
    for part in missing.iter().rev() {
        if part
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err("leaves the project folder".to_string());
        }
        full.push(part);
    }
    if full.starts_with(&root) {
        Ok(full)
    } else {
        Err(format!(
            "leads outside the project folder (to {}); policy files, the policies folder and the generated folder must lie inside the folder of retentionc.yaml (symbolic links within it are fine)",
            full.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_is_dropped_and_crlf_kept() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFa: 1\r\n").unwrap(), "a: 1\r\n");
    }

    #[test]
    fn invalid_utf8_is_placed_at_its_first_bad_byte() {
        let err = decode_text(b"a: 1\nb: \xC3\xA9\xFFx\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, column: 5 });
        assert!(err.message.contains("0xFF"), "{}", err.message);
        let err = decode_text(b"a: 1\r\nbb: \xC3(\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, column: 5 });
    }

    #[test]
    fn control_characters_are_refused_with_their_place() {
        let err = decode_text(b"a: 1\nb: x\x00y\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, column: 5 });
        assert!(err.message.starts_with("a NUL byte"), "{}", err.message);
        let err = decode_text("a: \u{202e}x".as_bytes()).unwrap_err();
        assert_eq!(err.pos, Pos { line: 1, column: 4 });
        assert!(decode_text(b"a:\tb\n").is_ok());
    }

    #[test]
    fn positions_count_lines_as_yaml_does() {
        assert_eq!(position_after("a\r\nb\rc\nd"), Pos { line: 4, column: 2 });
    }
}
