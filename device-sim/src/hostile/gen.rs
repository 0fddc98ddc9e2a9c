//! The seeded generator the four families draw from, and the hostile values they share.
//!
//! Owns only randomness and raw material (strings, numbers, JSON values a peer should never
//! send). It never decides what an input should cause; each family's oracle does.

use axon_core::time::Rng;
use serde_json::{json, Map, Value};

/// A seeded source of choices. The same seed gives the same inputs on every machine.
#[derive(Debug, Clone)]
pub struct Gen(Rng);

/// The seed of input `index` of a run seeded `seed` (splitmix64, so neighbours differ in
/// every bit and any one input can be regenerated alone).
pub fn input_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Gen {
    /// A generator for one input.
    pub fn new(seed: u64) -> Self {
        Gen(Rng::new(seed))
    }

    /// A uniform value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.0.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// One random byte.
    pub fn byte(&mut self) -> u8 {
        self.0.next_u64() as u8
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// A length, mostly small, sometimes large: 0..16 (70%), ..256 (25%), ..`max` (5%).
    pub fn len(&mut self, max: usize) -> usize {
        match self.below(20) {
            0..=13 => self.below(16),
            14..=18 => self.below(256),
            _ => self.below(max.max(1)),
        }
    }

    /// A string a peer should not send: empty, control characters, NUL, wildcards, separators,
    /// right-to-left overrides, emoji, JSON-looking text, or something very long.
    pub fn hostile_string(&mut self) -> String {
        match self.below(24) {
            0 => String::new(),
            1 => " ".into(),
            2 => "\0".into(),
            3 => "a\0b".into(),
            4 => "+".into(),
            5 => "#".into(),
            6 => "a/b".into(),
            7 => "/".into(),
            8 => "$SYS/broker".into(),
            9 => "\u{202E}evil\u{202C}".into(),
            10 => "\u{FEFF}bom".into(),
            11 => "🔥💡🚪".into(),
            12 => "\"}],\"x\":{\"".into(),
            13 => "\\u0000".into(),
            14 => "\r\n\t\x07\x1b[31m".into(),
            15 => "NaN".into(),
            16 => "-Infinity".into(),
            17 => "null".into(),
            18 => "../../etc/passwd".into(),
            19 => "é".repeat(1 + self.below(300)),
            20 => "x".repeat(1000 + self.below(9000)),
            21 => "y".repeat(60_000 + self.below(10_000)),
            22 => format!("{}", self.u64()),
            _ => self.word(),
        }
    }

    /// A short lower-case word.
    pub fn word(&mut self) -> String {
        let n = 1 + self.below(10);
        (0..n)
            .map(|_| char::from(b'a' + (self.byte() % 26)))
            .collect()
    }

    /// A JSON number a validator must not trip on.
    pub fn hostile_number(&mut self) -> Value {
        match self.below(16) {
            0 => json!(0),
            1 => json!(-0.0),
            2 => json!(i64::MAX),
            3 => json!(i64::MIN),
            4 => json!(u64::MAX),
            5 => json!(f64::MAX),
            6 => json!(f64::MIN),
            7 => json!(f64::MIN_POSITIVE),
            8 => json!(1e-300),
            9 => json!(0.5),
            10 => json!(3.0),
            11 => json!(-1),
            12 => json!(9_007_199_254_740_993u64),
            13 => json!(1e15 + 0.5),
            14 => json!(self.below(1000) as i64 - 500),
            _ => json!((self.u64() >> 11) as f64 / 1e6 - 4e6),
        }
    }

    /// Any JSON value, nested up to `depth` levels.
    pub fn value(&mut self, depth: usize) -> Value {
        let top = if depth == 0 { 5 } else { 8 };
        match self.below(top) {
            0 => Value::Null,
            1 => json!(self.chance(1, 2)),
            2 => self.hostile_number(),
            3 | 4 => Value::from(self.hostile_string()),
            5 => {
                let levels = 1 + self.below(200);
                self.nested(levels)
            }
            6 => Value::Array((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut m = Map::new();
                for _ in 0..self.below(5) {
                    let k = if self.chance(1, 2) {
                        self.word()
                    } else {
                        self.hostile_string()
                    };
                    m.insert(k, self.value(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// Arrays or objects nested `levels` deep (serde_json's parser stops at 128; a `Value`
    /// built in memory has no such limit, which is what a validator sees).
    pub fn nested(&mut self, levels: usize) -> Value {
        let object = self.chance(1, 2);
        let mut v = json!(1);
        for _ in 0..levels {
            v = if object {
                json!({ "a": v })
            } else {
                json!([v])
            };
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let a: Vec<Value> = (0..50).map(|_| Gen::new(7).value(3)).collect();
        let b: Vec<Value> = (0..50).map(|_| Gen::new(7).value(3)).collect();
        assert_eq!(a, b);
        assert_ne!(input_seed(1, 0), input_seed(1, 1));
        assert_ne!(input_seed(1, 0), input_seed(2, 0));
    }
}
