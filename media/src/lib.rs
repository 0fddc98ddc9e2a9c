//! Axon's media endpoint (`axon-media`): the role EMQX's multimedia server plays for
//! EMQX-built devices (docs/voice.md §6, docs/protocol.md §9).
//!
//! A device offers a WebRTC call on `$webrtc/{id}/multimedia_proxy`; the endpoint answers,
//! decodes the device's Opus microphone track to 16 kHz PCM and feeds it into the Hub's voice
//! session (`/api/voice`, the same contract a board's WebSocket uses, so VAD, ASR, the agent,
//! TTS and barge-in are the Hub's, not copied here), and sends the answer speech back as an
//! Opus track. The session's text (transcript, answer markers) goes to `$message/{id}`.
//!
//! Modules:
//! - [`codec`]: Opus in and out, 48 kHz on the wire, 16 kHz to the Hub;
//! - [`peer`]: one WebRTC peer on one UDP socket (str0m, sans-I/O), either side of a call;
//! - [`endpoint`]: the service: signalling over MQTT, one call per device, the Hub bridge;
//! - [`board`]: a device's side of a call (`axon-device-sim say --webrtc`);
//! - [`broker`]: the MQTT connection both use;
//! - [`usage`]: a process's CPU time and memory, for the benchmarks.
//!
//! What a call may do and why it ends are axon-core's decisions
//! (`axon_core::media::signalling`); this crate only does the I/O.

pub mod board;
pub mod broker;
pub mod codec;
pub mod endpoint;
mod error;
pub mod peer;
pub mod usage;

pub use error::MediaError;

/// Installs str0m's crypto provider for this process (once; later calls do nothing).
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
