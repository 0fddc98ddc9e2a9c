//! The Hub side of MCP over MQTT: discovery, initialize, tools and calls (docs/protocol.md §5, §6).
//!
//! Owns the client protocol and the device registry: it watches presence, initializes every
//! device that comes online, lists its tools (following `nextCursor`), re-lists on
//! `list_changed`, and correlates requests with responses under deadlines. A call is checked
//! against the tool's input schema **before** anything is sent; a request to a device that
//! goes offline fails at once with `-32010`; a request with no answer fails with `-32011`
//! after its timeout and a `notifications/cancelled`; a lost broker fails everything in
//! flight with `-32013`. Nothing ever hangs.
//!
//! Devices are keyed by their stable **device id** ([`identity`]), never by a server-id alone: a
//! server-id is one connection and may change on every reconnect. A new instance of a known
//! device (a reboot with a fresh server-id) takes the device over; a late tombstone or will of
//! an instance that was taken over is ignored (docs/protocol.md §2.5, §5.2).
//!
//! It never opens a socket, reads a clock, or decides policy (permissions belong to the agent).
//!
//! Draining rule: after any `handle_*` call or command, call [`McpClient::poll_transmit`]
//! and [`McpClient::poll_event`] until both return `None`; call
//! [`McpClient::handle_timeout`] at [`McpClient::poll_timeout`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use crate::protocol::jsonrpc::{self, code, ErrorObject, Message, RequestId};
use crate::protocol::mcp::identity::{self, IdSource};
use crate::protocol::mcp::in_flight::{Requests, Subacks, Window};
use crate::protocol::mcp::topics::{self, DeviceId, Topic};
use crate::protocol::mcp::types::{self, DeviceMeta, Implementation, ServerOnline, Tool};
use crate::protocol::mcp::MAX_RPC_PAYLOAD;
use crate::protocol::tool;
use crate::time::{Rng, Timestamp};
use crate::transport::link::{
    Connack, ConnectOptions, Credentials, Inbound, Publish, QoS, SubscribeToken, Subscription,
    Transmit,
};

/// Devices initializing at once by default: enough to keep a broker round trip busy, few
/// enough that a site's whole presence replay never has more than this in flight.
pub const DEFAULT_INITIALIZE_WINDOW: usize = 64;

/// How the client identifies itself and how patient it is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// MQTT client id = mcp-client-id, e.g. `axon-hub.home.0a1b2c3d` (fresh per connection).
    pub client_id: String,
    /// Site name, sent in `MCP-META` as `location`.
    pub site: String,
    /// Who the client is, in `initialize`.
    pub client_info: Implementation,
    /// Server-name filters for presence, used unless the broker sends `MCP-SERVER-NAME-FILTERS`.
    pub server_name_filters: Vec<String>,
    /// Default timeout of every request (docs/protocol.md §6.5: 10 s).
    pub request_timeout: Duration,
    /// Hard cap a request may reach through progress notifications (60 s).
    pub max_request_timeout: Duration,
    /// Seed for call ids (UUID v4).
    pub seed: u64,
    /// The broker account CONNECT carries (docs/security.md "Broker accounts").
    pub credentials: Option<Credentials>,
    /// Server names of paired devices outside the filters (docs/security.md "Pairing"): each is
    /// discovered whatever filters are in force, the broker's included, because the owner
    /// approved that device by name.
    pub paired_server_names: Vec<String>,
    /// How many devices may be initializing at once (subscribe, `initialize`, `tools/list`);
    /// the rest wait their turn in the order their online messages came (docs/scale.md §3).
    pub initialize_window: usize,
}

impl ClientConfig {
    /// Axon's defaults: filter `axon/#`, 10 s timeout, 60 s cap.
    pub fn new(client_id: impl Into<String>, seed: u64) -> Self {
        ClientConfig {
            client_id: client_id.into(),
            site: "home".into(),
            client_info: Implementation {
                name: "axon-hub".into(),
                title: None,
                version: env!("CARGO_PKG_VERSION").into(),
            },
            server_name_filters: vec!["axon/#".into()],
            request_timeout: Duration::from_secs(10),
            max_request_timeout: Duration::from_secs(60),
            seed,
            credentials: None,
            paired_server_names: Vec::new(),
            initialize_window: DEFAULT_INITIALIZE_WINDOW,
        }
    }
}

/// Where a device stands with this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Online message seen; initialize under way.
    Initializing,
    /// Initialized and tools listed: calls may go.
    Ready,
    /// Online by presence but initialize failed or timed out (docs/protocol.md §5.2, §11 quirk 13).
    Unreachable,
    /// Presence cleared or the device said goodbye.
    Offline,
    /// Our own broker link dropped; waiting for presence to replay.
    Unknown,
}

/// One device in the registry, keyed by its device id.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    /// The stable device id (docs/protocol.md §2.5): `meta.axon.device_id`, else derived from
    /// the server-name. Permissions, memory, `/api` and `/mcp` names all use it.
    pub device_id: DeviceId,
    /// The server-id of the instance the device is reached at now (the newest one seen; for
    /// Axon devices it equals the device id, for EMQX's SDKs it changes per connection).
    pub server_id: String,
    /// server-name, e.g. `axon/lamp/kitchen-1`.
    pub server_name: String,
    /// The online message's description.
    pub description: String,
    /// `meta.axon` of the online message (kind, room, title), as the device sent it.
    pub meta: DeviceMeta,
    /// The kind: `meta.axon.kind`, else from the server-name; empty when neither tells.
    pub kind: String,
    /// Where it stands.
    pub state: DeviceState,
    /// Its tools, once listed.
    pub tools: Vec<Tool>,
    /// The negotiated protocol version.
    pub protocol_version: Option<String>,
    /// Whether it advertises the `axon/call-id` cache.
    pub call_id_cache: bool,
    /// When we last heard from it.
    #[serde(skip)]
    pub last_seen: Timestamp,
}

impl DeviceInfo {
    /// The tool called `name`.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

/// Identifies a request made through [`McpClient::call_tool`] or [`McpClient::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(pub u64);

/// Options of one call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Overrides the default timeout.
    pub timeout: Option<Duration>,
    /// Reuse this idempotency key (a retry); otherwise a fresh UUID v4.
    pub call_id: Option<String>,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A device's online message arrived; initialize starts.
    DeviceOnline {
        /// The device.
        device_id: DeviceId,
    },
    /// A device is initialized and its tools are listed.
    DeviceReady {
        /// The device.
        device_id: DeviceId,
    },
    /// A device's tools were listed again after `list_changed`.
    ToolsChanged {
        /// The device.
        device_id: DeviceId,
    },
    /// A device went offline (tombstone, will, or `notifications/disconnected`).
    DeviceOffline {
        /// The device.
        device_id: DeviceId,
    },
    /// A device is online by presence but does not answer.
    DeviceUnreachable {
        /// The device.
        device_id: DeviceId,
        /// Why.
        error: ErrorObject,
    },
    /// A resource of a device changed (`notifications/resources/updated`).
    ResourceUpdated {
        /// The device.
        device_id: DeviceId,
        /// The resource.
        uri: String,
    },
    /// A request finished: the device's result, its error, or ours (`-32010`, `-32011`, `-32013`).
    Response {
        /// The request.
        handle: RequestHandle,
        /// The outcome.
        outcome: Result<Value, ErrorObject>,
    },
}

#[derive(Debug, Clone)]
enum Purpose {
    Initialize,
    ListTools { acc: Vec<Tool>, changed: bool },
    User(RequestHandle),
}

#[derive(Debug, Clone)]
struct Pending {
    method: String,
    purpose: Purpose,
    hard_deadline: Timestamp,
    timeout: Duration,
}

/// The MCP client. See the module docs for the draining rule. A clone is a snapshot of its
/// state.
#[derive(Debug, Clone)]
pub struct McpClient {
    config: ClientConfig,
    rng: Rng,
    connected: bool,
    /// The filters of this connection (the broker's or the configured ones), paired names apart.
    filters_in_force: Vec<String>,
    next_id: i64,
    next_handle: u64,
    next_token: u64,
    devices: BTreeMap<DeviceId, DeviceInfo>,
    /// The server-id of each device's current instance, to its device.
    instances: HashMap<String, DeviceId>,
    pending: Requests<Pending>,
    /// Subscriptions for one instance of a device, waiting for their SUBACK.
    awaiting_suback: Subacks,
    /// Devices between their online message and their first tool list.
    window: Window,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl McpClient {
    /// A client with `config`.
    pub fn new(config: ClientConfig) -> Self {
        let rng = Rng::new(config.seed);
        let window = Window::new(config.initialize_window);
        McpClient {
            config,
            rng,
            connected: false,
            filters_in_force: Vec::new(),
            next_id: 1,
            next_handle: 1,
            next_token: 1,
            devices: BTreeMap::new(),
            instances: HashMap::new(),
            pending: Requests::default(),
            awaiting_suback: Subacks::default(),
            window,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The mcp-client-id.
    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// A paired device's server name joins discovery: subscribed now when connected, and on
    /// every connection after. A name already present changes nothing.
    pub fn add_paired_server_name(&mut self, name: &str) -> Result<(), crate::Error> {
        topics::check_server_name(name)?;
        if self.config.paired_server_names.iter().any(|n| n == name) {
            return Ok(());
        }
        self.config.paired_server_names.push(name.to_string());
        if self.connected {
            let token = self.token();
            self.transmits.push_back(Transmit::Subscribe {
                token,
                subscriptions: vec![Subscription {
                    filter: topics::server_presence_filter(name),
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                }],
            });
        }
        Ok(())
    }

    /// A revoked device's server name leaves discovery. Unless the filters in force cover it
    /// too, the devices under that name go offline now: no presence of theirs (a will included)
    /// reaches this client any more, so nothing else would ever say they left.
    pub fn remove_paired_server_name(&mut self, name: &str) {
        let before = self.config.paired_server_names.len();
        self.config.paired_server_names.retain(|n| n != name);
        if self.config.paired_server_names.len() == before {
            return;
        }
        if self.connected {
            self.transmits.push_back(Transmit::Unsubscribe {
                filters: vec![topics::server_presence_filter(name)],
            });
        }
        if topics::covered_by_filters(name, &self.filters_in_force) {
            return;
        }
        let gone: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|(_, d)| d.server_name == name)
            .map(|(id, _)| id.clone())
            .collect();
        for device_id in gone {
            self.forget_device_topics(&device_id);
            self.mark_offline(&device_id, "its pairing was revoked");
        }
    }

    /// Uses a new client id for the next connection (the Hub's is fresh per connection).
    pub fn set_client_id(&mut self, client_id: impl Into<String>) {
        self.config.client_id = client_id.into();
    }

    /// Whether the broker link is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Every known device, in device id order.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceInfo> {
        self.devices.values()
    }

    /// The devices after `after` (every device when `None`), in device id order: a page of a
    /// listing, read from its cursor rather than from the start.
    pub fn devices_after(&self, after: Option<&str>) -> impl Iterator<Item = &DeviceInfo> {
        use std::ops::Bound;
        let from = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        self.devices
            .range::<str, _>((from, Bound::Unbounded))
            .map(|(_, d)| d)
    }

    /// The device with this device id.
    pub fn device(&self, device_id: &str) -> Option<&DeviceInfo> {
        self.devices.get(device_id)
    }

    /// The device `address` names: its device id, its full server-name, or its server-name's
    /// last level when no other device shares it ([`identity::resolve`]).
    pub fn resolve(&self, address: &str) -> Result<&DeviceInfo, ErrorObject> {
        match self.devices.get(address) {
            Some(d) => Ok(d),
            None => identity::resolve(self.devices.values(), address),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Devices initializing now (at most [`ClientConfig::initialize_window`]) and devices
    /// waiting for a place.
    pub fn initializations(&self) -> (usize, usize) {
        self.window.counts()
    }

    /// What CONNECT must carry, with the will `notifications/disconnected` on our presence topic.
    pub fn connect_options(&self) -> ConnectOptions {
        let meta = json!({"version": env!("CARGO_PKG_VERSION"), "implementation": "axon", "location": self.config.site});
        let will = Message::notification("notifications/disconnected", None);
        ConnectOptions {
            client_id: self.config.client_id.clone(),
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry_s: 0,
            user_properties: vec![
                (
                    topics::PROP_COMPONENT_TYPE.into(),
                    topics::COMPONENT_CLIENT.into(),
                ),
                (topics::PROP_META.into(), meta.to_string()),
            ],
            will: Some(self.publish(
                topics::client_presence(&self.config.client_id),
                will.to_bytes(),
                false,
            )),
            credentials: self.config.credentials.clone(),
        }
    }

    /// The broker link is up: subscribe to presence (the broker's filters if it sent any).
    pub fn handle_connected(&mut self, _now: Timestamp, connack: &Connack) {
        self.connected = true;
        let filters = connack
            .user_property(topics::PROP_SERVER_NAME_FILTERS)
            .and_then(|f| serde_json::from_str::<Vec<String>>(f).ok())
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| self.config.server_name_filters.clone());
        self.filters_in_force = filters.clone();
        let filters: Vec<String> = filters
            .into_iter()
            .chain(self.config.paired_server_names.iter().cloned())
            .collect();
        let token = self.token();
        self.transmits.push_back(Transmit::Subscribe {
            token,
            subscriptions: filters
                .iter()
                .map(|f| Subscription {
                    filter: topics::server_presence_filter(f),
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                })
                .collect(),
        });
    }

    /// The broker link dropped: everything in flight fails with `-32013`, every device is
    /// `Unknown` until presence replays on the next connection.
    pub fn handle_disconnected(&mut self, _now: Timestamp) {
        self.connected = false;
        self.transmits.clear();
        self.awaiting_suback.clear();
        // Presence replays on the next connection and queues every device again.
        self.window.clear();
        for (_, p) in self.pending.drain() {
            if let Purpose::User(handle) = p.purpose {
                let e = ErrorObject::new(
                    code::BROKER_UNAVAILABLE,
                    format!(
                        "broker unavailable: the connection dropped during {}",
                        p.method
                    ),
                );
                self.events.push_back(ClientEvent::Response {
                    handle,
                    outcome: Err(e),
                });
            }
        }
        for d in self.devices.values_mut() {
            if d.state != DeviceState::Offline {
                d.state = DeviceState::Unknown;
            }
        }
    }

    /// A SUBACK arrived for `token`.
    pub fn handle_subscribed(&mut self, now: Timestamp, token: SubscribeToken) {
        let Some((device_id, server_id)) = self.awaiting_suback.remove(&token) else {
            return;
        };
        let Some(device) = self.devices.get(&device_id) else {
            return;
        };
        // A SUBACK for an instance that has since been replaced starts nothing.
        if device.state != DeviceState::Initializing || device.server_id != server_id {
            return;
        }
        let params = json!({
            "protocolVersion": types::LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": self.config.client_info,
        });
        let control = topics::control(&server_id, &device.server_name);
        let timeout = self.config.request_timeout;
        // An initialize request is a few hundred bytes: it cannot exceed the payload limit.
        let _ = self.send_request(
            now,
            &device_id,
            control,
            "initialize",
            Some(params),
            Purpose::Initialize,
            timeout,
        );
    }

    /// A message arrived.
    pub fn handle_message(&mut self, now: Timestamp, msg: &Inbound) {
        self.dispatch(now, msg);
        // An answer may have finished an initialization: its place goes to the next device.
        self.admit();
    }

    fn dispatch(&mut self, now: Timestamp, msg: &Inbound) {
        match Topic::parse(&msg.topic) {
            Some(Topic::ServerPresence {
                server_id,
                server_name,
            }) => {
                let (sid, name) = (server_id.to_string(), server_name.to_string());
                self.handle_presence(now, sid, name, &msg.payload);
            }
            Some(Topic::ServerCapability { server_id, .. }) => {
                if let Some(id) = self.current(server_id) {
                    self.handle_capability(now, &id, &msg.payload);
                }
            }
            Some(Topic::Rpc {
                client_id,
                server_id,
                ..
            }) if client_id == self.config.client_id => {
                // Only the current instance of a device is listened to.
                if let Some(id) = self.current(server_id) {
                    self.handle_rpc(now, &id, &msg.payload);
                }
            }
            _ => {}
        }
    }

    /// Calls `tool` on the device at `address` (its id, server-name or unique last level, see
    /// [`McpClient::resolve`]). Fails at once, sending nothing, when the device is unknown or not
    /// ready (`-32010`), the address is ambiguous, the tool is unknown or the arguments break
    /// the schema (`-32602` naming the field), or the request is too large (`-32600`).
    pub fn call_tool(
        &mut self,
        now: Timestamp,
        address: &str,
        tool_name: &str,
        arguments: Value,
        options: CallOptions,
    ) -> Result<RequestHandle, ErrorObject> {
        let device = self.ready_device(address)?;
        let device_id = device.device_id.clone();
        let Some(tool) = device.tool(tool_name) else {
            let known: Vec<&str> = device.tools.iter().map(|t| t.name.as_str()).collect();
            return Err(ErrorObject::with_data(
                code::INVALID_PARAMS,
                format!("unknown tool {tool_name:?} on {device_id}; it has {known:?}"),
                json!({"field":"name","tools":known}),
            ));
        };
        tool::validate_arguments(&tool.input_schema, &arguments)
            .map_err(|e| e.to_error_object())?;
        let call_id = options.call_id.unwrap_or_else(|| self.rng.uuid_v4());
        let params = json!({"name": tool_name, "arguments": arguments, "_meta": {types::META_CALL_ID: call_id}});
        self.request(
            now,
            device_id.as_str(),
            "tools/call",
            Some(params),
            options.timeout,
        )
    }

    /// Sends any request (`ping`, `resources/read`, `tools/list`, ...) to the ready device at
    /// `address`.
    pub fn request(
        &mut self,
        now: Timestamp,
        address: &str,
        method: &str,
        params: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<RequestHandle, ErrorObject> {
        let device = self.ready_device(address)?;
        let device_id = device.device_id.clone();
        let topic = topics::rpc(
            &self.config.client_id,
            &device.server_id,
            &device.server_name,
        );
        let handle = RequestHandle(self.next_handle);
        self.next_handle += 1;
        let timeout = timeout
            .unwrap_or(self.config.request_timeout)
            .min(self.config.max_request_timeout);
        self.send_request(
            now,
            &device_id,
            topic,
            method,
            params,
            Purpose::User(handle),
            timeout,
        )?;
        Ok(handle)
    }

    /// Leaves one device: `notifications/disconnected` on its RPC topic, then unsubscribe.
    pub fn disconnect_device(&mut self, address: &str) {
        let Ok(device) = self.resolve(address) else {
            return;
        };
        let device_id = device.device_id.clone();
        let bye = Message::notification("notifications/disconnected", None);
        self.send_to_device(&device_id, &bye);
        self.forget_device_topics(&device_id);
        self.mark_offline(&device_id, "the client left the device");
    }

    /// Leaves every device: `notifications/disconnected` on our presence topic. The shell
    /// then waits for the PUBACK and disconnects.
    pub fn leave(&mut self) {
        let bye = Message::notification("notifications/disconnected", None);
        let p = self.publish(
            topics::client_presence(&self.config.client_id),
            bye.to_bytes(),
            false,
        );
        self.transmits.push_back(Transmit::Publish(p));
    }

    /// Time passed: requests past their deadline fail with `-32011` and a
    /// `notifications/cancelled` goes to the device.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.expire(now);
        self.admit();
    }

    fn expire(&mut self, now: Timestamp) {
        for key in self.pending.expired(now) {
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            let (device_id, id) = key;
            let e = ErrorObject::with_data(
                code::REQUEST_TIMEOUT,
                format!(
                    "{} to {device_id} timed out after {} ms",
                    p.method,
                    p.timeout.as_millis()
                ),
                json!({"timeout_ms": p.timeout.as_millis() as u64}),
            );
            match p.purpose {
                Purpose::User(handle) => {
                    self.send_cancel(&device_id, &id, "timeout");
                    self.events.push_back(ClientEvent::Response {
                        handle,
                        outcome: Err(e),
                    });
                }
                Purpose::Initialize | Purpose::ListTools { .. } => {
                    self.mark_unreachable(&device_id, e)
                }
            }
        }
    }

    /// The next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The earliest request deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.pending.earliest()
    }

    // --- presence, capability, rpc ---------------------------------------------------------

    fn handle_presence(
        &mut self,
        now: Timestamp,
        server_id: String,
        server_name: String,
        payload: &[u8],
    ) {
        // Empty payload = offline, whatever its RETAIN flag (docs/protocol.md §5.2). Only the
        // current instance of a device can take it offline: the late tombstone or will of an
        // instance that a newer one replaced is about a connection that is gone already.
        if payload.is_empty() {
            if let Some(device_id) = self.current(&server_id) {
                self.forget_device_topics(&device_id);
                self.mark_offline(&device_id, "the device went offline");
            }
            return;
        }
        let online = match jsonrpc::parse(payload) {
            Ok(Message::Notification(n)) if n.method == "notifications/server/online" => {
                serde_json::from_value::<ServerOnline>(n.params.unwrap_or(Value::Null)).ok()
            }
            _ => None,
        };
        let Some(online) = online else { return };
        let meta = online
            .meta
            .as_ref()
            .and_then(|m| m.get("axon"))
            .and_then(|a| serde_json::from_value::<DeviceMeta>(a.clone()).ok())
            .unwrap_or_default();
        // The name comes from the topic, not the payload (docs/protocol.md §11 quirk 9).
        let found = identity::identify(&server_name, &meta);
        let device_id = self.claim(found.device_id, found.source, &server_name);
        // This connection used to be another device (its online message changed its id).
        if let Some(before) = self.instances.get(&server_id).cloned() {
            if before != device_id {
                self.forget_device_topics(&before);
                self.mark_offline(&before, "the server now says it is another device");
                self.instances.remove(&server_id);
            }
        }
        let replaced = self
            .devices
            .get(&device_id)
            .filter(|d| d.server_id != server_id)
            .map(|d| (d.server_id.clone(), d.server_name.clone(), d.state));
        if let Some((old_id, old_name, old_state)) = replaced {
            self.retire_instance(&device_id, &old_id, &old_name, old_state);
        }
        let device = self
            .devices
            .entry(device_id.clone())
            .or_insert_with(|| DeviceInfo {
                device_id: device_id.clone(),
                server_id: server_id.clone(),
                server_name: server_name.clone(),
                description: String::new(),
                meta: DeviceMeta::default(),
                kind: String::new(),
                state: DeviceState::Initializing,
                tools: Vec::new(),
                protocol_version: None,
                call_id_cache: false,
                last_seen: now,
            });
        if device.state == DeviceState::Initializing
            && device.server_id == server_id
            && device.server_name == server_name
            && self.awaiting_suback.awaits(&device_id, &server_id)
        {
            return; // a duplicate while we are already initializing it
        }
        device.server_id = server_id.clone();
        device.server_name = server_name.clone();
        device.description = online.description;
        device.meta = meta;
        device.kind = found.kind;
        device.state = DeviceState::Initializing;
        device.last_seen = now;
        self.instances.insert(server_id.clone(), device_id.clone());
        // A fresh online message means a fresh device session: drop what we had in flight.
        self.fail_pending_for(&device_id, code::DEVICE_OFFLINE, "the device restarted");
        self.events.push_back(ClientEvent::DeviceOnline {
            device_id: device_id.clone(),
        });
        // Names this long make topics MQTT cannot carry: the SUBSCRIBE would fail and the
        // device would stay initializing for ever. Say so instead.
        let rpc = topics::rpc(&self.config.client_id, &server_id, &server_name);
        let capability = topics::server_capability(&server_id, &server_name);
        if let Some(size) = topics::too_long([rpc.as_str(), capability.as_str()]) {
            let e = ErrorObject::with_data(
                code::INVALID_REQUEST,
                format!(
                    "its server id and name make a {size}-byte topic, over MQTT's {}: it cannot be reached",
                    topics::MAX_TOPIC_LEN
                ),
                json!({"limit": topics::MAX_TOPIC_LEN, "size": size}),
            );
            return self.mark_unreachable(&device_id, e);
        }
        // Its turn in the initialization window: now if it holds a place (a new instance of a
        // device being initialized), else once one is free.
        if self.window.holds(&device_id) {
            self.subscribe_device(&device_id);
        } else {
            self.window.enqueue(device_id);
            self.admit();
        }
    }

    /// Frees the places of devices whose initialization is over (ready, unreachable,
    /// offline) and starts the next waiting ones. Costs the window's size, not the fleet's.
    fn admit(&mut self) {
        let devices = &self.devices;
        let initializing =
            |d: &DeviceId| devices.get(d).map(|d| d.state) == Some(DeviceState::Initializing);
        self.window.release_unless(initializing);
        while let Some(device_id) = self
            .window
            .admit_next(|d| self.devices.get(d).map(|d| d.state) == Some(DeviceState::Initializing))
        {
            self.subscribe_device(&device_id);
        }
    }

    /// Subscribes to the capability and RPC topics of `device_id`'s current instance; its
    /// SUBACK starts `initialize`.
    fn subscribe_device(&mut self, device_id: &DeviceId) {
        let Some(device) = self.devices.get(device_id) else {
            return;
        };
        let (server_id, server_name) = (device.server_id.clone(), device.server_name.clone());
        let token = self.token();
        self.awaiting_suback
            .insert(token, device_id.clone(), server_id.clone());
        self.transmits.push_back(Transmit::Subscribe {
            token,
            subscriptions: vec![
                Subscription {
                    filter: topics::server_capability(&server_id, &server_name),
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                },
                Subscription {
                    filter: topics::rpc(&self.config.client_id, &server_id, &server_name),
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                },
            ],
        });
    }

    /// The id a newly seen server gets. An id from `meta` is the device's word. An id derived
    /// from a name that another server-name already holds goes to the first one seen; the
    /// second gets the hashed form of its own name, so two servers never merge by accident.
    fn claim(&self, id: DeviceId, source: IdSource, server_name: &str) -> DeviceId {
        match (source, self.devices.get(&id)) {
            (IdSource::Name, Some(d)) if d.server_name != server_name => {
                identity::hashed_id(server_name)
            }
            _ => id,
        }
    }

    /// A newer instance takes `device_id` over from `server_id`: the old session is ended
    /// (goodbye and unsubscribe, if it was live) and the old server-id forgotten, so its late
    /// tombstone, will or answers are ignored.
    fn retire_instance(
        &mut self,
        device_id: &DeviceId,
        server_id: &str,
        server_name: &str,
        state: DeviceState,
    ) {
        if matches!(
            state,
            DeviceState::Initializing | DeviceState::Ready | DeviceState::Unreachable
        ) {
            let rpc = topics::rpc(&self.config.client_id, server_id, server_name);
            let bye = Message::notification("notifications/disconnected", None);
            let p = self.publish(rpc.clone(), bye.to_bytes(), false);
            self.transmits.push_back(Transmit::Publish(p));
            self.transmits.push_back(Transmit::Unsubscribe {
                filters: vec![topics::server_capability(server_id, server_name), rpc],
            });
        }
        self.awaiting_suback.forget_device(device_id);
        if self.instances.get(server_id) == Some(device_id) {
            self.instances.remove(server_id);
        }
    }

    /// The device whose current instance is `server_id`.
    fn current(&self, server_id: &str) -> Option<DeviceId> {
        let id = self.instances.get(server_id)?;
        let device = self.devices.get(id)?;
        (device.server_id == server_id).then(|| id.clone())
    }

    fn handle_capability(&mut self, now: Timestamp, device_id: &DeviceId, payload: &[u8]) {
        let Ok(Message::Notification(n)) = jsonrpc::parse(payload) else {
            return;
        };
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        device.last_seen = now;
        match n.method.as_str() {
            "notifications/tools/list_changed" if device.state == DeviceState::Ready => {
                self.list_tools(now, device_id, Vec::new(), None, true);
            }
            "notifications/resources/updated" => {
                if let Some(uri) = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("uri"))
                    .and_then(Value::as_str)
                {
                    self.events.push_back(ClientEvent::ResourceUpdated {
                        device_id: device_id.clone(),
                        uri: uri.into(),
                    });
                }
            }
            _ => {}
        }
    }

    fn handle_rpc(&mut self, now: Timestamp, device_id: &DeviceId, payload: &[u8]) {
        if let Some(d) = self.devices.get_mut(device_id) {
            d.last_seen = now;
        }
        let message = match jsonrpc::parse(payload) {
            Ok(m) => m,
            // A malformed request is answered (-32700, -32600) like any request; a malformed
            // response or notification is not, so that two confused peers cannot ping-pong
            // (docs/protocol.md §7).
            Err(fail) => {
                if let Some(resp) = fail.response() {
                    self.send_to_device(device_id, &Message::Response(resp));
                }
                return;
            }
        };
        match message {
            Message::Response(resp) => {
                let Some(id) = resp.id else { return };
                // Unknown or already answered ids are dropped (QoS 1 duplicates, late answers).
                let Some(p) = self.pending.remove(&(device_id.clone(), id)) else {
                    return;
                };
                self.handle_response(now, device_id, p, resp.outcome);
            }
            Message::Request(req) => {
                let answer = match req.method.as_str() {
                    "ping" => Message::result(req.id, json!({})),
                    other => Message::error(Some(req.id), ErrorObject::method_not_found(other)),
                };
                self.send_to_device(device_id, &answer);
            }
            Message::Notification(n) => match n.method.as_str() {
                "notifications/disconnected" => {
                    self.forget_device_topics(device_id);
                    self.mark_offline(device_id, "the device ended the session");
                }
                "notifications/progress" => {
                    self.extend_for_progress(now, device_id, n.params.as_ref())
                }
                _ => {}
            },
        }
    }

    fn handle_response(
        &mut self,
        now: Timestamp,
        device_id: &DeviceId,
        p: Pending,
        outcome: Result<Value, ErrorObject>,
    ) {
        match p.purpose {
            Purpose::User(handle) => self
                .events
                .push_back(ClientEvent::Response { handle, outcome }),
            Purpose::Initialize => {
                let result = match outcome {
                    Ok(r) => r,
                    Err(e) => return self.mark_unreachable(device_id, e),
                };
                let version = result
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if !types::SUPPORTED_PROTOCOL_VERSIONS.contains(&version.as_str()) {
                    let e = ErrorObject::invalid_params(format!(
                        "unsupported protocol version {version:?}; Axon speaks {:?}",
                        types::SUPPORTED_PROTOCOL_VERSIONS
                    ));
                    self.disconnect_device(device_id.as_str());
                    return self.mark_unreachable(device_id, e);
                }
                let call_id_cache = result
                    .pointer("/capabilities/experimental")
                    .and_then(|e| e.get(types::EXPERIMENTAL_CALL_ID))
                    .is_some();
                if let Some(d) = self.devices.get_mut(device_id) {
                    d.protocol_version = Some(version);
                    d.call_id_cache = call_id_cache;
                }
                self.send_to_device(
                    device_id,
                    &Message::notification("notifications/initialized", None),
                );
                self.list_tools(now, device_id, Vec::new(), None, false);
            }
            Purpose::ListTools { mut acc, changed } => {
                let result = match outcome {
                    Ok(r) => r,
                    Err(e) => return self.mark_unreachable(device_id, e),
                };
                if let Some(tools) = result.get("tools").and_then(Value::as_array) {
                    // A tool we cannot read is skipped, not fatal: the others still work.
                    acc.extend(
                        tools
                            .iter()
                            .filter_map(|t| serde_json::from_value::<Tool>(t.clone()).ok()),
                    );
                }
                match result.get("nextCursor").and_then(Value::as_str) {
                    Some(cursor) if !cursor.is_empty() => {
                        let cursor = cursor.to_string();
                        self.list_tools(now, device_id, acc, Some(cursor), changed);
                    }
                    _ => {
                        if let Some(d) = self.devices.get_mut(device_id) {
                            d.tools = acc;
                            d.state = DeviceState::Ready;
                        }
                        let device_id = device_id.clone();
                        self.events.push_back(if changed {
                            ClientEvent::ToolsChanged { device_id }
                        } else {
                            ClientEvent::DeviceReady { device_id }
                        });
                    }
                }
            }
        }
    }

    fn list_tools(
        &mut self,
        now: Timestamp,
        device_id: &DeviceId,
        acc: Vec<Tool>,
        cursor: Option<String>,
        changed: bool,
    ) {
        let Some(device) = self.devices.get(device_id) else {
            return;
        };
        let topic = topics::rpc(
            &self.config.client_id,
            &device.server_id,
            &device.server_name,
        );
        let params = cursor.map(|c| json!({"cursor": c}));
        let timeout = self.config.request_timeout;
        // A too-large list request cannot happen (it is tiny); ignore the impossible error.
        let _ = self.send_request(
            now,
            device_id,
            topic,
            "tools/list",
            params,
            Purpose::ListTools { acc, changed },
            timeout,
        );
    }

    fn extend_for_progress(
        &mut self,
        now: Timestamp,
        device_id: &DeviceId,
        params: Option<&Value>,
    ) {
        let Some(token) = params.and_then(|p| p.get("progressToken")) else {
            return;
        };
        let id = match token {
            Value::String(s) => RequestId::String(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(n) => RequestId::Number(n),
                None => return,
            },
            _ => return,
        };
        // Axon sends the request id as the progress token.
        let key = (device_id.clone(), id);
        if let Some(p) = self.pending.get(&key) {
            let deadline = (now + p.timeout).min(p.hard_deadline);
            self.pending.set_deadline(&key, deadline);
        }
    }

    // --- helpers ------------------------------------------------------------------------------

    fn ready_device(&self, address: &str) -> Result<&DeviceInfo, ErrorObject> {
        if !self.connected {
            return Err(ErrorObject::new(
                code::BROKER_UNAVAILABLE,
                "broker unavailable: not connected",
            ));
        }
        let d = self.resolve(address)?;
        if d.state == DeviceState::Ready {
            return Ok(d);
        }
        Err(ErrorObject::with_data(
            code::DEVICE_OFFLINE,
            format!(
                "device {} is not available (state: {:?})",
                d.device_id, d.state
            ),
            json!({"device": d.device_id, "state": d.state}),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn send_request(
        &mut self,
        now: Timestamp,
        device_id: &DeviceId,
        topic: String,
        method: &str,
        params: Option<Value>,
        purpose: Purpose,
        timeout: Duration,
    ) -> Result<(), ErrorObject> {
        let id = RequestId::Number(self.next_id);
        let params = match (params, &purpose) {
            // Ask for progress on user requests, keyed by the request id.
            (Some(Value::Object(mut p)), Purpose::User(_)) => {
                let meta = p.entry("_meta").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert("progressToken".into(), json!(self.next_id));
                }
                Some(Value::Object(p))
            }
            (p, _) => p,
        };
        let bytes = Message::request(id.clone(), method, params).to_bytes();
        if bytes.len() > MAX_RPC_PAYLOAD {
            return Err(ErrorObject::payload_too_large(bytes.len(), MAX_RPC_PAYLOAD));
        }
        self.next_id += 1;
        let p = self.publish(topic, bytes, false);
        self.transmits.push_back(Transmit::Publish(p));
        self.pending.insert(
            (device_id.clone(), id),
            now + timeout,
            Pending {
                method: method.to_string(),
                purpose,
                hard_deadline: now + self.config.max_request_timeout,
                timeout,
            },
        );
        Ok(())
    }

    fn send_cancel(&mut self, device_id: &DeviceId, id: &RequestId, reason: &str) {
        let id_value = serde_json::to_value(id).unwrap_or(Value::Null);
        let msg = Message::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id_value, "reason": reason})),
        );
        self.send_to_device(device_id, &msg);
    }

    /// Sends on the RPC topic of the device's current instance.
    fn send_to_device(&mut self, device_id: &DeviceId, msg: &Message) {
        let Some(device) = self.devices.get(device_id) else {
            return;
        };
        let topic = topics::rpc(
            &self.config.client_id,
            &device.server_id,
            &device.server_name,
        );
        let p = self.publish(topic, msg.to_bytes(), false);
        self.transmits.push_back(Transmit::Publish(p));
    }

    fn forget_device_topics(&mut self, device_id: &DeviceId) {
        let Some(device) = self.devices.get(device_id) else {
            return;
        };
        if device.state == DeviceState::Offline {
            return;
        }
        self.awaiting_suback.forget_device(device_id);
        let filters = vec![
            topics::server_capability(&device.server_id, &device.server_name),
            topics::rpc(
                &self.config.client_id,
                &device.server_id,
                &device.server_name,
            ),
        ];
        self.transmits.push_back(Transmit::Unsubscribe { filters });
    }

    fn mark_offline(&mut self, device_id: &DeviceId, why: &str) {
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        if device.state == DeviceState::Offline {
            return;
        }
        device.state = DeviceState::Offline;
        self.fail_pending_for(device_id, code::DEVICE_OFFLINE, why);
        self.events.push_back(ClientEvent::DeviceOffline {
            device_id: device_id.clone(),
        });
    }

    fn mark_unreachable(&mut self, device_id: &DeviceId, error: ErrorObject) {
        if let Some(d) = self.devices.get_mut(device_id) {
            d.state = DeviceState::Unreachable;
        }
        self.events.push_back(ClientEvent::DeviceUnreachable {
            device_id: device_id.clone(),
            error,
        });
    }

    fn fail_pending_for(&mut self, device_id: &DeviceId, error_code: i64, why: &str) {
        for key in self.pending.of_device(device_id) {
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            if let Purpose::User(handle) = p.purpose {
                let e = ErrorObject::with_data(
                    error_code,
                    format!("{} to {device_id} failed: {why}", p.method),
                    json!({"device": device_id}),
                );
                self.events.push_back(ClientEvent::Response {
                    handle,
                    outcome: Err(e),
                });
            }
        }
    }

    fn publish(&self, topic: String, payload: Vec<u8>, retain: bool) -> Publish {
        topics::mcp_publish(
            topic,
            payload,
            retain,
            topics::COMPONENT_CLIENT,
            &self.config.client_id,
        )
    }

    fn token(&mut self) -> SubscribeToken {
        let t = SubscribeToken(self.next_token);
        self.next_token += 1;
        t
    }
}
