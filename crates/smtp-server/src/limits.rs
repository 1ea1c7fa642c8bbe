//! Per-client limits shared by all sessions of a server: connections in
//! total and per IP address, and failed authentication attempts per IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counts open connections. A [`ConnectionGuard`] gives its slot back when
/// dropped, however the session ends.
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyTotal,
    TooManyFromIp,
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionLimiter> {
        Arc::new(ConnectionLimiter {
            max_total,
            max_per_ip,
            state: Mutex::new(LimiterState::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a connection from `ip`.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refusal> {
        let ip = canonical(ip);
        let mut state = self.state();
        if state.total >= self.max_total {
            return Err(Refusal::TooManyTotal);
        }
        let count = state.per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return Err(Refusal::TooManyFromIp);
        }
        *count += 1;
        state.total += 1;
        Ok(ConnectionGuard {
            limiter: Arc::clone(self),
            ip,
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
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.total = state.total.saturating_sub(1);
        if let Some(count) = state.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
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

    #[test]
    fn connection_slots_are_counted_and_returned() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = limiter.try_acquire(a).unwrap();
        let _g2 = limiter.try_acquire(a).unwrap();
        assert_eq!(limiter.try_acquire(a).err(), Some(Refusal::TooManyFromIp));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            limiter.try_acquire(mapped).err(),
            Some(Refusal::TooManyFromIp)
        );
        let _g3 = limiter.try_acquire(b).unwrap();
        assert_eq!(limiter.try_acquire(b).err(), Some(Refusal::TooManyTotal));
        drop(g1);
        assert_eq!(limiter.active(), 2);
        assert!(limiter.try_acquire(b).is_ok());
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
