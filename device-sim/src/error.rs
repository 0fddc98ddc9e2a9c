//! The crate's error enum.

/// What can go wrong in the simulator, the controller or the benchmark.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The broker address could not be read.
    #[error("invalid broker address {0:?}: use mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883")]
    BrokerAddr(String),
    /// A device or tool name breaks the naming rules.
    #[error(transparent)]
    Core(#[from] axon_core::Error),
    /// An unknown profile name.
    #[error("unknown profile {0:?}: use home, lamp, thermostat, plug, lock, sensor or speaker")]
    Profile(String),
    /// The broker could not be reached in time.
    #[error("could not reach the broker at {addr} within {secs} s: is it running? (scripts/run.sh starts one)")]
    Unreachable {
        /// The address.
        addr: String,
        /// How long we tried.
        secs: u64,
    },
    /// The MQTT client stopped.
    #[error("MQTT client stopped: {0}")]
    Client(String),
    /// Devices did not show up in time.
    #[error("timed out after {secs} s waiting for devices: {detail}")]
    Timeout {
        /// How long we waited.
        secs: u64,
        /// What was missing.
        detail: String,
    },
}
