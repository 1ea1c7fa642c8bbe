//! Per-client limits shared by all sessions of a server: connections in
//! total, per IP address and per network prefix, the share of connections
//! kept for trusted networks, and failed authentication attempts per IP.

use carteiro_config::SmtpConfig;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The connection limits, from `[smtp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections in all (`max_connections`).
    pub max_total: usize,
    /// Of those, kept for trusted clients (`reserved_trusted_connections`).
    pub reserved_trusted: usize,
    /// From one address (`max_connections_per_ip`).
    pub max_per_ip: usize,
    /// From one /24 or /64 (`max_connections_per_prefix`), trusted clients
    /// not counted.
    pub max_per_prefix: usize,
}

impl ConnectionLimits {
    pub fn from_config(smtp: &SmtpConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_total: smtp.max_connections,
            reserved_trusted: smtp.reserved_trusted(),
            max_per_ip: smtp.max_connections_per_ip,
            max_per_prefix: smtp.max_connections_per_prefix,
        }
    }
}

/// Counts open connections. A [`ConnectionGuard`] gives its slot back when
/// dropped, however the session ends.
pub struct ConnectionLimiter {
    limits: ConnectionLimits,
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Keyed by the address with its host bits cleared ([`prefix_of`]).
    per_prefix: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// All connections a client of its kind may use are taken.
    TooManyTotal,
    TooManyFromIp,
    TooManyFromPrefix,
}

impl ConnectionLimiter {
    pub fn new(limits: ConnectionLimits) -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter {
            limits,
            state: Mutex::new(LimiterState::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a connection from `ip`; `trusted` when `ip` is on
    /// the trusted networks (they may use the reserve and are not counted
    /// per prefix).
    pub fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        trusted: bool,
    ) -> Result<ConnectionGuard, Refusal> {
        let ip = canonical(ip);
        let limits = &self.limits;
        let total_cap = if trusted {
            limits.max_total
        } else {
            limits.max_total.saturating_sub(limits.reserved_trusted)
        };
        let prefix = (!trusted).then(|| prefix_of(ip));
        let mut state = self.state();
        if state.total >= total_cap {
            return Err(Refusal::TooManyTotal);
        }
        if state
            .per_ip
            .get(&ip)
            .is_some_and(|&n| n >= limits.max_per_ip)
        {
            return Err(Refusal::TooManyFromIp);
        }
        if let Some(prefix) = prefix {
            let count = state.per_prefix.entry(prefix).or_insert(0);
            if *count >= limits.max_per_prefix {
                return Err(Refusal::TooManyFromPrefix);
            }
            *count += 1;
        }
        *state.per_ip.entry(ip).or_insert(0) += 1;
        state.total += 1;
        Ok(ConnectionGuard {
            limiter: Arc::clone(self),
            ip,
            prefix,
        })
    }

    /// Connections open now.
    pub fn active(&self) -> usize {
        self.state().total
    }
}

/// One admitted connection.
pub struct ConnectionGuard {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
    /// The prefix it counts against; `None` for a trusted client.
    prefix: Option<IpAddr>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.total = state.total.saturating_sub(1);
        release(&mut state.per_ip, self.ip);
        if let Some(prefix) = self.prefix {
            release(&mut state.per_prefix, prefix);
        }
    }
}

/// Counts one connection of `key` less, forgetting keys at zero so the
/// maps hold only what is open.
fn release(counts: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(count) = counts.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

/// The network an address belongs to for `max_connections_per_prefix`: its
/// /24 for IPv4, its /64 for IPv6 (one site or subscriber, whatever the
/// address within it).
pub fn prefix_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// Remembers failed logins per client address within a time window.
pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthThrottle {
    pub fn new(max_failures: u32, window: Duration) -> AuthThrottle {
        AuthThrottle {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Failed attempts from `ip` in the current window.
    pub fn failures_of(&self, ip: IpAddr, now: Instant) -> u32 {
        match self.failures().get(&canonical(ip)) {
            Some(&(count, since)) if now.duration_since(since) < self.window => count,
            _ => 0,
        }
    }

    /// Whether `ip` has used up its attempts.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures_of(ip, now) >= self.max_failures
    }

    /// Records a failure; returns how many there are now in the window.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> u32 {
        let mut map = self.failures();
        // Keep the map small: forget windows that have ended.
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, (_, since)| now.duration_since(*since) < window);
        }
        let entry = map.entry(canonical(ip)).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.0
    }

    /// A successful login clears the address's record.
    pub fn record_success(&self, ip: IpAddr) {
        self.failures().remove(&canonical(ip));
    }
}

/// IPv4-mapped IPv6 addresses count as their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(
        max_total: usize,
        reserved: usize,
        per_ip: usize,
        per_prefix: usize,
    ) -> Arc<ConnectionLimiter> {
        ConnectionLimiter::new(ConnectionLimits {
            max_total,
            reserved_trusted: reserved,
            max_per_ip: per_ip,
            max_per_prefix: per_prefix,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn connection_slots_are_counted_and_returned() {
        let limiter = limiter(3, 0, 2, 100);
        let a = ip("192.0.2.1");
        let b = ip("198.51.100.2");
        let g1 = limiter.try_acquire(a, false).unwrap();
        let _g2 = limiter.try_acquire(a, false).unwrap();
        assert_eq!(
            limiter.try_acquire(a, false).err(),
            Some(Refusal::TooManyFromIp)
        );
        assert_eq!(
            limiter.try_acquire(ip("::ffff:192.0.2.1"), false).err(),
            Some(Refusal::TooManyFromIp)
        );
        let _g3 = limiter.try_acquire(b, false).unwrap();
        assert_eq!(
            limiter.try_acquire(b, false).err(),
            Some(Refusal::TooManyTotal)
        );
        drop(g1);
        assert_eq!(limiter.active(), 2);
        assert!(limiter.try_acquire(b, false).is_ok());
    }

    #[test]
    fn a_network_prefix_has_its_own_cap() {
        let limiter = limiter(100, 0, 2, 3);
        let mut guards = Vec::new();
        for host in ["10.1.2.1", "10.1.2.1", "10.1.2.200"] {
            guards.push(limiter.try_acquire(ip(host), false).unwrap());
        }
        // A fourth from 10.1.2.0/24 is refused, whatever its address...
        assert_eq!(
            limiter.try_acquire(ip("10.1.2.77"), false).err(),
            Some(Refusal::TooManyFromPrefix)
        );
        assert_eq!(
            limiter.try_acquire(ip("::ffff:10.1.2.78"), false).err(),
            Some(Refusal::TooManyFromPrefix)
        );
        // ...while the next /24 still gets in.
        guards.push(limiter.try_acquire(ip("10.1.3.1"), false).unwrap());
        // A trusted client in the full prefix is not counted there.
        guards.push(limiter.try_acquire(ip("10.1.2.9"), true).unwrap());
        // IPv6: one /64, many addresses.
        for n in 1..=3 {
            guards.push(
                limiter
                    .try_acquire(ip(&format!("2001:db8:1:2::{n}")), false)
                    .unwrap(),
            );
        }
        assert_eq!(
            limiter.try_acquire(ip("2001:db8:1:2:ffff::1"), false).err(),
            Some(Refusal::TooManyFromPrefix)
        );
        assert!(limiter.try_acquire(ip("2001:db8:1:3::1"), false).is_ok());
        // A slot given back frees the prefix again.
        guards.remove(0);
        assert!(limiter.try_acquire(ip("10.1.2.77"), false).is_ok());
    }

    #[test]
    fn trusted_clients_keep_their_reserve() {
        let limiter = limiter(10, 3, 10, 100);
        let mut guards = Vec::new();
        for n in 1..=7 {
            guards.push(
                limiter
                    .try_acquire(ip(&format!("192.0.{n}.1")), false)
                    .unwrap(),
            );
        }
        // Untrusted clients have used their share of seven...
        assert_eq!(
            limiter.try_acquire(ip("192.0.99.1"), false).err(),
            Some(Refusal::TooManyTotal)
        );
        // ...trusted ones still get the last three, and no more.
        for _ in 0..3 {
            guards.push(limiter.try_acquire(ip("10.0.0.1"), true).unwrap());
        }
        assert_eq!(
            limiter.try_acquire(ip("10.0.0.1"), true).err(),
            Some(Refusal::TooManyTotal)
        );
        assert_eq!(limiter.active(), 10);
        // The reserve is a floor for trusted clients, not a ceiling: with
        // the untrusted ones gone they may take every slot, and strangers
        // then wait like anyone else.
        guards.drain(..7);
        for _ in 0..4 {
            guards.push(limiter.try_acquire(ip("10.0.0.2"), true).unwrap());
        }
        assert_eq!(
            limiter.try_acquire(ip("192.0.99.1"), false).err(),
            Some(Refusal::TooManyTotal)
        );
    }

    #[test]
    fn prefixes_are_a_slash_24_and_a_slash_64() {
        assert_eq!(prefix_of(ip("10.1.2.3")), ip("10.1.2.0"));
        assert_eq!(prefix_of(ip("::ffff:10.1.2.3")), ip("10.1.2.0"));
        assert_eq!(prefix_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn auth_failures_block_within_the_window_only() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        let t0 = Instant::now();
        for n in 1..=3 {
            assert!(!throttle.is_blocked(ip, t0));
            assert_eq!(throttle.record_failure(ip, t0), n);
        }
        assert!(throttle.is_blocked(ip, t0));
        assert!(!throttle.is_blocked(ip, t0 + Duration::from_secs(61)));
        throttle.record_success(ip);
        assert!(!throttle.is_blocked(ip, t0));
    }
}
