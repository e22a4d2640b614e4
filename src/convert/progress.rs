//! Progress of the fill: a bar with rows, rate and time left on a terminal, plain lines
//! every few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::convert::planned::duration_text;

/// How often a plain line is written.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct FillProgress {
    table: String,
    bar: Option<ProgressBar>,
    started: Instant,
    first_block: i64,
    last_log: Instant,
}

impl FillProgress {
    /// A display for a fill of `table` starting at page `next_block` of `last_block`.
    pub fn new(table: &str, next_block: i64, last_block: i64) -> FillProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(last_block.max(0) as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {percent:>3}% pages, {msg}, {eta} left",
                )
                .expect("a valid progress template")
                .progress_chars("=> "),
            );
            bar.set_prefix(table.to_string());
            bar.set_position(next_block.max(0) as u64);
            bar.reset_eta();
            bar
        });
        FillProgress {
            table: table.to_string(),
            bar,
            started: Instant::now(),
            first_block: next_block,
            last_log: Instant::now(),
        }
    }

    /// After a committed batch: pages done so far, and rows copied in this run.
    pub fn update(&mut self, next_block: i64, last_block: i64, rows: i64) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / elapsed;
        match &self.bar {
            Some(bar) => {
                bar.set_position(next_block.max(0) as u64);
                bar.set_message(format!("{rows} rows copied, {rate:.0} rows/s"));
            }
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                let pages_rate = (next_block - self.first_block) as f64 / elapsed;
                let left = if pages_rate > 0.0 {
                    format!(
                        ", about {} left",
                        duration_text(((last_block - next_block) as f64 / pages_rate) as u64)
                    )
                } else {
                    String::new()
                };
                eprintln!(
                    "{}: page {next_block} of {last_block} copied, {rows} rows in {:.0} s ({rate:.0} rows/s){left}",
                    self.table, elapsed
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
