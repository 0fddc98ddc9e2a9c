//! A sans-I/O MQTT 5 client session on the `mqtt-protocol-core` codec.
//!
//! Owns one client's MQTT life: CONNECT with Clean Start, Session Expiry, user properties and
//! the will; keep-alive driven by time passed in; SUBSCRIBE with No Local; QoS 0/1 PUBLISH with
//! user properties and packet ids; PUBACK reason codes; the CONNACK properties MCP over MQTT
//! reads; takeover (DISCONNECT 0x8E); and reconnecting with exponential backoff and full jitter.
//! The browser tab and the edge worker drive it over WebSocket; tests drive it over TCP.
//!
//! It never touches a socket or a clock. Drive it like this: when [`SessionEvent::OpenTransport`]
//! comes out, open the socket and call [`Session::handle_transport_open`]; feed every byte read
//! to [`Session::handle_input`]; write every [`Session::poll_transmit`] buffer; call
//! [`Session::handle_transport_closed`] when the socket closes or fails, and
//! [`Session::handle_timeout`] at [`Session::poll_timeout`]. After any input, poll until both
//! `poll_transmit` and `poll_event` are empty.

pub mod backoff;
mod session;

pub use backoff::Backoff;
pub use session::{Session, SessionConfig, SessionEvent, SessionState};

/// A request the session cannot carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// Not connected to the broker.
    #[error("not connected to the broker (state: {0})")]
    NotConnected(&'static str),
    /// The packet would be larger than the broker accepts.
    #[error("packet of {size} bytes exceeds the broker's maximum packet size of {limit} bytes; nothing was sent")]
    PacketTooLarge {
        /// Encoded size.
        size: usize,
        /// The broker's limit.
        limit: u32,
    },
    /// A topic, filter or property the codec refuses (e.g. over 65,535 bytes, or a wildcard in a topic name).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was refused.
        what: &'static str,
        /// The codec's reason.
        reason: String,
    },
    /// Every packet id is in use (65,535 requests waiting for an acknowledgement).
    #[error("no packet id available: 65,535 requests are waiting for acknowledgements")]
    PacketIdsExhausted,
    /// Too many QoS 1 publishes are already waiting for the broker's Receive Maximum.
    #[error("{waiting} publishes are already waiting for the broker to acknowledge {in_flight} in flight (its Receive Maximum); nothing was sent: slow down or raise the broker's max_inflight_messages")]
    TooManyWaiting {
        /// Publishes waiting.
        waiting: usize,
        /// QoS 1 publishes in flight.
        in_flight: usize,
    },
}
