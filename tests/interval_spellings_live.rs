//! retentionc reads interval text as PostgreSQL 15 does: a table of spellings (every unit
//! abbreviation, compact pairs, ISO 8601, case, combinations, and a few thousand
//! generated ones) is sent to a real server as `'<text>'::interval`, and each is compared
//! with retentionc's parse. Whatever retentionc accepts, PostgreSQL accepts as the same
//! (months, days, microseconds); the spellings the policy format documents are accepted.

mod common;

use common::cluster::{Cluster, Partman};
use retentionc::policy::interval::{Interval, parse_interval};

/// Every unit spelling the policy format documents.
const UNITS: [&str; 50] = [
    "year",
    "years",
    "y",
    "yr",
    "yrs",
    "month",
    "months",
    "mon",
    "mons",
    "week",
    "weeks",
    "w",
    "day",
    "days",
    "d",
    "hour",
    "hours",
    "h",
    "hr",
    "hrs",
    "minute",
    "minutes",
    "m",
    "min",
    "mins",
    "second",
    "seconds",
    "s",
    "sec",
    "secs",
    "millisecond",
    "milliseconds",
    "ms",
    "msec",
    "msecs",
    "mseconds",
    "microsecond",
    "microseconds",
    "us",
    "usec",
    "usecs",
    "useconds",
    "decade",
    "decades",
    "dec",
    "decs",
    "century",
    "centuries",
    "millennium",
    "millennia",
];

/// Spellings PostgreSQL refuses (or reads otherwise), which retentionc must refuse too.
const REFUSED: [&str; 18] = [
    "1 day 1 day",
    "1 mon 1 month",
    "1 day2 hours",
    "1day2hours",
    "1 mo",
    "1 wk",
    "1 qtr",
    "1 quarter",
    "p1d",
    "P",
    "P1,5D",
    "1,5 days",
    "0x10 days",
    "1e2 days",
    "1 min 1 m",
    "1 hour 1 hours",
    "P1D1M",
    "PT1H1H",
];

/// What PostgreSQL makes of `text`, or its error.
async fn postgres_reads(client: &tokio_postgres::Client, text: &str) -> Result<Interval, String> {
    let row = client
        .query_one(
            "SELECT (EXTRACT(YEAR FROM i) * 12 + EXTRACT(MONTH FROM i))::bigint,
                    EXTRACT(DAY FROM i)::bigint,
                    (EXTRACT(HOUR FROM i) * 3600000000 + EXTRACT(MINUTE FROM i) * 60000000
                     + EXTRACT(MICROSECONDS FROM i))::bigint
               FROM (SELECT $1::text::interval AS i) AS s",
            &[&text],
        )
        .await
        .map_err(|e| {
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or(e.to_string())
        })?;
    Ok(Interval {
        months: row.get(0),
        days: row.get(1),
        micros: row.get(2),
    })
}

/// A small deterministic generator, so that a failure names a spelling that reproduces.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

fn spellings() -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for unit in UNITS {
        for count in ["1", "7", "180", "010", "+2"] {
            texts.push(format!("{count} {unit}"));
            texts.push(format!("{count}{unit}"));
            texts.push(format!("{count} {}", unit.to_uppercase()));
        }
    }
    for iso in [
        "P90D",
        "PT1H",
        "P1Y2M",
        "P1W",
        "P1W1D",
        "P1Y2M3W4DT5H6M7S",
        "PT0.5S",
        "PT1.000001S",
        "PT36H",
        "P1DT12H",
        "PT1M",
        "P1M",
        "P0D",
        "PT90M",
    ] {
        texts.push(iso.to_string());
    }
    for combo in [
        "1 year 2 months",
        "1d 12h",
        "1 week 1 day",
        "1 s 1 ms",
        "1 ms 1 us",
        "1 year 1 decade",
        "1 day 12 hours 30 minutes",
        "  1 day  ",
        "1\tday",
        "1 hour 1 day",
        "6mons 2d",
    ] {
        texts.push(combo.to_string());
    }
    texts.extend(REFUSED.iter().map(|s| s.to_string()));
    // Generated: one to three distinct units, apart or together, any case.
    let mut rng = Lcg(20261130);
    for _ in 0..3000 {
        let pairs = 1 + rng.next(3);
        let mut parts = Vec::new();
        for _ in 0..pairs {
            let unit = UNITS[rng.next(UNITS.len())];
            let unit = if rng.next(4) == 0 {
                unit.to_uppercase()
            } else {
                unit.to_string()
            };
            let count = rng.next(500);
            let sep = if rng.next(3) == 0 { "" } else { " " };
            parts.push(format!("{count}{sep}{unit}"));
        }
        texts.push(parts.join(" "));
    }
    texts
}

#[tokio::test]
async fn what_retentionc_accepts_postgresql_reads_as_the_same_interval() {
    let db = Cluster::shared().database(Partman::V5);
    let client = db.client().await;
    let mut compared = 0;
    for text in spellings() {
        let ours = parse_interval(&text);
        let theirs = postgres_reads(&client, &text).await;
        match (&ours, &theirs) {
            (Ok(ours), Ok(theirs)) => {
                assert_eq!(ours, theirs, "{text:?}: retentionc and PostgreSQL disagree");
                // The canonical text written back reads as the same interval too.
                let canonical = ours.to_string();
                assert_eq!(
                    postgres_reads(&client, &canonical).await.as_ref(),
                    Ok(ours),
                    "{text:?} written as {canonical:?}"
                );
                compared += 1;
            }
            (Ok(ours), Err(e)) => {
                panic!("{text:?}: retentionc reads {ours:?}, PostgreSQL refuses it: {e}")
            }
            (Err(_), _) => {}
        }
    }
    assert!(compared > 2000, "only {compared} spellings compared");
}

#[test]
fn every_documented_spelling_is_accepted() {
    for unit in UNITS {
        for text in [
            format!("3 {unit}"),
            format!("3{unit}"),
            format!("3 {}", unit.to_uppercase()),
        ] {
            assert!(parse_interval(&text).is_ok(), "{text:?} refused");
        }
    }
    for refused in REFUSED {
        assert!(parse_interval(refused).is_err(), "{refused:?} accepted");
    }
}
