//! The transport layer: how bytes reach the broker and come back as messages.
//!
//! Owns the MQTT 5 client session ([`mqtt`]) and the plain messages the layers above exchange
//! with whatever carries them ([`link`]). Nothing here knows about MCP, tools or the agent.

pub mod link;
pub mod mqtt;
