//! One MCP endpoint on one MQTT session: the drive loop every shell that uses
//! [`crate::transport::mqtt::Session`] (the edge worker's Hub, the browser's virtual device) would
//! otherwise write again.
//!
//! Owns the glue between the session and an MCP role ([`McpServer`] for a device,
//! [`McpClient`] for the Hub): CONNACK, SUBACK, messages and disconnects go to the role; what
//! the role wants sent goes through the session; the role's connect options are read again
//! before every connection attempt (so the Hub can take a fresh client id per connection).
//! `$mcp-…` messages belong to the role; any other message (Axon telemetry the Hub subscribed
//! to itself) comes out as [`EndpointEvent::Message`].
//!
//! It never opens a socket or reads a clock. Drive it like the session: open the transport on
//! [`EndpointEvent::OpenTransport`] and call [`Endpoint::handle_transport_open`]; feed bytes to
//! [`Endpoint::handle_input`]; write every [`Endpoint::poll_transmit`] buffer; call
//! [`Endpoint::handle_timeout`] at [`Endpoint::poll_timeout`]. After any input, drain
//! `poll_transmit` and `poll_event` until both are empty.

use std::collections::VecDeque;

use crate::protocol::mcp::client::{ClientEvent, McpClient};
use crate::protocol::mcp::server::{McpServer, ServerEvent};
use crate::time::{earliest, Timestamp};
use crate::transport::link::{
    Connack, ConnectOptions, Inbound, Publish, SubscribeToken, Subscription, Transmit,
};
use crate::transport::mqtt::{MqttError, Session, SessionConfig, SessionEvent, SessionState};

/// An MCP state machine that an [`Endpoint`] drives: the device side or the Hub side.
pub trait McpRole {
    /// What the role reports to its shell.
    type Event;
    /// CONNECT for the next connection.
    fn connect_options(&self) -> ConnectOptions;
    /// CONNACK success.
    fn handle_connected(&mut self, now: Timestamp, connack: &Connack);
    /// The connection dropped.
    fn handle_disconnected(&mut self, now: Timestamp);
    /// A SUBACK for a SUBSCRIBE the role asked for.
    fn handle_subscribed(&mut self, now: Timestamp, token: SubscribeToken);
    /// An MCP message.
    fn handle_message(&mut self, now: Timestamp, msg: &Inbound);
    /// A deadline passed.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The next thing to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event for the shell.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The role's next deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
}

macro_rules! role {
    ($ty:ty, $event:ty) => {
        impl McpRole for $ty {
            type Event = $event;
            fn connect_options(&self) -> ConnectOptions {
                <$ty>::connect_options(self)
            }
            fn handle_connected(&mut self, now: Timestamp, connack: &Connack) {
                <$ty>::handle_connected(self, now, connack)
            }
            fn handle_disconnected(&mut self, now: Timestamp) {
                <$ty>::handle_disconnected(self, now)
            }
            fn handle_subscribed(&mut self, now: Timestamp, token: SubscribeToken) {
                <$ty>::handle_subscribed(self, now, token)
            }
            fn handle_message(&mut self, now: Timestamp, msg: &Inbound) {
                <$ty>::handle_message(self, now, msg)
            }
            fn handle_timeout(&mut self, now: Timestamp) {
                <$ty>::handle_timeout(self, now)
            }
            fn poll_transmit(&mut self) -> Option<Transmit> {
                <$ty>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<$event> {
                <$ty>::poll_event(self)
            }
            fn poll_timeout(&self) -> Option<Timestamp> {
                <$ty>::poll_timeout(self)
            }
        }
    };
}

role!(McpServer, ServerEvent);
role!(McpClient, ClientEvent);

/// What an [`Endpoint`] reports to its shell.
#[derive(Debug)]
pub enum EndpointEvent<E> {
    /// Open the transport, then call [`Endpoint::handle_transport_open`].
    OpenTransport,
    /// Close the transport (after writing what `poll_transmit` still has).
    CloseTransport,
    /// CONNACK success: the role has been told; subscribe to the shell's own topics now.
    Connected,
    /// The broker refused the connection; the session retries after its backoff.
    ConnectRefused {
        /// The reason code's name.
        reason: String,
    },
    /// The connection dropped (the role has been told).
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The broker refused one of our QoS 1 publishes (0x87: not authorized by the ACL).
    PublishRefused {
        /// The PUBACK reason code.
        reason_code: u8,
    },
    /// A message outside MCP (a topic that does not start with `$mcp-`).
    Message(Inbound),
    /// A request the session could not carry out (not connected, too large).
    SendFailed(MqttError),
    /// Another client connected with our id (DISCONNECT 0x8E): the session stopped for good.
    TakenOver,
    /// What the MCP role reports.
    Mcp(E),
}

/// An MQTT session and the MCP role on it, driven as one state machine.
pub struct Endpoint<R: McpRole> {
    session: Session,
    role: R,
    events: VecDeque<EndpointEvent<R::Event>>,
}

impl<R: McpRole> Endpoint<R> {
    /// An endpoint for `role`; `seed` feeds the session's reconnect jitter.
    pub fn new(role: R, seed: u64) -> Self {
        let session = Session::new(SessionConfig::new(role.connect_options(), seed));
        Endpoint {
            session,
            role,
            events: VecDeque::new(),
        }
    }

    /// The MCP role (the registry, the device's tools).
    pub fn role(&self) -> &R {
        &self.role
    }

    /// The MCP role, to give it commands (call a tool, answer a call); drain afterwards.
    pub fn role_mut(&mut self) -> &mut R {
        &mut self.role
    }

    /// The session's state (connected, reconnecting...).
    pub fn state(&self) -> SessionState {
        self.session.state()
    }

    /// Whether the broker link is up.
    pub fn is_connected(&self) -> bool {
        self.session.state() == SessionState::Connected
    }

    /// The transport is open: the session sends CONNECT.
    pub fn handle_transport_open(&mut self, now: Timestamp) {
        self.session.handle_transport_open(now);
    }

    /// Bytes read from the transport.
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) {
        self.session.handle_input(now, bytes);
    }

    /// The transport closed or failed.
    pub fn handle_transport_closed(&mut self, now: Timestamp) {
        self.session.handle_transport_closed(now);
    }

    /// Fires whatever deadline of the session or the role has passed.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.session.poll_timeout().is_some_and(|d| d <= now) {
            self.session.handle_timeout(now);
        }
        if self.role.poll_timeout().is_some_and(|d| d <= now) {
            self.role.handle_timeout(now);
        }
    }

    /// Publishes a message of the shell's own (telemetry), outside MCP.
    pub fn publish(&mut self, now: Timestamp, p: Publish) -> Result<Option<u16>, MqttError> {
        self.session.publish(now, p)
    }

    /// Subscribes to the shell's own topics (telemetry); the SUBACK is not reported.
    pub fn subscribe(&mut self, now: Timestamp, subs: Vec<Subscription>) -> Result<u16, MqttError> {
        self.session.subscribe(now, subs)
    }

    /// The earliest deadline of the session and the role.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.session.poll_timeout(), self.role.poll_timeout())
    }

    /// Graceful DISCONNECT after everything the role has queued (a device's tombstone goes
    /// out first); no reconnect follows.
    pub fn disconnect(&mut self, now: Timestamp) {
        self.pump(now);
        self.session.disconnect(now);
    }

    /// The next buffer to write to the transport.
    pub fn poll_transmit(&mut self, now: Timestamp) -> Option<Vec<u8>> {
        self.pump(now);
        self.session.poll_transmit()
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self, now: Timestamp) -> Option<EndpointEvent<R::Event>> {
        self.pump(now);
        self.events.pop_front()
    }

    /// Moves everything between the session and the role until both are quiet.
    fn pump(&mut self, now: Timestamp) {
        loop {
            let mut busy = false;
            while let Some(ev) = self.session.poll_event() {
                busy = true;
                self.handle_session_event(now, ev);
            }
            while let Some(t) = self.role.poll_transmit() {
                busy = true;
                if let Err(e) = self.session.transmit(now, t) {
                    self.events.push_back(EndpointEvent::SendFailed(e));
                }
            }
            while let Some(ev) = self.role.poll_event() {
                busy = true;
                self.events.push_back(EndpointEvent::Mcp(ev));
            }
            if !busy {
                return;
            }
        }
    }

    fn handle_session_event(&mut self, now: Timestamp, ev: SessionEvent) {
        let out = match ev {
            SessionEvent::OpenTransport => {
                // The role may have changed its connect options since the last attempt.
                self.session
                    .set_connect_options(self.role.connect_options());
                EndpointEvent::OpenTransport
            }
            SessionEvent::CloseTransport => EndpointEvent::CloseTransport,
            SessionEvent::Connected { connack, .. } => {
                self.role.handle_connected(now, &connack);
                EndpointEvent::Connected
            }
            SessionEvent::ConnectRefused { reason, .. } => EndpointEvent::ConnectRefused { reason },
            SessionEvent::Message(m) if m.topic.starts_with("$mcp-") => {
                self.role.handle_message(now, &m);
                return;
            }
            SessionEvent::Message(m) => EndpointEvent::Message(m),
            SessionEvent::Subscribed {
                token: Some(token), ..
            } => {
                self.role.handle_subscribed(now, token);
                return;
            }
            SessionEvent::PublishAcked { reason_code, .. } if reason_code >= 0x80 => {
                EndpointEvent::PublishRefused { reason_code }
            }
            SessionEvent::Disconnected { reason, .. } => {
                self.role.handle_disconnected(now);
                EndpointEvent::Disconnected { reason }
            }
            SessionEvent::TakenOver => EndpointEvent::TakenOver,
            _ => return,
        };
        self.events.push_back(out);
    }
}
