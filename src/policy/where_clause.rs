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
                return Err("a semicolon is not allowed: expected one expression, not statements".into());
            }
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                return Err("comments are not allowed in a condition (they can hide SQL from review)".into());
            }
            _ => {}
        }
    }
    let mut parser = Parser::new(&dialect).with_tokens(tokens);
    let expr = parser
        .parse_expr()
        .map_err(|e| format!("not one SQL expression: {}", strip_parser_prefix(&e.to_string())))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "expected one SQL expression, but \"{}\" follows the expression \"{expr}\"",
            next.token
        ));
    }
    Ok(trimmed.to_string())
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
        assert!(check_where("a = 1; DROP TABLE t").unwrap_err().contains("semicolon"));
        assert!(check_where("a = 1 -- and more").unwrap_err().contains("comments"));
        assert!(check_where("a = 1 /* x */").unwrap_err().contains("comments"));
        assert!(check_where("DELETE FROM t").is_err());
        assert!(check_where("a = 1 b = 2").unwrap_err().contains("follows"));
        assert!(check_where("").is_err());
        assert!(check_where("a = 'unclosed").is_err());
    }
}
