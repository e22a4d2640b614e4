//! How long a pg_cron schedule can leave between two runs: the period `status --check`
//! allows on top of keep + one partition interval. Pure; unit-tested below.

use crate::model::Interval;

const MINUTE_MICROS: i64 = 60_000_000;
const DAY_MINUTES: i64 = 24 * 60;
const WEEK_MINUTES: i64 = 7 * DAY_MINUTES;

/// The longest gap between two runs of `schedule`, and a note when it had to be assumed.
pub fn period(schedule: &str) -> (Interval, Option<String>) {
    match exact_period(schedule.trim()) {
        Some(period) => (period, None),
        None => (
            Interval {
                months: 0,
                days: 1,
                micros: 0,
            },
            Some(format!(
                "schedule \"{schedule}\" is not a simple cron form; assuming it runs at least once a day"
            )),
        ),
    }
}

/// Whole days as days (so `1 day` reads as a day), the rest as time.
fn minutes(n: i64) -> Interval {
    Interval {
        months: 0,
        days: n / DAY_MINUTES,
        micros: (n % DAY_MINUTES) * MINUTE_MICROS,
    }
}

fn exact_period(schedule: &str) -> Option<Interval> {
    match schedule {
        "@hourly" => return Some(minutes(60)),
        "@daily" | "@midnight" => {
            return Some(Interval {
                months: 0,
                days: 1,
                micros: 0,
            });
        }
        "@weekly" => {
            return Some(Interval {
                months: 0,
                days: 7,
                micros: 0,
            });
        }
        "@monthly" => {
            return Some(Interval {
                months: 1,
                days: 0,
                micros: 0,
            });
        }
        "@yearly" | "@annually" => {
            return Some(Interval {
                months: 12,
                days: 0,
                micros: 0,
            });
        }
        _ => {}
    }
    // pg_cron 1.5+: "N seconds".
    let words: Vec<&str> = schedule.split_whitespace().collect();
    if words.len() == 2 && matches!(words[1], "second" | "seconds") {
        let n: i64 = words[0].parse().ok().filter(|n| (1..=59).contains(n))?;
        return Some(Interval {
            months: 0,
            days: 0,
            micros: n * 1_000_000,
        });
    }
    let [minute, hour, day_of_month, month, day_of_week] = words[..] else {
        return None;
    };
    if day_of_month != "*" || month != "*" {
        return None;
    }
    let minutes_set = field(minute, 0, 59)?;
    let hours = field(hour, 0, 23)?;
    let (days, span) = if day_of_week == "*" {
        (vec![0], DAY_MINUTES)
    } else {
        let mut days: Vec<i64> = field(day_of_week, 0, 7)?
            .into_iter()
            .map(|d| d % 7)
            .collect();
        days.sort();
        days.dedup();
        (days, WEEK_MINUTES)
    };
    let mut times: Vec<i64> = Vec::new();
    for d in &days {
        for h in &hours {
            for m in &minutes_set {
                times.push(d * DAY_MINUTES + h * 60 + m);
            }
        }
    }
    times.sort();
    let wrap = times.first()? + span - times.last()?;
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0)
        .max(wrap);
    Some(minutes(gap))
}

/// One cron field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, and comma lists of those.
fn field(text: &str, min: i64, max: i64) -> Option<Vec<i64>> {
    let mut values = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<i64>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let a: i64 = range.parse().ok()?;
            (a, if part.contains('/') { max } else { a })
        };
        if from < min || to > max || from > to {
            return None;
        }
        values.extend((from..=to).step_by(step as usize));
    }
    values.sort();
    values.dedup();
    if values.is_empty() {
        None
    } else {
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        let (interval, note) = period(s);
        match note {
            None => interval.to_string(),
            Some(_) => format!("assumed {interval}"),
        }
    }

    #[test]
    fn simple_cron_forms_have_their_exact_period() {
        assert_eq!(p("* * * * *"), "1 minute");
        assert_eq!(p("*/5 * * * *"), "5 minutes");
        assert_eq!(p("17 * * * *"), "1 hour");
        assert_eq!(p("0 3 * * *"), "1 day");
        assert_eq!(p("0,30 * * * *"), "30 minutes");
        assert_eq!(p("0,10 * * * *"), "50 minutes");
        assert_eq!(p("0 */6 * * *"), "6 hours");
        assert_eq!(p("0 9-17 * * *"), "16 hours");
        assert_eq!(p("0 3 * * 0"), "7 days");
        assert_eq!(p("0 3 * * 1-5"), "3 days");
        assert_eq!(p("@hourly"), "1 hour");
        assert_eq!(p("30 seconds"), "30 seconds");
    }

    #[test]
    fn other_forms_are_assumed_daily_and_say_so() {
        assert_eq!(p("0 3 1 * *"), "assumed 1 day");
        assert_eq!(p("0 3 * 1 *"), "assumed 1 day");
        assert_eq!(p("nonsense"), "assumed 1 day");
        assert!(period("0 3 1 * *").1.unwrap().contains("assuming"));
    }
}
