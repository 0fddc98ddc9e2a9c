//! System-test harness: real Mosquitto, real device-sim processes, raw MQTT probes, the local AI
//! server.
//!
//! Owns starting and stopping the parts on free loopback ports, with every wait bounded.
//! The scenarios live in `tests/*.rs`, one behaviour per file.

pub mod bench;
pub mod broker;
pub mod device_sim;
pub mod http;
pub mod local_ai;
pub mod media;
pub mod peer;
pub mod probe;
pub mod voice;
pub mod voice_home;
pub mod wrangler;

pub use broker::Broker;
pub use device_sim::{DeviceSim, DEMO_HOME_DEVICES};
pub use http::{http_with, SseEvent, SseStream};
pub use local_ai::LocalAi;
pub use peer::Peer;
pub use probe::Probe;
pub use voice::{VoiceClient, VoiceMsg};
pub use wrangler::WranglerDev;

/// The repository root (the parent of `tests/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A loopback port the OS just handed out (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
