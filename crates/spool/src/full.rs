//! A full disk as the writer lives through it: the pace of its retries and
//! what it tells the operator (one line when it starts, a summary every
//! minute while it lasts, one line when it ends, and the [`FULL`] gauge).

use crate::SpoolError;
use std::time::{Duration, Instant};

/// The gauge of a full disk: 1 while new messages are refused for want of
/// space, else 0.
pub const FULL: &str = "carteiro_spool_full";

/// The first wait before trying again, doubled after each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// How often a lasting full disk is logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// When to try something again: 100 ms after a failure, doubling to 4 s.
pub(crate) struct Backoff {
    wait: Duration,
    next: Instant,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            wait: BACKOFF_MIN,
            next: Instant::now(),
        }
    }

    /// Whether the next try is due.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// After a failure: the next try waits, longer each time.
    pub(crate) fn failed(&mut self, now: Instant) {
        self.next = now + self.wait;
        self.wait = (self.wait * 2).min(BACKOFF_MAX);
    }

    /// The next try may come at once, and waits start short again.
    pub(crate) fn reset(&mut self) {
        self.wait = BACKOFF_MIN;
        self.next = Instant::now();
    }
}

/// One stretch of a full disk.
pub(crate) struct Episode {
    started: Instant,
    last_summary: Instant,
    /// New messages refused since it started.
    refused: u64,
    /// When to look for room again.
    pub(crate) look: Backoff,
}

impl Episode {
    /// Logs the start (once) and raises the gauge.
    pub(crate) fn start(err: &SpoolError, reserve: u64, released: bool) -> Episode {
        tracing::error!(
            error = %err,
            reserve_bytes = reserve,
            reserve_released = released,
            "spool disk full: new messages are refused (452 4.3.1) until there is room; \
             deliveries go on and their records use the reserve"
        );
        metrics::gauge!(FULL).set(1.0);
        let now = Instant::now();
        let mut look = Backoff::new();
        look.failed(now);
        Episode {
            started: now,
            last_summary: now,
            refused: 0,
            look,
        }
    }

    pub(crate) fn refused(&mut self) {
        self.refused += 1;
    }

    /// When the next summary is due.
    pub(crate) fn summary_due(&self) -> Instant {
        self.last_summary + SUMMARY_EVERY
    }

    /// Logs a summary when one is due.
    pub(crate) fn summarize(&mut self, now: Instant, pending_records: usize) {
        if now < self.summary_due() {
            return;
        }
        self.last_summary = now;
        tracing::warn!(
            lasted_s = now.duration_since(self.started).as_secs(),
            refused = self.refused,
            pending_records,
            "spool disk still full"
        );
    }

    /// Logs the end and lowers the gauge.
    pub(crate) fn end(self) {
        tracing::info!(
            lasted_s = self.started.elapsed().as_secs(),
            refused = self.refused,
            "spool disk has room again: new messages are accepted"
        );
        metrics::gauge!(FULL).set(0.0);
    }
}
