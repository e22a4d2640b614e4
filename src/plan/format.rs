//! A plan as text (terminal), markdown (pull-request comment) or JSON (machines).
//! Each writer takes any `io::Write`, so tests snapshot a `Vec<u8>`.

use std::io::{self, IsTerminal, Write};

use crate::output::{html_text, md_code, md_code_in_table, md_fence, md_text, terminal};
use crate::plan::{Change, ChangeKind, Impact, Plan};

/// First line of every markdown plan: a bot finds its earlier comment by it and updates it.
pub const MARKDOWN_MARKER: &str = "<!-- retentionc-plan -->";

/// Colour when stdout is a terminal and NO_COLOR is unset or empty.
pub fn color_wanted() -> bool {
    color_for(io::stdout().is_terminal(), std::env::var_os("NO_COLOR"))
}

/// Colour on a terminal, unless NO_COLOR is set to something (https://no-color.org).
fn color_for(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn green(&self, t: &str) -> String {
        self.wrap("32", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.wrap("33", t)
    }
    fn red(&self, t: &str) -> String {
        self.wrap("31", t)
    }
    fn bold_red(&self, t: &str) -> String {
        self.wrap("1;31", t)
    }
    fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
}

/// `+` creates, `~` changes, `-` removes.
fn symbol(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Bootstrap
        | ChangeKind::Register
        | ChangeKind::AdoptTable
        | ChangeKind::OwnerRights
        | ChangeKind::CreateProcedure
        | ChangeKind::AddSchedule => '+',
        ChangeKind::RetentionSettings
        | ChangeKind::Drift
        | ChangeKind::ReplaceProcedure
        | ChangeKind::ChangeSchedule
        | ChangeKind::ConvertTable => '~',
        ChangeKind::DropProcedure | ChangeKind::RemoveSchedule | ChangeKind::PolicyRemoved => '-',
    }
}

pub fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Bootstrap => "bootstrap",
        ChangeKind::Register => "register",
        ChangeKind::RetentionSettings => "retention settings",
        ChangeKind::Drift => "drift",
        ChangeKind::CreateProcedure => "create procedure",
        ChangeKind::ReplaceProcedure => "replace procedure",
        ChangeKind::DropProcedure => "drop procedure",
        ChangeKind::AddSchedule => "add schedule",
        ChangeKind::ChangeSchedule => "change schedule",
        ChangeKind::RemoveSchedule => "remove schedule",
        ChangeKind::PolicyRemoved => "policy removed",
        ChangeKind::ConvertTable => "convert table",
        ChangeKind::AdoptTable => "adopt table",
        ChangeKind::OwnerRights => "owner rights",
    }
}

/// `1234567` -> `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One sentence on what a destructive change removes.
pub fn impact_sentence(impact: &Impact) -> String {
    let mut parts = Vec::new();
    if impact.partitions == 0 && impact.rules.is_empty() {
        parts.push("no partition is old enough to expire at the next maintenance".to_string());
    }
    if impact.partitions > 0 {
        let verb = match impact.expired.as_deref() {
            Some("detach") => "detach",
            Some("archive") => "detach and move to the archive schema",
            _ => "drop",
        };
        let mut s = format!(
            "the next maintenance would {verb} {} partition{}",
            impact.partitions,
            if impact.partitions == 1 { "" } else { "s" }
        );
        if let (Some(from), Some(to)) = (&impact.from, &impact.to) {
            s.push_str(&format!(" ({from} to {to})"));
        }
        if impact.partitions > 0 {
            s.push_str(&format!(
                ", about {} rows (from statistics",
                thousands(impact.estimated_rows)
            ));
            if impact.partitions_without_statistics > 0 {
                s.push_str(&format!(
                    "; {} never analysed",
                    impact.partitions_without_statistics
                ));
            }
            s.push(')');
        }
        parts.push(s);
    }
    for rule in &impact.rules {
        parts.push(match rule.estimated_rows {
            Some(rows) => format!(
                "delete rule {} matches about {} rows now (planner estimate)",
                rule.rule,
                thousands(rows)
            ),
            None => format!(
                "delete rule {} would delete the rows it matches (no estimate)",
                rule.rule
            ),
        });
    }
    parts.join("; ")
}

fn counts(plan: &Plan) -> String {
    let n = plan.changes.len();
    let destructive = plan.changes.iter().filter(|c| c.destructive).count();
    let drift = plan.changes.iter().filter(|c| c.drift).count();
    let mut s = format!("{n} change{}", if n == 1 { "" } else { "s" });
    if destructive > 0 {
        s.push_str(&format!(", {destructive} destructive"));
    }
    if drift > 0 {
        s.push_str(&format!(", {drift} drift"));
    }
    s
}

fn statement_refs(change: &Change) -> String {
    let mut by_file: Vec<(String, Vec<&str>)> = Vec::new();
    for s in &change.statements {
        let file = s.file.clone();
        match by_file.iter_mut().find(|(f, _)| *f == file) {
            Some((_, keys)) => keys.push(&s.key),
            None => by_file.push((file, vec![&s.key])),
        }
    }
    by_file
        .iter()
        .map(|(f, keys)| format!("{f} [{}]", keys.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The terminal view.
pub fn write_text(plan: &Plan, out: &mut impl Write, color: bool) -> io::Result<()> {
    write_text_with(plan, out, color, true)
}

/// The text plan; `suggest_apply` ends it with the hint to run apply (not when apply
/// itself shows the plan it is about to execute).
pub fn write_text_with(
    plan: &Plan,
    out: &mut impl Write,
    color: bool,
    suggest_apply: bool,
) -> io::Result<()> {
    let p = Paint { on: color };
    if !plan.has_changes() {
        writeln!(out, "No changes: the database matches the policies.")?;
    } else {
        writeln!(
            out,
            "{}",
            p.bold(&format!("retentionc plan: {}", counts(plan)))
        )?;
        writeln!(out)?;
        for change in &plan.changes {
            let sym = symbol(change.kind).to_string();
            let sym = match symbol(change.kind) {
                '+' => p.green(&sym),
                '~' => p.yellow(&sym),
                _ => p.red(&sym),
            };
            let tag = if change.destructive {
                format!(" {}", p.bold_red("[destructive]"))
            } else {
                String::new()
            };
            let drift = if change.drift {
                format!(" {}", p.yellow("[drift]"))
            } else {
                String::new()
            };
            writeln!(
                out,
                "{sym} {}: {}{tag}{drift}",
                terminal(&change.table),
                terminal(&change.summary)
            )?;
            for note in &change.notes {
                writeln!(out, "    {note}")?;
            }
            for s in &change.settings {
                let old = s.old.as_deref().unwrap_or("(unset)");
                let note = if s.drift {
                    p.dim(" (changed by hand; apply restores it)")
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "    {}: {} -> {}{note}",
                    terminal(&s.column),
                    p.red(&terminal(old)),
                    p.green(&terminal(&s.new))
                )?;
            }
            if let Some(impact) = &change.impact {
                if change.destructive {
                    writeln!(
                        out,
                        "    {} {}",
                        p.bold_red("!"),
                        p.red(&terminal(&impact_sentence(impact)))
                    )?;
                } else {
                    writeln!(out, "    {}", p.dim(&terminal(&impact_sentence(impact))))?;
                }
            }
            if let Some(conversion) = &change.conversion {
                for line in conversion_lines(conversion) {
                    writeln!(out, "    {}", terminal(&line))?;
                }
            }
            if let Some(diff) = &change.body_diff {
                for line in diff.lines() {
                    let line = &*terminal(line);
                    let shown = if line.starts_with('+') && !line.starts_with("+++") {
                        p.green(line)
                    } else if line.starts_with('-') && !line.starts_with("---") {
                        p.red(line)
                    } else {
                        p.dim(line)
                    };
                    writeln!(out, "    {shown}")?;
                }
            }
            writeln!(
                out,
                "    {}",
                p.dim(&format!("runs {}", terminal(&statement_refs(change))))
            )?;
        }
        writeln!(out)?;
        let statements: usize = plan.changes.iter().map(|c| c.statements.len()).sum();
        let hint = if suggest_apply {
            "; run `retentionc apply` to make these changes"
        } else {
            ""
        };
        writeln!(
            out,
            "{} statement{} to apply{hint}.",
            statements,
            if statements == 1 { "" } else { "s" }
        )?;
        for note in transaction_notes(plan) {
            writeln!(out, "{note}")?;
        }
    }
    if !plan.unmanaged_tables.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Unmanaged (registered with pg_partman, no policy; left alone):"
        )?;
        for table in &plan.unmanaged_tables {
            writeln!(out, "  {}", terminal(table))?;
        }
    }
    Ok(())
}

/// A conversion's details, one line each: where an earlier run stopped, the steps, the
/// keys that gain the partition column.
fn conversion_lines(conversion: &crate::plan::ConversionPlan) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(at) = &conversion.resumes {
        lines.push(format!("resumes where the last run stopped: {at}"));
    }
    for (n, step) in conversion.steps.iter().enumerate() {
        lines.push(format!("{}. {step}", n + 1));
    }
    for key in &conversion.keys_extended {
        lines.push(format!(
            "key extended with the partition column (unique per partition key, not alone): {key}"
        ));
    }
    lines
}

/// How apply will divide the changes into transactions, when it matters (`plan::split`).
fn transaction_notes(plan: &Plan) -> Vec<String> {
    plan.apply_transactions
        .as_ref()
        .map(|t| t.notes(&plan.changes))
        .unwrap_or_default()
}

fn markdown_change(out: &mut impl Write, change: &Change) -> io::Result<()> {
    let warn = if change.destructive { "⚠️ " } else { "" };
    writeln!(
        out,
        "**{warn}{}** ({}): {}",
        md_code(&change.table),
        kind_name(change.kind),
        md_text(&change.summary)
    )?;
    writeln!(out)?;
    for note in &change.notes {
        writeln!(out, "- {}", md_text(note))?;
    }
    if !change.notes.is_empty() {
        writeln!(out)?;
    }
    if !change.settings.is_empty() {
        writeln!(out, "| setting | live | after apply |")?;
        writeln!(out, "|---|---|---|")?;
        for s in &change.settings {
            let drift = if s.drift {
                " (drift: changed by hand)"
            } else {
                ""
            };
            writeln!(
                out,
                "| {} | {}{drift} | {} |",
                md_code_in_table(&s.column),
                md_code_in_table(s.old.as_deref().unwrap_or("(unset)")),
                md_code_in_table(&s.new)
            )?;
        }
        writeln!(out)?;
    }
    if let Some(impact) = &change.impact {
        let sentence = md_text(&impact_sentence(impact));
        if change.destructive {
            writeln!(out, "> **Destructive:** {sentence}.")?;
        } else {
            writeln!(out, "> {sentence}.")?;
        }
        writeln!(out)?;
    }
    if let Some(conversion) = &change.conversion {
        for line in conversion_lines(conversion) {
            writeln!(out, "- {}", md_text(&line))?;
        }
        writeln!(out)?;
    }
    if let Some(diff) = &change.body_diff {
        writeln!(
            out,
            "<details><summary>Procedure body diff</summary>\n\n{}\n</details>\n",
            md_fence(diff, "diff")
        )?;
    }
    if !change.statements.is_empty() {
        writeln!(
            out,
            "<details><summary>SQL: {}</summary>\n",
            html_text(&statement_refs(change))
        )?;
        let mut sql = String::new();
        for s in &change.statements {
            sql.push_str(&s.sql);
            if !s.sql.ends_with('\n') {
                sql.push('\n');
            }
        }
        writeln!(out, "{}\n</details>\n", md_fence(&sql, "sql"))?;
    }
    Ok(())
}

/// A pull-request comment: marker line, summary table, destructive changes first, SQL
/// folded away.
pub fn write_markdown(plan: &Plan, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{MARKDOWN_MARKER}")?;
    write_markdown_changes(plan, out)?;
    write_markdown_footer(plan, out)
}

/// The markdown plan without its marker line and footer: heading, summary table, changes
/// and unmanaged tables (one database's section of a fleet's comment).
pub fn write_markdown_changes(plan: &Plan, out: &mut impl Write) -> io::Result<()> {
    if !plan.has_changes() {
        writeln!(
            out,
            "### retentionc plan: no changes\n\nThe database matches the policies."
        )?;
    } else {
        writeln!(out, "### retentionc plan: {}\n", counts(plan))?;
        writeln!(out, "| | table | change | summary |")?;
        writeln!(out, "|---|---|---|---|")?;
        let ordered: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| c.destructive)
            .chain(plan.changes.iter().filter(|c| !c.destructive))
            .collect();
        for c in &ordered {
            let mark = if c.destructive {
                "⚠️".to_string()
            } else {
                symbol(c.kind).to_string()
            };
            writeln!(
                out,
                "| {mark} | {} | {} | {} |",
                md_code_in_table(&c.table),
                kind_name(c.kind),
                md_text(&c.summary)
            )?;
        }
        writeln!(out)?;
        let destructive: Vec<&&Change> = ordered.iter().filter(|c| c.destructive).collect();
        if !destructive.is_empty() {
            writeln!(out, "#### ⚠️ Destructive changes\n")?;
            for c in destructive {
                markdown_change(out, c)?;
            }
        }
        let others: Vec<&&Change> = ordered.iter().filter(|c| !c.destructive).collect();
        if !others.is_empty() {
            writeln!(out, "#### Changes\n")?;
            for c in others {
                markdown_change(out, c)?;
            }
        }
    }
    for note in transaction_notes(plan) {
        writeln!(out, "\n{note}")?;
    }
    if !plan.unmanaged_tables.is_empty() {
        writeln!(
            out,
            "\n#### Unmanaged tables\n\nRegistered with pg_partman, named by no policy; left alone:\n"
        )?;
        for t in &plan.unmanaged_tables {
            writeln!(out, "- {}", md_code(t))?;
        }
    }
    Ok(())
}

/// When the plan was made, and against which live state.
pub fn write_markdown_footer(plan: &Plan, out: &mut impl Write) -> io::Result<()> {
    if let Some(at) = &plan.planned_at {
        writeln!(
            out,
            "\n<sub>Planned at {}; live fingerprint {}.</sub>",
            html_text(at),
            md_code(
                plan.live_fingerprint
                    .get(..12)
                    .unwrap_or(&plan.live_fingerprint)
            )
        )?;
    }
    Ok(())
}

/// The documented JSON form (docs/plan-json.md), also what `--out` saves.
pub fn write_json(plan: &Plan, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ConversionPlan, PlannedStatement, RuleImpact, SettingChange};

    fn statement(file: &str, key: &str, sql: &str) -> PlannedStatement {
        PlannedStatement {
            key: key.into(),
            file: file.into(),
            sql: sql.into(),
        }
    }

    fn change(table: &str, kind: ChangeKind, summary: &str) -> Change {
        Change {
            table: table.into(),
            kind,
            summary: summary.into(),
            destructive: false,
            impact: None,
            statements: vec![statement(&format!("{table}.sql"), "retention", "SELECT 1;")],
            settings: Vec::new(),
            body_diff: None,
            drift: false,
            notes: Vec::new(),
            conversion: None,
        }
    }

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            format_version: 2,
            live_fingerprint: "0123456789abcdef".into(),
            policy_hashes: Default::default(),
            changes,
            planned_at: None,
            unmanaged_tables: Vec::new(),
            apply_transactions: None,
        }
    }

    /// One change of each shape a view draws differently.
    fn every_shape() -> Plan {
        let mut register = change("public.a", ChangeKind::Register, "register");
        register.notes = vec!["adopts 2 partitions".into()];
        register.settings = vec![SettingChange {
            column: "premake".into(),
            old: None,
            new: "4".into(),
            drift: false,
        }];
        register.statements = vec![
            statement("public.a.sql", "setup", "SELECT 'setup';"),
            statement("other.sql", "privileges", "GRANT x;\n"),
            statement("public.a.sql", "retention", "SELECT 'retention';"),
        ];
        let mut shorter = change(
            "public.b",
            ChangeKind::RetentionSettings,
            "retention shorter",
        );
        shorter.destructive = true;
        shorter.drift = true;
        shorter.settings = vec![SettingChange {
            column: "retention".into(),
            old: Some("14 days".into()),
            new: "2 days".into(),
            drift: true,
        }];
        shorter.impact = Some(Impact {
            partitions: 2,
            from: Some("t0".into()),
            to: Some("t2".into()),
            estimated_rows: 1500,
            ..Impact::default()
        });
        let mut replace = change("public.c", ChangeKind::ReplaceProcedure, "new body");
        replace.body_diff = Some("--- live\n+++ policy\n-old\n+new\n same".into());
        replace.impact = Some(Impact {
            rules: vec![RuleImpact {
                rule: "junk".into(),
                estimated_rows: Some(7),
            }],
            ..Impact::default()
        });
        let mut convert = change("public.d", ChangeKind::ConvertTable, "convert");
        convert.conversion = Some(ConversionPlan {
            steps: vec!["copy".into(), "swap".into()],
            bytes: 0,
            estimated_rows: 0,
            estimated_seconds: 0,
            keys_extended: vec!["d_pkey (id) -> (id, at)".into()],
            resumes: Some("page 3 of 9".into()),
        });
        let drop = change("public.e", ChangeKind::DropProcedure, "drop procedure");
        let mut plan = plan(vec![register, shorter, replace, convert, drop]);
        plan.unmanaged_tables = vec!["public.legacy".into()];
        plan.planned_at = Some("2026-11-25 12:00:00 UTC".into());
        plan
    }

    fn text(plan: &Plan, color: bool, suggest_apply: bool) -> String {
        let mut out = Vec::new();
        write_text_with(plan, &mut out, color, suggest_apply).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn markdown(plan: &Plan) -> String {
        let mut out = Vec::new();
        write_markdown(plan, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_shows_every_shape_of_change() {
        let expected = r#"retentionc plan: 5 changes, 1 destructive, 1 drift

+ public.a: register
    adopts 2 partitions
    premake: (unset) -> 4
    runs public.a.sql [setup, retention]; other.sql [privileges]
~ public.b: retention shorter [destructive] [drift]
    retention: 14 days -> 2 days (changed by hand; apply restores it)
    ! the next maintenance would drop 2 partitions (t0 to t2), about 1,500 rows (from statistics)
    runs public.b.sql [retention]
~ public.c: new body
    delete rule junk matches about 7 rows now (planner estimate)
    --- live
    +++ policy
    -old
    +new
     same
    runs public.c.sql [retention]
~ public.d: convert
    resumes where the last run stopped: page 3 of 9
    1. copy
    2. swap
    key extended with the partition column (unique per partition key, not alone): d_pkey (id) -> (id, at)
    runs public.d.sql [retention]
- public.e: drop procedure
    runs public.e.sql [retention]

7 statements to apply; run `retentionc apply` to make these changes.

Unmanaged (registered with pg_partman, no policy; left alone):
  public.legacy
"#;
        assert_eq!(text(&every_shape(), false, true), expected);
    }

    #[test]
    fn text_in_colour_paints_symbols_values_impacts_and_diff_lines() {
        let expected = "\u{1b}[1mretentionc plan: 5 changes, 1 destructive, 1 drift\u{1b}[0m\n\n\u{1b}[32m+\u{1b}[0m public.a: register\n    adopts 2 partitions\n    premake: \u{1b}[31m(unset)\u{1b}[0m -> \u{1b}[32m4\u{1b}[0m\n    \u{1b}[2mruns public.a.sql [setup, retention]; other.sql [privileges]\u{1b}[0m\n\u{1b}[33m~\u{1b}[0m public.b: retention shorter \u{1b}[1;31m[destructive]\u{1b}[0m \u{1b}[33m[drift]\u{1b}[0m\n    retention: \u{1b}[31m14 days\u{1b}[0m -> \u{1b}[32m2 days\u{1b}[0m\u{1b}[2m (changed by hand; apply restores it)\u{1b}[0m\n    \u{1b}[1;31m!\u{1b}[0m \u{1b}[31mthe next maintenance would drop 2 partitions (t0 to t2), about 1,500 rows (from statistics)\u{1b}[0m\n    \u{1b}[2mruns public.b.sql [retention]\u{1b}[0m\n\u{1b}[33m~\u{1b}[0m public.c: new body\n    \u{1b}[2mdelete rule junk matches about 7 rows now (planner estimate)\u{1b}[0m\n    \u{1b}[2m--- live\u{1b}[0m\n    \u{1b}[2m+++ policy\u{1b}[0m\n    \u{1b}[31m-old\u{1b}[0m\n    \u{1b}[32m+new\u{1b}[0m\n    \u{1b}[2m same\u{1b}[0m\n    \u{1b}[2mruns public.c.sql [retention]\u{1b}[0m\n\u{1b}[33m~\u{1b}[0m public.d: convert\n    resumes where the last run stopped: page 3 of 9\n    1. copy\n    2. swap\n    key extended with the partition column (unique per partition key, not alone): d_pkey (id) -> (id, at)\n    \u{1b}[2mruns public.d.sql [retention]\u{1b}[0m\n\u{1b}[31m-\u{1b}[0m public.e: drop procedure\n    \u{1b}[2mruns public.e.sql [retention]\u{1b}[0m\n\n7 statements to apply; run `retentionc apply` to make these changes.\n\nUnmanaged (registered with pg_partman, no policy; left alone):\n  public.legacy\n";
        assert_eq!(text(&every_shape(), true, true), expected);
    }

    #[test]
    fn markdown_shows_every_shape_of_change_destructive_first() {
        let expected = r#"<!-- retentionc-plan -->
### retentionc plan: 5 changes, 1 destructive, 1 drift

| | table | change | summary |
|---|---|---|---|
| ⚠️ | `public.b` | retention settings | retention shorter |
| + | `public.a` | register | register |
| ~ | `public.c` | replace procedure | new body |
| ~ | `public.d` | convert table | convert |
| - | `public.e` | drop procedure | drop procedure |

#### ⚠️ Destructive changes

**⚠️ `public.b`** (retention settings): retention shorter

| setting | live | after apply |
|---|---|---|
| `retention` | `14 days` (drift: changed by hand) | `2 days` |

> **Destructive:** the next maintenance would drop 2 partitions (t0 to t2), about 1,500 rows (from statistics).

<details><summary>SQL: public.b.sql [retention]</summary>

```sql
SELECT 1;
```

</details>

#### Changes

**`public.a`** (register): register

- adopts 2 partitions

| setting | live | after apply |
|---|---|---|
| `premake` | `(unset)` | `4` |

<details><summary>SQL: public.a.sql [setup, retention]; other.sql [privileges]</summary>

```sql
SELECT 'setup';
GRANT x;
SELECT 'retention';
```

</details>

**`public.c`** (replace procedure): new body

> delete rule junk matches about 7 rows now (planner estimate).

<details><summary>Procedure body diff</summary>

```diff
--- live
+++ policy
-old
+new
 same
```

</details>

<details><summary>SQL: public.c.sql [retention]</summary>

```sql
SELECT 1;
```

</details>

**`public.d`** (convert table): convert

- resumes where the last run stopped: page 3 of 9
- 1. copy
- 2. swap
- key extended with the partition column (unique per partition key, not alone): d\_pkey (id) -> (id, at)

<details><summary>SQL: public.d.sql [retention]</summary>

```sql
SELECT 1;
```

</details>

**`public.e`** (drop procedure): drop procedure

<details><summary>SQL: public.e.sql [retention]</summary>

```sql
SELECT 1;
```

</details>


#### Unmanaged tables

Registered with pg_partman, named by no policy; left alone:

- `public.legacy`

<sub>Planned at 2026-11-25 12:00:00 UTC; live fingerprint `0123456789ab`.</sub>
"#;
        assert_eq!(markdown(&every_shape()), expected);
    }

    #[test]
    fn the_plan_command_s_text_ends_with_the_hint_to_apply() {
        let plan = plan(vec![change(
            "public.a",
            ChangeKind::AddSchedule,
            "schedule",
        )]);
        let mut out = Vec::new();
        write_text(&plan, &mut out, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text(&plan, false, true));
        assert!(
            text(&plan, false, true).ends_with("; run `retentionc apply` to make these changes.\n")
        );
    }

    #[test]
    fn text_shown_by_apply_counts_one_change_and_statement_without_the_hint() {
        let plan = plan(vec![change(
            "public.a",
            ChangeKind::AddSchedule,
            "schedule",
        )]);
        assert_eq!(
            text(&plan, false, false),
            "retentionc plan: 1 change\n\n+ public.a: schedule\n    runs public.a.sql [retention]\n\n1 statement to apply.\n"
        );
    }

    #[test]
    fn a_plan_without_changes_says_so_in_both_views() {
        let mut plan = plan(Vec::new());
        assert_eq!(
            text(&plan, true, true),
            "No changes: the database matches the policies.\n"
        );
        assert_eq!(
            markdown(&plan),
            "<!-- retentionc-plan -->\n### retentionc plan: no changes\n\nThe database matches the policies.\n"
        );
        // A fingerprint shorter than its shown prefix is shown whole.
        plan.live_fingerprint = "abc".into();
        plan.planned_at = Some("now".into());
        let mut footer = Vec::new();
        write_markdown_footer(&plan, &mut footer).unwrap();
        assert_eq!(
            String::from_utf8(footer).unwrap(),
            "\n<sub>Planned at now; live fingerprint `abc`.</sub>\n"
        );
    }

    #[test]
    fn markdown_without_destructive_changes_has_no_destructive_section() {
        let plan = plan(vec![change("public.a", ChangeKind::OwnerRights, "grant")]);
        let shown = markdown(&plan);
        assert!(!shown.contains("Destructive"), "{shown}");
        assert!(
            shown.contains("| + | `public.a` | owner rights | grant |"),
            "{shown}"
        );
        assert!(
            shown.contains("#### Changes\n\n**`public.a`** (owner rights): grant\n"),
            "{shown}"
        );
    }

    #[test]
    fn both_views_explain_a_split_apply() {
        let mut plan = plan(vec![
            change("public.a", ChangeKind::RetentionSettings, "a"),
            change("public.b", ChangeKind::RetentionSettings, "b"),
        ]);
        plan.apply_transactions = Some(Box::new(crate::plan::split::ApplyTransactions {
            lock_settings: crate::catalog::LockSettings {
                max_locks_per_transaction: 64,
                max_connections: 2,
                max_prepared_transactions: 0,
            },
            lock_capacity: 128,
            budget: 65,
            estimated_locks: 72,
            transactions: vec![
                crate::plan::split::TransactionPart {
                    first_change: 0,
                    changes: 1,
                    estimated_locks: 68,
                },
                crate::plan::split::TransactionPart {
                    first_change: 1,
                    changes: 1,
                    estimated_locks: 68,
                },
            ],
        }));
        let notes = transaction_notes(&plan);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("The changes need about 72 locks"),
            "{notes:?}"
        );
        let shown = text(&plan, false, true);
        assert!(
            shown.ends_with(&format!(
                "make these changes.\n{}\n{}\n",
                notes[0], notes[1]
            )),
            "{shown}"
        );
        let shown = markdown(&plan);
        assert!(
            shown.ends_with(&format!("\n{}\n\n{}\n", notes[0], notes[1])),
            "{shown}"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_and_not_when_no_color_is_set() {
        assert!(color_for(true, None));
        assert!(color_for(true, Some("".into())));
        assert!(!color_for(true, Some("1".into())));
        assert!(!color_for(false, None));
        assert!(!color_for(false, Some("".into())));
    }

    #[test]
    fn json_is_the_plan_and_a_final_newline() {
        let plan = every_shape();
        let mut out = Vec::new();
        write_json(&plan, &mut out).unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert!(shown.ends_with("}\n"), "{shown}");
        let back: Plan = serde_json::from_str(&shown).unwrap();
        assert_eq!(back.changes, plan.changes);
        assert_eq!(back.unmanaged_tables, plan.unmanaged_tables);
    }

    #[test]
    fn thousands_groups_digits_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn impact_sentences_name_what_expires_and_how() {
        assert_eq!(
            impact_sentence(&Impact::default()),
            "no partition is old enough to expire at the next maintenance"
        );
        let detach = Impact {
            partitions: 1,
            estimated_rows: 12,
            expired: Some("detach".into()),
            partitions_without_statistics: 1,
            ..Impact::default()
        };
        assert_eq!(
            impact_sentence(&detach),
            "the next maintenance would detach 1 partition, about 12 rows (from statistics; 1 never analysed)"
        );
        let archive = Impact {
            partitions: 3,
            from: Some("t0".into()),
            expired: Some("archive".into()),
            ..Impact::default()
        };
        assert_eq!(
            impact_sentence(&archive),
            "the next maintenance would detach and move to the archive schema 3 partitions, about 0 rows (from statistics)"
        );
        let rules = Impact {
            rules: vec![
                RuleImpact {
                    rule: "junk".into(),
                    estimated_rows: Some(5000),
                },
                RuleImpact {
                    rule: "spam".into(),
                    estimated_rows: None,
                },
            ],
            ..Impact::default()
        };
        assert_eq!(
            impact_sentence(&rules),
            "delete rule junk matches about 5,000 rows now (planner estimate); delete rule spam would delete the rows it matches (no estimate)"
        );
    }
}
