//! The session state machine. See the module docs of [`crate::transport::mqtt`] for the drive loop.
//!
//! It sits on `mqtt-protocol-core`'s packet types (builders, parsers and the packet framer)
//! and keeps the client's protocol state itself: packet ids, keep-alive, the PUBACKs it owes.
//! The codec's own `Connection` also carries MQTT 3.1.1, the broker role, QoS 2, topic aliases
//! and an offline store, none of which a v5 client that subscribes at QoS 1 at most needs; in
//! the browser that was 83 KB of the virtual device's wasm.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use mqtt_protocol_core::mqtt::common::{Arc, Cursor};
use mqtt_protocol_core::mqtt::connection::{
    PacketBuildResult, PacketBuilder, PacketData, RawPacket,
};
use mqtt_protocol_core::mqtt::packet::v5_0;
#[cfg(test)]
use mqtt_protocol_core::mqtt::packet::ReceiveMaximum;
use mqtt_protocol_core::mqtt::packet::{
    MaximumPacketSize, Property, Qos, SessionExpiryInterval, SubEntry, SubOpts, UserProperty,
};
use mqtt_protocol_core::mqtt::result_code::{
    ConnectReasonCode, DisconnectReasonCode, MqttError as CodecError,
};

use super::{Backoff, MqttError};
use crate::time::{earliest, Timestamp};
use crate::transport::link::{
    Connack, ConnectOptions, Inbound, Publish, QoS, SubscribeToken, Transmit, UserProperty as Prop,
};

/// How a session connects.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// CONNECT contents (client id, keep alive, user properties, will, credentials).
    pub connect: ConnectOptions,
    /// Largest packet we accept (sent as Maximum Packet Size). Default 1 MiB.
    pub max_packet_size: u32,
    /// Seed for the backoff jitter.
    pub seed: u64,
    /// How long to wait for the transport and the CONNACK.
    pub connect_timeout: Duration,
}

impl SessionConfig {
    /// Defaults: 1 MiB packets, 10 s connect timeout.
    pub fn new(connect: ConnectOptions, seed: u64) -> Self {
        SessionConfig {
            connect,
            max_packet_size: 1 << 20,
            seed,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the shell to open the transport.
    Opening,
    /// Transport open; CONNECT sent, waiting for CONNACK.
    Connecting,
    /// CONNACK received.
    Connected,
    /// Lost; waiting out the backoff.
    WaitingToReconnect,
    /// Closed for good (our DISCONNECT, or a takeover).
    Closed,
}

impl SessionState {
    fn name(self) -> &'static str {
        match self {
            SessionState::Opening => "opening",
            SessionState::Connecting => "connecting",
            SessionState::Connected => "connected",
            SessionState::WaitingToReconnect => "waiting to reconnect",
            SessionState::Closed => "closed",
        }
    }
}

/// What the session tells its shell.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Open the transport (first connection or a reconnect after the backoff).
    OpenTransport,
    /// Close the transport (after writing what `poll_transmit` still has).
    CloseTransport,
    /// CONNACK success.
    Connected {
        /// CONNACK user properties (`MCP-SERVER-NAME`, `MCP-SERVER-NAME-FILTERS`, ...).
        connack: Connack,
        /// Retain Available; an absent property means available
        /// (MQTT 5, docs/protocol.md §11 quirk 1).
        retain_available: bool,
        /// The broker's Maximum Packet Size, if it sent one.
        max_packet_size: Option<u32>,
    },
    /// CONNACK with a failure reason code; the session retries after the backoff.
    ConnectRefused {
        /// The reason code.
        reason_code: u8,
        /// Its name.
        reason: String,
    },
    /// A PUBLISH arrived.
    Message(Inbound),
    /// A SUBACK arrived. Reason codes below 0x80 are granted QoS; a grant does not prove the
    /// ACL allows delivery (Mosquitto grants denied filters, docs/protocol.md §11 quirk 2).
    Subscribed {
        /// The token given to [`Session::transmit`], if any.
        token: Option<SubscribeToken>,
        /// Packet id.
        packet_id: u16,
        /// One per filter.
        reason_codes: Vec<u8>,
    },
    /// An UNSUBACK arrived.
    Unsubscribed {
        /// Packet id.
        packet_id: u16,
    },
    /// A PUBACK arrived. 0x00 and 0x10 (no subscribers) are successes; 0x87 means not authorized.
    PublishAcked {
        /// Packet id.
        packet_id: u16,
        /// Reason code.
        reason_code: u8,
    },
    /// A QoS 1 publish was still unacknowledged when the connection dropped.
    PublishFailed {
        /// Packet id.
        packet_id: u16,
        /// Why.
        reason: String,
    },
    /// The connection dropped; a reconnect follows at `reconnect_at` (never after a takeover
    /// or our own DISCONNECT).
    Disconnected {
        /// Why.
        reason: String,
        /// When the next attempt is due.
        reconnect_at: Option<Timestamp>,
    },
    /// DISCONNECT 0x8E: another client connected with our id. The session stops for good.
    TakenOver,
}

/// A sans-I/O MQTT 5 client session.
pub struct Session {
    config: SessionConfig,
    state: SessionState,
    /// The packet framer of the current connection (none while there is no transport).
    frames: Option<PacketBuilder>,
    /// Packet ids held by SUBSCRIBE, UNSUBSCRIBE and QoS 1 PUBLISH until their acknowledgement.
    packet_ids: HashSet<u16>,
    next_packet_id: u16,
    /// The keep-alive in force: ours from CONNECT, or the broker's Server Keep Alive.
    keep_alive: Duration,
    /// When a PINGREQ is due: a keep-alive after the last packet sent.
    ping_at: Option<Timestamp>,
    /// A PINGREQ went out; without a PINGRESP by then the link is dead.
    pingresp_deadline: Option<Timestamp>,
    backoff: Backoff,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    connect_deadline: Option<Timestamp>,
    reconnect_at: Option<Timestamp>,
    tokens: HashMap<u16, SubscribeToken>,
    /// QoS 1 publishes sent and not yet acknowledged, in the order they went out. A list, not a
    /// set: at most the broker's Receive Maximum long, PUBACKs come mostly in order, and a
    /// dropped link fails them in send order without a sort.
    inflight: Vec<u16>,
    broker_max_packet: Option<u32>,
    /// The broker's Receive Maximum (CONNACK; 65,535 when absent): QoS 1 publishes in flight
    /// at once. Mosquitto says 20 by default, and a Hub that initializes a whole home at once
    /// sends more than that in a burst.
    broker_receive_max: u16,
    /// QoS 1 publishes waiting for a slot under `broker_receive_max`, sent in order as PUBACKs
    /// free slots. Sending past the limit would be a protocol error that drops the connection.
    waiting: VecDeque<Publish>,
}

/// At most this many QoS 1 publishes wait for the broker's Receive Maximum.
pub const MAX_WAITING_PUBLISHES: usize = 4096;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client_id", &self.config.connect.client_id)
            .field("state", &self.state)
            .finish()
    }
}

fn qos(q: QoS) -> Qos {
    match q {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
    }
}

fn invalid(what: &'static str) -> impl Fn(CodecError) -> MqttError {
    move |e| MqttError::Invalid {
        what,
        reason: format!("{e:?}"),
    }
}

fn user_props(props: &[Prop]) -> Result<Vec<Property>, MqttError> {
    props
        .iter()
        .map(|(k, v)| {
            UserProperty::new(k.as_str(), v.as_str())
                .map(Property::from)
                .map_err(invalid("user property"))
        })
        .collect()
}

/// The PUBLISH packet for `p` (its payload moves into the packet).
fn build_publish(p: Publish, pid: Option<u16>) -> Result<v5_0::Publish, MqttError> {
    let mut b = v5_0::Publish::builder()
        .topic_name(p.topic.as_str())
        .map_err(invalid("topic name"))?
        .qos(qos(p.qos))
        .retain(p.retain)
        .payload(p.payload)
        .props(user_props(&p.user_properties)?);
    if let Some(pid) = pid {
        b = b.packet_id(pid);
    }
    b.build().map_err(invalid("PUBLISH"))
}

fn malformed(what: &'static str) -> impl Fn(CodecError) -> String {
    move |e| format!("the broker sent a malformed {what} ({e:?})")
}

/// A topic name or user property with U+0000 makes a packet malformed (MQTT 5 §1.5.4);
/// the codec lets it through.
fn check_strings(topic: &str, props: &[Property]) -> Result<(), String> {
    let nul_in_props = props.iter().any(|p| match p {
        Property::UserProperty(u) => u.key().contains('\0') || u.val().contains('\0'),
        _ => false,
    });
    if topic.contains('\0') || nul_in_props {
        return Err(
            "the broker sent a packet with U+0000 in a topic name or user property; MQTT 5 §1.5.4 makes it malformed"
                .into(),
        );
    }
    Ok(())
}

fn read_user_props(props: &[Property]) -> Vec<Prop> {
    props
        .iter()
        .filter_map(|p| match p {
            Property::UserProperty(u) => Some((u.key().to_string(), u.val().to_string())),
            _ => None,
        })
        .collect()
}

impl Session {
    /// A session that asks for its first transport at once.
    pub fn new(config: SessionConfig) -> Self {
        let backoff = Backoff::new(config.seed);
        let mut s = Session {
            config,
            state: SessionState::Opening,
            frames: None,
            packet_ids: HashSet::new(),
            next_packet_id: 0,
            keep_alive: Duration::ZERO,
            ping_at: None,
            pingresp_deadline: None,
            backoff,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            connect_deadline: None,
            reconnect_at: None,
            tokens: HashMap::new(),
            inflight: Vec::new(),
            broker_max_packet: None,
            broker_receive_max: u16::MAX,
            waiting: VecDeque::new(),
        };
        s.events.push_back(SessionEvent::OpenTransport);
        s
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Replaces the CONNECT contents for the next connection (the Hub uses a fresh client id each time).
    pub fn set_connect_options(&mut self, connect: ConnectOptions) {
        self.config.connect = connect;
    }

    /// The transport is open: sends CONNECT.
    pub fn handle_transport_open(&mut self, now: Timestamp) {
        if self.state == SessionState::Closed {
            return;
        }
        self.frames = Some(PacketBuilder::with_maximum_packet_size(
            self.config.max_packet_size,
        ));
        self.packet_ids.clear();
        // As CONNECT says it (whole seconds, at most 65,535).
        self.keep_alive = Duration::from_secs(self.config.connect.keep_alive.as_secs().min(65_535));
        self.ping_at = None;
        self.pingresp_deadline = None;
        self.tokens.clear();
        self.state = SessionState::Connecting;
        self.connect_deadline = Some(now + self.config.connect_timeout);
        match self.build_connect() {
            Ok(connect) => self.send(now, connect.to_continuous_buffer()),
            Err(e) => {
                // A CONNECT we cannot encode will never work: stop rather than loop.
                self.state = SessionState::Closed;
                self.events.push_back(SessionEvent::Disconnected {
                    reason: format!("cannot build CONNECT: {e}"),
                    reconnect_at: None,
                });
                self.events.push_back(SessionEvent::CloseTransport);
            }
        }
    }

    fn build_connect(&self) -> Result<v5_0::Connect, MqttError> {
        let c = &self.config.connect;
        let mut props = vec![
            Property::from(
                SessionExpiryInterval::new(c.session_expiry_s)
                    .map_err(invalid("session expiry"))?,
            ),
            Property::from(
                MaximumPacketSize::new(self.config.max_packet_size)
                    .map_err(invalid("maximum packet size"))?,
            ),
        ];
        props.extend(user_props(&c.user_properties)?);
        let keep_alive = u16::try_from(c.keep_alive.as_secs()).unwrap_or(u16::MAX);
        let mut b = v5_0::Connect::builder()
            .client_id(c.client_id.as_str())
            .map_err(invalid("client id"))?
            .clean_start(c.clean_start)
            .keep_alive(keep_alive)
            .props(props);
        if let Some(w) = &c.will {
            b = b
                .will_message(w.topic.as_str(), &w.payload, qos(w.qos), w.retain)
                .map_err(invalid("will"))?;
            b = b.will_props(user_props(&w.user_properties)?);
        }
        if let Some(cred) = &c.credentials {
            b = b
                .user_name(cred.username.as_str())
                .map_err(invalid("user name"))?
                .password(cred.password().as_bytes().to_vec())
                .map_err(invalid("password"))?;
        }
        b.build().map_err(invalid("CONNECT"))
    }

    /// Bytes read from the transport, in any chunking.
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) {
        let mut cursor = Cursor::new(bytes);
        while (cursor.position() as usize) < bytes.len() {
            let before = cursor.position();
            let Some(frames) = self.frames.as_mut() else {
                return;
            };
            match frames.feed(&mut cursor) {
                PacketBuildResult::Complete(raw) => {
                    if let Err(reason) = self.received(now, raw) {
                        self.protocol_error(now, reason);
                    }
                }
                PacketBuildResult::Incomplete => {}
                PacketBuildResult::Error(CodecError::PacketTooLarge) => {
                    // The broker was told our limit in CONNECT, so DISCONNECT says why (0x95).
                    if self.state == SessionState::Connected {
                        if let Ok(d) = v5_0::Disconnect::builder()
                            .reason_code(DisconnectReasonCode::PacketTooLarge)
                            .build()
                        {
                            self.transmits.push_back(d.to_continuous_buffer());
                        }
                    }
                    let limit = self.config.max_packet_size;
                    self.protocol_error(
                        now,
                        format!("the broker sent a packet over our Maximum Packet Size of {limit} bytes"),
                    );
                }
                PacketBuildResult::Error(e) => {
                    self.protocol_error(now, format!("the broker sent a malformed packet ({e:?})"))
                }
            }
            if cursor.position() == before || self.frames.is_none() {
                break;
            }
        }
    }

    /// The transport closed or failed to open.
    pub fn handle_transport_closed(&mut self, now: Timestamp) {
        self.lost(now, "the connection closed".into());
    }

    /// Time passed: keep-alive, PINGRESP and CONNACK deadlines, reconnect.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.state == SessionState::WaitingToReconnect
            && self.reconnect_at.is_some_and(|t| t <= now)
        {
            self.reconnect_at = None;
            self.state = SessionState::Opening;
            self.connect_deadline = Some(now + self.config.connect_timeout);
            self.events.push_back(SessionEvent::OpenTransport);
            return;
        }
        if matches!(self.state, SessionState::Opening | SessionState::Connecting)
            && self.connect_deadline.is_some_and(|t| t <= now)
        {
            let secs = self.config.connect_timeout.as_secs();
            self.events.push_back(SessionEvent::CloseTransport);
            self.lost(now, format!("no CONNACK within {secs} s"));
            return;
        }
        if self.state != SessionState::Connected {
            return;
        }
        if self.pingresp_deadline.is_some_and(|t| t <= now) {
            self.pingresp_deadline = None;
            let waited = self.pingresp_timeout().as_secs();
            self.protocol_error(
                now,
                format!("the broker stopped answering (no PINGRESP within {waited} s)"),
            );
            return;
        }
        if self.ping_at.is_some_and(|t| t <= now) {
            self.send(now, v5_0::Pingreq::new().to_continuous_buffer());
            if self.pingresp_deadline.is_none() {
                self.pingresp_deadline = Some(now + self.pingresp_timeout());
            }
        }
    }

    /// How long a PINGREQ waits for its PINGRESP: half a keep-alive, between 1 and 10 s.
    fn pingresp_timeout(&self) -> Duration {
        (self.keep_alive / 2).clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// Queues a packet's bytes; any packet sent counts as the keep-alive's sign of life.
    fn send(&mut self, now: Timestamp, bytes: Vec<u8>) {
        self.transmits.push_back(bytes);
        self.ping_at = (!self.keep_alive.is_zero()).then(|| now + self.keep_alive);
    }

    /// A packet id no request holds (1..=65,535, round robin so a late acknowledgement of a
    /// released id is unlikely to match a new request).
    fn acquire_packet_id(&mut self) -> Result<u16, MqttError> {
        self.ensure_connected()?;
        if self.packet_ids.len() >= usize::from(u16::MAX) {
            return Err(MqttError::PacketIdsExhausted);
        }
        loop {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if self.packet_ids.insert(self.next_packet_id) {
                return Ok(self.next_packet_id);
            }
        }
    }

    /// Subscribes; the SUBACK comes back as [`SessionEvent::Subscribed`].
    pub fn subscribe(
        &mut self,
        now: Timestamp,
        subs: Vec<crate::transport::link::Subscription>,
    ) -> Result<u16, MqttError> {
        self.subscribe_with(now, subs, None)
    }

    fn subscribe_with(
        &mut self,
        now: Timestamp,
        subs: Vec<crate::transport::link::Subscription>,
        token: Option<SubscribeToken>,
    ) -> Result<u16, MqttError> {
        let pid = self.acquire_packet_id()?;
        let entries = subs
            .iter()
            .map(|s| {
                SubEntry::new(
                    s.filter.as_str(),
                    SubOpts::new().set_qos(qos(s.qos)).set_nl(s.no_local),
                )
                .map_err(invalid("topic filter"))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|entries| {
                v5_0::Subscribe::builder()
                    .entries(entries)
                    .packet_id(pid)
                    .build()
                    .map_err(invalid("SUBSCRIBE"))
            });
        let packet = match entries {
            Ok(packet) => packet,
            Err(e) => {
                self.packet_ids.remove(&pid);
                return Err(e);
            }
        };
        if let Some(t) = token {
            self.tokens.insert(pid, t);
        }
        self.send(now, packet.to_continuous_buffer());
        Ok(pid)
    }

    /// Unsubscribes.
    pub fn unsubscribe(&mut self, now: Timestamp, filters: Vec<String>) -> Result<u16, MqttError> {
        let pid = self.acquire_packet_id()?;
        let entries: Vec<&str> = filters.iter().map(String::as_str).collect();
        let packet = v5_0::Unsubscribe::builder()
            .entries(entries)
            .map_err(invalid("topic filter"))
            .and_then(|b| b.packet_id(pid).build().map_err(invalid("UNSUBSCRIBE")));
        match packet {
            Ok(packet) => {
                self.send(now, packet.to_continuous_buffer());
                Ok(pid)
            }
            Err(e) => {
                self.packet_ids.remove(&pid);
                Err(e)
            }
        }
    }

    /// Publishes; `Some(packet id)` for QoS 1 once sent. Refuses, sending nothing, a packet
    /// larger than the broker's Maximum Packet Size. A QoS 1 publish beyond the broker's
    /// Receive Maximum waits (in order, `Ok(None)`) until a PUBACK frees a slot; if the link
    /// drops first it is dropped with the in-flight ones, which fail.
    pub fn publish(&mut self, now: Timestamp, p: Publish) -> Result<Option<u16>, MqttError> {
        self.ensure_connected()?;
        if p.qos == QoS::AtLeastOnce
            && (self.inflight.len() >= usize::from(self.broker_receive_max)
                || !self.waiting.is_empty())
        {
            // Checked now, so that a publish that can never go is refused to its caller (a rare
            // path: only past the broker's limit is the payload copied for it).
            self.check_size(&build_publish(p.clone(), Some(1))?)?;
            if self.waiting.len() >= MAX_WAITING_PUBLISHES {
                return Err(MqttError::TooManyWaiting {
                    waiting: self.waiting.len(),
                    in_flight: self.inflight.len(),
                });
            }
            self.waiting.push_back(p);
            return Ok(None);
        }
        self.send_publish(now, p)
    }

    fn check_size(&self, packet: &v5_0::Publish) -> Result<(), MqttError> {
        match self.broker_max_packet {
            Some(limit) if packet.size() > limit as usize => Err(MqttError::PacketTooLarge {
                size: packet.size(),
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// A packet id for a QoS 1 publish (none for QoS 0).
    fn acquire_pid(&mut self, q: QoS) -> Result<Option<u16>, MqttError> {
        match q {
            QoS::AtMostOnce => self.ensure_connected().map(|()| None),
            QoS::AtLeastOnce => self.acquire_packet_id().map(Some),
        }
    }

    fn send_publish(&mut self, now: Timestamp, p: Publish) -> Result<Option<u16>, MqttError> {
        let pid = self.acquire_pid(p.qos)?;
        self.send_with_pid(now, p, pid)
    }

    fn send_with_pid(
        &mut self,
        now: Timestamp,
        p: Publish,
        pid: Option<u16>,
    ) -> Result<Option<u16>, MqttError> {
        let packet = match build_publish(p, pid).and_then(|packet| {
            self.check_size(&packet)?;
            Ok(packet)
        }) {
            Ok(packet) => packet,
            Err(e) => {
                if let Some(pid) = pid {
                    self.packet_ids.remove(&pid);
                }
                return Err(e);
            }
        };
        self.ensure_connected()?;
        self.send(now, packet.to_continuous_buffer());
        if let Some(pid) = pid {
            self.inflight.push(pid);
        }
        Ok(pid)
    }

    /// Sends waiting publishes while the broker has room for them.
    fn send_waiting(&mut self, now: Timestamp) {
        while self.state == SessionState::Connected
            && self.inflight.len() < usize::from(self.broker_receive_max)
            && !self.waiting.is_empty()
        {
            // The id first: when every id is held (subscriptions hold some too), the publish
            // stays at the head of the queue for the next PUBACK.
            let Ok(pid) = self.acquire_pid(QoS::AtLeastOnce) else {
                return;
            };
            if let Some(p) = self.waiting.pop_front() {
                let _ = self.send_with_pid(now, p, pid);
            }
        }
    }

    /// Carries out a request of the MCP layer; a subscribe's SUBACK carries its token back.
    pub fn transmit(&mut self, now: Timestamp, t: Transmit) -> Result<(), MqttError> {
        match t {
            Transmit::Publish(p) => self.publish(now, p).map(|_| ()),
            Transmit::Subscribe {
                token,
                subscriptions,
            } => self
                .subscribe_with(now, subscriptions, Some(token))
                .map(|_| ()),
            Transmit::Unsubscribe { filters } => self.unsubscribe(now, filters).map(|_| ()),
        }
    }

    /// Graceful DISCONNECT (0x00, the will is not published). No reconnect follows.
    pub fn disconnect(&mut self, now: Timestamp) {
        let was_connected = self.state == SessionState::Connected;
        self.state = SessionState::Closed;
        if was_connected {
            if let Ok(packet) = v5_0::Disconnect::builder()
                .reason_code(DisconnectReasonCode::NormalDisconnection)
                .build()
            {
                self.send(now, packet.to_continuous_buffer());
            }
        }
        self.end_link();
        self.reconnect_at = None;
        self.events.push_back(SessionEvent::CloseTransport);
    }

    /// The next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let timers = (self.state == SessionState::Connected)
            .then(|| earliest(self.ping_at, self.pingresp_deadline))
            .flatten();
        let connecting = matches!(self.state, SessionState::Opening | SessionState::Connecting)
            .then_some(self.connect_deadline)
            .flatten();
        earliest(earliest(timers, connecting), self.reconnect_at)
    }

    fn ensure_connected(&self) -> Result<(), MqttError> {
        match self.state {
            SessionState::Connected => Ok(()),
            state => Err(MqttError::NotConnected(state.name())),
        }
    }

    /// Forgets the connection's framer and keep-alive: nothing more is read or pinged on it.
    fn end_link(&mut self) {
        self.frames = None;
        self.ping_at = None;
        self.pingresp_deadline = None;
    }

    /// The broker broke the protocol (or went silent): close and reconnect.
    fn protocol_error(&mut self, now: Timestamp, reason: String) {
        if self.state != SessionState::Closed && self.frames.is_some() {
            self.events.push_back(SessionEvent::CloseTransport);
            self.lost(now, reason);
        }
    }

    /// The link is gone: fail what was in flight, schedule the reconnect.
    fn lost(&mut self, now: Timestamp, reason: String) {
        if matches!(
            self.state,
            SessionState::Closed | SessionState::WaitingToReconnect
        ) {
            return;
        }
        self.end_link();
        self.tokens.clear();
        self.connect_deadline = None;
        self.fail_inflight(&reason);
        self.waiting.clear();
        let at = now + self.backoff.next_delay(now);
        self.reconnect_at = Some(at);
        self.state = SessionState::WaitingToReconnect;
        self.events.push_back(SessionEvent::Disconnected {
            reason,
            reconnect_at: Some(at),
        });
    }

    /// Every QoS 1 publish still waiting for its PUBACK fails, in the order they were sent.
    fn fail_inflight(&mut self, reason: &str) {
        for packet_id in std::mem::take(&mut self.inflight) {
            self.events.push_back(SessionEvent::PublishFailed {
                packet_id,
                reason: reason.to_string(),
            });
        }
    }

    /// One packet from the broker; `Err` is a protocol error that ends the connection.
    fn received(&mut self, now: Timestamp, raw: RawPacket) -> Result<(), String> {
        let connected = self.state == SessionState::Connected;
        match (raw.packet_type(), connected) {
            (2, false) => {
                let ack = raw
                    .parse_exact(v5_0::Connack::parse)
                    .map_err(malformed("CONNACK"))?;
                check_strings("", ack.props())?;
                self.connacked(now, ack);
            }
            (3, true) => {
                let PacketData::Publish(data) = &raw.data else {
                    return Err("the broker sent a malformed PUBLISH".into());
                };
                let (p, _) = v5_0::Publish::parse(raw.flags(), Arc::clone(data))
                    .map_err(malformed("PUBLISH"))?;
                if p.topic_name().is_empty() {
                    // We send no Topic Alias Maximum, so the broker may not use aliases.
                    return Err(
                        "the broker sent a PUBLISH with a topic alias we never allowed".into(),
                    );
                }
                // The codec checks UTF-8 only. A wildcard would reach the MCP roles as an id and
                // come back as a subscription filter, so the rules MQTT 5 sets are kept here.
                if p.topic_name().contains(['+', '#']) {
                    return Err(format!(
                        "the broker sent a PUBLISH whose topic name contains a wildcard ({:?}); MQTT 5 §3.3.2.1 forbids it",
                        p.topic_name()
                    ));
                }
                check_strings(p.topic_name(), p.props())?;
                match (p.qos(), p.packet_id()) {
                    (Qos::AtMostOnce, _) => {}
                    (Qos::AtLeastOnce, Some(pid)) => {
                        let ack = v5_0::Puback::builder()
                            .packet_id(pid)
                            .build()
                            .map_err(malformed("PUBLISH packet id"))?;
                        self.send(now, ack.to_continuous_buffer());
                    }
                    // We subscribe at QoS 1 at most, so the broker never delivers QoS 2.
                    _ => {
                        return Err("the broker sent a QoS 2 PUBLISH to a QoS 1 subscription".into())
                    }
                }
                self.events.push_back(SessionEvent::Message(Inbound {
                    topic: p.topic_name().to_string(),
                    payload: p.payload().as_slice().to_vec(),
                    retain: p.retain(),
                    user_properties: read_user_props(p.props()),
                }));
            }
            (4, true) => {
                let a = raw
                    .parse_exact(v5_0::Puback::parse)
                    .map_err(malformed("PUBACK"))?;
                let packet_id = a.packet_id();
                self.packet_ids.remove(&packet_id);
                if let Some(i) = self.inflight.iter().position(|&p| p == packet_id) {
                    self.inflight.remove(i);
                }
                let reason_code = a.reason_code().map(|r| r as u8).unwrap_or(0);
                self.events.push_back(SessionEvent::PublishAcked {
                    packet_id,
                    reason_code,
                });
                self.send_waiting(now);
            }
            (9, true) => {
                let s = raw
                    .parse_exact(v5_0::Suback::parse)
                    .map_err(malformed("SUBACK"))?;
                let packet_id = s.packet_id();
                self.packet_ids.remove(&packet_id);
                let reason_codes = s.reason_codes().into_iter().map(|c| c as u8).collect();
                self.events.push_back(SessionEvent::Subscribed {
                    token: self.tokens.remove(&packet_id),
                    packet_id,
                    reason_codes,
                });
            }
            (11, true) => {
                let u = raw
                    .parse_exact(v5_0::Unsuback::parse)
                    .map_err(malformed("UNSUBACK"))?;
                let packet_id = u.packet_id();
                self.packet_ids.remove(&packet_id);
                self.events
                    .push_back(SessionEvent::Unsubscribed { packet_id });
            }
            (13, true) => self.pingresp_deadline = None,
            (14, _) => {
                let d = raw
                    .parse_exact(v5_0::Disconnect::parse)
                    .map_err(malformed("DISCONNECT"))?;
                let code = d.reason_code();
                self.events.push_back(SessionEvent::CloseTransport);
                if code == Some(DisconnectReasonCode::SessionTakenOver) {
                    self.fail_inflight("session taken over");
                    self.waiting.clear();
                    self.end_link();
                    self.state = SessionState::Closed;
                    self.events.push_back(SessionEvent::TakenOver);
                } else {
                    self.lost(now, format!("the broker sent DISCONNECT {code:?}"));
                }
            }
            (kind, _) => {
                let name = PACKET_NAMES
                    .get(usize::from(kind))
                    .copied()
                    .unwrap_or("reserved");
                let when = if connected { "" } else { " before CONNACK" };
                return Err(format!("the broker sent an unexpected {name} packet{when}"));
            }
        }
        Ok(())
    }

    fn connacked(&mut self, now: Timestamp, ack: v5_0::Connack) {
        if ack.reason_code() != ConnectReasonCode::Success {
            let code = ack.reason_code() as u8;
            self.events.push_back(SessionEvent::ConnectRefused {
                reason_code: code,
                reason: format!("{:?}", ack.reason_code()),
            });
            self.events.push_back(SessionEvent::CloseTransport);
            self.lost(
                now,
                format!("CONNECT refused: {:?} (0x{code:02x})", ack.reason_code()),
            );
            return;
        }
        let mut retain_available = true;
        let mut max_packet_size = None;
        self.broker_receive_max = u16::MAX;
        for p in ack.props() {
            match p {
                Property::RetainAvailable(r) => retain_available = r.val() == 1,
                Property::MaximumPacketSize(m) => max_packet_size = Some(m.val()),
                Property::ReceiveMaximum(r) => self.broker_receive_max = r.val().max(1),
                // The broker's keep-alive wins over ours (MQTT 5 §3.2.2.3.14).
                Property::ServerKeepAlive(k) => {
                    self.keep_alive = Duration::from_secs(u64::from(k.val()));
                    self.ping_at = (!self.keep_alive.is_zero()).then(|| now + self.keep_alive);
                }
                _ => {}
            }
        }
        self.broker_max_packet = max_packet_size;
        self.state = SessionState::Connected;
        self.connect_deadline = None;
        self.backoff.connected(now);
        let connack = Connack {
            user_properties: read_user_props(ack.props()),
        };
        self.events.push_back(SessionEvent::Connected {
            connack,
            retain_available,
            max_packet_size,
        });
    }
}

/// MQTT control packet names by type, for errors.
const PACKET_NAMES: [&str; 16] = [
    "reserved",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "AUTH",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::link::Subscription;
    use mqtt_protocol_core::mqtt::connection::Event;
    use mqtt_protocol_core::mqtt::packet::{GenericPacketTrait, Packet};
    use mqtt_protocol_core::mqtt::packet::{RetainAvailable, ServerKeepAlive};
    use mqtt_protocol_core::mqtt::result_code::{PubackReasonCode, SubackReasonCode};
    use mqtt_protocol_core::mqtt::{role, Connection, Version};

    /// The broker side, on the same codec in its server role.
    struct FakeBroker {
        conn: Connection<role::Server>,
    }

    impl FakeBroker {
        fn new() -> Self {
            FakeBroker {
                conn: Connection::<role::Server>::new(Version::V5_0),
            }
        }

        /// Reads what the client wrote; returns the packets.
        fn read(&mut self, s: &mut Session) -> Vec<Packet> {
            let mut out = Vec::new();
            while let Some(bytes) = s.poll_transmit() {
                let mut cur = Cursor::new(bytes.as_slice());
                while (cur.position() as usize) < bytes.len() {
                    for ev in self.conn.recv(&mut cur) {
                        if let Event::NotifyPacketReceived(p) = ev {
                            out.push(p);
                        }
                    }
                }
            }
            out
        }

        fn bytes_of(&mut self, events: Vec<Event>) -> Vec<u8> {
            events
                .into_iter()
                .filter_map(|e| match e {
                    Event::RequestSendPacket { packet, .. } => Some(packet.to_continuous_buffer()),
                    _ => None,
                })
                .flatten()
                .collect()
        }

        fn connack(&mut self, props: Vec<Property>) -> Vec<u8> {
            let p = v5_0::Connack::builder()
                .session_present(false)
                .reason_code(ConnectReasonCode::Success)
                .props(props)
                .build()
                .unwrap();
            let ev = self.conn.checked_send(p);
            self.bytes_of(ev)
        }
    }

    fn options() -> ConnectOptions {
        ConnectOptions {
            client_id: "kitchen-1".into(),
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry_s: 0,
            user_properties: vec![
                ("MCP-COMPONENT-TYPE".into(), "mcp-server".into()),
                ("MCP-META".into(), "{}".into()),
            ],
            will: Some(Publish {
                topic: "$mcp-server/presence/kitchen-1/axon/lamp/kitchen-1".into(),
                payload: vec![],
                qos: QoS::AtLeastOnce,
                retain: true,
                user_properties: vec![
                    ("MCP-COMPONENT-TYPE".into(), "mcp-server".into()),
                    ("MCP-MQTT-CLIENT-ID".into(), "kitchen-1".into()),
                ],
            }),
            credentials: None,
        }
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn drain(s: &mut Session) -> Vec<SessionEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// A session connected to a fake broker at t=0.
    fn connected(props: Vec<Property>) -> (Session, FakeBroker, Vec<SessionEvent>) {
        let mut s = Session::new(SessionConfig::new(options(), 1));
        assert_eq!(s.poll_event(), Some(SessionEvent::OpenTransport));
        s.handle_transport_open(t(0));
        let mut b = FakeBroker::new();
        let packets = b.read(&mut s);
        assert!(matches!(packets.as_slice(), [Packet::V5_0Connect(_)]));
        let ack = b.connack(props);
        s.handle_input(t(1), &ack);
        let events = drain(&mut s);
        (s, b, events)
    }

    #[test]
    fn connect_carries_clean_start_expiry_user_properties_and_will() {
        let mut s = Session::new(SessionConfig::new(options(), 1));
        s.handle_transport_open(t(0));
        let mut b = FakeBroker::new();
        let Packet::V5_0Connect(c) = b.read(&mut s).remove(0) else {
            panic!("CONNECT expected")
        };
        assert!(c.clean_start());
        assert_eq!(c.client_id(), "kitchen-1");
        assert_eq!(c.keep_alive(), 30);
        assert!(c
            .props()
            .iter()
            .any(|p| matches!(p, Property::SessionExpiryInterval(e) if e.val() == 0)));
        assert!(c
            .props()
            .iter()
            .any(|p| matches!(p, Property::MaximumPacketSize(m) if m.val() == 1 << 20)));
        assert_eq!(read_user_props(c.props()), options().user_properties);
        assert!(c.will_flag() && c.will_retain());
        assert_eq!(
            c.will_topic(),
            Some("$mcp-server/presence/kitchen-1/axon/lamp/kitchen-1")
        );
        assert_eq!(c.will_payload(), Some(&[][..]));
        assert_eq!(read_user_props(c.will_props()).len(), 2);
    }

    #[test]
    fn absent_retain_available_means_available() {
        let (_, _, events) = connected(vec![]);
        assert!(
            matches!(
                events.as_slice(),
                [SessionEvent::Connected {
                    retain_available: true,
                    max_packet_size: None,
                    ..
                }]
            ),
            "{events:?}"
        );
        let (_, _, events) = connected(vec![
            RetainAvailable::new(0).unwrap().into(),
            UserProperty::new("MCP-SERVER-NAME", "a/b").unwrap().into(),
        ]);
        match &events[0] {
            SessionEvent::Connected {
                retain_available,
                connack,
                ..
            } => {
                assert!(!retain_available);
                assert_eq!(connack.user_property("MCP-SERVER-NAME"), Some("a/b"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subscribe_sets_no_local_and_echoes_the_token() {
        let (mut s, mut b, _) = connected(vec![]);
        let subs = vec![
            Subscription {
                filter: "$mcp-rpc/hub/kitchen-1/axon/lamp/kitchen-1".into(),
                qos: QoS::AtLeastOnce,
                no_local: true,
            },
            Subscription {
                filter: "$mcp-client/presence/hub".into(),
                qos: QoS::AtLeastOnce,
                no_local: false,
            },
        ];
        s.transmit(
            t(2),
            Transmit::Subscribe {
                token: SubscribeToken(42),
                subscriptions: subs,
            },
        )
        .unwrap();
        let Packet::V5_0Subscribe(sub) = b.read(&mut s).remove(0) else {
            panic!("SUBSCRIBE expected")
        };
        assert!(sub.entries()[0].sub_opts().nl());
        assert!(!sub.entries()[1].sub_opts().nl());
        let ack = v5_0::Suback::builder()
            .packet_id(sub.packet_id())
            .reason_codes(vec![
                SubackReasonCode::GrantedQos1,
                SubackReasonCode::GrantedQos1,
            ])
            .build()
            .unwrap();
        let ev = b.conn.checked_send(ack);
        let bytes = b.bytes_of(ev);
        s.handle_input(t(3), &bytes);
        assert_eq!(
            drain(&mut s),
            vec![SessionEvent::Subscribed {
                token: Some(SubscribeToken(42)),
                packet_id: sub.packet_id(),
                reason_codes: vec![1, 1]
            }]
        );
    }

    #[test]
    fn publish_keeps_user_properties_in_order_and_surfaces_puback_codes() {
        let (mut s, mut b, _) = connected(vec![]);
        let props = vec![
            ("MCP-COMPONENT-TYPE".to_string(), "mcp-server".to_string()),
            ("MCP-MQTT-CLIENT-ID".to_string(), "kitchen-1".to_string()),
            ("x".to_string(), "1".to_string()),
        ];
        let pid = s
            .publish(
                t(2),
                Publish {
                    topic: "a/b".into(),
                    payload: b"{}".to_vec(),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    user_properties: props.clone(),
                },
            )
            .unwrap()
            .unwrap();
        let Packet::V5_0Publish(p) = b.read(&mut s).remove(0) else {
            panic!("PUBLISH expected")
        };
        assert_eq!(read_user_props(p.props()), props);
        let ack = v5_0::Puback::builder()
            .packet_id(pid)
            .reason_code(PubackReasonCode::NotAuthorized)
            .build()
            .unwrap();
        let ev = b.conn.checked_send(ack);
        let bytes = b.bytes_of(ev);
        s.handle_input(t(3), &bytes);
        assert_eq!(
            drain(&mut s),
            vec![SessionEvent::PublishAcked {
                packet_id: pid,
                reason_code: 0x87
            }]
        );
    }

    fn qos1(topic: &str) -> Publish {
        Publish {
            topic: topic.into(),
            payload: b"{}".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: false,
            user_properties: vec![],
        }
    }

    fn puback(b: &mut FakeBroker, pid: u16) -> Vec<u8> {
        let ack = v5_0::Puback::builder().packet_id(pid).build().unwrap();
        let ev = b.conn.checked_send(ack);
        b.bytes_of(ev)
    }

    fn topics(packets: &[Packet]) -> Vec<String> {
        packets
            .iter()
            .filter_map(|p| match p {
                Packet::V5_0Publish(p) => Some(p.topic_name().to_string()),
                _ => None,
            })
            .collect()
    }

    /// Mosquitto's CONNACK says Receive Maximum 20; a Hub initializing a 13-device home sends
    /// more QoS 1 requests than that at once. Past the limit, publishes wait, in order, and go
    /// as PUBACKs come: the link stays up (it used to drop with ReceiveMaximumExceeded).
    #[test]
    fn publishes_past_the_brokers_receive_maximum_wait_for_pubacks() {
        let (mut s, mut b, _) = connected(vec![ReceiveMaximum::new(2).unwrap().into()]);
        let first = s.publish(t(2), qos1("a/1")).unwrap().unwrap();
        let second = s.publish(t(2), qos1("a/2")).unwrap().unwrap();
        assert_eq!(s.publish(t(2), qos1("a/3")).unwrap(), None);
        assert_eq!(s.publish(t(2), qos1("a/4")).unwrap(), None);
        // QoS 0 is not counted and does not wait.
        let mut q0 = qos1("a/0");
        q0.qos = QoS::AtMostOnce;
        assert_eq!(s.publish(t(2), q0).unwrap(), None);
        assert_eq!(topics(&b.read(&mut s)), ["a/1", "a/2", "a/0"]);

        let ack = puback(&mut b, first);
        s.handle_input(t(3), &ack);
        assert_eq!(topics(&b.read(&mut s)), ["a/3"]);
        let ack = puback(&mut b, second);
        s.handle_input(t(4), &ack);
        assert_eq!(topics(&b.read(&mut s)), ["a/4"]);
        assert_eq!(s.state(), SessionState::Connected);
        assert!(drain(&mut s)
            .iter()
            .all(|e| matches!(e, SessionEvent::PublishAcked { .. })));
    }

    #[test]
    fn waiting_publishes_are_dropped_with_the_link_and_bounded() {
        let (mut s, mut b, _) = connected(vec![ReceiveMaximum::new(1).unwrap().into()]);
        let sent = s.publish(t(2), qos1("a/1")).unwrap().unwrap();
        for _ in 0..MAX_WAITING_PUBLISHES {
            assert_eq!(s.publish(t(2), qos1("a/w")).unwrap(), None);
        }
        let err = s.publish(t(2), qos1("a/over")).unwrap_err();
        assert!(matches!(err, MqttError::TooManyWaiting { .. }), "{err}");
        assert!(err.to_string().contains("Receive Maximum"), "{err}");
        assert_eq!(topics(&b.read(&mut s)), ["a/1"]);

        s.handle_transport_closed(t(3));
        let events = drain(&mut s);
        // The one in flight fails; the waiting ones were never sent and are not resent later.
        assert!(events.iter().any(
            |e| matches!(e, SessionEvent::PublishFailed { packet_id, .. } if *packet_id == sent)
        ));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, SessionEvent::PublishFailed { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn incoming_publish_split_byte_by_byte() {
        let (mut s, mut b, _) = connected(vec![]);
        let p = v5_0::Publish::builder()
            .topic_name("axon/telemetry/k1")
            .unwrap()
            .qos(Qos::AtMostOnce)
            .retain(true)
            .payload(b"{\"ts\":1}".to_vec())
            .props(vec![UserProperty::new("k", "v").unwrap().into()])
            .build()
            .unwrap();
        let ev = b.conn.checked_send(p);
        let bytes = b.bytes_of(ev);
        for byte in &bytes {
            s.handle_input(t(2), std::slice::from_ref(byte));
        }
        assert_eq!(
            drain(&mut s),
            vec![SessionEvent::Message(Inbound {
                topic: "axon/telemetry/k1".into(),
                payload: b"{\"ts\":1}".to_vec(),
                retain: true,
                user_properties: vec![("k".into(), "v".into())]
            })]
        );
    }

    fn qos0(topic: &str, payload: Vec<u8>) -> Publish {
        Publish {
            topic: topic.into(),
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            user_properties: vec![],
        }
    }

    /// The reason a `Disconnected` event gives, if one came out.
    fn disconnect_reason(events: &[SessionEvent]) -> Option<&str> {
        events.iter().find_map(|e| match e {
            SessionEvent::Disconnected { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
    }

    #[test]
    fn incoming_qos1_publish_is_acknowledged_with_its_packet_id() {
        let (mut s, mut b, _) = connected(vec![]);
        let pid = b.conn.acquire_packet_id().unwrap();
        let p = v5_0::Publish::builder()
            .topic_name("$mcp-rpc/hub/k1/axon/lamp/k1")
            .unwrap()
            .qos(Qos::AtLeastOnce)
            .packet_id(pid)
            .payload(b"{}".to_vec())
            .build()
            .unwrap();
        let ev = b.conn.checked_send(p);
        let bytes = b.bytes_of(ev);
        s.handle_input(t(2), &bytes);
        assert!(
            matches!(drain(&mut s).as_slice(), [SessionEvent::Message(m)] if m.payload == b"{}")
        );
        let acks = b.read(&mut s);
        assert!(
            matches!(acks.as_slice(), [Packet::V5_0Puback(a)] if a.packet_id() == pid),
            "{acks:?}"
        );
    }

    #[test]
    fn a_pingresp_keeps_the_link_and_the_servers_keep_alive_wins() {
        let (mut s, mut b, _) = connected(vec![ServerKeepAlive::new(10).unwrap().into()]);
        let ping_at = s.poll_timeout().unwrap();
        assert_eq!(
            ping_at,
            t(1) + Duration::from_secs(10),
            "Server Keep Alive 10 s, not our 30"
        );
        s.handle_timeout(ping_at);
        assert!(matches!(
            b.read(&mut s).as_slice(),
            [Packet::V5_0Pingreq(_)]
        ));
        let ev = b.conn.checked_send(v5_0::Pingresp::new());
        let pong = b.bytes_of(ev);
        s.handle_input(ping_at + Duration::from_millis(5), &pong);
        assert_eq!(
            s.poll_timeout(),
            Some(ping_at + Duration::from_secs(10)),
            "after the PINGRESP only the next ping is due"
        );
        s.handle_timeout(ping_at + Duration::from_secs(10));
        assert!(drain(&mut s).is_empty(), "no disconnect");
        assert!(matches!(
            b.read(&mut s).as_slice(),
            [Packet::V5_0Pingreq(_)]
        ));
        assert_eq!(s.state(), SessionState::Connected);
    }

    #[test]
    fn traffic_postpones_the_ping() {
        let (mut s, mut b, _) = connected(vec![]);
        s.publish(t(20_000), qos0("axon/telemetry/k1", b"{}".to_vec()))
            .unwrap();
        b.read(&mut s);
        assert_eq!(s.poll_timeout(), Some(t(20_000) + Duration::from_secs(30)));
    }

    #[test]
    fn a_packet_over_our_maximum_size_gets_disconnect_0x95_and_a_reconnect() {
        let mut config = SessionConfig::new(options(), 1);
        config.max_packet_size = 1024;
        let mut s = Session::new(config);
        s.handle_transport_open(t(0));
        let mut b = FakeBroker::new();
        b.read(&mut s);
        let ack = b.connack(vec![]);
        s.handle_input(t(1), &ack);
        drain(&mut s);
        let p = v5_0::Publish::builder()
            .topic_name("axon/telemetry/k1")
            .unwrap()
            .qos(Qos::AtMostOnce)
            .payload(vec![b'x'; 2048])
            .build()
            .unwrap();
        // Encoded by hand: the broker's codec would itself refuse to send past our limit.
        let bytes = p.to_continuous_buffer();
        s.handle_input(t(2), &bytes);
        let events = drain(&mut s);
        assert!(events.contains(&SessionEvent::CloseTransport), "{events:?}");
        let reason = disconnect_reason(&events).expect("a reconnect is scheduled");
        assert!(reason.contains("Maximum Packet Size of 1024"), "{reason}");
        let sent = b.read(&mut s);
        assert!(
            matches!(sent.as_slice(), [Packet::V5_0Disconnect(d)] if d.reason_code() == Some(DisconnectReasonCode::PacketTooLarge)),
            "{sent:?}"
        );
        assert_eq!(s.state(), SessionState::WaitingToReconnect);
    }

    #[test]
    fn packets_a_v5_client_never_gets_are_protocol_errors() {
        // PUBLISH before CONNACK; then, connected: QoS 2 PUBLISH, PUBREL, PINGREQ, AUTH.
        let publish_before_connack = {
            let mut s = Session::new(SessionConfig::new(options(), 1));
            s.handle_transport_open(t(0));
            drain(&mut s);
            s.handle_input(t(1), &[0x30, 4, 0, 1, b'a', 0]);
            drain(&mut s)
        };
        let reason = disconnect_reason(&publish_before_connack)
            .unwrap()
            .to_string();
        assert!(
            reason.contains("unexpected PUBLISH packet before CONNACK"),
            "{reason}"
        );
        let cases: [(&[u8], &str); 4] = [
            (&[0x34, 6, 0, 1, b'a', 0, 1, 0], "QoS 2 PUBLISH"),
            (&[0x62, 2, 0, 1], "unexpected PUBREL"),
            (&[0xC0, 0], "unexpected PINGREQ"),
            (&[0xF0, 0], "unexpected AUTH"),
        ];
        for (bytes, expected) in cases {
            let (mut s, _, _) = connected(vec![]);
            s.handle_input(t(2), bytes);
            let events = drain(&mut s);
            assert!(events.contains(&SessionEvent::CloseTransport), "{events:?}");
            let reason = disconnect_reason(&events).unwrap();
            assert!(reason.contains(expected), "{reason} should say {expected}");
            assert_eq!(s.state(), SessionState::WaitingToReconnect);
        }
    }

    #[test]
    fn packet_ids_are_held_until_acknowledged_and_never_shared() {
        let (mut s, mut b, _) = connected(vec![]);
        let sub = s
            .subscribe(
                t(2),
                vec![Subscription {
                    filter: "a/#".into(),
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                }],
            )
            .unwrap();
        let mut publish = qos0("a/b", vec![]);
        publish.qos = QoS::AtLeastOnce;
        let first = s.publish(t(3), publish.clone()).unwrap().unwrap();
        assert_ne!(first, sub, "the SUBSCRIBE still holds its id");
        b.read(&mut s);
        let ack = v5_0::Puback::builder().packet_id(first).build().unwrap();
        let ev = b.conn.checked_send(ack);
        let bytes = b.bytes_of(ev);
        s.handle_input(t(4), &bytes);
        let second = s.publish(t(5), publish).unwrap().unwrap();
        assert!(second != sub && second != first, "{sub} {first} {second}");
        // An invalid filter gives its id back: the next request gets the one after.
        assert!(s
            .subscribe(
                t(6),
                vec![Subscription {
                    filter: "a".repeat(70_000),
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                }]
            )
            .is_err());
        assert_eq!(
            s.packet_ids.len(),
            2,
            "the SUBSCRIBE and the second publish"
        );
    }

    #[test]
    fn keep_alive_pings_and_a_silent_broker_triggers_a_jittered_reconnect() {
        let (mut s, mut b, _) = connected(vec![]);
        let ping_at = s.poll_timeout().expect("a keep-alive deadline");
        assert_eq!(
            ping_at,
            t(0) + Duration::from_secs(30),
            "keep-alive counts from the last packet sent (CONNECT)"
        );
        s.handle_timeout(ping_at);
        assert!(matches!(
            b.read(&mut s).as_slice(),
            [Packet::V5_0Pingreq(_)]
        ));
        // No PINGRESP: after the PINGRESP timeout the link is declared dead.
        let dead_at = s.poll_timeout().unwrap();
        assert!(dead_at <= ping_at + Duration::from_secs(10));
        s.handle_timeout(dead_at);
        let events = drain(&mut s);
        assert!(events.contains(&SessionEvent::CloseTransport), "{events:?}");
        let reconnect_at = events
            .iter()
            .find_map(|e| match e {
                SessionEvent::Disconnected { reconnect_at, .. } => *reconnect_at,
                _ => None,
            })
            .expect("a reconnect is scheduled");
        assert!(
            reconnect_at <= dead_at + Duration::from_millis(100),
            "first retry within 100 ms (full jitter)"
        );
        assert_eq!(s.state(), SessionState::WaitingToReconnect);
        s.handle_timeout(reconnect_at);
        assert_eq!(drain(&mut s), vec![SessionEvent::OpenTransport]);
        assert!(s
            .publish(
                t(99_000),
                Publish {
                    topic: "a".into(),
                    payload: vec![],
                    qos: QoS::AtMostOnce,
                    retain: false,
                    user_properties: vec![]
                }
            )
            .is_err());
    }

    #[test]
    fn unacknowledged_publishes_fail_when_the_link_drops() {
        let (mut s, _, _) = connected(vec![]);
        let pid = s
            .publish(
                t(2),
                Publish {
                    topic: "a".into(),
                    payload: vec![1],
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    user_properties: vec![],
                },
            )
            .unwrap()
            .unwrap();
        s.handle_transport_closed(t(3));
        let events = drain(&mut s);
        assert!(
            matches!(&events[0], SessionEvent::PublishFailed { packet_id, .. } if *packet_id == pid)
        );
        assert!(matches!(
            &events[1],
            SessionEvent::Disconnected {
                reconnect_at: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn takeover_stops_for_good() {
        let (mut s, mut b, _) = connected(vec![]);
        let d = v5_0::Disconnect::builder()
            .reason_code(DisconnectReasonCode::SessionTakenOver)
            .build()
            .unwrap();
        let ev = b.conn.checked_send(d);
        let bytes = b.bytes_of(ev);
        s.handle_input(t(2), &bytes);
        let events = drain(&mut s);
        assert!(events.contains(&SessionEvent::TakenOver), "{events:?}");
        s.handle_transport_closed(t(3));
        s.handle_timeout(t(1_000_000));
        assert_eq!(s.state(), SessionState::Closed);
        assert!(
            !drain(&mut s).contains(&SessionEvent::OpenTransport),
            "never reconnects after a takeover"
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn no_connack_in_time_closes_and_retries() {
        let mut s = Session::new(SessionConfig::new(options(), 1));
        drain(&mut s);
        s.handle_transport_open(t(0));
        assert_eq!(s.poll_timeout(), Some(t(10_000)));
        s.handle_timeout(t(10_000));
        let events = drain(&mut s);
        assert!(events.iter().any(|e| matches!(e, SessionEvent::Disconnected { reason, .. } if reason.contains("CONNACK"))), "{events:?}");
    }

    #[test]
    fn oversize_publish_is_refused_before_sending() {
        let (mut s, mut b, _) = connected(vec![MaximumPacketSize::new(1024).unwrap().into()]);
        let e = s
            .publish(
                t(2),
                Publish {
                    topic: "a".into(),
                    payload: vec![0; 2000],
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    user_properties: vec![],
                },
            )
            .unwrap_err();
        assert!(
            matches!(e, MqttError::PacketTooLarge { limit: 1024, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("1024"));
        assert!(b.read(&mut s).is_empty(), "nothing was sent");
    }

    #[test]
    fn graceful_disconnect_sends_disconnect_and_never_reconnects() {
        let (mut s, mut b, _) = connected(vec![]);
        s.disconnect(t(5));
        assert!(matches!(
            b.read(&mut s).as_slice(),
            [Packet::V5_0Disconnect(_)]
        ));
        assert_eq!(drain(&mut s), vec![SessionEvent::CloseTransport]);
        s.handle_transport_closed(t(6));
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.state(), SessionState::Closed);
    }

    /// Found by `axon-device-sim hostile` (mqtt and routing families): the codec checks only
    /// UTF-8, so a wildcard or NUL reached the Hub, which subscribed to what it read.
    #[test]
    fn a_publish_with_a_wildcard_or_nul_is_a_protocol_error() {
        let cases: [(&[u8], &str); 4] = [
            // PUBLISH QoS 0 "axon/+/k1", no properties, no payload.
            (b"\x30\x0c\x00\x09axon/+/k1\x00", "wildcard"),
            (b"\x30\x06\x00\x03a/#\x00", "wildcard"),
            (b"\x30\x06\x00\x03a\x00b\x00", "U+0000"),
            // User property "a\0" = "b".
            (
                b"\x30\x0e\x00\x03a/b\x08\x26\x00\x02a\x00\x00\x01b",
                "U+0000",
            ),
        ];
        for (bytes, expected) in cases {
            let (mut s, _, _) = connected(vec![]);
            s.handle_input(t(2), bytes);
            let events = drain(&mut s);
            assert!(
                !events.iter().any(|e| matches!(e, SessionEvent::Message(_))),
                "{events:?}"
            );
            let reason = disconnect_reason(&events).expect("a protocol-error close");
            assert!(reason.contains(expected), "{reason}");
        }
        // The same packet with a plain topic is delivered.
        let (mut s, _, _) = connected(vec![]);
        s.handle_input(t(2), b"\x30\x0c\x00\x09axon/x/k1\x00");
        assert!(
            matches!(drain(&mut s).as_slice(), [SessionEvent::Message(m)] if m.topic == "axon/x/k1")
        );
    }

    #[test]
    fn garbage_from_the_broker_closes_without_panicking() {
        let (mut s, _, _) = connected(vec![]);
        s.handle_input(t(2), &[0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]);
        let events = drain(&mut s);
        assert!(events.contains(&SessionEvent::CloseTransport), "{events:?}");
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)) {
            let (mut s, _, _) = connected(vec![]);
            for c in chunks {
                s.handle_input(t(2), &c);
                while s.poll_event().is_some() {}
                while s.poll_transmit().is_some() {}
            }
        }
    }
}
