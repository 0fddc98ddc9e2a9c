//! A real Mosquitto for a test: free loopback ports, a config written from the repository's
//! `config/mosquitto/dev.conf`, killed on drop.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// A Mosquitto child process.
pub struct Broker {
    tcp_port: u16,
    ws_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker on two free ports and waits until both answer.
    pub fn start() -> Broker {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "axon-mosquitto-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut b = Broker {
            tcp_port: free_port(),
            ws_port: free_port(),
            dir,
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let template = std::fs::read_to_string(repo_root().join("config/mosquitto/dev.conf"))
            .expect("config/mosquitto/dev.conf");
        let conf = template
            .replace(
                "listener 1883 127.0.0.1",
                &format!("listener {} 127.0.0.1", self.tcp_port),
            )
            .replace(
                "listener 8083 127.0.0.1",
                &format!("listener {} 127.0.0.1", self.ws_port),
            );
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
