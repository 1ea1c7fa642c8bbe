//! Failures counted per key: wrong API keys per client IP, and dashboard
//! logins per IP and per email. For API keys: after `http.auth_max_failures`
//! within `http.auth_failure_window` (from the IP's first failure) every
//! request of the IP that needs a key is answered `429` before its key is
//! looked at, until the window ends. A right key does not clear the count:
//! an attacker holding a key of its own could otherwise reset it between
//! guesses. IPv6 clients count per /64, what one subscriber usually holds.
//!
//! At most [`MAX_ENTRIES`] addresses are remembered; when full, ended windows
//! are dropped, then the oldest.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most client addresses remembered.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Failures per key (a client address, an email).
pub(crate) struct Throttle<K> {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<K, (u32, Instant)>>,
}

/// Failed API keys (and dashboard logins) per client address.
pub(crate) type KeyThrottle = Throttle<IpAddr>;

/// What a throttle counts by: the key itself, or the group it is in.
pub(crate) trait ThrottleKey: Eq + Hash + Clone {
    /// The key failures are counted under.
    fn bucket(self) -> Self;
}

impl ThrottleKey for IpAddr {
    fn bucket(self) -> IpAddr {
        ip_bucket(self)
    }
}

impl ThrottleKey for String {
    fn bucket(self) -> String {
        self
    }
}

/// What a failure did to the address's count.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) count: u32,
    /// This failure used up the last attempt.
    pub(crate) now_blocked: bool,
}

impl<K: ThrottleKey> Throttle<K> {
    pub(crate) fn new(max_failures: u32, window: Duration) -> Throttle<K> {
        Throttle {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::default(),
        }
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<K, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(time left)` while `key` has used up its attempts.
    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        match self.failures().get(&key.bucket()) {
            Some(&(count, since)) if count >= self.max_failures => {
                let ends = since + self.window;
                if now < ends { Err(ends - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub(crate) fn record_failure(&self, key: K, now: Instant) -> Failure {
        let mut map = self.failures();
        let key = key.bucket();
        if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
            let window = self.window;
            map.retain(|_, (_, since)| now.saturating_duration_since(*since) < window);
            if map.len() >= MAX_ENTRIES
                && let Some(oldest) = map.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(key).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        Failure {
            count: entry.0,
            now_blocked: entry.0 == self.max_failures,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures().len()
    }
}

/// IPv4 (and IPv4-mapped) addresses as they are, IPv6 by their /64.
fn ip_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_the_limit_until_its_window_ends() {
        let throttle = KeyThrottle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let attacker = ip("192.0.2.7");
        for n in 1..=3 {
            assert_eq!(throttle.check(attacker, t0), Ok(()));
            let failure = throttle.record_failure(attacker, t0 + Duration::from_secs(n));
            assert_eq!(failure.count, n as u32);
            assert_eq!(failure.now_blocked, n == 3);
        }
        assert_eq!(
            throttle.check(attacker, t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(51))
        );
        assert_eq!(throttle.check(ip("192.0.2.8"), t0), Ok(()), "another IP");
        assert_eq!(
            throttle.check(ip("::ffff:192.0.2.7"), t0),
            Err(Duration::from_secs(61))
        );
        // The window runs from the first failure.
        assert_eq!(
            throttle.check(attacker, t0 + Duration::from_secs(61)),
            Ok(())
        );
        let failure = throttle.record_failure(attacker, t0 + Duration::from_secs(62));
        assert_eq!(failure.count, 1);
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let throttle = KeyThrottle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        throttle.record_failure(ip("2001:db8:1:2::1"), t0);
        throttle.record_failure(ip("2001:db8:1:2::ffff"), t0);
        assert!(throttle.check(ip("2001:db8:1:2:abcd::9"), t0).is_err());
        assert_eq!(throttle.check(ip("2001:db8:1:3::1"), t0), Ok(()));
    }

    #[test]
    fn memory_stays_bounded() {
        let throttle = KeyThrottle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for n in 0..(MAX_ENTRIES as u32 + 100) {
            throttle.record_failure(IpAddr::from(n.to_be_bytes()), t0);
        }
        assert_eq!(throttle.len(), MAX_ENTRIES);
    }
}
