//! Which partitions maintenance expires, decided in one place for plan, `run --dry-run`
//! and status: pg_partman's own rule (drop_partition_time.sql, the same in 4.7.2 and 5.x),
//! a child whose lower bound plus the partition interval is before `now - retention`,
//! oldest first, never the set's last child; read from the bounds, never from names.

use chrono::{DateTime, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use crate::catalog::ChildPartition;
use crate::model::{Epoch, Interval};
use crate::plan::{ExpiredPartition, Impact};

/// `now - keep` as PostgreSQL computes `timestamptz - interval` in UTC: months, then
/// days, then the rest. A negative month or day count (never in a policy) counts as none.
pub fn cutoff(now: DateTime<Utc>, keep: &Interval) -> DateTime<Utc> {
    let t = now
        .checked_sub_months(Months::new(count(keep.months)))
        .unwrap_or(now);
    let t = t
        .checked_sub_days(Days::new(count(keep.days).into()))
        .unwrap_or(t);
    t - TimeDelta::microseconds(keep.micros)
}

/// `t + interval` as PostgreSQL computes `timestamptz + interval` in UTC.
pub fn plus(t: DateTime<Utc>, interval: &Interval) -> DateTime<Utc> {
    let t = t
        .checked_add_months(Months::new(count(interval.months)))
        .unwrap_or(t);
    let t = t
        .checked_add_days(Days::new(count(interval.days).into()))
        .unwrap_or(t);
    t + TimeDelta::microseconds(interval.micros)
}

/// A month or day count as chrono takes it; negative or out of range counts as none.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// A child of a partition set with its bounds read as points in time.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedChild<'c> {
    pub child: &'c ChildPartition,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The range children of a set, oldest first (the default partition and children whose
/// bounds are not times are left out).
pub fn timed_children(children: &[ChildPartition], epoch: Epoch) -> Vec<TimedChild<'_>> {
    let mut timed: Vec<TimedChild> = children
        .iter()
        .filter_map(|child| {
            let (from, to) = range_bounds(&child.bound)?;
            Some(TimedChild {
                child,
                from: bound_time(&from, epoch)?,
                to: bound_time(&to, epoch)?,
            })
        })
        .collect();
    timed.sort_by_key(|c| c.from);
    timed
}

/// The children maintenance expires at `now` with retention `keep` and partitions of
/// `interval`: pg_partman's rule (drop_partition_time, 4.7 and 5.x alike) walks every child
/// in ascending order and expires each whose lower bound plus one `interval` is before
/// `now - keep`, whatever its name or upper bound, but never the set's last remaining
/// child.
pub fn expired_children<'c>(
    children: &'c [ChildPartition],
    epoch: Epoch,
    now: DateTime<Utc>,
    keep: &Interval,
    interval: &Interval,
) -> Vec<TimedChild<'c>> {
    let cut = cutoff(now, keep);
    let timed = timed_children(children, epoch);
    let total = timed.len();
    let mut expired: Vec<TimedChild> = timed
        .into_iter()
        .filter(|c| plus(c.from, interval) < cut)
        .collect();
    if expired.len() == total {
        expired.pop();
    }
    expired
}

/// The `FROM` and `TO` values of `FOR VALUES FROM (...) TO (...)`, unquoted;
/// None for `DEFAULT` and anything else.
pub fn range_bounds(bound: &str) -> Option<(String, String)> {
    let rest = bound.trim().strip_prefix("FOR VALUES FROM (")?;
    let (from, to) = rest.split_once(") TO (")?;
    let to = to.strip_suffix(')')?;
    let unquote = |v: &str| v.trim().trim_matches('\'').to_string();
    Some((unquote(from), unquote(to)))
}

/// A bound value as a point in time: timestamptz/timestamp/date text (in UTC sessions),
/// or an integer holding Unix time in `epoch` units. None for MINVALUE/MAXVALUE.
pub fn bound_time(value: &str, epoch: Epoch) -> Option<DateTime<Utc>> {
    if epoch != Epoch::None {
        let n: i64 = value.parse().ok()?;
        return match epoch {
            Epoch::Seconds => DateTime::from_timestamp(n, 0),
            Epoch::Milliseconds => DateTime::from_timestamp_millis(n),
            Epoch::Microseconds => DateTime::from_timestamp_micros(n),
            Epoch::Nanoseconds => Some(DateTime::from_timestamp_nanos(n)),
            Epoch::None => None,
        };
    }
    if let Ok(t) = DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

pub fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// What the next maintenance expires with retention `keep` (see `expired_children`), as
/// a plan's impact.
pub fn expired_partitions(
    children: &[ChildPartition],
    epoch: Epoch,
    now: DateTime<Utc>,
    keep: &Interval,
    interval: &Interval,
    expired: &str,
) -> Impact {
    let chosen = expired_children(children, epoch, now, keep, interval);
    let estimate =
        |c: &ChildPartition| (c.estimated_rows >= 0.0).then(|| c.estimated_rows.round() as u64);
    Impact {
        partitions: chosen.len() as u64,
        from: chosen.first().map(|c| time_text(c.from)),
        to: chosen.last().map(|c| time_text(c.to)),
        estimated_rows: chosen.iter().filter_map(|c| estimate(c.child)).sum(),
        expired: Some(expired.to_string()),
        expired_partitions: chosen
            .iter()
            .map(|c| ExpiredPartition {
                name: c.child.name.clone(),
                from: Some(time_text(c.from)),
                to: Some(time_text(c.to)),
                estimated_rows: estimate(c.child),
            })
            .collect(),
        partitions_without_statistics: chosen
            .iter()
            .filter(|c| estimate(c.child).is_none())
            .count() as u64,
        rules: Vec::new(),
    }
}

/// The lowest value of the partition column that survives the expiry of `expired` (the
/// upper bound of its newest child, as the text PostgreSQL wrote it): rows below it are
/// gone before the same run's delete rules run.
pub fn survivors_from(expired: &[TimedChild<'_>]) -> Option<String> {
    let newest = expired.last()?;
    range_bounds(&newest.child.bound).map(|(_, to)| to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(name: &str, bound: &str, rows: f64) -> ChildPartition {
        ChildPartition {
            name: name.into(),
            bound: bound.into(),
            estimated_rows: rows,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn bounds_of_every_kind_are_read() {
        assert_eq!(
            range_bounds(
                "FOR VALUES FROM ('2026-11-25 10:00:00+00') TO ('2026-11-25 11:00:00+00')"
            ),
            Some((
                "2026-11-25 10:00:00+00".into(),
                "2026-11-25 11:00:00+00".into()
            ))
        );
        assert_eq!(range_bounds("DEFAULT"), None);
        assert_eq!(
            bound_time("2026-11-25 10:00:00+00", Epoch::None),
            Some(at("2026-11-25T10:00:00Z"))
        );
        assert_eq!(
            bound_time("2026-11-25 10:00:00+01:30", Epoch::None),
            Some(at("2026-11-25T08:30:00Z"))
        );
        assert_eq!(
            bound_time("2026-11-25 10:00:00.5", Epoch::None),
            Some(at("2026-11-25T10:00:00.5Z"))
        );
        assert_eq!(
            bound_time("2026-11-25", Epoch::None),
            Some(at("2026-11-25T00:00:00Z"))
        );
        assert_eq!(
            bound_time("1764064800", Epoch::Seconds),
            Some(at("2025-11-25T10:00:00Z"))
        );
        assert_eq!(
            bound_time("1764064800000", Epoch::Milliseconds),
            Some(at("2025-11-25T10:00:00Z"))
        );
        assert_eq!(bound_time("MINVALUE", Epoch::None), None);
    }

    #[test]
    fn plus_adds_months_then_days_then_time() {
        let interval = |months, days, micros| Interval {
            months,
            days,
            micros,
        };
        let start = at("2026-01-31T00:00:00Z");
        assert_eq!(plus(start, &interval(1, 0, 0)), at("2026-02-28T00:00:00Z"));
        assert_eq!(plus(start, &interval(0, 1, 0)), at("2026-02-01T00:00:00Z"));
        assert_eq!(
            plus(start, &interval(1, 1, 3_600_000_000)),
            at("2026-03-01T01:00:00Z")
        );
        assert_eq!(plus(start, &interval(0, 0, 0)), start);
        // Negative counts (never in a policy) are none; time may go back.
        assert_eq!(
            plus(start, &interval(-1, -1, -3_600_000_000)),
            at("2026-01-30T23:00:00Z")
        );
        assert_eq!(
            cutoff(start, &interval(-1, -1, 0)),
            start,
            "a negative keep never moves the cutoff forward"
        );
    }

    #[test]
    fn cutoff_subtracts_months_then_days_then_time() {
        let now = at("2026-03-31T12:00:00Z");
        assert_eq!(
            cutoff(
                now,
                &Interval {
                    months: 1,
                    days: 0,
                    micros: 0
                }
            ),
            at("2026-02-28T12:00:00Z")
        );
        assert_eq!(
            cutoff(
                now,
                &Interval {
                    months: 0,
                    days: 1,
                    micros: 3_600_000_000
                }
            ),
            at("2026-03-30T11:00:00Z")
        );
    }

    #[test]
    fn only_partitions_wholly_older_than_the_cutoff_expire() {
        let children = vec![
            child(
                "public.t_p20261120",
                "FOR VALUES FROM ('2026-11-20 00:00:00+00') TO ('2026-11-21 00:00:00+00')",
                100.0,
            ),
            child(
                "public.t_p20261121",
                "FOR VALUES FROM ('2026-11-21 00:00:00+00') TO ('2026-11-22 00:00:00+00')",
                -1.0,
            ),
            child(
                "public.t_p20261122",
                "FOR VALUES FROM ('2026-11-22 00:00:00+00') TO ('2026-11-23 00:00:00+00')",
                50.0,
            ),
            child("public.t_default", "DEFAULT", 7.0),
        ];
        let now = at("2026-11-25T12:00:00Z");
        // keep 3 days 11 hours: cutoff 2026-11-22 01:00, so the 22nd (upper bound 23rd) stays.
        let impact = expired_partitions(
            &children,
            Epoch::None,
            now,
            &Interval {
                months: 0,
                days: 3,
                micros: 11 * 3_600_000_000,
            },
            &DAY,
            "drop",
        );
        assert_eq!(impact.partitions, 2);
        assert_eq!(impact.from.as_deref(), Some("2026-11-20 00:00:00 UTC"));
        assert_eq!(impact.to.as_deref(), Some("2026-11-22 00:00:00 UTC"));
        assert_eq!(impact.estimated_rows, 100);
        assert_eq!(impact.partitions_without_statistics, 1);
        let none = expired_partitions(
            &children,
            Epoch::None,
            now,
            &Interval {
                months: 0,
                days: 30,
                micros: 0,
            },
            &DAY,
            "drop",
        );
        assert_eq!(none.partitions, 0);
        assert_eq!(none.from, None);
    }

    const DAY: Interval = Interval {
        months: 0,
        days: 1,
        micros: 0,
    };

    fn daily(day: u32) -> ChildPartition {
        child(
            &format!("public.t_p202611{day:02}"),
            &format!(
                "FOR VALUES FROM ('2026-11-{day:02} 00:00:00+00') TO ('2026-11-{:02} 00:00:00+00')",
                day + 1
            ),
            10.0,
        )
    }

    #[test]
    fn the_rule_is_pg_partmans_start_plus_interval_before_the_cutoff() {
        let children: Vec<ChildPartition> = (20..=23).map(daily).collect();
        let keep = Interval {
            months: 0,
            days: 2,
            micros: 0,
        };
        // now - 2 days = the 23rd 12:00: the 20th, 21st and 22nd end before it.
        let expired = expired_children(
            &children,
            Epoch::None,
            at("2026-11-25T12:00:00Z"),
            &keep,
            &DAY,
        );
        let names: Vec<&str> = expired.iter().map(|c| c.child.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "public.t_p20261120",
                "public.t_p20261121",
                "public.t_p20261122"
            ]
        );
        // A child ending exactly at the cutoff stays (strictly before).
        let expired = expired_children(
            &children,
            Epoch::None,
            at("2026-11-25T00:00:00Z"),
            &keep,
            &DAY,
        );
        assert_eq!(expired.len(), 2);
        // pg_partman adds the set's interval to the start: a hand-made child wider than
        // one interval expires by its start, as pg_partman decides.
        let wide = vec![
            child(
                "public.t_old",
                "FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-11-21 00:00:00+00')",
                5.0,
            ),
            daily(21),
        ];
        let expired = expired_children(&wide, Epoch::None, at("2026-11-05T00:00:00Z"), &keep, &DAY);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].child.name, "public.t_old");
        assert_eq!(
            survivors_from(&expired).as_deref(),
            Some("2026-11-21 00:00:00+00")
        );
    }

    #[test]
    fn a_child_expires_one_interval_after_its_lower_bound_whatever_its_upper_bound() {
        let keep = Interval {
            months: 0,
            days: 2,
            micros: 0,
        };
        let now = at("2026-11-25T12:00:00Z");
        // Cutoff 2026-11-23 12:00. Two one-hour children made by hand both end before it,
        // but pg_partman expires a child only once its lower bound plus one interval (a day)
        // is before it: the one from 10:00 goes, the one from 13:00 stays.
        let children = vec![
            child(
                "public.t_2226",
                "FOR VALUES FROM ('2026-11-22 10:00:00+00') TO ('2026-11-22 11:00:00+00')",
                5.0,
            ),
            child(
                "public.t_2301",
                "FOR VALUES FROM ('2026-11-22 13:00:00+00') TO ('2026-11-22 14:00:00+00')",
                5.0,
            ),
        ];
        let impact = expired_partitions(&children, Epoch::None, now, &keep, &DAY, "drop");
        let names: Vec<&str> = impact
            .expired_partitions
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["public.t_2226"]);
        // Every child old enough: all but the newest go.
        let later = at("2026-12-25T12:00:00Z");
        let impact = expired_partitions(&children, Epoch::None, later, &keep, &DAY, "drop");
        assert_eq!(impact.partitions, 1);
        assert_eq!(impact.expired_partitions[0].name, "public.t_2226");
    }

    #[test]
    fn the_last_child_of_a_set_is_never_expired() {
        let children: Vec<ChildPartition> = (20..=22).map(daily).collect();
        let keep = Interval {
            months: 0,
            days: 1,
            micros: 0,
        };
        let expired = expired_children(
            &children,
            Epoch::None,
            at("2026-12-30T00:00:00Z"),
            &keep,
            &DAY,
        );
        let names: Vec<&str> = expired.iter().map(|c| c.child.name.as_str()).collect();
        assert_eq!(names, ["public.t_p20261120", "public.t_p20261121"]);
        // The default partition is not a child that counts.
        let mut with_default = children.clone();
        with_default.push(child("public.t_default", "DEFAULT", 1.0));
        assert_eq!(
            expired_children(
                &with_default,
                Epoch::None,
                at("2026-12-30T00:00:00Z"),
                &keep,
                &DAY
            )
            .len(),
            2
        );
        assert!(
            expired_children(
                &children[..1],
                Epoch::None,
                at("2026-12-30T00:00:00Z"),
                &keep,
                &DAY
            )
            .is_empty()
        );
        assert!(survivors_from(&[]).is_none());
    }
}
