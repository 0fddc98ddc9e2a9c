//! The device side of MCP over MQTT: one MCP server per device (docs/protocol.md §5, §6).
//!
//! Owns the server protocol: presence (retained online message, tombstone, will), the control
//! topic, one session per MCP client with its three subscriptions, `initialize` with version
//! negotiation, `tools/list` with pagination, `tools/call` with argument validation and the
//! `axon/call-id` idempotency cache, the telemetry resource, `ping`, and every wire error
//! (`-32700`, `-32600`, `-32601`, `-32602`).
//!
//! It never runs a tool: a valid call comes out as [`ServerEvent::ToolCall`] and the shell
//! answers with [`McpServer::handle_tool_result`], at once or later. It never touches a
//! socket or a clock.
//!
//! Draining rule: after any `handle_*` call or command, call [`McpServer::poll_transmit`]
//! and [`McpServer::poll_event`] until both return `None`; call
//! [`McpServer::handle_timeout`] at [`McpServer::poll_timeout`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::protocol::jsonrpc::{self, code, ErrorObject, Message, RequestId};
use crate::protocol::mcp::topics::{self, DeviceId, Topic};
use crate::protocol::mcp::types::{
    self, CallToolResult, DeviceMeta, Implementation, InitializeParams, Resource, ResourceContents,
    ServerOnline, Tool,
};
use crate::protocol::mcp::MAX_RPC_PAYLOAD;
use crate::protocol::tool;
use crate::time::Timestamp;
use crate::transport::link::{
    Connack, ConnectOptions, Credentials, Inbound, Publish, QoS, SubscribeToken, Subscription,
    Transmit,
};
use crate::Error;

/// How a device describes itself. Build one, then [`McpServer::new`].
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The device id: MQTT client id and server-id.
    pub device_id: DeviceId,
    /// Device kind: `lamp`, `thermostat`, `plug`, `lock`, `sensor`, `speaker`, `camera`, `virtual`.
    pub kind: String,
    /// One line for the online message.
    pub description: String,
    /// Room, if the device lives in one.
    pub room: Option<String>,
    /// Display title, e.g. "Kitchen lamp".
    pub title: Option<String>,
    /// Firmware or crate version.
    pub fw: Option<String>,
    /// Site name, sent in `MCP-META` as `location`.
    pub site: String,
    /// Who the server is, in the `initialize` result.
    pub server_info: Implementation,
    /// The tool table, shared: boards of one kind hold one copy (a lamp's table is ~9.6 KB of
    /// JSON schema maps, more than a lean board's whole budget).
    pub tools: Arc<[Tool]>,
    /// Tools per `tools/list` page.
    pub page_size: usize,
    /// Size of the `axon/call-id` cache (docs/protocol.md §6.3: 256).
    pub call_cache_size: usize,
    /// Lifetime of a cached call (docs/protocol.md §6.3: 300 s).
    pub call_cache_ttl: Duration,
    /// The broker account CONNECT carries (docs/security.md "Broker accounts").
    pub credentials: Option<Credentials>,
}

impl DeviceConfig {
    /// A config with Axon's defaults for everything but the identity and the tools.
    pub fn new(
        device_id: DeviceId,
        kind: impl Into<String>,
        description: impl Into<String>,
        tools: impl Into<Arc<[Tool]>>,
    ) -> Self {
        DeviceConfig {
            device_id,
            kind: kind.into(),
            description: description.into(),
            room: None,
            title: None,
            fw: None,
            site: "home".into(),
            server_info: Implementation {
                name: "axon-device".into(),
                title: None,
                version: env!("CARGO_PKG_VERSION").into(),
            },
            tools: tools.into(),
            page_size: 50,
            call_cache_size: 256,
            call_cache_ttl: Duration::from_secs(300),
            credentials: None,
        }
    }
}

/// A tool call the shell must carry out and answer through [`McpServer::handle_tool_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallHandle(u64);

/// Something the shell may act on or log.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The retained online message is out: the device is discoverable.
    Online {
        /// The server name in use (broker-assigned or `axon/{kind}/{id}`).
        server_name: String,
    },
    /// Run this tool. The arguments already passed validation against the tool's schema.
    ToolCall {
        /// Answer with this handle.
        call: CallHandle,
        /// Tool name.
        name: String,
        /// Validated arguments (`{}` when the caller sent none).
        arguments: Value,
    },
    /// A client finished `initialize`.
    ClientInitialized {
        /// The client's MQTT client id.
        client_id: String,
        /// The negotiated protocol version.
        protocol_version: String,
    },
    /// A client left (`notifications/disconnected` on its presence or RPC topic).
    ClientLeft {
        /// The client's MQTT client id.
        client_id: String,
    },
    /// Bad input from a peer; the error was answered where an answer was possible.
    Rejected {
        /// The client, when known.
        client_id: Option<String>,
        /// What was wrong.
        error: ErrorObject,
    },
}

#[derive(Debug, Clone)]
struct ClientSession {
    rpc_topic: String,
    ready: bool,
    resource_subscriptions: HashSet<String>,
    /// The `initialize` answer, sent again until the client shows it has it.
    init_resend: Option<InitResend>,
}

/// A client that publishes `initialize` before it subscribes to its RPC topic (EMQX's
/// TypeScript SDK) misses an answer that comes fast: the device sends the same answer again
/// until the client shows it has it (`notifications/initialized` or any other message on the
/// RPC topic), at most [`INIT_RESENDS`] times (docs/protocol.md §11 quirk 17).
#[derive(Debug, Clone)]
struct InitResend {
    payload: Vec<u8>,
    sent: u32,
    next_at: Timestamp,
}

/// How often an unacknowledged `initialize` answer goes out again, and after how long the first
/// time (doubling after that: 150, 450 and 1050 ms after the first answer).
const INIT_RESENDS: u32 = 3;
const INIT_RESEND_FIRST: Duration = Duration::from_millis(150);

#[derive(Debug, Clone)]
struct PendingInit {
    client_id: String,
    request_id: RequestId,
    outcome: Result<Value, ErrorObject>,
    protocol_version: String,
}

#[derive(Debug, Clone)]
enum CallState {
    Running { waiters: Vec<(String, RequestId)> },
    Done { result: Value },
}

#[derive(Debug, Clone)]
struct CachedCall {
    tool: String,
    args_hash: u64,
    state: CallState,
    expires: Timestamp,
}

#[derive(Debug, Clone)]
struct RunningCall {
    client_id: String,
    request_id: RequestId,
    call_id: Option<String>,
}

/// The MCP server of one device. See the module docs for the draining rule. A clone is a
/// snapshot of its state (the hostile-input harness starts every input from one).
#[derive(Debug, Clone)]
pub struct McpServer {
    config: DeviceConfig,
    server_name: String,
    connected: bool,
    online: bool,
    control_token: Option<SubscribeToken>,
    next_token: u64,
    next_call: u64,
    sessions: HashMap<String, ClientSession>,
    pending_inits: HashMap<SubscribeToken, PendingInit>,
    running: HashMap<CallHandle, RunningCall>,
    call_cache: HashMap<String, CachedCall>,
    call_order: VecDeque<String>,
    telemetry: Option<Value>,
    last_resource_update: Option<Timestamp>,
    resource_update_due: Option<Timestamp>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
}

/// The least time between two `notifications/resources/updated` (docs/protocol.md §5.6).
const RESOURCE_UPDATE_INTERVAL: Duration = Duration::from_secs(1);

impl McpServer {
    /// A server for `config`; checks the server name and every tool definition
    /// (name, object input schema, explicit annotations, `axon/permission`).
    pub fn new(config: DeviceConfig) -> Result<Self, Error> {
        let server_name = topics::axon_server_name(&config.kind, &config.device_id);
        topics::check_server_name(&server_name)?;
        for t in config.tools.iter() {
            tool::check_tool_definition(t).map_err(Error::ToolDefinition)?;
        }
        Ok(McpServer {
            config,
            server_name,
            connected: false,
            online: false,
            control_token: None,
            next_token: 1,
            next_call: 1,
            sessions: HashMap::new(),
            pending_inits: HashMap::new(),
            running: HashMap::new(),
            call_cache: HashMap::new(),
            call_order: VecDeque::new(),
            telemetry: None,
            last_resource_update: None,
            resource_update_due: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The device id (= MQTT client id = server-id).
    pub fn device_id(&self) -> &DeviceId {
        &self.config.device_id
    }

    /// The server name in use.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The device's tools.
    pub fn tools(&self) -> &[Tool] {
        &self.config.tools
    }

    /// Whether the online message has been published on the current connection.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Clients with a session (initialized or initializing).
    pub fn client_count(&self) -> usize {
        self.sessions.len()
    }

    /// The presence topic, `$mcp-server/presence/{id}/{name}`.
    pub fn presence_topic(&self) -> String {
        topics::server_presence(self.config.device_id.as_str(), &self.server_name)
    }

    /// What CONNECT must carry: client id, clean start, expiry 0, MCP user properties and the
    /// will (empty, retained, on the presence topic).
    pub fn connect_options(&self) -> ConnectOptions {
        let meta = json!({"version": env!("CARGO_PKG_VERSION"), "implementation": "axon", "location": self.config.site});
        ConnectOptions {
            client_id: self.config.device_id.to_string(),
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry_s: 0,
            user_properties: vec![
                (
                    topics::PROP_COMPONENT_TYPE.into(),
                    topics::COMPONENT_SERVER.into(),
                ),
                (topics::PROP_META.into(), jsonrpc::json_text(&meta)),
            ],
            will: Some(self.publish(self.presence_topic(), Vec::new(), true)),
            credentials: self.config.credentials.clone(),
        }
    }

    /// The MQTT connection is up. Adopts a broker-assigned `MCP-SERVER-NAME` and subscribes
    /// to the control topic; the online message follows its SUBACK.
    pub fn handle_connected(&mut self, _now: Timestamp, connack: &Connack) {
        if let Some(name) = connack.user_property(topics::PROP_SERVER_NAME) {
            if topics::check_server_name(name).is_ok() {
                self.server_name = name.to_string();
            }
        }
        self.connected = true;
        self.online = false;
        let token = self.token();
        self.control_token = Some(token);
        self.transmits.push_back(Transmit::Subscribe {
            token,
            subscriptions: vec![Subscription {
                filter: topics::control(self.config.device_id.as_str(), &self.server_name),
                qos: QoS::AtLeastOnce,
                no_local: false,
            }],
        });
    }

    /// The MQTT connection is gone. Client sessions die with it (session expiry is 0, so the
    /// broker forgot our subscriptions); clients re-initialize after we come back online.
    pub fn handle_disconnected(&mut self, _now: Timestamp) {
        self.connected = false;
        self.online = false;
        self.control_token = None;
        self.sessions.clear();
        self.pending_inits.clear();
        self.transmits.clear();
    }

    /// A SUBACK arrived for `token`.
    pub fn handle_subscribed(&mut self, now: Timestamp, token: SubscribeToken) {
        if self.control_token == Some(token) {
            self.control_token = None;
            self.publish_online();
            return;
        }
        let Some(init) = self.pending_inits.remove(&token) else {
            return;
        };
        let ok = init.outcome.is_ok();
        if let Some(session) = self.sessions.get_mut(&init.client_id) {
            session.ready = ok;
            let topic = session.rpc_topic.clone();
            let msg = Message::Response(jsonrpc::Response {
                id: Some(init.request_id),
                outcome: init.outcome,
            });
            let payload = self.send_rpc(topic, &msg);
            if ok {
                if let Some(session) = self.sessions.get_mut(&init.client_id) {
                    session.init_resend = Some(InitResend {
                        payload,
                        sent: 0,
                        next_at: now + INIT_RESEND_FIRST,
                    });
                }
            }
        }
        if ok {
            self.events.push_back(ServerEvent::ClientInitialized {
                client_id: init.client_id,
                protocol_version: init.protocol_version,
            });
        }
    }

    /// A message arrived on one of the device's subscriptions.
    pub fn handle_message(&mut self, now: Timestamp, msg: &Inbound) {
        match Topic::parse(&msg.topic) {
            Some(Topic::Control { server_id, .. })
                if server_id == self.config.device_id.as_str() =>
            {
                self.handle_control(now, msg);
            }
            Some(Topic::Rpc {
                client_id,
                server_id,
                ..
            }) if server_id == self.config.device_id.as_str() => {
                let client_id = client_id.to_string();
                self.handle_rpc(now, &client_id, msg);
            }
            Some(Topic::ClientPresence { client_id }) => {
                let client_id = client_id.to_string();
                if let Ok(Message::Notification(n)) = jsonrpc::parse(&msg.payload) {
                    if n.method == "notifications/disconnected" {
                        self.drop_client(&client_id);
                    }
                }
            }
            // Roots changes and anything else are of no interest to a device.
            _ => {}
        }
    }

    /// The result of a [`ServerEvent::ToolCall`]. A result too large to send becomes a
    /// `-32600` error (docs/protocol.md §6.5: the device must downscale or say so).
    pub fn handle_tool_result(&mut self, now: Timestamp, call: CallHandle, result: CallToolResult) {
        let Some(running) = self.running.remove(&call) else {
            return;
        };
        let value = serde_json::to_value(&result).unwrap_or_else(
            |e| json!({"content":[{"type":"text","text":e.to_string()}],"isError":true}),
        );
        let mut waiters = vec![(running.client_id, running.request_id)];
        if let Some(call_id) = running.call_id {
            if let Some(entry) = self.call_cache.get_mut(&call_id) {
                if let CallState::Running { waiters: w } = &mut entry.state {
                    waiters.append(w);
                }
                entry.state = CallState::Done {
                    result: value.clone(),
                };
                entry.expires = now + self.config.call_cache_ttl;
            }
        }
        for (client_id, request_id) in waiters {
            self.answer(&client_id, Message::result(request_id, value.clone()));
        }
    }

    /// Replaces the tool table and tells every client (`notifications/tools/list_changed`
    /// on the capability topic, a broadcast).
    pub fn set_tools(&mut self, tools: impl Into<Arc<[Tool]>>) -> Result<(), Error> {
        let tools = tools.into();
        for t in tools.iter() {
            tool::check_tool_definition(t).map_err(Error::ToolDefinition)?;
        }
        self.config.tools = tools;
        if self.online {
            let msg = Message::notification("notifications/tools/list_changed", None);
            self.send_capability(&msg);
        }
        Ok(())
    }

    /// The latest telemetry sample, served as the resource `axon://{id}/telemetry`. Subscribed
    /// clients get `notifications/resources/updated`, at most once per second.
    pub fn set_telemetry(&mut self, now: Timestamp, telemetry: Value) {
        self.telemetry = Some(telemetry);
        if !self
            .sessions
            .values()
            .any(|s| s.resource_subscriptions.contains(&self.telemetry_uri()))
        {
            return;
        }
        match self.last_resource_update {
            Some(last) if now < last + RESOURCE_UPDATE_INTERVAL => {
                self.resource_update_due
                    .get_or_insert(last + RESOURCE_UPDATE_INTERVAL);
            }
            _ => self.send_resource_updated(now),
        }
    }

    /// Graceful leave: the empty retained presence (the tombstone). The shell waits for its
    /// PUBACK, then disconnects.
    pub fn leave(&mut self) {
        self.online = false;
        let p = self.publish(self.presence_topic(), Vec::new(), true);
        self.transmits.push_back(Transmit::Publish(p));
    }

    /// Time passed: expires cached calls and sends a deferred resource update.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.resource_update_due.is_some_and(|t| t <= now) {
            self.resource_update_due = None;
            self.send_resource_updated(now);
        }
        self.expire_calls(now);
        self.resend_init_answers(now);
    }

    /// Sends each unacknowledged `initialize` answer that is due again.
    fn resend_init_answers(&mut self, now: Timestamp) {
        let mut due = Vec::new();
        for s in self.sessions.values_mut() {
            let Some(r) = s.init_resend.as_mut() else {
                continue;
            };
            if r.next_at > now {
                continue;
            }
            due.push((s.rpc_topic.clone(), r.payload.clone()));
            r.sent += 1;
            r.next_at = now + INIT_RESEND_FIRST * 2u32.pow(r.sent);
            if r.sent >= INIT_RESENDS {
                s.init_resend = None;
            }
        }
        for (topic, payload) in due {
            let p = self.publish(topic, payload, false);
            self.transmits.push_back(Transmit::Publish(p));
        }
    }

    /// The next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`McpServer::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let cache = self
            .call_order
            .front()
            .and_then(|id| self.call_cache.get(id))
            .map(|c| c.expires);
        let resend = self
            .sessions
            .values()
            .filter_map(|s| s.init_resend.as_ref().map(|r| r.next_at))
            .min();
        crate::time::earliest(
            crate::time::earliest(self.resource_update_due, cache),
            resend,
        )
    }

    // --- control topic: initialize -------------------------------------------------------

    fn handle_control(&mut self, _now: Timestamp, msg: &Inbound) {
        // Without MCP-MQTT-CLIENT-ID there is no RPC topic to answer on (docs/protocol.md §4.3).
        let Some(client_id) = msg
            .user_property(topics::PROP_CLIENT_ID)
            .map(str::to_string)
        else {
            self.events.push_back(ServerEvent::Rejected {
                client_id: None,
                error: ErrorObject::new(
                    code::INVALID_REQUEST,
                    "initialize without the MCP-MQTT-CLIENT-ID user property; cannot answer",
                ),
            });
            return;
        };
        if topics::check_client_id(&client_id).is_err() {
            self.events.push_back(ServerEvent::Rejected {
                client_id: Some(client_id.clone()),
                error: ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!("invalid client id {client_id:?} in MCP-MQTT-CLIENT-ID"),
                ),
            });
            return;
        }
        // Its three topics must fit in MQTT, or the SUBSCRIBE fails and the client waits for
        // an answer that cannot come.
        let rpc_topic = topics::rpc(
            &client_id,
            self.config.device_id.as_str(),
            &self.server_name,
        );
        let presence = topics::client_presence(&client_id);
        let capability = topics::client_capability(&client_id);
        if let Some(size) =
            topics::too_long([rpc_topic.as_str(), presence.as_str(), capability.as_str()])
        {
            self.events.push_back(ServerEvent::Rejected {
                client_id: Some(client_id),
                error: ErrorObject::with_data(
                    code::INVALID_REQUEST,
                    format!(
                        "MCP-MQTT-CLIENT-ID too long: its topics would be {size} bytes, over MQTT's {}; cannot answer",
                        topics::MAX_TOPIC_LEN
                    ),
                    json!({"limit": topics::MAX_TOPIC_LEN, "size": size}),
                ),
            });
            return;
        }
        let (request_id, outcome, version) = match self.check_payload(&msg.payload) {
            Err(fail) => match fail.id {
                // A malformed response or notification is never answered (§7), id or not.
                Some(id) if fail.answerable => (id, Err(fail.error), String::new()),
                _ => {
                    self.reject(Some(client_id), fail.error);
                    return;
                }
            },
            Ok(Message::Request(req)) if req.method == "initialize" => {
                let outcome = self.initialize_result(req.params);
                let version = outcome
                    .as_ref()
                    .ok()
                    .and_then(|v| v["protocolVersion"].as_str())
                    .unwrap_or_default()
                    .to_string();
                (req.id, outcome, version)
            }
            Ok(Message::Request(req)) => {
                let e = ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!(
                        "only initialize goes to the control topic, got {}",
                        req.method
                    ),
                );
                (req.id, Err(e), String::new())
            }
            Ok(_) => {
                self.reject(
                    Some(client_id),
                    ErrorObject::new(
                        code::INVALID_REQUEST,
                        "the control topic takes initialize requests only",
                    ),
                );
                return;
            }
        };
        if let Err(e) = &outcome {
            self.events.push_back(ServerEvent::Rejected {
                client_id: Some(client_id.clone()),
                error: e.clone(),
            });
        }
        // A second initialize from a known client replaces its session
        // (docs/protocol.md §11 quirk 14).
        self.sessions.insert(
            client_id.clone(),
            ClientSession {
                rpc_topic: rpc_topic.clone(),
                ready: false,
                resource_subscriptions: HashSet::new(),
                init_resend: None,
            },
        );
        let token = self.token();
        self.pending_inits.insert(
            token,
            PendingInit {
                client_id: client_id.clone(),
                request_id,
                outcome,
                protocol_version: version,
            },
        );
        // Subscribe to the client's three topics and answer only after the SUBACK (quirk 10).
        let sub = |filter: String, no_local: bool| Subscription {
            filter,
            qos: QoS::AtLeastOnce,
            no_local,
        };
        self.transmits.push_back(Transmit::Subscribe {
            token,
            subscriptions: vec![
                sub(presence, false),
                sub(capability, false),
                sub(rpc_topic, true),
            ],
        });
    }

    fn initialize_result(&self, params: Option<Value>) -> Result<Value, ErrorObject> {
        let params = InitializeParams::from_value(params.as_ref().unwrap_or(&Value::Null))
            .map_err(|e| ErrorObject::invalid_params(format!("invalid initialize params: {e}")))?;
        let version = types::negotiate_version(&params.protocol_version);
        let meta = self.device_meta();
        Ok(json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": false},
                "experimental": {types::EXPERIMENTAL_CALL_ID: {"size": self.config.call_cache_size, "ttl_s": self.config.call_cache_ttl.as_secs()}},
            },
            "serverInfo": self.config.server_info,
            "instructions": format!("{} ({}{})", self.config.description, meta.kind, meta.room.map(|r| format!(", {r}")).unwrap_or_default()),
        }))
    }

    // --- RPC topic --------------------------------------------------------------------------

    fn handle_rpc(&mut self, now: Timestamp, client_id: &str, msg: &Inbound) {
        if !self.sessions.contains_key(client_id) {
            // A client that never initialized (or that we dropped) has no session; we are not
            // subscribed to its topic either, so this is a stray delivery. Ignore it.
            return;
        }
        // Anything from the client on its RPC topic shows it has the initialize answer.
        if let Some(s) = self.sessions.get_mut(client_id) {
            s.init_resend = None;
        }
        let message = match self.check_payload(&msg.payload) {
            Ok(m) => m,
            Err(fail) => {
                if let Some(resp) = fail.response() {
                    self.answer(client_id, Message::Response(resp));
                }
                self.reject(Some(client_id.to_string()), fail.error);
                return;
            }
        };
        match message {
            Message::Request(req) => self.handle_request(now, client_id, req),
            Message::Notification(n) => match n.method.as_str() {
                "notifications/initialized" => {
                    if let Some(s) = self.sessions.get_mut(client_id) {
                        s.ready = true;
                    }
                }
                "notifications/disconnected" => self.drop_client(client_id),
                // Cancellation: tools on a board finish fast; a late result is simply ignored by
                // the client (MCP). Progress and others need nothing from us.
                _ => {}
            },
            // A device sends no requests, so a response is stray.
            Message::Response(_) => {}
        }
    }

    fn handle_request(&mut self, now: Timestamp, client_id: &str, req: jsonrpc::Request) {
        let id = req.id.clone();
        let outcome = match req.method.as_str() {
            "ping" => Ok(json!({})),
            "tools/list" => self.tools_list(req.params.as_ref()),
            "tools/call" => return self.tools_call(now, client_id, req),
            "resources/list" => Ok(json!({"resources": [self.telemetry_resource()]})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
            "resources/read" => self.resources_read(req.params.as_ref()),
            "resources/subscribe" | "resources/unsubscribe" => {
                let subscribe = req.method == "resources/subscribe";
                self.resources_subscribe(client_id, req.params.as_ref(), subscribe)
            }
            "initialize" => Err(ErrorObject::new(
                code::INVALID_REQUEST,
                "initialize goes to the control topic, not the RPC topic",
            )),
            other => Err(ErrorObject::method_not_found(other)),
        };
        if let Err(e) = &outcome {
            self.reject(Some(client_id.to_string()), e.clone());
        }
        self.answer(
            client_id,
            Message::Response(jsonrpc::Response {
                id: Some(id),
                outcome,
            }),
        );
    }

    fn tools_list(&self, params: Option<&Value>) -> Result<Value, ErrorObject> {
        let start = match params.and_then(|p| p.get("cursor")) {
            None | Some(Value::Null) => 0,
            Some(Value::String(c)) => c
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= self.config.tools.len())
                .ok_or_else(|| {
                    ErrorObject::invalid_params(format!(
                        "invalid cursor {c:?}: use the nextCursor of the previous page"
                    ))
                })?,
            Some(other) => {
                return Err(ErrorObject::invalid_params(format!(
                    "cursor must be a string, got {other}"
                )))
            }
        };
        let page = self.config.page_size.max(1);
        let end = (start + page).min(self.config.tools.len());
        let mut result = json!({"tools": self.config.tools[start..end]});
        if end < self.config.tools.len() {
            result["nextCursor"] = Value::from(end.to_string());
        }
        Ok(result)
    }

    fn tools_call(&mut self, now: Timestamp, client_id: &str, req: jsonrpc::Request) {
        let id = req.id;
        let fail = |s: &mut Self, e: ErrorObject| {
            s.reject(Some(client_id.to_string()), e.clone());
            s.answer(client_id, Message::error(Some(id.clone()), e));
        };
        let params = req.params.unwrap_or(Value::Null);
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return fail(
                self,
                ErrorObject::with_data(
                    code::INVALID_PARAMS,
                    "tools/call needs params.name (a string)",
                    json!({"field":"name"}),
                ),
            );
        };
        let Some(tool) = self.config.tools.iter().find(|t| t.name == name) else {
            let known: Vec<&str> = self.config.tools.iter().map(|t| t.name.as_str()).collect();
            return fail(
                self,
                ErrorObject::with_data(
                    code::INVALID_PARAMS,
                    format!("unknown tool {name:?}; this device has {known:?}"),
                    json!({"field":"name","tools":known}),
                ),
            );
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a) => a.clone(),
        };
        if let Err(e) = tool::validate_arguments(&tool.input_schema, &arguments) {
            return fail(self, e.to_error_object());
        }
        let name = name.to_string();
        let call_id = params
            .get("_meta")
            .and_then(|m| m.get(types::META_CALL_ID))
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(call_id) = &call_id {
            self.expire_calls(now);
            let args_hash = hash_json(&arguments);
            if let Some(entry) = self.call_cache.get_mut(call_id) {
                if entry.tool != name || entry.args_hash != args_hash {
                    return fail(
                        self,
                        ErrorObject::with_data(
                            code::INVALID_PARAMS,
                            "call-id reused with different arguments",
                            json!({"field":"_meta.axon/call-id"}),
                        ),
                    );
                }
                match &mut entry.state {
                    CallState::Done { result } => {
                        let result = result.clone();
                        self.answer(client_id, Message::result(id, result));
                    }
                    CallState::Running { waiters } => waiters.push((client_id.to_string(), id)),
                }
                return;
            }
            self.remember_call(
                call_id.clone(),
                CachedCall {
                    tool: name.clone(),
                    args_hash,
                    state: CallState::Running {
                        waiters: Vec::new(),
                    },
                    expires: now + self.config.call_cache_ttl,
                },
            );
        }
        let call = CallHandle(self.next_call);
        self.next_call += 1;
        self.running.insert(
            call,
            RunningCall {
                client_id: client_id.to_string(),
                request_id: id,
                call_id,
            },
        );
        self.events.push_back(ServerEvent::ToolCall {
            call,
            name,
            arguments,
        });
    }

    fn remember_call(&mut self, call_id: String, entry: CachedCall) {
        while self.call_cache.len() >= self.config.call_cache_size.max(1) {
            let Some(oldest) = self.call_order.pop_front() else {
                break;
            };
            self.call_cache.remove(&oldest);
        }
        self.call_order.push_back(call_id.clone());
        self.call_cache.insert(call_id, entry);
    }

    fn expire_calls(&mut self, now: Timestamp) {
        while let Some(oldest) = self.call_order.front() {
            match self.call_cache.get(oldest) {
                // A running call stays until it finishes: its waiters need the answer.
                Some(c) if c.expires > now || matches!(c.state, CallState::Running { .. }) => break,
                _ => {
                    let id = self.call_order.pop_front();
                    if let Some(id) = id {
                        self.call_cache.remove(&id);
                    }
                }
            }
        }
    }

    fn telemetry_uri(&self) -> String {
        format!("axon://{}/telemetry", self.config.device_id)
    }

    fn telemetry_resource(&self) -> Resource {
        Resource {
            uri: self.telemetry_uri(),
            name: "telemetry".into(),
            title: Some("Latest telemetry".into()),
            description: Some(
                "The latest telemetry sample, as published on axon/telemetry/{id}/latest".into(),
            ),
            mime_type: Some("application/json".into()),
        }
    }

    /// `params.uri`, which must be this device's telemetry resource (the only one it has).
    fn telemetry_uri_param<'a>(
        &self,
        method: &str,
        params: Option<&'a Value>,
    ) -> Result<&'a str, ErrorObject> {
        let uri = params
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ErrorObject::with_data(
                    code::INVALID_PARAMS,
                    format!("{method} needs params.uri (a string)"),
                    json!({"field":"uri"}),
                )
            })?;
        if uri != self.telemetry_uri() {
            return Err(ErrorObject::with_data(
                code::RESOURCE_NOT_FOUND,
                format!("resource not found: {uri}"),
                json!({"uri": uri}),
            ));
        }
        Ok(uri)
    }

    fn resources_read(&self, params: Option<&Value>) -> Result<Value, ErrorObject> {
        let uri = self.telemetry_uri_param("resources/read", params)?;
        let text = self
            .telemetry
            .as_ref()
            .map(jsonrpc::json_text)
            .unwrap_or_else(|| "{}".into());
        let contents = ResourceContents {
            uri: uri.to_string(),
            mime_type: Some("application/json".into()),
            text: Some(text),
            blob: None,
        };
        Ok(json!({"contents": [contents]}))
    }

    fn resources_subscribe(
        &mut self,
        client_id: &str,
        params: Option<&Value>,
        subscribe: bool,
    ) -> Result<Value, ErrorObject> {
        let method = if subscribe {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        let uri = self.telemetry_uri_param(method, params)?;
        if let Some(s) = self.sessions.get_mut(client_id) {
            if subscribe {
                s.resource_subscriptions.insert(uri.to_string());
            } else {
                s.resource_subscriptions.remove(uri);
            }
        }
        Ok(json!({}))
    }

    fn send_resource_updated(&mut self, now: Timestamp) {
        self.last_resource_update = Some(now);
        let msg = Message::notification(
            "notifications/resources/updated",
            Some(json!({"uri": self.telemetry_uri()})),
        );
        self.send_capability(&msg);
    }

    // --- helpers ------------------------------------------------------------------------------

    /// Size check, then parse. An oversize payload is `-32600` with `{limit, size}`.
    fn check_payload(&self, payload: &[u8]) -> Result<Message, jsonrpc::ParseFailure> {
        if payload.len() > MAX_RPC_PAYLOAD {
            return Err(jsonrpc::ParseFailure {
                id: cheap_request_id(payload),
                error: ErrorObject::payload_too_large(payload.len(), MAX_RPC_PAYLOAD),
                answerable: true,
            });
        }
        jsonrpc::parse(payload)
    }

    fn drop_client(&mut self, client_id: &str) {
        let Some(session) = self.sessions.remove(client_id) else {
            return;
        };
        self.pending_inits.retain(|_, p| p.client_id != client_id);
        self.transmits.push_back(Transmit::Unsubscribe {
            filters: vec![
                topics::client_presence(client_id),
                topics::client_capability(client_id),
                session.rpc_topic,
            ],
        });
        self.events.push_back(ServerEvent::ClientLeft {
            client_id: client_id.to_string(),
        });
    }

    fn reject(&mut self, client_id: Option<String>, error: ErrorObject) {
        self.events
            .push_back(ServerEvent::Rejected { client_id, error });
    }

    fn answer(&mut self, client_id: &str, msg: Message) {
        let Some(topic) = self.sessions.get(client_id).map(|s| s.rpc_topic.clone()) else {
            return;
        };
        self.send_rpc(topic, &msg);
    }

    /// Publishes `msg` on `topic` and returns the payload that went out.
    fn send_rpc(&mut self, topic: String, msg: &Message) -> Vec<u8> {
        let mut bytes = msg.to_bytes();
        if bytes.len() > MAX_RPC_PAYLOAD {
            let id = match msg {
                Message::Response(r) => r.id.clone(),
                _ => None,
            };
            let e = ErrorObject::with_data(
                code::INVALID_REQUEST,
                format!(
                    "payload too large: the result is {} bytes, over the {} byte limit",
                    bytes.len(),
                    MAX_RPC_PAYLOAD
                ),
                json!({"limit": MAX_RPC_PAYLOAD, "size": bytes.len()}),
            );
            bytes = Message::error(id, e).to_bytes();
        }
        let p = self.publish(topic, bytes.clone(), false);
        self.transmits.push_back(Transmit::Publish(p));
        bytes
    }

    fn send_capability(&mut self, msg: &Message) {
        let topic = topics::server_capability(self.config.device_id.as_str(), &self.server_name);
        let p = self.publish(topic, msg.to_bytes(), false);
        self.transmits.push_back(Transmit::Publish(p));
    }

    fn publish_online(&mut self) {
        let online = ServerOnline {
            server_name: self.server_name.clone(),
            description: self.config.description.clone(),
            meta: Some(json!({"axon": self.device_meta()})),
        };
        let msg = Message::notification(
            "notifications/server/online",
            serde_json::to_value(online).ok(),
        );
        let p = self.publish(self.presence_topic(), msg.to_bytes(), true);
        self.transmits.push_back(Transmit::Publish(p));
        self.online = true;
        self.events.push_back(ServerEvent::Online {
            server_name: self.server_name.clone(),
        });
    }

    fn device_meta(&self) -> DeviceMeta {
        DeviceMeta {
            device_id: self.config.device_id.to_string(),
            kind: self.config.kind.clone(),
            room: self.config.room.clone(),
            title: self.config.title.clone(),
            fw: self.config.fw.clone(),
        }
    }

    fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) -> Publish {
        topics::mcp_publish(
            topic,
            payload,
            retain,
            topics::COMPONENT_SERVER,
            self.config.device_id.as_str(),
        )
    }

    fn token(&mut self) -> SubscribeToken {
        let t = SubscribeToken(self.next_token);
        self.next_token += 1;
        t
    }
}

/// FNV-1a over the canonical JSON text (serde_json maps are sorted), so equal arguments hash
/// equally whatever their key order on the wire.
pub(crate) fn hash_json(v: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in jsonrpc::json_text(v).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The id of an oversize request, found without parsing all of it: only a top-level `"id"`
/// in the first 4 KiB counts (docs/protocol.md §6.5).
fn cheap_request_id(payload: &[u8]) -> Option<RequestId> {
    let head = &payload[..payload.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let at = text.find("\"id\"")?;
    let rest = text[at + 4..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        let end = s.find('"')?;
        return Some(RequestId::String(s[..end].to_string()));
    }
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok().map(RequestId::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_id_finds_numbers_and_strings() {
        assert_eq!(
            cheap_request_id(br#"{"jsonrpc":"2.0","id": 42,"method":"x"}"#),
            Some(RequestId::Number(42))
        );
        assert_eq!(
            cheap_request_id(br#"{"id":"abc","params":{}}"#),
            Some(RequestId::String("abc".into()))
        );
        assert_eq!(cheap_request_id(b"garbage"), None);
    }

    #[test]
    fn hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(hash_json(&a), hash_json(&b));
    }

    /// A device with no tools, online, with its transmits drained.
    fn online_device() -> McpServer {
        let id = DeviceId::new("lamp-1").unwrap();
        let mut d = McpServer::new(DeviceConfig::new(id, "lamp", "Lamp", Vec::new())).unwrap();
        d.handle_connected(Timestamp::ZERO, &Default::default());
        while let Some(t) = d.poll_transmit() {
            if let Transmit::Subscribe { token, .. } = t {
                d.handle_subscribed(Timestamp::ZERO, token);
            }
        }
        while d.poll_transmit().is_some() {}
        d
    }

    fn from_client(topic: String, body: Value) -> Inbound {
        Inbound {
            topic,
            payload: body.to_string().into_bytes(),
            retain: false,
            user_properties: vec![
                (topics::PROP_CLIENT_ID.into(), "late-client".into()),
                (topics::PROP_COMPONENT_TYPE.into(), "mcp-client".into()),
            ],
        }
    }

    /// The payloads published on `topic` since the last call.
    fn published_on(d: &mut McpServer, topic: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(t) = d.poll_transmit() {
            if let Transmit::Publish(p) = t {
                if p.topic == topic {
                    out.push(p.payload);
                }
            }
        }
        out
    }

    /// Initializes `late-client` and returns its RPC topic and the first answer.
    fn initialize(d: &mut McpServer, at: Timestamp) -> (String, Vec<u8>) {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "late", "version": "1"}}});
        d.handle_message(
            at,
            &from_client(topics::control("lamp-1", d.server_name()), init),
        );
        let token = std::iter::from_fn(|| d.poll_transmit())
            .find_map(|t| match t {
                Transmit::Subscribe { token, .. } => Some(token),
                _ => None,
            })
            .expect("the device subscribes to the client's topics");
        d.handle_subscribed(at, token);
        let rpc = topics::rpc("late-client", "lamp-1", d.server_name());
        let answers = published_on(d, &rpc);
        assert_eq!(answers.len(), 1, "one answer right after the SUBACK");
        (rpc, answers[0].clone())
    }

    #[test]
    fn an_initialize_answer_goes_out_again_until_the_client_shows_it_has_it() {
        let mut d = online_device();
        let t0 = Timestamp::from_millis(1000);
        let (rpc, first) = initialize(&mut d, t0);
        // Nothing from the client yet (it subscribed too late for the first answer): the same
        // answer again at 150 ms, then 450 ms, then 1050 ms, and never a fourth time.
        let mut resent_at = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(5) {
            now = d.poll_timeout().expect("a resend is pending").max(now);
            if now >= t0 + Duration::from_secs(5) {
                break;
            }
            d.handle_timeout(now);
            for p in published_on(&mut d, &rpc) {
                assert_eq!(p, first, "the resent answer is the same message, same id");
                resent_at.push(now.saturating_since(t0).as_millis());
            }
            if d.poll_timeout().is_none() {
                break;
            }
        }
        assert_eq!(resent_at, vec![150, 450, 1050]);
        assert_eq!(d.poll_timeout(), None, "nothing left to resend");
    }

    #[test]
    fn notifications_initialized_stops_the_resends() {
        let mut d = online_device();
        let t0 = Timestamp::from_millis(1000);
        let (rpc, _) = initialize(&mut d, t0);
        d.handle_timeout(t0 + Duration::from_millis(150));
        assert_eq!(
            published_on(&mut d, &rpc).len(),
            1,
            "one resend before the client answered"
        );
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        d.handle_message(
            t0 + Duration::from_millis(200),
            &from_client(rpc.clone(), done),
        );
        assert_eq!(d.poll_timeout(), None);
        d.handle_timeout(t0 + Duration::from_secs(2));
        assert!(
            published_on(&mut d, &rpc).is_empty(),
            "no resend after the client has it"
        );
    }
}
