//! The demo home on a real broker: our client discovers, initializes, lists and calls every
//! device; telemetry flows; a graceful exit clears every presence.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_core::protocol::mcp::client::DeviceState;
use axon_tests::{Broker, DeviceSim, Probe};
use device_sim::ctl::Controller;
use device_sim::fleet::HOME;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_the_demo_home_is_discovered_listed_and_called() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(
        &broker,
        &[
            "--profile",
            "home",
            "--telemetry-interval-ms",
            "200",
            "--fault-rate",
            "0",
        ],
    );
    let ctl = Controller::connect(&broker.url().parse().unwrap(), broker.ctl_options())
        .await
        .unwrap();
    let ids: Vec<&str> = HOME.iter().map(|d| d.0).collect();
    ctl.wait_for_devices(&ids, Duration::from_secs(15))
        .await
        .unwrap();

    for (id, kind, room, title) in HOME {
        let d = ctl
            .devices()
            .into_iter()
            .find(|d| d.device_id == id)
            .unwrap();
        assert_eq!(d.server_name, format!("axon/{kind}/{id}"));
        assert_eq!(
            (
                d.meta.kind.as_str(),
                d.meta.room.as_deref(),
                d.meta.title.as_deref()
            ),
            (kind, Some(room), Some(title))
        );
        assert!(d.call_id_cache);
        let state = ctl
            .call_tool(id, "get_state", json!({}), None)
            .await
            .unwrap();
        assert_eq!(state["isError"], false, "{id}: {state}");
        assert!(state["structuredContent"].is_object(), "{id}: {state}");
    }

    let on = ctl
        .call_tool("kitchen-lamp", "set_power", json!({"on": true}), None)
        .await
        .unwrap();
    assert_eq!(on["structuredContent"]["on"], true);
    let state = ctl
        .call_tool("kitchen-lamp", "get_state", json!({}), None)
        .await
        .unwrap();
    assert_eq!(
        state["structuredContent"]["on"], true,
        "the lamp's state shows the call"
    );
    let t = ctl
        .call_tool(
            "living-thermostat",
            "set_target",
            json!({"celsius": 22.5}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(t["structuredContent"]["target_c"], 22.5);
    let v = ctl
        .call_tool("living-speaker", "set_volume", json!({"level": 55}), None)
        .await
        .unwrap();
    assert_eq!(v["structuredContent"]["volume"], 55);
    let p = ctl
        .call_tool("kitchen-plug", "set_power", json!({"on": true}), None)
        .await
        .unwrap();
    assert_eq!(p["structuredContent"]["on"], true);
    let l = ctl
        .call_tool("front-door", "lock", json!({}), None)
        .await
        .unwrap();
    assert_eq!(l["structuredContent"]["locked"], true);
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);

    // Telemetry: live samples and the retained /latest, in ms, and the MCP resource matches.
    let mut probe = Probe::connect_to(&broker, "test-telemetry").await;
    probe
        .subscribe("axon/telemetry/kitchen-lamp/latest", false)
        .await;
    let latest = probe
        .next(Duration::from_secs(5))
        .await
        .expect("retained /latest");
    let sample = axon_core::protocol::telemetry::Telemetry::parse(&latest.payload).unwrap();
    assert!(sample.metrics.contains_key("power_w"));
    probe.subscribe("axon/telemetry/+", false).await;
    let live = probe
        .next_on("axon/telemetry/kitchen-lamp", Duration::from_secs(5))
        .await
        .expect("live telemetry");
    let live = axon_core::protocol::telemetry::Telemetry::parse(&live.payload).unwrap();
    assert_eq!(
        live.metrics["on"],
        axon_core::protocol::telemetry::MetricValue::Bool(true),
        "telemetry shows the lamp on"
    );
    let read = ctl
        .request(
            "kitchen-lamp",
            "resources/read",
            Some(json!({"uri": "axon://kitchen-lamp/telemetry"})),
            None,
        )
        .await
        .unwrap();
    let text: serde_json::Value =
        serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert!(text["metrics"]["power_w"].is_number());
    probe.close().await;

    // Ctrl-C: every device leaves gracefully, presence is cleared.
    sim.interrupt();
    assert!(sim.seen.iter().any(|v| v["event"] == "stopped"));
    let all_offline = ctl
        .wait_until(Duration::from_secs(5), |s| {
            s.devices.iter().all(|d| d.state == DeviceState::Offline)
        })
        .await;
    assert!(
        all_offline,
        "{:?}",
        ctl.devices()
            .iter()
            .map(|d| (&d.device_id, d.state))
            .collect::<Vec<_>>()
    );
    let mut fresh = Probe::connect_to(&broker, "test-presence").await;
    let presence = fresh.retained("$mcp-server/presence/+/axon/#").await;
    assert!(
        presence.is_empty(),
        "no retained presence is left: {presence:?}"
    );
    ctl.close().await;
}
