//! Sans-I/O MQTT 5 client session (placeholder: being written).

/// An MQTT session error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// Not connected.
    #[error("not connected to the broker")]
    NotConnected,
}
