//! The edge worker under `wrangler dev` (the real workerd runtime), on free loopback ports,
//! in its own process group so that stopping it stops wrangler, node and workerd together
//! (docs/toolchain.md §4). Its requests go through [`crate::http`].

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use axon_core::protocol::mcp::topics::check_server_name_filter;
use axon_core::transport::link::Credentials;

use crate::broker::Broker;
use crate::http::{http, http_with, SseStream};
use crate::{free_port, repo_root};

/// A running `wrangler dev`.
pub struct WranglerDev {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    state: PathBuf,
    vars: Vec<(String, String)>,
    broker_ws_port: u16,
}

/// Writes the Hub's broker password where `wrangler dev --env-file` reads it: values from an
/// env file are secrets, which wrangler lists as "(hidden)", while `--var` values are printed.
fn write_secrets(state: &std::path::Path, hub: &Option<Credentials>) -> Option<PathBuf> {
    let c = hub.as_ref()?;
    let path = state.with_extension("env");
    std::fs::write(&path, format!("AXON_BROKER_PASSWORD={}\n", c.password())).expect("env file");
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    Some(path)
}

impl WranglerDev {
    /// Starts the worker with `AXON_BROKER_URL` pointing at `broker`'s WebSocket port and waits
    /// until it serves `/` (300 s at most: the first run builds the web app and the worker).
    /// On a broker with accounts the site's Hub account (`hub-{AXON_SITE}`, default home) is
    /// provisioned and given to the worker.
    pub fn start(broker: &Broker) -> WranglerDev {
        Self::start_with(broker, &[])
    }

    /// As [`WranglerDev::start`], with more `--var NAME:VALUE` settings (AXON_LLM, AXON_MCP_TOKEN…).
    pub fn start_with(broker: &Broker, vars: &[(&str, &str)]) -> WranglerDev {
        let port = free_port();
        let state =
            std::env::temp_dir().join(format!("axon-wrangler-{}-{port}", std::process::id()));
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let site = vars
            .iter()
            .find(|(k, _)| k == "AXON_SITE")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "home".into());
        // The filters the Hub will use: like the Hub, a malformed one means the default.
        let mut filters: Vec<String> = vars
            .iter()
            .find(|(k, _)| k == "AXON_SERVER_NAME_FILTERS")
            .map(|(_, v)| v.split(',').map(|f| f.trim().to_string()).collect())
            .unwrap_or_default();
        if filters.iter().any(|f| check_server_name_filter(f).is_err()) {
            filters.clear();
        }
        let hub = broker
            .has_accounts()
            .then(|| broker.provision_hub_with_filters(&site, &filters));
        if let Some(c) = &hub {
            vars.push(("AXON_BROKER_USERNAME".into(), c.username.clone()));
        }
        write_secrets(&state, &hub);
        Self::launch(broker.ws_port(), port, state, vars)
    }

    /// Stops wrangler (SIGINT to its group) and starts it again on the same port with the
    /// same Durable Object storage: what survives is what was persisted.
    pub fn restart(&mut self) {
        self.stop();
        let state = self.state.clone();
        let vars = std::mem::take(&mut self.vars);
        let new = Self::launch(self.broker_ws_port, self.port, state, vars);
        // The old handle must not delete the secrets file on drop: the new wrangler reads it
        // again on its own restart (a second restart lost the Hub's broker password).
        let mut old = std::mem::replace(self, new);
        old.state = PathBuf::new();
    }

    /// Restarts with `vars` set (replacing any earlier value of each), as
    /// [`WranglerDev::restart`] does.
    pub fn restart_with(&mut self, vars: &[(&str, &str)]) {
        for (k, v) in vars {
            self.vars.retain(|(old, _)| old != k);
            self.vars.push((k.to_string(), v.to_string()));
        }
        self.restart();
    }

    fn launch(
        broker_ws_port: u16,
        port: u16,
        state: PathBuf,
        vars: Vec<(String, String)>,
    ) -> WranglerDev {
        // workerd binds some of its own sockets on ports the kernel picked at its first start
        // and binds them again when wrangler reloads it; on a busy loopback another socket
        // can take one in between ("Address already in use (socket \"direct:1:default\")"),
        // and that wrangler then never serves. A fresh start on fresh ports gets past it.
        let mut port = port;
        for attempt in 1..=3 {
            let mut w = Self::spawn(broker_ws_port, port, state.clone(), vars.clone());
            let deadline = Instant::now() + Duration::from_secs(300);
            let mut port_taken = false;
            while Instant::now() < deadline {
                // A static page: ready without waking the Hub, so a test's first request to
                // the Hub is its own.
                if let Ok((200, _)) = http(port, "GET", "/", None) {
                    return w;
                }
                if w.log().contains("Address already in use") {
                    port_taken = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if !port_taken || attempt == 3 {
                panic!(
                    "wrangler dev did not serve / within 300 s (attempt {attempt}); log:\n{}",
                    w.log()
                );
            }
            eprintln!(
                "wrangler dev: a port was taken while it started; starting again on new ports. log:\n{}",
                w.log()
            );
            w.stop();
            port = free_port();
        }
        unreachable!("the loop returns or panics")
    }

    fn spawn(
        broker_ws_port: u16,
        port: u16,
        state: PathBuf,
        vars: Vec<(String, String)>,
    ) -> WranglerDev {
        // Every worker a test starts has an owner token (unless the test sets its own), known
        // to tests/src/http.rs so that requests go out as the owner by default.
        let mut vars = vars;
        if !vars.iter().any(|(k, _)| k == "AXON_API_TOKEN") {
            vars.push((
                "AXON_API_TOKEN".into(),
                format!("axo_test_{}_{port}", std::process::id()),
            ));
        }
        if let Some((_, t)) = vars.iter().find(|(k, _)| k == "AXON_API_TOKEN") {
            crate::http::register_owner_token(port, t);
        }
        let root = repo_root();
        let bin = root.join("node_modules/.bin");
        assert!(
            bin.join("wrangler").exists(),
            "node_modules/.bin/wrangler is missing: run scripts/setup.sh"
        );
        let log = state.with_extension("log");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(bin.join("wrangler"))
            .current_dir(root.join("edge-worker"))
            .env("PATH", path)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .args([
                "dev",
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--inspector-port",
                &free_port().to_string(),
            ])
            .args([
                "--show-interactive-dev-session=false",
                "--persist-to",
                &state.display().to_string(),
            ])
            .arg("--var")
            .arg(format!(
                "AXON_BROKER_URL:ws://127.0.0.1:{broker_ws_port}/mqtt"
            ))
            .args(
                vars.iter()
                    .flat_map(|(k, v)| ["--var".to_string(), format!("{k}:{v}")]),
            )
            .args(
                Some(state.with_extension("env"))
                    .filter(|p| p.exists())
                    .map(|p| format!("--env-file={}", p.display())),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("spawn wrangler dev");
        WranglerDev {
            child: Some(child),
            port,
            log,
            state,
            vars,
            broker_ws_port,
        }
    }

    /// The owner token it was started with (`AXON_API_TOKEN`).
    pub fn owner_token(&self) -> String {
        crate::http::owner_token(self.port).expect("every test worker has an owner token")
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `method` `path` with the owner token as `Authorization: Bearer`, when the worker has one.
    fn owner_request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let bearer = format!("Bearer {}", self.owner_token());
        let (status, _, text) =
            http_with(self.port, method, path, &[("authorization", &bearer)], body)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET `path`, JSON body (as the owner, when the worker has an owner token).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.owner_request("GET", path, None)
    }

    /// DELETE `path`, JSON body (as the owner, when the worker has an owner token).
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.owner_request("DELETE", path, None)
    }

    /// POST `body` to `path`, JSON body (as the owner, when the worker has an owner token).
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.owner_request("POST", path, Some(body))
    }

    /// POST `body` to `/api/chat`: the turn as a stream of events. Panics with the status and
    /// the answer when the worker refuses it.
    pub fn chat(&self, body: &Value) -> SseStream {
        let mut s = SseStream::open(self.port, "POST", "/api/chat", Some(&body.to_string()))
            .unwrap_or_else(|e| panic!("POST /api/chat {body}: {e}"));
        if s.status != 200 {
            let status = s.status;
            panic!("POST /api/chat {body}: {status} {}", s.rest());
        }
        s
    }

    /// Polls `path` until `pred` holds for its JSON (bounded).
    pub fn wait_for(&self, path: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let (status, v) = self.get(path);
            if status == 200 && pred(&v) {
                return v;
            }
            last = v;
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("GET {path} did not satisfy the condition within {timeout:?}; last answer: {last}\nlog:\n{}", self.log());
    }

    /// What wrangler printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        self.stop();
        if !self.state.as_os_str().is_empty() {
            let _ = std::fs::remove_file(self.state.with_extension("env"));
        }
    }
}

impl WranglerDev {
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT to the whole group: wrangler, its node and workerd all exit.
            // `--` so that kill reads `-PGID` as a process group, not as a signal name.
            let _ = Command::new("kill")
                .args(["-s", "INT", "--", &format!("-{}", c.id())])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }
}
