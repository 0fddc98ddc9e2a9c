//! `axon_core::endpoint::Endpoint` (one MQTT session with an MCP role: the Hub's and the
//! browser device's drive loop) against a real Mosquitto over TCP: a device endpoint and a
//! Hub endpoint discover each other, a tool call makes the round trip, messages outside MCP
//! reach the shell instead of the role, and a new client id set after a disconnect is the one
//! the next CONNECT carries.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axon_core::endpoint::{Endpoint, EndpointEvent, McpRole};
use axon_core::protocol::mcp::client::{ClientConfig, ClientEvent, McpClient};
use axon_core::protocol::mcp::server::{DeviceConfig, McpServer, ServerEvent};
use axon_core::protocol::mcp::topics::{self, DeviceId};
use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use axon_core::time::Timestamp;
use axon_core::transport::link::{Publish, QoS, Subscription};
use axon_tests::Broker;
use serde_json::json;

/// A blocking shell for one endpoint: the socket and the drain loop, as the Hub and the
/// browser device write it.
struct Shell<R: McpRole> {
    endpoint: Endpoint<R>,
    port: u16,
    stream: Option<TcpStream>,
    origin: Instant,
    events: Vec<EndpointEvent<R::Event>>,
}

impl<R: McpRole> Shell<R> {
    fn new(role: R, port: u16, origin: Instant) -> Self {
        Shell {
            endpoint: Endpoint::new(role, 11),
            port,
            stream: None,
            origin,
            events: Vec::new(),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.origin.elapsed().as_millis() as u64)
    }

    /// One turn of the drive loop: deadlines, drain, one read.
    fn turn(&mut self) {
        self.endpoint.handle_timeout(self.now());
        loop {
            let mut busy = false;
            while let Some(ev) = self.endpoint.poll_event(self.now()) {
                busy = true;
                match &ev {
                    EndpointEvent::OpenTransport => {
                        match TcpStream::connect(("127.0.0.1", self.port)) {
                            Ok(s) => {
                                s.set_nodelay(true).unwrap();
                                s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
                                self.stream = Some(s);
                                self.endpoint.handle_transport_open(self.now());
                            }
                            Err(_) => self.endpoint.handle_transport_closed(self.now()),
                        }
                    }
                    EndpointEvent::CloseTransport => self.stream = None,
                    _ => {}
                }
                self.events.push(ev);
            }
            while let Some(bytes) = self.endpoint.poll_transmit(self.now()) {
                busy = true;
                if let Some(s) = self.stream.as_mut() {
                    if s.write_all(&bytes).is_err() {
                        self.stream = None;
                        self.endpoint.handle_transport_closed(self.now());
                    }
                }
            }
            if !busy {
                break;
            }
        }
        let mut buf = [0u8; 16 * 1024];
        let read = match self.stream.as_mut() {
            Some(s) => s.read(&mut buf),
            None => {
                std::thread::sleep(Duration::from_millis(2));
                return;
            }
        };
        match read {
            Ok(0) => {
                self.stream = None;
                self.endpoint.handle_transport_closed(self.now());
            }
            Ok(n) => self.endpoint.handle_input(self.now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                self.stream = None;
                self.endpoint.handle_transport_closed(self.now());
            }
        }
    }

    /// Removes and returns the first event that matches.
    fn take(
        &mut self,
        pred: impl Fn(&EndpointEvent<R::Event>) -> bool,
    ) -> Option<EndpointEvent<R::Event>> {
        let i = self.events.iter().position(pred)?;
        Some(self.events.remove(i))
    }
}

/// Drives both shells until `done` says so, or panics after `timeout` naming `what`.
fn drive_until<T>(
    device: &mut Shell<McpServer>,
    hub: &mut Shell<McpClient>,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&mut Shell<McpServer>, &mut Shell<McpClient>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        device.turn();
        hub.turn();
        if let Some(t) = done(device, hub) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?}; device events {:?}; hub events {:?}",
            device.events,
            hub.events
        );
    }
}

fn echo_tool() -> Tool {
    serde_json::from_value(json!({
        "name": "echo",
        "description": "Answers with its arguments.",
        "inputSchema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
        "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false},
        "_meta": {"axon/permission": "auto"}
    }))
    .unwrap()
}

/// The lamp, with its own account on `broker` (site home).
fn device_role(broker: &Broker) -> McpServer {
    let id = DeviceId::new("endpoint-lamp").unwrap();
    let mut config = DeviceConfig::new(id, "lamp", "Endpoint lamp", vec![echo_tool()]);
    config.credentials = Some(broker.provision_device("endpoint-lamp", "home"));
    McpServer::new(config).unwrap()
}

/// A Hub of site home, with the site's account.
fn hub_role(client_id: &str, broker: &Broker) -> McpClient {
    let mut config = ClientConfig::new(client_id, 5);
    config.credentials = Some(broker.provision_hub("home"));
    McpClient::new(config)
}

#[test]
fn a_device_and_a_hub_endpoint_discover_call_and_see_telemetry_on_a_real_broker() {
    let broker = Broker::start();
    let origin = Instant::now();
    let mut device = Shell::new(device_role(&broker), broker.tcp_port(), origin);
    let mut hub = Shell::new(
        hub_role("endpoint-hub-1", &broker),
        broker.tcp_port(),
        origin,
    );

    // Discovery: presence, initialize, tools/list, all through the endpoints' own pumping.
    drive_until(
        &mut device,
        &mut hub,
        "DeviceReady",
        Duration::from_secs(10),
        |_, h| {
            h.take(|e| matches!(e, EndpointEvent::Mcp(ClientEvent::DeviceReady { device_id }) if device_id == "endpoint-lamp"))
        },
    );
    assert!(device
        .take(|e| matches!(e, EndpointEvent::Mcp(ServerEvent::Online { .. })))
        .is_some());

    // The Hub's own subscription (telemetry, outside MCP).
    let now = hub.now();
    hub.endpoint
        .subscribe(
            now,
            vec![Subscription {
                filter: "axon/telemetry/+".into(),
                qos: QoS::AtLeastOnce,
                no_local: false,
            }],
        )
        .unwrap();

    // A tool call makes the round trip.
    let now = hub.now();
    let handle = hub
        .endpoint
        .role_mut()
        .call_tool(
            now,
            "endpoint-lamp",
            "echo",
            json!({"word": "hello"}),
            Default::default(),
        )
        .unwrap();
    let (call, arguments) = drive_until(
        &mut device,
        &mut hub,
        "ToolCall",
        Duration::from_secs(5),
        |d, _| match d.take(|e| matches!(e, EndpointEvent::Mcp(ServerEvent::ToolCall { .. }))) {
            Some(EndpointEvent::Mcp(ServerEvent::ToolCall {
                call, arguments, ..
            })) => Some((call, arguments)),
            _ => None,
        },
    );
    assert_eq!(arguments, json!({"word": "hello"}));
    let now = device.now();
    device.endpoint.role_mut().handle_tool_result(
        now,
        call,
        CallToolResult::structured(json!({"said": "hello"})),
    );
    let outcome = drive_until(
        &mut device,
        &mut hub,
        "the call's response",
        Duration::from_secs(5),
        |_, h| {
            match h.take(|e| matches!(e, EndpointEvent::Mcp(ClientEvent::Response { handle: x, .. }) if *x == handle)) {
            Some(EndpointEvent::Mcp(ClientEvent::Response { outcome, .. })) => Some(outcome),
            _ => None,
        }
        },
    );
    let result = outcome.unwrap();
    assert_eq!(
        result["structuredContent"],
        json!({"said": "hello"}),
        "{result}"
    );

    // Telemetry is not MCP: it reaches the Hub's shell, not its MCP client.
    let now = device.now();
    device
        .endpoint
        .publish(
            now,
            Publish {
                topic: topics::telemetry("endpoint-lamp"),
                payload: br#"{"ts":1,"metrics":{"on":true}}"#.to_vec(),
                qos: QoS::AtLeastOnce,
                retain: false,
                user_properties: Vec::new(),
            },
        )
        .unwrap();
    let m = drive_until(
        &mut device,
        &mut hub,
        "telemetry at the Hub",
        Duration::from_secs(5),
        |_, h| match h.take(|e| matches!(e, EndpointEvent::Message(_))) {
            Some(EndpointEvent::Message(m)) => Some(m),
            _ => None,
        },
    );
    assert_eq!(m.topic, "axon/telemetry/endpoint-lamp");
}

#[test]
fn a_client_id_set_after_a_disconnect_is_the_one_the_next_connect_carries() {
    let mut broker = Broker::start();
    let origin = Instant::now();
    let mut device = Shell::new(device_role(&broker), broker.tcp_port(), origin);
    let mut hub = Shell::new(
        hub_role("endpoint-hub-first", &broker),
        broker.tcp_port(),
        origin,
    );
    drive_until(
        &mut device,
        &mut hub,
        "DeviceReady",
        Duration::from_secs(10),
        |_, h| h.take(|e| matches!(e, EndpointEvent::Mcp(ClientEvent::DeviceReady { .. }))),
    );
    broker.restart();
    // On the disconnect, the shell picks a fresh id (as the Hub does for every connection).
    drive_until(
        &mut device,
        &mut hub,
        "Disconnected",
        Duration::from_secs(10),
        |_, h| h.take(|e| matches!(e, EndpointEvent::Disconnected { .. })),
    );
    hub.endpoint.role_mut().set_client_id("endpoint-hub-second");
    // The device is found again, by a Hub that connected under the new id.
    drive_until(
        &mut device,
        &mut hub,
        "DeviceReady after the restart",
        Duration::from_secs(30),
        |_, h| h.take(|e| matches!(e, EndpointEvent::Mcp(ClientEvent::DeviceReady { .. }))),
    );
    let log = broker.log();
    let after_restart = log.rsplit("mosquitto version").next().unwrap_or(&log);
    assert!(
        after_restart.contains("endpoint-hub-second"),
        "the reconnect did not use the new client id; broker log after the restart:\n{after_restart}"
    );
    assert!(
        !after_restart.contains("endpoint-hub-first"),
        "the old client id came back after the restart:\n{after_restart}"
    );
}
