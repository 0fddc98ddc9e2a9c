//! tools/list and tools/call: results, correlation under load, pagination, list_changed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::protocol::mcp::client::ClientEvent;
use axon_core::protocol::mcp::types::CallToolResult;
use common::{lamp_config, Net};
use serde_json::json;

#[test]
fn a_call_returns_a_valid_call_tool_result() {
    let mut net = Net::started(&["k1"]);
    let h = net
        .call("k1", "set_brightness", json!({"level": 40}))
        .unwrap();
    let result = net.outcome(h).expect("answered").clone().expect("success");
    let r: CallToolResult = serde_json::from_value(result).expect("a CallToolResult");
    assert!(!r.is_error);
    assert_eq!(
        r.structured_content.as_ref().unwrap()["arguments"]["level"],
        40
    );
    assert_eq!(
        r.first_text()
            .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap()),
        r.structured_content
    );
    assert_eq!(
        net.devices[0].executed,
        vec![("set_brightness".to_string(), json!({"level": 40}))]
    );
}

#[test]
fn missing_arguments_mean_an_empty_object() {
    let mut net = Net::started(&["k1"]);
    let h = net.call("k1", "get_state", serde_json::Value::Null);
    // The client validates first: null is not an object. Send {} instead and it works.
    assert!(h.is_err());
    let h = net.call("k1", "get_state", json!({})).unwrap();
    assert!(net.outcome(h).unwrap().is_ok());
}

#[test]
fn a_hundred_calls_in_flight_to_ten_devices_are_each_matched() {
    let ids: Vec<String> = (0..10).map(|i| format!("lamp-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut net = Net::started(&refs);
    let now = net.now;
    let mut handles = Vec::new();
    for n in 0..100 {
        let dev = &ids[n % 10];
        let h = net
            .hub
            .call_tool(
                now,
                dev,
                "set_brightness",
                json!({"level": n}),
                Default::default(),
            )
            .unwrap();
        handles.push((h, dev.clone(), n));
    }
    assert_eq!(net.hub.in_flight(), 100);
    net.settle();
    for (h, dev, n) in handles {
        let v = net
            .outcome(h)
            .unwrap_or_else(|| panic!("call {n} unanswered"))
            .clone()
            .unwrap();
        assert_eq!(
            v["structuredContent"]["arguments"]["level"], n,
            "call {n} to {dev} got someone else's answer"
        );
    }
    assert_eq!(net.hub.in_flight(), 0);
    for d in &net.devices {
        assert_eq!(d.executed.len(), 10);
    }
}

#[test]
fn tools_list_is_paginated_and_followed() {
    let mut config = lamp_config("big");
    let template = config.tools[2].clone();
    let mut tools = config.tools.to_vec();
    for i in 0..117 {
        let mut t = template.clone();
        t.name = format!("tool_{i}");
        tools.push(t);
    }
    config.tools = tools.into();
    config.page_size = 50;
    let mut net = Net::with_configs(vec![config]);
    net.connect_device(0);
    net.connect_hub();
    assert!(net.ready("big"));
    assert_eq!(net.hub.device("big").unwrap().tools.len(), 120);
    let lists = net
        .trace
        .iter()
        .filter(|l| l.starts_with("PUB Hub $mcp-rpc/"))
        .count();
    assert!(lists >= 3, "three pages mean three tools/list requests");
}

#[test]
fn list_changed_makes_the_hub_list_again() {
    let mut net = Net::started(&["k1"]);
    let mut tools = net.devices[0].server.tools().to_vec();
    let mut extra = tools[2].clone();
    extra.name = "blink".into();
    tools.push(extra);
    net.devices[0].server.set_tools(tools).unwrap();
    net.settle();
    assert!(net
        .hub_events
        .iter()
        .any(|e| matches!(e, ClientEvent::ToolsChanged { device_id } if device_id == "k1")));
    assert!(net.hub.device("k1").unwrap().tool("blink").is_some());
    let h = net.call("k1", "blink", json!({})).unwrap();
    assert!(net.outcome(h).unwrap().is_ok());
}

#[test]
fn tool_failures_come_back_as_is_error() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = common::ToolMode::Hold;
    let h = net.call("k1", "set_power", json!({"on": true})).unwrap();
    let call = net.devices[0].held.pop().unwrap();
    let now = net.now;
    net.devices[0]
        .server
        .handle_tool_result(now, call, CallToolResult::tool_error("relay stuck"));
    net.settle();
    let v = net.outcome(h).unwrap().clone().unwrap();
    assert_eq!(v["isError"], true);
    assert_eq!(v["content"][0]["text"], "relay stuck");
}

#[test]
fn telemetry_resource_reads_and_updates_only_after_subscribe() {
    let mut net = Net::started(&["k1"]);
    let now = net.now;
    net.devices[0].server.set_telemetry(
        now,
        json!({"ts": 1_790_000_000_000u64, "metrics": {"power_w": 7.5}}),
    );
    net.settle();
    assert!(
        !net.hub_events
            .iter()
            .any(|e| matches!(e, ClientEvent::ResourceUpdated { .. })),
        "no update before subscribe"
    );
    let h = net
        .hub
        .request(
            now,
            "k1",
            "resources/read",
            Some(json!({"uri": "axon://k1/telemetry"})),
            None,
        )
        .unwrap();
    net.settle();
    let v = net.outcome(h).unwrap().clone().unwrap();
    let text: serde_json::Value =
        serde_json::from_str(v["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["metrics"]["power_w"], 7.5);
    net.hub
        .request(
            now,
            "k1",
            "resources/subscribe",
            Some(json!({"uri": "axon://k1/telemetry"})),
            None,
        )
        .unwrap();
    net.settle();
    for n in 0..5 {
        let now = net.now;
        net.devices[0].server.set_telemetry(
            now,
            json!({"ts": 1_790_000_000_000u64 + n, "metrics": {"power_w": n}}),
        );
        net.settle();
    }
    let updates = |net: &Net| {
        net.hub_events
            .iter()
            .filter(|e| matches!(e, ClientEvent::ResourceUpdated { .. }))
            .count()
    };
    assert_eq!(updates(&net), 1, "at most one update per second");
    net.advance(1_000);
    assert_eq!(
        updates(&net),
        2,
        "the deferred update goes out after the second"
    );
    let h = net
        .hub
        .request(
            net.now,
            "k1",
            "resources/read",
            Some(json!({"uri": "axon://k1/nope"})),
            None,
        )
        .unwrap();
    net.settle();
    assert_eq!(net.outcome(h).unwrap().as_ref().unwrap_err().code, -32002);
}
