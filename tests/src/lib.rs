//! System-test harness: real Mosquitto, real device-sim processes, raw MQTT probes, the local AI
//! server.
//!
//! Owns starting and stopping the parts on free loopback ports, with every wait bounded.
//! The scenarios live in `tests/*.rs`, one behaviour per file.

pub mod broker;
pub mod device_sim;
pub mod local_ai;
pub mod peer;
pub mod probe;
pub mod voice;
pub mod voice_home;
pub mod wrangler;

pub use broker::Broker;
pub use device_sim::DeviceSim;
pub use local_ai::LocalAi;
pub use peer::Peer;
pub use probe::Probe;
pub use voice::{VoiceClient, VoiceMsg};
pub use wrangler::{http_with, SseEvent, SseStream, WranglerDev};
