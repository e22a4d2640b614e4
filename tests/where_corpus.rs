//! A corpus of `where` conditions built on the places where lexers disagree: operators
//! that run into comment markers, backslashes in literals, E'' and U&'' escapes, dollar
//! quotes, nested comments, `::` casts, quoted names holding quotes, JSON and array
//! operators, invisible and non-ASCII spaces, psql variables and meta-commands, numbers
//! PostgreSQL 15 splits in two. Each is either refused at compile time or accepted with
//! a canonical text; the whole outcome is one snapshot (`where_corpus__corpus.snap`).
//!
//! On a real server, every accepted canonical text plans to the same filter with
//! `standard_conforming_strings` on and off, so the setting cannot change what it means.

mod common;

use common::cluster::{Cluster, Partman};
use retentionc::policy::where_clause::parse_condition;

/// (what the case is about, the condition as a user would write it).
const CORPUS: &[(&str, &str)] = &[
    ("plain comparison", "level = 'debug'"),
    ("operator running into a line comment", "a @-- 1"),
    (
        "operator running into a line comment, no operand",
        "a *-- x",
    ),
    ("operator before a block comment", "a </* x */ 1"),
    ("trailing line comment", "level = 'debug' -- OR true"),
    ("nested block comment", "a /* x /* y */ z */ = 1"),
    ("backslash closing a literal", r"note = 'x\'"),
    (
        "backslash that would swallow a quote with standard_conforming_strings off",
        r"level = 'a\' AND level = ') OR true -- '",
    ),
    ("E string with an escaped quote", r"note = E'it\'s'"),
    (
        "E string with a doubled backslash",
        r"note = E'back\\slash'",
    ),
    (
        "E string with hex, octal and unicode escapes",
        r"note = E'\x41\101\u0042\U00000043'",
    ),
    ("E string with a newline escape", r"note = E'a\nb'"),
    ("lower-case e string", "note = e'x'"),
    ("U& string", r"note = U&'\0041'"),
    ("U& string with UESCAPE", "note = U&'d!0061t' UESCAPE '!'"),
    ("U& quoted name", "U&\"a\" = 1"),
    ("dollar quote", "note = $$it's$$"),
    ("tagged dollar quote", "note = $q$a'b$q$"),
    ("dollar quote holding a comment marker", "note = $$x -- y$$"),
    (
        "dollar quote holding a quote and a backslash",
        r"note = $$a'\$$",
    ),
    ("quoted name holding a quote", "\"Odd\"\"Name\" = 'x'"),
    ("quoted name holding a comment marker", "\"a--b\" = 1"),
    ("quoted keyword as a name", "\"select\" = 1"),
    ("upper-case name folded", "LEVEL = 'debug'"),
    ("empty quoted name", "\"\" = 1"),
    ("double-colon cast", "created_at::date = current_date"),
    ("cast to timestamptz", "created_at::timestamptz < now()"),
    (
        "cast with a length and precision",
        "note::varchar(10) = 'x' AND a::numeric(10,2) > 1.5",
    ),
    ("cast to an array type", "note::text[] IS NULL"),
    ("cast to a type of the user", "a::public.mood = 'x'"),
    ("cast to regclass", "'t'::regclass IS NOT NULL"),
    ("typed literal", "created_at > DATE '2020-01-01'"),
    ("JSON key exists", "payload ? 'k'"),
    ("JSON contains", "payload @> '{\"a\": 1}'"),
    ("JSON field text", "payload->>'kind' = 'x'"),
    ("JSON path text", "payload #>> '{a,b}' = 'x'"),
    ("array overlap", "tags && ARRAY['x']"),
    ("array subscript", "tags[1] = 'x'"),
    ("ANY over an array", "a = ANY(ARRAY[1, 2])"),
    ("no-break space between tokens", "a\u{00A0}= 1"),
    ("zero-width space inside a literal", "note = 'a\u{200B}b'"),
    (
        "zero-width space written as an escape",
        r"note = E'a\u200Bb'",
    ),
    ("text direction override", "note = 'x\u{202E}y'"),
    ("raw newline inside a literal", "note = 'a\nb'"),
    ("tab between tokens", "a\t= 1"),
    ("psql variable", "a = :foo"),
    ("psql quoted variable", "note = :'foo'"),
    ("psql meta-command", "a = 1 \\gexec"),
    ("parameter placeholder", "a = $1"),
    ("semicolon and a second statement", "a = 1; DROP TABLE t"),
    ("hexadecimal number (PostgreSQL 15 reads 0 x1F)", "a = 0x1F"),
    (
        "number with underscores (PostgreSQL 15 reads 1 _000)",
        "a = 1_000",
    ),
    (
        "numbers with fraction and exponent",
        "a > .5 AND b < 1e5 AND a <> 1.",
    ),
    ("minus minus", "a - -1 = 0"),
    ("double negation", "- -a = 1"),
    (
        "precedence made explicit",
        "a + b * 2 = 1 OR a = 2 AND b = 3",
    ),
    (
        "IN list and NOT",
        "level NOT IN ('debug', 'trace') AND NOT flag",
    ),
    (
        "BETWEEN",
        "created_at BETWEEN '2020-01-01' AND '2021-01-01'",
    ),
    (
        "LIKE with an ESCAPE backslash",
        r"note LIKE 'x\%' ESCAPE '\'",
    ),
    ("ILIKE", "level ILIKE 'DEBUG%'"),
    ("IS DISTINCT FROM", "a IS DISTINCT FROM b"),
    ("IS TRUE / IS NOT NULL", "flag IS TRUE AND note IS NOT NULL"),
    ("CASE", "CASE WHEN flag THEN 1 ELSE 0 END = 1"),
    (
        "COALESCE and NULLIF",
        "COALESCE(note, '') = '' OR NULLIF(a, 0) IS NULL",
    ),
    (
        "now() and an interval",
        "created_at < now() - interval '30 days'",
    ),
    (
        "interval with a field",
        "created_at < now() - interval '30' day",
    ),
    ("function of pg_catalog", "lower(level) = 'debug'"),
    ("schema-qualified function", "public.f(a) = 1"),
    (
        "function in pg_cron's schema",
        "cron.schedule('x', '* * * * *', 'ALTER ROLE x SUPERUSER') > 0",
    ),
    ("pg_sleep", "pg_sleep(1) IS NULL"),
    (
        "pg_terminate_backend",
        "pg_terminate_backend(pg_backend_pid())",
    ),
    ("aggregate with *", "count(*) > 1"),
    ("aggregate with FILTER", "sum(a) FILTER (WHERE a > 1) > 1"),
    ("window function", "row_number() OVER () = 1"),
    (
        "IN subquery",
        "user_id IN (SELECT id FROM public.deleted_users)",
    ),
    (
        "EXISTS subquery with an alias",
        "EXISTS (SELECT 1 FROM public.deleted_users d WHERE d.id = user_id)",
    ),
    (
        "subquery with LIMIT",
        "user_id IN (SELECT id FROM public.deleted_users LIMIT 1)",
    ),
    (
        "subquery over an unqualified table",
        "user_id IN (SELECT id FROM deleted_users)",
    ),
    (
        "subquery with a join",
        "user_id IN (SELECT d.id FROM public.deleted_users d JOIN public.t x ON true)",
    ),
    (
        "subquery with UNION",
        "user_id IN (SELECT id FROM public.deleted_users UNION SELECT 1)",
    ),
    ("COLLATE", "note COLLATE \"C\" = 'x'"),
    ("row value", "(a, b) = (1, 2)"),
    ("adjacent string literals", "note = 'x' 'y'"),
    ("national string", "note = N'x'"),
    ("bit string", "note = B'101'"),
    ("custom operator", "a OPERATOR(pg_catalog.+) 1 = 2"),
    ("bitwise operator", "a & 1 = 1"),
    ("two expressions", "a = 1 b = 2"),
    ("a statement", "DELETE FROM t"),
    ("SIMILAR TO", "note SIMILAR TO 'x%'"),
];

#[test]
fn every_corpus_case_is_refused_or_has_a_canonical_text() {
    assert!(CORPUS.len() >= 40, "{} cases", CORPUS.len());
    let mut report = String::new();
    let (mut accepted, mut refused) = (0, 0);
    for (about, text) in CORPUS {
        let shown = visible(text);
        match parse_condition(text) {
            Ok(condition) => {
                accepted += 1;
                assert_no_comment_marker_or_bare_backslash(&condition.canonical);
                // Canonical text is a fixed point: compiling it again gives it back.
                let again = parse_condition(&condition.canonical).unwrap_or_else(|e| {
                    panic!("{about}: canonical {} refused: {e}", condition.canonical)
                });
                assert_eq!(again, condition, "{about}");
                report.push_str(&format!(
                    "{about}\n  where:     {shown}\n  canonical: {}\n",
                    condition.canonical
                ));
            }
            Err(message) => {
                refused += 1;
                assert!(
                    !message.chars().any(|c| c.is_control()),
                    "{about}: message holds a control character: {message:?}"
                );
                report.push_str(&format!(
                    "{about}\n  where:     {shown}\n  refused:   {message}\n"
                ));
            }
        }
    }
    assert!(
        accepted >= 20 && refused >= 20,
        "{accepted} accepted, {refused} refused"
    );
    insta::assert_snapshot!("corpus", report);
}

/// The text with control and non-ASCII space characters written as `\u{..}` escapes.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control()
                || (c.is_whitespace() && c != ' ')
                || ('\u{200B}'..='\u{206F}').contains(&c)
            {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Outside `'...'`, `E'...'` and `"..."`: no `--`, no `/*`, no backslash, no `$`; and a
/// backslash inside a plain `'...'` never (it would read differently with
/// standard_conforming_strings off). Written independently of the library's own check.
fn assert_no_comment_marker_or_bare_backslash(text: &str) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => {
                let e_string = i > 0 && bytes[i - 1] == b'E';
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 1,
                        b'\'' => break,
                        b'\\' => {
                            assert!(e_string, "backslash in a plain literal: {text}");
                            i += 1;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && !(bytes[i] == b'"' && bytes.get(i + 1) != Some(&b'"')) {
                    if bytes[i] == b'"' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'-' => assert_ne!(bytes.get(i + 1), Some(&b'-'), "-- in {text}"),
            b'/' => assert_ne!(bytes.get(i + 1), Some(&b'*'), "/* in {text}"),
            b'\\' | b'$' | b';' => panic!("{} outside a literal in {text}", bytes[i] as char),
            _ => {}
        }
        i += 1;
    }
}

const CORPUS_TABLES: &str = r#"
CREATE TABLE public.t (
    a int, b int, level text, note text, flag boolean, payload jsonb, tags text[],
    created_at timestamptz, user_id bigint, "Odd""Name" text, "a--b" int, "select" int);
CREATE TABLE public.deleted_users (id bigint);
CREATE FUNCTION public.f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1';
"#;

/// The filter PostgreSQL plans for `condition` when it reads it with
/// standard_conforming_strings as given; shown with the setting on either way, so that
/// only the reading differs, not the display.
async fn planned_filter(
    client: &tokio_postgres::Client,
    condition: &str,
    conforming: bool,
) -> Result<String, String> {
    let setting = if conforming { "on" } else { "off" };
    client
        .batch_execute(&format!(
            "DEALLOCATE ALL; SET standard_conforming_strings = {setting}"
        ))
        .await
        .unwrap();
    let prepared = client
        .batch_execute(&format!(
            "PREPARE corpus AS SELECT 1 FROM public.t WHERE ({condition})"
        ))
        .await;
    client
        .batch_execute("SET standard_conforming_strings = on")
        .await
        .unwrap();
    if let Err(e) = prepared {
        return Err(e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or(e.to_string()));
    }
    let messages = client
        .simple_query("EXPLAIN (VERBOSE, COSTS OFF) EXECUTE corpus")
        .await
        .unwrap();
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(String::from),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::test]
async fn accepted_conditions_plan_the_same_whatever_standard_conforming_strings_says() {
    let db = Cluster::shared().database(Partman::V5);
    db.psql(&["-q", "-c", CORPUS_TABLES]);
    let client = db.client().await;
    let mut checked = 0;
    for (about, text) in CORPUS {
        let Ok(condition) = parse_condition(text) else {
            continue;
        };
        let on = planned_filter(&client, &condition.canonical, true).await;
        let off = planned_filter(&client, &condition.canonical, false).await;
        let on =
            on.unwrap_or_else(|e| panic!("{about}: {} does not plan: {e}", condition.canonical));
        assert_eq!(Ok(on), off, "{about}: {}", condition.canonical);
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");

    // The user's own text of the backslash case does not read the same both ways (with
    // the setting off, the literal swallows the quote and a comment the closing
    // parenthesis); its canonical text, checked above, does.
    let payload = r"level = 'a\' AND level = ') OR true -- '";
    let on = planned_filter(&client, payload, true).await;
    let off = planned_filter(&client, payload, false).await;
    assert!(on.is_ok(), "{on:?}");
    assert_ne!(on, off, "the raw text reads the same both ways");
}
