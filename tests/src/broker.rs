//! A real Mosquitto for a test: free loopback ports, a config written from the repository's
//! `config/mosquitto/dev.conf`, killed on drop.
//!
//! [`Broker::start`] has accounts on, as run.sh's broker does: the dynamic security plugin with
//! a fresh owner password, default deny, and helpers that create device and Hub accounts
//! through `axon-core`'s `trust::broker` (the same batches `axon-device-sim provision` sends).
//! [`Broker::start_anonymous`] is only for tests whose subject is MQTT behaviour unrelated to
//! accounts; each such test says why.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axon_core::protocol::mcp::topics::DeviceId;
use axon_core::transport::link::Credentials;
use axon_core::trust::broker::{self as trust, Batch, Secret, ADMIN_USERNAME};
use device_sim::mqtt::BrokerAddr;

use crate::{free_port, repo_root};

/// A Mosquitto child process.
pub struct Broker {
    tcp_port: u16,
    ws_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The owner's password; `None` for an anonymous broker.
    admin_password: Option<String>,
}

/// A password for a test account: unique per call, unpredictable enough for a loopback
/// broker that lives for one test (the product draws from /dev/urandom).
fn test_password() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut rng = axon_core::time::Rng::new(
        (t as u64)
            ^ (u64::from(std::process::id()) << 20)
            ^ N.fetch_add(1, Ordering::Relaxed) as u64,
    );
    format!("{}{}{}", rng.hex(8), rng.hex(8), rng.hex(8))
}

/// The OS user mosquitto should keep running as: when started as root it otherwise drops to
/// user `mosquitto`, which cannot save the dynsec file in our directory (accounts then vanish
/// on restart, measured).
fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// Where this machine's Mosquitto keeps the dynamic security plugin (Debian's multiarch path
/// is the template's).
fn dynsec_plugin() -> String {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu/mosquitto_dynamic_security.so"),
        "/usr/lib/mosquitto_dynamic_security.so".to_string(),
        "/usr/local/lib/mosquitto_dynamic_security.so".to_string(),
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or_else(|| {
        panic!("mosquitto_dynamic_security.so not found: install mosquitto 2.x (scripts/setup.sh)")
    })
}

impl Broker {
    /// Starts a broker with accounts on (dynsec, default deny) on two free ports, waits until
    /// both answer.
    pub fn start() -> Broker {
        let mut b = Broker::new_dir();
        let password = test_password();
        let dynsec = b.dir.join("dynsec.json");
        let out = Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec)
            .args([ADMIN_USERNAME, &password])
            .output()
            .unwrap_or_else(|e| panic!("cannot run mosquitto_ctrl ({e}): run scripts/setup.sh"));
        assert!(
            out.status.success(),
            "mosquitto_ctrl dynsec init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let init = std::fs::read_to_string(&dynsec).expect("dynsec file");
        let ready = trust::prepare_config(&init).expect("prepare the dynsec file");
        std::fs::write(&dynsec, ready).expect("write the dynsec file");
        b.admin_password = Some(password);
        b.spawn();
        b
    }

    /// Starts a broker that lets anyone in without an account (the old development broker).
    pub fn start_anonymous() -> Broker {
        let mut b = Broker::new_dir();
        b.spawn();
        b
    }

    fn new_dir() -> Broker {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "axon-mosquitto-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Broker {
            tcp_port: free_port(),
            ws_port: free_port(),
            dir,
            child: None,
            admin_password: None,
        }
    }

    fn spawn(&mut self) {
        let template = std::fs::read_to_string(repo_root().join("config/mosquitto/dev.conf"))
            .expect("config/mosquitto/dev.conf");
        let mut conf = template
            .replace(
                "listener 1883 127.0.0.1",
                &format!("listener {} 127.0.0.1", self.tcp_port),
            )
            .replace(
                "listener 8083 127.0.0.1",
                &format!("listener {} 127.0.0.1", self.ws_port),
            );
        if self.admin_password.is_some() {
            let dynsec = self.dir.join("dynsec.json");
            conf = conf.replace(
                "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
                &format!("plugin {}", dynsec_plugin()),
            );
            conf = conf.replace(
                "plugin_opt_config_file .axon/broker/dynsec.json",
                &format!("plugin_opt_config_file {}", dynsec.display()),
            );
            conf.push_str(&format!("user {}\n", current_user()));
        } else {
            conf = conf
                .replace("allow_anonymous false", "allow_anonymous true")
                .lines()
                .filter(|l| !l.starts_with("plugin"))
                .collect::<Vec<_>>()
                .join("\n");
            conf.push('\n');
        }
        let path = self.dir.join("mosquitto.conf");
        std::fs::write(&path, conf).expect("write mosquitto.conf");
        let log = std::fs::File::create(self.dir.join("mosquitto.log")).expect("log file");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start mosquitto ({e}): run scripts/setup.sh to install it")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let up = |p| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(self.tcp_port) && up(self.ws_port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mosquitto did not listen on {} within 10 s:\n{}",
            self.tcp_port,
            self.log()
        );
    }

    /// The TCP port.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The WebSocket port.
    pub fn ws_port(&self) -> u16 {
        self.ws_port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.tcp_port)
    }

    /// The broker's own directory (config, log, dynsec file), removed on drop.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Whether accounts are on.
    pub fn has_accounts(&self) -> bool {
        self.admin_password.is_some()
    }

    /// The owner's credentials (`axon-admin`); panics on an anonymous broker.
    pub fn admin(&self) -> Credentials {
        let pw = self
            .admin_password
            .clone()
            .expect("an anonymous broker has no accounts: use Broker::start()");
        Credentials::new(ADMIN_USERNAME, pw)
    }

    /// The owner's credentials as env vars for `axon-device-sim` (ctl, provision, run).
    pub fn admin_env(&self) -> Vec<(String, String)> {
        let a = self.admin();
        vec![
            ("AXON_BROKER_ADMIN_USERNAME".into(), a.username.clone()),
            (
                "AXON_BROKER_ADMIN_PASSWORD".into(),
                a.password().to_string(),
            ),
        ]
    }

    /// `ctl`'s options on this broker: the owner's account when it has accounts.
    pub fn ctl_options(&self) -> device_sim::ctl::ControllerOptions {
        device_sim::ctl::ControllerOptions {
            credentials: self.has_accounts().then(|| self.admin()),
            ..Default::default()
        }
    }

    /// Sends a dynsec batch as the owner and waits for it to be done.
    pub fn apply(&self, batch: &Batch) {
        let addr = BrokerAddr {
            host: "127.0.0.1".into(),
            port: self.tcp_port,
        };
        let admin = self.admin();
        let batch = batch.clone();
        // Its own thread and runtime, so that sync and #[tokio::test] tests can both call it.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(device_sim::accounts::apply(&addr, &admin, &batch))
        })
        .join()
        .expect("admin thread")
        .unwrap_or_else(|e| panic!("dynsec batch failed: {e}"));
    }

    /// Creates (or rotates) device `id`'s account at `site` and returns its credentials.
    pub fn provision_device(&self, id: &str, site: &str) -> Credentials {
        let d = DeviceId::new(id).expect("valid device id");
        let pw = test_password();
        let b = trust::provision_device(
            format!("dev-{id}-{}", test_password()),
            &d,
            Secret::new(pw.clone()),
            Some(site),
        )
        .expect("valid names");
        self.apply(&b);
        Credentials::new(id, pw)
    }

    /// Creates (or rotates) the media endpoint's account (`axon-media`).
    pub fn provision_media(&self) -> Credentials {
        let pw = test_password();
        self.apply(&trust::provision_media(
            format!("media-{}", test_password()),
            Secret::new(pw.clone()),
        ));
        Credentials::new(trust::MEDIA_USERNAME, pw)
    }

    /// Creates (or rotates) site `site`'s Hub account (`hub-{site}`).
    pub fn provision_hub(&self, site: &str) -> Credentials {
        self.provision_hub_with_filters(site, &[])
    }

    /// As [`Broker::provision_hub`], for a Hub whose presence subscription uses `filters`
    /// (its `AXON_SERVER_NAME_FILTERS`; `axon/#` when empty).
    pub fn provision_hub_with_filters(&self, site: &str, filters: &[String]) -> Credentials {
        let pw = test_password();
        let b = trust::provision_hub(
            format!("hub-{site}-{}", test_password()),
            site,
            Secret::new(pw.clone()),
            filters,
        )
        .expect("valid site");
        self.apply(&b);
        Credentials::new(trust::hub_username(site), pw)
    }

    /// The credentials a board run by `DeviceSim` stored for device `id`.
    pub fn stored_device(&self, id: &str) -> Credentials {
        let f = std::fs::read_to_string(self.dir.join("devices").join(format!("{id}.json")))
            .unwrap_or_else(|e| panic!("no stored credentials for {id}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&f).expect("credentials JSON");
        Credentials::new(
            v["username"].as_str().expect("username"),
            v["password"].as_str().expect("password"),
        )
    }

    /// Deletes device `id`'s account and takes it out of `site`.
    pub fn revoke_device(&self, id: &str, site: &str) {
        let d = DeviceId::new(id).expect("valid device id");
        let b = trust::revoke_device(format!("rev-{id}-{}", test_password()), &d, Some(site))
            .expect("valid names");
        self.apply(&b);
    }

    /// Kills the broker (every connection drops; retained messages are lost: persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// What mosquitto logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("mosquitto.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
