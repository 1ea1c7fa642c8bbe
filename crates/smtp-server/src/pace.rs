//! The minimum rate of message content (`smtp.min_data_rate`). Pure: the
//! session passes the time in.
//!
//! A token bucket counted in time: the content is due by a deadline, each
//! byte that arrives moves the deadline on by `1 / rate` seconds, and the
//! deadline is never more than `slack` ahead of now. A client keeping up the
//! rate never reaches it; a client that trickles after a fast start (or
//! from the start) falls `slack` behind and is cut, so a burst cannot buy
//! hours of dripping. One deadline for the session's read timeout, a few
//! arithmetic operations per read; nothing per byte.

use tokio::time::Instant;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Paces the content of one DATA command or one BDAT chunk.
#[derive(Debug)]
pub(crate) struct ContentPace {
    /// Bytes per second; 0: no minimum.
    rate: u64,
    /// How far behind the rate a client may fall (at the start too).
    slack: std::time::Duration,
    /// When more content is due; set when the session first waits.
    due: Option<Instant>,
}

impl ContentPace {
    pub(crate) fn new(rate: u64, slack: std::time::Duration) -> ContentPace {
        ContentPace {
            rate,
            slack,
            due: None,
        }
    }

    /// When the client will have fallen too far behind; `None` without a
    /// minimum rate. The first call starts the clock at `now()` (the only
    /// call that reads it).
    pub(crate) fn deadline(&mut self, now: impl FnOnce() -> Instant) -> Option<Instant> {
        if self.rate == 0 {
            return None;
        }
        Some(*self.due.get_or_insert_with(|| now() + self.slack))
    }

    /// Credits `bytes` that arrived at `now`.
    pub(crate) fn arrived(&mut self, bytes: usize, now: Instant) {
        if self.rate == 0 {
            return;
        }
        let Some(due) = self.due else {
            return;
        };
        let nanos = (bytes as u64).saturating_mul(NANOS_PER_SECOND) / self.rate;
        let credited = due + std::time::Duration::from_nanos(nanos);
        self.due = Some(credited.min(now + self.slack));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SLACK: Duration = Duration::from_secs(10);

    /// Feeds `bytes` every `every` for `total`; returns when the client
    /// would have been cut, if it was.
    fn drip(rate: u64, bytes: usize, every: Duration, total: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut pace = ContentPace::new(rate, SLACK);
        let mut now = start;
        while now - start < total {
            let next = now + every;
            let deadline = pace.deadline(|| now).expect("a rate is set");
            if deadline < next {
                return Some(deadline - start);
            }
            now = next;
            pace.arrived(bytes, now);
        }
        None
    }

    #[test]
    fn a_byte_a_second_is_cut_once_the_slack_is_used() {
        let cut = drip(1000, 1, Duration::from_secs(1), Duration::from_secs(3600));
        // Each byte buys a millisecond: the cut comes barely after the slack.
        let cut = cut.expect("cut");
        assert!(
            cut >= SLACK && cut < SLACK + Duration::from_secs(1),
            "{cut:?}"
        );
    }

    #[test]
    fn a_client_at_fifty_kilobytes_a_second_is_never_cut() {
        let cut = drip(
            1000,
            5000,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        assert_eq!(cut, None);
        // Just above the minimum, in big irregular reads, is fine too.
        let cut = drip(
            1000,
            9000,
            Duration::from_secs(8),
            Duration::from_secs(3600),
        );
        assert_eq!(cut, None);
    }

    #[test]
    fn a_fast_start_buys_no_more_than_the_slack() {
        let start = Instant::now();
        let mut pace = ContentPace::new(1000, SLACK);
        pace.deadline(|| start);
        // Ten megabytes at once would be hours of credit without the cap.
        pace.arrived(10_000_000, start + Duration::from_secs(1));
        let deadline = pace.deadline(|| start).unwrap();
        assert_eq!(deadline, start + Duration::from_secs(1) + SLACK);
        // Then a trickle: each byte moves the deadline by a millisecond.
        pace.arrived(1, start + Duration::from_secs(2));
        assert_eq!(
            pace.deadline(|| start).unwrap(),
            deadline + Duration::from_millis(1)
        );
    }

    #[test]
    fn a_stall_within_the_slack_is_forgiven() {
        let start = Instant::now();
        let mut pace = ContentPace::new(1000, SLACK);
        pace.deadline(|| start);
        pace.arrived(100_000, start + Duration::from_secs(1));
        // Nine seconds of silence, then the client goes on.
        let deadline = pace.deadline(|| start).unwrap();
        assert!(deadline > start + Duration::from_secs(10));
    }

    #[test]
    fn rate_zero_never_cuts() {
        let mut pace = ContentPace::new(0, SLACK);
        assert_eq!(pace.deadline(Instant::now), None);
        pace.arrived(1, Instant::now());
        assert_eq!(pace.deadline(Instant::now), None);
    }
}
