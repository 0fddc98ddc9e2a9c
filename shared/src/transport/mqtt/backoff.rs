//! Reconnect backoff: exponential with full jitter (docs/protocol.md §4.5).
//!
//! `delay = uniform(0, min(30 s, 100 ms × 2^n))`, where `n` counts consecutive failures from 0
//! and resets once a connection has stayed up for 10 s. Time and randomness come in.

use std::time::Duration;

use crate::time::{Rng, Timestamp};

/// The first step of the backoff.
pub const BASE: Duration = Duration::from_millis(100);
/// The cap.
pub const CAP: Duration = Duration::from_secs(30);
/// How long a connection must stay up before the failure count resets.
pub const STABLE: Duration = Duration::from_secs(10);

/// Backoff state for one connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    connected_at: Option<Timestamp>,
    rng: Rng,
}

impl Backoff {
    /// A backoff with jitter from `seed`.
    pub fn new(seed: u64) -> Self {
        Backoff {
            failures: 0,
            connected_at: None,
            rng: Rng::new(seed),
        }
    }

    /// A connection came up at `now`.
    pub fn connected(&mut self, now: Timestamp) {
        self.connected_at = Some(now);
    }

    /// The connection failed or dropped at `now`: how long to wait before the next attempt.
    pub fn next_delay(&mut self, now: Timestamp) -> Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|t| now.saturating_since(t) >= STABLE)
        {
            self.failures = 0;
        }
        let cap = (BASE.as_millis() as u64)
            .saturating_mul(1u64 << self.failures.min(20))
            .min(CAP.as_millis() as u64);
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(self.rng.below_or_eq(cap))
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let mut b = Backoff::new(3);
        let now = Timestamp::from_millis(0);
        let mut seen_small = false;
        for n in 0..15u32 {
            let cap = (100u64 << n.min(20)).min(30_000);
            let d = b.next_delay(now).as_millis() as u64;
            assert!(d <= cap, "attempt {n}: {d} ms over {cap} ms");
            seen_small |= n > 5 && d < cap / 2;
        }
        assert!(
            seen_small,
            "full jitter: delays spread over the whole range"
        );
    }

    #[test]
    fn resets_after_a_stable_connection_only() {
        let mut b = Backoff::new(9);
        let t0 = Timestamp::from_millis(0);
        for _ in 0..5 {
            b.next_delay(t0);
        }
        b.connected(t0);
        b.next_delay(t0 + Duration::from_secs(3));
        assert_eq!(b.failures(), 6, "a short-lived connection does not reset");
        b.connected(t0 + Duration::from_secs(4));
        let d = b.next_delay(t0 + Duration::from_secs(20));
        assert_eq!(b.failures(), 1);
        assert!(d <= BASE);
    }
}
