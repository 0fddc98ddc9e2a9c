//! Golden wire fixtures: every MCP-over-MQTT message Axon sends, byte-for-byte as JSON, with
//! its topic, retain flag and user properties. A change to the wire shows up as a diff here.
//! Refresh on purpose with `UPDATE_FIXTURES=1 cargo test -p axon-core --test golden`.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

mod common;
use std::path::PathBuf;

use common::{client_props, probe_initialize, probe_rpc, Net, Node};
use serde_json::{json, Value};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The `n`-th publish by `from` whose payload satisfies `pred`, as a fixture document.
fn pick(net: &Net, from: Node, pred: impl Fn(&str, &Value) -> bool) -> Value {
    let (_, p) = net
        .wire
        .iter()
        .filter(|(n, _)| *n == from)
        .find(|(_, p)| {
            let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
            pred(&p.topic, &v)
        })
        .unwrap_or_else(|| panic!("no such message from {from:?}"));
    let payload = if p.payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&p.payload).unwrap()
    };
    json!({
        "topic": p.topic,
        "retain": p.retain,
        "user_properties": p.user_properties,
        "payload": payload,
    })
}

fn method(name: &'static str) -> impl Fn(&str, &Value) -> bool {
    move |_, v| v["method"] == name
}

fn result_of(id: i64) -> impl Fn(&str, &Value) -> bool {
    move |t, v| {
        t.starts_with("$mcp-rpc/")
            && v["id"] == id
            && (v.get("result").is_some() || v.get("error").is_some())
    }
}

#[test]
fn wire_messages_match_the_fixtures() {
    let mut net = Net::started(&["kitchen-1"]);
    net.call("kitchen-1", "set_power", json!({"on": true}))
        .unwrap();
    let (rpc, _) = probe_initialize(&mut net, 0, "probe-1", "2025-06-18");
    let invalid = probe_rpc(&mut net, &rpc, "probe-1", br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"set_brightness","arguments":{"level":"high"}}}"#).unwrap();
    let unknown = probe_rpc(
        &mut net,
        &rpc,
        "probe-1",
        br#"{"jsonrpc":"2.0","id":8,"method":"lights/dance"}"#,
    )
    .unwrap();
    let parse = probe_rpc(&mut net, &rpc, "probe-1", b"{not json").unwrap();
    let ping = probe_rpc(
        &mut net,
        &rpc,
        "probe-1",
        br#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
    )
    .unwrap();
    net.probe_publish(
        &rpc,
        br#"{"jsonrpc":"2.0","method":"notifications/disconnected"}"#,
        client_props("probe-1"),
    );
    let hub = Node::Hub;
    let dev = Node::Device(0);
    let will = net.devices[0].server.connect_options().will.unwrap();
    net.leave_device(0);

    let mut docs: Vec<(&str, Value)> = vec![
        (
            "device_online",
            pick(&net, dev, method("notifications/server/online")),
        ),
        ("hub_initialize", pick(&net, hub, method("initialize"))),
        ("device_initialize_result", pick(&net, dev, result_of(1))),
        (
            "hub_initialized",
            pick(&net, hub, method("notifications/initialized")),
        ),
        ("hub_tools_list", pick(&net, hub, method("tools/list"))),
        ("device_tools_list_result", pick(&net, dev, result_of(2))),
        ("hub_tools_call", pick(&net, hub, method("tools/call"))),
        ("device_tools_call_result", pick(&net, dev, result_of(3))),
        (
            "device_tombstone",
            pick(&net, dev, |t, v| {
                t.starts_with("$mcp-server/presence/") && v.is_null()
            }),
        ),
    ];
    docs.push(("device_will", json!({"topic": will.topic, "retain": will.retain, "user_properties": will.user_properties, "payload": Value::Null})));
    docs.push(("error_invalid_arguments", invalid));
    docs.push(("error_method_not_found", unknown));
    docs.push(("error_parse", parse));
    docs.push(("ping_result", ping));

    let update = std::env::var("UPDATE_FIXTURES").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, doc) in docs {
        let path = fixture_dir().join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(fixture_dir()).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "missing fixture {}: run UPDATE_FIXTURES=1 cargo test -p axon-core --test golden",
                path.display()
            )
        });
        if want != text {
            stale.push(format!("{name}:\n--- fixture\n{want}+++ now\n{text}"));
        }
    }
    assert!(stale.is_empty(), "the wire changed; if on purpose, run UPDATE_FIXTURES=1 cargo test -p axon-core --test golden\n{}", stale.join("\n"));
}
