//! Per-credential rate limits: a token bucket for each key, so a runaway script or a guesser
//! is slowed down without slowing anyone else.
//!
//! Owns the buckets and the `Retry-After` a refused request is told. It never reads a clock:
//! every check brings the time. Memory is bounded: past [`MAX_KEYS`] keys, full buckets (keys
//! that have been quiet long enough to refill) are dropped first, then the longest-idle ones.

use std::collections::HashMap;

use crate::time::Timestamp;

/// Most keys kept at once.
pub const MAX_KEYS: usize = 10_000;

/// A limit: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Requests allowed back to back.
    pub burst: u32,
    /// Requests per minute, sustained.
    pub per_minute: u32,
}

impl Limit {
    /// A person's or the owner's requests: a console polls, a script loops.
    pub const PERSON: Limit = Limit {
        burst: 60,
        per_minute: 600,
    };
    /// A paired device or a widget's visitors (chat and talk).
    pub const TALK: Limit = Limit {
        burst: 20,
        per_minute: 120,
    };
    /// Asking for pairing codes, from one network address.
    pub const PAIRING: Limit = Limit {
        burst: 5,
        per_minute: 10,
    };
    /// Wrong credentials and wrong pairing codes, per network address: guessing is slow.
    pub const GUESSES: Limit = Limit {
        burst: 10,
        per_minute: 10,
    };
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
}

/// The buckets.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: HashMap<String, Bucket>,
}

impl RateLimits {
    /// No buckets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one token from `key`'s bucket, or says after how many whole seconds (at least 1)
    /// one will be there.
    pub fn check(&mut self, key: &str, limit: Limit, now: Timestamp) -> Result<(), u64> {
        let rate = f64::from(limit.per_minute.max(1)) / 60_000.0; // tokens per ms
        let burst = f64::from(limit.burst.max(1));
        if !self.buckets.contains_key(key) && self.buckets.len() >= MAX_KEYS {
            self.evict(now, rate, burst);
        }
        let b = self.buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.as_millis().saturating_sub(b.at.as_millis()) as f64;
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - b.tokens) / rate;
            Err(((wait_ms / 1000.0).ceil() as u64).max(1))
        }
    }

    /// Forgets `key` (e.g. a revoked credential).
    pub fn forget(&mut self, key: &str) {
        self.buckets.remove(key);
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn evict(&mut self, now: Timestamp, rate: f64, burst: f64) {
        let full = |b: &Bucket| {
            b.tokens + now.as_millis().saturating_sub(b.at.as_millis()) as f64 * rate >= burst
        };
        self.buckets.retain(|_, b| !full(b));
        if self.buckets.len() >= MAX_KEYS {
            // Still full of busy keys: drop the half that has been idle longest.
            let mut ats: Vec<u64> = self.buckets.values().map(|b| b.at.as_millis()).collect();
            ats.sort_unstable();
            let cut = ats[ats.len() / 2];
            self.buckets.retain(|_, b| b.at.as_millis() > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_burst_then_a_wait_that_is_told() {
        let mut r = RateLimits::new();
        let l = Limit {
            burst: 3,
            per_minute: 60,
        };
        for _ in 0..3 {
            assert_eq!(r.check("k", l, t(0)), Ok(()));
        }
        assert_eq!(r.check("k", l, t(0)), Err(1));
        // One per second refills.
        assert_eq!(r.check("k", l, t(999)), Err(1));
        assert_eq!(r.check("k", l, t(1_000)), Ok(()));
        // Another key is not slowed down.
        assert_eq!(r.check("other", l, t(1_000)), Ok(()));
    }

    #[test]
    fn retry_after_counts_whole_seconds() {
        let mut r = RateLimits::new();
        let l = Limit {
            burst: 1,
            per_minute: 6,
        };
        assert_eq!(r.check("k", l, t(0)), Ok(()));
        assert_eq!(r.check("k", l, t(0)), Err(10));
        assert_eq!(r.check("k", l, t(5_500)), Err(5));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut r = RateLimits::new();
        for i in 0..(MAX_KEYS + 500) {
            let _ = r.check(&format!("k{i}"), Limit::GUESSES, t(i as u64));
        }
        assert!(r.len() <= MAX_KEYS, "{}", r.len());
        r.forget("k0");
    }
}
