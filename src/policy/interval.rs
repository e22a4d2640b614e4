//! Interval text -> a normalised (months, days, microseconds) value.
//!
//! PostgreSQL keeps the three parts apart and compares intervals by folding a month
//! into 30 days and a day into 24 hours; `Interval::comparable` does the same, so
//! `24 hours`, `1 day` and `P1D` are equal here exactly where they are equal there.

use std::cmp::Ordering;
use std::fmt;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i64,
    pub days: i64,
    pub micros: i64,
}

impl Interval {
    pub fn is_positive(&self) -> bool {
        self.comparable() > 0
    }

    /// The single number PostgreSQL's interval comparison uses (interval_cmp_value).
    pub fn comparable(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * MICROS_PER_DAY as i128
            + self.micros as i128
    }

    /// Approximate length as a std Duration (months as 30 days), for timing decisions.
    pub fn approx_duration(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.comparable().max(0) as u64)
    }

    pub fn plus(&self, other: &Interval) -> Interval {
        Interval {
            months: self.months + other.months,
            days: self.days + other.days,
            micros: self.micros + other.micros,
        }
    }
}

impl PartialOrd for Interval {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Interval {
    /// Ordering as PostgreSQL orders intervals; two values that compare equal may still
    /// differ in their parts (`1 day` vs `24 hours`), hence `comparable` for equality tests.
    fn cmp(&self, other: &Self) -> Ordering {
        self.comparable()
            .cmp(&other.comparable())
            .then(self.months.cmp(&other.months))
            .then(self.days.cmp(&other.days))
            .then(self.micros.cmp(&other.micros))
    }
}

/// Canonical text that PostgreSQL reads back as the same interval: `1 year 2 months`,
/// `3 days`, `1 day 12 hours`, `15 seconds`, `500 milliseconds`.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut push = |n: i64, unit: &str| {
            if n != 0 {
                let plural = if n.abs() == 1 { "" } else { "s" };
                parts.push(format!("{n} {unit}{plural}"));
            }
        };
        push(self.months / 12, "year");
        push(self.months % 12, "month");
        push(self.days, "day");
        let mut rest = self.micros;
        push(rest / MICROS_PER_HOUR, "hour");
        rest %= MICROS_PER_HOUR;
        push(rest / MICROS_PER_MINUTE, "minute");
        rest %= MICROS_PER_MINUTE;
        push(rest / MICROS_PER_SECOND, "second");
        rest %= MICROS_PER_SECOND;
        if rest % 1000 == 0 {
            push(rest / 1000, "millisecond");
        } else {
            push(rest, "microsecond");
        }
        if parts.is_empty() {
            write!(f, "0 seconds")
        } else {
            write!(f, "{}", parts.join(" "))
        }
    }
}

impl serde::Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalError(pub String);

/// Parses `N unit` pairs (`1 day 12 hours`) or ISO 8601 (`P1DT12H`). A bare number is
/// refused on purpose: pg_partman reads `'7'` as seven seconds, never what was meant.
pub fn parse_interval(text: &str) -> Result<Interval, IntervalError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(IntervalError("the interval is empty".into()));
    }
    if trimmed.starts_with('P') || trimmed.starts_with('p') {
        return parse_iso8601(trimmed);
    }
    parse_unit_pairs(trimmed)
}

fn parse_unit_pairs(text: &str) -> Result<Interval, IntervalError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() == 1 && words[0].parse::<f64>().is_ok() {
        return Err(IntervalError(format!(
            "\"{text}\" has no unit; write for example \"{text} days\" (pg_partman would read a bare number as seconds)"
        )));
    }
    if !words.len().is_multiple_of(2) {
        return Err(IntervalError(format!(
            "\"{text}\" is not a list of \"N unit\" pairs such as \"1 day 12 hours\""
        )));
    }
    let mut interval = Interval::default();
    for pair in words.chunks(2) {
        let count: i64 = pair[0].parse().map_err(|_| {
            IntervalError(format!(
                "\"{}\" in \"{text}\" is not a whole number",
                pair[0]
            ))
        })?;
        if count < 0 {
            return Err(IntervalError(format!("\"{text}\" is negative")));
        }
        let unit = pair[1].to_ascii_lowercase();
        apply_unit(&mut interval, count, &unit).ok_or_else(|| {
            IntervalError(format!(
                "unknown unit \"{}\" in \"{text}\"; expected one of second, minute, hour, day, week, month, year{}",
                pair[1],
                suggest_unit(&unit).map(|u| format!(" (did you mean \"{u}\"?)")).unwrap_or_default()
            ))
        })?;
    }
    Ok(interval)
}

const UNITS: [&str; 7] = ["second", "minute", "hour", "day", "week", "month", "year"];

fn apply_unit(interval: &mut Interval, count: i64, unit: &str) -> Option<()> {
    let singular = unit.strip_suffix('s').unwrap_or(unit);
    let add_micros = |i: &mut Interval, per: i64| -> Option<()> {
        i.micros = i.micros.checked_add(count.checked_mul(per)?)?;
        Some(())
    };
    match singular {
        // Not in the documented list, but Display writes them for sub-second values
        // (from ISO `PT0.5S`), so the canonical text must read back.
        "microsecond" => add_micros(interval, 1),
        "millisecond" => add_micros(interval, 1000),
        "second" => add_micros(interval, MICROS_PER_SECOND),
        "minute" => add_micros(interval, MICROS_PER_MINUTE),
        "hour" => add_micros(interval, MICROS_PER_HOUR),
        "day" => {
            interval.days = interval.days.checked_add(count)?;
            Some(())
        }
        "week" => {
            interval.days = interval.days.checked_add(count.checked_mul(7)?)?;
            Some(())
        }
        "month" => {
            interval.months = interval.months.checked_add(count)?;
            Some(())
        }
        "year" => {
            interval.months = interval.months.checked_add(count.checked_mul(12)?)?;
            Some(())
        }
        _ => None,
    }
}

fn suggest_unit(unit: &str) -> Option<&'static str> {
    crate::policy::suggest::nearest(unit.trim_end_matches('s'), &UNITS)
}

/// ISO 8601 durations: `P1Y2M3W4DT5H6M7.5S`. Fractions only on seconds.
fn parse_iso8601(text: &str) -> Result<Interval, IntervalError> {
    let bad = || {
        IntervalError(format!(
            "\"{text}\" is not an ISO 8601 duration such as \"P30D\" or \"PT1H\""
        ))
    };
    let upper = text.to_ascii_uppercase();
    let body = &upper[1..];
    if body.is_empty() {
        return Err(bad());
    }
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    let mut interval = Interval::default();
    for (number, designator) in designators(date_part).ok_or_else(bad)? {
        let n: i64 = number.parse().map_err(|_| bad())?;
        match designator {
            'Y' => interval.months += n * 12,
            'M' => interval.months += n,
            'W' => interval.days += n * 7,
            'D' => interval.days += n,
            _ => return Err(bad()),
        }
    }
    if let Some(time) = time_part {
        for (number, designator) in designators(time).ok_or_else(bad)? {
            match designator {
                'H' => {
                    interval.micros += number.parse::<i64>().map_err(|_| bad())? * MICROS_PER_HOUR
                }
                'M' => {
                    interval.micros += number.parse::<i64>().map_err(|_| bad())? * MICROS_PER_MINUTE
                }
                'S' => {
                    let seconds: f64 = number.parse().map_err(|_| bad())?;
                    interval.micros += (seconds * MICROS_PER_SECOND as f64).round() as i64;
                }
                _ => return Err(bad()),
            }
        }
    }
    Ok(interval)
}

/// Splits `1Y2M` into [("1",'Y'), ("2",'M')]; None if the shape is wrong.
fn designators(text: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphabetic() {
            let number = &text[start..i];
            if number.is_empty() || number.starts_with('-') {
                return None;
            }
            out.push((number, c));
            start = i + 1;
        } else if !(c.is_ascii_digit() || c == '.' || c == '-') {
            return None;
        }
    }
    (start == text.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(text: &str) -> Interval {
        parse_interval(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn a_day_equals_24_hours_and_p1d_as_postgresql_says() {
        assert_eq!(iv("24 hours").comparable(), iv("1 day").comparable());
        assert_eq!(iv("P1D"), iv("1 day"));
        assert_eq!(iv("1 month").comparable(), iv("30 days").comparable());
        assert_ne!(
            iv("1 month"),
            iv("30 days"),
            "parts stay apart, like PostgreSQL's"
        );
    }

    #[test]
    fn unit_pairs_combine() {
        assert_eq!(
            iv("1 day 12 hours"),
            Interval {
                months: 0,
                days: 1,
                micros: 12 * MICROS_PER_HOUR
            }
        );
        assert_eq!(
            iv("3 months"),
            Interval {
                months: 3,
                days: 0,
                micros: 0
            }
        );
        assert_eq!(
            iv("2 weeks"),
            Interval {
                months: 0,
                days: 14,
                micros: 0
            }
        );
        assert_eq!(
            iv("1 Second"),
            Interval {
                months: 0,
                days: 0,
                micros: MICROS_PER_SECOND
            }
        );
    }

    #[test]
    fn iso8601_durations_parse() {
        assert_eq!(iv("PT1H"), iv("1 hour"));
        assert_eq!(iv("P1Y2M"), iv("14 months"));
        assert_eq!(iv("PT0.5S").micros, 500_000);
        assert_eq!(iv("P1DT12H"), iv("1 day 12 hours"));
    }

    #[test]
    fn canonical_text_round_trips() {
        for text in [
            "15 seconds",
            "1 day",
            "1 day 12 hours",
            "1 year 2 months",
            "90 days",
            "1 second",
            "500 milliseconds",
        ] {
            let value = iv(text);
            assert_eq!(value.to_string(), text);
            assert_eq!(iv(&value.to_string()), value);
        }
        assert_eq!(iv("P30D").to_string(), "30 days");
    }

    #[test]
    fn bare_numbers_bad_units_and_garbage_are_refused() {
        assert!(parse_interval("7").unwrap_err().0.contains("no unit"));
        let err = parse_interval("30 dayz").unwrap_err().0;
        assert!(err.contains("did you mean \"day\""), "{err}");
        assert!(parse_interval("").is_err());
        assert!(parse_interval("1 day 3").is_err());
        assert!(parse_interval("-1 day").is_err());
        assert!(parse_interval("P").is_err());
        assert!(parse_interval("PT").is_err());
        assert!(parse_interval("P1H").is_err());
        assert!(parse_interval("1.5 hours").is_err());
    }

    #[test]
    fn ordering_follows_postgresql() {
        assert!(iv("9 days") < iv("90 days"));
        assert!(iv("1 month") > iv("29 days"));
        assert!(iv("15 seconds") >= iv("1 second"));
    }
}
