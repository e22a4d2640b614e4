//! Adopting a range-partitioned table that already has partitions pg_partman did not
//! make (partitioned by hand, or by another tool). Pure: the live catalog in, what the
//! `[adopt]` statement will do (or why it must not run) out.
//!
//! The existing partitions are kept as they are, names included. pg_partman is
//! registered with `p_start_partition` at the end of the newest one, so its first
//! partition starts where they stop and none overlaps them. Both pg_partman majors then
//! expire every child by its bounds: retention drops a child once its lower bound plus
//! one partition interval is older than `keep` (`drop_partition_time`, through
//! `show_partition_info`, which reads the bounds from the catalog). What that needs, and
//! what is checked here:
//!
//! - every child has time bounds (no MINVALUE/MAXVALUE), and none that still holds time
//!   inside the window is wider than one interval (pg_partman would drop it once its first
//!   interval is old, rows inside the window with it);
//! - the newest child ends on pg_partman's grid (the start of a month, day, hour, ...
//!   for the interval), or pg_partman's first partition would overlap it;
//! - pg_partman 4 orders children by the text after the last `_p` in their names
//!   (`show_partitions`): a name holding `_p` must be pg_partman's own name for its
//!   bounds, or that order (and maintenance with it) breaks; names without `_p` sort
//!   before pg_partman's. pg_partman 5 orders by bounds, but skips making a partition
//!   whose name is taken: a child may not bear the name of a partition still to be made;
//! - the default partition holds no row at or after pg_partman's first partition (it
//!   could not make partitions over them). An existing default partition is kept and
//!   becomes pg_partman's: pg_partman 5 is told not to make one, and pg_partman 4, which
//!   always makes its own, has it swapped back for the existing one in the same statement;
//! - pg_partman 5 registers only a NOT NULL partition key.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};

use crate::catalog::{ChildPartition, Live};
use crate::model::{Interval, PartmanMajor, Policy};
use crate::plan::checks::error_at;
use crate::plan::impact::{bound_time, range_bounds, time_text};
use crate::policy::error::PolicyError;

/// What `[adopt]` will do with a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// The existing partitions, oldest first: kept as they are, expired by their bounds.
    pub kept: Vec<KeptPartition>,
    /// Where pg_partman's first partition starts (the end of the newest kept one, or
    /// `premake` partitions back from now when there is none), and why there.
    pub start: DateTime<Utc>,
    pub start_from: String,
    /// How many partitions pg_partman makes when it registers the table, and where the
    /// last of them ends.
    pub made: u64,
    pub made_until: DateTime<Utc>,
    pub default: DefaultPartition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeptPartition {
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefaultPartition {
    /// The existing default partition, which pg_partman uses from then on, and its rows
    /// (from statistics; None when never analysed).
    Kept { name: String, rows: Option<u64> },
    /// pg_partman makes one (`<table>_default`).
    Made,
    /// No default partition (`default_partition: false`, pg_partman 5).
    None,
}

impl Adoption {
    /// The partitions pg_partman makes, as one child the way the catalog shows bounds.
    pub fn first_made_partition(&self, epoch: crate::model::Epoch) -> ChildPartition {
        use crate::model::Epoch;
        let bound = |t: DateTime<Utc>| match epoch {
            Epoch::None => t.format("'%Y-%m-%d %H:%M:%S+00'").to_string(),
            Epoch::Seconds => t.timestamp().to_string(),
            Epoch::Milliseconds => t.timestamp_millis().to_string(),
            Epoch::Microseconds => t.timestamp_micros().to_string(),
            Epoch::Nanoseconds => t.timestamp_nanos_opt().unwrap_or(i64::MAX).to_string(),
        };
        ChildPartition {
            name: "(the partitions pg_partman makes)".into(),
            bound: format!(
                "FOR VALUES FROM ({}) TO ({})",
                bound(self.start),
                bound(self.made_until)
            ),
            estimated_rows: 0.0,
        }
    }

    /// Lines for the plan: how the partitions are adopted, what pg_partman makes, what
    /// becomes of the default partition.
    pub fn describe(&self, table: &str) -> Vec<String> {
        let mut lines = Vec::new();
        if let (Some(first), Some(last)) = (self.kept.first(), self.kept.last()) {
            lines.push(format!(
                "keeps its {} existing partition{} as they are, names included ({} to {}, {} to {}); pg_partman expires them by their bounds like its own",
                self.kept.len(),
                if self.kept.len() == 1 { "" } else { "s" },
                first.name,
                last.name,
                time_text(first.from),
                time_text(last.to)
            ));
        }
        let from_where = &self.start_from;
        lines.push(format!(
            "pg_partman makes {} partition{} from {} ({from_where}) to {}; later ones at each maintenance",
            self.made,
            if self.made == 1 { "" } else { "s" },
            time_text(self.start),
            time_text(self.made_until)
        ));
        lines.push(match &self.default {
            DefaultPartition::Kept { name, rows } => {
                let held = match rows {
                    Some(0) => "it holds no row".to_string(),
                    Some(n) => format!("it holds about {n} rows, which retention never expires (rows of the default partition stay until moved or deleted)"),
                    None => "it was never analysed: rows in it stay until moved or deleted, as retention never expires them".to_string(),
                };
                format!(
                    "keeps the default partition {name} as pg_partman's default partition; {held}; none is at or after {}",
                    time_text(self.start)
                )
            }
            DefaultPartition::Made => format!("pg_partman makes a default partition ({table}_default)"),
            DefaultPartition::None => "no default partition (default_partition: false)".into(),
        });
        lines
    }
}

/// The adoption of `policy`'s table, when it is one to adopt: range-partitioned on the
/// policy's column, not registered with pg_partman, with partitions already. None when
/// `[setup]` registers it (no partition at all) or it is registered already. Errors name
/// the policy key that the problem concerns.
pub fn adoption(
    policy: &Policy,
    live: &Live,
    major: PartmanMajor,
) -> Option<Result<Adoption, Vec<PolicyError>>> {
    let p = policy.partitioning.as_ref()?;
    let table = policy.table.to_string();
    if live.part_config.iter().any(|r| r.parent_table == table) {
        return None;
    }
    let children = live.children.get(&table).filter(|c| !c.is_empty())?;
    let mut errors = Vec::new();
    let (kept, default) = kept_partitions(policy, children, &mut errors);
    check_widths(policy, &kept, live, &mut errors);
    if !kept.is_empty() && p.start.is_some() {
        errors.push(error_at(
            policy,
            "partitioning.start",
            format!(
                "{table} has partitions already; pg_partman continues after the newest one, so \"start\" does not apply: remove it"
            ),
        ));
    }
    let nullable = !live
        .tables
        .get(&table)
        .is_some_and(|t| t.not_null_columns.iter().any(|c| c == p.column.as_str()));
    if major == PartmanMajor::V5 && nullable {
        errors.push(not_null_error(policy));
    }
    let now = live.now.naive_utc();
    let (start, start_from) = first_partition(policy, &kept, now, &mut errors);
    let (made, made_until) = made_partitions(start, now, &p.interval, p.premake);
    errors.extend(name_conflicts(policy, &kept, start, major));
    let default = default_partition(policy, default, live, start, major, &mut errors);
    if !errors.is_empty() {
        return Some(Err(errors));
    }
    Some(Ok(Adoption {
        kept,
        start: start.and_utc(),
        start_from,
        made,
        made_until: made_until.and_utc(),
        default,
    }))
}

/// The children with their bounds, oldest first, and the default partition; a child
/// bounded by MINVALUE or MAXVALUE is an error.
fn kept_partitions<'c>(
    policy: &Policy,
    children: &'c [ChildPartition],
    errors: &mut Vec<PolicyError>,
) -> (Vec<KeptPartition>, Option<&'c ChildPartition>) {
    let epoch = policy
        .partitioning
        .as_ref()
        .map(|p| p.epoch)
        .unwrap_or(crate::model::Epoch::None);
    let mut kept = Vec::new();
    let mut default = None;
    for child in children {
        if child.bound == "DEFAULT" {
            default = Some(child);
            continue;
        }
        match child_bounds(child, epoch) {
            Some((from, to)) => kept.push(KeptPartition {
                name: child.name.clone(),
                from,
                to,
            }),
            None => errors.push(error_at(
                policy,
                "partitioning.column",
                format!(
                    "{} has the partition {} bounded {}; pg_partman reads the lower bound of every partition as a time, \
                     so a partition bounded by MINVALUE or MAXVALUE breaks its maintenance: split it or detach it first",
                    policy.table, child.name, child.bound
                ),
            )),
        }
    }
    kept.sort_by_key(|k| k.from);
    (kept, default)
}

/// A partition wider than one interval loses the rows of its later part early, unless all
/// of it is older than keep already.
fn check_widths(
    policy: &Policy,
    kept: &[KeptPartition],
    live: &Live,
    errors: &mut Vec<PolicyError>,
) {
    let (Some(p), Some(retention)) = (&policy.partitioning, &policy.retention) else {
        return;
    };
    let window_start = crate::plan::impact::cutoff(live.now, &retention.keep);
    for child in kept.iter().filter(|c| c.to > window_start) {
        let one_interval = p.interval.after(child.from.naive_utc());
        if one_interval.is_some_and(|end| end < child.to.naive_utc()) {
            errors.push(error_at(
                policy,
                "partitioning.interval",
                format!(
                    "the partition {} of {} spans {} to {}, more than one partition of {}; pg_partman expires a partition once its \
                     lower bound plus one interval is older than keep, so rows of its later part would expire while still inside \
                     the window. Set interval to the width of the existing partitions, or split that partition first",
                    child.name,
                    policy.table,
                    time_text(child.from),
                    time_text(child.to),
                    p.interval
                ),
            ));
        }
    }
}

/// Where pg_partman's first partition starts, and why there: the end of the newest kept
/// partition (which must be on pg_partman's grid), or, when that is further back than
/// premake partitions from now or there is none, where it starts for a new table.
fn first_partition(
    policy: &Policy,
    kept: &[KeptPartition],
    now: NaiveDateTime,
    errors: &mut Vec<PolicyError>,
) -> (NaiveDateTime, String) {
    let p = policy
        .partitioning
        .as_ref()
        .expect("adopted tables are partitioned");
    let back = p.interval.times(i64::from(p.premake)).unwrap_or_default();
    let premake_back = before(now, &back);
    match kept.iter().map(|k| k.to).max() {
        Some(newest) if newest.naive_utc() >= premake_back => {
            let aligned = pg_partman_base(newest.naive_utc(), &p.interval);
            if aligned != newest.naive_utc() {
                errors.push(error_at(
                    policy,
                    "partitioning.interval",
                    format!(
                        "the newest partition of {} ends at {}, which is not where a pg_partman partition of {} starts \
                         (pg_partman starts them at {}); its first partition would overlap the existing ones. \
                         Add or extend partitions by hand up to {}, then plan again",
                        policy.table,
                        time_text(newest),
                        p.interval,
                        grid_name(&p.interval),
                        p.interval
                            .after(aligned)
                            .map(|t| time_text(t.and_utc()))
                            .unwrap_or_default()
                    ),
                ));
            }
            (aligned, "where the existing ones end".to_string())
        }
        Some(newest) => (
            pg_partman_base(premake_back, &p.interval),
            format!(
                "premake partitions back from now; the existing ones end at {}, and rows between go to the default partition",
                time_text(newest)
            ),
        ),
        None => match &p.start {
            Some(start) => (
                pg_partman_base(parse_start(start).unwrap_or(now), &p.interval),
                "partitioning.start".to_string(),
            ),
            None => (
                pg_partman_base(premake_back, &p.interval),
                "premake partitions back from now".to_string(),
            ),
        },
    }
}

/// What becomes of the default partition: the existing one is kept (and must hold no row
/// where pg_partman's partitions start), else pg_partman makes one unless told not to.
fn default_partition(
    policy: &Policy,
    existing: Option<&ChildPartition>,
    live: &Live,
    start: NaiveDateTime,
    major: PartmanMajor,
    errors: &mut Vec<PolicyError>,
) -> DefaultPartition {
    let Some(p) = &policy.partitioning else {
        return DefaultPartition::None;
    };
    let Some(child) = existing else {
        return match (major, p.default_partition) {
            (PartmanMajor::V5, false) => DefaultPartition::None,
            _ => DefaultPartition::Made,
        };
    };
    let newest_row = live
        .default_rows
        .get(&policy.table.to_string())
        .and_then(|d| d.newest.as_deref())
        .and_then(|v| bound_time(v, p.epoch));
    if let Some(newest) = newest_row.filter(|n| n.naive_utc() >= start) {
        errors.push(error_at(
            policy,
            "partitioning",
            format!(
                "the default partition {} of {} holds rows up to {}, at or after {}, where pg_partman's partitions \
                 will start; pg_partman cannot make a partition over rows of the default partition. Move those rows into \
                 partitions of their own first (create each partition, moving its rows out of the default partition in the \
                 same transaction), or delete them",
                child.name,
                policy.table,
                time_text(newest),
                time_text(start.and_utc())
            ),
        ));
    }
    DefaultPartition::Kept {
        name: child.name.clone(),
        rows: (child.estimated_rows >= 0.0).then(|| child.estimated_rows.round() as u64),
    }
}

/// pg_partman 5 refuses a nullable partition key (`create_parent`'s p_control_not_null).
pub fn not_null_error(policy: &Policy) -> PolicyError {
    let column = policy
        .partitioning
        .as_ref()
        .map(|p| p.column.to_string())
        .unwrap_or_default();
    error_at(
        policy,
        "partitioning.column",
        format!(
            "column {column} of {} may hold NULL; pg_partman 5 registers only a NOT NULL partition key. \
             Run ALTER TABLE {} ALTER COLUMN {column} SET NOT NULL first (it reads the whole table under an exclusive lock)",
            policy.table,
            policy.table.quoted()
        ),
    )
}

/// A child's bounds as times; None for MINVALUE, MAXVALUE or anything unreadable.
fn child_bounds(
    child: &ChildPartition,
    epoch: crate::model::Epoch,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (from, to) = range_bounds(&child.bound)?;
    Some((bound_time(&from, epoch)?, bound_time(&to, epoch)?))
}

/// `t - interval`, as PostgreSQL subtracts (months, then days, then time).
fn before(t: NaiveDateTime, interval: &Interval) -> NaiveDateTime {
    crate::plan::impact::cutoff(t.and_utc(), interval).naive_utc()
}

/// `partitioning.start` text as a time (UTC when it has no offset, as apply's session).
fn parse_start(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim().replace('T', " ");
    if let Ok(d) = chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0);
    }
    let with_offset = t.replace('Z', "+00");
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(&with_offset, format) {
            return Some(d.naive_utc());
        }
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&t, f).ok())
}

/// Where pg_partman puts the first partition for a start time: the start truncated to
/// the interval's unit (`calculate_time_partition_info` in 5.x, the same chain in
/// 4.7's `create_parent`): a year or more to the year (decade, century, millennium),
/// less to the month, less than a month to the day, less than a day to the hour, less
/// than a minute to the minute.
pub fn pg_partman_base(t: NaiveDateTime, interval: &Interval) -> NaiveDateTime {
    // PostgreSQL compares intervals with 30-day months: '1 year' is 360 days to it.
    let c = interval.comparable();
    let minute = 60_000_000_i128;
    let day = 24 * 60 * minute;
    let month = 30 * day;
    let year = 12 * month;
    let date = t.date();
    let midnight = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight");
    let ymd = |y: i32, m: u32| chrono::NaiveDate::from_ymd_opt(y, m, 1).map(midnight);
    if c >= year {
        let y = date.year();
        let truncated = if c >= 1000 * year {
            (y - 1).div_euclid(1000) * 1000 + 1
        } else if c >= 100 * year {
            (y - 1).div_euclid(100) * 100 + 1
        } else if c >= 10 * year {
            y.div_euclid(10) * 10
        } else {
            y
        };
        return ymd(truncated, 1).unwrap_or(t);
    }
    if c >= month {
        return ymd(date.year(), date.month()).unwrap_or(t);
    }
    if c >= day {
        return midnight(date);
    }
    if c >= minute {
        return date.and_hms_opt(t.hour(), 0, 0).unwrap_or(t);
    }
    date.and_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t)
}

/// "the start of a month", ... for messages.
fn grid_name(interval: &Interval) -> &'static str {
    let base = pg_partman_base(
        chrono::NaiveDate::from_ymd_opt(2001, 2, 3)
            .and_then(|d| d.and_hms_opt(4, 5, 6))
            .expect("a valid time"),
        interval,
    );
    match (base.month(), base.day(), base.hour(), base.minute()) {
        (1, 1, 0, 0) => "the start of a year",
        (_, 1, 0, 0) => "the start of a month",
        (_, _, 0, 0) => "midnight UTC",
        (_, _, _, 0) => "the start of an hour",
        _ => "the start of a minute",
    }
}

/// The partitions `create_parent` makes from `base`: that one, and each next one that
/// starts before `now + premake * interval`. Returns their number and the end of the last.
fn made_partitions(
    base: NaiveDateTime,
    now: NaiveDateTime,
    interval: &Interval,
    premake: u32,
) -> (u64, NaiveDateTime) {
    let horizon = interval
        .times(i64::from(premake))
        .and_then(|ahead| ahead.after(now))
        .unwrap_or(now);
    let mut count = 1_u64;
    while let Some(next) = interval
        .times(count as i64)
        .and_then(|step| step.after(base))
    {
        if next >= horizon || count > 1_000_000 {
            break;
        }
        count += 1;
    }
    let end = interval
        .times(count as i64)
        .and_then(|step| step.after(base))
        .unwrap_or(base);
    (count, end)
}

/// Children whose names pg_partman would misread (4) or take for a partition it still
/// has to make (5).
fn name_conflicts(
    policy: &Policy,
    kept: &[KeptPartition],
    start: NaiveDateTime,
    major: PartmanMajor,
) -> Vec<PolicyError> {
    let table = policy.table.to_string();
    let Some(p) = policy.partitioning.as_ref() else {
        return Vec::new();
    };
    let parent = policy.table.name.as_str();
    let mut errors = Vec::new();
    for child in kept {
        let name = relname(&child.name);
        let own = format!(
            "{parent}_p{}",
            child
                .from
                .naive_utc()
                .format(&suffix_format(major, &p.interval))
        );
        if name == own {
            continue;
        }
        let why = match major {
            PartmanMajor::V4 if name.contains("_p") => Some(format!(
                "pg_partman 4 orders partitions by the text after the last \"_p\" in their names, read as a time, and this one's is not its \
                 own lower bound ({own} would be)"
            )),
            PartmanMajor::V5 => name
                .strip_prefix(&format!("{parent}_p"))
                .and_then(|suffix| parse_suffix(suffix, &p.interval))
                .filter(|t| *t >= start)
                .map(|t| {
                    format!(
                        "it bears the name pg_partman gives the partition from {}, which pg_partman would then not make",
                        time_text(t.and_utc())
                    )
                }),
            _ => None,
        };
        if let Some(why) = why {
            errors.push(error_at(
                policy,
                "partitioning",
                format!(
                    "the partition {} of {table} cannot keep its name under pg_partman: {why}. Rename it first \
                     (ALTER TABLE {} RENAME TO {own}), or to a name without \"_p\"",
                    child.name, child.name
                ),
            ));
        }
    }
    errors
}

/// chrono's spelling of the partition name suffix pg_partman uses for this interval
/// (`datetime_string`): 5.x `YYYYMMDD[_HH24MISS]`; 4.7 `YYYY[_MM[_DD[_HH24MI[SS]]]]`.
fn suffix_format(major: PartmanMajor, interval: &Interval) -> String {
    let c = interval.comparable();
    let day = 86_400_000_000_i128;
    match major {
        PartmanMajor::V5 if c < day => "%Y%m%d_%H%M%S".into(),
        PartmanMajor::V5 => "%Y%m%d".into(),
        PartmanMajor::V4 if c >= 360 * day => "%Y".into(),
        PartmanMajor::V4 if c >= 30 * day => "%Y_%m".into(),
        PartmanMajor::V4 if c >= day => "%Y_%m_%d".into(),
        PartmanMajor::V4 if c >= 60_000_000 => "%Y_%m_%d_%H%M".into(),
        PartmanMajor::V4 => "%Y_%m_%d_%H%M%S".into(),
    }
}

/// A pg_partman 5 name suffix as a time.
fn parse_suffix(suffix: &str, interval: &Interval) -> Option<NaiveDateTime> {
    let format = suffix_format(PartmanMajor::V5, interval);
    if format.contains("%H") {
        NaiveDateTime::parse_from_str(suffix, &format).ok()
    } else {
        chrono::NaiveDate::parse_from_str(suffix, &format)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    }
}

/// The table name of `schema.name` as the catalog quotes it (`format('%I.%I')`).
fn relname(qualified: &str) -> String {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = qualified.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn interval(text: &str) -> Interval {
        crate::policy::interval::parse_interval(text).unwrap()
    }

    #[test]
    fn the_first_partition_starts_where_pg_partman_truncates_the_start() {
        let t = at("2026-11-25 13:47:09");
        for (every, expected) in [
            ("1 second", "2026-11-25 13:47:00"),
            ("15 seconds", "2026-11-25 13:47:00"),
            ("1 minute", "2026-11-25 13:00:00"),
            ("1 hour", "2026-11-25 13:00:00"),
            ("6 hours", "2026-11-25 13:00:00"),
            ("1 day", "2026-11-25 00:00:00"),
            ("7 days", "2026-11-25 00:00:00"),
            ("1 month", "2026-11-01 00:00:00"),
            ("30 days", "2026-11-01 00:00:00"),
            ("3 months", "2026-11-01 00:00:00"),
            ("1 year", "2026-01-01 00:00:00"),
            ("10 years", "2020-01-01 00:00:00"),
            ("100 years", "2001-01-01 00:00:00"),
        ] {
            assert_eq!(
                pg_partman_base(t, &interval(every)),
                at(expected),
                "{every}"
            );
        }
    }

    #[test]
    fn create_parent_makes_partitions_up_to_premake_ahead_of_now() {
        let now = at("2026-11-25 13:47:09");
        // From the end of the newest kept partition (tomorrow) to now + 4 days.
        let (made, until) = made_partitions(at("2026-11-26 00:00:00"), now, &interval("1 day"), 4);
        assert_eq!((made, until), (4, at("2026-11-30 00:00:00")));
        // A start far ahead still makes its one partition.
        let (made, until) = made_partitions(at("2027-01-01 00:00:00"), now, &interval("1 day"), 4);
        assert_eq!((made, until), (1, at("2027-01-02 00:00:00")));
        // Behind now: every partition up to the horizon.
        let (made, _) = made_partitions(at("2026-11-20 00:00:00"), now, &interval("1 day"), 4);
        assert_eq!(made, 10);
    }

    #[test]
    fn suffixes_and_names() {
        assert_eq!(relname("public.orders_20261123"), "orders_20261123");
        assert_eq!(relname("\"My.Schema\".\"Odd\"\"Name\""), "Odd\"Name");
        let t = at("2026-11-23 00:00:00");
        assert_eq!(
            t.format(&suffix_format(PartmanMajor::V4, &interval("1 day")))
                .to_string(),
            "2026_11_23"
        );
        assert_eq!(
            t.format(&suffix_format(PartmanMajor::V5, &interval("1 hour")))
                .to_string(),
            "20261123_000000"
        );
        assert_eq!(
            parse_suffix("20261123", &interval("1 day")),
            Some(at("2026-11-23 00:00:00"))
        );
        assert_eq!(parse_suffix("2026_11_23", &interval("1 day")), None);
    }

    #[test]
    fn centuries_and_millennia_start_at_their_first_year() {
        let t = at("2000-06-15 12:00:00");
        assert_eq!(
            pg_partman_base(t, &interval("10 years")),
            at("2000-01-01 00:00:00")
        );
        assert_eq!(
            pg_partman_base(t, &interval("100 years")),
            at("1901-01-01 00:00:00")
        );
        assert_eq!(
            pg_partman_base(t, &interval("1000 years")),
            at("1001-01-01 00:00:00")
        );
        let t = at("2026-11-25 13:47:09");
        // More than a year, less than a decade: to the year.
        assert_eq!(
            pg_partman_base(t, &interval("2 years")),
            at("2026-01-01 00:00:00")
        );
        assert_eq!(
            pg_partman_base(t, &interval("1000 years")),
            at("2001-01-01 00:00:00")
        );
    }

    #[test]
    fn messages_name_the_grid_of_each_interval() {
        for (every, expected) in [
            ("1 year", "the start of a year"),
            ("1 month", "the start of a month"),
            ("1 day", "midnight UTC"),
            ("1 hour", "the start of an hour"),
            ("30 seconds", "the start of a minute"),
        ] {
            assert_eq!(grid_name(&interval(every)), expected, "{every}");
        }
    }

    #[test]
    fn each_major_and_interval_has_its_name_suffix() {
        for (major, every, expected) in [
            (PartmanMajor::V4, "1 year", "%Y"),
            (PartmanMajor::V4, "1 month", "%Y_%m"),
            (PartmanMajor::V4, "1 day", "%Y_%m_%d"),
            (PartmanMajor::V4, "1 minute", "%Y_%m_%d_%H%M"),
            (PartmanMajor::V4, "30 seconds", "%Y_%m_%d_%H%M%S"),
            (PartmanMajor::V5, "1 day", "%Y%m%d"),
            (PartmanMajor::V5, "1 hour", "%Y%m%d_%H%M%S"),
        ] {
            assert_eq!(
                suffix_format(major, &interval(every)),
                expected,
                "{major:?} {every}"
            );
        }
        assert_eq!(
            parse_suffix("20261123_130000", &interval("1 hour")),
            Some(at("2026-11-23 13:00:00"))
        );
    }

    #[test]
    fn start_is_read_as_a_date_a_time_or_a_time_with_an_offset() {
        for (text, expected) in [
            ("2026-11-25", "2026-11-25 00:00:00"),
            (" 2026-11-25T01:30:00Z ", "2026-11-25 01:30:00"),
            ("2026-11-25 01:30:00+02", "2026-11-24 23:30:00"),
            ("2026-11-25 01:30+01", "2026-11-25 00:30:00"),
            ("2026-11-25 01:30:05.5", "2026-11-25 01:30:05"),
            ("2026-11-25 01:30", "2026-11-25 01:30:00"),
        ] {
            assert_eq!(
                parse_start(text).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                Some(expected.to_string()),
                "{text}"
            );
        }
        assert_eq!(parse_start("yesterday"), None);
    }

    #[test]
    fn the_partitions_made_are_bounded_in_the_columns_epoch() {
        let adoption = Adoption {
            kept: Vec::new(),
            start: at("2026-11-25 00:00:00").and_utc(),
            start_from: String::new(),
            made: 1,
            made_until: at("2026-11-26 00:00:00").and_utc(),
            default: DefaultPartition::Made,
        };
        use crate::model::Epoch;
        for (epoch, expected) in [
            (
                Epoch::None,
                "FOR VALUES FROM ('2026-11-25 00:00:00+00') TO ('2026-11-26 00:00:00+00')",
            ),
            (
                Epoch::Seconds,
                "FOR VALUES FROM (1795564800) TO (1795651200)",
            ),
            (
                Epoch::Milliseconds,
                "FOR VALUES FROM (1795564800000) TO (1795651200000)",
            ),
            (
                Epoch::Microseconds,
                "FOR VALUES FROM (1795564800000000) TO (1795651200000000)",
            ),
            (
                Epoch::Nanoseconds,
                "FOR VALUES FROM (1795564800000000000) TO (1795651200000000000)",
            ),
        ] {
            let child = adoption.first_made_partition(epoch);
            assert_eq!(child.bound, expected, "{epoch:?}");
            assert_eq!(child.name, "(the partitions pg_partman makes)");
            assert_eq!(child.estimated_rows, 0.0);
        }
    }

    #[test]
    fn the_description_counts_partitions_and_says_what_becomes_of_the_default() {
        let kept = |name: &str, from: &str, to: &str| KeptPartition {
            name: name.into(),
            from: at(from).and_utc(),
            to: at(to).and_utc(),
        };
        let mut adoption = Adoption {
            kept: vec![kept(
                "public.t_a",
                "2026-11-24 00:00:00",
                "2026-11-25 00:00:00",
            )],
            start: at("2026-11-25 00:00:00").and_utc(),
            start_from: "where the existing ones end".into(),
            made: 1,
            made_until: at("2026-11-26 00:00:00").and_utc(),
            default: DefaultPartition::Kept {
                name: "public.t_def".into(),
                rows: Some(0),
            },
        };
        assert_eq!(
            adoption.describe("public.t"),
            [
                "keeps its 1 existing partition as they are, names included (public.t_a to public.t_a, 2026-11-24 00:00:00 UTC to 2026-11-25 00:00:00 UTC); pg_partman expires them by their bounds like its own",
                "pg_partman makes 1 partition from 2026-11-25 00:00:00 UTC (where the existing ones end) to 2026-11-26 00:00:00 UTC; later ones at each maintenance",
                "keeps the default partition public.t_def as pg_partman's default partition; it holds no row; none is at or after 2026-11-25 00:00:00 UTC",
            ]
        );
        adoption.kept.push(kept(
            "public.t_b",
            "2026-11-25 00:00:00",
            "2026-11-26 00:00:00",
        ));
        adoption.made = 2;
        adoption.default = DefaultPartition::Kept {
            name: "public.t_def".into(),
            rows: Some(7),
        };
        let lines = adoption.describe("public.t");
        assert!(lines[0].starts_with("keeps its 2 existing partitions as they are, names included (public.t_a to public.t_b, 2026-11-24 00:00:00 UTC to 2026-11-26 00:00:00 UTC)"), "{lines:?}");
        assert!(
            lines[1].starts_with("pg_partman makes 2 partitions from"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("; it holds about 7 rows, which retention never expires"),
            "{lines:?}"
        );
        adoption.default = DefaultPartition::Kept {
            name: "public.t_def".into(),
            rows: None,
        };
        assert!(
            adoption.describe("public.t")[2].contains("; it was never analysed: rows in it stay")
        );
        adoption.kept.clear();
        adoption.default = DefaultPartition::Made;
        assert_eq!(
            adoption.describe("public.t"),
            [
                "pg_partman makes 2 partitions from 2026-11-25 00:00:00 UTC (where the existing ones end) to 2026-11-26 00:00:00 UTC; later ones at each maintenance",
                "pg_partman makes a default partition (public.t_default)",
            ]
        );
        adoption.default = DefaultPartition::None;
        assert_eq!(
            adoption.describe("public.t")[1],
            "no default partition (default_partition: false)"
        );
    }

    #[test]
    fn no_partition_is_made_that_would_start_at_the_horizon() {
        // now + 4 days is exactly where a fourth partition from the 26th would start.
        let (made, until) = made_partitions(
            at("2026-11-26 00:00:00"),
            at("2026-11-26 00:00:00"),
            &interval("1 day"),
            4,
        );
        assert_eq!((made, until), (4, at("2026-11-30 00:00:00")));
        let (made, until) = made_partitions(
            at("2026-11-26 00:00:00"),
            at("2026-11-25 00:00:00"),
            &interval("1 day"),
            4,
        );
        assert_eq!((made, until), (3, at("2026-11-29 00:00:00")));
    }
}
