//! Family 2: JSON-RPC / MCP payloads against both MCP roles.
//!
//! Owns generating payloads (requests, notifications and responses, broken as values: wrong
//! types, missing fields, huge or odd ids, unknown methods; and as text: truncation, bit flips,
//! bad UTF-8, lone surrogates, deep nesting, oversize) and feeding each to a device
//! (`McpServer`, on the RPC topic of an initialized client or on its control topic) or to the
//! Hub (`McpClient`, on the RPC topic of a ready device with a request in flight). Both sides
//! are set up by talking to each other in memory, so the state is what a real session has.
//!
//! The oracle reads the payload independently (docs/protocol.md §7 and JSON-RPC 2.0): not
//! JSON is `-32700` with id null; not an object, or a request-shaped message that breaks the
//! envelope, is `-32600`; an unknown method `-32601`; a known one answers a result or one of
//! its documented errors; malformed responses and notifications, valid notifications and
//! responses to ids nobody asked are never answered.

use serde_json::{json, Map, Value};

use axon_core::protocol::jsonrpc::{self, Message, RequestId};
use axon_core::protocol::mcp::client::{ClientConfig, ClientEvent, McpClient, RequestHandle};
use axon_core::protocol::mcp::server::{DeviceConfig, McpServer, ServerEvent};
use axon_core::protocol::mcp::topics::{self, DeviceId};
use axon_core::protocol::mcp::MAX_RPC_PAYLOAD;
use axon_core::time::{Rng, Timestamp};
use axon_core::transport::link::{Connack, Inbound, Transmit};

use super::gen::Gen;
use super::{args, clear_message, Outcome};
use crate::profiles::{self, Env, Profile};

/// Where a payload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The device, on the RPC topic of its initialized client `hub-1`.
    ServerRpc,
    /// The device, on its control topic, from a new client `hub-2`.
    ServerControl,
    /// The Hub, on the RPC topic of ready device `k1`, with a `ping` (id 3) in flight.
    ClientRpc,
}

/// One input.
#[derive(Debug, Clone)]
pub struct Case {
    /// Where it goes.
    pub target: Target,
    /// The board kind of device `k1`.
    pub kind: &'static str,
    /// The payload.
    pub payload: Vec<u8>,
    /// How the generator made it.
    pub what: String,
}

/// The id of the Hub's `ping` in flight (initialize was 1, tools/list 2).
const PENDING_ID: i64 = 3;

const SERVER_METHODS: [&str; 9] = [
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "initialize",
];

const NOTIFICATIONS: [&str; 6] = [
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/disconnected",
    "notifications/tools/list_changed",
    "notifications/message",
];

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn id(g: &mut Gen) -> Value {
    match g.below(16) {
        0..=5 => json!(1 + g.below(5)),
        6 => json!(PENDING_ID),
        7 => json!(g.word()),
        8 => Value::Null,
        9 => json!(1.5),
        10 => json!(i64::MAX),
        11 => json!(u64::MAX),
        12 => json!(i64::MIN),
        13 => json!(g.hostile_string()),
        14 => json!(true),
        _ => g.value(1),
    }
}

fn method(g: &mut Gen, target: Target) -> String {
    match g.below(10) {
        0 => g.hostile_string(),
        1 => g.word(),
        2 => "tools/CALL".into(),
        _ if target == Target::ServerControl && g.chance(2, 3) => "initialize".into(),
        _ if target == Target::ClientRpc && g.chance(1, 2) => "ping".into(),
        _ => g.pick(&SERVER_METHODS).to_string(),
    }
}

fn params(g: &mut Gen, method: &str, tools: &[axon_core::protocol::mcp::types::Tool]) -> Value {
    if g.chance(1, 8) {
        return g.value(3);
    }
    match method {
        "tools/call" => {
            let (name, schema) = match tools.get(g.below(tools.len() + 1)) {
                Some(t) => (json!(t.name), t.input_schema.clone()),
                None => (g.value(1), json!({})),
            };
            let (arguments, _, _) = args::arguments(g, &schema);
            let mut p = json!({"name": name, "arguments": arguments});
            if g.chance(1, 2) {
                p["_meta"] = json!({"axon/call-id": g.value(1), "progressToken": g.value(1)});
            }
            p
        }
        "tools/list" => match g.below(4) {
            0 => json!({}),
            1 => json!({"cursor": "1"}),
            2 => json!({"cursor": g.value(1)}),
            _ => json!({"cursor": g.hostile_string()}),
        },
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            if g.chance(1, 2) {
                json!({"uri": "axon://k1/telemetry"})
            } else {
                json!({"uri": g.value(1)})
            }
        }
        "initialize" => {
            let mut p = json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "hostile", "version": "1"}
            });
            match g.below(5) {
                0 => p["protocolVersion"] = g.value(1),
                1 => p["clientInfo"] = g.value(2),
                2 => p["capabilities"] = g.value(2),
                3 => {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("clientInfo");
                    }
                }
                _ => {}
            }
            p
        }
        "notifications/progress" => {
            json!({"progressToken": id(g), "progress": g.hostile_number(), "total": g.value(0)})
        }
        "notifications/cancelled" => json!({"requestId": id(g), "reason": g.value(0)}),
        _ => json!({}),
    }
}

fn error_object(g: &mut Gen) -> Value {
    match g.below(6) {
        0 => json!({"code": -32601, "message": "method not found"}),
        1 => json!({"code": g.hostile_number(), "message": g.value(0)}),
        2 => json!({"message": "no code"}),
        3 => json!({"code": -1}),
        4 => g.value(2),
        _ => json!({"code": -32010, "message": g.hostile_string(), "data": g.value(2)}),
    }
}

/// A message as a JSON value, before any breakage.
fn message(g: &mut Gen, target: Target, tools: &[axon_core::protocol::mcp::types::Tool]) -> Value {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), json!("2.0"));
    match g.below(10) {
        0..=5 => {
            let method = method(g, target);
            m.insert("id".into(), id(g));
            if g.chance(7, 8) {
                m.insert("params".into(), params(g, &method, tools));
            }
            m.insert("method".into(), json!(method));
        }
        6 | 7 => {
            let method = g.pick(&NOTIFICATIONS).to_string();
            if g.chance(7, 8) {
                m.insert("params".into(), params(g, &method, tools));
            }
            m.insert("method".into(), json!(method));
        }
        _ => {
            m.insert("id".into(), id(g));
            if g.chance(1, 2) {
                m.insert("result".into(), g.value(2));
            } else {
                m.insert("error".into(), error_object(g));
            }
        }
    }
    Value::Object(m)
}

/// Breaks the envelope as a value.
fn break_value(g: &mut Gen, v: &mut Value) -> &'static str {
    let Some(obj) = v.as_object_mut() else {
        return "not an object";
    };
    let keys = ["jsonrpc", "id", "method", "params", "result", "error"];
    match g.below(6) {
        0 => {
            obj.remove(*g.pick(&keys));
            "a member removed"
        }
        1 => {
            let k = *g.pick(&keys);
            obj.insert(k.into(), g.value(2));
            "a member of the wrong type"
        }
        2 => {
            obj.insert(
                "jsonrpc".into(),
                g.pick(&[json!("1.0"), json!(2.0), json!(null)]).clone(),
            );
            "a wrong jsonrpc version"
        }
        3 => {
            obj.insert(g.hostile_string(), g.value(2));
            "an extra member"
        }
        4 => {
            *v = json!([v.clone()]);
            "a batch"
        }
        _ => {
            *v = g.value(3);
            "any JSON value"
        }
    }
}

/// Breaks the payload as text.
fn break_text(g: &mut Gen, p: &mut Vec<u8>) -> &'static str {
    if p.is_empty() {
        p.push(b'{');
    }
    match g.below(10) {
        0 => {
            p.truncate(g.below(p.len()));
            "truncated"
        }
        1 => {
            for _ in 0..(1 + g.below(4)) {
                let i = g.below(p.len());
                p[i] ^= 1 << g.below(8);
            }
            "bit flips"
        }
        2 => {
            let i = g.below(p.len());
            let bad = *g.pick(&[&b"\xFF"[..], b"\xC0\x80", b"\xED\xA0\x80", b"\x00"]);
            p.splice(i..i, bad.iter().copied());
            "bad UTF-8 or NUL inserted"
        }
        3 => {
            let s = String::from_utf8_lossy(p).replacen("\"2.0\"", "\"\\ud800\"", 1);
            *p = s.into_bytes();
            "a lone surrogate escape"
        }
        4 => {
            let n = *g.pick(&[100, 127, 128, 129, 1000, 100_000]);
            let mut out = "[".repeat(n).into_bytes();
            out.extend_from_slice(p);
            out.extend("]".repeat(n).into_bytes());
            *p = out;
            "nested in arrays"
        }
        5 => {
            let n = *g.pick(&[60, 126, 127, 200]);
            let deep = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
            let s = String::from_utf8_lossy(p);
            let s = match s.rfind('}') {
                Some(i) => format!("{},\"deep\":{deep}}}", &s[..i]),
                None => s.to_string(),
            };
            *p = s.into_bytes();
            "a deeply nested member"
        }
        6 => {
            let mut out = b"\xEF\xBB\xBF".to_vec();
            out.extend_from_slice(p);
            *p = out;
            "a byte order mark"
        }
        7 => {
            p.extend_from_slice(b" {}");
            "trailing data"
        }
        8 => {
            let s = String::from_utf8_lossy(p).replacen(":1", ":1e999", 1);
            *p = s.into_bytes();
            "a number out of range"
        }
        _ => {
            let extra = MAX_RPC_PAYLOAD + 1 + g.below(1000);
            let s = String::from_utf8_lossy(p);
            let s = match s.rfind('}') {
                Some(i) => format!("{},\"pad\":\"{}\"}}", &s[..i], "x".repeat(extra)),
                None => format!("{s}{}", " ".repeat(extra)),
            };
            *p = s.into_bytes();
            "oversize"
        }
    }
}

/// Generates one input.
pub fn generate(g: &mut Gen) -> Case {
    let target = match g.below(20) {
        0..=9 => Target::ServerRpc,
        10..=12 => Target::ServerControl,
        _ => Target::ClientRpc,
    };
    // The camera's photo is slow to encode and adds nothing here.
    let kind = *g.pick(&["lamp", "thermostat", "plug", "lock", "sensor", "speaker"]);
    let tools = profiles::profile(kind)
        .map(|p| p.tools())
        .unwrap_or_default();
    let mut v = message(g, target, &tools);
    let mut what = Vec::new();
    if g.chance(1, 3) {
        what.push(break_value(g, &mut v));
    }
    let mut payload = serde_json::to_vec(&v).unwrap_or_default();
    // Oversize payloads are slow to build; keep them to about 1 in 100.
    if g.chance(1, 3) {
        let w = break_text(g, &mut payload);
        if w == "oversize" && !g.chance(1, 3) {
            payload = serde_json::to_vec(&v).unwrap_or_default();
        } else {
            what.push(w);
        }
    }
    if what.is_empty() {
        what.push("unbroken");
    }
    Case {
        target,
        kind,
        payload,
        what: what.join(", "),
    }
}

// --- the two roles, set up by talking to each other ---------------------------------------

const SERVER_NAME_PREFIX: &str = "axon";

struct Pair {
    server: McpServer,
    client: McpClient,
    board: Box<dyn Profile>,
    env: Env,
}

fn inbound(p: &axon_core::transport::link::Publish) -> Inbound {
    Inbound {
        topic: p.topic.clone(),
        payload: p.payload.clone(),
        retain: p.retain,
        user_properties: p.user_properties.clone(),
    }
}

thread_local! {
    /// The prepared pair of each kind: building one is the costly part of an input, and a
    /// clone is the same state, so every input still starts from the same place.
    static PREPARED: std::cell::RefCell<std::collections::HashMap<String, (McpServer, McpClient)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl Pair {
    /// A device of `kind` with `hub-1` initialized, and the Hub with `k1` ready and a ping in
    /// flight.
    fn prepared(kind: &str) -> Option<Pair> {
        let cached = PREPARED.with(|p| p.borrow().get(kind).cloned());
        let (server, client) = match cached {
            Some(roles) => roles,
            None => {
                let pair = Pair::new(kind)?;
                let roles = (pair.server, pair.client);
                PREPARED.with(|p| p.borrow_mut().insert(kind.to_string(), roles.clone()));
                roles
            }
        };
        Some(Pair {
            server,
            client,
            board: profiles::profile(kind)?,
            env: Env {
                rng: Rng::new(1),
                fault_rate: 0.0,
            },
        })
    }

    fn new(kind: &str) -> Option<Pair> {
        let board = profiles::profile(kind)?;
        let id = DeviceId::new("k1").ok()?;
        let config = DeviceConfig::new(id, kind, board.description(), board.tools());
        let server = McpServer::new(config).ok()?;
        let client = McpClient::new(ClientConfig::new("hub-1", 1));
        let mut pair = Pair {
            server,
            client,
            board,
            env: Env {
                rng: Rng::new(1),
                fault_rate: 0.0,
            },
        };
        pair.server.handle_connected(t(0), &Connack::default());
        pair.client.handle_connected(t(0), &Connack::default());
        pair.exchange(t(0));
        pair.client.request(t(1), "k1", "ping", None, None).ok()?;
        // The ping stays in flight: its request is not delivered.
        while pair.client.poll_transmit().is_some() {}
        while pair.client.poll_event().is_some() {}
        Some(pair)
    }

    /// Delivers everything each side sends to the other (acknowledging subscriptions at once)
    /// until both are quiet; runs tool calls on the board.
    fn exchange(&mut self, now: Timestamp) {
        for _ in 0..100 {
            let mut busy = false;
            while let Some(tx) = self.server.poll_transmit() {
                busy = true;
                match tx {
                    Transmit::Subscribe { token, .. } => self.server.handle_subscribed(now, token),
                    Transmit::Publish(p) => self.client.handle_message(now, &inbound(&p)),
                    Transmit::Unsubscribe { .. } => {}
                }
            }
            while let Some(tx) = self.client.poll_transmit() {
                busy = true;
                match tx {
                    Transmit::Subscribe { token, .. } => self.client.handle_subscribed(now, token),
                    Transmit::Publish(p) => self.server.handle_message(now, &inbound(&p)),
                    Transmit::Unsubscribe { .. } => {}
                }
            }
            while let Some(ev) = self.server.poll_event() {
                busy = true;
                if let ServerEvent::ToolCall {
                    call,
                    name,
                    arguments,
                } = ev
                {
                    let r = self.board.call(&name, &arguments, &mut self.env);
                    self.server.handle_tool_result(now, call, r);
                }
            }
            while self.client.poll_event().is_some() {
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }
}

fn control_topic(kind: &str) -> String {
    topics::control("k1", &format!("{SERVER_NAME_PREFIX}/{kind}/k1"))
}

fn rpc_topic(client: &str, kind: &str) -> String {
    topics::rpc(client, "k1", &format!("{SERVER_NAME_PREFIX}/{kind}/k1"))
}

/// What the server or client did with one payload.
#[derive(Debug, Default)]
struct Seen {
    /// Responses published on an RPC topic.
    answers: Vec<Message>,
    /// Payloads published on an RPC topic that are not JSON-RPC responses.
    odd: Vec<String>,
    /// Rejected events (server) as messages.
    rejected: Vec<String>,
    /// The Hub's in-flight ping was answered.
    pending_answered: bool,
}

fn record_publish(seen: &mut Seen, p: &axon_core::transport::link::Publish) {
    if !p.topic.starts_with("$mcp-rpc/") {
        return;
    }
    match jsonrpc::parse(&p.payload) {
        Ok(m @ Message::Response(_)) => seen.answers.push(m),
        Ok(other) => {
            // A device answering a request with a request or notification is not an answer,
            // but the Hub's own notifications (initialized, cancelled) are not answers either.
            if let Message::Notification(n) = &other {
                if n.method.starts_with("notifications/") {
                    return;
                }
            }
            seen.odd.push(format!("{other:?}"));
        }
        Err(e) => seen.odd.push(format!("unparseable: {}", e.error.message)),
    }
}

fn feed_server(pair: &mut Pair, case: &Case) -> Seen {
    let now = t(2);
    let (topic, client) = match case.target {
        Target::ServerControl => (control_topic(case.kind), "hub-2"),
        _ => (rpc_topic("hub-1", case.kind), "hub-1"),
    };
    pair.server.handle_message(
        now,
        &Inbound {
            topic,
            payload: case.payload.clone(),
            retain: false,
            user_properties: vec![
                (
                    topics::PROP_COMPONENT_TYPE.into(),
                    topics::COMPONENT_CLIENT.into(),
                ),
                (topics::PROP_CLIENT_ID.into(), client.into()),
            ],
        },
    );
    let mut seen = Seen::default();
    for _ in 0..10 {
        let mut busy = false;
        while let Some(tx) = pair.server.poll_transmit() {
            busy = true;
            match tx {
                Transmit::Subscribe { token, .. } => pair.server.handle_subscribed(now, token),
                Transmit::Publish(p) => record_publish(&mut seen, &p),
                Transmit::Unsubscribe { .. } => {}
            }
        }
        while let Some(ev) = pair.server.poll_event() {
            busy = true;
            match ev {
                ServerEvent::ToolCall {
                    call,
                    name,
                    arguments,
                } => {
                    let r = pair.board.call(&name, &arguments, &mut pair.env);
                    pair.server.handle_tool_result(now, call, r);
                }
                ServerEvent::Rejected { error, .. } => seen.rejected.push(error.message),
                _ => {}
            }
        }
        if !busy {
            break;
        }
    }
    seen
}

fn feed_client(pair: &mut Pair, case: &Case) -> Seen {
    let now = t(2);
    pair.client.handle_message(
        now,
        &Inbound {
            topic: rpc_topic("hub-1", case.kind),
            payload: case.payload.clone(),
            retain: false,
            user_properties: vec![
                (
                    topics::PROP_COMPONENT_TYPE.into(),
                    topics::COMPONENT_SERVER.into(),
                ),
                (topics::PROP_CLIENT_ID.into(), "k1".into()),
            ],
        },
    );
    let mut seen = Seen::default();
    while let Some(tx) = pair.client.poll_transmit() {
        if let Transmit::Publish(p) = tx {
            record_publish(&mut seen, &p);
        }
    }
    while let Some(ev) = pair.client.poll_event() {
        if let ClientEvent::Response {
            handle: RequestHandle(_),
            ..
        } = ev
        {
            seen.pending_answered = true;
        }
    }
    seen
}

// --- the oracle -----------------------------------------------------------------------------

/// What the payload is, read independently of `axon-core`'s parser.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Oversize,
    NotJson,
    NotObject,
    /// Request-shaped (a method and an id) but breaks the envelope; the id if readable.
    BadRequest(Option<RequestId>),
    /// A malformed response or notification.
    BadOther,
    Request(RequestId, String),
    Notification,
    Response(Option<RequestId>),
}

fn readable_id(v: &Value) -> Option<RequestId> {
    match v {
        Value::String(s) => Some(RequestId::String(s.clone())),
        Value::Number(n) => n.as_i64().map(RequestId::Number),
        _ => None,
    }
}

fn shape(payload: &[u8], size_limit: bool) -> Shape {
    if size_limit && payload.len() > MAX_RPC_PAYLOAD {
        return Shape::Oversize;
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return Shape::NotJson;
    };
    let Value::Object(o) = v else {
        return Shape::NotObject;
    };
    let raw_id = o.get("id");
    let id = raw_id.and_then(readable_id);
    let has_method = o.contains_key("method");
    let request_shaped = has_method && raw_id.is_some();
    let bad = |request_shaped: bool| {
        if request_shaped {
            Shape::BadRequest(id.clone())
        } else {
            Shape::BadOther
        }
    };
    if o.get("jsonrpc") != Some(&json!("2.0")) {
        return bad(request_shaped);
    }
    if has_method {
        let Some(Value::String(method)) = o.get("method") else {
            return bad(request_shaped);
        };
        if o.get("params")
            .is_some_and(|p| !(p.is_object() || p.is_array()))
        {
            return bad(request_shaped);
        }
        return match (raw_id, &id) {
            (None, _) => Shape::Notification,
            (Some(_), None) => Shape::BadRequest(None),
            (Some(_), Some(id)) => Shape::Request(id.clone(), method.clone()),
        };
    }
    let valid_error = |e: &Value| {
        e.get("code").and_then(Value::as_i64).is_some()
            && e.get("message").is_some_and(Value::is_string)
    };
    match (o.get("result"), o.get("error")) {
        (Some(_), None) => Shape::Response(id),
        (None, Some(e)) if valid_error(e) => Shape::Response(id),
        _ => Shape::BadOther,
    }
}

/// What must come back.
#[derive(Debug)]
enum Expect {
    /// One response with this id (`None`: any id) and a result (when `result_ok`) or one of
    /// these error codes.
    Answer {
        id: Option<Option<RequestId>>,
        result_ok: bool,
        codes: &'static [i64],
    },
    /// No response. `rejected`: the device must report it as a Rejected event.
    Silent { why: &'static str, rejected: bool },
    /// A `-32600` answer (when a cheap id was found) or a Rejected event.
    AnswerOrRejected,
    /// The Hub's in-flight request is answered (no response goes out).
    PendingAnswered,
}

fn server_method(method: &str) -> (bool, &'static [i64]) {
    match method {
        "ping" | "resources/list" | "resources/templates/list" => (true, &[]),
        "tools/list" => (true, &[-32602]),
        // -32600: a result over the payload limit.
        "tools/call" => (true, &[-32602, -32600]),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            (true, &[-32602, -32002])
        }
        "initialize" => (false, &[-32600]),
        _ => (false, &[-32601]),
    }
}

fn expect(case: &Case) -> Expect {
    use Expect::*;
    let exact = |id: Option<RequestId>| Some(id);
    let s = shape(&case.payload, case.target != Target::ClientRpc);
    match (case.target, s) {
        (Target::ServerRpc, Shape::Oversize) => Answer {
            id: None,
            result_ok: false,
            codes: &[-32600],
        },
        (Target::ServerControl, Shape::Oversize) => AnswerOrRejected,
        (Target::ServerControl, Shape::NotJson | Shape::NotObject | Shape::BadRequest(None)) => {
            Silent {
                why: "a control message without a readable id: no topic to answer on",
                rejected: true,
            }
        }
        (_, Shape::NotJson) => Answer {
            id: exact(None),
            result_ok: false,
            codes: &[-32700],
        },
        (_, Shape::NotObject | Shape::BadRequest(None)) => Answer {
            id: exact(None),
            result_ok: false,
            codes: &[-32600],
        },
        (_, Shape::BadRequest(id)) => Answer {
            id: exact(id),
            result_ok: false,
            codes: &[-32600],
        },
        (Target::ClientRpc, Shape::BadOther) => Silent {
            why: "a malformed response or notification: never answered (§7)",
            rejected: false,
        },
        (_, Shape::BadOther) => Silent {
            why: "a malformed response or notification: never answered (§7)",
            rejected: true,
        },
        (Target::ServerControl, Shape::Request(id, m)) => Answer {
            id: exact(Some(id)),
            result_ok: m == "initialize",
            codes: if m == "initialize" {
                &[-32602]
            } else {
                &[-32600]
            },
        },
        (Target::ServerControl, _) => Silent {
            why: "a notification or response on the control topic: refused, not answered",
            rejected: true,
        },
        (Target::ServerRpc, Shape::Request(id, m)) => {
            let (result_ok, codes) = server_method(&m);
            Answer {
                id: exact(Some(id)),
                result_ok,
                codes,
            }
        }
        (Target::ClientRpc, Shape::Request(id, m)) => Answer {
            id: exact(Some(id)),
            result_ok: m == "ping",
            codes: if m == "ping" { &[] } else { &[-32601] },
        },
        (_, Shape::Notification) => Silent {
            why: "a notification: never answered",
            rejected: false,
        },
        (Target::ClientRpc, Shape::Response(Some(RequestId::Number(PENDING_ID)))) => {
            PendingAnswered
        }
        (Target::ClientRpc, Shape::Response(_)) => Silent {
            why: "a response to an id not in flight: dropped",
            rejected: false,
        },
        (_, Shape::Response(_)) => Silent {
            why: "a response: a device sends no requests, so no id of its is in flight",
            rejected: false,
        },
        (_, Shape::Oversize) => Silent {
            why: "unreachable",
            rejected: false,
        },
    }
}

fn code_kind(code: i64) -> &'static str {
    match code {
        -32700 => "-32700 parse error",
        -32600 => "-32600 invalid request",
        -32601 => "-32601 method not found",
        -32602 => "-32602 invalid params",
        -32002 => "-32002 resource not found",
        _ => "another code",
    }
}

/// Feeds one payload and checks what came back against the oracle.
pub fn check(case: &Case) -> Outcome {
    let Some(mut pair) = Pair::prepared(case.kind) else {
        return Outcome::Unclear(format!("could not set up a {} device", case.kind));
    };
    let seen = match case.target {
        Target::ClientRpc => feed_client(&mut pair, case),
        _ => feed_server(&mut pair, case),
    };
    if let Some(odd) = seen.odd.first() {
        return Outcome::Unclear(format!("published something that is not a response: {odd}"));
    }
    if let Some(r) = seen.rejected.iter().find(|r| !clear_message(r)) {
        return Outcome::Unclear(format!("a Rejected event without a message: {r:?}"));
    }
    let expected = expect(case);
    match expected {
        Expect::PendingAnswered => {
            if !seen.answers.is_empty() {
                return Outcome::Unclear(format!("answered a response: {:?}", seen.answers));
            }
            if seen.pending_answered {
                Outcome::Accepted("the response to the request in flight")
            } else {
                Outcome::Unclear("the response to the request in flight was lost".into())
            }
        }
        Expect::Silent { why, rejected } => {
            if !seen.answers.is_empty() {
                return Outcome::Unclear(format!(
                    "answered what must not be answered ({why}): {:?}",
                    seen.answers
                ));
            }
            match (rejected, seen.rejected.first()) {
                (true, None) => Outcome::Unclear(format!("{why}, but no Rejected event")),
                (_, Some(r)) => Outcome::Error {
                    kind: "refused with a Rejected event, not answered (§7)",
                    message: r.clone(),
                },
                (false, None) => Outcome::Ignored(why),
            }
        }
        Expect::AnswerOrRejected => match (seen.answers.as_slice(), seen.rejected.first()) {
            ([], Some(r)) => Outcome::Error {
                kind: "oversize on the control topic without an id: Rejected event",
                message: r.clone(),
            },
            ([Message::Response(r)], _) => match &r.outcome {
                Err(e) if e.code == -32600 && clear_message(&e.message) => Outcome::Error {
                    kind: "-32600 invalid request",
                    message: e.message.clone(),
                },
                other => Outcome::Unclear(format!("oversize answered with {other:?}")),
            },
            (answers, _) => Outcome::Unclear(format!("oversize: {answers:?}")),
        },
        Expect::Answer {
            id,
            result_ok,
            codes,
        } => {
            let [Message::Response(r)] = seen.answers.as_slice() else {
                return Outcome::Unclear(format!(
                    "expected one response (a result: {result_ok}, or one of {codes:?}), got {:?}",
                    seen.answers
                ));
            };
            if let Some(want) = id {
                if r.id != want {
                    return Outcome::Unclear(format!(
                        "answered with id {:?}, expected {want:?}",
                        r.id
                    ));
                }
            }
            match &r.outcome {
                Ok(_) if result_ok => Outcome::Accepted("answered with a result"),
                Err(e) if codes.contains(&e.code) && clear_message(&e.message) => Outcome::Error {
                    kind: code_kind(e.code),
                    message: e.message.clone(),
                },
                other => Outcome::Unclear(format!(
                    "answered {other:?}; expected a result: {result_ok}, or one of {codes:?}"
                )),
            }
        }
    }
}

/// Smaller payloads: halves and chunks removed.
pub fn smaller(case: &Case) -> Vec<Case> {
    let n = case.payload.len();
    let mut out = Vec::new();
    let mut size = n / 2;
    while size > 0 && out.len() < 64 {
        for start in (0..n).step_by(size) {
            let mut p = case.payload.clone();
            p.drain(start..(start + size).min(n));
            out.push(Case {
                payload: p,
                ..case.clone()
            });
        }
        size /= 2;
    }
    out
}

/// The input as text.
pub fn describe(case: &Case) -> String {
    let text = String::from_utf8_lossy(&case.payload);
    let shown = if text.len() > 800 {
        let mut at = 800;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}… ({} bytes)", &text[..at], case.payload.len())
    } else {
        text.to_string()
    };
    format!(
        "{:?} of a {} device; payload {:?}; made as: {}",
        case.target, case.kind, shown, case.what
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(target: Target, payload: &[u8]) -> Case {
        Case {
            target,
            kind: "lamp",
            payload: payload.to_vec(),
            what: "by hand".into(),
        }
    }

    #[test]
    fn the_oracle_reads_payloads_as_section_7_says() {
        let answer = |c: &Case| match expect(c) {
            Expect::Answer { id, codes, .. } => Some((id, codes.to_vec())),
            _ => None,
        };
        let c = case(Target::ClientRpc, b"}");
        assert_eq!(answer(&c), Some((Some(None), vec![-32700])));
        let c = case(
            Target::ServerRpc,
            br#"{"jsonrpc":"2.0","id":"x","method":"dance"}"#,
        );
        assert_eq!(
            answer(&c),
            Some((Some(Some(RequestId::String("x".into()))), vec![-32601]))
        );
        let c = case(
            Target::ServerRpc,
            br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#,
        );
        assert_eq!(
            answer(&c),
            Some((Some(Some(RequestId::Number(7))), vec![-32600]))
        );
        for (target, payload) in [
            (
                Target::ServerControl,
                &br#"{"":{"":null},"id":4,"":""}"#[..],
            ),
            (Target::ServerRpc, br#"{"jsonrpc":"2.0","method":"x"}"#),
            (
                Target::ClientRpc,
                br#"{"jsonrpc":"2.0","id":99,"result":{}}"#,
            ),
        ] {
            assert!(
                matches!(expect(&case(target, payload)), Expect::Silent { .. }),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        assert!(matches!(
            expect(&case(
                Target::ClientRpc,
                br#"{"jsonrpc":"2.0","id":3,"result":{}}"#
            )),
            Expect::PendingAnswered
        ));
    }

    #[test]
    fn the_inputs_that_found_bugs_now_get_clear_outcomes() {
        // The Hub used to drop these silently; the device used to answer the third.
        for (target, payload, kind) in [
            (Target::ClientRpc, &b"}"[..], "-32700 parse error"),
            (Target::ClientRpc, b"]", "-32700 parse error"),
            (
                Target::ServerControl,
                br#"{"":{"":null},"id":4,"":""}"#,
                "refused with a Rejected event, not answered (§7)",
            ),
        ] {
            let got = check(&case(target, payload));
            assert!(
                matches!(&got, Outcome::Error { kind: k, .. } if *k == kind),
                "{got:?}"
            );
        }
        let got = check(&case(
            Target::ClientRpc,
            br#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
        ));
        assert_eq!(
            got,
            Outcome::Accepted("the response to the request in flight")
        );
    }
}
