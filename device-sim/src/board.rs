//! One simulated board: a rumqttc connection driving one `axon-core` MCP server and a
//! profile's hardware.
//!
//! Owns the board's run loop: the MQTT link, the telemetry timer, tool execution and the
//! graceful leave. Protocol decisions stay in `McpServer`; hardware behaviour stays in the
//! profile.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axon_core::protocol::mcp::server::{DeviceConfig, McpServer, ServerEvent};
use axon_core::protocol::mcp::topics::{self, DeviceId};
use axon_core::protocol::mcp::types::{Implementation, Tool};
use axon_core::time::Rng;
use axon_core::transport::link::{Credentials, Publish, QoS};
use rumqttc::v5::mqttbytes::QoS as RQoS;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::mqtt::{self, BrokerAddr, Driver, LinkEvent, Sizing};
use crate::profiles::{self, Env, Profile, Sample};
use crate::SimError;

/// What a board is.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Device id (MQTT client id).
    pub id: String,
    /// Profile kind.
    pub kind: String,
    /// Room.
    pub room: Option<String>,
    /// Display title.
    pub title: Option<String>,
    /// Site (MCP-META location).
    pub site: String,
    /// Telemetry period.
    pub telemetry_interval: Duration,
    /// Chance per telemetry tick of a fault.
    pub fault_rate: f64,
    /// Seed for the board's randomness.
    pub seed: u64,
    /// The board's broker account.
    pub credentials: Option<Credentials>,
}

/// What a board tells whoever started it.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardReport {
    /// The retained online message is out.
    Online {
        /// Device id.
        device: String,
        /// Server name.
        server_name: String,
    },
    /// A tool ran.
    ToolCall {
        /// Device id.
        device: String,
        /// Tool.
        tool: String,
        /// Arguments.
        arguments: Value,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// The connection dropped (it reconnects by itself).
    Offline {
        /// Device id.
        device: String,
        /// Why.
        reason: String,
    },
    /// The board stopped after a graceful leave, or because another client took its id.
    Stopped {
        /// Device id.
        device: String,
        /// Whether it was a takeover.
        taken_over: bool,
    },
}

/// Runs one board until `shutdown` resolves, then leaves gracefully (tombstone, PUBACK,
/// DISCONNECT). Reports go to `reports`.
pub async fn run(
    spec: DeviceSpec,
    broker: BrokerAddr,
    reports: mpsc::UnboundedSender<BoardReport>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let (mut hw, mut server) = hardware_and_server(&spec)?;
    let (client, mut events) = mqtt::connect(
        &server.connect_options(),
        &broker,
        Sizing::BOARD,
        spec.seed ^ 0xB0A2D,
    );
    let mut driver = Driver::new(client);
    let mut env = Env {
        rng: Rng::new(spec.seed),
        fault_rate: spec.fault_rate,
    };
    let device = spec.id.clone();
    let report = |r: BoardReport| {
        let _ = reports.send(r);
    };

    // The first sample goes out on connect; the timer only runs while connected.
    let mut next_tick = None;
    let mut last_tick = tokio::time::Instant::now();
    let mut connected = false;
    tokio::pin!(shutdown);

    loop {
        let timeout = server.poll_timeout().map(mqtt::instant_of);
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Err(SimError::Client(format!("{device}: event loop ended"))) };
                match driver.read(ev) {
                    Some(LinkEvent::Connected(connack)) => {
                        connected = true;
                        server.handle_connected(mqtt::now(), &connack);
                        // docs/protocol.md §6.6: /latest is republished on every connect (a broker
                        // restarted without persistence has lost it). Sampling now also keeps
                        // the sample fresh. The next tick lands at a random point of the
                        // interval, so boards that connected together do not publish in lockstep.
                        let now = tokio::time::Instant::now();
                        let sample = hw.tick(now - last_tick, &mut env);
                        last_tick = now;
                        publish_sample(&driver, &mut server, &device, sample, &mut env).await;
                        let period = spec.telemetry_interval.as_millis() as u64;
                        next_tick = Some(now + Duration::from_millis(env.rng.below_or_eq(period)));
                    }
                    Some(LinkEvent::Message(m)) => server.handle_message(mqtt::now(), &m),
                    Some(LinkEvent::Subscribed(token)) => server.handle_subscribed(mqtt::now(), token),
                    Some(LinkEvent::PublishRefused { pkid, reason }) => {
                        tracing::warn!(%device, pkid, %reason, "broker refused a publish (check the ACL)");
                    }
                    Some(LinkEvent::Disconnected(reason)) => {
                        if connected {
                            tracing::info!(%device, %reason, "connection lost; reconnecting with backoff");
                            report(BoardReport::Offline { device: device.clone(), reason });
                        }
                        connected = false;
                        next_tick = None;
                        server.handle_disconnected(mqtt::now());
                    }
                    Some(LinkEvent::Refused(code)) => {
                        let user = server.connect_options().credentials.map(|c| c.username);
                        let e = crate::accounts::refused(&broker, user.as_deref(), code);
                        report(BoardReport::Stopped { device: device.clone(), taken_over: false });
                        return Err(e);
                    }
                    Some(LinkEvent::TakenOver) => {
                        tracing::error!(%device, "another client connected with id {device}; this board stops and will not reconnect");
                        report(BoardReport::Stopped { device: device.clone(), taken_over: true });
                        return Ok(());
                    }
                    Some(LinkEvent::PubAck(_) | LinkEvent::PublishSent(_)) | None => {}
                }
            }
            _ = sleep_until(next_tick) => {
                let now = tokio::time::Instant::now();
                let sample = hw.tick(now - last_tick, &mut env);
                last_tick = now;
                next_tick = Some(now + spec.telemetry_interval);
                publish_sample(&driver, &mut server, &device, sample, &mut env).await;
            }
            _ = sleep_until(timeout) => server.handle_timeout(mqtt::now()),
            _ = &mut shutdown => {
                leave(&mut server, &mut driver, &mut events, connected).await;
                report(BoardReport::Stopped { device: device.clone(), taken_over: false });
                return Ok(());
            }
        }
        pump(
            &mut server,
            &mut driver,
            hw.as_mut(),
            &mut env,
            &device,
            &report,
        )
        .await;
    }
}

/// The board's profile and its MCP server (shared by [`run`] and the lean board).
pub(crate) fn hardware_and_server(
    spec: &DeviceSpec,
) -> Result<(Box<dyn Profile>, McpServer), SimError> {
    let hw = profiles::profile(&spec.kind).ok_or_else(|| SimError::Profile(spec.kind.clone()))?;
    let mut config = DeviceConfig::new(
        DeviceId::new(spec.id.clone()).map_err(axon_core::Error::from)?,
        spec.kind.clone(),
        hw.description(),
        shared_tools(&spec.kind, hw.tools()),
    );
    config.room = spec.room.clone();
    config.title = spec.title.clone();
    config.site = spec.site.clone();
    config.fw = Some(env!("CARGO_PKG_VERSION").into());
    config.credentials = spec.credentials.clone();
    config.server_info = Implementation {
        name: format!("axon-sim-{}", spec.kind),
        title: spec.title.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok((hw, McpServer::new(config)?))
}

/// Sleeps until `at`; forever if there is no deadline.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Drains the server: transmits out, tool calls run, online reported.
async fn pump(
    server: &mut McpServer,
    driver: &mut Driver,
    hw: &mut dyn Profile,
    env: &mut Env,
    device: &str,
    report: &impl Fn(BoardReport),
) {
    loop {
        let mut busy = false;
        while let Some(t) = server.poll_transmit() {
            busy = true;
            if let Err(e) = driver.transmit(t).await {
                tracing::warn!(%device, error = %e, "could not hand a message to the MQTT client");
            }
        }
        while let Some(ev) = server.poll_event() {
            busy = true;
            on_event(ev, server, hw, env, device, report);
        }
        if !busy {
            return;
        }
    }
}

/// What the board does with one of its MCP server's events: a tool call runs on the
/// hardware and its result goes back; the rest is reported and logged.
pub(crate) fn on_event(
    ev: ServerEvent,
    server: &mut McpServer,
    hw: &mut dyn Profile,
    env: &mut Env,
    device: &str,
    report: &impl Fn(BoardReport),
) {
    match ev {
        ServerEvent::ToolCall {
            call,
            name,
            arguments,
        } => {
            let result = hw.call(&name, &arguments, env);
            // Debug, not info: the report below reaches whoever started the board
            // (`run` prints it on stdout), and a log line per call halved the
            // benchmark's throughput at concurrency 16 and 64.
            tracing::debug!(%device, tool = %name, %arguments, is_error = result.is_error, "tool call");
            report(BoardReport::ToolCall {
                device: device.into(),
                tool: name,
                arguments,
                is_error: result.is_error,
            });
            server.handle_tool_result(mqtt::now(), call, result);
        }
        ServerEvent::Online { server_name } => {
            tracing::info!(%device, %server_name, "online");
            report(BoardReport::Online {
                device: device.into(),
                server_name,
            });
        }
        ServerEvent::ClientInitialized {
            client_id,
            protocol_version,
        } => {
            tracing::debug!(%device, %client_id, %protocol_version, "client initialized");
        }
        ServerEvent::ClientLeft { client_id } => {
            tracing::debug!(%device, %client_id, "client left")
        }
        ServerEvent::Rejected { client_id, error } => {
            tracing::warn!(%device, client = client_id.as_deref().unwrap_or("?"), %error, "rejected bad input");
        }
    }
}

/// A sample's messages: the telemetry (QoS 0), its retained `/latest` copy (QoS 1) and each
/// event (QoS 1); and the telemetry itself, which the server keeps for `telemetry://latest`.
pub(crate) fn sample_messages(
    device: &str,
    sample: Sample,
    env: &mut Env,
) -> (Value, Vec<Publish>) {
    let ts = mqtt::unix_ms();
    let telemetry = json!({"ts": ts, "metrics": sample.metrics});
    let bytes = telemetry.to_string().into_bytes();
    let publish = |topic: String, qos: QoS, retain: bool, payload: Vec<u8>| Publish {
        topic,
        payload,
        qos,
        retain,
        user_properties: Vec::new(),
    };
    let mut out = vec![
        publish(
            topics::telemetry(device),
            QoS::AtMostOnce,
            false,
            bytes.clone(),
        ),
        publish(
            topics::telemetry_latest(device),
            QoS::AtLeastOnce,
            true,
            bytes,
        ),
    ];
    for e in sample.events {
        let event = json!({"ts": ts, "kind": e.kind, "severity": e.severity, "message": e.message, "id": env.rng.uuid_v4(), "data": e.data});
        tracing::info!(%device, kind = e.kind, message = %e.message, "event");
        out.push(publish(
            topics::events(device),
            QoS::AtLeastOnce,
            false,
            event.to_string().into_bytes(),
        ));
    }
    (telemetry, out)
}

async fn publish_sample(
    driver: &Driver,
    server: &mut McpServer,
    device: &str,
    sample: Sample,
    env: &mut Env,
) {
    let (telemetry, messages) = sample_messages(device, sample, env);
    let client = driver.client();
    // Telemetry is best effort: a full request channel drops the sample rather than stall the board.
    for m in messages {
        let qos = match m.qos {
            QoS::AtMostOnce => RQoS::AtMostOnce,
            _ => RQoS::AtLeastOnce,
        };
        let _ = client.try_publish(m.topic, qos, m.retain, m.payload);
    }
    server.set_telemetry(mqtt::now(), telemetry);
}

/// Graceful leave: tombstone, wait for its PUBACK (2 s at most), DISCONNECT.
async fn leave(
    server: &mut McpServer,
    driver: &mut Driver,
    events: &mut mqtt::Events,
    connected: bool,
) {
    if !connected {
        return;
    }
    server.leave();
    while let Some(t) = server.poll_transmit() {
        let _ = driver.transmit(t).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut tombstone = None;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match driver.read(ev) {
            // pkid 0 is a QoS 0 publish (telemetry) still queued ahead of the tombstone: it
            // gets no PUBACK, and waiting for one would stall the leave for the full 2 s.
            Some(LinkEvent::PublishSent(pkid)) if tombstone.is_none() && pkid != 0 => {
                tombstone = Some(pkid)
            }
            Some(LinkEvent::PubAck(pkid) | LinkEvent::PublishRefused { pkid, .. })
                if Some(pkid) == tombstone =>
            {
                break
            }
            Some(LinkEvent::Disconnected(_)) => return,
            _ => {}
        }
    }
    let _ = driver.client().disconnect().await;
    // Let the event loop write the DISCONNECT before the task ends.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(ev) = events.recv().await {
            if ev.is_err()
                || matches!(
                    ev,
                    Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                )
            {
                break;
            }
        }
    })
    .await;
}

/// The tool table of `kind` that every board of this process shares: a lamp's is ~9.6 KB of
/// JSON schema maps, a copy per board of a 10,000-board fleet otherwise. A board whose table
/// differs from its kind's first keeps its own.
fn shared_tools(kind: &str, tools: Vec<Tool>) -> Arc<[Tool]> {
    static TABLES: OnceLock<Mutex<HashMap<String, Arc<[Tool]>>>> = OnceLock::new();
    let mut tables = TABLES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match tables.get(kind) {
        Some(shared) if shared[..] == tools[..] => shared.clone(),
        Some(_) => tools.into(),
        None => {
            let shared: Arc<[Tool]> = tools.into();
            tables.insert(kind.to_string(), shared.clone());
            shared
        }
    }
}

#[cfg(test)]
mod shared_tools_tests {
    use super::*;

    #[test]
    fn boards_of_one_kind_share_one_tool_table() {
        let lamp = || profiles::profile("lamp").unwrap().tools();
        let a = shared_tools("lamp", lamp());
        let b = shared_tools("lamp", lamp());
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second lamp reuses the first's table"
        );
        let mut other = lamp();
        other.pop();
        let c = shared_tools("lamp", other);
        assert!(
            !Arc::ptr_eq(&a, &c),
            "a different table is kept, not replaced"
        );
        assert_eq!(c.len(), a.len() - 1);
    }
}
