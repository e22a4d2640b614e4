//! A delete rule's `where`: parsed into an expression, checked against a whitelist of the
//! forms a delete predicate needs, and printed back as one canonical text.
//!
//! The user's text is never used after this point. PostgreSQL and any other parser can
//! read the same text differently (operators that run into `--` or `/*`, backslashes
//! under `standard_conforming_strings = off`, dollar quotes, `U&` escapes, nested
//! comments, ...), so retentionc parses the text once, refuses every form it does not
//! know, and from then on uses only the text it printed itself: in generated/, in the
//! prune procedure, in plan's EXPLAIN. That text is checked to
//! - read the same to the parser again (printing it once more gives the same text, and
//!   the same functions, operators, types and tables),
//! - hold no comment marker, semicolon, dollar quote or backslash outside its literals,
//! - hold backslashes only inside `E'...'` literals (with each backslash doubled), which
//!   PostgreSQL reads the same whatever `standard_conforming_strings` says.
//!
//! The functions, operators, cast types and tables the condition uses are carried next
//! to the text as typed values, for plan's check against the live catalog
//! (`plan::volatility`). Functions that are dangerous whatever their declared volatility
//! (pg_sleep, pg_terminate_backend, anything in pg_cron's schema, ...) are refused here,
//! without a database.
//!
//! The canonical text is part of the plan's rule fingerprint and of the policy hash: its
//! printing rules (in `canonical`) must stay stable across retentionc releases.

mod canonical;

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Longest `where` accepted, in bytes: a delete predicate is a line or two.
pub const MAX_CONDITION_BYTES: usize = 4096;

/// The search_path the condition is resolved and run with: functions and operators
/// named without a schema are looked up in pg_catalog only.
pub const CONDITION_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// A checked delete condition: its canonical text and what it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The expression as retentionc prints it; the only text of it that reaches SQL.
    pub canonical: String,
    /// Functions called, by name and number of arguments.
    pub functions: Vec<QualifiedFunction>,
    /// Operators used, written or implied (`IN` and `CASE x WHEN` compare with `=`,
    /// `BETWEEN` with `>=` and `<=`, `LIKE` with `~~`, ...).
    pub operators: Vec<OperatorUse>,
    /// Types cast to, as PostgreSQL names them (`timestamp with time zone`, `text[]`).
    pub cast_types: Vec<String>,
    /// Tables read by subqueries.
    pub relations: Vec<RelationName>,
}

/// The canonical text is what a policy's hash and a rule's fingerprint are taken over.
impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl Condition {
    /// `(canonical)`: how the condition is embedded in a larger expression.
    pub fn parenthesized(&self) -> String {
        format!("({})", self.canonical)
    }
}

/// A function call: `schema` is None when the name was written without one (it then
/// resolves in pg_catalog only). Names are as PostgreSQL stores them (folded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedFunction {
    pub schema: Option<String>,
    pub name: String,
    pub arguments: usize,
}

impl QualifiedFunction {
    /// The schema PostgreSQL looks the function up in.
    pub fn lookup_schema(&self) -> &str {
        self.schema.as_deref().unwrap_or("pg_catalog")
    }
}

impl fmt::Display for QualifiedFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}.")?;
        }
        write!(f, "{}()", self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorKind {
    /// `a op b` (pg_operator.oprkind `b`)
    Infix,
    /// `op a` (pg_operator.oprkind `l`)
    Prefix,
}

impl OperatorKind {
    /// pg_operator.oprkind.
    pub fn oprkind(self) -> &'static str {
        match self {
            OperatorKind::Infix => "b",
            OperatorKind::Prefix => "l",
        }
    }
}

/// An operator, always one of pg_catalog's (qualified operators are refused).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorUse {
    pub symbol: String,
    pub kind: OperatorKind,
}

impl fmt::Display for OperatorUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            OperatorKind::Infix => write!(f, "operator {}", self.symbol),
            OperatorKind::Prefix => write!(f, "prefix operator {}", self.symbol),
        }
    }
}

/// `schema.table`, as PostgreSQL stores the names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationName {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for RelationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// What a condition refers to, gathered while printing it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct References {
    pub functions: BTreeSet<QualifiedFunction>,
    pub operators: BTreeSet<OperatorUse>,
    pub cast_types: BTreeSet<String>,
    pub relations: BTreeSet<RelationName>,
}

/// Parses and checks a `where`; Ok with the condition, or a message saying what is wrong.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the condition is empty; expected one SQL boolean expression such as \"level = 'debug'\"".into());
    }
    if trimmed.len() > MAX_CONDITION_BYTES {
        return Err(format!(
            "the condition is {} bytes long; at most {MAX_CONDITION_BYTES} are accepted",
            trimmed.len()
        ));
    }
    refuse_hidden_characters(trimmed)?;
    refuse_comments(trimmed)?;
    let expr = parse_one_expression(trimmed)?;
    let (canonical, references) = canonical::print(&expr)?;
    check_canonical_text(&canonical)?;
    // Read back what was printed: it must print the same and refer to the same objects,
    // or the printer and the parser disagree about it, and it is refused. Text that was
    // canonical already was just read: reading it again would give the same expression.
    if canonical != trimmed {
        let reread = parse_one_expression(&canonical).map_err(|e| unstable(&canonical, &e))?;
        let (again, again_references) =
            canonical::print(&reread).map_err(|e| unstable(&canonical, &e))?;
        if again != canonical || again_references != references {
            return Err(unstable(&canonical, &format!("it reads back as {again}")));
        }
    }
    for function in &references.functions {
        refuse_dangerous_function(function)?;
    }
    Ok(Condition {
        canonical,
        functions: references.functions.into_iter().collect(),
        operators: references.operators.into_iter().collect(),
        cast_types: references.cast_types.into_iter().collect(),
        relations: references.relations.into_iter().collect(),
    })
}

fn unstable(canonical: &str, why: &str) -> String {
    format!(
        "retentionc cannot print this condition so that it reads back the same (printed as {canonical}; {why}); write it more plainly"
    )
}

/// Characters a reviewer cannot see, or that PostgreSQL and other parsers split words
/// at differently (PostgreSQL reads a no-break space as part of a name).
fn refuse_hidden_characters(text: &str) -> Result<(), String> {
    for (index, c) in text.char_indices() {
        if matches!(c, '\t' | '\n' | '\r') {
            continue;
        }
        if let Some(name) = hidden_character_name(c) {
            let column = text[..index].chars().count() + 1;
            return Err(format!(
                "found {name} (U+{:04X}) at character {column}; a condition may hold only visible characters and plain spaces \
                 (inside a string, write it as an escape: E'\\u{:04X}')",
                c as u32, c as u32
            ));
        }
    }
    Ok(())
}

/// A description of `c` when it is a control, format or non-ASCII space character.
pub(crate) fn hidden_character_name(c: char) -> Option<&'static str> {
    let code = c as u32;
    Some(match c {
        _ if c.is_control() => "a control character",
        '\u{00A0}' | '\u{2007}' | '\u{202F}' => "a no-break space",
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => "a zero-width character",
        '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            "a text direction control"
        }
        '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
        '\u{00AD}' => "a soft hyphen",
        _ if c.is_whitespace() && c != ' ' => "a non-ASCII space",
        _ if (0xE000..=0xF8FF).contains(&code) || code >= 0xF0000 => "a private-use character",
        _ => return None,
    })
}

/// Comments are refused rather than dropped: a one-line predicate needs none, and a
/// reviewer of the policy must not have to work out where one ends. An operator holding
/// `--` or `/*` is refused too: PostgreSQL ends an operator there and reads a comment.
fn refuse_comments(text: &str) -> Result<(), String> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize()
        .map_err(|e| format!("not valid SQL: {}", strip_parser_prefix(&e.message)))?;
    for token in &tokens {
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { .. }) => {
                return Err("found a \"--\" comment; expected one SQL expression without comments (comments can hide SQL from review)".into());
            }
            Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                return Err("found a \"/* */\" comment; expected one SQL expression without comments (comments can hide SQL from review)".into());
            }
            Token::Whitespace(_)
            | Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::Word(_) => {}
            other => {
                let shown = shown_token(other);
                if shown.contains("--") || shown.contains("/*") {
                    return Err(format!(
                        "found the operator \"{shown}\", which holds a comment marker; PostgreSQL ends an operator before -- or /* and reads the rest as a comment"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The text as exactly one expression (not a statement, not two expressions).
fn parse_one_expression(text: &str) -> Result<sqlparser::ast::Expr, String> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| format!("not valid SQL: {}", strip_parser_prefix(&e.to_string())))?;
    let statement = leading_statement_keyword(text);
    let statement_error = |statement: String| {
        format!(
            "found a {statement} statement; expected only the condition that selects the rows to delete, such as \"level = 'debug'\" (retentionc writes the DELETE itself)"
        )
    };
    let expr = match parser.parse_expr() {
        Ok(expr) => expr,
        Err(_) if statement.is_some() => {
            return Err(statement_error(statement.unwrap_or_default()));
        }
        Err(e) => {
            return Err(format!(
                "not one SQL expression: {}",
                strip_parser_prefix(&e.to_string())
            ));
        }
    };
    let next = parser.peek_token();
    match next.token {
        Token::EOF => Ok(expr),
        _ if statement.is_some() => Err(statement_error(statement.unwrap_or_default())),
        Token::SemiColon => Err("found a semicolon; expected one SQL expression, not statements (a semicolon is not allowed)".into()),
        token => Err(format!(
            "expected one SQL expression, but \"{}\" follows the expression \"{}\" (join conditions with AND or OR)",
            shown_token(&token),
            strip_parser_prefix(&expr.to_string())
        )),
    }
}

/// A token for a message, without raw control characters.
fn shown_token(token: &Token) -> String {
    token
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The statement a text starts with (`DELETE FROM t WHERE ...`), if it does, for a message
/// that says so rather than the parser's view of it.
fn leading_statement_keyword(text: &str) -> Option<String> {
    const STATEMENTS: [&str; 17] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE",
        "GRANT", "REVOKE", "WITH", "CALL", "DO", "COPY", "SET", "VALUES",
    ];
    let first: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let upper = first.to_ascii_uppercase();
    STATEMENTS.contains(&upper.as_str()).then_some(upper)
}

fn strip_parser_prefix(message: &str) -> String {
    message
        .trim_start_matches("sql parser error: ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What may stand outside literals and quoted names in printed text, and how literals
/// are written: scanned the way PostgreSQL's lexer would, so that a fault in the printer
/// is caught here rather than by the server.
fn check_canonical_text(text: &str) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let refuse = |what: &str| {
        Err(format!(
            "retentionc printed this condition with {what} ({text}); write it more plainly"
        ))
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' => {
                // A plain literal: no backslash, whatever standard_conforming_strings says.
                let escaped = i > 0
                    && chars[i - 1] == 'E'
                    && (i < 2
                        || !(chars[i - 2].is_alphanumeric() || matches!(chars[i - 2], '_' | '"')));
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return refuse("an unterminated literal"),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => i += 2,
                        Some('\'') => break,
                        Some('\\') if escaped => i += 2,
                        Some('\\') => return refuse("a backslash in a plain literal"),
                        Some(_) => i += 1,
                    }
                }
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return refuse("an unterminated name"),
                        Some('"') if chars.get(i + 1) == Some(&'"') => i += 2,
                        Some('"') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            '-' if next == Some('-') => return refuse("a comment marker --"),
            '/' if next == Some('*') => return refuse("a comment marker /*"),
            '\\' => return refuse("a backslash outside a literal"),
            '$' => return refuse("a dollar sign outside a literal"),
            ';' => return refuse("a semicolon"),
            _ if hidden_character_name(c).is_some() => {
                return refuse("an invisible character outside a literal");
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Functions refused whatever their volatility: they act on the server, other sessions
/// or the outside world, and a predicate is evaluated for every row.
fn refuse_dangerous_function(function: &QualifiedFunction) -> Result<(), String> {
    let name = function.name.as_str();
    let schema = function.schema.as_deref();
    let reason = if schema == Some("cron") {
        Some("it belongs to pg_cron, which schedules jobs")
    } else {
        DANGEROUS_FUNCTIONS
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == *pattern,
            })
            .map(|(_, reason)| *reason)
            .or_else(|| {
                (name.contains("_to_xml") || name.starts_with("query_to_"))
                    .then_some("it runs SQL given as text or reads whole tables")
            })
    };
    match reason {
        Some(reason) => Err(format!(
            "calls {function}, which is not allowed in a delete condition: {reason}"
        )),
        None => Ok(()),
    }
}

/// Names (`*` ends a prefix) refused in any schema, and why.
const DANGEROUS_FUNCTIONS: &[(&str, &str)] = &[
    ("dblink*", "it connects to other databases"),
    ("pg_read_file", "it reads files on the server"),
    ("pg_read_binary_file", "it reads files on the server"),
    ("pg_stat_file", "it reads files on the server"),
    ("pg_ls_*", "it lists files on the server"),
    ("pg_file_*", "it writes files on the server"),
    ("lo_*", "it reads or writes large objects and files"),
    ("loread", "it reads large objects"),
    ("lowrite", "it writes large objects"),
    ("set_config", "it changes settings"),
    ("pg_terminate_backend", "it ends other sessions"),
    ("pg_cancel_backend", "it cancels other sessions' queries"),
    ("pg_reload_conf", "it reloads the server's configuration"),
    ("pg_rotate_logfile", "it acts on the server"),
    ("pg_promote", "it acts on the server"),
    ("pg_switch_wal", "it acts on the server"),
    (
        "pg_log_backend_memory_contexts",
        "it acts on other sessions",
    ),
    ("pg_sleep*", "it waits, once for every row"),
    ("pg_advisory*", "it takes advisory locks"),
    ("pg_try_advisory*", "it takes advisory locks"),
    ("txid_*", "it assigns or reads transaction ids"),
    ("pg_current_xact_id*", "it assigns transaction ids"),
    ("pg_export_snapshot", "it acts on the transaction"),
    ("nextval", "it changes a sequence"),
    ("setval", "it changes a sequence"),
    ("currval", "it depends on a sequence's use in the session"),
    ("lastval", "it depends on a sequence's use in the session"),
    ("pg_notify", "it sends notifications"),
    ("ts_stat", "it runs SQL given as text"),
    ("pg_stat_reset*", "it resets statistics"),
    ("pg_create_*", "it creates replication state"),
    ("pg_drop_replication_slot", "it drops replication state"),
    ("pg_replication_origin_*", "it changes replication state"),
    ("pg_logical_*", "it acts on replication"),
    ("pg_backup_*", "it acts on backups"),
    ("pg_start_backup", "it acts on backups"),
    ("pg_stop_backup", "it acts on backups"),
    ("pg_import_system_collations", "it creates collations"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        parse_condition(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .canonical
    }

    #[test]
    fn one_boolean_expression_is_accepted_and_printed_canonically() {
        assert_eq!(canonical("level = 'debug'"), "level = 'debug'");
        assert_eq!(canonical("  Level='debug' \n"), "level = 'debug'");
        assert_eq!(
            canonical("level IN ('debug', 'trace') AND payload->>'kind' = 'x'"),
            "level IN ('debug', 'trace') AND (payload ->> 'kind') = 'x'"
        );
        assert_eq!(
            canonical("user_id IN (SELECT id FROM public.deleted_users)"),
            "user_id IN (SELECT id FROM public.deleted_users)"
        );
        assert_eq!(canonical("\"select\" = 1"), "\"select\" = 1");
        assert_eq!(canonical("copy = true"), "copy = TRUE");
    }

    #[test]
    fn statements_semicolons_and_comments_are_refused() {
        let err = |t: &str| parse_condition(t).unwrap_err();
        assert!(err("a = 1; DROP TABLE t").contains("semicolon"));
        assert!(err("DELETE FROM t").contains("DELETE statement"));
        assert!(err("select 1").contains("SELECT statement"));
        assert!(err("a = 1 b = 2").contains("follows"));
        assert!(err("").contains("empty"));
        assert!(parse_condition("a = 'unclosed").is_err());
        assert!(err("a = 1 -- and more").contains("comment"));
        assert!(err("a = 1 /* x */").contains("comment"));
        assert!(err("a @-- 1").contains("comment marker"));
    }

    #[test]
    fn backslashes_are_written_so_both_string_settings_read_them_alike() {
        assert_eq!(canonical(r"a = 'x\'"), r"a = E'x\\'");
        assert_eq!(canonical(r"a = E'it\'s'"), "a = 'it''s'");
        assert_eq!(canonical(r"a = E'tab\there'"), r"a = E'tab\u0009here'");
    }

    #[test]
    fn dangerous_functions_are_refused_by_name() {
        for text in [
            "pg_sleep(1) IS NOT NULL",
            "pg_terminate_backend(pg_backend_pid())",
            "cron.schedule('x', '* * * * *', 'ALTER ROLE x SUPERUSER') > 0",
            "nextval('s') > 0",
            "public.dblink_exec('x') = 'x'",
            "table_to_xml('t', true, true, '') IS NOT NULL",
        ] {
            let e = parse_condition(text).unwrap_err();
            assert!(
                e.contains("not allowed in a delete condition"),
                "{text}: {e}"
            );
        }
        assert!(parse_condition("lower(level) = 'x'").is_ok());
    }

    #[test]
    fn hidden_characters_are_refused() {
        let e = parse_condition("a\u{00A0}= 1").unwrap_err();
        assert!(e.contains("no-break space"), "{e}");
        let e = parse_condition("a = 'x\u{202E}y'").unwrap_err();
        assert!(e.contains("direction"), "{e}");
    }
}
