//! The edge worker under `wrangler dev` (real workerd) with its Hub connected to a real
//! Mosquitto over WebSocket: it discovers the demo home, lists devices, calls a tool that
//! changes a board's state, and gives clear errors for bad input.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::{Broker, DeviceSim, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::json;

#[test]
fn the_hub_discovers_the_demo_home_and_calls_tools_over_http() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
    let worker = WranglerDev::start(&broker);
    let health = worker.wait_for("/healthz", Duration::from_secs(20), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    assert_eq!(health["devices"], 13);

    let (status, list) = worker.get("/api/devices");
    assert_eq!(status, 200);
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 13);
    assert!(list.get("next").is_none(), "one page: {list}");
    // Page by page: 5, 5, 3, in device id order, each device once; `next` only while more follow.
    let mut paged = Vec::new();
    let mut path = "/api/devices?limit=5".to_string();
    loop {
        let (status, page) = worker.get(&path);
        assert_eq!(status, 200, "{page}");
        paged.extend(
            page["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["device_id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/devices?limit=5&after={next}"),
            None => break,
        }
    }
    let mut whole: Vec<String> = devices
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_string())
        .collect();
    whole.sort();
    assert_eq!(paged, whole);
    // Bad paging is refused with what to use, and lists nothing.
    for bad in [
        "/api/devices?limit=0",
        "/api/devices?limit=all",
        "/api/devices?after=no%20such!",
    ] {
        let (status, e) = worker.get(bad);
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(e.get("devices").is_none(), "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("after")
                || e["error"]["message"].as_str().unwrap().contains("limit"),
            "{e}"
        );
    }
    let lamp = devices
        .iter()
        .find(|d| d["device_id"] == "kitchen-lamp")
        .unwrap();
    assert_eq!(lamp["meta"]["room"], "kitchen");
    assert_eq!(lamp["state"], "ready");
    assert!(lamp["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "set_power"));

    let (status, result) = worker.post(
        "/api/devices/kitchen-lamp/tools/set_power",
        r#"{"on":true}"#,
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["structuredContent"]["on"], true);
    assert_eq!(
        sim.wait_tool_calls("kitchen-lamp", "set_power", 1),
        1,
        "the board acted once"
    );
    let (_, state) = worker.post("/api/devices/kitchen-lamp/tools/get_state", "");
    assert_eq!(state["structuredContent"]["on"], true);

    // Bad input: clear errors, nothing reaches a board.
    let (status, e) = worker.post(
        "/api/devices/kitchen-lamp/tools/set_brightness",
        r#"{"level":"high"}"#,
    );
    assert_eq!(
        (
            status,
            e["error"]["code"].clone(),
            e["error"]["data"]["field"].clone()
        ),
        (400, json!(-32602), json!("arguments.level"))
    );
    let (status, e) = worker.post("/api/devices/kitchen-lamp/tools/set_power", "{not json");
    assert_eq!((status, e["error"]["code"].clone()), (400, json!(-32700)));
    let (status, e) = worker.post("/api/devices/nobody/tools/set_power", r#"{"on":true}"#);
    assert_eq!((status, e["error"]["code"].clone()), (404, json!(-32010)));
    let (status, _) = worker.get("/api/devices/nobody");
    assert_eq!(status, 404);
    assert_eq!(sim.tool_calls("kitchen-lamp", "set_brightness"), 0);

    // The broker restarts: the Hub reconnects with backoff and the boards re-register.
    let mut broker = broker;
    broker.restart();
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    let (status, result) = worker.post(
        "/api/devices/kitchen-lamp/tools/set_power",
        r#"{"on":false}"#,
    );
    assert_eq!(
        (status, result["structuredContent"]["on"].clone()),
        (200, json!(false)),
        "{result}"
    );

    // A board that leaves is offline in the registry at once.
    sim.interrupt();
    worker.wait_for("/api/devices/kitchen-lamp", Duration::from_secs(10), |d| {
        d["state"] == "offline"
    });
}
