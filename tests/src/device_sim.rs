//! A device-sim process under test: spawned from the built binary, its JSON lines on stdout
//! read by a thread, stopped with SIGINT (graceful leave) or SIGKILL (crash, will fires).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::broker::Broker;

/// How many devices `--profile home` brings (device-sim's demo home): the count every test
/// that waits for the home to be ready compares with, kept here so a new device changes one line.
pub const DEMO_HOME_DEVICES: u64 = 13;

/// The `axon-device-sim` binary of the same profile as the running executable.
pub fn binary() -> PathBuf {
    workspace_binary("axon-device-sim", "device-sim")
}

/// A workspace binary (`name`, from package `package`) of the same profile as the running
/// executable: beside it (a binary in `target/release/`) or one folder up (a test in
/// `target/debug/deps/`).
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let here = exe.parent().expect("executable dir");
    let beside = here.join(name);
    let bin = if beside.exists() {
        beside
    } else {
        here.parent().expect("target dir").join(name)
    };
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p {package}` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A running `axon-device-sim run ...`.
pub struct DeviceSim {
    child: Option<Child>,
    log: PathBuf,
    lines: Receiver<Value>,
    /// Every JSON line seen so far.
    pub seen: Vec<Value>,
}

impl DeviceSim {
    /// Spawns `axon-device-sim run --broker URL ARGS...` on `broker` and waits for
    /// `{"event":"ready"}`. On a broker with accounts the boards provision themselves with the
    /// owner's credentials (env), keeping theirs in the broker's directory; stderr goes to
    /// [`DeviceSim::log`].
    pub fn start(broker: &Broker, args: &[&str]) -> DeviceSim {
        let mut sim = DeviceSim::spawn(broker, args);
        sim.wait_for(Duration::from_secs(20), |v| v["event"] == "ready");
        sim
    }

    /// As [`DeviceSim::start`] without waiting for `ready`.
    pub fn spawn(broker: &Broker, args: &[&str]) -> DeviceSim {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = broker.dir().join(format!(
            "device-sim-{}.log",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .arg("--broker")
            .arg(broker.url())
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("AXON_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("AXON_DEVICE_STATE_DIR", broker.dir().join("devices"))
            .env_remove("AXON_BROKER_USERNAME")
            .env_remove("AXON_BROKER_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("device-sim log file"));
        if broker.has_accounts() {
            cmd.envs(broker.admin_env());
        }
        DeviceSim::from_command(cmd, log)
    }

    /// Spawns any workspace process that writes JSON lines on stdout (`axon-media` too) and
    /// reads them as [`DeviceSim::start`] does; stdout must be piped.
    pub fn from_command(mut cmd: Command, log: PathBuf) -> DeviceSim {
        let mut child = cmd.spawn().expect("spawn a workspace binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        DeviceSim {
            child: Some(child),
            log,
            lines,
            seen: Vec::new(),
        }
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process has exited (and with what status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until a line matching `pred` arrives (or was already seen); panics at the deadline.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "device-sim: no matching line within {timeout:?}; saw {:#?}\nstderr:\n{}",
                    self.seen,
                    self.log()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "device-sim exited; saw {:#?}\nstderr:\n{}",
                        self.seen,
                        self.log()
                    )
                }
            }
        }
    }

    /// Waits until at least `n` lines match `pred` (5 s at most) and returns how many do.
    pub fn wait_count(
        &mut self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&Value) -> bool,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            let count = self.seen.iter().filter(|v| pred(v)).count();
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            if let Ok(v) = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                self.seen.push(v);
            }
        }
    }

    /// Reads whatever lines are already waiting.
    pub fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
    }

    /// How many times `device` carried out `tool`, by the tool_call lines so far.
    pub fn tool_calls(&mut self, device: &str, tool: &str) -> usize {
        self.drain();
        self.seen
            .iter()
            .filter(|v| v["event"] == "tool_call" && v["device"] == device && v["tool"] == tool)
            .count()
    }

    /// Waits (5 s at most) until `device` has carried out `tool` at least `n` times, then
    /// returns the count: the answer can reach the test before the board's stdout line does.
    pub fn wait_tool_calls(&mut self, device: &str, tool: &str, n: usize) -> usize {
        self.wait_count(Duration::from_secs(5), n, |v| {
            v["event"] == "tool_call" && v["device"] == device && v["tool"] == tool
        })
    }

    /// SIGINT: devices leave gracefully; waits for the process to exit.
    pub fn interrupt(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    // The reader thread may not have read the last lines (`stopped`) yet when
                    // the process is already gone: read until it reaches the end of the pipe.
                    let end = Instant::now() + Duration::from_secs(5);
                    while let Some(left) = end.checked_duration_since(Instant::now()) {
                        match self.lines.recv_timeout(left) {
                            Ok(v) => self.seen.push(v),
                            Err(_) => break,
                        }
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            panic!("device-sim did not exit within 10 s of SIGINT");
        }
    }

    /// SIGSTOP: the boards freeze with their connections open (a hung board); calls to them
    /// stay in flight until [`DeviceSim::kill9`] or SIGCONT.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-STOP", &child.id().to_string()])
                .status();
        }
    }

    /// SIGKILL: a crash; the broker publishes the wills.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DeviceSim {
    fn drop(&mut self) {
        self.kill9();
    }
}
