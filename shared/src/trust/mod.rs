//! Trust: who may do what, how often, and how a new device earns an account.
//!
//! Owns the access decisions of Axon's HTTP surface ([`access`]), per-credential rate limits
//! ([`rate`]), the pairing state machine that gives a new device its credentials
//! ([`pairing`]), and the broker accounts of devices, Hubs and the owner with their ACLs and
//! the dynamic-security commands that manage them ([`broker`]). These are decisions, made once here and used by the worker (and any other
//! shell); they never read a request, a cookie, a clock or a random source themselves: the
//! shell brings the credential it found, the time and the random bytes.

pub mod access;
pub mod broker;
pub mod pairing;
pub mod rate;

/// A secret's digest as stored (lower-case hex SHA-256): a stored digest does not give back
/// the credential, so a leaked database opens nothing.
pub fn digest(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, without stopping at the first difference.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A fresh secret from random bytes the shell drew (at least 16): `prefix` then hex.
pub fn secret_from(prefix: &str, random: &[u8]) -> String {
    let mut s = String::with_capacity(prefix.len() + random.len() * 2);
    s.push_str(prefix);
    for b in random {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn secrets_carry_their_prefix() {
        assert_eq!(secret_from("axp_", &[0, 255, 16]), "axp_00ff10");
    }
}
