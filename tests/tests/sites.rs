//! Two sites on one broker (issue 15 §4): the Hubs of `home` and `office`, each with its own
//! broker account, see and call only their own site's devices; a device paired to `office`
//! through the office Hub is invisible to `home`. The broker enforces it (each Hub's account
//! receives and sends only its site's device topics: docs/security.md "Broker accounts"), so
//! this holds whatever a Hub asks for.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axon_tests::{Broker, DeviceSim, WranglerDev};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(90);

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["device_id"].as_str().map(String::from))
        .collect();
    v.sort();
    v
}

struct Board(Child);

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_sites_on_one_broker_see_and_call_only_their_own_devices() {
    let broker = Broker::start();
    let mut home_sim = DeviceSim::start(
        &broker,
        &[
            "--profile",
            "lamp",
            "--devices",
            "2",
            "--id-prefix",
            "home-lamp",
            "--site",
            "home",
        ],
    );
    let mut office_sim = DeviceSim::start(
        &broker,
        &[
            "--profile",
            "lamp",
            "--devices",
            "1",
            "--id-prefix",
            "office-lamp",
            "--site",
            "office",
        ],
    );
    let home = WranglerDev::start(&broker);
    let office = WranglerDev::start_with(&broker, &[("AXON_SITE", "office")]);
    home.wait_for("/healthz", T, |v| {
        v["broker"] == "connected" && v["ready"] == 2
    });
    office.wait_for("/healthz", T, |v| {
        v["broker"] == "connected" && v["ready"] == 1
    });

    let (_, list) = home.get("/api/devices");
    assert_eq!(ids(&list), ["home-lamp-1", "home-lamp-2"], "{list}");
    let (_, list) = office.get("/api/devices");
    assert_eq!(ids(&list), ["office-lamp-1"], "{list}");

    // Across sites: unknown, and nothing runs.
    let on = r#"{"on":true}"#;
    let (status, v) = office.post("/api/devices/home-lamp-1/tools/set_power", on);
    assert_eq!(status, 404, "{v}");
    let (status, v) = home.post("/api/devices/office-lamp-1/tools/set_power", on);
    assert_eq!(status, 404, "{v}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(home_sim.tool_calls("home-lamp-1", "set_power"), 0);
    assert_eq!(office_sim.tool_calls("office-lamp-1", "set_power"), 0);
    // Each at home: runs.
    let (status, v) = home.post("/api/devices/home-lamp-1/tools/set_power", on);
    assert_eq!(status, 200, "{v}");
    assert_eq!(home_sim.wait_tool_calls("home-lamp-1", "set_power", 1), 1);
    let (status, v) = office.post("/api/devices/office-lamp-1/tools/set_power", on);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        office_sim.wait_tool_calls("office-lamp-1", "set_power", 1),
        1
    );

    // A board paired to the office (`axon-device-sim pair`, the owner's `ctl pair CODE`): its
    // account reaches the office Hub only.
    let dir = broker.dir().join("desk");
    let base = format!("http://127.0.0.1:{}", office.port());
    let mut pairing = Command::new(axon_tests::device_sim::binary())
        .args([
            "pair", "--worker", &base, "--device", "desk-1", "--kind", "lamp",
        ])
        .arg("--state-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pairing.stdout.take().unwrap()).lines();
    let shown: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(shown["event"], "pairing_code", "{shown}");
    let code = shown["code"].as_str().unwrap();
    let approve = Command::new(axon_tests::device_sim::binary())
        .args(["ctl", "pair", code, "--worker", &base])
        .env("AXON_API_TOKEN", office.owner_token())
        .output()
        .unwrap();
    assert!(
        approve.status.success(),
        "ctl pair: {}",
        String::from_utf8_lossy(&approve.stderr)
    );
    let paired: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (&paired["event"], &paired["site"]),
        (&json!("paired"), &json!("office")),
        "{paired}"
    );
    assert!(pairing.wait().unwrap().success());
    let stored = std::fs::read_to_string(dir.join("desk-1.json")).unwrap();
    let _desk = Board(
        Command::new(axon_tests::device_sim::binary())
            .args([
                "run",
                "--broker",
                &broker.url(),
                "--profile",
                "lamp",
                "--devices",
                "1",
            ])
            .args(["--id-prefix", "desk", "--site", "office"])
            .env("AXON_DEVICE_STATE_DIR", &dir)
            .env_remove("AXON_BROKER_ADMIN_USERNAME")
            .env_remove("AXON_BROKER_ADMIN_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The password was kept for the board and never printed.
    let password: Value = serde_json::from_str(&stored).unwrap();
    let password = password["password"].as_str().unwrap();
    assert!(password.len() > 16);
    for printed in [
        shown.to_string(),
        paired.to_string(),
        String::from_utf8_lossy(&approve.stdout).into(),
    ] {
        assert!(
            !printed.contains(password),
            "the password was printed: {printed}"
        );
    }
    office.wait_for("/api/devices", T, |v| {
        ids(v).contains(&"desk-1".to_string())
    });
    let (status, v) = office.post("/api/devices/desk-1/tools/set_power", on);
    assert_eq!(status, 200, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    let (_, list) = home.get("/api/devices");
    assert_eq!(
        ids(&list),
        ["home-lamp-1", "home-lamp-2"],
        "home sees the office's device: {list}"
    );
    let (status, _) = home.post("/api/devices/desk-1/tools/set_power", on);
    assert_eq!(status, 404);
}
