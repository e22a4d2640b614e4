//! Progress of the fill: a bar with rows, rate and time left on a terminal; otherwise
//! (logs, CI) plain lines on stderr, one after the first batch and then one every few
//! seconds, each with the rows copied and the time left.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::convert::planned::duration_text;
use crate::plan::format::thousands;

/// How often a plain line is written after the first.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The bar's length: the share done, in thousandths.
const BAR_UNITS: f64 = 1000.0;

pub struct FillProgress {
    table: String,
    bar: Option<ProgressBar>,
    started: Instant,
    /// The share of the fill done when this run started (a resumed fill starts above 0).
    first_share: f64,
    last_line: Option<Instant>,
}

impl FillProgress {
    /// A display for a fill of `table` of which the share `share` (0 to 1) is done.
    pub fn new(table: &str, share: f64) -> FillProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(BAR_UNITS as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg}, {eta} left")
                    .expect("a valid progress template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(table.to_string());
            bar.set_position(units(share));
            bar.reset_eta();
            bar
        });
        FillProgress {
            table: table.to_string(),
            bar,
            started: Instant::now(),
            first_share: share,
            last_line: None,
        }
    }

    /// After a committed batch: the share done, where the fill stands, and the rows copied
    /// in this run.
    pub fn update(&mut self, share: f64, stands_at: &str, rows: i64) {
        let elapsed = self.started.elapsed();
        match &self.bar {
            Some(bar) => {
                let rate = rows as f64 / elapsed.as_secs_f64().max(0.001);
                bar.set_position(units(share));
                bar.set_message(format!(
                    "({stands_at}), {} rows copied, {rate:.0} rows/s",
                    thousands(rows.max(0) as u64)
                ));
            }
            None if self.last_line.is_none_or(|at| at.elapsed() >= LOG_EVERY) => {
                self.last_line = Some(Instant::now());
                eprintln!(
                    "{}",
                    progress_line(
                        &self.table,
                        self.first_share,
                        share,
                        stands_at,
                        rows,
                        elapsed
                    )
                );
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn units(share: f64) -> u64 {
    (share.clamp(0.0, 1.0) * BAR_UNITS) as u64
}

/// `public.orders: 23% (created_at up to ...), 250,000 rows copied in 4 s (62,500 rows/s),
/// about 13 s left`: the time left assumes the rest goes at this run's pace so far.
pub fn progress_line(
    table: &str,
    first_share: f64,
    share: f64,
    stands_at: &str,
    rows: i64,
    elapsed: Duration,
) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = rows.max(0) as f64 / seconds;
    let done_here = share - first_share;
    let left = if done_here > 0.0 {
        let left = seconds * (1.0 - share).max(0.0) / done_here;
        format!("about {} left", duration_text(left.round() as u64))
    } else {
        "time left not known yet".to_string()
    };
    format!(
        "{table}: {:.0}% ({stands_at}), {} rows copied in {seconds:.0} s ({} rows/s), {left}",
        (share.clamp(0.0, 1.0) * 100.0).floor(),
        thousands(rows.max(0) as u64),
        thousands(rate as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_has_the_rows_copied_and_the_time_left_at_this_pace() {
        assert_eq!(
            progress_line(
                "public.orders",
                0.0,
                0.25,
                "created_at up to 2025-01-03 10:00:00+00",
                250_000,
                Duration::from_secs(4)
            ),
            "public.orders: 25% (created_at up to 2025-01-03 10:00:00+00), 250,000 rows copied in 4 s (62,500 rows/s), about 12 s left"
        );
        // Resumed at half way: the pace is this run's.
        assert_eq!(
            progress_line(
                "t.t",
                0.5,
                0.6,
                "page 60 of 100",
                1_000,
                Duration::from_secs(10)
            ),
            "t.t: 60% (page 60 of 100), 1,000 rows copied in 10 s (100 rows/s), about 40 s left"
        );
        assert!(
            progress_line("t.t", 0.0, 0.0, "page 0 of 100", 0, Duration::ZERO)
                .ends_with("time left not known yet")
        );
    }
}
