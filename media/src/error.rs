//! The media crate's one error enum; every message says what to do about it.

/// What went wrong in the media endpoint or a board's call.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A broker address that is not `mqtt://HOST:PORT`.
    #[error("broker address {0:?}: use mqtt://HOST:PORT (TLS is not supported here)")]
    BrokerUrl(String),
    /// A Hub address that is not `http://HOST:PORT`.
    #[error("Hub address {0:?}: use http://HOST:PORT (TLS is not supported here)")]
    WorkerUrl(String),
    /// The broker refused or dropped the connection.
    #[error("broker at {addr}: {detail}")]
    Broker {
        /// Where.
        addr: String,
        /// What happened.
        detail: String,
    },
    /// The Hub's voice session could not be opened.
    #[error("the Hub's voice session ({url}): {detail}")]
    Voice {
        /// The URL (no credential in it).
        url: String,
        /// What happened.
        detail: String,
    },
    /// The WebRTC stack refused something (an SDP, a candidate, a write).
    #[error("WebRTC: {0}")]
    Rtc(String),
    /// Opus refused a frame or a setting.
    #[error("Opus: {0}")]
    Opus(String),
    /// A socket failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The call ended before it did what was asked, with the endpoint's reason.
    #[error("the call ended: {0}")]
    CallEnded(String),
    /// Nothing came back in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl From<str0m::RtcError> for MediaError {
    fn from(e: str0m::RtcError) -> Self {
        MediaError::Rtc(e.to_string())
    }
}

impl From<opus::Error> for MediaError {
    fn from(e: opus::Error) -> Self {
        MediaError::Opus(e.to_string())
    }
}
