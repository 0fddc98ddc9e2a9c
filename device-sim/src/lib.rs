//! # device-sim: simulated Axon boards, a small MCP client, and the benchmark
//!
//! Owns the native shell around `axon-core`: [`board`] runs one simulated board (an MCP server
//! over MQTT with real state, telemetry and events), [`lean`] the same board on axon-core's own
//! MQTT session for large fleets, [`fleet`] runs many, [`ctl`] is a client
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
pub mod lean;
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

/// Raises this process's open-file limit for `boards` broker connections, plus room for the
/// rest: the soft limit goes up towards the hard one, which needs no privilege (a shell's
/// default soft limit, often 1024, stops a 10,000-board fleet at about a thousand). Returns a
/// warning that says what to do when even the hard limit is too low.
pub fn raise_open_file_limit(boards: usize) -> Option<String> {
    let want = boards as u64 + 64;
    match rlimit::increase_nofile_limit(want) {
        Ok(have) if have >= want => None,
        Ok(have) => Some(format!(
            "{boards} boards need about {want} open files and this process may open {have} (its hard limit): raise the hard limit (`ulimit -Hn` as root, or LimitNOFILE= in a systemd unit) or run fewer boards"
        )),
        Err(e) => Some(format!(
            "could not raise the open-file limit for {boards} boards: {e}"
        )),
    }
}
