//! The rumqttc side of a shell: turns `axon-core`'s plain MQTT requests into rumqttc calls
//! and rumqttc events back into `axon-core` inputs.
//!
//! Owns the mapping only (CONNECT options, No Local, user properties, SUBACK tokens, PUBACK
//! reason codes, takeover) and the reconnect backoff. Never decides anything about MCP.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axon_core::time::Timestamp;
use axon_core::transport::link::{Connack, ConnectOptions, Inbound, QoS, SubscribeToken, Transmit};
use axon_core::transport::mqtt::Backoff;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, DisconnectReasonCode, Filter, LastWill, LastWillProperties, Packet,
    PubAckReason, PublishProperties,
};
use rumqttc::v5::mqttbytes::QoS as RQoS;
use rumqttc::v5::{AsyncClient, ClientError, Event, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, Outgoing};
use std::pin::Pin;

use futures_util::{Stream, StreamExt};

use crate::SimError;

/// Largest packet we accept from the broker: the 256 KiB RPC limit plus headroom, so an
/// oversize request reaches the device and gets its `-32600` answer instead of killing the
/// connection (the broker's own limit is 1 MiB).
pub const MAX_PACKET: u32 = 1 << 20;

/// `host:port` of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::str::FromStr for BrokerAddr {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        let rest = s
            .strip_prefix("mqtt://")
            .or_else(|| s.strip_prefix("tcp://"))
            .unwrap_or(s);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| SimError::BrokerAddr(s.into()))?;
        let port = port
            .trim_end_matches('/')
            .parse()
            .map_err(|_| SimError::BrokerAddr(s.into()))?;
        if host.is_empty() {
            return Err(SimError::BrokerAddr(s.into()));
        }
        Ok(BrokerAddr {
            host: host.into(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

/// Monotonic time for `axon-core`, from a process-wide origin.
pub fn now() -> Timestamp {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    Timestamp::from_millis(origin.elapsed().as_millis() as u64)
}

/// Wall-clock Unix milliseconds, for telemetry `ts`.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The Instant at which `axon-core` timestamp `t` falls.
pub fn instant_of(t: Timestamp) -> tokio::time::Instant {
    let delta = t.as_millis().saturating_sub(now().as_millis());
    tokio::time::Instant::now() + Duration::from_millis(delta)
}

/// A seed from the OS clock and the process id, for boards and controllers.
pub fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ (u64::from(std::process::id()) << 32)
}

fn qos(q: QoS) -> RQoS {
    match q {
        QoS::AtMostOnce => RQoS::AtMostOnce,
        QoS::AtLeastOnce => RQoS::AtLeastOnce,
    }
}

/// How much one connection may buffer. A board is one of up to a thousand in a process, so
/// it keeps little; the controller is a single connection that carries many calls at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Capacity of the request channel into rumqttc; a full channel makes the sender wait.
    pub requests: usize,
    /// QoS 1 publishes awaiting their PUBACK. rumqttc preallocates one 216-byte slot for each,
    /// and the broker's Receive Maximum caps it anyway (Mosquitto's default is 20).
    pub inflight: u16,
    /// Slots (392 bytes each) of rumqttc's event queue kept once a burst has drained.
    pub events_kept: usize,
}

impl Sizing {
    /// A simulated board: 16 in flight serves 16 concurrent calls without waiting on a PUBACK.
    pub const BOARD: Sizing = Sizing {
        requests: 16,
        inflight: 16,
        events_kept: 8,
    };
    /// The controller (`ctl`, benchmark, tests): hundreds of calls may be queued at once.
    pub const CONTROLLER: Sizing = Sizing {
        requests: 256,
        inflight: 32,
        events_kept: 64,
    };
}

/// A rumqttc client for `axon-core`'s CONNECT options, sized by `sizing`, and its event loop
/// as [`Events`] (backoff jitter seeded by `seed`). Nothing is sent until `Events` is polled.
pub fn connect(
    c: &ConnectOptions,
    broker: &BrokerAddr,
    sizing: Sizing,
    seed: u64,
) -> (AsyncClient, Events) {
    let (client, mut eventloop) =
        AsyncClient::new(mqtt_options(c, broker, sizing), sizing.requests);
    // rumqttc preallocates its event queue for 100 events of 392 bytes (39 KB). The queue is a
    // ring whose head keeps moving, so within ~100 events every slot has been written and the
    // whole 39 KB is resident: measured, 36 of the 89 KB of a board publishing telemetry. An
    // empty queue grows to the few slots a board needs.
    eventloop.state.events = VecDeque::new();
    (client, Events::new(eventloop, seed, sizing.events_kept))
}

/// rumqttc options for `axon-core`'s CONNECT options.
pub fn mqtt_options(c: &ConnectOptions, broker: &BrokerAddr, sizing: Sizing) -> MqttOptions {
    let mut o = MqttOptions::new(c.client_id.clone(), broker.host.clone(), broker.port);
    o.set_keep_alive(c.keep_alive);
    o.set_clean_start(c.clean_start);
    o.set_request_channel_capacity(sizing.requests);
    o.set_connection_timeout(5);
    o.set_outgoing_inflight_upper_limit(sizing.inflight);
    let props = ConnectProperties {
        session_expiry_interval: Some(c.session_expiry_s),
        receive_maximum: None,
        max_packet_size: Some(MAX_PACKET),
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: None,
        user_properties: c.user_properties.clone(),
        authentication_method: None,
        authentication_data: None,
    };
    o.set_connect_properties(props);
    if let Some(w) = &c.will {
        let props = LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: w.user_properties.clone(),
        };
        o.set_last_will(LastWill::new(
            w.topic.clone(),
            w.payload.clone(),
            qos(w.qos),
            w.retain,
            Some(props),
        ));
    }
    if let Some(cred) = &c.credentials {
        o.set_credentials(cred.username.clone(), cred.password());
    }
    let mut net = NetworkOptions::new();
    // Without it each QoS 1 round trip waits on Nagle: 44-88 ms instead of ~0.2 ms.
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    o
}

/// What the event loop reports to the shell that owns the MCP state machine.
#[derive(Debug)]
pub enum LinkEvent {
    /// CONNACK (success).
    Connected(Connack),
    /// A message arrived.
    Message(Inbound),
    /// The SUBACK for a token.
    Subscribed(SubscribeToken),
    /// A PUBACK with a reason code that is not a success (e.g. 0x87 not authorized).
    PublishRefused {
        /// Packet id.
        pkid: u16,
        /// Why.
        reason: String,
    },
    /// A PUBACK (any reason) for packet `pkid`.
    PubAck(u16),
    /// We sent PUBLISH `pkid` (0 for QoS 0).
    PublishSent(u16),
    /// The connection dropped; the event loop retries after a backoff.
    Disconnected(String),
    /// CONNACK refused the account (code 0x86, 0x87 or 0x8C). The event loop has stopped:
    /// the same credentials cannot succeed.
    Refused(u8),
    /// DISCONNECT 0x8E: another client took our id. The event loop has stopped.
    TakenOver,
}

/// The rumqttc event loop as a cancel-safe source of events for a `select!` loop.
///
/// The in-flight `poll()` lives inside the stream, so a `select!` branch that loses does not
/// cancel a half-written packet: the next `recv()` resumes it. Polling in the board's own task
/// (rather than a separate task feeding a channel) saves two task hops per round trip and the
/// channel's memory. After an error the next `recv()` first waits out the [`Backoff`]; after a
/// takeover (DISCONNECT 0x8E) the stream ends.
pub struct Events {
    inner: Pin<Box<dyn Stream<Item = Result<Event, LinkError>> + Send>>,
}

/// Why the event loop failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The connection dropped or could not be made; the next `recv()` retries after a backoff.
    Lost(String),
    /// CONNACK refused the account (its code); the stream ends.
    Refused(u8),
}

impl Events {
    /// Wraps `eventloop`, with backoff jitter seeded by `seed`; rumqttc's event queue is
    /// trimmed back to `events_kept` slots whenever it has drained.
    pub fn new(eventloop: EventLoop, seed: u64, events_kept: usize) -> Events {
        let start = (eventloop, Backoff::new(seed), None::<Duration>, false);
        let inner = futures_util::stream::unfold(
            start,
            move |(mut eventloop, mut backoff, delay, done)| async move {
                if done {
                    return None;
                }
                if let Some(d) = delay {
                    tracing::debug!(?d, "reconnecting after backoff");
                    tokio::time::sleep(d).await;
                }
                let polled = eventloop.poll().await;
                // A burst (rumqttc reads up to 10 packets per poll, two events each) grows the
                // queue; give that back once it has drained so idle boards stay small.
                let queue = &mut eventloop.state.events;
                if queue.is_empty() && queue.capacity() > events_kept {
                    queue.shrink_to(events_kept);
                }
                match polled {
                    Ok(ev) => {
                        let taken_over = matches!(&ev, Event::Incoming(Packet::Disconnect(d)) if d.reason_code == DisconnectReasonCode::SessionTakenOver);
                        if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                            backoff.connected(now());
                        }
                        Some((Ok(ev), (eventloop, backoff, None, taken_over)))
                    }
                    Err(e) => {
                        if let Some(code) = crate::accounts::refusal_code(&e) {
                            return Some((
                                Err(LinkError::Refused(code)),
                                (eventloop, backoff, None, true),
                            ));
                        }
                        let d = backoff.next_delay(now());
                        Some((
                            Err(LinkError::Lost(e.to_string())),
                            (eventloop, backoff, Some(d), false),
                        ))
                    }
                }
            },
        );
        Events {
            inner: Box::pin(inner),
        }
    }

    /// The next event; `None` once the session was taken over or the account refused. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Event, LinkError>> {
        self.inner.next().await
    }
}

/// Carries `Transmit`s out through an `AsyncClient` and pairs SUBACKs with tokens.
pub struct Driver {
    client: AsyncClient,
    waiting_pkid: VecDeque<SubscribeToken>,
    by_pkid: HashMap<u16, SubscribeToken>,
}

impl Driver {
    /// A driver on `client`.
    pub fn new(client: AsyncClient) -> Self {
        Driver {
            client,
            waiting_pkid: VecDeque::new(),
            by_pkid: HashMap::new(),
        }
    }

    /// The client, for DISCONNECT.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// Hands one transmit to rumqttc.
    pub async fn transmit(&mut self, t: Transmit) -> Result<(), ClientError> {
        match t {
            Transmit::Publish(p) => {
                let props = PublishProperties {
                    user_properties: p.user_properties,
                    ..Default::default()
                };
                self.client
                    .publish_with_properties(p.topic, qos(p.qos), p.retain, p.payload, props)
                    .await
            }
            Transmit::Subscribe {
                token,
                subscriptions,
            } => {
                let filters: Vec<Filter> = subscriptions
                    .into_iter()
                    .map(|s| {
                        let mut f = Filter::new(s.filter, qos(s.qos));
                        f.nolocal = s.no_local;
                        f
                    })
                    .collect();
                // rumqttc assigns packet ids in request order; the matching
                // Outgoing::Subscribe(pkid) events come in the same order.
                self.waiting_pkid.push_back(token);
                self.client.subscribe_many(filters).await
            }
            Transmit::Unsubscribe { filters } => {
                for f in filters {
                    self.client.unsubscribe(f).await?;
                }
                Ok(())
            }
        }
    }

    /// Forgets SUBACK bookkeeping when the connection drops.
    pub fn reset(&mut self) {
        self.waiting_pkid.clear();
        self.by_pkid.clear();
    }

    /// Reads one rumqttc event.
    pub fn read(&mut self, ev: Result<Event, LinkError>) -> Option<LinkEvent> {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                self.reset();
                return Some(match e {
                    LinkError::Lost(e) => LinkEvent::Disconnected(e),
                    LinkError::Refused(code) => LinkEvent::Refused(code),
                });
            }
        };
        match ev {
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(token) = self.waiting_pkid.pop_front() {
                    self.by_pkid.insert(pkid, token);
                }
                None
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => Some(LinkEvent::PublishSent(pkid)),
            Event::Outgoing(_) => None,
            Event::Incoming(Packet::ConnAck(ack)) => {
                let user_properties = ack
                    .properties
                    .map(|p| p.user_properties)
                    .unwrap_or_default();
                Some(LinkEvent::Connected(Connack { user_properties }))
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                self.by_pkid.remove(&ack.pkid).map(LinkEvent::Subscribed)
            }
            Event::Incoming(Packet::PubAck(ack)) => match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                    Some(LinkEvent::PubAck(ack.pkid))
                }
                other => Some(LinkEvent::PublishRefused {
                    pkid: ack.pkid,
                    reason: format!("{other:?}"),
                }),
            },
            Event::Incoming(Packet::Publish(p)) => Some(LinkEvent::Message(Inbound {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.to_vec(),
                retain: p.retain,
                user_properties: p
                    .properties
                    .map(|pr| pr.user_properties)
                    .unwrap_or_default(),
            })),
            Event::Incoming(Packet::Disconnect(d))
                if d.reason_code == DisconnectReasonCode::SessionTakenOver =>
            {
                Some(LinkEvent::TakenOver)
            }
            Event::Incoming(Packet::Disconnect(d)) => Some(LinkEvent::Disconnected(format!(
                "broker sent DISCONNECT {:?}",
                d.reason_code
            ))),
            Event::Incoming(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        assert_eq!(
            "mqtt://127.0.0.1:1883".parse::<BrokerAddr>().unwrap(),
            BrokerAddr {
                host: "127.0.0.1".into(),
                port: 1883
            }
        );
        assert_eq!("localhost:1884".parse::<BrokerAddr>().unwrap().port, 1884);
        for bad in ["mqtt://", "127.0.0.1", "mqtt://h:notaport", ":1883"] {
            assert!(bad.parse::<BrokerAddr>().is_err(), "{bad}");
        }
    }
}
