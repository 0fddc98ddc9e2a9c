//! The independent Python peers (`tests/interop/`) as child processes: their JSON lines on
//! stdout are read by a thread and handed to the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use axon_core::transport::link::Credentials;

use crate::broker::Broker;
use crate::repo_root;

/// A running peer.
pub struct Peer {
    child: Option<Child>,
    lines: Receiver<Value>,
    /// Every line so far.
    pub seen: Vec<Value>,
}

impl Peer {
    /// Runs `tests/interop/{script}` with the project's venv Python.
    pub fn spawn(script: &str, args: &[&str]) -> Peer {
        let python = repo_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh",
            python.display()
        );
        Self::spawn_program(
            Command::new(python).arg(repo_root().join("tests/interop").join(script)),
            args,
        )
    }

    /// Runs `tests/interop/{script}` with `--username` and env `AXON_BROKER_PASSWORD` from
    /// `account` (the password stays off the command line).
    pub fn spawn_as(script: &str, args: &[&str], account: Option<&Credentials>) -> Peer {
        let python = repo_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh",
            python.display()
        );
        let mut cmd = Command::new(python);
        cmd.arg(repo_root().join("tests/interop").join(script));
        if let Some(a) = account {
            cmd.args(["--username", &a.username])
                .env("AXON_BROKER_PASSWORD", a.password());
        }
        Self::spawn_program(&mut cmd, args)
    }

    /// Runs the spec device (`tests/interop/spec_device.py`, "their device") on `broker` as
    /// `server_id` named `server_name` (with its own account at site home when the broker has
    /// accounts), with the habit switches in `extra`, and waits until it is online.
    pub fn spec_device(
        broker: &Broker,
        server_id: &str,
        server_name: &str,
        extra: &[&str],
    ) -> Peer {
        let addr = format!("127.0.0.1:{}", broker.tcp_port());
        let account = broker
            .has_accounts()
            .then(|| broker.provision_device(server_id, "home"));
        let mut args = vec![
            "--broker",
            addr.as_str(),
            "--server-id",
            server_id,
            "--server-name",
            server_name,
        ];
        args.extend_from_slice(extra);
        let mut p = Self::spawn_as("spec_device.py", &args, account.as_ref());
        p.wait_for(Duration::from_secs(20), |v| v["event"] == "online");
        p
    }

    /// Runs a wire-format server from `tests/interop/` (`openai_server.py`, `vlm_server.py`,
    /// `speech_server.py`) and waits for the port it prints: the peer and its
    /// `http://127.0.0.1:PORT/v1`, what the worker's `*_BASE_URL` settings take.
    pub fn spawn_server(script: &str, args: &[&str]) -> (Peer, String) {
        let mut server = Self::spawn(script, args);
        let port = server.wait_for(Duration::from_secs(10), |v| v["port"].is_u64())["port"]
            .as_u64()
            .unwrap_or_else(|| unreachable!("wait_for returned a line with a port"));
        (server, format!("http://127.0.0.1:{port}/v1"))
    }

    /// Runs `tests/web/{script}` with Node (the system's; playwright-core needs no newer).
    pub fn spawn_node(script: &str, args: &[&str]) -> Peer {
        Self::spawn_program(
            Command::new("node")
                .current_dir(repo_root())
                .arg(repo_root().join("tests/web").join(script)),
            args,
        )
    }

    fn spawn_program(cmd: &mut Command, args: &[&str]) -> Peer {
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python peer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("peer: {line}"),
                }
            }
        });
        Peer {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred`; panics with everything seen at the deadline.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "peer: no matching line within {timeout:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the process to exit (bounded) and returns every line.
    pub fn finish(&mut self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
        if let Some(mut c) = self.child.take() {
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        self.seen.clone()
    }

    /// The lines whose `step` (client) equals `step`.
    pub fn steps(&self, step: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|v| v["step"] == step)
            .cloned()
            .collect()
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A browser script (`tests/web/{script}`, playwright-core in Debian's headless Chromium) run to
/// its end: its step lines, printed for the test log. Fails the test if Chromium is missing or
/// any step reported an `error`, with `context()` (the worker's log) in the message.
pub fn browser_steps(
    script: &str,
    args: &[&str],
    timeout: Duration,
    context: impl Fn() -> String,
) -> Vec<Value> {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/setup.sh"
    );
    let lines = Peer::spawn_node(script, args).finish(timeout);
    for l in &lines {
        println!("{l}");
    }
    let failed: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(
        failed.is_empty(),
        "browser steps failed: {failed:#?}\nworker log:\n{}",
        context()
    );
    lines
}

/// The line of browser step `name`.
pub fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {lines:#?}"))
}

/// The official MCP Python SDK (`tests/interop/mcp_sdk_client.py`) against a `/mcp` URL with a
/// bearer token: initialize, list, call `tool` with `args` (JSON), then the same tool with bad
/// arguments. Its step lines; fails the test if the client did not finish.
pub fn mcp_sdk_client(url: &str, token: &str, tool: &str, args: &str) -> Vec<Value> {
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/interop/mcp_sdk_client.py"))
        .args([url, token, tool, args])
        .output()
        .expect("run the MCP SDK client (scripts/setup.sh installs it)");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success(),
        "MCP SDK client failed: {lines:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}
