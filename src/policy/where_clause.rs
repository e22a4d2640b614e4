//! Checks that a delete rule's `where` is one SQL boolean expression and nothing more.
//!
//! The text ends up inside a DELETE in a procedure, so anything that could end the
//! expression early (a semicolon, a comment hiding the rest, a second statement) is
//! refused before it can reach SQL.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Ok with the trimmed text, or a message saying what is wrong.
pub fn check_where(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the condition is empty; expected one SQL boolean expression such as \"level = 'debug'\"".into());
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, trimmed)
        .tokenize()
        .map_err(|e| format!("not valid SQL: {}", e.message))?;
    for token in &tokens {
        match token {
            Token::SemiColon => {
                return Err("found a semicolon; expected one SQL expression, not statements (a semicolon is not allowed)".into());
            }
            Token::Whitespace(Whitespace::SingleLineComment { .. }) => {
                return Err("found a \"--\" comment; expected one SQL expression without comments (comments can hide SQL from review)".into());
            }
            Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                return Err("found a \"/* */\" comment; expected one SQL expression without comments (comments can hide SQL from review)".into());
            }
            _ => {}
        }
    }
    // Only text that is not one expression is examined further, so a column that happens
    // to be called like a statement (`copy = true`) is never refused for its name.
    let statement = leading_statement_keyword(&tokens);
    let statement_error = |statement: String| {
        format!(
            "found a {statement} statement; expected only the condition that selects the rows to delete, such as \"level = 'debug'\" (retentionc writes the DELETE itself)"
        )
    };
    let mut parser = Parser::new(&dialect).with_tokens(tokens);
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
    if next.token != Token::EOF {
        if let Some(statement) = statement {
            return Err(statement_error(statement));
        }
        return Err(format!(
            "expected one SQL expression, but \"{}\" follows the expression \"{expr}\" (join conditions with AND or OR)",
            next.token
        ));
    }
    Ok(trimmed.to_string())
}

/// The statement a text starts with (`DELETE FROM t WHERE ...`), if it does, for a message
/// that says so rather than the parser's view of it.
fn leading_statement_keyword(tokens: &[Token]) -> Option<String> {
    const STATEMENTS: [&str; 17] = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE",
        "GRANT", "REVOKE", "WITH", "CALL", "DO", "COPY", "SET", "VALUES",
    ];
    let first = tokens.iter().find(|t| !matches!(t, Token::Whitespace(_)))?;
    let Token::Word(word) = first else {
        return None;
    };
    if word.quote_style.is_some() {
        return None;
    }
    let upper = word.value.to_ascii_uppercase();
    STATEMENTS.contains(&upper.as_str()).then_some(upper)
}

fn strip_parser_prefix(message: &str) -> String {
    message.trim_start_matches("sql parser error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_boolean_expression_is_accepted() {
        assert!(check_where("level = 'debug'").is_ok());
        assert!(check_where("level IN ('debug', 'trace') AND payload->>'kind' = 'x'").is_ok());
        assert!(check_where("user_id IN (SELECT id FROM public.deleted_users)").is_ok());
        assert_eq!(check_where("  a = 1 \n").unwrap(), "a = 1");
    }

    #[test]
    fn statements_semicolons_and_comments_are_refused() {
        assert!(
            check_where("a = 1; DROP TABLE t")
                .unwrap_err()
                .contains("semicolon")
        );
        assert!(
            check_where("a = 1 -- and more")
                .unwrap_err()
                .contains("comments")
        );
        assert!(
            check_where("a = 1 /* x */")
                .unwrap_err()
                .contains("comments")
        );
        assert!(
            check_where("DELETE FROM t")
                .unwrap_err()
                .contains("DELETE statement")
        );
        assert!(
            check_where("select 1")
                .unwrap_err()
                .contains("SELECT statement")
        );
        assert!(check_where("deleted_at IS NOT NULL").is_ok());
        assert!(check_where("\"select\" = 1").is_ok());
        assert!(check_where("copy = true").is_ok());
        assert!(check_where("a = 1 b = 2").unwrap_err().contains("follows"));
        assert!(check_where("").is_err());
        assert!(check_where("a = 'unclosed").is_err());
    }
}
