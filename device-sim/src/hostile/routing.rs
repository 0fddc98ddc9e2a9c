//! Family 4: topic names and user properties at the MQTT→MCP boundary.
//!
//! Owns generating PUBLISH packets whose topic names and user properties are hostile (empty or
//! odd levels, wildcards, NUL, separators, unicode, 64 KiB names, foreign or reserved ids,
//! missing, duplicated, malformed or huge `MCP-MQTT-CLIENT-ID`) around a well-formed MCP
//! payload, and feeding the bytes to a whole `Endpoint` (session + role), either a device that
//! has an initialized client or a Hub. A fake broker answers the endpoint's CONNECT,
//! SUBSCRIBEs and QoS 1 PUBLISHes, so everything the role asks for really goes through the
//! session: a subscription or answer MQTT cannot carry shows up here.

use std::str;

use serde_json::json;

use axon_core::endpoint::{Endpoint, EndpointEvent, McpRole};
use axon_core::protocol::mcp::client::{ClientConfig, ClientEvent, McpClient};
use axon_core::protocol::mcp::server::{DeviceConfig, McpServer, ServerEvent};
use axon_core::protocol::mcp::topics::{self, DeviceId};
use axon_core::time::Timestamp;

use super::gen::Gen;
use super::wire::{self, read_sent, Sent};
use super::Outcome;
use crate::profiles;

/// Which endpoint gets the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Device `k1` (a lamp) with client `hub-1` initialized.
    Device,
    /// The Hub `hub-1`, subscribed to presence.
    Hub,
}

/// One input.
#[derive(Debug, Clone)]
pub struct Case {
    /// Which endpoint.
    pub side: Side,
    /// Topic name bytes as encoded (at most 65,535).
    pub topic: Vec<u8>,
    /// User properties as encoded.
    pub props: Props,
    /// The payload.
    pub payload: Vec<u8>,
    /// How the generator made it.
    pub what: String,
}

const SERVER_NAME: &str = "axon/lamp/k1";

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A topic level: usually right, sometimes hostile.
fn level(g: &mut Gen, right: &str) -> String {
    match g.below(8) {
        0..=3 => right.to_string(),
        4 => g.word(),
        5 => String::new(),
        _ => {
            let mut s = g.hostile_string();
            if s.len() > 20_000 && g.chance(3, 4) {
                s.truncate(100);
            }
            s
        }
    }
}

fn topic(g: &mut Gen, side: Side) -> (String, &'static str) {
    let name = |g: &mut Gen| {
        if g.chance(3, 4) {
            SERVER_NAME.to_string()
        } else {
            level(g, SERVER_NAME)
        }
    };
    match g.below(10) {
        0..=2 if side == Side::Device => {
            let sid = level(g, "k1");
            (format!("$mcp-server/{sid}/{}", name(g)), "control")
        }
        3 | 4 if side == Side::Device => {
            let cid = level(g, "hub-1");
            let sid = level(g, "k1");
            (format!("$mcp-rpc/{cid}/{sid}/{}", name(g)), "rpc")
        }
        0..=4 => {
            let sid = level(g, "k9");
            (
                format!("$mcp-server/presence/{sid}/{}", name(g)),
                "presence",
            )
        }
        5 => {
            let cid = level(g, "hub-1");
            let sid = level(g, "k1");
            (format!("$mcp-rpc/{cid}/{sid}/{}", name(g)), "rpc")
        }
        6 => {
            let cid = level(g, "hub-1");
            (format!("$mcp-client/presence/{cid}"), "client presence")
        }
        7 => {
            let sid = level(g, "k1");
            (
                format!("$mcp-server/capability/{sid}/{}", name(g)),
                "capability",
            )
        }
        8 => {
            let t = g
                .pick(&[
                    "$mcp-",
                    "$mcp-rpc",
                    "$mcp-rpc/",
                    "$mcp-server/",
                    "/$mcp-rpc/hub-1/k1/axon/lamp/k1",
                    "$MCP-RPC/hub-1/k1/axon/lamp/k1",
                    "$mcp-rpc/hub-1/k1/axon/lamp/k1/",
                    "$mcp-rpc//k1/axon/lamp/k1",
                    "$mcp-server/k1",
                ])
                .to_string();
            (t, "a near miss")
        }
        _ => {
            let t = match g.below(3) {
                0 => format!("axon/telemetry/{}", level(g, "k1")),
                1 => format!("axon/events/{}", level(g, "k1")),
                _ => g.hostile_string(),
            };
            (t, "outside MCP")
        }
    }
}

/// User properties as encoded: key and value bytes.
type Props = Vec<(Vec<u8>, Vec<u8>)>;

fn client_id_props(g: &mut Gen) -> (Props, &'static str) {
    let cid = topics::PROP_CLIENT_ID.as_bytes().to_vec();
    let ty = (
        topics::PROP_COMPONENT_TYPE.as_bytes().to_vec(),
        topics::COMPONENT_CLIENT.as_bytes().to_vec(),
    );
    match g.below(10) {
        0..=3 => (
            vec![ty, (cid, b"hub-1".to_vec())],
            "MCP-MQTT-CLIENT-ID hub-1",
        ),
        4 => (vec![ty], "no MCP-MQTT-CLIENT-ID"),
        5 => (
            vec![
                (cid.clone(), g.hostile_string().into_bytes()),
                (cid, b"hub-1".to_vec()),
            ],
            "two MCP-MQTT-CLIENT-IDs, the first hostile",
        ),
        6 => (
            vec![(b"mcp-mqtt-client-id".to_vec(), b"hub-1".to_vec())],
            "the property name in lower case",
        ),
        7 => {
            let many = (0..(1 + g.below(2000)))
                .map(|i| (format!("k{i}").into_bytes(), b"v".to_vec()))
                .chain([(cid, b"hub-1".to_vec())])
                .collect();
            (
                many,
                "thousands of user properties, then MCP-MQTT-CLIENT-ID",
            )
        }
        8 => (
            vec![(cid, "c".repeat(65_450 + g.below(86)).into_bytes())],
            "an MCP-MQTT-CLIENT-ID of about 65,500 bytes",
        ),
        _ => (
            vec![ty, (cid, g.hostile_string().into_bytes())],
            "a hostile MCP-MQTT-CLIENT-ID",
        ),
    }
}

fn payload(g: &mut Gen, kind: &str) -> Vec<u8> {
    let v = match kind {
        "presence" if g.chance(1, 5) => return Vec::new(),
        "presence" => json!({"jsonrpc":"2.0","method":"notifications/server/online",
            "params":{"server_name": g.hostile_string(), "description":"d","meta":{"axon":{"device_id":"k9","kind":"lamp"}}}}),
        "client presence" => json!({"jsonrpc":"2.0","method":"notifications/disconnected"}),
        "capability" => json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}),
        "control" => json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}),
        _ => json!({"jsonrpc":"2.0","id":7,"method":"ping"}),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Generates one input.
pub fn generate(g: &mut Gen) -> Case {
    let side = if g.chance(2, 3) {
        Side::Device
    } else {
        Side::Hub
    };
    let (topic, kind) = topic(g, side);
    let (props, props_what) = client_id_props(g);
    let payload = payload(g, kind);
    let mut topic = topic.into_bytes();
    topic.truncate(usize::from(u16::MAX));
    Case {
        side,
        topic,
        props,
        payload,
        what: format!("{kind} topic; {props_what}"),
    }
}

/// Answers what the endpoint sends, as a broker would, until it is quiet. Returns the
/// endpoint's events and its PUBLISHes.
fn pump<R: McpRole>(
    ep: &mut Endpoint<R>,
    now: Timestamp,
) -> (Vec<EndpointEvent<R::Event>>, Vec<Sent>) {
    let mut events = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..100 {
        let mut busy = false;
        while let Some(ev) = ep.poll_event(now) {
            busy = true;
            match ev {
                EndpointEvent::OpenTransport => ep.handle_transport_open(now),
                other => events.push(other),
            }
        }
        while let Some(bytes) = ep.poll_transmit(now) {
            busy = true;
            match read_sent(&bytes) {
                Some(Sent::Connect) => ep.handle_input(now, &wire::connack(0, &[])),
                Some(Sent::Subscribe { pid, filters }) => {
                    let codes = vec![1; filters.len()];
                    ep.handle_input(now, &wire::suback(0x90, pid, &[], &codes));
                }
                Some(p @ Sent::Publish { .. }) => {
                    if let Sent::Publish { pid: Some(pid), .. } = &p {
                        ep.handle_input(now, &wire::ack(0x40, *pid, 0, &[]));
                    }
                    sent.push(p);
                }
                _ => {}
            }
        }
        if !busy {
            break;
        }
    }
    (events, sent)
}

fn packet(case: &Case) -> Vec<u8> {
    let mut props = Vec::new();
    for (k, v) in &case.props {
        props.extend(wire::user_prop(k, v));
    }
    wire::publish(&case.topic, 1, false, 9, &props, &case.payload)
}

/// Whether MQTT allows the packet's strings: UTF-8, no NUL, a topic name without wildcards.
fn well_formed(case: &Case) -> bool {
    let topic_ok =
        str::from_utf8(&case.topic).is_ok_and(|t| !t.is_empty() && !t.contains(['+', '#', '\0']));
    let props_ok = case.props.iter().all(|(k, v)| {
        str::from_utf8(k).is_ok_and(|k| !k.contains('\0'))
            && str::from_utf8(v).is_ok_and(|v| !v.contains('\0'))
    });
    topic_ok && props_ok
}

/// The common part of judging either side: the session's verdict on malformed packets.
fn judge_session<E: std::fmt::Debug>(case: &Case, events: &[EndpointEvent<E>]) -> Option<Outcome> {
    for e in events {
        if let EndpointEvent::SendFailed(err) = e {
            return Some(Outcome::Unclear(format!(
                "the role asked for something MQTT cannot carry ({err}); the peer hears nothing"
            )));
        }
    }
    let closed = events.iter().find_map(|e| match e {
        EndpointEvent::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    });
    match (well_formed(case), closed) {
        (true, Some(reason)) => Some(Outcome::Unclear(format!(
            "closed the connection over a well-formed PUBLISH: {reason}"
        ))),
        (false, Some(reason)) => Some(Outcome::Error {
            kind: "a topic or property MQTT forbids: protocol-error close",
            message: reason,
        }),
        (false, None) => Some(Outcome::Unclear(
            "a PUBLISH with a string MQTT forbids (wildcard or NUL) was accepted".into(),
        )),
        (true, None) => None,
    }
}

fn shell_message<E>(events: &[EndpointEvent<E>]) -> Option<Outcome> {
    events.iter().find_map(|e| match e {
        EndpointEvent::Message(m) if m.topic.starts_with("$mcp-") => {
            Some(Outcome::Unclear(format!(
                "an MCP topic went to the shell, not the role: {:?}",
                m.topic
            )))
        }
        EndpointEvent::Message(_) => {
            Some(Outcome::Accepted("a non-MCP topic: handed to the shell"))
        }
        _ => None,
    })
}

fn device_endpoint() -> Option<Endpoint<McpServer>> {
    let board = profiles::profile("lamp")?;
    let config = DeviceConfig::new(DeviceId::new("k1").ok()?, "lamp", "lamp", board.tools());
    let mut ep = Endpoint::new(McpServer::new(config).ok()?, 1);
    pump(&mut ep, t(0));
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"h","version":"1"}}});
    let init = wire::publish(
        topics::control("k1", SERVER_NAME).as_bytes(),
        1,
        false,
        1,
        &wire::user_prop(topics::PROP_CLIENT_ID.as_bytes(), b"hub-1"),
        &serde_json::to_vec(&init).unwrap_or_default(),
    );
    ep.handle_input(t(1), &init);
    pump(&mut ep, t(1));
    (ep.role().client_count() == 1).then_some(ep)
}

fn check_device(case: &Case) -> Outcome {
    let Some(mut ep) = device_endpoint() else {
        return Outcome::Unclear("could not set up the device".into());
    };
    ep.handle_input(t(2), &packet(case));
    let (events, sent) = pump(&mut ep, t(2));
    if let Some(o) = judge_session(case, &events) {
        return o;
    }
    if let Some(o) = shell_message(&events) {
        return o;
    }
    for e in &events {
        match e {
            EndpointEvent::Mcp(ServerEvent::Rejected { error, .. }) => {
                return if error.message.trim().is_empty() {
                    Outcome::Unclear("a Rejected event without a message".into())
                } else {
                    Outcome::Error {
                        kind: "refused: Rejected event",
                        message: error.message.clone(),
                    }
                };
            }
            EndpointEvent::Mcp(ServerEvent::ClientLeft { .. }) => {
                return Outcome::Accepted("the client left")
            }
            _ => {}
        }
    }
    if sent
        .iter()
        .any(|s| matches!(s, Sent::Publish { topic, .. } if topic.starts_with("$mcp-rpc/")))
    {
        return Outcome::Accepted("answered on the client's RPC topic");
    }
    // Nothing happened: right only for a topic that is not this device's.
    let topic = String::from_utf8_lossy(&case.topic);
    let ours = |prefix: &str| {
        topic
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    };
    let control = ours("$mcp-server/k1/");
    let rpc = ours("$mcp-rpc/hub-1/k1/");
    if control || rpc {
        return Outcome::Unclear(format!(
            "a message on this device's {} topic got no answer and no Rejected event",
            if control { "control" } else { "RPC" }
        ));
    }
    Outcome::Ignored("a topic that is not this device's (its subscriptions would not match)")
}

fn check_hub(case: &Case) -> Outcome {
    let mut ep = Endpoint::new(McpClient::new(ClientConfig::new("hub-1", 1)), 1);
    pump(&mut ep, t(0));
    if !ep.is_connected() {
        return Outcome::Unclear("could not set up the Hub".into());
    }
    ep.handle_input(t(2), &packet(case));
    let (events, _sent) = pump(&mut ep, t(2));
    if let Some(o) = judge_session(case, &events) {
        return o;
    }
    if let Some(o) = shell_message(&events) {
        return o;
    }
    for e in &events {
        if let EndpointEvent::Mcp(ClientEvent::DeviceUnreachable { error, .. }) = e {
            return if error.message.trim().is_empty() {
                Outcome::Unclear("DeviceUnreachable without a message".into())
            } else {
                Outcome::Error {
                    kind: "a device that cannot be reached: DeviceUnreachable",
                    message: error.message.clone(),
                }
            };
        }
    }
    let online = events
        .iter()
        .any(|e| matches!(e, EndpointEvent::Mcp(ClientEvent::DeviceOnline { .. })));
    if online {
        // Its initialize must be in flight, so a timeout ends it if the device never answers.
        return if ep.role().in_flight() == 1 && ep.poll_timeout().is_some() {
            Outcome::Accepted("a device came online: initialize sent")
        } else {
            Outcome::Unclear(
                "a device came online but no initialize is in flight: it would stay initializing"
                    .into(),
            )
        };
    }
    Outcome::Ignored("nothing the Hub knows or waits for (presence garbage, unknown device)")
}

/// Feeds one input and judges it.
pub fn check(case: &Case) -> Outcome {
    match case.side {
        Side::Device => check_device(case),
        Side::Hub => check_hub(case),
    }
}

/// The input as text.
pub fn describe(case: &Case) -> String {
    let cut = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        if s.len() > 120 {
            format!(
                "{:?}… ({} bytes)",
                s.chars().take(60).collect::<String>(),
                b.len()
            )
        } else {
            format!("{s:?}")
        }
    };
    let props: Vec<String> = case
        .props
        .iter()
        .take(4)
        .map(|(k, v)| format!("{}={}", cut(k), cut(v)))
        .collect();
    format!(
        "{:?}; topic {}; user properties ({}) [{}]; payload {}; made as: {}",
        case.side,
        cut(&case.topic),
        case.props.len(),
        props.join(", "),
        cut(&case.payload),
        case.what
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inputs_that_found_bugs_now_get_clear_outcomes() {
        let online = serde_json::to_vec(
            &json!({"jsonrpc":"2.0","method":"notifications/server/online",
            "params":{"server_name":"x","description":"d"}}),
        )
        .unwrap_or_default();
        let hub = |topic: String| Case {
            side: Side::Hub,
            topic: topic.into_bytes(),
            props: vec![],
            payload: online.clone(),
            what: "by hand".into(),
        };
        // A wildcard in a presence topic: the Hub subscribed to what it read.
        let got = check(&hub("$mcp-server/presence/#/axon/lamp/k1".into()));
        assert!(
            matches!(&got, Outcome::Error { kind, .. } if kind.contains("protocol-error close")),
            "{got:?}"
        );
        // A presence topic of 65,535 bytes: its capability filter is longer than MQTT allows.
        let long = format!("$mcp-server/presence/ypagjkdazp/{}", "y".repeat(65_503));
        let got = check(&hub(long));
        assert!(
            matches!(&got, Outcome::Error { kind, .. } if kind.contains("DeviceUnreachable")),
            "{got:?}"
        );
        let got = check(&hub("$mcp-server/presence/k9/axon/lamp/k9".into()));
        assert_eq!(
            got,
            Outcome::Accepted("a device came online: initialize sent")
        );
    }
}
