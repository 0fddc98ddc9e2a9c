//! The Hub: one per site. It owns the site's broker connection (MQTT 5 over an outbound
//! WebSocket) driven through `axon-core`'s [`Endpoint`] with the MCP client, the registry, the
//! telemetry windows, the index of which devices a turn sees (`axon_core::agent::scope`), the
//! live event streams, the `/mcp` sessions and the tool calls waiting for a person.
//!
//! Its state is private: the routes (`routes/`) and the agent runner (`agent.rs`)
//! use its methods and never reach into it. It never imports a route. Protocol decisions stay
//! in `axon-core`; this file only moves bytes, time and requests between the WebSocket, timers
//! and callers. A call that finds no broker fails at once with `-32013`; one that finds no
//! device fails with `-32010`; none waits longer than the client's deadline.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use axon_core::agent::scope::{self, DeviceIndex, Scope};
use axon_core::agent::turn::AgentTool;
use axon_core::endpoint::{Endpoint, EndpointEvent};
use axon_core::media::voice::{SpeechCache, SpeechKey};
use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::protocol::mcp::client::{
    ClientConfig, ClientEvent, DeviceInfo, DeviceState, McpClient, RequestHandle,
};
use axon_core::protocol::mcp::types::Implementation;
use axon_core::protocol::telemetry::{Severity, TelemetryStore, TelemetryUpdate};
use axon_core::protocol::tool::{effective_permission, Permission};
use axon_core::time::{Rng, Timestamp};
use axon_core::transport::link::{Credentials, Publish, QoS, Subscription};
use axon_core::transport::mqtt::SessionState;
use axon_core::trust::broker::{self, Batch};
use axon_core::trust::pairing::Pairings;
use axon_core::trust::rate::{Limit, RateLimits};
use futures_channel::{mpsc, oneshot};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use worker::{Env, SqlStorage, WebSocket, WebsocketEvent};

use crate::clock::now;
use crate::config::{Config, SpeechProvider};
use crate::events::{frame, Broadcast};

type Reply = oneshot::Sender<std::result::Result<Value, ErrorObject>>;

/// Telemetry kept per device: samples and how far back.
const WINDOW_SAMPLES: usize = 120;
const WINDOW_AGE_MS: u64 = 10 * 60 * 1000;
/// Devices whose telemetry the Hub keeps: above the 10,013 of `bench-scale` (docs/scale.md §3).
/// Their samples share `telemetry::TOTAL_SAMPLES`, so memory does not grow with this number.
const MAX_DEVICES: usize = 20_000;
/// Broker frames the link loop reads before it lets the object's requests run.
const FRAMES_PER_TURN: u32 = 32;
/// How long a request to a Hub that has just started waits for discovery, and in which part
/// of its life it waits at all.
const SETTLE_WAIT: Duration = Duration::from_secs(3);
const SETTLE_WINDOW: Duration = Duration::from_secs(10);

/// A shared handle on the site's Hub (one thread: requests and the link loop take turns).
pub type Ctx = Rc<Hub>;

/// The site's Hub.
pub struct Hub {
    link: RefCell<Link>,
    kick: RefCell<Option<mpsc::UnboundedSender<()>>>,
    config: Config,
    env: Env,
    sql: SqlStorage,
    turns: Cell<u64>,
    /// Per-credential request allowances.
    limits: RefCell<RateLimits>,
    /// Devices waiting to be paired (codes live 5 minutes; a restart forgets them).
    pairings: RefCell<Pairings>,
    /// When this Hub instance started (its registry is empty until discovery has run).
    started: Timestamp,
    /// Sentences already spoken, for every voice session of the site (docs/voice.md §1.4).
    speech_cache: RefCell<SpeechCache>,
}

/// The broker link and everything that changes with it.
struct Link {
    endpoint: Endpoint<McpClient>,
    ws: Option<WebSocket>,
    waiting: HashMap<RequestHandle, Reply>,
    rng: Rng,
    site: String,
    /// Server-name filters for discovery.
    filters: Vec<String>,
    /// The site's broker account (`hub-{site}`), if the broker wants one.
    credentials: Option<Credentials>,
    last_error: Option<String>,
    telemetry: TelemetryStore,
    /// The ready devices' words: which devices a turn sees at a big site.
    scope: DeviceIndex,
    /// `/api/events` subscribers.
    events: Broadcast,
    /// `/mcp` GET streams.
    mcp_streams: Broadcast,
    /// `/mcp` sessions (Mcp-Session-Id).
    mcp_sessions: HashSet<String>,
    /// Tool calls waiting for a person, by call id.
    confirmations: HashMap<String, oneshot::Sender<bool>>,
    /// Requests waiting for discovery to settle.
    settle_waiters: Vec<oneshot::Sender<()>>,
    /// Broker account changes waiting for dynsec's answer, re-sent after a reconnect.
    account_requests: Vec<AccountRequest>,
}

/// A batch of dynamic-security commands (create, rotate or revoke a device's account) and who
/// waits for its answer.
struct AccountRequest {
    batch: Batch,
    reply: Option<oneshot::Sender<std::result::Result<(), String>>>,
}

/// How long an account change may take: a change to the site's role disconnects the Hub
/// itself (Mosquitto 2.0.11), which reconnects within its backoff and sends the batch again.
const ACCOUNT_WAIT: Duration = Duration::from_secs(20);

fn random_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64 ^ (js_sys::Date::now() as u64)
}

/// The Hub's client id is fresh for every connection (docs/protocol.md §2.3).
fn client_config(
    site: &str,
    filters: &[String],
    credentials: &Option<Credentials>,
    rng: &mut Rng,
) -> ClientConfig {
    let mut c = ClientConfig::new(format!("axon-hub.{site}.{}", rng.hex(4)), rng.next_u64());
    c.site = site.to_string();
    c.credentials = credentials.clone();
    c.server_name_filters = filters.to_vec();
    c.client_info = Implementation {
        name: "axon-hub".into(),
        title: Some("Axon Hub".into()),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    c
}

impl Link {
    fn new(site: String, filters: Vec<String>, credentials: Option<Credentials>) -> Link {
        let mut rng = Rng::new(random_seed());
        let client = McpClient::new(client_config(&site, &filters, &credentials, &mut rng));
        let endpoint = Endpoint::new(client, rng.next_u64());
        Link {
            endpoint,
            ws: None,
            waiting: HashMap::new(),
            rng,
            site,
            filters,
            credentials,
            last_error: None,
            telemetry: TelemetryStore::new(MAX_DEVICES, WINDOW_SAMPLES, WINDOW_AGE_MS),
            scope: DeviceIndex::new(),
            events: Broadcast::default(),
            mcp_streams: Broadcast::default(),
            mcp_sessions: HashSet::new(),
            confirmations: HashMap::new(),
            settle_waiters: Vec::new(),
            account_requests: Vec::new(),
        }
    }

    fn client(&self) -> &McpClient {
        self.endpoint.role()
    }

    /// Moves everything between the endpoint and the socket until all is quiet.
    /// Returns true if the session asked for a new transport.
    fn pump(&mut self) -> bool {
        let mut open = false;
        loop {
            let mut busy = false;
            while let Some(ev) = self.endpoint.poll_event(now()) {
                busy = true;
                open |= self.handle_endpoint_event(ev);
            }
            while let Some(bytes) = self.endpoint.poll_transmit(now()) {
                busy = true;
                if let Some(ws) = &self.ws {
                    if ws.send_with_bytes(&bytes).is_err() {
                        self.ws = None;
                        self.endpoint.handle_transport_closed(now());
                    }
                }
            }
            if !busy {
                break;
            }
        }
        // Requests that gave up waiting (3 s) are forgotten; the rest are woken once settled.
        self.settle_waiters.retain(|w| !w.is_canceled());
        if !self.settle_waiters.is_empty() && self.is_settled() {
            for w in self.settle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        open
    }

    /// Subscribes to dynsec's answers and (re)publishes every waiting account change. Batches
    /// are idempotent: one that was applied before a disconnect is answered "done" again.
    fn send_account_requests(&mut self) {
        let sub = vec![Subscription {
            filter: broker::RESPONSE_TOPIC.to_string(),
            qos: QoS::AtLeastOnce,
            no_local: false,
        }];
        if let Err(e) = self.endpoint.subscribe(now(), sub) {
            self.last_error = Some(format!(
                "cannot subscribe to the broker's account answers: {e}"
            ));
            return;
        }
        for r in &self.account_requests {
            let p = Publish {
                topic: broker::CONTROL_TOPIC.to_string(),
                payload: r.batch.payload(),
                qos: QoS::AtLeastOnce,
                retain: false,
                user_properties: Vec::new(),
            };
            if let Err(e) = self.endpoint.publish(now(), p) {
                self.last_error = Some(format!("cannot send an account change: {e}"));
            }
        }
    }

    fn handle_account_response(&mut self, payload: &[u8]) {
        self.account_requests.retain_mut(|r| {
            let outcome = match r.batch.check(payload) {
                Ok(None) => return true, // another batch's answer
                Ok(Some(())) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
            if let Some(reply) = r.reply.take() {
                let _ = reply.send(outcome);
            }
            false
        });
    }

    /// Whether the broker link is up and every device heard of is initialized.
    fn is_settled(&self) -> bool {
        self.endpoint.is_connected()
            && self.client().devices().count() > 0
            && !self
                .client()
                .devices()
                .any(|d| matches!(d.state, DeviceState::Initializing | DeviceState::Unknown))
    }

    /// Returns true when the endpoint asks for a transport.
    fn handle_endpoint_event(&mut self, ev: EndpointEvent<ClientEvent>) -> bool {
        match ev {
            EndpointEvent::OpenTransport => return true,
            EndpointEvent::CloseTransport => {
                if let Some(ws) = self.ws.take() {
                    let _ = ws.close(Some(1000), Some("closing"));
                }
            }
            EndpointEvent::Connected => {
                self.last_error = None;
                let subs = TelemetryStore::subscriptions().to_vec();
                if let Err(e) = self.endpoint.subscribe(now(), subs) {
                    self.last_error = Some(format!("cannot subscribe to telemetry: {e}"));
                }
                if !self.account_requests.is_empty() {
                    self.send_account_requests();
                }
            }
            EndpointEvent::Message(m) if m.topic == broker::RESPONSE_TOPIC => {
                self.handle_account_response(&m.payload)
            }
            EndpointEvent::Message(m) if m.topic.starts_with("axon/") => {
                self.handle_telemetry(&m.topic, &m.payload)
            }
            EndpointEvent::Message(_) => {}
            EndpointEvent::Disconnected { reason } => {
                self.last_error = Some(reason);
                // A fresh client id for the next connection.
                let cid = client_config(&self.site, &self.filters, &None, &mut self.rng).client_id;
                self.endpoint.role_mut().set_client_id(cid);
            }
            EndpointEvent::ConnectRefused { reason } => {
                let account = match &self.credentials {
                    Some(c) => format!("account {}", c.username),
                    None => "no account (set AXON_BROKER_USERNAME and AXON_BROKER_PASSWORD)".into(),
                };
                self.last_error = Some(format!(
                    "broker refused the connection ({reason}) with {account}: check the credentials (axon-device-sim provision --hub --site {})",
                    self.site
                ))
            }
            EndpointEvent::PublishRefused { reason_code } => {
                self.last_error = Some(format!(
                    "broker refused a publish (reason 0x{reason_code:02x}): check the ACL"
                ));
            }
            EndpointEvent::SendFailed(e) => self.last_error = Some(e.to_string()),
            EndpointEvent::TakenOver => {
                self.last_error = Some("another client connected with the Hub's client id".into())
            }
            EndpointEvent::Mcp(ev) => self.handle_client_event(ev),
        }
        false
    }

    fn handle_client_event(&mut self, ev: ClientEvent) {
        let (device, state, list_changed) = match ev {
            ClientEvent::Response { handle, outcome } => {
                if let Some(reply) = self.waiting.remove(&handle) {
                    let _ = reply.send(outcome);
                }
                return;
            }
            ClientEvent::DeviceOnline { device_id } => (device_id, "online", false),
            ClientEvent::DeviceReady { device_id } => (device_id, "ready", true),
            ClientEvent::ToolsChanged { device_id } => (device_id, "tools_changed", true),
            ClientEvent::DeviceOffline { device_id } => (device_id, "offline", true),
            ClientEvent::DeviceUnreachable { device_id, .. } => (device_id, "unreachable", true),
            ClientEvent::ResourceUpdated { .. } => return,
        };
        match self.endpoint.role().device(device.as_str()) {
            Some(d) => self.scope.update(d),
            None => self.scope.forget(device.as_str()),
        }
        let title = self
            .client()
            .device(device.as_str())
            .and_then(|d| d.meta.title.clone());
        self.events.send(|| {
            frame(
                "presence",
                &json!({"device": device, "state": state, "title": title, "ts": now().as_millis()}),
            )
        });
        if list_changed {
            self.mcp_streams.send(|| {
                frame(
                    "message",
                    &axon_core::protocol::mcp::gateway::list_changed(),
                )
            });
        }
    }

    fn handle_telemetry(&mut self, topic: &str, payload: &[u8]) {
        match self.telemetry.handle(topic, payload) {
            Ok(Some(TelemetryUpdate::Sample { device, sample })) => self.events.send(|| {
                frame(
                    "telemetry",
                    &json!({"device": device, "ts": sample.ts, "metrics": sample.metrics}),
                )
            }),
            Ok(Some(TelemetryUpdate::Event { device, event })) => {
                self.events
                    .send(|| frame("device_event", &json!({"device": device, "event": event})));
                // Proactive: the agent tells whoever is watching about warnings and worse.
                if event.severity != Severity::Info {
                    let title = self
                        .client()
                        .device(&device)
                        .and_then(|d| d.meta.title.clone())
                        .unwrap_or_else(|| device.clone());
                    self.events.send(|| frame(
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

    /// How long the link loop may sleep.
    fn wait_time(&self) -> Duration {
        match self.endpoint.poll_timeout() {
            Some(d) => d.saturating_since(now()).max(Duration::from_millis(1)),
            None => Duration::from_secs(30),
        }
    }
}

fn speech_json(p: &SpeechProvider) -> Value {
    match p {
        SpeechProvider::Http {
            name,
            base_url,
            model,
            ..
        } => json!({"provider": name, "url": base_url, "model": model}),
        SpeechProvider::WorkersAi { model } => {
            json!({"provider": "workers-ai", "model": model})
        }
    }
}

impl Hub {
    /// The site's Hub, with its configuration read once from `env`.
    pub fn new(env: Env, sql: SqlStorage) -> Hub {
        let config = Config::from_env(&env);
        if let Err(e) = crate::memory::Memory::create_tables(&sql) {
            worker::console_error!("memory tables: {e}");
        }
        if let Err(e) = crate::trust::Store::create_tables(&sql) {
            worker::console_error!("credential tables: {e}");
        }
        let mut link = Link::new(
            config.site.clone(),
            config.server_name_filters.clone(),
            config.broker_credentials.clone(),
        );
        // Paired devices named outside the filters are discovered by name (pair.rs).
        match crate::trust::Store::open(sql.clone()).paired_names() {
            Ok(names) => {
                for (device, name) in names {
                    if let Err(e) = link.endpoint.role_mut().add_paired_server_name(&name) {
                        worker::console_error!("paired device {device}: {e}");
                    }
                }
            }
            Err(e) => worker::console_error!("paired names: {e}"),
        }
        let speech_cache = match config.speech_cache {
            true => SpeechCache::default(),
            false => SpeechCache::new(0, 0),
        };
        Hub {
            link: RefCell::new(link),
            kick: RefCell::new(None),
            config,
            env,
            sql,
            turns: Cell::new(0),
            started: now(),
            limits: RefCell::new(RateLimits::new()),
            pairings: RefCell::new(Pairings::new()),
            speech_cache: RefCell::new(speech_cache),
        }
    }

    /// The speech cache's key for `text` said by the configured TTS.
    pub fn speech_key(&self, text: &str) -> SpeechKey {
        let (model, voice) = match &self.config.tts {
            SpeechProvider::Http { model, voice, .. } => (model.as_str(), voice.as_str()),
            SpeechProvider::WorkersAi { model } => (model.as_str(), ""),
        };
        SpeechKey::new(self.config.tts.name(), model, voice, text)
    }

    /// The audio of a sentence already spoken, if the cache holds it.
    pub fn cached_speech(&self, key: &SpeechKey) -> Option<Vec<i16>> {
        self.speech_cache.borrow_mut().get(key)
    }

    /// Keeps a sentence's audio for the next time it is said.
    pub fn keep_speech(&self, key: SpeechKey, samples: Vec<i16>) {
        self.speech_cache.borrow_mut().put(key, samples);
    }

    /// Takes one request from `key`'s allowance, or says how many seconds to wait.
    pub fn rate_check(&self, key: &str, limit: Limit) -> std::result::Result<(), u64> {
        self.limits.borrow_mut().check(key, limit, now())
    }

    /// The site's waiting pairings.
    pub fn pairings<R>(&self, f: impl FnOnce(&mut Pairings) -> R) -> R {
        f(&mut self.pairings.borrow_mut())
    }

    /// Applies a batch of account changes over the Hub's own connection (its site role may
    /// manage accounts: docs/security.md "Broker accounts") and waits for dynsec's answer.
    pub async fn change_accounts(&self, batch: Batch) -> std::result::Result<(), ErrorObject> {
        let rx = {
            let mut link = self.link.borrow_mut();
            let (tx, rx) = oneshot::channel();
            link.account_requests.push(AccountRequest {
                batch,
                reply: Some(tx),
            });
            if link.endpoint.is_connected() {
                link.send_account_requests();
            }
            link.pump();
            rx
        };
        if let Some(k) = self.kick.borrow().as_ref() {
            let _ = k.unbounded_send(());
        }
        let outcome = futures_util::select! {
            r = rx.fuse() => r.unwrap_or_else(|_| Err("the Hub's link stopped".into())),
            _ = worker::Delay::from(ACCOUNT_WAIT).fuse() => Err(format!(
                "the broker did not answer within {} s: is Mosquitto's dynamic security plugin on, and may the Hub's account ({}) publish to {}? (docs/security.md)",
                ACCOUNT_WAIT.as_secs(),
                self.config.broker_credentials.as_ref().map(|c| c.username.as_str()).unwrap_or("anonymous"),
                broker::CONTROL_TOPIC
            )),
        };
        // A request that timed out is not sent again.
        self.link
            .borrow_mut()
            .account_requests
            .retain(|r| r.reply.as_ref().is_some_and(|t| !t.is_canceled()));
        outcome.map_err(|e| {
            ErrorObject::new(
                code::BROKER_UNAVAILABLE,
                format!("the device's broker account: {e}"),
            )
        })
    }

    /// A paired device's own server name joins discovery (`join`) or leaves it: subscribed or
    /// unsubscribed now, and on every connection after.
    pub fn discover_paired_name(&self, name: &str, join: bool) -> std::result::Result<(), String> {
        let mut link = self.link.borrow_mut();
        let client = link.endpoint.role_mut();
        if join {
            client
                .add_paired_server_name(name)
                .map_err(|e| e.to_string())?;
        } else {
            client.remove_paired_server_name(name);
        }
        link.pump();
        drop(link);
        if let Some(k) = self.kick.borrow().as_ref() {
            let _ = k.unbounded_send(());
        }
        Ok(())
    }

    /// The Hub's discovery filters as configured (`AXON_SERVER_NAME_FILTERS`).
    pub fn server_name_filters(&self) -> Vec<String> {
        self.link.borrow().filters.clone()
    }

    /// A random batch id (dynsec answers every admin on one topic).
    pub fn batch_id(&self) -> String {
        self.link.borrow_mut().rng.hex(8)
    }

    /// The stored credentials and the activity log.
    pub fn store(&self) -> crate::trust::Store {
        crate::trust::Store::open(self.sql.clone())
    }

    /// The configuration, read when the Hub started.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The worker's bindings (the `AI` binding for Workers AI).
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The Hub's SQLite storage (conversation memory).
    pub fn sql(&self) -> SqlStorage {
        self.sql.clone()
    }

    /// Starts the link loop once per Hub instance.
    pub fn ensure_running(self: &Rc<Self>) {
        if self.kick.borrow().is_some() {
            return;
        }
        let (tx, rx) = mpsc::unbounded();
        *self.kick.borrow_mut() = Some(tx);
        wasm_bindgen_futures::spawn_local(run_link(self.clone(), rx));
    }

    /// Reads the registry (the MCP client's view of the site's devices).
    pub fn registry<T>(&self, read: impl FnOnce(&McpClient) -> T) -> T {
        read(self.link.borrow().client())
    }

    /// The devices as they are now (a copy, for work that awaits).
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.registry(|c| c.devices().cloned().collect())
    }

    /// The devices a turn on `text` sees, for a person using `preferred` (a copy): all of
    /// them at a small site, the ones the request names at a big one (docs/scale.md §3).
    pub fn turn_devices(&self, text: &str, preferred: Option<&str>) -> Vec<DeviceInfo> {
        let link = self.link.borrow();
        match link.scope.scope(text, preferred) {
            Scope::WholeSite => link.client().devices().cloned().collect(),
            Scope::Devices(ids) => ids
                .iter()
                .filter_map(|id| link.client().device(id).cloned())
                .collect(),
        }
    }

    /// The devices a running turn's tools belong to (a copy): the whole registry at a small
    /// site, as [`Hub::turn_devices`] chose.
    pub fn devices_of(&self, tools: &[AgentTool]) -> Vec<DeviceInfo> {
        let link = self.link.borrow();
        if link.scope.ready() <= scope::WHOLE_SITE_UP_TO {
            return link.client().devices().cloned().collect();
        }
        let ids: std::collections::BTreeSet<&str> =
            tools.iter().map(|t| t.device.as_str()).collect();
        ids.into_iter()
            .filter_map(|id| link.client().device(id).cloned())
            .collect()
    }

    /// The device id `address` names (its id, full server-name, or unique last level):
    /// `-32010` when none, `-32602` listing the candidates when several.
    pub fn resolve(&self, address: &str) -> std::result::Result<String, ErrorObject> {
        self.registry(|c| c.resolve(address).map(|d| d.device_id.to_string()))
    }

    /// The effective permission of a known device's tool, by device id; `None` when either is
    /// unknown.
    pub fn permission(&self, device: &str, tool: &str) -> Option<Permission> {
        self.registry(|c| {
            c.device(device)
                .and_then(|d| d.tool(tool))
                .map(|t| effective_permission(t, self.config.policy.get(device, tool)))
        })
    }

    /// One device (by device id) with its tools, effective permissions, telemetry window and
    /// recent events.
    pub fn device_detail(&self, id: &str) -> Option<Value> {
        let link = self.link.borrow();
        let d = link.client().device(id)?;
        let mut v = serde_json::to_value(d).ok()?;
        let permissions: serde_json::Map<String, Value> = d
            .tools
            .iter()
            .map(|t| {
                let p = effective_permission(t, self.config.policy.get(id, &t.name));
                (t.name.clone(), json!(p))
            })
            .collect();
        let samples: Vec<&axon_core::protocol::telemetry::Telemetry> = link
            .telemetry
            .window(id)
            .map(|w| w.iter().collect())
            .unwrap_or_default();
        let events: Vec<&axon_core::protocol::telemetry::DeviceEvent> =
            link.telemetry.events_of(id).collect();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("permissions".into(), Value::Object(permissions));
            obj.insert("telemetry".into(), json!(samples));
            obj.insert("events".into(), json!(events));
        }
        Some(v)
    }

    /// What `/healthz` shows: the broker link, device counts, providers, problems.
    pub fn health(&self, details: bool) -> Value {
        let link = self.link.borrow();
        if !details {
            // Anyone may ask whether the worker is up; what it runs and holds is the owner's.
            return json!({
                "ok": true,
                "broker": if link.endpoint.state() == SessionState::Connected { "connected" } else { "not connected" },
                "details": "sign in (the owner token) to see the site's details",
            });
        }
        let client = link.client();
        let devices = client.devices().count();
        let ready = client
            .devices()
            .filter(|d| d.state == DeviceState::Ready)
            .count();
        // A big site's presence replays at once; these say how far its initialization is.
        let (initializing, waiting) = client.initializations();
        json!({
            "ok": true,
            "site": self.config.site,
            "broker": match link.endpoint.state() {
                SessionState::Connected => "connected",
                SessionState::Connecting | SessionState::Opening => "connecting",
                SessionState::WaitingToReconnect => "reconnecting",
                SessionState::Closed => "closed",
            },
            "broker_url": self.config.broker_url,
            "broker_account": self.config.broker_credentials.as_ref().map(|c| c.username.clone()),
            "server_name_filters": self.config.server_name_filters,
            "last_error": link.last_error,
            "config_problem": self.config.problem,
            "devices": devices,
            "ready": ready,
            "initializing": {"now": initializing, "waiting": waiting},
            "llm": self.config.llm_name(),
            "model": self.config.model,
            "asr": speech_json(&self.config.asr),
            "tts": speech_json(&self.config.tts),
            "mcp": if self.config.mcp_token.is_some() { "enabled" } else { "disabled: set the AXON_MCP_TOKEN secret" },
            "event_streams": link.events.len(),
        })
    }

    /// A new `/api/events` stream, starting with a `hello` that lists the devices.
    pub fn subscribe_events(&self) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let mut link = self.link.borrow_mut();
        let devices: Vec<Value> = link
            .client()
            .devices()
            .map(|d| json!({"device": d.device_id, "state": d.state, "title": d.meta.title, "room": d.meta.room, "kind": d.kind}))
            .collect();
        let hello = frame(
            "hello",
            &json!({"site": self.config.site, "devices": devices}),
        );
        link.events.subscribe(vec![hello])
    }

    /// Sends one event to every `/api/events` stream.
    pub fn publish_event(&self, event: &str, data: &Value) {
        self.link.borrow_mut().events.send(|| frame(event, data));
    }

    /// A new `/mcp` GET stream (list-changed notifications).
    pub fn subscribe_mcp_stream(&self) -> mpsc::UnboundedReceiver<Vec<u8>> {
        self.link.borrow_mut().mcp_streams.subscribe(Vec::new())
    }

    /// Opens an `/mcp` session and returns its Mcp-Session-Id.
    pub fn open_mcp_session(&self) -> String {
        let mut link = self.link.borrow_mut();
        let id = link.rng.uuid_v4();
        link.mcp_sessions.insert(id.clone());
        id
    }

    /// Whether `id` is an open `/mcp` session.
    pub fn has_mcp_session(&self, id: &str) -> bool {
        self.link.borrow().mcp_sessions.contains(id)
    }

    /// Ends an `/mcp` session; false when there was none under `id`.
    pub fn end_mcp_session(&self, id: &str) -> bool {
        self.link.borrow_mut().mcp_sessions.remove(id)
    }

    /// Registers a tool call that waits for a person; the answer arrives on the receiver.
    pub fn await_confirmation(&self, id: &str) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.link
            .borrow_mut()
            .confirmations
            .insert(id.to_string(), tx);
        rx
    }

    /// A person's answer to a waiting call; false when nothing waits under `id`.
    pub fn answer_confirmation(&self, id: &str, approve: bool) -> bool {
        let waiting = self.link.borrow_mut().confirmations.remove(id);
        match waiting {
            Some(tx) => {
                let _ = tx.send(approve);
                true
            }
            None => false,
        }
    }

    /// Forgets a waiting call (it was answered or timed out).
    pub fn drop_confirmation(&self, id: &str) {
        self.link.borrow_mut().confirmations.remove(id);
    }

    /// A fresh id for a turn (unique within this Hub instance).
    pub fn next_turn_id(&self) -> String {
        let n = self.turns.get() + 1;
        self.turns.set(n);
        let salt = self.link.borrow_mut().rng.hex(3);
        format!("t{n}{salt}")
    }

    /// A Hub that has just started has not discovered the site yet: wait (3 s at most, and
    /// only in its first 10 s) until the broker link is up and every device it has heard of
    /// is initialized, so the first request does not find an empty home. The link loop wakes
    /// the waiter when discovery settles.
    pub async fn settle_discovery(&self) {
        if now().saturating_since(self.started) > SETTLE_WINDOW {
            return;
        }
        let settled = {
            let mut link = self.link.borrow_mut();
            if link.is_settled() {
                return;
            }
            let (tx, rx) = oneshot::channel();
            link.settle_waiters.push(tx);
            rx
        };
        futures_util::select! {
            _ = settled.fuse() => {}
            _ = worker::Delay::from(SETTLE_WAIT).fuse() => {}
        }
    }

    /// Calls a device tool through the MCP client: validated, with a deadline and a call-id.
    /// Permission is the caller's to decide first ([`axon_core::protocol::tool::authorize`]).
    pub async fn call_tool(
        &self,
        device: &str,
        tool: &str,
        args: Value,
    ) -> std::result::Result<Value, ErrorObject> {
        let rx = {
            let mut link = self.link.borrow_mut();
            let handle = link.endpoint.role_mut().call_tool(
                now(),
                device,
                tool,
                args,
                Default::default(),
            )?;
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

/// The link loop: connect, feed bytes and time to the endpoint, reconnect on loss.
async fn run_link(hub: Ctx, mut kick: mpsc::UnboundedReceiver<()>) {
    let url = hub.config.broker_url.clone();
    let link = &hub.link;
    loop {
        let open = link.borrow_mut().pump();
        if !open {
            // Not connected: wait for the session's next deadline (the backoff) or a kick.
            let wait = link.borrow().wait_time();
            futures_util::select! {
                _ = worker::Delay::from(wait).fuse() => {}
                _ = kick.next() => {}
            }
            link.borrow_mut().endpoint.handle_timeout(now());
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
                l.endpoint.handle_transport_closed(now());
                continue;
            }
        };
        if ws.accept().is_err() {
            link.borrow_mut().endpoint.handle_transport_closed(now());
            continue;
        }
        let mut events = match ws.events() {
            Ok(e) => e,
            Err(_) => {
                link.borrow_mut().endpoint.handle_transport_closed(now());
                continue;
            }
        };
        {
            let mut l = link.borrow_mut();
            l.ws = Some(ws.clone());
            l.endpoint.handle_transport_open(now());
        }
        let mut since_yield = 0u32;
        loop {
            link.borrow_mut().pump();
            if link.borrow().ws.is_none() {
                break; // the session closed it
            }
            // Frames already buffered are ready at once, so under a burst (a big site's
            // presence and telemetry) this loop would never give the object's other work a
            // turn: requests, /healthz included, waited until the burst ended. A zero delay
            // every few frames lets them in.
            if since_yield >= FRAMES_PER_TURN {
                since_yield = 0;
                worker::Delay::from(Duration::ZERO).await;
            }
            let wait = link.borrow().wait_time();
            futures_util::select! {
                ev = events.next().fuse() => match ev {
                    Some(Ok(WebsocketEvent::Message(m))) => {
                        since_yield += 1;
                        if let Some(bytes) = m.bytes() {
                            link.borrow_mut().endpoint.handle_input(now(), &bytes);
                        }
                    }
                    Some(Ok(WebsocketEvent::Close(_))) | Some(Err(_)) | None => {
                        let mut l = link.borrow_mut();
                        l.ws = None;
                        l.endpoint.handle_transport_closed(now());
                        break;
                    }
                },
                _ = worker::Delay::from(wait).fuse() => link.borrow_mut().endpoint.handle_timeout(now()),
                _ = kick.next() => {}
            }
        }
    }
}
