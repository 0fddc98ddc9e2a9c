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
    /// The broker refused an account; retrying with the same credentials cannot help.
    #[error("the broker at {addr} refused account {account}: {why}. ctl and bench use the owner's account (AXON_BROKER_ADMIN_PASSWORD, or .axon/broker.env in the current folder, which scripts/run.sh writes) unless --username/--password are given; a board uses its file under .axon/devices/, made by `axon-device-sim provision --device ID`")]
    Refused {
        /// The broker.
        addr: String,
        /// The username (never the password).
        account: String,
        /// The CONNACK reason, in words.
        why: String,
    },
    /// A board has no broker account and none can be created.
    #[error("board {0} has no broker account: run `axon-device-sim provision --device {0}` (needs the owner's credentials: AXON_BROKER_ADMIN_USERNAME/AXON_BROKER_ADMIN_PASSWORD or .axon/broker.env, which scripts/run.sh writes), or give --username/--password")]
    NoCredentials(String),
    /// A WebRTC call (`say --webrtc`) failed.
    #[error(transparent)]
    Media(#[from] axon_media::MediaError),
    /// Reading or writing credentials, or managing accounts, failed.
    #[error("broker accounts: {0}")]
    Accounts(String),
    /// Pairing with the worker failed.
    #[error("pairing: {0}")]
    Pairing(String),
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
    /// The Hub URL for `say` could not be read.
    #[error("invalid Hub URL {0:?}: use http://HOST:PORT (or ws://HOST:PORT), e.g. http://127.0.0.1:8787")]
    VoiceUrl(String),
    /// The Hub URL needs TLS, which this client does not have.
    #[error("{0} needs TLS (https:// or wss://), which axon-device-sim does not include: use a Hub on http:// (wrangler dev on 127.0.0.1:8787), or a local proxy that terminates TLS")]
    VoiceTls(String),
    /// The voice WebSocket could not be opened, or the Hub did not say `ready`.
    #[error("could not open the voice session {url}: {detail} (is the Hub running? scripts/run.sh starts one)")]
    VoiceConnect {
        /// The WebSocket URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// An input recording could not be used.
    #[error("cannot use {path} as speech: {detail} (give a 16-bit PCM WAV, e.g. `espeak-ng -w in.wav \"turn on the kitchen lamp\"`)")]
    Audio {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}
