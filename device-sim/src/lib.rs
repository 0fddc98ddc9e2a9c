//! # device-sim: simulated Axon boards, a small MCP client, and the benchmark
//!
//! Owns the native shell around `axon-core`: [`board`] runs one simulated board (an MCP server
//! over MQTT with real state, telemetry and events), [`fleet`] runs many, [`ctl`] is a client
//! that discovers and calls them, [`bench`] measures them, [`voice`] is a board's side of the
//! Hub's `/api/voice` (`axon-device-sim say`), [`hostile`] feeds the core hostile input at volume
//! (`axon-device-sim hostile`). I/O is tokio + rumqttc v5; every
//! protocol decision is made by `axon-core`. Nothing here is needed by the browser or the
//! worker: shared logic goes to `axon-core`.

pub mod accounts;
pub mod bench;
pub mod board;
pub mod ctl;
mod error;
pub mod fleet;
pub mod hostile;
pub mod mqtt;
pub mod pairing;
pub mod profiles;
pub mod voice;

pub use error::SimError;

/// One JSON line on stdout (the events scripts and tests read), flushed at once.
pub fn emit_line(v: serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
