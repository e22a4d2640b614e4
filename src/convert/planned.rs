//! The change plan shows for a plain table a policy wants partitioned: its steps, its size
//! and a time estimate, and the statements of generated/<table>.convert.sql that make it.

use crate::convert::facts::ConversionFacts;
use crate::convert::names::ConversionNames;
use crate::convert::statements::ROUTINE_KEYS;
use crate::model::{Config, Policy};
use crate::plan::diff::{self, planned};
use crate::plan::format::thousands;
use crate::plan::{Change, ChangeKind, ConversionPlan, PlannedStatement};
use crate::render::CompiledFile;

/// Rows of the table (copied or left out) gone through per second, for the estimate: what
/// `cargo bench --bench convert` measured on a busy 2-core machine (2,000,000 rows in 19 s),
/// rounded down (see docs/convert.md).
pub const ASSUMED_ROWS_PER_SECOND: u64 = 100_000;

/// The steps of a conversion, in order, after its routines
/// ([`ROUTINE_KEYS`](crate::convert::statements::ROUTINE_KEYS)).
pub const STEP_KEYS: [&str; 5] = ["prepare", "capture", "batch", "catch_up", "swap"];

/// The keys of the conversion file a conversion runs, in order (the routines, then steps
/// 1 to 4); `revert` and `finish` are run only by `convert --revert` and `--finish`.
pub fn applied_keys() -> impl Iterator<Item = &'static str> {
    ROUTINE_KEYS.iter().chain(&STEP_KEYS).copied()
}

/// The policy file's statement run after the swap: the owner's rights to run retention.
pub const POLICY_KEYS_AFTER_SWAP: [&str; 1] = ["privileges"];

pub fn change(
    config: &Config,
    policy: &Policy,
    facts: &ConversionFacts,
    conversion_file: &CompiledFile,
    policy_file: &CompiledFile,
) -> Change {
    let table = policy.table.to_string();
    let p = policy
        .partitioning
        .as_ref()
        .expect("a conversion is planned for a policy with partitioning");
    let names = ConversionNames::of(&policy.table);
    let schema = policy.table.schema.as_str();
    let rows = facts.estimated_rows.max(0.0) as u64;
    let done = facts
        .progress
        .as_ref()
        .map(|p| p.progress_share)
        .unwrap_or(0.0)
        .clamp(0.0, 1.0);
    let rows_left = (rows as f64 * (1.0 - done)) as u64;
    let estimated_seconds = rows_left.div_ceil(ASSUMED_ROWS_PER_SECOND);
    let keys_extended: Vec<String> = facts
        .keys_extended
        .iter()
        .map(|(name, columns)| {
            format!(
                "{name} ({}) -> ({}, {})",
                columns.join(", "),
                columns.join(", "),
                p.column
            )
        })
        .collect();
    let skipped = match &policy.retention {
        Some(r) => format!(
            ", leaving out rows older than {} + {} (retention would expire them at once; they stay in {schema}.{})",
            r.keep, p.interval, names.retired
        ),
        None => String::new(),
    };
    // A fill under way goes on in the order it started in.
    let oldest_first = match &facts.progress {
        Some(p) if p.phase == "filling" => p.fill_order == "time",
        _ => facts.time_index.is_some(),
    };
    let order = match &facts.time_index {
        _ if !oldest_first => format!(
            "in heap order (no index on {column} to walk oldest first; CREATE INDEX CONCURRENTLY ON {table} ({column}) before the conversion starts makes it oldest first)",
            column = p.column
        ),
        Some(index) => format!("oldest first (ranges of {} on the index {index})", p.column),
        None => format!("oldest first (ranges of {})", p.column),
    };
    let steps = vec![
        format!(
            "create {schema}.{} like {table} (columns, defaults, identity, indexes, constraints, grants, comments, owner), partitioned by range on {}, and register it with pg_partman ({} partitions, premake {}, no retention yet)",
            names.twin, p.column, p.interval, p.premake
        ),
        format!(
            "record every write to {table} from then on (triggers; TRUNCATE refused until the conversion ends)"
        ),
        format!(
            "copy the rows in committed batches, {order}{skipped}; a stopped conversion resumes at its last batch"
        ),
        "replay the writes recorded meanwhile (updates and deletes included)".to_string(),
        format!(
            "swap names in one short transaction (lock_timeout {} ms, retried): {table} becomes the partitioned table; the original stays as {schema}.{} until you drop it (retentionc never drops it)",
            config.lock_timeout_ms, names.retired
        ),
        format!(
            "writes go on being recorded until `retentionc convert {table} --finish`; until then `--revert` undoes the conversion"
        ),
    ];
    let resumes = facts.progress.as_ref().map(|p| {
        let rows = thousands(p.rows_copied.max(0) as u64);
        match p.progress.as_deref() {
            _ if p.phase != "filling" => "prepared; no row copied yet".to_string(),
            _ if p.progress_share >= 1.0 => format!("all {rows} rows copied"),
            Some(at) if p.rows_copied > 0 => format!("{rows} rows copied so far, {at}"),
            _ => "writes recorded; no row copied yet".to_string(),
        }
    });
    let summary = match &resumes {
        Some(at) => format!(
            "resume the conversion to a pg_partman partitioned table on {} ({at}); about {} left (apply --convert, or retentionc convert {table})",
            p.column,
            duration_text(estimated_seconds)
        ),
        None => format!(
            "convert the plain table to a pg_partman partitioned table on {} (about {} rows, {}; about {}; apply --convert, or retentionc convert {table})",
            p.column,
            thousands(rows),
            bytes_text(facts.bytes.max(0) as u64),
            duration_text(estimated_seconds)
        ),
    };
    let mut statements: Vec<PlannedStatement> = applied_keys()
        .filter_map(|key| conversion_file.statement(key))
        .map(|s| planned(conversion_file, s))
        .collect();
    statements.extend(
        POLICY_KEYS_AFTER_SWAP
            .iter()
            .filter_map(|key| policy_file.statement(key))
            .map(|s| planned(policy_file, s)),
    );
    let mut change = diff::change(&table, ChangeKind::ConvertTable, summary, statements);
    change.conversion = Some(ConversionPlan {
        steps,
        bytes: facts.bytes.max(0) as u64,
        estimated_rows: rows,
        estimated_seconds,
        keys_extended,
        resumes,
    });
    change
}

/// `180 MB`, `2.1 GB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `40 s`, `12 min`, `3.5 h`.
pub fn duration_text(seconds: u64) -> String {
    match seconds {
        0..=1 => "a second".to_string(),
        2..=119 => format!("{seconds} s"),
        120..=7199 => format!("{} min", seconds.div_ceil(60)),
        _ => format!("{:.1} h", seconds as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes_text(0), "0 bytes");
        assert_eq!(bytes_text(5 * 1024 * 1024 / 2), "2.5 MB");
        assert_eq!(bytes_text(180 * 1024 * 1024), "180 MB");
        assert_eq!(duration_text(0), "a second");
        assert_eq!(duration_text(40), "40 s");
        assert_eq!(duration_text(600), "10 min");
        assert_eq!(duration_text(3 * 3600 + 1800), "3.5 h");
        assert_eq!(thousands(2_000_000), "2,000,000");
    }
}
