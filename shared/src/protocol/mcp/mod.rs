//! MCP over MQTT: the device (server) and Hub (client) state machines.
//!
//! Owns the protocol of docs/protocol.md §3–§5 and the Axon conventions of §6 that concern MCP.
//! It consumes and produces plain [`crate::transport::link`] messages and knows nothing about MQTT
//! packets or sessions, so a device can sit on rumqttc while the Hub and the browser use
//! [`crate::transport::mqtt::Session`].
//!
//! Draining rule for both state machines: after any `handle_*` call or command, call
//! `poll_transmit()` and `poll_event()` until both return `None`, then sleep until
//! `poll_timeout()` and call `handle_timeout(now)`.

pub mod client;
pub mod gateway;
pub mod identity;
mod in_flight;
pub mod server;
pub mod topics;
pub mod types;

/// The largest RPC payload either side sends or accepts (docs/protocol.md §6.5).
pub const MAX_RPC_PAYLOAD: usize = 256 * 1024;
