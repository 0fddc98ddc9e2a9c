//! The protocol layer: what the messages mean.
//!
//! Owns JSON-RPC ([`jsonrpc`]), MCP over MQTT for devices and the Hub ([`mcp`]), tool schemas,
//! argument validation and permissions ([`tool`]), telemetry and device events ([`telemetry`])
//! and Server-Sent Events framing ([`sse`]). It consumes and produces the transport's plain
//! messages and never touches an MQTT session itself (the [`crate::endpoint`] joins the two).

pub mod jsonrpc;
pub mod mcp;
pub mod sse;
pub mod telemetry;
pub mod tool;
