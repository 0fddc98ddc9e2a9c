//! The crate's one error enum, for local failures only.
//!
//! Wire errors (bad JSON from a peer, unknown method, invalid tool arguments) are not here:
//! they are [`crate::protocol::jsonrpc::ErrorObject`] values that go back to the peer.

use crate::protocol::mcp::topics::NameError;

/// A local failure in `axon-core`: a caller asked for something that cannot be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device id, tool name, server name or client id breaks the naming rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A device's own tool definition breaks Axon's rules (see `tool::check_tool_definition`).
    #[error("invalid tool definition: {0}")]
    ToolDefinition(String),
    /// An outgoing RPC payload is over the limit; nothing was sent.
    #[error("payload of {size} bytes exceeds the {limit} byte limit; nothing was sent")]
    PayloadTooLarge {
        /// Size of the payload.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A telemetry or event payload was refused.
    #[error(transparent)]
    Telemetry(#[from] crate::protocol::telemetry::TelemetryError),
    /// An error from the MQTT session.
    #[error(transparent)]
    Mqtt(#[from] crate::transport::mqtt::MqttError),
    /// Managing broker accounts failed.
    #[error(transparent)]
    BrokerAdmin(#[from] crate::trust::broker::BrokerAdminError),
    /// An image's facts could not be read.
    #[error(transparent)]
    Vision(#[from] crate::media::vision::VisionError),
}
