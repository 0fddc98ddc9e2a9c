//! A device built on another SDK, named outside `axon/`, on the Hub: with
//! `AXON_SERVER_NAME_FILTERS` listing its name, the Hub under `wrangler dev` discovers it and
//! calls it through `/api` and through `/mcp` (the official MCP Python SDK as the outside
//! client), with a presence that leaves out `server_name` (quirk 9); without the filter it stays
//! invisible (docs/protocol.md §11 quirk 18).

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::peer::mcp_sdk_client;
use axon_tests::{Broker, DeviceSim, Peer, WranglerDev};

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
        .find(|d| d["server_id"] == "demo-7")
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
        .filter_map(|d| d["server_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["lamp-1"], "{list}");
}
