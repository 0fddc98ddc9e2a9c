//! The media endpoint (`axon-media`) under test, and a board's `say --webrtc`, as processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axon_core::transport::link::Credentials;
use serde_json::Value;

use crate::device_sim::{binary, workspace_binary};
use crate::{Broker, DeviceSim};

/// A running `axon-media`, with its own broker account; its JSON lines are read as a
/// device-sim's are. Stopped (SIGINT) on drop.
pub struct MediaEndpoint {
    /// The process and its lines.
    pub process: DeviceSim,
}

impl MediaEndpoint {
    /// Provisions the endpoint's account on `broker` and starts it for the Hub at `worker`
    /// with Hub credential `token` and more `args`; waits for `ready`.
    pub fn start(broker: &Broker, worker: &str, token: &str, args: &[&str]) -> MediaEndpoint {
        static N: AtomicUsize = AtomicUsize::new(0);
        let account = broker.provision_media();
        let log = broker.dir().join(format!(
            "axon-media-{}.log",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = Command::new(workspace_binary("axon-media", "axon-media"));
        cmd.args(["--broker", &broker.url(), "--worker", worker])
            .args(args)
            .env("AXON_MEDIA_BROKER_USERNAME", &account.username)
            .env("AXON_MEDIA_BROKER_PASSWORD", account.password())
            .env("AXON_MEDIA_TOKEN", token)
            .env(
                "RUST_LOG",
                std::env::var("AXON_TEST_LOG").unwrap_or_else(|_| "axon_media=info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("axon-media log file"));
        let mut process = DeviceSim::from_command(cmd, log);
        process.wait_for(Duration::from_secs(20), |v| v["event"] == "ready");
        MediaEndpoint { process }
    }

    /// Waits for the next `call_ended` (or `refused`) line for `device` after those seen.
    pub fn wait_ended(&mut self, device: &str, nth: usize) -> Value {
        let n = self.process.wait_count(Duration::from_secs(30), nth, |v| {
            (v["event"] == "call_ended" || v["event"] == "refused") && v["device"] == device
        });
        assert!(
            n >= nth,
            "call {nth} of {device} did not end within 30 s; endpoint log:\n{}",
            self.log()
        );
        self.process
            .seen
            .iter()
            .filter(|v| {
                (v["event"] == "call_ended" || v["event"] == "refused") && v["device"] == device
            })
            .nth(nth - 1)
            .cloned()
            .expect("counted above")
    }

    /// Its stderr.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Drop for MediaEndpoint {
    fn drop(&mut self) {
        self.process.interrupt();
    }
}

/// Options for a board of `device` with `account` calling on `broker` in-process
/// (`axon_media::board::say`), as `say --webrtc` would: loopback, 300 ms lead-in, 60 s.
pub fn board_options(
    broker: &Broker,
    device: &str,
    account: &Credentials,
) -> axon_media::board::BoardOptions {
    axon_media::board::BoardOptions {
        broker: axon_media::broker::BrokerAddr {
            host: "127.0.0.1".into(),
            port: broker.tcp_port(),
        },
        account: axon_media::broker::Account {
            username: account.username.clone(),
            password: account.password().to_string(),
        },
        device: axon_core::protocol::mcp::topics::DeviceId::new(device).expect("a valid device id"),
        bind: std::net::Ipv4Addr::LOCALHOST.into(),
        timeout: Duration::from_secs(60),
        lead_in: Duration::from_millis(300),
        barge_in: None,
    }
}

/// Whether a `call_ended` line says the device hung up.
pub fn hung_up(ended: &Value) -> bool {
    ended["reason"]
        .as_str()
        .unwrap_or_default()
        .starts_with("hangup")
}

/// A folder holding `device`'s broker account as boards store it (`--state-dir`).
pub fn state_dir_with(dir: &Path, device: &str, account: &Credentials) -> PathBuf {
    let state = dir.join("webrtc-boards");
    device_sim::accounts::store_device(&state, device, account).expect("store the account");
    state
}

/// `axon-device-sim say --webrtc` as `device`; its output and its JSON lines.
pub fn say_webrtc(
    broker: &Broker,
    state_dir: &Path,
    device: &str,
    wav: &Path,
    out: &Path,
) -> (Output, Vec<Value>) {
    let output = Command::new(binary())
        .args([
            "say",
            "--webrtc",
            "--device",
            device,
            "--broker",
            &broker.url(),
        ])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--wav")
        .arg(wav)
        .arg("--out")
        .arg(out)
        .args(["--timeout-s", "60"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run axon-device-sim say --webrtc");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (output, lines)
}
