//! # axon-core: Axon's protocol core
//!
//! Owns everything in Axon that needs no I/O: the MQTT 5 client session ([`mqtt`]), MCP over
//! MQTT for devices and the Hub ([`mcp`]), JSON-RPC ([`jsonrpc`]), tool schemas and argument
//! validation ([`tool`]), telemetry payloads ([`telemetry`]) and what can be measured from a
//! photo without a vision model ([`vision`]).
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
//! use axon_core::mcp::server::{DeviceConfig, McpServer, ServerEvent};
//! use axon_core::mcp::topics::DeviceId;
//! use axon_core::mcp::types::CallToolResult;
//! use axon_core::time::Timestamp;
//! # fn now() -> Timestamp { Timestamp::ZERO }
//! # fn send(_: axon_core::link::Transmit) {}
//! let id = DeviceId::new("kitchen-1").expect("a valid id");
//! let config = DeviceConfig::new(id, "lamp", "Kitchen lamp", Vec::new());
//! let mut device = McpServer::new(config).expect("valid tools");
//! device.handle_connected(now(), &Default::default());
//! loop {
//!     while let Some(t) = device.poll_transmit() {
//!         send(t); // to rumqttc or axon_core::mqtt::Session
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
pub mod audio;
pub mod endpoint;
pub mod error;
pub mod jsonrpc;
pub mod link;
pub mod mcp;
pub mod mqtt;
pub mod speech;
pub mod sse;
pub mod telemetry;
pub mod time;
pub mod tool;
pub mod vision;
pub mod voice;

pub use error::Error;
