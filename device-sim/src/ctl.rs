//! "Our client": an async MCP-over-MQTT client on rumqttc, driving `axon-core`'s `McpClient`.
//!
//! Owns the run loop of one client connection and the hand-off of answers to the callers
//! waiting for them. Used by `axon-device-sim ctl`, the benchmark and the system tests; the
//! Hub in the edge worker drives the same `McpClient` over WebSocket.

use std::collections::HashMap;
use std::time::Duration;

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::protocol::mcp::client::{
    CallOptions, ClientConfig, ClientEvent, DeviceInfo, DeviceState, McpClient, RequestHandle,
};
use axon_core::protocol::mcp::identity;
use axon_core::time::Rng;
use axon_core::transport::link::Credentials;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::mqtt::{self, BrokerAddr, Driver, LinkEvent, Sizing};
use crate::SimError;

/// How a controller connects.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Client id; default `axon-ctl.{8 hex}`.
    pub client_id: Option<String>,
    /// Presence filters (server names); default `axon/#`.
    pub filters: Vec<String>,
    /// Default request timeout.
    pub timeout: Duration,
    /// How long `connect` waits for the broker.
    pub connect_timeout: Duration,
    /// The broker account (the owner's, `axon-admin`, for `ctl`).
    pub credentials: Option<Credentials>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            client_id: None,
            filters: vec!["axon/#".into()],
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            credentials: None,
        }
    }
}

/// What the controller knows, published after every change.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Whether the broker link is up.
    pub connected: bool,
    /// Every device seen, in device id order.
    pub devices: Vec<DeviceInfo>,
    /// Devices that went offline, in order (for tests that wait for a crash to be noticed).
    pub offline_events: usize,
    /// The CONNACK code that refused our account; the controller has stopped.
    pub refused: Option<u8>,
}

type Reply = oneshot::Sender<Result<Value, ErrorObject>>;

enum Command {
    Call {
        device: String,
        tool: String,
        args: Value,
        options: CallOptions,
        reply: Reply,
    },
    Request {
        device: String,
        method: String,
        params: Option<Value>,
        timeout: Option<Duration>,
        reply: Reply,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// A connected MCP client. Cheap to clone; every clone talks to the same connection.
#[derive(Clone)]
pub struct Controller {
    commands: mpsc::UnboundedSender<Command>,
    snapshot: watch::Receiver<Snapshot>,
    client_id: String,
}

impl Controller {
    /// Connects and starts discovering devices. Fails if the broker does not answer in time.
    pub async fn connect(
        broker: &BrokerAddr,
        options: ControllerOptions,
    ) -> Result<Controller, SimError> {
        let mut rng = Rng::new(mqtt::seed());
        let client_id = options
            .client_id
            .clone()
            .unwrap_or_else(|| format!("axon-ctl.{}", rng.hex(4)));
        let mut config = ClientConfig::new(client_id.clone(), rng.next_u64());
        config.client_info.name = "axon-ctl".into();
        config.server_name_filters = options.filters.clone();
        config.request_timeout = options.timeout;
        config.credentials = options.credentials.clone();
        let client = McpClient::new(config);
        let (mqtt_client, events) = mqtt::connect(
            &client.connect_options(),
            broker,
            Sizing::CONTROLLER,
            rng.next_u64(),
        );
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (snapshot_tx, mut snapshot) = watch::channel(Snapshot::default());
        tokio::spawn(drive(
            client,
            Driver::new(mqtt_client),
            events,
            command_rx,
            snapshot_tx,
        ));
        let connected = {
            let wait = snapshot.wait_for(|s| s.connected || s.refused.is_some());
            matches!(
                tokio::time::timeout(options.connect_timeout, wait).await,
                Ok(Ok(_))
            )
        };
        if let Some(code) = snapshot.borrow().refused {
            let user = options.credentials.as_ref().map(|c| c.username.as_str());
            return Err(crate::accounts::refused(broker, user, code));
        }
        if connected {
            Ok(Controller {
                commands,
                snapshot,
                client_id,
            })
        } else {
            Err(SimError::Unreachable {
                addr: broker.to_string(),
                secs: options.connect_timeout.as_secs(),
            })
        }
    }

    /// This client's MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The current view of the devices.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Every device seen so far.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.snapshot.borrow().devices.clone()
    }

    /// Waits until `pred` holds for the snapshot; false at the deadline.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Snapshot) -> bool) -> bool {
        let mut rx = self.snapshot.clone();
        let ok = matches!(
            tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await,
            Ok(Ok(_))
        );
        ok
    }

    /// Waits until every device in `ids` (device ids, server-names or unique last levels, as
    /// [`McpClient::resolve`] reads them) is ready.
    pub async fn wait_for_devices(&self, ids: &[&str], timeout: Duration) -> Result<(), SimError> {
        let is_ready = |s: &Snapshot, id: &str| {
            identity::resolve(&s.devices, id).is_ok_and(|d| d.state == DeviceState::Ready)
        };
        let ready = |s: &Snapshot| ids.iter().all(|id| is_ready(s, id));
        if self.wait_until(timeout, ready).await {
            return Ok(());
        }
        let s = self.snapshot();
        let missing: Vec<_> = ids.iter().filter(|id| !is_ready(&s, id)).collect();
        Err(SimError::Timeout {
            secs: timeout.as_secs(),
            detail: format!("not ready: {missing:?}"),
        })
    }

    /// Waits until at least `n` devices are ready.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> Result<(), SimError> {
        let ok = self
            .wait_until(timeout, |s| {
                s.devices
                    .iter()
                    .filter(|d| d.state == DeviceState::Ready)
                    .count()
                    >= n
            })
            .await;
        if ok {
            return Ok(());
        }
        let got = self
            .snapshot()
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Ready)
            .count();
        Err(SimError::Timeout {
            secs: timeout.as_secs(),
            detail: format!("{got} of {n} devices ready"),
        })
    }

    /// Calls a tool; the result is the `CallToolResult` JSON. Errors are JSON-RPC error objects:
    /// the device's, or the client's own (`-32010` offline, `-32011` timeout, `-32013` broker).
    pub async fn call_tool(
        &self,
        device: &str,
        tool: &str,
        args: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, ErrorObject> {
        self.call_tool_with(
            device,
            tool,
            args,
            CallOptions {
                timeout,
                call_id: None,
            },
        )
        .await
    }

    /// [`Controller::call_tool`] with full options (e.g. a fixed `axon/call-id` for a retry).
    pub async fn call_tool_with(
        &self,
        device: &str,
        tool: &str,
        args: Value,
        options: CallOptions,
    ) -> Result<Value, ErrorObject> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Call {
            device: device.into(),
            tool: tool.into(),
            args,
            options,
            reply,
        };
        self.send(cmd, rx).await
    }

    /// Any request to a ready device (`ping`, `resources/read`, ...).
    pub async fn request(
        &self,
        device: &str,
        method: &str,
        params: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, ErrorObject> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request {
            device: device.into(),
            method: method.into(),
            params,
            timeout,
            reply,
        };
        self.send(cmd, rx).await
    }

    async fn send(
        &self,
        cmd: Command,
        rx: oneshot::Receiver<Result<Value, ErrorObject>>,
    ) -> Result<Value, ErrorObject> {
        let gone = || ErrorObject::new(code::BROKER_UNAVAILABLE, "the controller has stopped");
        self.commands.send(cmd).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Leaves gracefully: `notifications/disconnected` on our presence, then DISCONNECT.
    pub async fn close(self) {
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Close { done }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

async fn drive(
    mut client: McpClient,
    mut driver: Driver,
    mut events: mqtt::Events,
    mut commands: mpsc::UnboundedReceiver<Command>,
    snapshot: watch::Sender<Snapshot>,
) {
    let mut waiting: HashMap<RequestHandle, Reply> = HashMap::new();
    let mut offline_events = 0usize;
    loop {
        let timeout = client.poll_timeout().map(mqtt::instant_of);
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match driver.read(ev) {
                    Some(LinkEvent::Connected(connack)) => client.handle_connected(mqtt::now(), &connack),
                    Some(LinkEvent::Message(m)) => client.handle_message(mqtt::now(), &m),
                    Some(LinkEvent::Subscribed(token)) => client.handle_subscribed(mqtt::now(), token),
                    Some(LinkEvent::Disconnected(reason)) => {
                        if client.is_connected() {
                            tracing::warn!(%reason, "broker connection lost; reconnecting with backoff");
                        }
                        client.handle_disconnected(mqtt::now());
                    }
                    Some(LinkEvent::Refused(code)) => {
                        snapshot.send_modify(|s| s.refused = Some(code));
                        break;
                    }
                    Some(LinkEvent::TakenOver) => {
                        tracing::error!("another client took over our client id; stopping");
                        client.handle_disconnected(mqtt::now());
                        flush_events(&mut client, &mut waiting, &mut offline_events);
                        break;
                    }
                    Some(LinkEvent::PublishRefused { pkid, reason }) => tracing::warn!(pkid, %reason, "broker refused a publish"),
                    Some(LinkEvent::PubAck(_) | LinkEvent::PublishSent(_)) | None => {}
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                let now = mqtt::now();
                match cmd {
                    Command::Call { device, tool, args, options, reply } => match client.call_tool(now, &device, &tool, args, options) {
                        Ok(h) => { waiting.insert(h, reply); }
                        Err(e) => { let _ = reply.send(Err(e)); }
                    },
                    Command::Request { device, method, params, timeout, reply } => match client.request(now, &device, &method, params, timeout) {
                        Ok(h) => { waiting.insert(h, reply); }
                        Err(e) => { let _ = reply.send(Err(e)); }
                    },
                    Command::Close { done } => {
                        client.leave();
                        while let Some(t) = client.poll_transmit() {
                            let _ = driver.transmit(t).await;
                        }
                        // Wait for the PUBACK of our goodbye, then disconnect.
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                        let mut sent = None;
                        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
                            match driver.read(ev) {
                                Some(LinkEvent::PublishSent(pkid)) if sent.is_none() => sent = Some(pkid),
                                Some(LinkEvent::PubAck(pkid)) if Some(pkid) == sent => break,
                                Some(LinkEvent::Disconnected(_)) => break,
                                _ => {}
                            }
                        }
                        let _ = driver.client().disconnect().await;
                        let _ = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
                        let _ = done.send(());
                        return;
                    }
                }
            }
            _ = async { match timeout { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                client.handle_timeout(mqtt::now());
            }
        }
        while let Some(t) = client.poll_transmit() {
            if let Err(e) = driver.transmit(t).await {
                tracing::warn!(error = %e, "could not hand a message to the MQTT client");
            }
        }
        let changed = flush_events(&mut client, &mut waiting, &mut offline_events);
        // A dropped link changes every device's state without an event: republish then too.
        if changed || snapshot.borrow().connected != client.is_connected() {
            let s = Snapshot {
                connected: client.is_connected(),
                devices: client.devices().cloned().collect(),
                offline_events,
                refused: None,
            };
            snapshot.send_replace(s);
        }
    }
    // The connection is gone for good: nobody waits forever.
    for (_, reply) in waiting.drain() {
        let _ = reply.send(Err(ErrorObject::new(
            code::BROKER_UNAVAILABLE,
            "the controller stopped",
        )));
    }
}

/// Routes responses to their callers; true if the registry changed.
fn flush_events(
    client: &mut McpClient,
    waiting: &mut HashMap<RequestHandle, Reply>,
    offline_events: &mut usize,
) -> bool {
    let mut changed = false;
    while let Some(ev) = client.poll_event() {
        match ev {
            ClientEvent::Response { handle, outcome } => {
                if let Some(reply) = waiting.remove(&handle) {
                    let _ = reply.send(outcome);
                }
            }
            ClientEvent::DeviceOffline { device_id } => {
                tracing::info!(device = %device_id, "offline");
                *offline_events += 1;
                changed = true;
            }
            ClientEvent::DeviceUnreachable { device_id, error } => {
                tracing::warn!(device = %device_id, %error, "unreachable");
                changed = true;
            }
            ClientEvent::DeviceReady { device_id } => {
                tracing::debug!(device = %device_id, "ready");
                changed = true;
            }
            _ => changed = true,
        }
    }
    changed
}
