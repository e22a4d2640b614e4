//! PostgreSQL names as the policy format allows them, and the one place SQL is quoted.

use std::fmt;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// A plain lower-case identifier: `[a-z_][a-z0-9_]*`, at most 63 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Ident(String);

impl Ident {
    pub fn parse(text: &str) -> Result<Ident, String> {
        if text.is_empty() {
            return Err("the name is empty".into());
        }
        if text.len() > MAX_IDENT_BYTES {
            return Err(format!(
                "\"{text}\" is {} bytes long; PostgreSQL names are at most {MAX_IDENT_BYTES}",
                text.len()
            ));
        }
        let mut chars = text.chars();
        let first = chars.next().unwrap_or_default();
        let valid_first = first.is_ascii_lowercase() || first == '_';
        let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_first || !valid_rest {
            let hint = if text.chars().any(|c| c.is_ascii_uppercase()) {
                " (upper case is not allowed: PostgreSQL folds unquoted names to lower case)"
            } else if text.contains('.') {
                " (a dot is not allowed inside a name)"
            } else if text.contains('"') {
                " (quoted names are not supported: write the name without quotes, in lower case; pg_partman does not manage quoted names reliably)"
            } else {
                ""
            };
            // A name holding double quotes reads better inside single ones.
            let shown = if text.contains('"') {
                format!("'{text}'")
            } else {
                format!("\"{text}\"")
            };
            return Err(format!(
                "{shown} is not a plain PostgreSQL name: expected lower case letters, digits and _, starting with a letter or _{hint}"
            ));
        }
        Ok(Ident(text.to_string()))
    }

    /// For names built by retentionc itself (prune_<table>), already known to be valid.
    pub fn derived(text: String) -> Result<Ident, String> {
        Ident::parse(&text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `schema.table`, both parts plain identifiers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    pub schema: Ident,
    pub name: Ident,
}

impl QualifiedName {
    pub fn parse(text: &str) -> Result<QualifiedName, String> {
        let Some((schema, name)) = text.split_once('.') else {
            return Err(format!(
                "\"{text}\" has no schema; write it as schema.table, for example public.{text}"
            ));
        };
        if name.contains('.') {
            return Err(format!(
                "\"{text}\" has more than one dot; expected schema.table"
            ));
        }
        Ok(QualifiedName {
            schema: Ident::parse(schema)?,
            name: Ident::parse(name)?,
        })
    }

    /// `"schema"."table"`, for SQL.
    pub fn quoted(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(self.schema.as_str()),
            quote_ident(self.name.as_str())
        )
    }
}

/// Unquoted `schema.table`: how pg_partman stores `part_config.parent_table`.
impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl serde::Serialize for QualifiedName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Double-quotes an identifier, doubling any inner quote.
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    let mut rest = name;
    while let Some(at) = rest.find('"') {
        quoted.push_str(&rest[..=at]);
        quoted.push('"');
        rest = &rest[at + 1..];
    }
    quoted.push_str(rest);
    quoted.push('"');
    quoted
}

/// Single-quotes a literal, doubling inner quotes. With standard_conforming_strings on
/// (the default since PostgreSQL 9.1) backslashes need no escaping; an `E''` literal
/// is used when the text holds one, so the result is right whatever that setting is.
pub fn quote_literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 3);
    if text.contains('\\') {
        quoted.push('E');
    }
    quoted.push('\'');
    // Each quote doubled; a backslash occurs only in an `E''` literal, where it is doubled.
    let mut rest = text;
    while let Some(at) = rest.find(['\'', '\\']) {
        quoted.push_str(&rest[..=at]);
        quoted.push_str(&rest[at..=at]);
        rest = &rest[at + 1..];
    }
    quoted.push_str(rest);
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_others_say_why() {
        assert!(Ident::parse("test_table1").is_ok());
        assert!(Ident::parse("_x").is_ok());
        assert!(Ident::parse("Events").unwrap_err().contains("upper case"));
        assert!(Ident::parse("1abc").is_err());
        assert!(Ident::parse("a-b").is_err());
        assert!(Ident::parse("\"x\"").unwrap_err().contains("quoted"));
        assert!(
            Ident::parse(&"a".repeat(64))
                .unwrap_err()
                .contains("64 bytes")
        );
        assert!(Ident::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn qualified_names_need_exactly_one_dot() {
        let q = QualifiedName::parse("public.events").unwrap();
        assert_eq!(q.to_string(), "public.events");
        assert_eq!(q.quoted(), "\"public\".\"events\"");
        assert!(
            QualifiedName::parse("events")
                .unwrap_err()
                .contains("no schema")
        );
        assert!(QualifiedName::parse("a.b.c").is_err());
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_ident(""), r#""""#);
        assert_eq!(quote_ident(r#""x""#), r#""""x""""#);
        assert_eq!(quote_ident("é\u{1F600}"), "\"é\u{1F600}\"");
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_literal("'"), "''''");
        assert_eq!(quote_literal(r"\'\"), r"E'\\''\\'");
        assert_eq!(quote_literal("é'\u{1F600}"), "'é''\u{1F600}'");
    }

    proptest::proptest! {
        /// Taking the quotes off and halving what was doubled gives the text back.
        #[test]
        fn quoting_reads_back(text in "\\PC*") {
            let ident = quote_ident(&text);
            let inner = ident.strip_prefix('"').and_then(|i| i.strip_suffix('"')).unwrap();
            proptest::prop_assert_eq!(inner.replace("\"\"", "\""), text.clone());
            proptest::prop_assert!(!inner.replace("\"\"", "").contains('"'));
            let literal = quote_literal(&text);
            let escaped = text.contains('\\');
            let body = literal
                .strip_prefix(if escaped { "E'" } else { "'" })
                .and_then(|b| b.strip_suffix('\''))
                .unwrap();
            proptest::prop_assert!(!body.replace("''", "").contains('\''));
            let mut read = body.replace("''", "'");
            if escaped {
                read = read.replace("\\\\", "\\");
            }
            proptest::prop_assert_eq!(read, text);
        }
    }
}
