//! The virtual device (`/device`): this tab becomes an Axon device.
//!
//! Owns the tab's side of the product: a face on the screen, a text line, a speaker (Web
//! Audio), a camera (`getUserMedia`, with the user's permission), and the device's MCP server
//! over MQTT 5 over WebSocket, driven through `axon-core`'s `Endpoint` (its `Session` and `McpServer`)
//! like a physical board. It reconnects with the session's backoff and shows where it stands. The
//! protocol is axon-core's; this file only moves bytes, time and UI state.
//!
//! Its credential: a paired device's account kept in localStorage (`axon.device`: its broker
//! user and password, its worker token), else it pairs first (docs/security.md, "Pairing"): it
//! shows the worker's code until the owner enters it in the console (a tab of the signed-in
//! owner enters its own), then keeps what `/api/pair/collect` hands over. When this browser is
//! signed in, the owner's session cookie rides along on its requests too. It never sees the
//! owner token.

use std::cell::RefCell;
use std::rc::Rc;

use axon_core::endpoint::{Endpoint, EndpointEvent};
use axon_core::protocol::jsonrpc::json_text;
use axon_core::protocol::mcp::server::{DeviceConfig, McpServer, ServerEvent};
use axon_core::protocol::mcp::topics::{self, DeviceId};
use axon_core::protocol::mcp::types::{
    CallToolResult, ContentBlock, Implementation, Tool, ToolAnnotations, META_PERMISSION,
};
use axon_core::time::earliest;
use axon_core::transport::link::{Publish, QoS, Subscription};
use futures_channel::mpsc;
use futures_util::future::{self, Either};
use futures_util::StreamExt;
use leptos::prelude::*;
use serde_json::{json, Value};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::call::CallLink;
use crate::json::{object, Json};
use crate::util::{fetch_text, js_error, now, query, seed, set_token, sleep};
use crate::voice::{VoicePanel, VoiceUi};

/// The expressions the face can make (the planner knows the same words).
pub use axon_core::agent::planner::EXPRESSIONS;

/// Telemetry period.
const TELEMETRY_MS: u64 = 5000;

/// What the page shows, changed by tools and by the link.
#[derive(Clone, Copy)]
pub struct DeviceUi {
    pub status: RwSignal<String>,
    pub expression: RwSignal<String>,
    pub text: RwSignal<String>,
    pub volume: RwSignal<u32>,
    pub calls: RwSignal<u32>,
    pub last_call: RwSignal<String>,
    /// The microphone's loudest level (0–100) since the last telemetry sample; `None` while
    /// the microphone is off (no voice session), so a sample then carries no `mic_level_pct`.
    /// The page's voice panel shares it ([`VoiceUi::peak`]) and raises it with every frame.
    pub mic_peak: RwSignal<Option<u32>>,
}

impl DeviceUi {
    /// A fresh screen: neutral face, no text, volume 50 %.
    pub fn new() -> Self {
        DeviceUi {
            status: RwSignal::new("starting".into()),
            expression: RwSignal::new("neutral".into()),
            text: RwSignal::new(String::new()),
            volume: RwSignal::new(50),
            calls: RwSignal::new(0),
            last_call: RwSignal::new(String::new()),
            mic_peak: RwSignal::new(None),
        }
    }
}

impl Default for DeviceUi {
    fn default() -> Self {
        Self::new()
    }
}

fn tool(name: &str, title: &str, description: &str, schema: Value, read_only: bool) -> Tool {
    // Built as a struct, not parsed from a JSON literal: the page then carries no Tool
    // deserializer (the device only ever writes its tool table).
    let mut meta = serde_json::Map::new();
    meta.insert(META_PERMISSION.into(), "auto".into());
    Tool {
        name: name.into(),
        title: Some(title.into()),
        description: Some(description.into()),
        input_schema: schema,
        output_schema: None,
        annotations: Some(ToolAnnotations {
            title: None,
            read_only_hint: Some(read_only),
            destructive_hint: Some(false),
            idempotent_hint: Some(true),
            open_world_hint: Some(false),
        }),
        meta: Some(meta),
    }
}

/// A tool's input schema from its JSON text: parsed, not built with `json!`, which expands
/// every node of a literal into code (the page carries the JSON parser anyway). The texts are
/// constants, checked by the browser test that pins the tool table.
fn schema(text: &[u8]) -> Value {
    serde_json::from_slice(text).unwrap_or(Value::Null)
}

/// The virtual device's tools.
pub fn tools() -> Vec<Tool> {
    vec![
        tool(
            "show_text",
            "Show text",
            "Show a line of text on the screen",
            schema(br#"{"type":"object","properties":{"text":{"type":"string","maxLength":200}},"required":["text"],"additionalProperties":false}"#),
            false,
        ),
        tool(
            "set_expression",
            "Set expression",
            "Change the face on the screen",
            {
                let mut s = schema(br#"{"type":"object","properties":{"expression":{"type":"string"}},"required":["expression"],"additionalProperties":false}"#);
                s["properties"]["expression"]["enum"] = EXPRESSIONS.to_vec().into();
                s
            },
            false,
        ),
        tool(
            "set_volume",
            "Set volume",
            "Set the speaker volume in percent",
            schema(br#"{"type":"object","properties":{"level":{"type":"integer","minimum":0,"maximum":100}},"required":["level"],"additionalProperties":false}"#),
            false,
        ),
        tool(
            "play_tone",
            "Play a tone",
            "Play a sine tone on the speaker",
            schema(br#"{"type":"object","properties":{"frequency_hz":{"type":"integer","minimum":50,"maximum":4000},"duration_ms":{"type":"integer","minimum":10,"maximum":3000}},"required":["frequency_hz","duration_ms"],"additionalProperties":false}"#),
            false,
        ),
        tool(
            "take_photo",
            "Take a photo",
            "Take a photo with the camera (JPEG, the user must allow the camera)",
            schema(br#"{"type":"object","properties":{},"additionalProperties":false}"#),
            true,
        ),
        tool(
            "get_state",
            "Read state",
            "The screen's text, expression and volume",
            schema(br#"{"type":"object","properties":{},"additionalProperties":false}"#),
            true,
        ),
    ]
}

/// This tab's device id: `?id=`, else its paired account's, else one remembered in
/// localStorage, else a fresh one (`web-` and 8 hex digits), which it proposes when pairing.
pub fn device_id(paired: Option<&Json>) -> String {
    if let Some(id) = query("id") {
        return id;
    }
    if let Some(id) = paired.and_then(|c| c.get("device").as_str()) {
        return id;
    }
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    if let Some(id) = storage
        .as_ref()
        .and_then(|s| s.get_item("axon-device-id").ok().flatten())
    {
        return id;
    }
    let id = format!("web-{:08x}", seed() & 0xffff_ffff);
    if let Some(s) = storage {
        let _ = s.set_item("axon-device-id", &id);
    }
    id
}

/// The broker's WebSocket URL: `?broker=`, else port 8083 on the page's host.
pub fn broker_url() -> String {
    query("broker").unwrap_or_else(|| {
        let host = web_sys::window()
            .and_then(|w| w.location().hostname().ok())
            .unwrap_or_else(|| "127.0.0.1".into());
        format!("ws://{host}:8083/mqtt")
    })
}

/// Where the paired account lives: the JSON `/api/pair/collect` handed over (`device`, `kind`,
/// `site`, `username`, `password`, `token`).
const ACCOUNT_KEY: &str = "axon.device";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The paired account kept in localStorage, if any (read with the browser's JSON).
pub fn stored_account() -> Option<Json> {
    let text = storage()?.get_item(ACCOUNT_KEY).ok()??;
    let account = Json::parse(&text);
    account.get("password").as_str().map(|_| account)
}

/// The message of a refusal from the worker (`error.message`), else the status; status 0 is
/// a failed fetch, whose text says why.
fn refusal(status: u16, answer: &str) -> String {
    match Json::parse(answer).at(&["error", "message"]).as_str() {
        Some(m) => m,
        None if status == 0 => answer.into(),
        None => format!("HTTP {status}"),
    }
}

/// Pairs this tab as `id`: asks for a code, shows it on the screen (as a board would on its
/// display) until the owner enters it in the console, polling every 2 s, keeps the account in
/// localStorage and returns it. An expired code is replaced by a new one; a refusal is shown
/// and asked again after a while. A tab of the signed-in owner enters its own code: the owner
/// is here, and every device, a tab included, has its own broker account.
pub async fn pair(ui: DeviceUi, id: &str, owner_here: bool) -> Json {
    let ask = object(&[
        ("device", JsValue::from_str(id)),
        ("kind", JsValue::from_str("virtual")),
    ]);
    // The ticket to collect with, once the worker gave a code; one request a turn (one fetch
    // in this future, not one per step: the page's size, docs/web-size.md).
    let mut ticket: Option<String> = None;
    loop {
        let (url, body) = match &ticket {
            None => ("/api/pair", &ask),
            Some(t) => ("/api/pair/collect", t),
        };
        let (status, text) = fetch_text("POST", url, Some(body))
            .await
            .unwrap_or_else(|e| (0, e));
        let answer = Json::parse(&text);
        let mut wait = 2000;
        match (ticket.is_some(), status) {
            (false, 200) => {
                ticket = Some(object(&[
                    ("pair_id", answer.get("pair_id").as_js()),
                    ("secret", answer.get("secret").as_js()),
                ]));
                ui.text.set(answer.get("code").str_or_empty());
                ui.status
                    .set("not paired: enter the code on the screen in the Axon console".into());
                if owner_here {
                    let code = object(&[("code", answer.get("code").as_js())]);
                    let _ = fetch_text("POST", "/api/pair/approve", Some(&code)).await;
                    wait = 0;
                }
            }
            (true, 200) if answer.get("password").as_str().is_some() => {
                if let Some(s) = storage() {
                    let _ = s.set_item(ACCOUNT_KEY, &text);
                }
                ui.text.set(String::new());
                return answer;
            }
            // Waiting; polled too often (the worker counts polls with pairing requests); or
            // the network: ask again.
            (true, 200 | 429 | 0) => {}
            (true, 410) => {
                ui.status.set("code expired — getting a new one".into());
                ticket = None;
                wait = 0;
            }
            _ => {
                ui.text.set(String::new());
                ui.status
                    .set(format!("cannot pair: {}", refusal(status, &text)));
                ticket = None;
                wait = 10_000;
            }
        }
        sleep(wait).await;
    }
}

/// Finds the tab's credential (see the module's doc), pairing first if it has none, then
/// starts the device ([`run`], a task of its own: awaited here, its state machine would be
/// built into this one's, 1.6 KB more of the page).
pub async fn start(ui: DeviceUi, id: String, url: String, stored: Option<Json>, link: Link) {
    let signed_in = matches!(fetch_text("GET", "/api/session", None).await, Ok((200, _)));
    let account = match stored.filter(|a| a.get("device").as_str().as_deref() == Some(&id)) {
        Some(a) => Some(a),
        None => Some(pair(ui, &id, signed_in).await),
    };
    if !signed_in {
        set_token(account.as_ref().and_then(|a| a.get("token").as_str()));
    }
    leptos::task::spawn_local(run(ui, id, url, account, link));
}

/// What the device's loop shares with the page: its input (the page's calls publish through
/// it) and the calls' signalling, which rides on the device's MQTT session.
pub struct Link {
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    call: Option<CallLink>,
}

impl Link {
    /// A fresh link for device `id`; `call` is `None` for an id that is not a device id (the
    /// loop then says so and stops).
    pub fn new(id: &str) -> Link {
        let (tx, rx) = mpsc::unbounded::<Input>();
        let publish = tx.clone();
        let call = DeviceId::new(id).ok().map(|d| {
            CallLink::new(d, move |topic, payload| {
                let _ = publish.unbounded_send(Input::Publish(topic, payload));
            })
        });
        Link { tx, rx, call }
    }

    /// The calls' signalling path, for the voice panel.
    pub fn call(&self) -> Option<CallLink> {
        self.call.clone()
    }
}

fn state(ui: &DeviceUi) -> Value {
    json!({
        "text": ui.text.get_untracked(),
        "expression": ui.expression.get_untracked(),
        "volume": ui.volume.get_untracked(),
    })
}

/// What wakes the device's loop.
pub enum Input {
    Open,
    Bytes(Vec<u8>),
    Closed(String),
    Photo(axon_core::protocol::mcp::server::CallHandle, CallToolResult),
    /// A voice call's signalling to publish (topic, payload).
    Publish(String, Vec<u8>),
}

struct Socket {
    ws: web_sys::WebSocket,
    // The callbacks live as long as the socket.
    _handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

impl Socket {
    fn open(url: &str, tx: mpsc::UnboundedSender<Input>) -> Result<Socket, String> {
        let ws = web_sys::WebSocket::new_with_str(url, "mqtt").map_err(js_error)?;
        ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
        let t = tx.clone();
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let _ = t.unbounded_send(Input::Open);
        });
        let t = tx.clone();
        let on_message = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            if let Some(m) = e.dyn_ref::<web_sys::MessageEvent>() {
                let bytes = js_sys::Uint8Array::new(&m.data()).to_vec();
                let _ = t.unbounded_send(Input::Bytes(bytes));
            }
        });
        let t = tx.clone();
        let on_close = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            let why = e
                .dyn_ref::<web_sys::CloseEvent>()
                .map(|c| format!("closed (code {})", c.code()))
                .unwrap_or_else(|| "connection error".into());
            let _ = t.unbounded_send(Input::Closed(why));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _handlers: vec![on_open, on_message, on_close],
        })
    }

    fn close(&self) {
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        self.ws.set_onmessage(None);
        let _ = self.ws.close();
    }
}

/// Runs the device's link until the page goes away, as the paired `account` (its broker user
/// name, password and site) where it has one.
pub async fn run(ui: DeviceUi, id: String, url: String, account: Option<Json>, link: Link) {
    let device_id = match DeviceId::new(id.clone()) {
        Ok(d) => d,
        Err(e) => {
            ui.status.set(format!("bad device id {id:?}: {e}"));
            return;
        }
    };
    let mut config = DeviceConfig::new(
        device_id,
        "virtual",
        "A browser tab: screen with a face, speaker, camera",
        tools(),
    );
    config.title = Some(query("title").unwrap_or_else(|| "Screen".into()));
    config.room = query("room");
    if let Some(a) = account {
        config.site = a.get("site").as_str().unwrap_or(config.site);
        config.credentials = Some(axon_core::transport::link::Credentials::new(
            a.get("username").str_or_empty(),
            a.get("password").str_or_empty(),
        ));
    }
    config.server_info = Implementation {
        name: "axon-web-device".into(),
        title: Some("Axon virtual device".into()),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let server = match McpServer::new(config) {
        Ok(s) => s,
        Err(e) => {
            ui.status.set(format!("cannot start the device: {e}"));
            return;
        }
    };
    let mut device = Endpoint::new(server, seed());
    let Link {
        tx,
        mut rx,
        call: calls,
    } = link;
    let mut socket: Option<Socket> = None;
    let mut next_telemetry = now();
    let audio: Rc<RefCell<Option<web_sys::AudioContext>>> = Rc::new(RefCell::new(None));
    let battery = battery_manager();
    ui.status.set(format!("connecting to {url}"));
    loop {
        // Deadlines first, on every turn, so that a steady stream of input cannot starve the
        // keep-alive; what they set off is drained right below.
        device.handle_timeout(now());
        // Drain everything between the endpoint and the socket.
        loop {
            let mut busy = false;
            while let Some(ev) = device.poll_event(now()) {
                busy = true;
                match ev {
                    EndpointEvent::OpenTransport => match Socket::open(&url, tx.clone()) {
                        Ok(s) => socket = Some(s),
                        Err(e) => {
                            ui.status.set(format!("cannot open {url}: {e}"));
                            device.handle_transport_closed(now());
                        }
                    },
                    EndpointEvent::CloseTransport => {
                        if let Some(s) = socket.take() {
                            s.close();
                        }
                    }
                    EndpointEvent::Connected => {
                        next_telemetry = now();
                        // The voice calls' topics (docs/protocol.md §9), on every connection.
                        if let Some(c) = &calls {
                            let subs = c
                                .topics()
                                .into_iter()
                                .map(|filter| Subscription {
                                    filter,
                                    qos: QoS::AtLeastOnce,
                                    no_local: false,
                                })
                                .collect();
                            let _ = device.subscribe(now(), subs);
                        }
                    }
                    EndpointEvent::Message(m) => {
                        if let Some(c) = &calls {
                            c.deliver(&m.topic, &m.payload);
                        }
                    }
                    EndpointEvent::Disconnected { reason } => {
                        ui.status.set(format!("offline: {reason}; reconnecting"));
                    }
                    EndpointEvent::ConnectRefused { reason } => ui
                        .status
                        .set(format!("the broker refused the connection: {reason}")),
                    EndpointEvent::Mcp(ServerEvent::Online { .. }) => {
                        ui.status.set("online".into())
                    }
                    EndpointEvent::Mcp(ServerEvent::ToolCall {
                        call,
                        name,
                        arguments,
                    }) => {
                        ui.calls.update(|n| *n += 1);
                        ui.last_call
                            .set(format!("{name} {}", json_text(&arguments)));
                        if name == "take_photo" {
                            let tx = tx.clone();
                            wasm_bindgen_futures::spawn_local(async move {
                                let result = take_photo().await.unwrap_or_else(|e| {
                                    CallToolResult::tool_error(format!("no photo: {e}"))
                                });
                                let _ = tx.unbounded_send(Input::Photo(call, result));
                            });
                        } else {
                            let result = run_tool(&ui, &audio, &name, &arguments);
                            device.role_mut().handle_tool_result(now(), call, result);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(bytes) = device.poll_transmit(now()) {
                busy = true;
                if let Some(s) = &socket {
                    if s.ws.send_with_u8_array(&bytes).is_err() {
                        socket = None;
                        device.handle_transport_closed(now());
                    }
                }
            }
            if !busy {
                break;
            }
        }
        // Telemetry while connected.
        let t = now();
        if device.is_connected() && t >= next_telemetry {
            publish_telemetry(&mut device, &ui, &battery);
            next_telemetry = t + std::time::Duration::from_millis(TELEMETRY_MS);
            continue;
        }
        let deadline = earliest(
            device.poll_timeout(),
            device.is_connected().then_some(next_telemetry),
        );
        let wait = deadline
            .map(|d| d.saturating_since(t).as_millis() as u32)
            .unwrap_or(30_000)
            .max(1);
        let timer = std::pin::pin!(sleep(wait));
        // The timer only wakes the loop; the deadlines are met at its top.
        if let Either::Right((input, _)) = future::select(timer, rx.next()).await {
            match input {
                Some(Input::Open) => device.handle_transport_open(now()),
                Some(Input::Bytes(b)) => device.handle_input(now(), &b),
                Some(Input::Closed(why)) => {
                    socket = None;
                    ui.status
                        .set(format!("broker connection {why}; reconnecting"));
                    device.handle_transport_closed(now());
                }
                Some(Input::Photo(call, result)) => {
                    device.role_mut().handle_tool_result(now(), call, result)
                }
                // Not connected: the call hears no answer and says so.
                Some(Input::Publish(topic, payload)) => {
                    let _ = device.publish(
                        now(),
                        Publish {
                            topic,
                            payload,
                            qos: QoS::AtLeastOnce,
                            retain: false,
                            user_properties: Vec::new(),
                        },
                    );
                }
                None => return,
            }
        }
    }
}

/// The browser's battery, where it offers one (`navigator.getBattery`, Chromium); filled in
/// when the promise settles.
fn battery_manager() -> Rc<RefCell<Option<wasm_bindgen::JsValue>>> {
    let slot = Rc::new(RefCell::new(None));
    let fill = slot.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let Some(nav) = web_sys::window().map(|w| w.navigator()) else {
            return;
        };
        let get = js_sys::Reflect::get(&nav, &"getBattery".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let Some(promise) = get.and_then(|f| f.call0(&nav).ok()) else {
            return;
        };
        if let Ok(m) = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await {
            *fill.borrow_mut() = Some(m);
        }
    });
    slot
}

/// One telemetry sample: tab visibility, volume, tool calls, expression, and where known the
/// battery (`level` 0–1 from the Battery API) and the microphone's peak level.
pub fn telemetry_sample(ts_ms: u64, visible: bool, battery: Option<f64>, ui: &DeviceUi) -> Value {
    let mut sample = json!({
        "ts": ts_ms,
        "metrics": {
            "tab_visible": visible,
            "volume_pct": ui.volume.get_untracked(),
            "tool_calls": ui.calls.get_untracked(),
            "expression": ui.expression.get_untracked(),
        }
    });
    if let Some(level) = battery {
        sample["metrics"]["battery_pct"] = json!((level * 100.0).round());
    }
    if let Some(peak) = ui.mic_peak.get_untracked() {
        sample["metrics"]["mic_level_pct"] = json!(peak);
    }
    sample
}

fn publish_telemetry(
    device: &mut Endpoint<McpServer>,
    ui: &DeviceUi,
    battery: &Rc<RefCell<Option<wasm_bindgen::JsValue>>>,
) {
    let t = now();
    let visible = web_sys::window()
        .and_then(|w| w.document())
        .map(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
        .unwrap_or(false);
    let level = battery
        .borrow()
        .as_ref()
        .and_then(|m| js_sys::Reflect::get(m, &"level".into()).ok())
        .and_then(|l| l.as_f64());
    let sample = telemetry_sample(t.as_millis(), visible, level, ui);
    // Each sample reports the loudest moment since the one before.
    ui.mic_peak.update_untracked(|p| {
        if let Some(p) = p {
            *p = 0;
        }
    });
    let id = device.role().device_id().as_str().to_string();
    let bytes = json_text(&sample).into_bytes();
    for (topic, qos, retain) in [
        (topics::telemetry(&id), QoS::AtMostOnce, false),
        (topics::telemetry_latest(&id), QoS::AtLeastOnce, true),
    ] {
        let _ = device.publish(
            t,
            Publish {
                topic,
                payload: bytes.clone(),
                qos,
                retain,
                user_properties: Vec::new(),
            },
        );
    }
    device.role_mut().set_telemetry(t, sample);
}

fn run_tool(
    ui: &DeviceUi,
    audio: &Rc<RefCell<Option<web_sys::AudioContext>>>,
    name: &str,
    args: &Value,
) -> CallToolResult {
    let int = |k: &str| args.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    match name {
        "show_text" => {
            ui.text
                .set(args["text"].as_str().unwrap_or_default().to_string());
        }
        "set_expression" => {
            ui.expression
                .set(args["expression"].as_str().unwrap_or("neutral").to_string());
        }
        "set_volume" => ui.volume.set(int("level")),
        "play_tone" => {
            if let Err(e) = play_tone(audio, int("frequency_hz"), int("duration_ms"), ui) {
                return CallToolResult::tool_error(format!("no sound: {e}"));
            }
        }
        "get_state" => {}
        other => return CallToolResult::tool_error(format!("no tool {other:?}")),
    }
    CallToolResult::structured(state(ui))
}

fn play_tone(
    audio: &Rc<RefCell<Option<web_sys::AudioContext>>>,
    frequency: u32,
    duration_ms: u32,
    ui: &DeviceUi,
) -> Result<(), String> {
    let mut slot = audio.borrow_mut();
    if slot.is_none() {
        *slot = Some(web_sys::AudioContext::new().map_err(js_error)?);
    }
    let Some(ctx) = slot.as_ref() else {
        return Err("no audio context".into());
    };
    let osc = ctx.create_oscillator().map_err(js_error)?;
    let gain = ctx.create_gain().map_err(js_error)?;
    osc.frequency().set_value(frequency as f32);
    gain.gain()
        .set_value(ui.volume.get_untracked() as f32 / 100.0 * 0.3);
    osc.connect_with_audio_node(&gain).map_err(js_error)?;
    gain.connect_with_audio_node(&ctx.destination())
        .map_err(js_error)?;
    let t = ctx.current_time();
    osc.start_with_when(t).map_err(js_error)?;
    osc.stop_with_when(t + f64::from(duration_ms) / 1000.0)
        .map_err(js_error)?;
    Ok(())
}

/// One camera frame as JPEG, at most 640 px wide (well under the 256 KiB RPC limit).
async fn take_photo() -> Result<CallToolResult, String> {
    use wasm_bindgen_futures::JsFuture;
    let window = web_sys::window().ok_or("no window")?;
    let media = window
        .navigator()
        .media_devices()
        .map_err(|_| "this browser has no camera API (a secure origin is needed)")?;
    let constraints = web_sys::MediaStreamConstraints::new();
    constraints.set_video(&wasm_bindgen::JsValue::TRUE);
    let stream: web_sys::MediaStream = JsFuture::from(
        media
            .get_user_media_with_constraints(&constraints)
            .map_err(js_error)?,
    )
    .await
    .map_err(|e| format!("the camera was not allowed: {}", js_error(e)))?
    .dyn_into()
    .map_err(|_| "not a media stream")?;
    let document = window.document().ok_or("no document")?;
    let video: web_sys::HtmlVideoElement = document
        .create_element("video")
        .map_err(js_error)?
        .dyn_into()
        .map_err(|_| "no video element")?;
    video.set_muted(true);
    video.set_src_object(Some(&stream));
    let _ = JsFuture::from(video.play().map_err(js_error)?).await;
    for _ in 0..50 {
        if video.video_width() > 0 {
            break;
        }
        sleep(20).await;
    }
    let (w, h) = (video.video_width().max(1), video.video_height().max(1));
    let scale = (640.0 / f64::from(w)).min(1.0);
    let (cw, ch) = ((f64::from(w) * scale) as u32, (f64::from(h) * scale) as u32);
    let canvas: web_sys::HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(js_error)?
        .dyn_into()
        .map_err(|_| "no canvas")?;
    canvas.set_width(cw);
    canvas.set_height(ch);
    let ctx: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(js_error)?
        .ok_or("no 2d context")?
        .dyn_into()
        .map_err(|_| "no 2d context")?;
    ctx.draw_image_with_html_video_element_and_dw_and_dh(&video, 0.0, 0.0, cw.into(), ch.into())
        .map_err(js_error)?;
    let url = canvas
        .to_data_url_with_type_and_encoder_options("image/jpeg", &0.8.into())
        .map_err(js_error)?;
    for track in stream.get_tracks().iter() {
        if let Ok(t) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            t.stop();
        }
    }
    let data = url
        .split_once(',')
        .map(|(_, d)| d.to_string())
        .ok_or("the canvas gave no JPEG")?;
    let mut r =
        CallToolResult::structured(json!({"width": cw, "height": ch, "bytes": data.len() * 3 / 4}));
    r.content = vec![
        ContentBlock::Image {
            data,
            mime_type: "image/jpeg".into(),
        },
        ContentBlock::text(format!("a {cw}×{ch} JPEG from the camera")),
    ];
    Ok(r)
}

/// The face: eyes and a mouth for each expression. Every mouth is drawn once and the page's
/// stylesheet (`.face[data-expression=...]` in web/style/device.css) shows the one for the expression and
/// shapes the eyes, so an expression change is one attribute, not a redraw.
#[component]
pub fn Face(#[prop(into)] expression: Signal<String>) -> impl IntoView {
    view! {
        <svg
            class="face"
            viewBox="0 0 200 200"
            role="img"
            data-testid="face"
            data-expression=move || expression.get()
            aria-label=move || format!("face: {}", expression.get())
        >
            <circle cx="100" cy="100" r="95" class="face-bg"></circle>
            <ellipse cx="70" cy="80" rx="10" ry="12" class="eye"></ellipse>
            <ellipse cx="130" cy="80" rx="10" ry="12" class="eye"></ellipse>
            <path d="M 70 135 L 130 135" class="mouth m-neutral"></path>
            <path d="M 60 125 Q 100 165 140 125" class="mouth m-happy"></path>
            <path d="M 60 145 Q 100 110 140 145" class="mouth m-sad"></path>
            <path d="M 85 135 A 15 18 0 1 0 115 135 A 15 18 0 1 0 85 135" class="mouth m-surprised"></path>
            <path d="M 70 140 L 130 130" class="mouth m-thinking"></path>
            <path d="M 70 130 Q 100 160 130 130 Q 100 145 70 130" class="mouth m-speaking"></path>
            <path d="M 75 135 Q 100 145 125 135" class="mouth m-listening"></path>
        </svg>
    }
}

/// The `/device` page.
#[component]
pub fn DevicePage() -> impl IntoView {
    let ui = DeviceUi::new();
    let stored = stored_account();
    let id = device_id(stored.as_ref());
    let url = broker_url();
    let link = Link::new(&id);
    let call = link.call();
    leptos::task::spawn_local(start(ui, id.clone(), url, stored, link));
    // While a voice session listens, thinks or speaks, the face shows it; otherwise it is the
    // device's own (set_expression).
    let mut voice = VoiceUi::new();
    // The microphone's loudest moment goes into telemetry while a voice session has it open.
    voice.peak = ui.mic_peak;
    let face = Signal::derive(move || {
        voice
            .expression()
            .map(str::to_string)
            .unwrap_or_else(|| ui.expression.get())
    });
    let voice_device = id.clone();
    view! {
        <main class="device">
            <header>
                <h1>"Axon virtual device"</h1>
                <p>
                    "Device " <code data-testid="device-id">{id}</code> " · "
                    <span data-testid="status" role="status" aria-live="polite">{move || ui.status.get()}</span>
                </p>
            </header>
            <Face expression=face />
            <p class="screen-text" data-testid="screen-text" aria-live="polite">{move || ui.text.get()}</p>
            <p class="meta">
                "Volume " <span data-testid="volume">{move || ui.volume.get()}</span> "% · "
                <span data-testid="calls">{move || ui.calls.get()}</span> " tool calls · last: "
                <code data-testid="last-call">{move || ui.last_call.get()}</code>
            </p>
            <VoicePanel ui=voice api="" device=voice_device volume=ui.volume choose_mode=true call=call />
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn a_refusal_shows_the_workers_reason() {
        assert_eq!(
            refusal(
                410,
                r#"{"error":{"code":-32602,"message":"the code expired"}}"#
            ),
            "the code expired"
        );
        assert_eq!(refusal(502, "Bad Gateway"), "HTTP 502");
        // Status 0: the fetch itself failed, and its text says why.
        assert_eq!(
            refusal(0, "cannot reach /api/pair: Failed to fetch"),
            "cannot reach /api/pair: Failed to fetch"
        );
    }
}
