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

/// How one unit adds to an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Decade,
    Century,
    Millennium,
}

impl Unit {
    /// The unit's name in canonical text (singular).
    fn name(self) -> &'static str {
        match self {
            Unit::Microsecond => "microsecond",
            Unit::Millisecond => "millisecond",
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Year => "year",
            Unit::Decade => "decade",
            Unit::Century => "century",
            Unit::Millennium => "millennium",
        }
    }

    fn phrase(self, count: i64) -> String {
        let name = self.name();
        match (count, self) {
            (1, _) => format!("1 {name}"),
            (_, Unit::Century) => format!("{count} centuries"),
            (_, Unit::Millennium) => format!("{count} millennia"),
            _ => format!("{count} {name}s"),
        }
    }

    fn add(self, interval: &mut Interval, count: i64) -> Option<()> {
        let micros = |per: i64| count.checked_mul(per);
        match self {
            Unit::Microsecond => interval.micros = interval.micros.checked_add(count)?,
            Unit::Millisecond => interval.micros = interval.micros.checked_add(micros(1000)?)?,
            Unit::Second => {
                interval.micros = interval.micros.checked_add(micros(MICROS_PER_SECOND)?)?
            }
            Unit::Minute => {
                interval.micros = interval.micros.checked_add(micros(MICROS_PER_MINUTE)?)?
            }
            Unit::Hour => {
                interval.micros = interval.micros.checked_add(micros(MICROS_PER_HOUR)?)?
            }
            Unit::Day => interval.days = interval.days.checked_add(count)?,
            Unit::Week => interval.days = interval.days.checked_add(count.checked_mul(7)?)?,
            Unit::Month => interval.months = interval.months.checked_add(count)?,
            Unit::Year => interval.months = interval.months.checked_add(count.checked_mul(12)?)?,
            Unit::Decade => {
                interval.months = interval.months.checked_add(count.checked_mul(120)?)?
            }
            Unit::Century => {
                interval.months = interval.months.checked_add(count.checked_mul(1200)?)?
            }
            Unit::Millennium => {
                interval.months = interval.months.checked_add(count.checked_mul(12_000)?)?
            }
        }
        Some(())
    }
}

/// Every unit spelling PostgreSQL 15 reads in interval input (its `deltatktbl`), in
/// lower case; PostgreSQL ignores case, and so does this parser. `m` is minutes, as
/// PostgreSQL reads it. Longer units come first within each group, and months before
/// minutes, so that a misspelling is matched with the word a user most likely meant.
const SPELLINGS: [(&str, Unit); 50] = [
    ("years", Unit::Year),
    ("year", Unit::Year),
    ("yrs", Unit::Year),
    ("yr", Unit::Year),
    ("y", Unit::Year),
    ("months", Unit::Month),
    ("month", Unit::Month),
    ("mons", Unit::Month),
    ("mon", Unit::Month),
    ("weeks", Unit::Week),
    ("week", Unit::Week),
    ("w", Unit::Week),
    ("days", Unit::Day),
    ("day", Unit::Day),
    ("d", Unit::Day),
    ("hours", Unit::Hour),
    ("hour", Unit::Hour),
    ("hrs", Unit::Hour),
    ("hr", Unit::Hour),
    ("h", Unit::Hour),
    ("minutes", Unit::Minute),
    ("minute", Unit::Minute),
    ("mins", Unit::Minute),
    ("min", Unit::Minute),
    ("m", Unit::Minute),
    ("seconds", Unit::Second),
    ("second", Unit::Second),
    ("secs", Unit::Second),
    ("sec", Unit::Second),
    ("s", Unit::Second),
    ("milliseconds", Unit::Millisecond),
    ("millisecond", Unit::Millisecond),
    ("mseconds", Unit::Millisecond),
    ("msecs", Unit::Millisecond),
    ("msec", Unit::Millisecond),
    ("ms", Unit::Millisecond),
    ("microseconds", Unit::Microsecond),
    ("microsecond", Unit::Microsecond),
    ("useconds", Unit::Microsecond),
    ("usecs", Unit::Microsecond),
    ("usec", Unit::Microsecond),
    ("us", Unit::Microsecond),
    ("decades", Unit::Decade),
    ("decade", Unit::Decade),
    ("decs", Unit::Decade),
    ("dec", Unit::Decade),
    ("centuries", Unit::Century),
    ("century", Unit::Century),
    ("millennia", Unit::Millennium),
    ("millennium", Unit::Millennium),
];

fn unit_of(word: &str) -> Option<Unit> {
    let lower = word.to_ascii_lowercase();
    SPELLINGS
        .iter()
        .find(|(spelling, _)| *spelling == lower)
        .map(|(_, unit)| *unit)
}

/// Parses interval text as PostgreSQL 15 reads it, within a strict subset: `N unit`
/// pairs (`1 day 12 hours`, units and abbreviations as in `SPELLINGS`, any case), the
/// compact form of a pair (`180d`, `6mons`, `1d 12h`), or ISO 8601 (`P90D`, `PT1H`,
/// `P1Y2M`). Whatever this accepts, PostgreSQL reads as the same interval. A bare number
/// is refused on purpose: pg_partman reads `'7'` as seven seconds, never what was meant.
pub fn parse_interval(text: &str) -> Result<Interval, IntervalError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(IntervalError("the interval is empty".into()));
    }
    if trimmed.starts_with('P') {
        return parse_iso8601(trimmed);
    }
    if trimmed.starts_with('p')
        && trimmed[1..].starts_with(|c: char| c.is_ascii_digit() || c == 'T')
    {
        return Err(IntervalError(format!(
            "\"{trimmed}\" starts with a lower-case p; ISO 8601 durations start with P, as in \"{}\"",
            trimmed.to_ascii_uppercase()
        )));
    }
    parse_unit_pairs(trimmed)
}

/// One word of interval text: a number, a unit, or both written together (`180d`).
enum Word<'t> {
    Number(&'t str),
    Unit(&'t str),
    Both(&'t str, &'t str),
}

fn split_word(word: &str) -> Option<Word<'_>> {
    let sign = usize::from(word.starts_with(['+', '-']));
    let number_end = word[sign..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(word.len(), |i| sign + i);
    let (number, rest) = word.split_at(number_end);
    let has_number = number.len() > sign;
    let letters = !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphabetic());
    match (has_number, rest.is_empty()) {
        (true, true) => Some(Word::Number(number)),
        (false, false) if letters && sign == 0 => Some(Word::Unit(rest)),
        (true, false) if letters => Some(Word::Both(number, rest)),
        _ => None,
    }
}

fn parse_unit_pairs(text: &str) -> Result<Interval, IntervalError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut pending: Option<&str> = None;
    for word in text.split_whitespace() {
        let Some(split) = split_word(word) else {
            return Err(IntervalError(format!(
                "\"{word}\" in \"{text}\" is neither a number nor a unit; expected \"N unit\" pairs such as \"1 day 12 hours\""
            )));
        };
        match (split, pending) {
            (Word::Number(n), None) => pending = Some(n),
            (Word::Unit(u), Some(n)) => {
                pairs.push((n, u));
                pending = None;
            }
            (Word::Both(n, u), None) => pairs.push((n, u)),
            (Word::Unit(u), None) if u.eq_ignore_ascii_case("ago") => {
                return Err(IntervalError(format!(
                    "\"{text}\" is negative (\"ago\"); expected an interval longer than zero"
                )));
            }
            (Word::Unit(u), None) if u == text => {
                return Err(IntervalError(format!(
                    "\"{text}\" is not an interval; expected \"N unit\" pairs such as \"30 days\" or \"1 day 12 hours\""
                )));
            }
            (Word::Unit(u), None) => {
                return Err(IntervalError(format!(
                    "\"{u}\" in \"{text}\" has no number before it; expected \"N unit\" pairs such as \"1 day 12 hours\""
                )));
            }
            (Word::Number(_) | Word::Both(..), Some(n)) => {
                return Err(IntervalError(format!(
                    "the number {n} in \"{text}\" has no unit; expected \"N unit\" pairs such as \"1 day 12 hours\""
                )));
            }
        }
    }
    if let Some(n) = pending {
        return Err(IntervalError(if pairs.is_empty() {
            format!(
                "\"{text}\" has no unit; write for example \"{n} days\" (pg_partman would read a bare number as seconds)"
            )
        } else {
            format!("the number {n} at the end of \"{text}\" has no unit")
        }));
    }
    let mut interval = Interval::default();
    let mut seen: Vec<Unit> = Vec::new();
    for (number, unit_word) in pairs {
        let Some(unit) = unit_of(unit_word) else {
            return Err(IntervalError(unknown_unit(text, number, unit_word)));
        };
        let count = parse_count(number, text)?;
        if seen.contains(&unit) {
            return Err(IntervalError(format!(
                "\"{text}\" gives {}s twice; PostgreSQL refuses a unit repeated, write their sum",
                unit.name()
            )));
        }
        seen.push(unit);
        unit.add(&mut interval, count)
            .ok_or_else(|| IntervalError(format!("\"{text}\" is too large for an interval")))?;
    }
    Ok(interval)
}

fn parse_count(number: &str, text: &str) -> Result<i64, IntervalError> {
    if number.starts_with('-') {
        return Err(IntervalError(format!(
            "\"{text}\" is negative; expected an interval longer than zero"
        )));
    }
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(IntervalError(format!(
            "\"{number}\" in \"{text}\" is not a whole number; write whole numbers, in a smaller unit where needed (\"1 day 12 hours\", not \"1.5 days\")"
        )));
    }
    digits
        .parse()
        .map_err(|_| IntervalError(format!("\"{text}\" is too large for an interval")))
}

/// "unknown unit" with the nearest spelling, offered as the whole corrected interval.
fn unknown_unit(text: &str, number: &str, unit_word: &str) -> String {
    let spellings: Vec<&str> = SPELLINGS.iter().map(|(s, _)| *s).collect();
    let lower = unit_word.to_ascii_lowercase();
    let suggestion = crate::policy::suggest::nearest(&lower, &spellings)
        .and_then(unit_of)
        .and_then(|unit| {
            let count: i64 = number.trim_start_matches('+').parse().ok()?;
            let fixed = corrected(text, number, unit_word, &unit.phrase(count));
            parse_interval(&fixed).is_ok().then_some(fixed)
        })
        .map(|fixed| format!(" (did you mean \"{fixed}\"?)"))
        .unwrap_or_default();
    format!(
        "unknown unit \"{unit_word}\" in \"{text}\"; expected one of second, minute, hour, day, week, month, year, or an abbreviation such as s, min, h, d, w, mon, y{suggestion}"
    )
}

/// `text` with the pair `number unit_word` (apart or written together) replaced by `phrase`.
fn corrected(text: &str, number: &str, unit_word: &str, phrase: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut done = false;
    while i < words.len() {
        if !done && words[i] == format!("{number}{unit_word}") {
            out.push(phrase.to_string());
            done = true;
        } else if !done && words[i] == number && words.get(i + 1) == Some(&unit_word) {
            out.push(phrase.to_string());
            done = true;
            i += 1;
        } else {
            out.push(words[i].to_string());
        }
        i += 1;
    }
    out.join(" ")
}

/// ISO 8601 durations as PostgreSQL reads them: `P1Y2M3W4DT5H6M7.5S`, designators in
/// this order, each at most once, whole numbers except seconds (up to six decimals).
fn parse_iso8601(text: &str) -> Result<Interval, IntervalError> {
    let bad = || {
        IntervalError(format!(
            "\"{text}\" is not an ISO 8601 duration such as \"P30D\" or \"PT1H\" (P, then numbers with Y, M, W, D; after T, with H, M, S)"
        ))
    };
    let body = &text[1..];
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(bad()),
        None => (body, None),
    };
    if date_part.is_empty() && time_part.is_none() {
        return Err(bad());
    }
    let mut interval = Interval::default();
    let too_large = || IntervalError(format!("\"{text}\" is too large for an interval"));
    let date_units = [
        ('Y', Unit::Year),
        ('M', Unit::Month),
        ('W', Unit::Week),
        ('D', Unit::Day),
    ];
    let mut next = 0;
    for (number, designator) in designators(date_part).ok_or_else(bad)? {
        let at = date_units[next..]
            .iter()
            .position(|(d, _)| *d == designator)
            .ok_or_else(bad)?;
        next += at + 1;
        let count = whole(number).ok_or_else(bad)?;
        date_units[next - 1]
            .1
            .add(&mut interval, count)
            .ok_or_else(too_large)?;
    }
    if let Some(time) = time_part {
        let time_units = [('H', Unit::Hour), ('M', Unit::Minute), ('S', Unit::Second)];
        let mut next = 0;
        for (number, designator) in designators(time).ok_or_else(bad)? {
            let at = time_units[next..]
                .iter()
                .position(|(d, _)| *d == designator)
                .ok_or_else(bad)?;
            next += at + 1;
            if designator == 'S' {
                let micros = seconds_as_micros(number).ok_or_else(bad)?;
                interval.micros = interval.micros.checked_add(micros).ok_or_else(too_large)?;
            } else {
                let count = whole(number).ok_or_else(bad)?;
                time_units[next - 1]
                    .1
                    .add(&mut interval, count)
                    .ok_or_else(too_large)?;
            }
        }
    }
    Ok(interval)
}

fn whole(number: &str) -> Option<i64> {
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// `7.5` -> 7,500,000 microseconds, exactly (no floating point).
fn seconds_as_micros(number: &str) -> Option<i64> {
    let (int, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 6 || (number.contains('.') && fraction.is_empty()) {
        return None;
    }
    let seconds = whole(int)?;
    let fraction_micros = if fraction.is_empty() {
        0
    } else {
        whole(fraction)? * 10_i64.pow(6 - fraction.len() as u32)
    };
    seconds
        .checked_mul(MICROS_PER_SECOND)?
        .checked_add(fraction_micros)
}

/// Splits `1Y2M` into [("1",'Y'), ("2",'M')]; None if the shape is wrong.
fn designators(text: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_uppercase() {
            let number = &text[start..i];
            if number.is_empty() {
                return None;
            }
            out.push((number, c));
            start = i + 1;
        } else if !(c.is_ascii_digit() || c == '.') {
            return None;
        }
    }
    (start == text.len()).then_some(out)
}

/// Shortest and longest intervals a policy may give, as PostgreSQL compares (shortest)
/// and as a calendar counts (longest: `100 years`, or `36525 days`, the days of the
/// 100 years from 1970).
#[derive(Debug, Clone, Copy)]
pub struct IntervalBounds {
    pub min: Interval,
    pub max: Interval,
}

/// What `retention.keep`, `partitioning.interval` and `deletes[].older_than` accept: at
/// least 1 second (pg_partman's smallest partition), at most 100 years (far inside
/// PostgreSQL's interval and timestamp ranges, so `now() - keep` and `now() + premake *
/// interval` stay valid timestamps).
pub const POLICY_INTERVAL_BOUNDS: IntervalBounds = IntervalBounds {
    min: Interval {
        months: 0,
        days: 0,
        micros: MICROS_PER_SECOND,
    },
    max: Interval {
        months: 1200,
        days: 0,
        micros: 0,
    },
};

/// The day every calendar length is measured from: 1970-01-01 00:00.
fn calendar_origin() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

impl Interval {
    /// `at + self`, as PostgreSQL adds an interval to a timestamp in UTC (months first,
    /// then days, then time); None when the result leaves chrono's range.
    pub fn after(&self, at: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        let months = u32::try_from(self.months).ok()?;
        let with_months = at.checked_add_months(chrono::Months::new(months))?;
        let with_days = with_months.checked_add_signed(chrono::TimeDelta::try_days(self.days)?)?;
        with_days.checked_add_signed(chrono::TimeDelta::microseconds(self.micros))
    }

    /// `self` taken `n` times, None on overflow.
    pub fn times(&self, n: i64) -> Option<Interval> {
        Some(Interval {
            months: self.months.checked_mul(n)?,
            days: self.days.checked_mul(n)?,
            micros: self.micros.checked_mul(n)?,
        })
    }

    /// Whether the interval is at most `max` long on the calendar (from 1970-01-01).
    pub fn fits_within(&self, max: &Interval) -> bool {
        let origin = calendar_origin();
        match (self.after(origin), max.after(origin)) {
            (Some(end), Some(limit)) => end <= limit,
            _ => false,
        }
    }

    /// Days from 1970-01-01 to 1970-01-01 + self, for messages ("36525 days").
    fn calendar_days(&self) -> Option<i64> {
        let origin = calendar_origin();
        Some((self.after(origin)? - origin).num_days())
    }
}

/// Parses `text` and checks it against `bounds`; the message names the bound crossed.
pub fn parse_bounded(text: &str, bounds: &IntervalBounds) -> Result<Interval, String> {
    let longest = || {
        let days = bounds
            .max
            .calendar_days()
            .filter(|_| bounds.max.months != 0)
            .map(|d| format!(" ({d} days)"))
            .unwrap_or_default();
        format!("{}{days}", bounds.max)
    };
    let interval = match parse_interval(text) {
        Ok(interval) => interval,
        Err(e) if e.0.contains("too large") => {
            return Err(format!(
                "expected at most {}, found \"{}\"",
                longest(),
                text.trim()
            ));
        }
        Err(e) => return Err(format!("expected an interval such as \"30 days\": {}", e.0)),
    };
    if interval.comparable() < bounds.min.comparable() {
        return Err(format!(
            "expected at least {}, found \"{}\"",
            bounds.min,
            text.trim()
        ));
    }
    if !interval.fits_within(&bounds.max) {
        return Err(format!(
            "expected at most {}, found \"{}\"",
            longest(),
            text.trim()
        ));
    }
    Ok(interval)
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
        assert!(err.contains("did you mean \"30 days\""), "{err}");
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

    #[test]
    fn postgresql_abbreviations_and_compact_forms_parse() {
        for (text, expected) in [
            ("1 mon", "1 month"),
            ("6 mons", "6 months"),
            ("6mons", "6 months"),
            ("180d", "180 days"),
            ("3 d", "3 days"),
            ("4 h", "4 hours"),
            ("5 hr", "5 hours"),
            ("6 hrs", "6 hours"),
            ("7 min", "7 minutes"),
            ("8 mins", "8 minutes"),
            ("9 m", "9 minutes"),
            ("10 s", "10 seconds"),
            ("11 sec", "11 seconds"),
            ("12 secs", "12 seconds"),
            ("2 w", "14 days"),
            ("1 y", "1 year"),
            ("2 yr", "2 years"),
            ("3 yrs", "3 years"),
            ("1500 ms", "1 second 500 milliseconds"),
            ("1 decade", "10 years"),
            ("1d 12h", "1 day 12 hours"),
            ("1 DAY", "1 day"),
            ("+2 days", "2 days"),
            ("010 days", "10 days"),
            ("1 week 1 day", "8 days"),
            ("P90D", "90 days"),
            ("PT1H", "1 hour"),
            ("P1Y2M", "1 year 2 months"),
            ("P1W1D", "8 days"),
            ("PT1.5S", "1 second 500 milliseconds"),
        ] {
            assert_eq!(iv(text).to_string(), expected, "{text}");
        }
    }

    #[test]
    fn what_postgresql_refuses_is_refused() {
        for text in [
            "1 day 1 day",
            "1 mon 1 month",
            "1 day2 hours",
            "1day2hours",
            "1 mo",
            "1 wk",
            "1 qtr",
            "p1d",
            "P",
            "P1,5D",
            "1 day ago",
            "1,5 days",
            "0x10 days",
            "1e2 days",
            "P1D1M",
            "PT1H1H",
            "P-1D",
        ] {
            assert!(parse_interval(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn near_misses_suggest_the_whole_corrected_interval() {
        for (text, suggestion) in [
            ("30 dayz", "30 days"),
            ("180dd", "180 days"),
            ("1 mnth", "1 month"),
            ("90 das", "90 days"),
            ("2 hourz", "2 hours"),
            ("1 day 12 hourz", "1 day 12 hours"),
            ("6 mo", "6 months"),
        ] {
            let err = parse_interval(text).unwrap_err().0;
            assert!(
                err.contains(&format!("did you mean \"{suggestion}\"?")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn bounds_name_the_limit_and_hold_at_the_edge() {
        let bounds = POLICY_INTERVAL_BOUNDS;
        assert!(parse_bounded("1 second", &bounds).is_ok());
        assert!(parse_bounded("100 years", &bounds).is_ok());
        assert!(parse_bounded("1200 months", &bounds).is_ok());
        assert!(parse_bounded("36525 days", &bounds).is_ok());
        for text in [
            "100 years 1 second",
            "1201 months",
            "36526 days",
            "99999999999 years",
            "99999999999999999999 years",
        ] {
            let err = parse_bounded(text, &bounds).unwrap_err();
            assert!(
                err.starts_with("expected at most 100 years (36525 days)"),
                "{text}: {err}"
            );
        }
        let err = parse_bounded("999 milliseconds", &bounds).unwrap_err();
        assert!(err.starts_with("expected at least 1 second"), "{err}");
        assert!(parse_bounded("0 days", &bounds).is_err());
    }
}
