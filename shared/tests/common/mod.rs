//! Scenario harness: a Hub client and N devices wired through an in-memory model of an MQTT 5
//! broker (retained messages, No Local, wills, `$`-topic rule), on a simulated clock.
//!
//! Everything is synchronous and deterministic: `settle()` moves messages until nothing is
//! left, `advance(ms)` moves the clock and fires timeouts. [`home`] builds the tool
//! descriptors and discovered devices that agent turns run on.
#![allow(dead_code)]

pub mod home;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use axon_core::protocol::mcp::client::{ClientConfig, ClientEvent, McpClient, RequestHandle};
use axon_core::protocol::mcp::server::{CallHandle, DeviceConfig, McpServer, ServerEvent};
use axon_core::protocol::mcp::topics::DeviceId;
use axon_core::protocol::mcp::types::{CallToolResult, Tool, ToolAnnotations};
use axon_core::time::Timestamp;
use axon_core::transport::link::{
    self, Connack, Inbound, Publish, SubscribeToken, Subscription, Transmit,
};
use serde_json::{json, Value};

/// Who is attached to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Hub,
    Device(usize),
    /// A raw peer used to inject hand-written messages.
    Probe,
}

/// What a device does with a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolMode {
    /// Answer at once with `{"tool": name, "arguments": args, "count": n}`.
    Echo,
    /// Never answer (to exercise timeouts and in-progress idempotency).
    Hold,
}

pub struct SimDevice {
    pub server: McpServer,
    pub connected: bool,
    pub mode: ToolMode,
    /// Calls the device actually carried out.
    pub executed: Vec<(String, Value)>,
    pub held: Vec<CallHandle>,
    pub events: Vec<ServerEvent>,
}

pub struct Net {
    pub now: Timestamp,
    pub hub: McpClient,
    pub hub_connected: bool,
    pub devices: Vec<SimDevice>,
    pub hub_events: Vec<ClientEvent>,
    /// Messages the probe received.
    pub probe_inbox: Vec<Inbound>,
    subs: Vec<(Node, Subscription)>,
    retained: BTreeMap<String, Inbound>,
    inbox: VecDeque<(Node, Inbound)>,
    subacks: VecDeque<(Node, SubscribeToken)>,
    /// Every publish the broker saw, with its sender (to check properties on the wire).
    pub wire: Vec<(Node, Publish)>,
    /// Order of subscriptions and publishes as the broker saw them: `SUB Hub filter`, `PUB Device(0) topic`.
    pub trace: Vec<String>,
    /// Every message handed to a node, by topic (to check receive ACLs).
    pub delivered: Vec<(Node, String)>,
    /// The most devices the hub had initializing at once.
    pub most_initializing: usize,
}

pub fn lamp_tools() -> Vec<Tool> {
    let tool = |name: &str, schema: Value, read_only: bool, permission: &str| Tool {
        name: name.into(),
        title: None,
        description: Some(format!("{name} tool")),
        input_schema: schema,
        output_schema: None,
        annotations: Some(ToolAnnotations {
            read_only_hint: Some(read_only),
            destructive_hint: Some(false),
            idempotent_hint: Some(true),
            open_world_hint: Some(false),
            title: None,
        }),
        meta: Some(serde_json::Map::from_iter([(
            "axon/permission".to_string(),
            json!(permission),
        )])),
    };
    vec![
        tool(
            "set_power",
            json!({"type":"object","properties":{"on":{"type":"boolean"}},"required":["on"],"additionalProperties":false}),
            false,
            "auto",
        ),
        tool(
            "set_brightness",
            json!({"type":"object","properties":{"level":{"type":"integer","minimum":0,"maximum":100}},"required":["level"],"additionalProperties":false}),
            false,
            "auto",
        ),
        tool(
            "get_state",
            json!({"type":"object","properties":{},"additionalProperties":false}),
            true,
            "auto",
        ),
    ]
}

pub fn lamp_config(id: &str) -> DeviceConfig {
    let mut c = DeviceConfig::new(
        DeviceId::new(id).expect("test ids are valid"),
        "lamp",
        format!("Lamp {id}"),
        lamp_tools(),
    );
    c.room = Some("kitchen".into());
    c.title = Some(format!("Lamp {id}"));
    c
}

impl Net {
    /// A hub and one lamp per id, nothing connected yet.
    pub fn new(device_ids: &[&str]) -> Net {
        Net::with_configs(device_ids.iter().map(|id| lamp_config(id)).collect())
    }

    pub fn with_configs(configs: Vec<DeviceConfig>) -> Net {
        let devices = configs
            .into_iter()
            .map(|c| SimDevice {
                server: McpServer::new(c).expect("valid config"),
                connected: false,
                mode: ToolMode::Echo,
                executed: Vec::new(),
                held: Vec::new(),
                events: Vec::new(),
            })
            .collect();
        Net {
            now: Timestamp::from_millis(1_000),
            hub: McpClient::new(ClientConfig::new("axon-hub.test.00000001", 7)),
            hub_connected: false,
            devices,
            hub_events: Vec::new(),
            probe_inbox: Vec::new(),
            subs: Vec::new(),
            retained: BTreeMap::new(),
            inbox: VecDeque::new(),
            subacks: VecDeque::new(),
            wire: Vec::new(),
            trace: Vec::new(),
            delivered: Vec::new(),
            most_initializing: 0,
        }
    }

    /// Like [`Net::new`], with a hub that initializes at most `window` devices at once.
    pub fn with_window(device_ids: &[&str], window: usize) -> Net {
        let mut net = Net::new(device_ids);
        let mut config = ClientConfig::new("axon-hub.test.00000001", 7);
        config.initialize_window = window;
        net.hub = McpClient::new(config);
        net
    }

    /// Connects every device, then the hub, and settles: the usual starting point.
    pub fn started(device_ids: &[&str]) -> Net {
        let mut net = Net::new(device_ids);
        for i in 0..net.devices.len() {
            net.connect_device(i);
        }
        net.connect_hub();
        net.settle();
        net
    }

    pub fn connect_hub(&mut self) {
        self.hub_connected = true;
        let now = self.now;
        self.hub.handle_connected(now, &Connack::default());
        self.settle();
    }

    pub fn connect_device(&mut self, i: usize) {
        self.devices[i].connected = true;
        let now = self.now;
        self.devices[i]
            .server
            .handle_connected(now, &Connack::default());
        self.settle();
    }

    /// The device's connection dies without a DISCONNECT: the broker publishes its will.
    pub fn kill_device(&mut self, i: usize) {
        let will = self.devices[i].server.connect_options().will;
        self.devices[i].connected = false;
        self.subs.retain(|(n, _)| *n != Node::Device(i));
        let now = self.now;
        self.devices[i].server.handle_disconnected(now);
        if let Some(w) = will {
            self.route(Node::Device(i), w);
        }
        self.settle();
    }

    /// The device leaves gracefully: tombstone, then DISCONNECT (no will).
    pub fn leave_device(&mut self, i: usize) {
        self.devices[i].server.leave();
        self.settle();
        self.devices[i].connected = false;
        self.subs.retain(|(n, _)| *n != Node::Device(i));
        let now = self.now;
        self.devices[i].server.handle_disconnected(now);
        self.settle();
    }

    /// The hub's connection drops (broker restart): subscriptions go, retained stay.
    pub fn drop_hub(&mut self) {
        self.hub_connected = false;
        self.subs.retain(|(n, _)| *n != Node::Hub);
        let now = self.now;
        self.hub.handle_disconnected(now);
        self.drain_hub_events();
    }

    /// A raw publish from the probe, e.g. malformed JSON on an RPC topic.
    pub fn probe_publish(&mut self, topic: &str, payload: &[u8], props: Vec<(String, String)>) {
        let p = Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: link::QoS::AtLeastOnce,
            retain: false,
            user_properties: props,
        };
        self.route(Node::Probe, p);
        self.settle();
    }

    pub fn probe_subscribe(&mut self, filter: &str) {
        self.apply(
            Node::Probe,
            Transmit::Subscribe {
                token: SubscribeToken(0),
                subscriptions: vec![Subscription {
                    filter: filter.into(),
                    qos: link::QoS::AtLeastOnce,
                    no_local: true,
                }],
            },
        );
        self.settle();
    }

    /// Moves the clock by `ms`, firing every timeout on the way, and settles.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        loop {
            let next = self.next_timeout().filter(|t| *t <= end);
            match next {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.fire_timeouts();
                    self.settle();
                }
                None => break,
            }
        }
        self.now = end;
        self.fire_timeouts();
        self.settle();
    }

    fn next_timeout(&self) -> Option<Timestamp> {
        let mut t = self.hub.poll_timeout();
        for d in &self.devices {
            t = axon_core::time::earliest(t, d.server.poll_timeout());
        }
        t
    }

    fn fire_timeouts(&mut self) {
        let now = self.now;
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
        }
        for d in &mut self.devices {
            if d.server.poll_timeout().is_some_and(|t| t <= now) {
                d.server.handle_timeout(now);
            }
        }
    }

    /// Moves every queued transmit, SUBACK, message and event until nothing is left.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            while let Some(t) = self.hub.poll_transmit() {
                busy = true;
                if self.hub_connected {
                    self.apply(Node::Hub, t);
                }
            }
            for i in 0..self.devices.len() {
                while let Some(t) = self.devices[i].server.poll_transmit() {
                    busy = true;
                    if self.devices[i].connected {
                        self.apply(Node::Device(i), t);
                    }
                }
            }
            busy |= self.drain_device_events();
            busy |= self.drain_hub_events();
            if let Some((node, token)) = self.subacks.pop_front() {
                busy = true;
                let now = self.now;
                match node {
                    Node::Hub => self.hub.handle_subscribed(now, token),
                    Node::Device(i) => self.devices[i].server.handle_subscribed(now, token),
                    Node::Probe => {}
                }
            } else if let Some((node, msg)) = self.inbox.pop_front() {
                busy = true;
                self.delivered.push((node, msg.topic.clone()));
                let now = self.now;
                match node {
                    Node::Hub => self.hub.handle_message(now, &msg),
                    Node::Device(i) => self.devices[i].server.handle_message(now, &msg),
                    Node::Probe => self.probe_inbox.push(msg),
                }
            }
            self.most_initializing = self.most_initializing.max(self.hub.initializations().0);
            if !busy {
                return;
            }
        }
        panic!("the network did not settle after 10,000 steps: a message loop?");
    }

    fn drain_hub_events(&mut self) -> bool {
        let mut busy = false;
        while let Some(e) = self.hub.poll_event() {
            busy = true;
            self.hub_events.push(e);
        }
        busy
    }

    fn drain_device_events(&mut self) -> bool {
        let mut busy = false;
        let now = self.now;
        for d in &mut self.devices {
            while let Some(e) = d.server.poll_event() {
                busy = true;
                if let ServerEvent::ToolCall {
                    call,
                    name,
                    arguments,
                } = &e
                {
                    match d.mode {
                        ToolMode::Hold => d.held.push(*call),
                        ToolMode::Echo => {
                            d.executed.push((name.clone(), arguments.clone()));
                            let r = CallToolResult::structured(
                                json!({"tool": name, "arguments": arguments, "count": d.executed.len()}),
                            );
                            d.server.handle_tool_result(now, *call, r);
                        }
                    }
                }
                d.events.push(e);
            }
        }
        busy
    }

    /// Answers the held calls of device `i` (in order) with an echo.
    pub fn release_held(&mut self, i: usize) {
        let now = self.now;
        let d = &mut self.devices[i];
        for call in std::mem::take(&mut d.held) {
            d.executed.push(("held".into(), json!({})));
            let r =
                CallToolResult::structured(json!({"released": true, "count": d.executed.len()}));
            d.server.handle_tool_result(now, call, r);
        }
        self.settle();
    }

    fn apply(&mut self, node: Node, t: Transmit) {
        match t {
            Transmit::Publish(p) => self.route(node, p),
            Transmit::Subscribe {
                token,
                subscriptions,
            } => {
                for s in subscriptions {
                    self.trace.push(format!("SUB {node:?} {}", s.filter));
                    // Replay retained messages that match, with RETAIN = 1.
                    let replay: Vec<Inbound> = self
                        .retained
                        .values()
                        .filter(|m| link::topic_matches(&s.filter, &m.topic))
                        .cloned()
                        .collect();
                    self.subs
                        .retain(|(n, old)| !(*n == node && old.filter == s.filter));
                    self.subs.push((node, s));
                    for m in replay {
                        self.inbox.push_back((node, m));
                    }
                }
                self.subacks.push_back((node, token));
            }
            Transmit::Unsubscribe { filters } => {
                for f in &filters {
                    self.trace.push(format!("UNSUB {node:?} {f}"));
                }
                self.subs
                    .retain(|(n, s)| !(*n == node && filters.contains(&s.filter)));
            }
        }
    }

    fn route(&mut self, from: Node, p: Publish) {
        self.trace.push(format!("PUB {from:?} {}", p.topic));
        self.wire.push((from, p.clone()));
        let msg = Inbound {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            retain: false,
            user_properties: p.user_properties.clone(),
        };
        if p.retain {
            if p.payload.is_empty() {
                self.retained.remove(&p.topic);
            } else {
                self.retained.insert(
                    p.topic.clone(),
                    Inbound {
                        retain: true,
                        ..msg.clone()
                    },
                );
            }
        }
        // One delivery per node even with overlapping subscriptions (MQTT 5 allows either).
        let mut targets: Vec<Node> = self
            .subs
            .iter()
            .filter(|(n, s)| {
                link::topic_matches(&s.filter, &p.topic) && !(s.no_local && *n == from)
            })
            .map(|(n, _)| *n)
            .collect();
        targets.sort();
        targets.dedup();
        for n in targets {
            self.inbox.push_back((n, msg.clone()));
        }
    }

    /// Whether a retained message is stored for `topic`.
    pub fn retained(&self, topic: &str) -> Option<&Inbound> {
        self.retained.get(topic)
    }

    /// The outcome of request `handle`, if it finished.
    pub fn outcome(
        &self,
        handle: RequestHandle,
    ) -> Option<&Result<Value, axon_core::protocol::jsonrpc::ErrorObject>> {
        self.hub_events.iter().find_map(|e| match e {
            ClientEvent::Response { handle: h, outcome } if *h == handle => Some(outcome),
            _ => None,
        })
    }

    /// Calls a tool through the hub and settles.
    pub fn call(
        &mut self,
        device: &str,
        tool: &str,
        args: Value,
    ) -> Result<RequestHandle, axon_core::protocol::jsonrpc::ErrorObject> {
        let now = self.now;
        let h = self
            .hub
            .call_tool(now, device, tool, args, Default::default());
        self.settle();
        h
    }

    /// The hub's device `id` in state Ready.
    pub fn ready(&self, id: &str) -> bool {
        self.hub
            .device(id)
            .is_some_and(|d| d.state == axon_core::protocol::mcp::client::DeviceState::Ready)
    }
}

/// A raw MCP client on the probe: initializes device `i` as client `client_id` and returns the
/// RPC topic to talk on. Answers land in `net.probe_inbox`.
pub fn probe_initialize(
    net: &mut Net,
    i: usize,
    client_id: &str,
    version: &str,
) -> (String, Value) {
    let sid = net.devices[i].server.device_id().to_string();
    let name = net.devices[i].server.server_name().to_string();
    let rpc = axon_core::protocol::mcp::topics::rpc(client_id, &sid, &name);
    net.probe_subscribe(&rpc);
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"probe","version":"0"}}});
    net.probe_publish(
        &axon_core::protocol::mcp::topics::control(&sid, &name),
        init.to_string().as_bytes(),
        client_props(client_id),
    );
    let answer = net.probe_inbox.pop().expect("initialize answered");
    let v: Value = serde_json::from_slice(&answer.payload).expect("json");
    net.probe_publish(
        &rpc,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        client_props(client_id),
    );
    (rpc, v)
}

/// The two user properties every MCP publish carries.
pub fn client_props(client_id: &str) -> Vec<(String, String)> {
    vec![
        ("MCP-COMPONENT-TYPE".into(), "mcp-client".into()),
        ("MCP-MQTT-CLIENT-ID".into(), client_id.into()),
    ]
}

/// Sends `payload` on `rpc` from the probe and returns the one answer, if any.
pub fn probe_rpc(net: &mut Net, rpc: &str, client_id: &str, payload: &[u8]) -> Option<Value> {
    let before = net.probe_inbox.len();
    net.probe_publish(rpc, payload, client_props(client_id));
    let got: Vec<Inbound> = net.probe_inbox.drain(before..).collect();
    assert!(
        got.len() <= 1,
        "one request, at most one answer; got {}",
        got.len()
    );
    got.first()
        .map(|m| serde_json::from_slice(&m.payload).expect("device answers JSON"))
}
