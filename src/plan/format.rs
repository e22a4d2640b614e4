//! A plan as text (terminal), markdown (pull-request comment) or JSON (machines).
//! Each writer takes any `io::Write`, so tests snapshot a `Vec<u8>`.

use std::io::{self, IsTerminal, Write};

use crate::output::{html_text, md_code, md_code_in_table, md_fence, md_text, terminal};
use crate::plan::{Change, ChangeKind, Impact, Plan};

/// First line of every markdown plan: a bot finds its earlier comment by it and updates it.
pub const MARKDOWN_MARKER: &str = "<!-- retentionc-plan -->";

/// Colour when stdout is a terminal and NO_COLOR is unset or empty.
pub fn color_wanted() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
