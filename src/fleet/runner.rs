//! Work on many databases a bounded number at a time, and keep what each produced.
//!
//! `for_each` starts at most `jobs` tasks; each takes the next database as soon as it is
//! done with one, so a slow or unreachable database holds up one task, never the others
//! (the db layer's connect timeout and stall bound end a connection that stops
//! answering). Results come back as they end, in any order; the caller writes what it
//! wants to keep into a `Spool` (a temporary file, removed when the spool is dropped), and
//! later copies it out in the listed order, so that memory holds `jobs` databases' work at
//! most, whatever the size of the fleet.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::db::interrupt;

/// Runs `work(i)` for every `i` in `0..count`, at most `jobs` at once, and hands each
/// result to `done` as it comes (on the caller's task). No new database is started after
/// Ctrl-C or SIGTERM; returns the indexes that were never started or whose task ended
/// without a result.
pub async fn for_each<T, F, Fut>(
    count: usize,
    jobs: usize,
    work: F,
    mut done: impl FnMut(usize, T),
) -> Vec<usize>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, mut receiver) = mpsc::channel::<(usize, T)>(jobs.max(1));
    for _ in 0..jobs.clamp(1, count.max(1)) {
        let work = Arc::clone(&work);
        let next = Arc::clone(&next);
        let sender = sender.clone();
        tokio::spawn(async move {
            loop {
                if interrupt::interrupted() {
                    break;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= count {
                    break;
                }
                let result = work(index).await;
                if sender.send((index, result)).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);
    let mut finished = vec![false; count];
    while let Some((index, result)) = receiver.recv().await {
        finished[index] = true;
        done(index, result);
    }
    finished
        .iter()
        .enumerate()
        .filter(|(_, f)| !**f)
        .map(|(i, _)| i)
        .collect()
}

/// Append-only scratch space for text produced out of order and read back in order.
pub struct Spool {
    file: File,
    length: u64,
}

impl Spool {
    /// A new spool in the temporary folder, readable by this user only, already unlinked
    /// where the system allows it (nothing is left behind, even after a crash).
    pub fn new() -> io::Result<Spool> {
        let dir = std::env::temp_dir();
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!(
                "retentionc-spool-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            let mut options = std::fs::OpenOptions::new();
            options.read(true).write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(file) => {
                    let _ = std::fs::remove_file(&path);
                    return Ok(Spool { file, length: 0 });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(
            "cannot make a spool file in the temporary folder",
        ))
    }

    /// Keeps `bytes`; returns where they are.
    pub fn keep(&mut self, bytes: &[u8]) -> io::Result<Range<u64>> {
        self.file.seek(SeekFrom::Start(self.length))?;
        self.file.write_all(bytes)?;
        let start = self.length;
        self.length += bytes.len() as u64;
        Ok(start..self.length)
    }

    /// Copies what `keep` returned `range` for to `out`.
    pub fn copy(&mut self, range: &Range<u64>, out: &mut dyn Write) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(range.start))?;
        let mut part = (&mut self.file).take(range.end - range.start);
        io::copy(&mut part, out)?;
        Ok(())
    }

    /// The JSON documents kept at `ranges`, as the elements of an array that a report's
    /// top-level object holds (four spaces in), closed on the report's indentation.
    pub fn write_json_array(
        &mut self,
        ranges: &[Range<u64>],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        write!(out, "[")?;
        for (n, range) in ranges.iter().enumerate() {
            let mut part = Vec::new();
            self.copy(range, &mut part)?;
            let part = String::from_utf8_lossy(&part);
            let separator = if n == 0 { "" } else { "," };
            write!(
                out,
                "{separator}\n    {}",
                super::report::indented(&part, 4)
            )?;
        }
        writeln!(out, "{}]", if ranges.is_empty() { "" } else { "\n  " })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spool_gives_back_what_it_kept_in_any_order() {
        let mut spool = Spool::new().unwrap();
        let a = spool.keep(b"first\n").unwrap();
        let b = spool.keep(b"").unwrap();
        let c = spool.keep("third ✓\n".as_bytes()).unwrap();
        let mut out = Vec::new();
        for range in [&c, &a, &b] {
            spool.copy(range, &mut out).unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "third ✓\nfirst\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_item_holds_up_one_task_and_never_more_than_jobs_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let missing = for_each(
            12,
            3,
            move |i| {
                let (r, m) = (Arc::clone(&r), Arc::clone(&m));
                async move {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    // Item 0 is slow: the others all end before it.
                    let wait = if i == 0 { 400 } else { 10 };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                }
            },
            |i, value| {
                assert_eq!(value, i * 10);
                order.lock().unwrap().push(i);
            },
        )
        .await;
        assert!(missing.is_empty());
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 12);
        assert_eq!(*order.last().unwrap(), 0, "{order:?}");
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
