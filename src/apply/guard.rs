//! Defence in depth: no statement apply sends may drop, truncate or rename a managed
//! parent table (nor drop the schema holding one), whatever the plan says.
//!
//! The plan is built from reviewed templates that never do any of this, so this check
//! should never fire; it exists so that a bug in planning or a hand-edited saved plan
//! cannot lose a table. It scans statement text as words, string literals and dynamic SQL
//! included (`EXECUTE 'DROP TABLE ...'` inside a DO block is caught too), and errs on the
//! side of refusing: an unqualified name matches a managed table of that name in any schema.

use std::collections::BTreeSet;

/// A statement that would drop, truncate or rename a managed parent table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// `DROP TABLE`, `DROP SCHEMA`, `TRUNCATE` or `ALTER TABLE ... RENAME`.
    pub action: &'static str,
    /// The managed table it names, `schema.table`.
    pub table: String,
}

impl Forbidden {
    /// `run DROP TABLE on the managed table public.events`
    pub fn describe(&self) -> String {
        match self.action {
            "DROP SCHEMA" => format!("drop the schema holding the managed table {}", self.table),
            action => format!("run {action} on the managed table {}", self.table),
        }
    }
}

/// The first forbidden action in `sql` aimed at one of `managed` (`schema.table` names).
pub fn forbidden_action(sql: &str, managed: &BTreeSet<String>) -> Option<Forbidden> {
    let words = words(sql);
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    for i in 0..words.len() {
        let found = match (word(i), word(i + 1)) {
            ("drop", "table") => {
                let mut j = skip(&words, i + 2, &["if", "exists"]);
                names_in_list(&words, &mut j, managed).map(|t| ("DROP TABLE", t))
            }
            ("truncate", _) => {
                let mut j = skip(&words, i + 1, &["table", "only"]);
                names_in_list(&words, &mut j, managed).map(|t| ("TRUNCATE", t))
            }
            ("drop", "schema") => {
                let mut j = skip(&words, i + 2, &["if", "exists"]);
                schema_in_list(&words, &mut j, managed).map(|t| ("DROP SCHEMA", t))
            }
            ("alter", "table") => {
                let j = skip(&words, i + 2, &["if", "exists", "only"]);
                let name = word(j);
                let next = if word(j + 1) == "*" { j + 2 } else { j + 1 };
                (word(next) == "rename" && is_managed(name, managed))
                    .then(|| ("ALTER TABLE ... RENAME", resolve(name, managed)))
            }
            _ => None,
        };
        if let Some((action, table)) = found {
            return Some(Forbidden { action, table });
        }
    }
    None
}

/// Lower-cased words of the text: identifiers with their dots (`public.t`), with double
/// quotes removed (`"public"."t"` reads as `public.t`); commas and `*` are kept as words,
/// every other character separates.
fn words(sql: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in sql.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '$' {
            current.extend(c.to_lowercase());
        } else if c == '"' {
            // Quotes only delimit an identifier: `"a"."b"` is the word `a.b`.
        } else {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            if c == ',' || c == '*' {
                words.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn skip(words: &[String], mut i: usize, optional: &[&str]) -> usize {
    while words.get(i).is_some_and(|w| optional.contains(&w.as_str())) {
        i += 1;
    }
    i
}

/// Reads `name [*] {, name [*]}` from `*i`; the first managed one.
fn names_in_list(words: &[String], i: &mut usize, managed: &BTreeSet<String>) -> Option<String> {
    loop {
        let name = words.get(*i)?;
        if is_managed(name, managed) {
            return Some(resolve(name, managed));
        }
        *i += 1;
        if words.get(*i).is_some_and(|w| w == "*") {
            *i += 1;
        }
        if words.get(*i).is_some_and(|w| w == ",") {
            *i += 1;
        } else {
            return None;
        }
    }
}

/// Reads `schema {, schema}` from `*i`; the first managed table in one of them.
fn schema_in_list(words: &[String], i: &mut usize, managed: &BTreeSet<String>) -> Option<String> {
    loop {
        let name = words.get(*i)?;
        if let Some(table) = managed
            .iter()
            .find(|m| m.split('.').next() == Some(name.as_str()))
        {
            return Some(table.clone());
        }
        *i += 1;
        if words.get(*i).is_some_and(|w| w == ",") {
            *i += 1;
        } else {
            return None;
        }
    }
}

fn is_managed(name: &str, managed: &BTreeSet<String>) -> bool {
    managed.contains(name) || (!name.contains('.') && managed.iter().any(|m| table_part(m) == name))
}

fn resolve(name: &str, managed: &BTreeSet<String>) -> String {
    if managed.contains(name) {
        return name.to_string();
    }
    managed
        .iter()
        .find(|m| table_part(m) == name)
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn table_part(qualified: &str) -> &str {
    qualified.rsplit('.').next().unwrap_or(qualified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Project;
    use crate::render::compile_project;

    fn managed() -> BTreeSet<String> {
        ["public.events", "app.logs"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn check(sql: &str) -> Option<(&'static str, String)> {
        forbidden_action(sql, &managed()).map(|f| (f.action, f.table))
    }

    #[test]
    fn dropping_a_managed_parent_is_refused_however_it_is_spelt() {
        assert_eq!(
            check("DROP TABLE public.events;"),
            Some(("DROP TABLE", "public.events".into()))
        );
        assert_eq!(
            check("drop table if exists \"public\".\"events\" cascade;"),
            Some(("DROP TABLE", "public.events".into()))
        );
        assert_eq!(
            check("DROP TABLE other, app.logs;"),
            Some(("DROP TABLE", "app.logs".into()))
        );
        assert_eq!(
            check("DROP\n  TABLE\tevents;"),
            Some(("DROP TABLE", "public.events".into()))
        );
    }

    #[test]
    fn truncating_a_managed_parent_is_refused() {
        assert_eq!(
            check("TRUNCATE public.events;"),
            Some(("TRUNCATE", "public.events".into()))
        );
        assert_eq!(
            check("truncate table only app.logs * restart identity"),
            Some(("TRUNCATE", "app.logs".into()))
        );
        assert_eq!(
            check("TRUNCATE a.b, \"app\".\"logs\";"),
            Some(("TRUNCATE", "app.logs".into()))
        );
    }

    #[test]
    fn renaming_a_managed_parent_is_refused() {
        assert_eq!(
            check("ALTER TABLE public.events RENAME TO events_old;"),
            Some(("ALTER TABLE ... RENAME", "public.events".into()))
        );
        assert_eq!(
            check("alter table if exists only app.logs rename column a to b"),
            Some(("ALTER TABLE ... RENAME", "app.logs".into()))
        );
    }

    #[test]
    fn dropping_the_schema_of_a_managed_parent_is_refused() {
        assert_eq!(
            check("DROP SCHEMA public CASCADE;"),
            Some(("DROP SCHEMA", "public.events".into()))
        );
        assert_eq!(
            check("drop schema if exists other, \"app\" cascade"),
            Some(("DROP SCHEMA", "app.logs".into()))
        );
        assert_eq!(check("DROP SCHEMA archive CASCADE;"), None);
    }

    #[test]
    fn dynamic_sql_inside_a_do_block_is_caught() {
        let sql = "DO $x$ BEGIN EXECUTE 'DROP TABLE public.events'; END $x$;";
        assert_eq!(check(sql), Some(("DROP TABLE", "public.events".into())));
    }

    #[test]
    fn statements_on_children_and_other_tables_pass() {
        assert_eq!(check("DROP TABLE public.events_p20260101;"), None);
        assert_eq!(
            check("ALTER TABLE public.events DETACH PARTITION public.events_p1;"),
            None
        );
        assert_eq!(check("ALTER TABLE public.events_p1 RENAME TO x;"), None);
        assert_eq!(check("TRUNCATE public.other;"), None);
        assert_eq!(
            check("DROP PROCEDURE IF EXISTS \"retention\".\"prune_events\"(boolean);"),
            None
        );
        assert_eq!(
            check(
                "UPDATE partman.part_config SET retention = '1 day' WHERE parent_table = 'public.events';"
            ),
            None
        );
    }

    #[test]
    fn every_statement_retentionc_compiles_passes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let project: Project = crate::policy::load_project(&root.join("retentionc.yaml"))
            .expect("the example project loads");
        let managed: BTreeSet<String> = project
            .policies
            .iter()
            .map(|p| p.table.to_string())
            .collect();
        for file in compile_project(&project.config, &project.policies) {
            for statement in &file.statements {
                assert_eq!(
                    forbidden_action(&statement.sql, &managed),
                    None,
                    "{}: {}",
                    file.file_name,
                    statement.key
                );
            }
        }
    }
}
