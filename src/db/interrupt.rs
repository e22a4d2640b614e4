//! Ctrl-C and SIGTERM: the process always ends within a few seconds, whatever the network does.
//!
//! Once a session is open the signals are caught here. By default a signal ends the process at
//! once (exit status 130): nothing retentionc does is left half-done by that, since the server
//! rolls back an open transaction when its client goes. A command that has something to say or
//! to record when it is stopped (`run`, `apply`) holds a [`Graceful`] guard while it works: the
//! signal is then reported to it ([`subscribe`]), it stops through [`until_interrupted`], and a
//! backstop still ends the process if that takes longer than [`BACKSTOP`]. A second signal
//! ends the process at once.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::session::Control;

/// Exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long a command stopping gracefully may take before the process ends anyway.
pub const BACKSTOP: Duration = Duration::from_secs(8);

/// After the cancel request: how long the statement may take to come back.
pub const AFTER_CANCEL: Duration = Duration::from_secs(2);

struct Interrupts {
    signalled: watch::Sender<bool>,
    graceful: AtomicUsize,
}

static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn interrupts() -> &'static Interrupts {
    INTERRUPTS.get_or_init(|| Interrupts {
        signalled: watch::channel(false).0,
        graceful: AtomicUsize::new(0),
    })
}

/// Catches SIGINT and SIGTERM from now on (once per process; needs a tokio runtime).
pub fn install() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let state = interrupts();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_for_signal().await;
            count += 1;
            if count > 1 || state.graceful.load(Ordering::SeqCst) == 0 {
                eprintln!("interrupted");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            state.signalled.send_replace(true);
            std::thread::spawn(|| {
                std::thread::sleep(BACKSTOP);
                eprintln!(
                    "interrupted: stopped waiting for the server after {} s",
                    BACKSTOP.as_secs()
                );
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            });
        }
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// While held, a signal is reported to the command (see the module documentation).
pub struct Graceful(());

pub fn graceful() -> Graceful {
    interrupts().graceful.fetch_add(1, Ordering::SeqCst);
    Graceful(())
}

impl Drop for Graceful {
    fn drop(&mut self) {
        interrupts().graceful.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Becomes `true` when a signal arrives while a [`Graceful`] guard is held.
pub fn subscribe() -> watch::Receiver<bool> {
    interrupts().signalled.subscribe()
}

pub fn interrupted() -> bool {
    *interrupts().signalled.borrow()
}

/// How a command stops its session's work when interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Cancel the running statement and let the work end (a bounded time): what `run` does,
    /// whose committed batches stay and whose failure is recorded.
    CancelAndWait,
    /// Send nothing more: close the connection (the server rolls back the open transaction)
    /// and cancel what the server still runs. A COMMIT already sent is waited for (a bounded
    /// time), since its outcome is what the user must be told: what `apply` does.
    CloseUnlessCommitting,
}

/// The outcome of work run until interrupted.
#[derive(Debug)]
pub enum Stopped<T> {
    Finished(T),
    /// Interrupted; the work's own result when it ended after the interruption, None when it
    /// was given up (the connection is then closed).
    Interrupted(Option<T>),
}

/// Runs `work` (statements on the session `control` belongs to) until it ends or a signal
/// arrives, then stops it as `stop` says, within a few seconds whatever the network does.
pub async fn until_interrupted<T>(
    control: &Control,
    stop: Stop,
    work: impl Future<Output = T>,
) -> Stopped<T> {
    let mut signal = subscribe();
    tokio::pin!(work);
    if !*signal.borrow() {
        tokio::select! {
            result = &mut work => return Stopped::Finished(result),
            _ = signal.wait_for(|s| *s) => {}
        }
    }
    let wait_for_work = match stop {
        Stop::CancelAndWait => {
            control.cancel().await;
            true
        }
        Stop::CloseUnlessCommitting => {
            let committing = control.commit_in_flight();
            if !committing {
                control.close("interrupted (Ctrl-C or SIGTERM)");
                control.cancel().await;
            }
            committing
        }
    };
    if wait_for_work && let Ok(result) = tokio::time::timeout(AFTER_CANCEL, &mut work).await {
        return Stopped::Interrupted(Some(result));
    }
    control.close("interrupted (Ctrl-C or SIGTERM), and the server did not answer");
    Stopped::Interrupted(None)
}
