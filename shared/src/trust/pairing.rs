//! Pairing: how a device with no account gets one without anyone typing a password.
//!
//! The device asks for a code ([`Pairings::begin`]) and shows it (a tab on screen, a board in
//! its log); the owner, signed in, enters it ([`Pairings::approve`]); the shell creates the
//! device's accounts and hands the credentials over ([`Pairings::grant`]); the device, polling
//! with the secret only it got, collects them once ([`Pairings::collect`]).
//!
//! Owns the codes, their lifetime (5 minutes), single use and the wording of every refusal.
//! It never creates an account, stores a credential past its collection, reads a clock or
//! draws randomness: the shell brings the time and the random bytes. Rate limits on the
//! attempts are [`super::rate`]'s.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::protocol::mcp::topics::{self, DeviceId};
use crate::time::Timestamp;

/// How long a code lasts.
pub const CODE_TTL_MS: u64 = 5 * 60 * 1000;
/// Most pairings waiting at once (a flood of requests cannot grow memory).
pub const MAX_PENDING: usize = 32;
/// Random bytes [`Pairings::begin`] needs.
pub const RANDOM_BYTES: usize = 8 + 16 + 16;
/// Crockford's base32: no I, L, O or U, so a code read aloud or off a log is not misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a pairing step was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairError {
    /// The proposed device id breaks the naming rules.
    #[error("{0}")]
    BadDevice(String),
    /// The proposed kind is not a short lower-case word.
    #[error(
        "kind {0:?} must be 1 to 32 lower-case letters, digits or '-', starting with a letter"
    )]
    BadKind(String),
    /// Too many devices are waiting.
    #[error("{MAX_PENDING} devices are already waiting to be paired: try again in a few minutes")]
    TooMany,
    /// No device waits under this code.
    #[error("no device is waiting for code {0}: check the code the device shows (codes look like 7KQ3-M9ZD)")]
    UnknownCode(String),
    /// The code's 5 minutes are over.
    #[error("code {0} has expired (codes last 5 minutes): ask the device for a new one")]
    Expired(String),
    /// The code was approved already.
    #[error("code {0} was already used: pairing again needs a new code from the device")]
    Used(String),
    /// The proposed MCP server name breaks the naming rules.
    #[error("server name {0:?} must be non-empty levels separated by '/', without '+' or '#' (e.g. demo/light/ts-light-1)")]
    BadServerName(String),
    /// A device polled with a pairing id or secret that does not match.
    #[error("no pairing is waiting under this id and secret: ask for a new code (POST /api/pair)")]
    UnknownPairing,
}

/// What a device gets when it asks for a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// Identifies the pairing when the device polls.
    pub pair_id: String,
    /// What the device shows and the owner types: `7KQ3-M9ZD`.
    pub code: String,
    /// Only the device knows it: it proves the poll comes from the device that asked.
    pub secret: String,
    /// Seconds the code lasts.
    pub expires_in_s: u64,
}

/// A pairing the owner approved: the shell now creates the device's accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The pairing.
    pub pair_id: String,
    /// The device's id, as it proposed it.
    pub device: String,
    /// Its kind.
    pub kind: String,
    /// Its MCP server name, when it gave one (a device built on another SDK).
    pub server_name: Option<String>,
}

/// What a device's poll gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Collected {
    /// Not approved yet: poll again.
    Waiting {
        /// Seconds the code has left.
        expires_in_s: u64,
    },
    /// The credentials, handed over once.
    Ready(Value),
}

/// A waiting pairing as the owner's console lists it (never with its code: the code is the
/// proof that the owner sees the device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingView {
    /// Proposed id.
    pub device: String,
    /// Proposed kind.
    pub kind: String,
    /// The MCP server name it gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Seconds left.
    pub expires_in_s: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting,
    Approved,
    Granted(Value),
    /// Collected, or approved and then failed: the code stays known until it expires, so a
    /// second use is told so.
    Used,
}

#[derive(Debug, Clone)]
struct Pending {
    pair_id: String,
    code: String,
    secret: String,
    device: String,
    kind: String,
    server_name: Option<String>,
    expires_at: u64,
    state: State,
}

/// The pairings of one site.
#[derive(Debug, Default)]
pub struct Pairings {
    pending: Vec<Pending>,
}

/// `7kq3m9zd`, ` 7KQ3-M9ZD ` and `7KQ3 M9ZD` are the same code; `O` reads as `0`, `I`/`L` as `1`.
pub fn normalize_code(code: &str) -> String {
    let mut s: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    if s.len() == 8 && s.is_ascii() {
        s.insert(4, '-');
    }
    s
}

fn valid_kind(kind: &str) -> bool {
    let b = kind.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pairings {
    /// None waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// A device asks for a code. A device that asks again replaces its earlier request.
    /// `server_name` is its MCP server name when it was built on another SDK and may be named
    /// outside the site's discovery filters ([`topics::covered_by_filters`]). `random` must hold at least
    /// [`RANDOM_BYTES`] bytes from a secure source.
    pub fn begin(
        &mut self,
        now: Timestamp,
        device: &str,
        kind: &str,
        server_name: Option<&str>,
        random: &[u8],
    ) -> Result<Ticket, PairError> {
        DeviceId::new(device).map_err(|e| PairError::BadDevice(e.to_string()))?;
        if !valid_kind(kind) {
            return Err(PairError::BadKind(kind.into()));
        }
        if let Some(name) = server_name {
            topics::check_server_name(name).map_err(|_| PairError::BadServerName(name.into()))?;
        }
        assert!(
            random.len() >= RANDOM_BYTES,
            "pairing needs {RANDOM_BYTES} random bytes"
        );
        self.expire(now);
        self.pending
            .retain(|p| !(p.device == device && matches!(p.state, State::Waiting)));
        if self.pending.len() >= MAX_PENDING {
            return Err(PairError::TooMany);
        }
        let mut code: String = random[..8]
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % 32] as char)
            .collect();
        code.insert(4, '-');
        if self.pending.iter().any(|p| p.code == code) {
            // One in 2^40: the device asks again.
            return Err(PairError::TooMany);
        }
        let ticket = Ticket {
            pair_id: format!("p{}", hex(&random[8..24])),
            code: code.clone(),
            secret: hex(&random[24..40]),
            expires_in_s: CODE_TTL_MS / 1000,
        };
        self.pending.push(Pending {
            pair_id: ticket.pair_id.clone(),
            code,
            secret: ticket.secret.clone(),
            device: device.into(),
            kind: kind.into(),
            server_name: server_name.map(str::to_string),
            expires_at: now.as_millis() + CODE_TTL_MS,
            state: State::Waiting,
        });
        Ok(ticket)
    }

    /// The owner enters a code. On success the shell creates the accounts, then calls
    /// [`Pairings::grant`] (or [`Pairings::fail`]).
    pub fn approve(&mut self, now: Timestamp, code: &str) -> Result<Approval, PairError> {
        let code = normalize_code(code);
        let p = self
            .pending
            .iter_mut()
            .find(|p| p.code == code)
            .ok_or_else(|| PairError::UnknownCode(code.clone()))?;
        if now.as_millis() >= p.expires_at {
            return Err(PairError::Expired(code));
        }
        if p.state != State::Waiting {
            return Err(PairError::Used(code));
        }
        p.state = State::Approved;
        Ok(Approval {
            pair_id: p.pair_id.clone(),
            device: p.device.clone(),
            kind: p.kind.clone(),
            server_name: p.server_name.clone(),
        })
    }

    /// The accounts exist: the device may collect `credentials` once.
    pub fn grant(&mut self, pair_id: &str, credentials: Value) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.pair_id == pair_id) {
            p.state = State::Granted(credentials);
        }
    }

    /// Creating the accounts failed: the code is spent; the device asks for a new one.
    pub fn fail(&mut self, pair_id: &str) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.pair_id == pair_id) {
            p.state = State::Used;
        }
    }

    /// The device polls with its pairing id and secret.
    pub fn collect(
        &mut self,
        now: Timestamp,
        pair_id: &str,
        secret: &str,
    ) -> Result<Collected, PairError> {
        let p = self
            .pending
            .iter_mut()
            .find(|p| p.pair_id == pair_id && crate::trust::same_secret(&p.secret, secret))
            .ok_or(PairError::UnknownPairing)?;
        match std::mem::replace(&mut p.state, State::Used) {
            State::Granted(credentials) => Ok(Collected::Ready(credentials)),
            state @ (State::Waiting | State::Approved) => {
                p.state = state;
                if now.as_millis() >= p.expires_at {
                    return Err(PairError::Expired(p.code.clone()));
                }
                Ok(Collected::Waiting {
                    expires_in_s: (p.expires_at - now.as_millis()) / 1000,
                })
            }
            State::Used => Err(PairError::UnknownPairing),
        }
    }

    /// The devices waiting for the owner.
    pub fn waiting(&self, now: Timestamp) -> Vec<PendingView> {
        self.pending
            .iter()
            .filter(|p| p.state == State::Waiting && now.as_millis() < p.expires_at)
            .map(|p| PendingView {
                device: p.device.clone(),
                kind: p.kind.clone(),
                server_name: p.server_name.clone(),
                expires_in_s: (p.expires_at - now.as_millis()) / 1000,
            })
            .collect()
    }

    /// Drops what expired; credentials not collected in time are dropped with it.
    pub fn expire(&mut self, now: Timestamp) {
        self.pending.retain(|p| now.as_millis() < p.expires_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn random(seed: u8) -> Vec<u8> {
        let mut rng = crate::time::Rng::new(u64::from(seed) + 1);
        (0..RANDOM_BYTES).map(|_| rng.next_u64() as u8).collect()
    }

    #[test]
    fn code_approve_grant_collect_once() {
        let mut p = Pairings::new();
        let ticket = p
            .begin(t(0), "kitchen-tab", "virtual", None, &random(1))
            .unwrap();
        assert_eq!(ticket.code.len(), 9);
        assert_eq!(&ticket.code[4..5], "-");
        assert_eq!(ticket.expires_in_s, 300);
        assert_eq!(p.waiting(t(0)).len(), 1);
        assert_eq!(
            p.collect(t(1_000), &ticket.pair_id, &ticket.secret),
            Ok(Collected::Waiting { expires_in_s: 299 })
        );
        let typed = ticket.code.to_lowercase().replace('-', " ");
        let a = p.approve(t(2_000), &typed).unwrap();
        assert_eq!(a.device, "kitchen-tab");
        assert_eq!(a.kind, "virtual");
        assert!(
            p.waiting(t(2_000)).is_empty(),
            "an approved pairing is no longer listed"
        );
        // Approved but not yet granted: the device keeps waiting.
        assert!(matches!(
            p.collect(t(2_500), &ticket.pair_id, &ticket.secret),
            Ok(Collected::Waiting { .. })
        ));
        p.grant(&a.pair_id, json!({"password": "x"}));
        assert_eq!(
            p.collect(t(3_000), &ticket.pair_id, &ticket.secret),
            Ok(Collected::Ready(json!({"password": "x"})))
        );
        // Once.
        assert_eq!(
            p.collect(t(3_001), &ticket.pair_id, &ticket.secret),
            Err(PairError::UnknownPairing)
        );
        assert_eq!(
            p.approve(t(3_002), &ticket.code),
            Err(PairError::Used(ticket.code.clone()))
        );
    }

    #[test]
    fn wrong_expired_and_stolen() {
        let mut p = Pairings::new();
        let ticket = p.begin(t(0), "lamp-9", "lamp", None, &random(2)).unwrap();
        assert!(matches!(
            p.approve(t(1), "0000-0000"),
            Err(PairError::UnknownCode(_))
        ));
        // Another poller without the secret learns nothing.
        assert_eq!(
            p.collect(t(1), &ticket.pair_id, "guess"),
            Err(PairError::UnknownPairing)
        );
        assert_eq!(
            p.approve(t(CODE_TTL_MS), &ticket.code),
            Err(PairError::Expired(ticket.code.clone()))
        );
        assert!(matches!(
            p.collect(t(CODE_TTL_MS), &ticket.pair_id, &ticket.secret),
            Err(PairError::Expired(_))
        ));
        p.expire(t(CODE_TTL_MS));
        assert!(matches!(
            p.approve(t(CODE_TTL_MS), &ticket.code),
            Err(PairError::UnknownCode(_))
        ));
    }

    #[test]
    fn a_failed_account_spends_the_code() {
        let mut p = Pairings::new();
        let ticket = p.begin(t(0), "lamp-9", "lamp", None, &random(3)).unwrap();
        let a = p.approve(t(1), &ticket.code).unwrap();
        p.fail(&a.pair_id);
        assert_eq!(
            p.approve(t(2), &ticket.code),
            Err(PairError::Used(ticket.code.clone()))
        );
        assert_eq!(
            p.collect(t(2), &ticket.pair_id, &ticket.secret),
            Err(PairError::UnknownPairing)
        );
    }

    #[test]
    fn bad_requests_and_floods_create_nothing() {
        let mut p = Pairings::new();
        assert!(matches!(
            p.begin(t(0), "Front Door", "lock", None, &random(0)),
            Err(PairError::BadDevice(_))
        ));
        assert!(matches!(
            p.begin(t(0), "presence", "lock", None, &random(0)),
            Err(PairError::BadDevice(_))
        ));
        assert!(matches!(
            p.begin(t(0), "door", "", None, &random(0)),
            Err(PairError::BadKind(_))
        ));
        for name in ["", "demo/#", "demo/+/x", "demo//x", "/demo"] {
            assert_eq!(
                p.begin(t(0), "door", "lock", Some(name), &random(0)),
                Err(PairError::BadServerName(name.into())),
                "{name:?}"
            );
        }
        assert!(p.waiting(t(0)).is_empty());
        for i in 0..MAX_PENDING {
            p.begin(t(0), &format!("d{i}"), "lamp", None, &random(i as u8))
                .unwrap();
        }
        assert_eq!(
            p.begin(t(0), "one-more", "lamp", None, &random(200)),
            Err(PairError::TooMany)
        );
        // Asking again for the same device replaces its request.
        p.begin(t(0), "d0", "lamp", None, &random(201)).unwrap();
        assert_eq!(p.waiting(t(0)).len(), MAX_PENDING);
        // Expired requests make room.
        assert!(p
            .begin(t(CODE_TTL_MS), "one-more", "lamp", None, &random(202))
            .is_ok());
    }

    #[test]
    fn a_server_name_travels_from_the_request_to_the_approval() {
        let mut p = Pairings::new();
        let ticket = p
            .begin(
                t(0),
                "ts-light-1",
                "light",
                Some("demo/light/ts-light-1"),
                &random(4),
            )
            .unwrap();
        let view = &p.waiting(t(0))[0];
        assert_eq!(view.server_name.as_deref(), Some("demo/light/ts-light-1"));
        let a = p.approve(t(1), &ticket.code).unwrap();
        assert_eq!(a.server_name.as_deref(), Some("demo/light/ts-light-1"));
    }

    #[test]
    fn a_name_outside_every_filter_joins_discovery() {
        let outside_filters = |n: &str, f: &[String]| !topics::covered_by_filters(n, f);
        let filters = vec!["axon/#".to_string(), "acme/+/x".to_string()];
        assert!(!outside_filters("axon/lamp/lamp-1", &filters));
        assert!(!outside_filters("acme/light/x", &filters));
        assert!(outside_filters("acme/light/y", &filters));
        assert!(outside_filters("demo/light/ts-light-1", &filters));
        assert!(outside_filters("axon", &["axon/+".to_string()]));
        assert!(outside_filters("axon/lamp/lamp-1", &[]));
    }

    #[test]
    fn codes_normalize() {
        assert_eq!(normalize_code(" 7kq3-m9zd "), "7KQ3-M9ZD");
        assert_eq!(normalize_code("7KQ3 M9ZD"), "7KQ3-M9ZD");
        assert_eq!(normalize_code("O1IL-abcd"), "0111-ABCD");
        assert_eq!(normalize_code("short"), "SH0RT");
    }
}
