//! Family 1: MQTT packets from a hostile broker, fed to `axon_core::transport::mqtt::Session`.
//!
//! Owns generating broker packets (random bytes, and valid CONNACK, PUBLISH, PUBACK, SUBACK,
//! UNSUBACK, PINGRESP, DISCONNECT, AUTH mutated by bit flips, truncation, huge lengths, bad
//! UTF-8, NUL, wildcards in topic names, and wrong, duplicated or over-long properties) and
//! judging what the session made of them. Every input gets a fresh session, waiting for its
//! CONNACK or connected, so one input reproduces alone.

use std::time::Duration;

use axon_core::time::Timestamp;
use axon_core::transport::link::ConnectOptions;
use axon_core::transport::mqtt::{Session, SessionConfig, SessionEvent};

use super::gen::Gen;
use super::wire;
use super::Outcome;

/// One input: bytes from the broker, in the chunks they arrive in.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Whether the session is connected (else it waits for its CONNACK).
    pub connected: bool,
    /// The reads, in order.
    pub chunks: Vec<Vec<u8>>,
    /// How the generator made it.
    pub what: String,
}

const BYTE_PROPS: [u8; 8] = [0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A];
const U16_PROPS: [u8; 4] = [0x13, 0x21, 0x22, 0x23];
const U32_PROPS: [u8; 4] = [0x02, 0x11, 0x18, 0x27];
const STR_PROPS: [u8; 7] = [0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F];
const BIN_PROPS: [u8; 2] = [0x09, 0x16];

/// Properties a broker may put in each packet.
const CONNACK_PROPS: [u8; 17] = [
    0x11, 0x21, 0x24, 0x25, 0x27, 0x12, 0x22, 0x1F, 0x26, 0x28, 0x29, 0x2A, 0x13, 0x1A, 0x1C, 0x15,
    0x16,
];
const PUBLISH_PROPS: [u8; 8] = [0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0B, 0x03];
const ACK_PROPS: [u8; 2] = [0x1F, 0x26];
const DISCONNECT_PROPS: [u8; 4] = [0x11, 0x1F, 0x26, 0x1C];

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A UTF-8 field: usually fine, sometimes bad UTF-8, NUL, a wildcard or very long.
fn text(g: &mut Gen) -> Vec<u8> {
    match g.below(12) {
        0 => vec![0xFF, b'a'],
        1 => vec![0xC0, 0x80],       // overlong NUL
        2 => vec![0xED, 0xA0, 0x80], // a UTF-16 surrogate
        3 => vec![b'a', 0, b'b'],
        4 => g.hostile_string().into_bytes(),
        _ => g.word().into_bytes(),
    }
}

/// One property with id `id` and a value of its type (edge values included).
fn prop(g: &mut Gen, id: u8) -> Vec<u8> {
    let mut out = vec![id];
    let edge = g.chance(1, 3);
    if id == 0x26 {
        wire::string(&text(g), &mut out);
        wire::string(&text(g), &mut out);
    } else if BYTE_PROPS.contains(&id) {
        out.push(if edge { *g.pick(&[0, 1, 2, 0xFF]) } else { 1 });
    } else if U16_PROPS.contains(&id) {
        let v: u16 = if edge { *g.pick(&[0, 1, u16::MAX]) } else { 10 };
        out.extend_from_slice(&v.to_be_bytes());
    } else if U32_PROPS.contains(&id) {
        let v: u32 = if edge {
            *g.pick(&[0, 1, u32::MAX])
        } else {
            1024
        };
        out.extend_from_slice(&v.to_be_bytes());
    } else if id == 0x0B {
        wire::varint(if edge { 0 } else { 1 + g.below(1000) }, &mut out);
    } else if STR_PROPS.contains(&id) || BIN_PROPS.contains(&id) {
        wire::string(&text(g), &mut out);
    } else {
        // An id MQTT 5 does not define: any bytes after it.
        let n = g.below(6);
        out.extend(g.bytes(n));
    }
    out
}

/// A property block for a packet that allows `allowed`; sometimes with a foreign, unknown or
/// duplicated property.
fn props(g: &mut Gen, allowed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..g.below(4) {
        let id = *g.pick(allowed);
        out.extend(prop(g, id));
    }
    match g.below(10) {
        0 => {
            let id = g.byte() & 0x7F;
            out.extend(prop(g, id));
        }
        1 => {
            let id = *g.pick(allowed);
            let p = prop(g, id);
            out.extend_from_slice(&p);
            out.extend_from_slice(&p);
        }
        2 => {
            // Many user properties.
            for i in 0..(1 + g.below(300)) {
                out.extend(wire::user_prop(format!("k{i}").as_bytes(), b"v"));
            }
        }
        _ => {}
    }
    out
}

fn topic(g: &mut Gen) -> Vec<u8> {
    match g.below(10) {
        0 => text(g),
        1 => Vec::new(), // empty: only legal with a topic alias, which we never allowed
        2 => b"$mcp-rpc/hub-1/k1/axon/lamp/k1".to_vec(),
        3 => b"axon/+/k1".to_vec(),
        4 => b"a/#".to_vec(),
        _ => format!("axon/telemetry/{}", g.word()).into_bytes(),
    }
}

/// A valid (or nearly valid) packet a broker sends.
fn packet(g: &mut Gen, connected: bool) -> (Vec<u8>, &'static str) {
    if !connected && g.chance(2, 3) {
        let reason = *g.pick(&[0x00, 0x00, 0x00, 0x80, 0x86, 0x87, 0x88, 0x9C, 0x05]);
        return (wire::connack(reason, &props(g, &CONNACK_PROPS)), "CONNACK");
    }
    let pid = *g.pick(&[0, 1, 2, u16::MAX]);
    match g.below(13) {
        0..=3 => {
            let qos = *g.pick(&[0, 1, 2]);
            let payload = match g.below(4) {
                0 => {
                    let n = g.len(4096);
                    g.bytes(n)
                }
                1 => br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec(),
                _ => b"{}".to_vec(),
            };
            let p = wire::publish(
                &topic(g),
                qos,
                g.chance(1, 4),
                pid,
                &props(g, &PUBLISH_PROPS),
                &payload,
            );
            (p, "PUBLISH")
        }
        4 => {
            let reason = *g.pick(&[0x00, 0x10, 0x80, 0x87, 0x91, 0x97, 0x42]);
            (
                wire::ack(0x40, pid, reason, &props(g, &ACK_PROPS)),
                "PUBACK",
            )
        }
        5 => {
            let n = g.below(4);
            let codes = g.bytes(n);
            (
                wire::suback(0x90, pid, &props(g, &ACK_PROPS), &codes),
                "SUBACK",
            )
        }
        6 => {
            let n = g.below(4);
            let codes = g.bytes(n);
            (
                wire::suback(0xB0, pid, &props(g, &ACK_PROPS), &codes),
                "UNSUBACK",
            )
        }
        7 => (vec![0xD0, 0x00], "PINGRESP"),
        8 => {
            let reason = *g.pick(&[0x00, 0x04, 0x80, 0x81, 0x82, 0x8B, 0x8E, 0x93, 0x9C]);
            (
                wire::disconnect(reason, &props(g, &DISCONNECT_PROPS)),
                "DISCONNECT",
            )
        }
        9 => (wire::connack(0, &props(g, &CONNACK_PROPS)), "CONNACK"),
        10 => {
            let first = *g.pick(&[0x50, 0x62, 0x70, 0x10, 0x82, 0xA2, 0xC0, 0xF0, 0x00]);
            (
                wire::ack(first, pid, 0, &[]),
                "a packet a client never gets",
            )
        }
        11 => (wire::packet(0xF0, &[0x00, 0x00]), "AUTH"),
        _ => {
            let n = g.len(2048);
            (g.bytes(n), "random bytes")
        }
    }
}

/// Damages `p` in one of the ways a broken or hostile broker would.
fn mutate(g: &mut Gen, p: &mut Vec<u8>) -> &'static str {
    if p.is_empty() {
        p.push(g.byte());
    }
    match g.below(9) {
        0 => {
            for _ in 0..(1 + g.below(8)) {
                let i = g.below(p.len());
                p[i] ^= 1 << g.below(8);
            }
            "bit flips"
        }
        1 => {
            p.truncate(g.below(p.len()));
            "truncated"
        }
        2 => {
            let n = g.len(64);
            let extra = g.bytes(n);
            p.extend(extra);
            "random bytes appended"
        }
        3 => {
            // Remaining length: the largest legal value, or a fifth continuation byte.
            let huge: &[u8] = if g.chance(1, 2) {
                &[0xFF, 0xFF, 0xFF, 0x7F]
            } else {
                &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
            };
            let mut out = vec![p[0]];
            out.extend_from_slice(huge);
            out.extend_from_slice(p.get(2..).unwrap_or_default());
            *p = out;
            "huge remaining length"
        }
        4 => {
            // The remaining length a few bytes off the truth.
            if p.len() > 1 {
                p[1] = p[1].wrapping_add(*g.pick(&[1, 2, 0xFF, 0xFE, 0x40]));
            }
            "remaining length off by a little"
        }
        5 => {
            p[0] = g.byte();
            "random packet type and flags"
        }
        6 => {
            p[0] |= 1 + (g.byte() & 0x0F);
            "reserved flag bits set"
        }
        7 => {
            let i = g.below(p.len());
            let b = *g.pick(&[0x00, 0xFF, 0xC0, 0x80, 0x7F]);
            p.insert(i, b);
            "one byte inserted"
        }
        _ => {
            let i = g.below(p.len());
            p.remove(i);
            "one byte removed"
        }
    }
}

/// Generates one input.
pub fn generate(g: &mut Gen) -> Case {
    let connected = g.chance(3, 4);
    let (mut bytes, kind) = packet(g, connected);
    let mut what = kind.to_string();
    if g.chance(4, 5) {
        for _ in 0..(1 + g.below(2)) {
            what.push_str(", ");
            what.push_str(mutate(g, &mut bytes));
        }
    }
    if g.chance(1, 10) {
        let (second, kind) = packet(g, true);
        bytes.extend(second);
        what.push_str(" + ");
        what.push_str(kind);
    }
    let chunks = match g.below(10) {
        0 => bytes.iter().map(|b| vec![*b]).collect(),
        1 if bytes.len() > 2 => {
            let at = 1 + g.below(bytes.len() - 1);
            vec![bytes[..at].to_vec(), bytes[at..].to_vec()]
        }
        _ => vec![bytes],
    };
    Case {
        connected,
        chunks,
        what,
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        client_id: "k1".into(),
        keep_alive: Duration::from_secs(30),
        clean_start: true,
        session_expiry_s: 0,
        user_properties: vec![],
        will: None,
        credentials: None,
    }
}

fn drain(s: &mut Session) -> Vec<SessionEvent> {
    while s.poll_transmit().is_some() {}
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Whether `s` is a topic name MQTT 5 allows in a PUBLISH: non-empty, no wildcard, no NUL
/// (§3.3.2.1, §1.5.4).
fn valid_topic_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['+', '#', '\0'])
}

/// What the session made of the events it reported, if they settle it.
fn judge(events: &[SessionEvent]) -> Option<Outcome> {
    for e in events {
        if let SessionEvent::Message(m) = e {
            if !valid_topic_name(&m.topic) {
                return Some(Outcome::Unclear(format!(
                    "delivered a PUBLISH whose topic name MQTT forbids: {:?}",
                    m.topic
                )));
            }
            if m.user_properties
                .iter()
                .any(|(k, v)| k.contains('\0') || v.contains('\0'))
            {
                return Some(Outcome::Unclear(
                    "delivered a PUBLISH with U+0000 in a user property (a malformed packet)"
                        .into(),
                ));
            }
        }
    }
    for e in events {
        match e {
            SessionEvent::Disconnected { reason, .. } if reason.trim().is_empty() => {
                return Some(Outcome::Unclear("disconnected with an empty reason".into()))
            }
            SessionEvent::Disconnected { reason, .. } => {
                let kind = if reason.contains("sent DISCONNECT") {
                    "the broker's DISCONNECT: reconnect"
                } else if reason.contains("CONNECT refused") {
                    "CONNACK refusal: reconnect"
                } else if reason.contains("Maximum Packet Size") {
                    "over our maximum size: DISCONNECT 0x95"
                } else {
                    "malformed or unexpected packet: protocol-error close"
                };
                return Some(Outcome::Error {
                    kind,
                    message: reason.clone(),
                });
            }
            SessionEvent::TakenOver => {
                return Some(Outcome::Error {
                    kind: "takeover (DISCONNECT 0x8E): stop",
                    message: "session taken over".into(),
                })
            }
            _ => {}
        }
    }
    events.iter().find_map(|e| match e {
        SessionEvent::Connected { .. } => Some(Outcome::Accepted("CONNACK: connected")),
        SessionEvent::Message(_) => Some(Outcome::Accepted("PUBLISH delivered")),
        SessionEvent::Subscribed { .. }
        | SessionEvent::Unsubscribed { .. }
        | SessionEvent::PublishAcked { .. } => Some(Outcome::Accepted("acknowledgement reported")),
        _ => None,
    })
}

/// Feeds one input to a fresh session and judges the result.
pub fn check(case: &Case) -> Outcome {
    let mut s = Session::new(SessionConfig::new(options(), 1));
    drain(&mut s);
    s.handle_transport_open(t(0));
    drain(&mut s);
    if case.connected {
        s.handle_input(t(1), &wire::connack(0, &[]));
        drain(&mut s);
    }
    let mut events = Vec::new();
    for c in &case.chunks {
        s.handle_input(t(2), c);
        events.extend(drain(&mut s));
    }
    if let Some(o) = judge(&events) {
        return o;
    }
    if !events.is_empty() {
        return Outcome::Unclear(format!("events that settle nothing: {events:?}"));
    }
    // Nothing yet: a complete packet with nothing to report (PINGRESP), or the start of one.
    // A known-good packet next tells which; then silence must end it through a deadline.
    let probe = if case.connected {
        wire::publish(b"hostile/probe", 0, false, 0, &[], b"probe")
    } else {
        wire::connack(0, &[])
    };
    s.handle_input(t(3), &probe);
    let after = drain(&mut s);
    let probe_arrived = after.iter().any(|e| match e {
        SessionEvent::Message(m) => m.topic == "hostile/probe",
        SessionEvent::Connected { .. } => true,
        _ => false,
    });
    if probe_arrived {
        return if case.chunks.iter().all(Vec::is_empty) {
            Outcome::Ignored("an empty read")
        } else {
            Outcome::Accepted("a complete packet with nothing to report (PINGRESP)")
        };
    }
    match judge(&after) {
        Some(Outcome::Error { .. }) => {
            return Outcome::Ignored(
                "an incomplete packet: waited for the rest, then closed on what came next",
            )
        }
        Some(unclear @ Outcome::Unclear(_)) => return unclear,
        _ => {}
    }
    for _ in 0..4 {
        let Some(at) = s.poll_timeout() else { break };
        s.handle_timeout(at);
        let later = drain(&mut s);
        match judge(&later) {
            Some(Outcome::Error { .. }) => {
                return Outcome::Ignored(
                    "an incomplete packet: waited for the rest; the silent link was closed by its deadline",
                )
            }
            Some(unclear @ Outcome::Unclear(_)) => return unclear,
            _ => {}
        }
    }
    Outcome::Unclear(
        "no event, no error and no deadline that ends it: the session would hang".into(),
    )
}

/// Smaller inputs that may fail the same way, for a minimal reproducer.
pub fn smaller(case: &Case) -> Vec<Case> {
    let bytes: Vec<u8> = case.chunks.concat();
    let mut out = Vec::new();
    if case.chunks.len() > 1 {
        out.push(Case {
            chunks: vec![bytes.clone()],
            ..case.clone()
        });
    }
    let n = bytes.len();
    let mut size = n / 2;
    while size > 0 {
        for start in (0..n).step_by(size) {
            let mut b = bytes.clone();
            b.drain(start..(start + size).min(n));
            out.push(Case {
                chunks: vec![b],
                ..case.clone()
            });
        }
        size /= 2;
    }
    out
}

/// The input as text someone can paste into a test.
pub fn describe(case: &Case) -> String {
    let hex: Vec<String> = case
        .chunks
        .iter()
        .map(|c| {
            let hex: String = c.iter().take(200).map(|b| format!("{b:02x}")).collect();
            if c.len() > 200 {
                format!("{hex}… ({} bytes)", c.len())
            } else {
                hex
            }
        })
        .collect();
    format!(
        "session {}; reads (hex): [{}]; made as: {}",
        if case.connected {
            "connected"
        } else {
            "waiting for CONNACK"
        },
        hex.join(", "),
        case.what
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::transport::link::Inbound;

    fn case(bytes: &[u8]) -> Case {
        Case {
            connected: true,
            chunks: vec![bytes.to_vec()],
            what: "by hand".into(),
        }
    }

    #[test]
    fn a_delivered_wildcard_topic_is_unclear_and_now_it_is_a_protocol_error() {
        let delivered = SessionEvent::Message(Inbound {
            topic: "axon/+/k1".into(),
            ..Inbound::default()
        });
        assert!(matches!(judge(&[delivered]), Some(Outcome::Unclear(_))));
        // The input that found it: PUBLISH QoS 0 to "axon/+/k1".
        let got = check(&case(&wire::publish(b"axon/+/k1", 0, false, 0, &[], b"")));
        assert!(matches!(got, Outcome::Error { .. }), "{got:?}");
    }

    #[test]
    fn partial_packets_are_told_from_complete_ones() {
        assert_eq!(
            check(&case(&[0xD0, 0x00])),
            Outcome::Accepted("a complete packet with nothing to report (PINGRESP)")
        );
        let half = wire::publish(b"a/b", 0, false, 0, &[], b"0123456789");
        assert!(matches!(check(&case(&half[..6])), Outcome::Ignored(_)));
        assert!(matches!(
            check(&case(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])),
            Outcome::Error { .. }
        ));
    }
}
