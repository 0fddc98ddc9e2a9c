//! `scripts/run.sh` as a newcomer runs it, on free loopback ports (its `AXON_*_PORT` variables,
//! never the defaults a developer's own run uses): it says "Axon is running" only once the
//! worker answers and its Hub sees the demo home; one SIGINT stops everything it started within
//! 10 s (run.sh exits, every port it used is free, no process it started is left: wrangler's node
//! and workerd, the broker, the boards, the local AI server); a service that dies is named with
//! its reason.
//!
//! Every process run.sh starts inherits a marker variable from the test, so what is left is
//! found in `/proc` whoever its parent is now.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use axon_tests::http::http;
use axon_tests::{free_port, repo_root, DEMO_HOME_DEVICES};

const MARKER_VAR: &str = "AXON_RUN_SH_TEST";

/// `scripts/run.sh` started by the test, with its output in a file.
/// The secrets the test hands run.sh, looked for in its output.
const OWNER_TOKEN: &str = "run-sh-owner-7c41d";
const MCP_TOKEN: &str = "run-sh-mcp-93be0";
const MEDIA_TOKEN: &str = "run-sh-media-5d02a";

struct RunSh {
    child: Child,
    dir: PathBuf,
    marker: String,
}

impl RunSh {
    fn start(name: &str, env: &[(&str, String)]) -> RunSh {
        let marker = format!("{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("axon-run-sh-{marker}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::fs::File::create(dir.join("run.sh.out")).unwrap();
        // SIGINT back to its default first: a shell without job control (a CI script running
        // this in the background) hands its jobs SIGINT ignored, and bash cannot trap a signal
        // that was ignored when it started. A terminal's Ctrl-C finds it at the default.
        let child = Command::new("env")
            .args(["--default-signal=INT", "bash"])
            .arg(repo_root().join("scripts/run.sh"))
            .current_dir(repo_root())
            .env(MARKER_VAR, &marker)
            .env("AXON_RUN_DIR", dir.join("logs"))
            .env("AXON_STATE_DIR", dir.join("state"))
            // Its own broker accounts, not the checkout's .axon/ (the two tests run at once).
            .env("AXON_DATA_DIR", dir.join("data"))
            .env("AXON_MCP_TOKEN", MCP_TOKEN)
            .env("AXON_API_TOKEN", OWNER_TOKEN)
            .env("AXON_MEDIA_TOKEN", MEDIA_TOKEN)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own group, as a shell would start it: the SIGINT below goes to run.sh alone,
            // not to anything it started, so that run.sh itself must pass it on.
            .process_group(0)
            .spawn()
            .expect("spawn scripts/run.sh");
        RunSh { child, dir, marker }
    }

    /// What run.sh printed so far.
    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("run.sh.out")).unwrap_or_default()
    }

    /// Waits for `needle` in the output; panics if run.sh exits first or time runs out.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "run.sh exited ({status}) before printing {needle:?}; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "run.sh did not print {needle:?} within {timeout:?}; output:\n{}",
            self.output()
        );
    }

    /// Waits for run.sh to exit on its own (bounded).
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Live processes that carry this run's marker (zombies have an empty environment).
    fn leftovers(&self) -> Vec<(u32, String)> {
        let needle = format!("{MARKER_VAR}={}\0", self.marker).into_bytes();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(env) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if env.windows(needle.len()).any(|w| w == needle.as_slice()) {
                let cmd = std::fs::read(entry.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default();
                found.push((pid, cmd));
            }
        }
        found
    }
}

impl Drop for RunSh {
    /// Whatever a failed test left running goes, so that it cannot hold ports for later tests.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for (pid, _) in self.leftovers() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        // The logs and the Hub's storage stay for a failed test to be read.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn one_sigint_stops_everything_run_sh_started() {
    let ports = [
        ("AXON_MQTT_PORT", free_port()),
        ("AXON_MQTT_WS_PORT", free_port()),
        ("AXON_HTTP_PORT", free_port()),
        ("AXON_INSPECTOR_PORT", free_port()),
        ("AXON_LOCAL_AI_PORT", free_port()),
    ];
    let env: Vec<(&str, String)> = ports.iter().map(|(k, p)| (*k, p.to_string())).collect();
    assert!(
        repo_root().join(".venv-ai/bin/python").exists(),
        ".venv-ai is missing: run scripts/setup-local-ai.sh (run.sh would install it, 290 MB)"
    );
    let http_port = ports[2].1;
    let local_ai_port = ports[4].1;
    let mut run = RunSh::start("sigint", &env);
    axon_tests::http::register_owner_token(http_port, OWNER_TOKEN);
    // CI has built the worker and device-sim by now; a first run on a fresh checkout builds both.
    run.wait_for("Axon is running", Duration::from_secs(600));

    // Secrets are never printed (only a freshly made owner token is, once).
    let out = run.output();
    assert!(
        !out.contains(OWNER_TOKEN) && !out.contains(MCP_TOKEN) && !out.contains(MEDIA_TOKEN),
        "run.sh printed a secret:\n{out}"
    );

    // "running" means serving: the worker answers, its Hub reached run.sh's broker and sees
    // every board of the demo home, and the local AI server answers.
    let (status, body) = http(http_port, "GET", "/healthz", None).unwrap();
    assert_eq!(status, 200, "/healthz: {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http(http_port, "GET", "/healthz", None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Hub did not see the demo home within 30 s: {body}\nrun.sh output:\n{}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = http(local_ai_port, "GET", "/healthz", None).unwrap();
    assert_eq!(status, 200, "the local AI server does not answer");
    // The media endpoint is up: connected with its own account and subscribed.
    let media_log = std::fs::read_to_string(run.dir.join("logs/media.log")).unwrap_or_default();
    assert!(
        media_log.contains(r#""event":"ready""#),
        "the media endpoint is not ready:\n{media_log}\nrun.sh output:\n{}",
        run.output()
    );

    // No service logged a secret: the tokens, the Hub's broker password, the owner's.
    let value_in = |file: &str, key: &str| -> String {
        std::fs::read_to_string(run.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(String::from))
            .unwrap_or_else(|| panic!("{key} missing from {file}"))
    };
    let secrets = [
        OWNER_TOKEN.to_string(),
        MCP_TOKEN.to_string(),
        MEDIA_TOKEN.to_string(),
        value_in("logs/hub.env", "AXON_BROKER_PASSWORD"),
        value_in("data/broker.env", "AXON_BROKER_ADMIN_PASSWORD"),
    ];
    let mut logs = 0;
    for entry in std::fs::read_dir(run.dir.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            logs += 1;
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{} holds a secret",
                    path.display()
                );
            }
        }
    }
    assert!(logs >= 3, "the services' logs are missing");
    assert!(
        !run.leftovers().is_empty(),
        "the marker must reach the processes"
    );

    // One interrupt, to run.sh alone.
    let sent = Instant::now();
    let ok = Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = sent + Duration::from_secs(10);
    let (mut exited, mut busy, mut left);
    loop {
        exited = run.child.try_wait().unwrap();
        busy = ports
            .iter()
            .filter(|(_, p)| listening(*p))
            .copied()
            .collect::<Vec<_>>();
        left = run.leftovers();
        if (exited.is_some() && busy.is_empty() && left.is_empty()) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = sent.elapsed();
    let output = run.output();
    assert!(
        exited.is_some(),
        "run.sh still runs 10 s after one SIGINT; output:\n{output}"
    );
    assert!(
        busy.is_empty(),
        "ports still listening 10 s after one SIGINT: {busy:?}; output:\n{output}"
    );
    assert!(
        left.is_empty(),
        "processes left 10 s after one SIGINT: {left:?}; output:\n{output}"
    );
    assert_eq!(exited.unwrap().code(), Some(130), "output:\n{output}");
    eprintln!("run.sh stopped everything {took:?} after one SIGINT");
}

#[test]
fn a_service_that_dies_is_named_with_its_reason() {
    // The broker's WebSocket port is taken: mosquitto exits at once.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let env = [
        ("AXON_MQTT_PORT", free_port().to_string()),
        (
            "AXON_MQTT_WS_PORT",
            taken.local_addr().unwrap().port().to_string(),
        ),
        ("AXON_HTTP_PORT", free_port().to_string()),
        ("AXON_INSPECTOR_PORT", free_port().to_string()),
        ("AXON_LOCAL_AI", "off".to_string()),
    ];
    let mut run = RunSh::start("dies", &env);
    let status = run.wait_exit(Duration::from_secs(300));
    let output = run.output();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "run.sh must fail; output:\n{output}"
    );
    assert!(
        output.contains("mosquitto exited")
            && output.contains("Unable to create websockets listener"),
        "run.sh must name the service and its reason; output:\n{output}"
    );
    assert!(!output.contains("Axon is running"), "output:\n{output}");
    assert!(run.leftovers().is_empty(), "output:\n{output}");
}
