//! Errors found in policy and config files, each with its place and key.

use std::fmt;
use std::path::PathBuf;

use crate::policy::yaml::Pos;

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
            self.file.display(),
            self.pos.line,
            self.pos.column
        )?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(line) = &self.line_text {
            let number = self.pos.line.to_string();
            let gutter = " ".repeat(number.len());
            let caret_at = " ".repeat(self.pos.column.saturating_sub(1) as usize);
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
