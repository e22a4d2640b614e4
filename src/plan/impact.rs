//! What a change would expire: the partitions the next maintenance would remove, read
//! from their bounds (as pg_partman decides, never from their names), with row
//! estimates from statistics.

use chrono::{DateTime, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use crate::catalog::ChildPartition;
use crate::model::{Epoch, Interval};
use crate::plan::{ExpiredPartition, Impact};

/// `now - keep` as PostgreSQL computes `timestamptz - interval` in UTC: months, then
/// days, then the rest.
pub fn cutoff(now: DateTime<Utc>, keep: &Interval) -> DateTime<Utc> {
    let mut t = now;
    if keep.months > 0 {
        t = t
            .checked_sub_months(Months::new(keep.months as u32))
            .unwrap_or(t);
    }
    if keep.days > 0 {
        t = t.checked_sub_days(Days::new(keep.days as u64)).unwrap_or(t);
    }
    t - TimeDelta::microseconds(keep.micros)
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

/// The children the next maintenance would expire with retention `keep`, by pg_partman's
/// own rule (`drop_partition_time`, 4.7 and 5.x alike): a child goes once its lower bound
/// plus one partition `interval` is before `now - keep`, whatever its name or its upper
/// bound; and never the last child of the set.
pub fn expired_partitions(
    children: &[ChildPartition],
    epoch: Epoch,
    interval: &Interval,
    now: DateTime<Utc>,
    keep: &Interval,
    expired: &str,
) -> Impact {
    let cut = cutoff(now, keep);
    let mut bounded: Vec<(DateTime<Utc>, DateTime<Utc>, &ChildPartition)> = children
        .iter()
        .filter_map(|child| {
            let (from, to) = range_bounds(&child.bound)?;
            Some((bound_time(&from, epoch)?, bound_time(&to, epoch)?, child))
        })
        .collect();
    bounded.sort_by_key(|(from, _, _)| *from);
    let total = bounded.len();
    let mut chosen: Vec<(DateTime<Utc>, DateTime<Utc>, &ChildPartition)> = bounded
        .into_iter()
        .filter(|(from, _, _)| {
            interval
                .after(from.naive_utc())
                .is_some_and(|end| end.and_utc() < cut)
        })
        .collect();
    if chosen.len() == total {
        chosen.pop();
    }
    let estimate =
        |c: &ChildPartition| (c.estimated_rows >= 0.0).then(|| c.estimated_rows.round() as u64);
    Impact {
        partitions: chosen.len() as u64,
        from: chosen.first().map(|(from, _, _)| time_text(*from)),
        to: chosen.last().map(|(_, to, _)| time_text(*to)),
        estimated_rows: chosen.iter().filter_map(|(_, _, c)| estimate(c)).sum(),
        expired: Some(expired.to_string()),
        expired_partitions: chosen
            .iter()
            .map(|(from, to, c)| ExpiredPartition {
                name: c.name.clone(),
                from: Some(time_text(*from)),
                to: Some(time_text(*to)),
                estimated_rows: estimate(c),
            })
            .collect(),
        partitions_without_statistics: chosen
            .iter()
            .filter(|(_, _, c)| estimate(c).is_none())
            .count() as u64,
        rules: Vec::new(),
    }
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
        let day = Interval {
            months: 0,
            days: 1,
            micros: 0,
        };
        let impact = expired_partitions(
            &children,
            Epoch::None,
            &day,
            now,
            &Interval {
                months: 0,
                days: 3,
                micros: 11 * 3_600_000_000,
            },
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
            &day,
            now,
            &Interval {
                months: 0,
                days: 30,
                micros: 0,
            },
            "drop",
        );
        assert_eq!(none.partitions, 0);
        assert_eq!(none.from, None);
    }

    #[test]
    fn a_child_expires_one_interval_after_its_lower_bound_and_the_last_one_never() {
        let day = Interval {
            months: 0,
            days: 1,
            micros: 0,
        };
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
        let impact = expired_partitions(&children, Epoch::None, &day, now, &keep, "drop");
        let names: Vec<&str> = impact
            .expired_partitions
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["public.t_2226"]);
        // Every child old enough: all but the newest go.
        let later = at("2026-12-25T12:00:00Z");
        let impact = expired_partitions(&children, Epoch::None, &day, later, &keep, "drop");
        assert_eq!(impact.partitions, 1);
        assert_eq!(impact.expired_partitions[0].name, "public.t_2226");
    }
}
