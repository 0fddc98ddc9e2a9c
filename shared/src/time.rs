//! Time as a value passed in.
//!
//! Owns [`Timestamp`], the only notion of "now" in `axon-core`. The shells read their clock
//! (tokio `Instant`, `Date.now()` in a Worker or a tab) and hand the value in; tests move a
//! simulated clock. Nothing in this crate reads a clock: on `wasm32-unknown-unknown`
//! `Instant::now()` panics, and on Workers the clock only moves after I/O.

use core::ops::{Add, Sub};
use core::time::Duration;

/// Monotonic milliseconds from an origin the shell chooses (process start, page load).
///
/// Only differences between two timestamps of the same shell mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin of the shell's clock.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

/// The earlier of two optional deadlines; `None` means "no deadline".
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A small deterministic pseudo-random generator (xorshift64*), seeded by the shell.
///
/// `axon-core` may not touch OS randomness, yet it needs jitter for reconnect backoff and
/// fresh UUIDs for call ids. The shell seeds this once from its own source of entropy;
/// tests seed it with a constant and get the same sequence every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is remapped because xorshift sticks at zero).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform value in `0..=max`.
    pub fn below_or_eq(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        self.next_u64() % (max + 1)
    }

    /// A random UUID v4 in its canonical lower-case text form.
    pub fn uuid_v4(&mut self) -> String {
        let hi = self.next_u64();
        let lo = self.next_u64();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hi.to_be_bytes());
        b[8..].copy_from_slice(&lo.to_be_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// `n` random bytes rendered as lower-case hex (e.g. the 8-hex suffix of a Hub client id).
    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| format!("{:02x}", self.next_u64() as u8))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(5);
        assert_eq!((t - Duration::from_millis(10)).as_millis(), 0);
        assert_eq!((t + Duration::from_secs(1)).as_millis(), 1005);
        assert_eq!(
            t.saturating_since(Timestamp::from_millis(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn uuid_v4_has_version_and_variant() {
        let mut rng = Rng::new(42);
        let a = rng.uuid_v4();
        let b = rng.uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn earliest_picks_the_sooner_deadline() {
        let a = Some(Timestamp::from_millis(3));
        let b = Some(Timestamp::from_millis(7));
        assert_eq!(earliest(a, b), a);
        assert_eq!(earliest(None, b), b);
        assert_eq!(earliest(None, None), None);
    }
}
