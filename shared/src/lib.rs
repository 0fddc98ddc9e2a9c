//! # axon-core: Axon's protocol core
//!
//! Owns everything in Axon that needs no I/O, in layers that each use only the ones before:
//!
//! | layer | modules |
//! |---|---|
//! | [`transport`] | the MQTT 5 client session ([`transport::mqtt`]), the plain messages above it ([`transport::link`]) |
//! | [`protocol`] | JSON-RPC, MCP over MQTT for devices and the Hub, tools and permissions, telemetry, SSE |
//! | [`endpoint`] | one MQTT session with an MCP role: the drive loop the shells share |
//! | [`agent`] | the agent's turn, the offline planner and wording, model wire formats, memory |
//! | [`media`] | audio and endpointing, speech formats, the voice session and its wire, photos |
//! | [`trust`] | broker accounts: each account's ACL and the dynamic-security commands that manage them |
//!
//! [`time`] (timestamps, deadlines, the seeded RNG) and [`error`] serve them all.
//!
//! It never opens a socket, reads a clock, sleeps, spawns a task, draws OS randomness or logs
//! to stdout. Time comes in as a [`time::Timestamp`]; randomness comes in as a seed for
//! [`time::Rng`]. The same code compiles natively and for `wasm32-unknown-unknown`.
//!
//! ## The drive loop
//!
//! Every state machine is driven the same way: feed it with `handle_*`, then drain
//! `poll_transmit()` and `poll_event()` until both are empty, then wait for
//! `poll_timeout()` or the next input.
//!
//! ```no_run
//! use axon_core::protocol::mcp::server::{DeviceConfig, McpServer, ServerEvent};
//! use axon_core::protocol::mcp::topics::DeviceId;
//! use axon_core::protocol::mcp::types::CallToolResult;
//! use axon_core::time::Timestamp;
//! # fn now() -> Timestamp { Timestamp::ZERO }
//! # fn send(_: axon_core::transport::link::Transmit) {}
//! let id = DeviceId::new("kitchen-1").expect("a valid id");
//! let config = DeviceConfig::new(id, "lamp", "Kitchen lamp", Vec::new());
//! let mut device = McpServer::new(config).expect("valid tools");
//! device.handle_connected(now(), &Default::default());
//! loop {
//!     while let Some(t) = device.poll_transmit() {
//!         send(t); // to rumqttc or axon_core::transport::mqtt::Session
//!     }
//!     while let Some(ev) = device.poll_event() {
//!         if let ServerEvent::ToolCall { call, arguments, .. } = ev {
//!             device.handle_tool_result(now(), call, CallToolResult::structured(arguments));
//!         }
//!     }
//!     // ... wait for a message, a SUBACK or device.poll_timeout(), and feed it back in ...
//!     # break;
//! }
//! ```
#![warn(missing_docs)]

pub mod agent;
pub mod endpoint;
pub mod error;
pub mod media;
pub mod protocol;
pub mod time;
pub mod transport;
pub mod trust;

pub use error::Error;
