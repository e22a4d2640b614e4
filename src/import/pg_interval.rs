//! Interval text as pg_partman stores it -> `Interval`.
//!
//! `part_config.partition_interval` holds PostgreSQL's own output of an interval
//! (`1 day`, `7 days`, `1 mon`, `01:00:00`, `00:00:01`, `1 day 02:00:00`, in whatever
//! IntervalStyle the session had), and `part_config.retention` holds whatever the user
//! typed (`30 days`, `1 week`, `2 hrs`, or a bare `7`, which pg_partman reads as seconds).
//! The policy format is stricter on purpose, so import reads the wider PostgreSQL syntax
//! here and writes the canonical text (`Interval`'s Display) into the policy.

use crate::policy::interval::{Interval, parse_interval};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;

/// Parses PostgreSQL interval text. A bare number is seconds, as pg_partman casts it.
pub fn parse_pg_interval(text: &str) -> Result<Interval, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the interval is empty".into());
    }
    if trimmed.starts_with(['P', 'p']) {
        return parse_interval(trimmed).map_err(|e| e.0);
    }
    if let Some(seconds) = bare_seconds(trimmed) {
        return Ok(Interval {
            months: 0,
            days: 0,
            micros: seconds,
        });
    }
    // postgres_verbose style: `@ 1 day 2 hours`.
    let body = trimmed.strip_prefix('@').unwrap_or(trimmed);
    let mut interval = Interval::default();
    let mut tokens = split_tokens(body).into_iter().peekable();
    while let Some(token) = tokens.next() {
        if token.contains(':') {
            interval.micros = add(
                interval.micros,
                parse_clock(&token).ok_or_else(|| bad(text))?,
            )
            .ok_or_else(|| bad(text))?;
            continue;
        }
        let count: i64 = token.parse().map_err(|_| bad(text))?;
        if count < 0 {
            return Err(format!("\"{text}\" is negative"));
        }
        let unit = tokens
            .next()
            .ok_or_else(|| format!("\"{text}\": the number {count} has no unit"))?;
        add_unit(&mut interval, count, &unit.to_ascii_lowercase()).ok_or_else(|| bad(text))?;
    }
    Ok(interval)
}

fn bad(text: &str) -> String {
    format!(
        "\"{text}\" is not an interval retentionc can read (expected text such as \"1 day\", \"01:00:00\" or \"1 mon\")"
    )
}

fn add(a: i64, b: i64) -> Option<i64> {
    a.checked_add(b)
}

/// `7` or `7.5`: seconds. Negative numbers are refused by the caller's parse.
fn bare_seconds(text: &str) -> Option<i64> {
    if !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let seconds: f64 = text.parse().ok()?;
    Some((seconds * MICROS_PER_SECOND as f64).round() as i64)
}

/// Splits `1 day 02:00:00` and glued forms such as `2h` or `30min` into tokens:
/// numbers, units and clock times.
fn split_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        if word.contains(':') {
            tokens.push(word.to_string());
            continue;
        }
        let digits_end = word
            .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '+'))
            .unwrap_or(word.len());
        if digits_end > 0 && digits_end < word.len() {
            tokens.push(word[..digits_end].to_string());
            tokens.push(word[digits_end..].to_string());
        } else {
            tokens.push(word.to_string());
        }
    }
    tokens
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.ffffff`, as PostgreSQL prints the time part.
fn parse_clock(text: &str) -> Option<i64> {
    if text.starts_with('-') {
        return None;
    }
    let parts: Vec<&str> = text.trim_start_matches('+').split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    let hours: i64 = hours.parse().ok()?;
    let minutes: i64 = minutes.parse().ok()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: i64 = whole.parse().ok()?;
    if !(0..60).contains(&minutes)
        || !(0..60).contains(&whole)
        || fraction.len() > 6
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let micros = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse::<i64>().ok()?
    };
    hours
        .checked_mul(MICROS_PER_HOUR)?
        .checked_add(minutes * MICROS_PER_MINUTE + whole * MICROS_PER_SECOND + micros)
}

/// PostgreSQL's unit names and abbreviations (see its datetktbl/deltatktbl).
fn add_unit(interval: &mut Interval, count: i64, unit: &str) -> Option<()> {
    let micros = |per: i64| count.checked_mul(per);
    match unit {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" => {
            interval.micros = add(interval.micros, count)?
        }
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" => {
            interval.micros = add(interval.micros, micros(1000)?)?
        }
        "second" | "seconds" | "s" | "sec" | "secs" => {
            interval.micros = add(interval.micros, micros(MICROS_PER_SECOND)?)?
        }
        "minute" | "minutes" | "m" | "min" | "mins" => {
            interval.micros = add(interval.micros, micros(MICROS_PER_MINUTE)?)?
        }
        "hour" | "hours" | "h" | "hr" | "hrs" => {
            interval.micros = add(interval.micros, micros(MICROS_PER_HOUR)?)?
        }
        "day" | "days" | "d" => interval.days = add(interval.days, count)?,
        "week" | "weeks" | "w" => interval.days = add(interval.days, count.checked_mul(7)?)?,
        "mon" | "mons" | "month" | "months" => interval.months = add(interval.months, count)?,
        "year" | "years" | "y" | "yr" | "yrs" => {
            interval.months = add(interval.months, count.checked_mul(12)?)?
        }
        "decade" | "decades" => interval.months = add(interval.months, count.checked_mul(120)?)?,
        "century" | "centuries" => {
            interval.months = add(interval.months, count.checked_mul(1200)?)?
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        parse_pg_interval(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .to_string()
    }

    #[test]
    fn what_postgresql_prints_for_partition_intervals() {
        assert_eq!(canonical("1 day"), "1 day");
        assert_eq!(canonical("7 days"), "7 days");
        assert_eq!(canonical("1 mon"), "1 month");
        assert_eq!(canonical("3 mons"), "3 months");
        assert_eq!(canonical("1 year"), "1 year");
        assert_eq!(canonical("01:00:00"), "1 hour");
        assert_eq!(canonical("00:00:01"), "1 second");
        assert_eq!(canonical("00:15:00"), "15 minutes");
        assert_eq!(canonical("1 day 02:00:00"), "1 day 2 hours");
        assert_eq!(canonical("36:00:00"), "36 hours");
        assert_eq!(canonical("00:00:00.5"), "500 milliseconds");
        assert_eq!(canonical("@ 1 day"), "1 day");
        assert_eq!(canonical("P1D"), "1 day");
    }

    #[test]
    fn what_users_type_as_retention() {
        assert_eq!(canonical("30 days"), "30 days");
        assert_eq!(canonical("1 week"), "7 days");
        assert_eq!(canonical("2 hrs"), "2 hours");
        assert_eq!(canonical("90min"), "1 hour 30 minutes");
        assert_eq!(canonical("1 Month"), "1 month");
    }

    #[test]
    fn a_bare_number_is_seconds_as_pg_partman_reads_it() {
        assert_eq!(canonical("7"), "7 seconds");
        assert_eq!(canonical("86400"), "24 hours");
    }

    #[test]
    fn garbage_and_negative_intervals_are_refused() {
        for text in [
            "",
            "soon",
            "1 fortnight",
            "-1 day",
            "1 day ago",
            "-01:00:00",
            "10:99:00",
        ] {
            assert!(parse_pg_interval(text).is_err(), "{text} was accepted");
        }
    }
}
