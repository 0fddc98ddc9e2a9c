//! A lean board, for load generation: the same profile and MCP server as [`crate::board`],
//! driven by axon-core's sans-I/O MQTT session ([`Endpoint`]) over a plain tokio TCP stream
//! instead of rumqttc.
//!
//! Why: a rumqttc connection alone holds ~26–30 KB a board (two 8 KB framed buffers, a QoS 2
//! bitset and in-flight slots it does not let us size), more than a 10,000-board fleet can
//! afford on one machine. Here the session keeps only what MQTT needs, and every board of the
//! thread reads into one shared buffer (nothing awaits between a read and its handling).
//!
//! Owns the socket, the timers and the loop only; what the device says and when is the
//! session's and the server's, and what the hardware does is the profile's, exactly as on a
//! rumqttc board. It never decides a protocol question of its own.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use axon_core::endpoint::{Endpoint, EndpointEvent};
use axon_core::protocol::mcp::server::McpServer;
use axon_core::time::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::board::{self, BoardReport, DeviceSpec};
use crate::mqtt::{self, BrokerAddr};
use crate::profiles::Env;
use crate::SimError;

thread_local! {
    /// The read buffer every lean board of this thread shares: a read is handled before the
    /// next await, so no two boards use it at once.
    static READ: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// Runs one lean board until `shutdown` resolves, then leaves gracefully (tombstone,
/// DISCONNECT). Reports go to `reports`, as [`board::run`]'s do.
pub async fn run(
    spec: DeviceSpec,
    broker: BrokerAddr,
    reports: mpsc::UnboundedSender<BoardReport>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SimError> {
    let (mut hw, server) = board::hardware_and_server(&spec)?;
    let mut device = Endpoint::new(server, spec.seed ^ 0x1EA4);
    let mut env = Env {
        rng: Rng::new(spec.seed),
        fault_rate: spec.fault_rate,
    };
    let id = spec.id.clone();
    let report = |r: BoardReport| {
        let _ = reports.send(r);
    };
    let mut stream: Option<TcpStream> = None;
    let mut connected = false;
    let mut next_tick: Option<tokio::time::Instant> = None;
    let mut last_tick = tokio::time::Instant::now();
    tokio::pin!(shutdown);

    loop {
        device.handle_timeout(mqtt::now());
        // Everything between the endpoint and the socket, until both are quiet.
        loop {
            let mut busy = false;
            while let Some(ev) = device.poll_event(mqtt::now()) {
                busy = true;
                match ev {
                    EndpointEvent::OpenTransport => {
                        match TcpStream::connect((broker.host.as_str(), broker.port)).await {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                stream = Some(s);
                                device.handle_transport_open(mqtt::now());
                            }
                            Err(e) => {
                                tracing::debug!(device = %id, error = %e, "cannot reach the broker; retrying with backoff");
                                device.handle_transport_closed(mqtt::now());
                            }
                        }
                    }
                    EndpointEvent::CloseTransport => stream = None,
                    EndpointEvent::Connected => {
                        connected = true;
                        // As a rumqttc board: a sample at once (docs/protocol.md §6.6), the
                        // next at a random point of the interval.
                        let now = tokio::time::Instant::now();
                        let sample = hw.tick(now - last_tick, &mut env);
                        last_tick = now;
                        publish_sample(&mut device, &id, sample, &mut env);
                        let period = spec.telemetry_interval.as_millis() as u64;
                        next_tick = Some(now + Duration::from_millis(env.rng.below_or_eq(period)));
                    }
                    EndpointEvent::Disconnected { reason } => {
                        if connected {
                            tracing::info!(device = %id, %reason, "connection lost; reconnecting with backoff");
                            report(BoardReport::Offline {
                                device: id.clone(),
                                reason,
                            });
                        }
                        connected = false;
                        next_tick = None;
                    }
                    EndpointEvent::ConnectRefused { reason } => {
                        report(BoardReport::Stopped {
                            device: id.clone(),
                            taken_over: false,
                        });
                        return Err(SimError::Refused {
                            addr: broker.to_string(),
                            account: spec
                                .credentials
                                .as_ref()
                                .map(|c| c.username.clone())
                                .unwrap_or_else(|| "(no username)".into()),
                            why: reason,
                        });
                    }
                    EndpointEvent::TakenOver => {
                        tracing::error!(device = %id, "another client connected with id {id}; this board stops and will not reconnect");
                        report(BoardReport::Stopped {
                            device: id.clone(),
                            taken_over: true,
                        });
                        return Ok(());
                    }
                    EndpointEvent::PublishRefused { reason_code } => {
                        tracing::warn!(device = %id, reason_code, "broker refused a publish (check the ACL)");
                    }
                    EndpointEvent::Mcp(ev) => {
                        board::on_event(ev, device.role_mut(), hw.as_mut(), &mut env, &id, &report)
                    }
                    EndpointEvent::Message(_) | EndpointEvent::SendFailed(_) => {}
                }
            }
            while let Some(bytes) = device.poll_transmit(mqtt::now()) {
                busy = true;
                if let Some(s) = stream.as_mut() {
                    if s.write_all(&bytes).await.is_err() {
                        stream = None;
                        device.handle_transport_closed(mqtt::now());
                    }
                }
            }
            if !busy {
                break;
            }
        }
        let timeout = device.poll_timeout().map(mqtt::instant_of);
        tokio::select! {
            readable = readable(&stream) => {
                if readable.is_err() || !read(&mut stream, &mut device) {
                    stream = None;
                    device.handle_transport_closed(mqtt::now());
                }
            }
            _ = board::sleep_until(next_tick) => {
                let now = tokio::time::Instant::now();
                let sample = hw.tick(now - last_tick, &mut env);
                last_tick = now;
                next_tick = Some(now + spec.telemetry_interval);
                publish_sample(&mut device, &id, sample, &mut env);
            }
            _ = board::sleep_until(timeout) => {}
            _ = &mut shutdown => {
                leave(&mut device, stream.take(), connected).await;
                report(BoardReport::Stopped { device: id.clone(), taken_over: false });
                return Ok(());
            }
        }
    }
}

/// Waits until the socket has bytes (or is closed); forever without a socket.
async fn readable(stream: &Option<TcpStream>) -> std::io::Result<()> {
    match stream {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

/// Reads what is there into the shared buffer and hands it to the session; `false` when the
/// connection is gone.
fn read(stream: &mut Option<TcpStream>, device: &mut Endpoint<McpServer>) -> bool {
    let Some(s) = stream.as_ref() else {
        return false;
    };
    READ.with(|buf| {
        let mut buf = buf.borrow_mut();
        loop {
            match s.try_read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => device.handle_input(mqtt::now(), &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    })
}

fn publish_sample(
    device: &mut Endpoint<McpServer>,
    id: &str,
    sample: crate::profiles::Sample,
    env: &mut Env,
) {
    let now = mqtt::now();
    let (telemetry, messages) = board::sample_messages(id, sample, env);
    for m in messages {
        // Best effort, as on a rumqttc board: a sample the session cannot take is dropped.
        let _ = device.publish(now, m);
    }
    device.role_mut().set_telemetry(now, telemetry);
}

/// Graceful leave: the tombstone, then DISCONNECT; the broker handles both in order, so the
/// tombstone is retained before the connection ends (500 ms at most for the socket to drain).
async fn leave(device: &mut Endpoint<McpServer>, stream: Option<TcpStream>, connected: bool) {
    let Some(mut s) = stream.filter(|_| connected) else {
        return;
    };
    device.role_mut().leave();
    device.disconnect(mqtt::now());
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(bytes) = device.poll_transmit(mqtt::now()) {
            if s.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = s.shutdown().await;
    })
    .await;
}
