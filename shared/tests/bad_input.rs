//! Bad input gets a clear JSON-RPC error and the device keeps serving afterwards.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::protocol::mcp::MAX_RPC_PAYLOAD;
use common::{probe_initialize, probe_rpc, Net};
use serde_json::json;

const CID: &str = "probe-1";

fn device_still_serves(net: &mut Net, rpc: &str) {
    let v = probe_rpc(net, rpc, CID, br#"{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"set_power","arguments":{"on":true}}}"#)
        .expect("answered");
    assert_eq!(v["result"]["isError"], false, "{v}");
}

#[test]
fn malformed_json_gets_parse_error_with_null_id() {
    let mut net = Net::started(&["k1"]);
    let (rpc, _) = probe_initialize(&mut net, 0, CID, "2025-06-18");
    let v = probe_rpc(
        &mut net,
        &rpc,
        CID,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":",
    )
    .unwrap();
    assert_eq!(v["error"]["code"], -32700);
    assert_eq!(v["id"], serde_json::Value::Null);
    device_still_serves(&mut net, &rpc);
}

#[test]
fn unknown_method_unknown_tool_and_bad_arguments() {
    let mut net = Net::started(&["k1"]);
    let (rpc, _) = probe_initialize(&mut net, 0, CID, "2025-06-18");
    let v = probe_rpc(
        &mut net,
        &rpc,
        CID,
        br#"{"jsonrpc":"2.0","id":2,"method":"lights/dance"}"#,
    )
    .unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(2), json!(-32601))
    );
    let v = probe_rpc(&mut net, &rpc, CID, br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"explode","arguments":{}}}"#)
        .unwrap();
    assert_eq!(v["error"]["code"], -32602);
    assert!(v["error"]["message"].as_str().unwrap().contains("explode"));
    let v = probe_rpc(&mut net, &rpc, CID, br#"{"jsonrpc":"2.0","id":"s4","method":"tools/call","params":{"name":"set_brightness","arguments":{"level":"high"}}}"#)
        .unwrap();
    assert_eq!(v["id"], "s4");
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["data"]["field"], "arguments.level", "{v}");
    let v = probe_rpc(&mut net, &rpc, CID, br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"set_brightness","arguments":{"level":150}}}"#)
        .unwrap();
    assert_eq!(v["error"]["data"]["field"], "arguments.level", "{v}");
    assert!(
        net.devices[0].executed.is_empty(),
        "nothing invalid reached the tool"
    );
    device_still_serves(&mut net, &rpc);
}

#[test]
fn the_hub_refuses_bad_calls_before_sending() {
    let mut net = Net::started(&["k1"]);
    let sent = net.wire.len();
    let e = net
        .call("k1", "set_brightness", json!({"level": "high"}))
        .unwrap_err();
    assert_eq!(
        (e.code, e.data.unwrap()["field"].clone()),
        (-32602, json!("arguments.level"))
    );
    let e = net.call("k1", "explode", json!({})).unwrap_err();
    assert_eq!(e.code, -32602);
    let e = net
        .call("nobody", "set_power", json!({"on": true}))
        .unwrap_err();
    assert_eq!(e.code, -32010);
    let big = "x".repeat(MAX_RPC_PAYLOAD);
    let mut tools = net.devices[0].server.tools().to_vec();
    tools[2].input_schema = json!({"type":"object"});
    net.devices[0].server.set_tools(tools).unwrap();
    net.settle();
    let sent2 = net.wire.len();
    let e = net
        .call("k1", "get_state", json!({"blob": big}))
        .unwrap_err();
    assert_eq!(e.code, -32600);
    assert_eq!(e.data.unwrap()["limit"], MAX_RPC_PAYLOAD);
    assert!(
        sent < sent2 && net.wire.len() == sent2,
        "nothing was sent for refused calls"
    );
}

#[test]
fn oversize_payload_is_answered_with_limit_and_size() {
    let mut net = Net::started(&["k1"]);
    let (rpc, _) = probe_initialize(&mut net, 0, CID, "2025-06-18");
    let filler = "y".repeat(MAX_RPC_PAYLOAD);
    let msg = format!(
        r#"{{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{{"name":"set_power","arguments":{{"on":true,"pad":"{filler}"}}}}}}"#
    );
    let v = probe_rpc(&mut net, &rpc, CID, msg.as_bytes()).unwrap();
    assert_eq!(v["id"], 77);
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(v["error"]["data"]["limit"], MAX_RPC_PAYLOAD);
    assert_eq!(v["error"]["data"]["size"], msg.len());
    device_still_serves(&mut net, &rpc);
}

#[test]
fn a_result_too_large_becomes_an_error() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = common::ToolMode::Hold;
    let h = net.call("k1", "get_state", json!({})).unwrap();
    let call = net.devices[0].held.pop().unwrap();
    let now = net.now;
    let huge = axon_core::protocol::mcp::types::CallToolResult::structured(
        json!({"photo": "z".repeat(MAX_RPC_PAYLOAD)}),
    );
    net.devices[0].server.handle_tool_result(now, call, huge);
    net.settle();
    let e = net.outcome(h).unwrap().clone().unwrap_err();
    assert_eq!(e.code, -32600);
    assert!(e.message.contains("too large"));
}

#[test]
fn notifications_are_never_answered_and_pings_always_are() {
    let mut net = Net::started(&["k1"]);
    let (rpc, _) = probe_initialize(&mut net, 0, CID, "2025-06-18");
    assert!(probe_rpc(
        &mut net,
        &rpc,
        CID,
        br#"{"jsonrpc":"2.0","method":"notifications/whatever"}"#
    )
    .is_none());
    assert!(
        probe_rpc(
            &mut net,
            &rpc,
            CID,
            br#"{"jsonrpc":"2.0","method":"tools/list"}"#
        )
        .is_none(),
        "no id: a notification"
    );
    let v = probe_rpc(
        &mut net,
        &rpc,
        CID,
        br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#,
    )
    .unwrap();
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (json!(0), json!({}))
    );
    let v = probe_rpc(
        &mut net,
        &rpc,
        CID,
        br#"{"jsonrpc":"2.0","id":"p-1","method":"ping"}"#,
    )
    .unwrap();
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (json!("p-1"), json!({}))
    );
    // A stray response is ignored too.
    assert!(probe_rpc(
        &mut net,
        &rpc,
        CID,
        br#"{"jsonrpc":"2.0","id":5,"result":{}}"#
    )
    .is_none());
}

#[test]
fn version_negotiation() {
    for (offer, answer) in [
        ("2025-06-18", "2025-06-18"),
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2030-01-01", "2025-06-18"),
    ] {
        let mut net = Net::started(&["k1"]);
        let (_, v) = probe_initialize(&mut net, 0, CID, offer);
        assert_eq!(v["result"]["protocolVersion"], answer, "offer {offer}");
    }
}

#[test]
fn initialize_without_client_id_property_is_not_answered() {
    let mut net = Net::started(&["k1"]);
    net.probe_subscribe("$mcp-rpc/#");
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"p","version":"0"}}});
    let before = net.probe_inbox.len();
    net.probe_publish(
        "$mcp-server/k1/axon/lamp/k1",
        init.to_string().as_bytes(),
        vec![("MCP-COMPONENT-TYPE".into(), "mcp-client".into())],
    );
    assert_eq!(net.probe_inbox.len(), before);
    assert!(net.devices[0].events.iter().any(|e| matches!(
        e,
        axon_core::protocol::mcp::server::ServerEvent::Rejected {
            client_id: None,
            ..
        }
    )));
    // Garbage on the control topic with a client id: answered with -32700 only when an id
    // cannot be found (no topic to answer on is not the case here: we do know the client).
    let (rpc, _) = probe_initialize(&mut net, 0, CID, "2025-06-18");
    device_still_serves(&mut net, &rpc);
}

// --- Found by `axon-device-sim hostile` (issue 15): each test is the input that failed. ------

use axon_core::protocol::mcp::client::{ClientConfig, ClientEvent, DeviceState, McpClient};
use axon_core::protocol::mcp::server::ServerEvent;
use axon_core::time::Timestamp;
use axon_core::transport::link::{Connack, Inbound, Transmit};
use serde_json::Value;

/// A malformed response on the control topic carries an id, but is never answered (§7): the
/// device used to answer any parse failure with an id there.
#[test]
fn a_malformed_response_on_the_control_topic_is_refused_not_answered() {
    let mut net = Net::started(&["k1"]);
    net.probe_subscribe("$mcp-rpc/#");
    let before = net.probe_inbox.len();
    net.probe_publish(
        "$mcp-server/k1/axon/lamp/k1",
        br#"{"":{"":null},"id":4,"":""}"#,
        common::client_props(CID),
    );
    assert_eq!(net.probe_inbox.len(), before, "not answered");
    assert!(net.devices[0].events.iter().any(|e| matches!(
        e,
        ServerEvent::Rejected { error, .. } if error.code == -32600
    )));
    let (rpc, _) = probe_initialize(&mut net, 0, CID, "2025-06-18");
    device_still_serves(&mut net, &rpc);
}

/// A client id whose RPC topic would pass 65,535 bytes: the SUBSCRIBE could never be sent, so
/// the device used to keep a session that never answered. Now it refuses at once.
#[test]
fn a_client_id_too_long_for_its_topics_is_refused() {
    let mut net = Net::started(&["k1"]);
    net.probe_subscribe("$mcp-rpc/#");
    let before = net.probe_inbox.len();
    let sessions = net.devices[0].server.client_count();
    let long = "c".repeat(65_520);
    net.probe_publish(
        "$mcp-server/k1/axon/lamp/k1",
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"h","version":"1"}}}"#,
        common::client_props(&long),
    );
    assert_eq!(net.probe_inbox.len(), before);
    let refused = net.devices[0].events.iter().find_map(|e| match e {
        ServerEvent::Rejected { error, .. } => Some(error.clone()),
        _ => None,
    });
    let e = refused.expect("a Rejected event");
    assert!(e.message.contains("too long"), "{}", e.message);
    assert_eq!(
        net.devices[0].server.client_count(),
        sessions,
        "no session kept"
    );
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A Hub that knows device `k9` from its online message, with what it sent so far drained.
fn hub_knowing_k9() -> McpClient {
    let mut hub = McpClient::new(ClientConfig::new("hub-1", 1));
    hub.handle_connected(t(0), &Connack::default());
    hub.handle_message(t(0), &online("$mcp-server/presence/k9/axon/lamp/k9"));
    while hub.poll_transmit().is_some() {}
    while hub.poll_event().is_some() {}
    hub
}

fn online(topic: &str) -> Inbound {
    Inbound {
        topic: topic.into(),
        payload: br#"{"jsonrpc":"2.0","method":"notifications/server/online","params":{"server_name":"axon/lamp/k9","description":"d"}}"#.to_vec(),
        ..Inbound::default()
    }
}

/// What the Hub publishes after `payload` arrives from k9 on its RPC topic.
fn hub_answers(hub: &mut McpClient, payload: &[u8]) -> Vec<Value> {
    hub.handle_message(
        t(1),
        &Inbound {
            topic: "$mcp-rpc/hub-1/k9/axon/lamp/k9".into(),
            payload: payload.to_vec(),
            ..Inbound::default()
        },
    );
    std::iter::from_fn(|| hub.poll_transmit())
        .filter_map(|tx| match tx {
            Transmit::Publish(p) => Some(serde_json::from_slice(&p.payload).unwrap()),
            _ => None,
        })
        .collect()
}

/// The Hub used to drop every malformed message from a device. A malformed request is
/// answered like any request (§7); a malformed response or notification still is not.
#[test]
fn the_hub_answers_a_malformed_request_from_a_device_and_nothing_else() {
    let mut hub = hub_knowing_k9();
    for (payload, code, id) in [
        (&b"}"[..], -32700, Value::Null),
        (b"8", -32600, Value::Null),
        (
            br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#,
            -32600,
            json!(7),
        ),
        (
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            -32600,
            Value::Null,
        ),
    ] {
        let got = hub_answers(&mut hub, payload);
        let text = String::from_utf8_lossy(payload);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert_eq!(got[0]["error"]["code"], code, "{text}");
        assert_eq!(got[0]["id"], id, "{text}");
        assert!(got[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    for payload in [
        &br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":""}}"#[..],
        br#"{"jsonrpc":"1.0","method":"notifications/x"}"#,
        br#"{"jsonrpc":"2.0","id":9,"error":{"code":"x","message":"m"}}"#,
    ] {
        let got = hub_answers(&mut hub, payload);
        assert!(
            got.is_empty(),
            "{}: {got:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

/// A presence topic near 64 KiB: the Hub's subscriptions for the device would be longer than
/// MQTT allows, the SUBSCRIBE failed, and the device stayed `initializing` for ever with
/// nothing in flight. Now it is reported unreachable at once.
#[test]
fn a_device_whose_topics_cannot_fit_mqtt_is_unreachable() {
    let mut hub = McpClient::new(ClientConfig::new("hub-1", 1));
    hub.handle_connected(t(0), &Connack::default());
    while hub.poll_transmit().is_some() {}
    // As long as a topic name can be: the capability filter is two bytes longer.
    let topic = format!("$mcp-server/presence/ypagjkdazp/{}", "y".repeat(65_503));
    assert_eq!(topic.len(), 65_535);
    hub.handle_message(t(1), &online(&topic));
    let events: Vec<ClientEvent> = std::iter::from_fn(|| hub.poll_event()).collect();
    assert!(
        matches!(events.last(), Some(ClientEvent::DeviceUnreachable { error, .. })
            if error.message.contains("65535")),
        "{events:?}"
    );
    assert_eq!(hub.devices().count(), 1);
    assert!(hub
        .devices()
        .all(|d| d.server_id == "ypagjkdazp" && d.state == DeviceState::Unreachable));
    assert!(
        !std::iter::from_fn(|| hub.poll_transmit())
            .any(|t| matches!(t, Transmit::Subscribe { .. })),
        "nothing MQTT would refuse is asked for"
    );
}
