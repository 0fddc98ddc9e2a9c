//! The Hub Durable Object: one per site. It owns the site's broker connection (MQTT 5 over an
//! outbound WebSocket), drives `axon-core`'s MQTT session and MCP client, keeps the registry
//! and the telemetry windows, runs agent turns ([`crate::chat`]) and the `/mcp` endpoint
//! ([`crate::mcp_http`]), and streams live updates ([`crate::events`]).
//!
//! Protocol decisions stay in `axon-core`; this file only moves bytes, time and requests
//! between the WebSocket, timers and HTTP. A call that finds no broker fails at once with
//! `-32013`; one that finds no device fails with `-32010`; none waits longer than the
//! client's deadline.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use axon_core::jsonrpc::{code, ErrorObject};
use axon_core::link::{QoS, Subscription};
use axon_core::mcp::client::{ClientConfig, ClientEvent, DeviceState, McpClient, RequestHandle};
use axon_core::mcp::types::Implementation;
use axon_core::mqtt::{Session, SessionConfig, SessionEvent, SessionState};
use axon_core::telemetry::{Severity, TelemetryStore, TelemetryUpdate};
use axon_core::time::{earliest, Rng, Timestamp};
use axon_core::tool::effective_permission;
use futures_channel::{mpsc, oneshot};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State, WebSocket,
    WebsocketEvent,
};

use crate::config::Config;
use crate::events::{frame, sse_response, Broadcast};

type Reply = oneshot::Sender<std::result::Result<Value, ErrorObject>>;

/// Telemetry kept per device: samples and how far back.
const WINDOW_SAMPLES: usize = 120;
const WINDOW_AGE_MS: u64 = 10 * 60 * 1000;
const MAX_DEVICES: usize = 10_000;

/// The Hub's live state, shared by the link loop and the request handlers (one thread).
pub struct Link {
    session: Session,
    pub client: McpClient,
    ws: Option<WebSocket>,
    waiting: HashMap<RequestHandle, Reply>,
    pub rng: Rng,
    site: String,
    last_error: Option<String>,
    pub telemetry: TelemetryStore,
    /// `/api/events` subscribers.
    pub events: Broadcast,
    /// `/mcp` GET streams.
    pub mcp_streams: Broadcast,
    /// `/mcp` sessions (Mcp-Session-Id).
    pub mcp_sessions: HashSet<String>,
    /// Tool calls waiting for a person, by call id.
    pub confirmations: HashMap<String, oneshot::Sender<bool>>,
}

pub fn now() -> Timestamp {
    Timestamp::from_millis(js_sys::Date::now() as u64)
}

fn random_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64 ^ (js_sys::Date::now() as u64)
}

impl Link {
    fn new(site: String) -> Link {
        let mut rng = Rng::new(random_seed());
        let client = McpClient::new(Self::client_config(&site, &mut rng));
        let session = Session::new(SessionConfig::new(client.connect_options(), rng.next_u64()));
        Link {
            session,
            client,
            ws: None,
            waiting: HashMap::new(),
            rng,
            site,
            last_error: None,
            telemetry: TelemetryStore::new(MAX_DEVICES, WINDOW_SAMPLES, WINDOW_AGE_MS),
            events: Broadcast::default(),
            mcp_streams: Broadcast::default(),
            mcp_sessions: HashSet::new(),
            confirmations: HashMap::new(),
        }
    }

    /// The Hub's client id is fresh for every connection (docs/protocol.md §2.3).
    fn client_config(site: &str, rng: &mut Rng) -> ClientConfig {
        let mut c = ClientConfig::new(format!("axon-hub.{site}.{}", rng.hex(4)), rng.next_u64());
        c.site = site.to_string();
        c.client_info = Implementation {
            name: "axon-hub".into(),
            title: Some("Axon Hub".into()),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        c
    }

    /// Moves everything between the session, the client and the socket until all is quiet.
    /// Returns true if the session asked for a new transport.
    fn pump(&mut self) -> bool {
        let mut open = false;
        loop {
            let mut busy = false;
            while let Some(ev) = self.session.poll_event() {
                busy = true;
                let t = now();
                match ev {
                    SessionEvent::OpenTransport => open = true,
                    SessionEvent::CloseTransport => {
                        if let Some(ws) = self.ws.take() {
                            let _ = ws.close(Some(1000), Some("closing"));
                        }
                    }
                    SessionEvent::Connected { connack, .. } => {
                        self.last_error = None;
                        self.client.handle_connected(t, &connack);
                        let subs = TelemetryStore::filters()
                            .iter()
                            .map(|f| Subscription {
                                filter: f.to_string(),
                                qos: QoS::AtLeastOnce,
                                no_local: false,
                            })
                            .collect();
                        if let Err(e) = self.session.subscribe(t, subs) {
                            self.last_error = Some(format!("cannot subscribe to telemetry: {e}"));
                        }
                    }
                    SessionEvent::Message(m) if m.topic.starts_with("axon/") => {
                        self.handle_telemetry(&m.topic, &m.payload)
                    }
                    SessionEvent::Message(m) => self.client.handle_message(t, &m),
                    SessionEvent::Subscribed {
                        token: Some(token), ..
                    } => self.client.handle_subscribed(t, token),
                    SessionEvent::Disconnected { reason, .. } => {
                        self.last_error = Some(reason);
                        self.client.handle_disconnected(t);
                        // A fresh client id for the next connection.
                        let cid = Self::client_config(&self.site, &mut self.rng).client_id;
                        self.client.set_client_id(cid);
                        self.session
                            .set_connect_options(self.client.connect_options());
                    }
                    SessionEvent::ConnectRefused { reason, .. } => {
                        self.last_error = Some(format!("broker refused the connection: {reason}"))
                    }
                    SessionEvent::PublishAcked { reason_code, .. } if reason_code >= 0x80 => {
                        self.last_error = Some(format!(
                            "broker refused a publish (reason 0x{reason_code:02x}): check the ACL"
                        ));
                    }
                    _ => {}
                }
            }
            while let Some(t) = self.client.poll_transmit() {
                busy = true;
                if let Err(e) = self.session.transmit(now(), t) {
                    self.last_error = Some(e.to_string());
                }
            }
            while let Some(ev) = self.client.poll_event() {
                busy = true;
                self.handle_client_event(ev);
            }
            while let Some(bytes) = self.session.poll_transmit() {
                busy = true;
                if let Some(ws) = &self.ws {
                    if ws.send_with_bytes(&bytes).is_err() {
                        self.ws = None;
                        self.session.handle_transport_closed(now());
                    }
                }
            }
            if !busy {
                return open;
            }
        }
    }

    fn handle_client_event(&mut self, ev: ClientEvent) {
        let (device, state, list_changed) = match ev {
            ClientEvent::Response { handle, outcome } => {
                if let Some(reply) = self.waiting.remove(&handle) {
                    let _ = reply.send(outcome);
                }
                return;
            }
            ClientEvent::DeviceOnline { server_id } => (server_id, "online", false),
            ClientEvent::DeviceReady { server_id } => (server_id, "ready", true),
            ClientEvent::ToolsChanged { server_id } => (server_id, "tools_changed", true),
            ClientEvent::DeviceOffline { server_id } => (server_id, "offline", true),
            ClientEvent::DeviceUnreachable { server_id, .. } => (server_id, "unreachable", true),
            ClientEvent::ResourceUpdated { .. } => return,
        };
        let title = self
            .client
            .device(&device)
            .and_then(|d| d.meta.title.clone());
        self.events.send(frame(
            "presence",
            &json!({"device": device, "state": state, "title": title, "ts": now().as_millis()}),
        ));
        if list_changed {
            self.mcp_streams
                .send(frame("message", &axon_core::mcp::gateway::list_changed()));
        }
    }

    fn handle_telemetry(&mut self, topic: &str, payload: &[u8]) {
        match self.telemetry.handle(topic, payload) {
            Ok(Some(TelemetryUpdate::Sample { device, sample })) => self.events.send(frame(
                "telemetry",
                &json!({"device": device, "ts": sample.ts, "metrics": sample.metrics}),
            )),
            Ok(Some(TelemetryUpdate::Event { device, event })) => {
                self.events.send(frame(
                    "device_event",
                    &json!({"device": device, "event": event}),
                ));
                // Proactive: the agent tells whoever is watching about warnings and worse.
                if event.severity != Severity::Info {
                    let title = self
                        .client
                        .device(&device)
                        .and_then(|d| d.meta.title.clone())
                        .unwrap_or_else(|| device.clone());
                    self.events.send(frame(
                        "agent_notice",
                        &json!({
                            "device": device,
                            "severity": event.severity,
                            "kind": event.kind,
                            "text": format!("Heads up: {title} reports {}: {}", event.kind.replace('_', " "), event.message),
                        }),
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => self.last_error = Some(format!("bad telemetry on {topic}: {e}")),
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        earliest(self.session.poll_timeout(), self.client.poll_timeout())
    }

    fn fire_timeouts(&mut self) {
        let t = now();
        if self.session.poll_timeout().is_some_and(|d| d <= t) {
            self.session.handle_timeout(t);
        }
        if self.client.poll_timeout().is_some_and(|d| d <= t) {
            self.client.handle_timeout(t);
        }
    }
}

/// What every request handler and spawned task of a Hub shares.
pub struct Shared {
    pub link: Rc<RefCell<Link>>,
    kick: RefCell<Option<mpsc::UnboundedSender<()>>>,
    pub config: Config,
    pub env: Env,
    pub sql: SqlStorage,
    turns: Cell<u64>,
    /// When this Hub instance started (its registry is empty until discovery has run).
    pub started: Timestamp,
}

pub type Ctx = Rc<Shared>;

/// The site's Hub.
#[durable_object]
pub struct Hub {
    ctx: Ctx,
}

impl DurableObject for Hub {
    fn new(state: State, env: Env) -> Self {
        let config = Config::from_env(&env);
        let sql = state.storage().sql();
        if let Err(e) = crate::memory::Memory::create_tables(&sql) {
            worker::console_error!("memory tables: {e}");
        }
        Hub {
            ctx: Rc::new(Shared {
                link: Rc::new(RefCell::new(Link::new(config.site.clone()))),
                kick: RefCell::new(None),
                config,
                env,
                sql,
                turns: Cell::new(0),
                started: now(),
            }),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let ctx = &self.ctx;
        ctx.ensure_running();
        let path = req.path();
        if path == "/mcp" {
            return crate::mcp_http::handle(ctx, req).await;
        }
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), parts.as_slice()) {
            (worker::Method::Get, ["healthz"]) => ctx.healthz(),
            (worker::Method::Get, ["api", "devices"]) => {
                let link = ctx.link.borrow();
                let devices: Vec<&axon_core::mcp::client::DeviceInfo> =
                    link.client.devices().collect();
                Response::from_json(&json!({ "devices": devices }))
            }
            (worker::Method::Get, ["api", "devices", id]) => ctx.device_detail(id),
            (worker::Method::Post, ["api", "devices", id, "tools", tool]) => {
                ctx.tool_route(req, id, tool).await
            }
            (worker::Method::Post, ["api", "chat"]) => crate::chat::start(ctx, req).await,
            (worker::Method::Get, ["api", "voice"]) => crate::voice::handle(ctx, req).await,
            (worker::Method::Post, ["api", "confirm"]) => crate::chat::confirm(ctx, req).await,
            (worker::Method::Get, ["api", "memory"]) => crate::chat::memory(ctx, &req, false),
            (worker::Method::Delete, ["api", "memory"]) => crate::chat::memory(ctx, &req, true),
            (worker::Method::Get, ["api", "events"]) => {
                let hello = {
                    let link = ctx.link.borrow();
                    let devices: Vec<Value> = link
                        .client
                        .devices()
                        .map(|d| json!({"device": d.server_id, "state": d.state, "title": d.meta.title, "room": d.meta.room, "kind": d.meta.kind}))
                        .collect();
                    frame("hello", &json!({"site": ctx.config.site, "devices": devices}))
                };
                let rx = ctx.link.borrow_mut().events.subscribe(vec![hello]);
                sse_response(rx)
            }
            _ => error_response(
                404,
                &ErrorObject::new(
                    code::METHOD_NOT_FOUND,
                    format!(
                        "no route {} {path}: see /healthz, /api/devices, /api/chat, /api/confirm, /api/events, /api/memory, /api/voice, /mcp",
                        req.method()
                    ),
                ),
            ),
        }
    }
}

pub fn error_response(status: u16, e: &ErrorObject) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": e }))?.with_status(status))
}

/// A 400 with a message a person can act on.
pub fn bad_request(message: impl Into<String>) -> Result<Response> {
    error_response(400, &ErrorObject::new(code::INVALID_REQUEST, message))
}

/// Reads a JSON object body, or says what is wrong with it.
pub async fn json_body(req: &mut Request, limit: usize) -> std::result::Result<Value, String> {
    let bytes = req
        .bytes()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?;
    if bytes.len() > limit {
        return Err(format!(
            "the body is {} bytes; the limit is {limit}",
            bytes.len()
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty; send a JSON object".into());
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("the body must be a JSON object".into());
    }
    Ok(v)
}

/// The HTTP status of a Hub error.
pub fn status_of(e: &ErrorObject) -> u16 {
    match e.code {
        code::DEVICE_OFFLINE => 404,
        code::INVALID_PARAMS | code::INVALID_REQUEST | code::PARSE_ERROR => 400,
        code::DENIED => 403,
        code::REQUEST_TIMEOUT => 504,
        code::BROKER_UNAVAILABLE => 503,
        _ => 502,
    }
}

fn speech_json(p: &crate::config::SpeechProvider) -> Value {
    match p {
        crate::config::SpeechProvider::Http {
            name,
            base_url,
            model,
            ..
        } => json!({"provider": name, "url": base_url, "model": model}),
        crate::config::SpeechProvider::WorkersAi { model } => {
            json!({"provider": "workers-ai", "model": model})
        }
    }
}

impl Shared {
    /// Starts the link loop once per Durable Object instance.
    fn ensure_running(&self) {
        if self.kick.borrow().is_some() {
            return;
        }
        let (tx, rx) = mpsc::unbounded();
        *self.kick.borrow_mut() = Some(tx);
        let link = self.link.clone();
        let url = self.config.broker_url.clone();
        wasm_bindgen_futures::spawn_local(run_link(link, url, rx));
    }

    /// A Hub that has just started has not discovered the site yet: wait (3 s at most, and
    /// only in its first 10 s) until the broker link is up and every device it has heard of
    /// is initialized, so the first request does not find an empty home.
    pub async fn settle_discovery(&self) {
        use axon_core::mcp::client::DeviceState as S;
        if now().saturating_since(self.started) > Duration::from_secs(10) {
            return;
        }
        for _ in 0..30 {
            let settled = {
                let link = self.link.borrow();
                link.session.state() == SessionState::Connected
                    && link.client.devices().count() > 0
                    && !link
                        .client
                        .devices()
                        .any(|d| matches!(d.state, S::Initializing | S::Unknown))
            };
            if settled {
                return;
            }
            worker::Delay::from(Duration::from_millis(100)).await;
        }
    }

    /// A fresh id for a turn (unique within this Hub instance).
    pub fn next_turn_id(&self) -> String {
        let n = self.turns.get() + 1;
        self.turns.set(n);
        let salt = self.link.borrow_mut().rng.hex(3);
        format!("t{n}{salt}")
    }

    fn healthz(&self) -> Result<Response> {
        let link = self.link.borrow();
        let devices = link.client.devices().count();
        let ready = link
            .client
            .devices()
            .filter(|d| d.state == DeviceState::Ready)
            .count();
        Response::from_json(&json!({
            "ok": true,
            "site": self.config.site,
            "broker": match link.session.state() {
                SessionState::Connected => "connected",
                SessionState::Connecting | SessionState::Opening => "connecting",
                SessionState::WaitingToReconnect => "reconnecting",
                SessionState::Closed => "closed",
            },
            "broker_url": self.config.broker_url,
            "last_error": link.last_error,
            "config_problem": self.config.problem,
            "devices": devices,
            "ready": ready,
            "llm": self.config.llm_name(),
            "model": self.config.model,
            "asr": speech_json(&self.config.asr),
            "tts": speech_json(&self.config.tts),
            "mcp": if self.config.mcp_token.is_some() { "enabled" } else { "disabled: set the AXON_MCP_TOKEN secret" },
            "event_streams": link.events.len(),
        }))
    }

    fn device_detail(&self, id: &str) -> Result<Response> {
        let link = self.link.borrow();
        let Some(d) = link.client.device(id) else {
            return error_response(
                404,
                &ErrorObject::new(
                    code::DEVICE_OFFLINE,
                    format!("unknown device {id}: GET /api/devices lists them"),
                ),
            );
        };
        let mut v = serde_json::to_value(d)?;
        let permissions: serde_json::Map<String, Value> = d
            .tools
            .iter()
            .map(|t| {
                let p = effective_permission(t, self.config.policy.get(id, &t.name));
                (t.name.clone(), json!(p))
            })
            .collect();
        let samples: Vec<&axon_core::telemetry::Telemetry> = link
            .telemetry
            .window(id)
            .map(|w| w.iter().collect())
            .unwrap_or_default();
        let events: Vec<&axon_core::telemetry::DeviceEvent> =
            link.telemetry.events_of(id).collect();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("permissions".into(), Value::Object(permissions));
            obj.insert("telemetry".into(), json!(samples));
            obj.insert("events".into(), json!(events));
        }
        Response::from_json(&v)
    }

    async fn tool_route(&self, mut req: Request, id: &str, tool: &str) -> Result<Response> {
        let text = req.text().await.unwrap_or_default();
        let args: Value = if text.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    return error_response(
                        400,
                        &ErrorObject::new(code::PARSE_ERROR, format!("the body is not JSON: {e}")),
                    )
                }
            }
        };
        // The console is a caller like any other: `deny` never runs, `confirm` belongs in chat.
        if let Some(t) = self
            .link
            .borrow()
            .client
            .device(id)
            .and_then(|d| d.tool(tool))
        {
            match effective_permission(t, self.config.policy.get(id, tool)) {
                axon_core::tool::Permission::Deny => {
                    return error_response(
                        403,
                        &ErrorObject::new(
                            code::DENIED,
                            format!("{id}.{tool} is denied by the site's policy"),
                        ),
                    )
                }
                axon_core::tool::Permission::Confirm
                    if req.headers().get("x-axon-confirmed").ok().flatten().as_deref()
                        != Some("yes") =>
                {
                    return error_response(
                        403,
                        &ErrorObject::new(
                            code::DENIED,
                            format!(
                                "{id}.{tool} needs a person's confirmation: send the header x-axon-confirmed: yes after asking"
                            ),
                        ),
                    )
                }
                _ => {}
            }
        }
        match self.call_tool(id, tool, args).await {
            Ok(result) => Response::from_json(&result),
            Err(e) => error_response(status_of(&e), &e),
        }
    }

    /// Calls a device tool through the MCP client: validated, with a deadline and a call-id.
    pub async fn call_tool(
        &self,
        device: &str,
        tool: &str,
        args: Value,
    ) -> std::result::Result<Value, ErrorObject> {
        let rx = {
            let mut link = self.link.borrow_mut();
            let handle = link
                .client
                .call_tool(now(), device, tool, args, Default::default())?;
            let (tx, rx) = oneshot::channel();
            link.waiting.insert(handle, tx);
            link.pump();
            rx
        };
        // Wake the loop so it arms the new deadline.
        if let Some(k) = self.kick.borrow().as_ref() {
            let _ = k.unbounded_send(());
        }
        rx.await.unwrap_or_else(|_| {
            Err(ErrorObject::new(
                code::BROKER_UNAVAILABLE,
                "the Hub's link stopped",
            ))
        })
    }
}

/// The link loop: connect, feed bytes and time to the session, reconnect on loss.
async fn run_link(link: Rc<RefCell<Link>>, url: String, mut kick: mpsc::UnboundedReceiver<()>) {
    loop {
        let open = link.borrow_mut().pump();
        if !open {
            // Not connected: wait for the session's next deadline (the backoff) or a kick.
            let wait = wait_time(&link);
            futures_util::select! {
                _ = worker::Delay::from(wait).fuse() => {}
                _ = kick.next() => {}
            }
            link.borrow_mut().fire_timeouts();
            continue;
        }
        let parsed = match url.parse() {
            Ok(u) => u,
            Err(e) => {
                link.borrow_mut().last_error =
                    Some(format!("AXON_BROKER_URL {url:?} is not a URL: {e}"));
                return;
            }
        };
        let ws = match WebSocket::connect_with_protocols(parsed, Some(vec!["mqtt"])).await {
            Ok(ws) => ws,
            Err(e) => {
                let mut l = link.borrow_mut();
                l.last_error = Some(format!("cannot reach the broker at {url}: {e}"));
                l.session.handle_transport_closed(now());
                continue;
            }
        };
        if ws.accept().is_err() {
            link.borrow_mut().session.handle_transport_closed(now());
            continue;
        }
        let mut events = match ws.events() {
            Ok(e) => e,
            Err(_) => {
                link.borrow_mut().session.handle_transport_closed(now());
                continue;
            }
        };
        {
            let mut l = link.borrow_mut();
            l.ws = Some(ws.clone());
            l.session.handle_transport_open(now());
        }
        loop {
            link.borrow_mut().pump();
            if link.borrow().ws.is_none() {
                break; // the session closed it
            }
            let wait = wait_time(&link);
            futures_util::select! {
                ev = events.next().fuse() => match ev {
                    Some(Ok(WebsocketEvent::Message(m))) => {
                        if let Some(bytes) = m.bytes() {
                            link.borrow_mut().session.handle_input(now(), &bytes);
                        }
                    }
                    Some(Ok(WebsocketEvent::Close(_))) | Some(Err(_)) | None => {
                        let mut l = link.borrow_mut();
                        l.ws = None;
                        l.session.handle_transport_closed(now());
                        break;
                    }
                },
                _ = worker::Delay::from(wait).fuse() => link.borrow_mut().fire_timeouts(),
                _ = kick.next() => {}
            }
        }
    }
}

fn wait_time(link: &Rc<RefCell<Link>>) -> Duration {
    let t = now();
    match link.borrow().next_deadline() {
        Some(d) => d.saturating_since(t).max(Duration::from_millis(1)),
        None => Duration::from_secs(30),
    }
}
