//! Failed logins counted per username, whatever IP they come from, so a
//! guesser spreading its attempts over many addresses still slows down.
//!
//! After `max_failures` failures each further one blocks the username for a
//! growing time: 1 s, doubling up to `max_delay`. While blocked, AUTH as that
//! username is refused before the password is checked. It is never a
//! lockout: a block ends by itself, the count is forgotten `forget_after`
//! the last failure, and an IP the user logged in from before is not
//! blocked (an attacker cannot keep the user out of their own machine).
//!
//! Memory is bounded: at most [`MAX_ENTRIES`] usernames and as many known
//! (username, IP) pairs, the oldest evicted first. Usernames are kept only as
//! keyed hashes (SipHash with a random key per process): no attacker-chosen
//! text is stored, and collisions cannot be aimed at.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most usernames (and, separately, known login IPs) remembered.
pub const MAX_ENTRIES: usize = 10_000;

/// The first block once `max_failures` is reached; doubles with each failure.
const FIRST_DELAY: Duration = Duration::from_secs(1);

/// How long an IP a user logged in from stays known.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

#[derive(Default)]
struct Tables {
    users: HashMap<u64, Failures>,
    /// (username, IP) pairs that logged in, with when.
    known: HashMap<u64, Instant>,
}

/// The per-username throttle, shared by every session.
pub struct UserThrottle {
    max_failures: u32,
    max_delay: Duration,
    forget_after: Duration,
    keys: RandomState,
    tables: Mutex<Tables>,
}

impl UserThrottle {
    /// `max_failures` failures before blocks start, blocks at most
    /// `max_delay`, counts forgotten `forget_after` the last failure.
    pub fn new(max_failures: u32, max_delay: Duration, forget_after: Duration) -> UserThrottle {
        UserThrottle {
            max_failures: max_failures.max(1),
            max_delay,
            forget_after: forget_after.max(max_delay),
            keys: RandomState::new(),
            tables: Mutex::default(),
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Usernames differing only in case count as one.
    fn user_key(&self, username: &str) -> u64 {
        self.keys.hash_one(username.to_lowercase())
    }

    fn pair_key(&self, username: &str, ip: IpAddr) -> u64 {
        self.keys
            .hash_one((username.to_lowercase(), ip.to_canonical()))
    }

    /// `Err(time left)` while AUTH as `username` from `ip` must wait. Once
    /// past `max_failures`, an attempt that may go ahead takes the next slot
    /// at once: parallel connections do not get a guess each.
    pub fn check(&self, username: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let user = self.user_key(username);
        let pair = self.pair_key(username, ip);
        let mut tables = self.tables();
        let known = tables
            .known
            .get(&pair)
            .is_some_and(|&at| now.saturating_duration_since(at) < KNOWN_FOR);
        let Some(failures) = tables.users.get_mut(&user) else {
            return Ok(());
        };
        if known || now.saturating_duration_since(failures.last) >= self.forget_after {
            return Ok(());
        }
        if now < failures.blocked_until {
            return Err(failures.blocked_until - now);
        }
        failures.blocked_until = now + self.delay_after(failures.count);
        Ok(())
    }

    /// The block that follows failure number `count`.
    fn delay_after(&self, count: u32) -> Duration {
        match count.checked_sub(self.max_failures.saturating_add(1)) {
            None => Duration::ZERO,
            Some(over) => FIRST_DELAY
                .checked_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
                .unwrap_or(self.max_delay)
                .min(self.max_delay),
        }
    }

    /// Records a failed login; returns how long the username is now blocked
    /// (zero while under `max_failures`).
    pub fn record_failure(&self, username: &str, now: Instant) -> Duration {
        let user = self.user_key(username);
        let mut tables = self.tables();
        let forget_after = self.forget_after;
        if !tables.users.contains_key(&user) && tables.users.len() >= MAX_ENTRIES {
            tables
                .users
                .retain(|_, f| now.saturating_duration_since(f.last) < forget_after);
            evict_oldest(&mut tables.users, |f| f.last);
        }
        let entry = tables.users.entry(user).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: now,
        });
        if now.saturating_duration_since(entry.last) >= forget_after {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let delay = self.delay_after(entry.count);
        entry.blocked_until = now + delay;
        delay
    }

    /// A successful login clears the username's failures and remembers the
    /// IP as one the user logs in from.
    pub fn record_success(&self, username: &str, ip: IpAddr, now: Instant) {
        let user = self.user_key(username);
        let pair = self.pair_key(username, ip);
        let mut tables = self.tables();
        tables.users.remove(&user);
        if !tables.known.contains_key(&pair) && tables.known.len() >= MAX_ENTRIES {
            tables
                .known
                .retain(|_, at| now.saturating_duration_since(*at) < KNOWN_FOR);
            evict_oldest(&mut tables.known, |at| *at);
        }
        tables.known.insert(pair, now);
    }

    /// Usernames remembered now (for tests).
    pub fn len(&self) -> usize {
        self.tables().users.len()
    }

    /// Whether no username is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the entry with the oldest time when the map is still full.
fn evict_oldest<V>(map: &mut HashMap<u64, V>, time: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    if let Some(oldest) = map.iter().min_by_key(|(_, v)| time(v)).map(|(&k, _)| k) {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn throttle() -> UserThrottle {
        UserThrottle::new(3, Duration::from_secs(60), Duration::from_secs(900))
    }

    #[test]
    fn failures_from_many_ips_block_the_username_with_a_doubling_delay() {
        let t = throttle();
        let t0 = Instant::now();
        let mut now = t0;
        for n in 0..3u8 {
            let from = IpAddr::from([198, 51, 100, n]);
            assert_eq!(t.check("alice", from, now), Ok(()));
            assert_eq!(t.record_failure("alice", now), Duration::ZERO);
        }
        // The fourth failure, from yet another IP, starts the blocks.
        assert_eq!(t.record_failure("alice", now), Duration::from_secs(1));
        let stranger = ip("203.0.113.7");
        assert_eq!(t.check("ALICE", stranger, now), Err(Duration::from_secs(1)));
        assert_eq!(
            t.check("bob", stranger, now),
            Ok(()),
            "only alice is blocked"
        );
        let mut delays = Vec::new();
        for _ in 0..8 {
            now += Duration::from_secs(61);
            assert_eq!(
                t.check("alice", stranger, now),
                Ok(()),
                "blocks end by themselves"
            );
            delays.push(t.record_failure("alice", now).as_secs());
        }
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn parallel_attempts_past_the_limit_get_one_slot_between_them() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..4 {
            t.record_failure("erin", now);
        }
        let later = now + Duration::from_secs(2);
        assert_eq!(t.check("erin", ip("203.0.113.1"), later), Ok(()));
        // The first attempt's answer is not in yet; the next one waits.
        assert!(t.check("erin", ip("203.0.113.2"), later).is_err());
    }

    #[test]
    fn the_count_is_forgotten_after_a_quiet_window() {
        let t = throttle();
        let t0 = Instant::now();
        for _ in 0..4 {
            t.record_failure("carol", t0);
        }
        let later = t0 + Duration::from_secs(900);
        assert_eq!(t.record_failure("carol", later), Duration::ZERO);
    }

    #[test]
    fn an_ip_the_user_logged_in_from_is_not_blocked() {
        let t = throttle();
        let t0 = Instant::now();
        let home = ip("192.0.2.10");
        t.record_success("dave", home, t0);
        for _ in 0..6 {
            t.record_failure("dave", t0);
        }
        assert!(t.check("dave", ip("203.0.113.1"), t0).is_err());
        assert_eq!(t.check("Dave", home, t0), Ok(()));
        // A success clears the failures for everyone.
        t.record_success("dave", home, t0);
        assert_eq!(t.check("dave", ip("203.0.113.1"), t0), Ok(()));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_usernames() {
        let t = throttle();
        let t0 = Instant::now();
        for n in 0..(MAX_ENTRIES + 500) {
            t.record_failure(&format!("user{n}"), t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(t.len(), MAX_ENTRIES);
        // The newest are the ones kept.
        let newest = format!("user{}", MAX_ENTRIES + 499);
        for _ in 0..3 {
            t.record_failure(&newest, t0 + Duration::from_secs(20));
        }
        assert!(
            t.check(&newest, ip("203.0.113.1"), t0 + Duration::from_secs(20))
                .is_err()
        );
    }
}
