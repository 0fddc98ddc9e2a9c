//! A device built on another SDK, named outside `axon/`, on the Hub: with
//! `AXON_SERVER_NAME_FILTERS` listing its name, the Hub under `wrangler dev` discovers it and
//! calls it through `/api` and through `/mcp` (the official MCP Python SDK as the outside
//! client), with a presence that leaves out `server_name` (quirk 9); without the filter it stays
//! invisible (docs/protocol.md §11 quirk 18), unless it was paired with its server name, which
//! then joins the site's discovery with no configuration.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_core::transport::link::Credentials;
use axon_tests::peer::mcp_sdk_client;
use axon_tests::{http_with, Broker, DeviceSim, Peer, WranglerDev};
use serde_json::{json, Value};

const TOKEN: &str = "test-token-91ab";
const T: Duration = Duration::from_secs(20);

#[test]
fn the_hub_finds_and_calls_a_device_outside_axon_when_its_filter_is_configured() {
    let broker = Broker::start();
    // The Python SDK's habit (quirk 9): the name comes from the presence topic.
    let _dev = Peer::spec_device(
        &broker,
        "demo-7",
        "demo/counter/demo-7",
        &["--omit-server-name"],
    );
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_SERVER_NAME_FILTERS", "axon/#, demo/#"),
            ("AXON_MCP_TOKEN", TOKEN),
        ],
    );
    let health = worker.wait_for("/healthz", T, |v| {
        v["broker"] == "connected" && v["ready"] == 1
    });
    assert_eq!(
        health["server_name_filters"],
        serde_json::json!(["axon/#", "demo/#"])
    );
    assert!(health["config_problem"].is_null(), "{health}");

    // /api: listed under its server-id, and called.
    let (status, list) = worker.get("/api/devices");
    assert_eq!(status, 200);
    let d = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == "demo-7")
        .unwrap_or_else(|| panic!("demo-7 not listed: {list}"))
        .clone();
    assert_eq!(d["server_name"], "demo/counter/demo-7");
    let (status, r) = worker.post("/api/devices/demo-7/tools/increment", r#"{"by":2}"#);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["structuredContent"]["value"], 2);

    // /mcp: the official MCP SDK sees `demo-7.increment` and calls it.
    let url = format!("http://127.0.0.1:{}/mcp", worker.port());
    let lines = mcp_sdk_client(&url, TOKEN, "demo-7.increment", r#"{"by": 3}"#);
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step: {lines:?}"))
            .clone()
    };
    let names = step("list")["names"].clone();
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "demo-7.increment"),
        "{names}"
    );
    let call = step("call");
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(
        call["structured"]["value"], 5,
        "2 from /api, then 3 from /mcp"
    );
}

#[test]
fn without_the_filter_a_device_outside_axon_stays_invisible() {
    let broker = Broker::start();
    let _dev = Peer::spec_device(&broker, "demo-8", "demo/counter/demo-8", &[]);
    let _lamp = DeviceSim::start(&broker, &["--profile", "lamp", "--fault-rate", "0"]);
    // A malformed filter is reported and the default (`axon/#`) used.
    let worker = WranglerDev::start_with(&broker, &[("AXON_SERVER_NAME_FILTERS", "demo/#/x")]);
    // Both presences are retained, so a filter that matched demo-8 would have delivered it with
    // the lamp's, before the lamp finished initializing.
    let health = worker.wait_for("/healthz", T, |v| {
        v["broker"] == "connected" && v["ready"] == 1
    });
    assert!(
        health["config_problem"]
            .as_str()
            .is_some_and(|p| p.contains("AXON_SERVER_NAME_FILTERS")),
        "{health}"
    );
    let (_, list) = worker.get("/api/devices");
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["lamp-1"], "{list}");
}

#[test]
fn the_hub_keeps_a_device_with_a_random_server_id_under_one_id_across_a_reboot() {
    // docs/protocol.md §2.5 through the Hub: a lamp built the way EMQX's SDKs run (no
    // `meta.axon`, a random server-id per connection) named outside `axon/` is the device
    // `acme-lamp-porch-1`, reached as `porch-1` too, with its permissions keyed by that id,
    // before and after a reboot under a new server-id.
    // Anonymous on purpose: a device with a random server-id per connection cannot hold a
    // per-device account on Mosquitto 2.0.11, whose ACLs are literal topics keyed by a fixed
    // id (docs/security.md, "What is not done yet"); this test is about identity.
    let broker = Broker::start_anonymous();
    let mut lamp = Peer::spec_device(
        &broker,
        "unused",
        "acme/lamp/porch-1",
        &["--random-server-id", "--no-axon-meta"],
    );
    let first = lamp.wait_for(T, |v| v["event"] == "online")["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_SERVER_NAME_FILTERS", "axon/#, acme/#"),
            ("AXON_PERMISSIONS", "acme-lamp-porch-1.fail=deny"),
            ("AXON_MCP_TOKEN", TOKEN),
        ],
    );
    worker.wait_for("/healthz", T, |v| {
        v["broker"] == "connected" && v["ready"] == 1
    });
    let (_, list) = worker.get("/api/devices");
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{list}");
    assert_eq!(devices[0]["device_id"], "acme-lamp-porch-1");
    assert_eq!(devices[0]["kind"], "lamp", "from the name");
    assert_eq!(devices[0]["server_id"], first.as_str());

    let (status, r) = worker.post("/api/devices/porch-1/tools/increment", r#"{"by":2}"#);
    assert_eq!(status, 200, "by its name's last level: {r}");
    assert_eq!(r["structuredContent"]["value"], 2);
    // The alias is no way around the device's permissions.
    let (status, r) = worker.post("/api/devices/porch-1/tools/fail", "{}");
    assert_eq!(status, 403, "{r}");
    let (status, detail) = worker.get("/api/devices/porch-1");
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["device_id"], "acme-lamp-porch-1");
    assert_eq!(detail["permissions"]["fail"], "deny", "{detail}");

    lamp.signal("HUP");
    let second = lamp.wait_for(T, |v| v["event"] == "rebooted")["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    let list = worker.wait_for("/api/devices", T, |v| {
        v["devices"][0]["server_id"] == second.as_str() && v["devices"][0]["state"] == "ready"
    });
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["devices"][0]["device_id"], "acme-lamp-porch-1");

    let (status, r) = worker.post("/api/devices/porch-1/tools/increment", r#"{"by":3}"#);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["structuredContent"]["value"], 5, "the same lamp");
    // The new instance answered it.
    lamp.wait_for(T, |v| {
        v["method"] == "tools/call" && v["server_id"] == second.as_str()
    });
    let (status, r) = worker.post("/api/devices/porch-1/tools/fail", "{}");
    assert_eq!(status, 403, "still denied after the reboot: {r}");
    let (_, list) = worker.get("/api/devices");
    assert_eq!(
        list["devices"][0]["state"], "ready",
        "the late tombstone is ignored: {list}"
    );

    // /mcp names its tools by the same id.
    let url = format!("http://127.0.0.1:{}/mcp", worker.port());
    let lines = mcp_sdk_client(&url, TOKEN, "acme-lamp-porch-1.increment", r#"{"by": 1}"#);
    let call = lines
        .iter()
        .find(|l| l["step"] == "call")
        .unwrap_or_else(|| panic!("no call step: {lines:?}"));
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(call["structured"]["value"], 6, "{call}");
}

fn listed(worker: &WranglerDev, id: &str) -> Option<Value> {
    let (_, list) = worker.get("/api/devices");
    list["devices"]
        .as_array()?
        .iter()
        .find(|d| d["device_id"] == id)
        .cloned()
}

#[test]
fn a_device_paired_with_its_server_name_outside_axon_joins_discovery() {
    // The owner pairs a device built on another SDK, named `demo/...`, without touching
    // AXON_SERVER_NAME_FILTERS: its name joins the site's discovery (and the site role may now
    // subscribe to that presence), while another `demo/` device with an account but no pairing
    // stays invisible; revoking takes the name out again.
    let broker = Broker::start();
    let worker = WranglerDev::start_with(&broker, &[]);
    worker.wait_for("/healthz", T, |v| v["broker"] == "connected");
    let _other = Peer::spec_device(&broker, "demo-9", "demo/counter/demo-9", &[]);

    let stranger = [("authorization", "")];
    let ask = json!({"device": "ts-counter-1", "kind": "counter",
                     "server_name": "demo/counter/ts-counter-1"});
    let (status, _, ticket) = http_with(
        worker.port(),
        "POST",
        "/api/pair",
        &stranger,
        Some(&ask.to_string()),
    )
    .unwrap();
    assert_eq!(status, 200, "{ticket}");
    let ticket: Value = serde_json::from_str(&ticket).unwrap();
    let (_, waiting) = worker.get("/api/pair");
    assert_eq!(
        waiting["waiting"][0]["server_name"], "demo/counter/ts-counter-1",
        "the owner sees the name it will be discovered by: {waiting}"
    );
    let (status, v) = worker.post(
        "/api/pair/approve",
        &json!({"code": ticket["code"]}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    let collect = json!({"pair_id": ticket["pair_id"], "secret": ticket["secret"]}).to_string();
    let (status, _, creds) = http_with(
        worker.port(),
        "POST",
        "/api/pair/collect",
        &stranger,
        Some(&collect),
    )
    .unwrap();
    assert_eq!(status, 200, "{creds}");
    let creds: Value = serde_json::from_str(&creds).unwrap();
    let account = Credentials::new(
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
    );
    let addr = format!("127.0.0.1:{}", broker.tcp_port());
    let mut dev = Peer::spawn_as(
        "spec_device.py",
        &[
            "--broker",
            &addr,
            "--server-id",
            "ts-counter-1",
            "--server-name",
            "demo/counter/ts-counter-1",
        ],
        Some(&account),
    );
    dev.wait_for(T, |v| v["event"] == "online");

    let d = worker.wait_for("/api/devices", T, |list| {
        list["devices"].as_array().is_some_and(|ds| {
            ds.iter()
                .any(|d| d["device_id"] == "ts-counter-1" && d["state"] == "ready")
        })
    });
    assert!(
        listed(&worker, "demo-9").is_none(),
        "an unpaired device outside the filters stays invisible: {d}"
    );
    let (status, r) = worker.post("/api/devices/ts-counter-1/tools/increment", r#"{"by":2}"#);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["structuredContent"]["value"], 2);

    // Revoked: the account is gone (its connection closed) and its name leaves discovery.
    let (status, v) = worker.delete("/api/paired/ts-counter-1");
    assert_eq!(status, 200, "{v}");
    worker.wait_for("/api/devices", T, |list| {
        !list["devices"].as_array().is_some_and(|ds| {
            ds.iter()
                .any(|d| d["device_id"] == "ts-counter-1" && d["state"] == "ready")
        })
    });
}
