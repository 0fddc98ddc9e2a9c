//! Bad input against a real board on a real broker: each gets a clear JSON-RPC error, and the
//! board keeps serving afterwards.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_core::protocol::mcp::MAX_RPC_PAYLOAD;
use axon_tests::{Broker, DeviceSim, Probe};
use serde_json::{json, Value};

const CID: &str = "raw-client-1";
const NAME: &str = "axon/lamp/lamp-1";

async fn rpc(probe: &mut Probe, payload: impl Into<Vec<u8>>) -> Option<Value> {
    rpc_within(probe, payload, Duration::from_secs(3)).await
}

async fn rpc_within(
    probe: &mut Probe,
    payload: impl Into<Vec<u8>>,
    wait: Duration,
) -> Option<Value> {
    let topic = format!("$mcp-rpc/{CID}/lamp-1/{NAME}");
    probe.publish_as_client(&topic, payload, CID).await;
    probe.next_on(&topic, wait).await.map(|r| r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_answers_bad_input_with_clear_errors_and_keeps_serving() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "lamp", "--fault-rate", "0"]);
    let mut probe = Probe::connect_to(&broker, CID).await;
    let rpc_topic = format!("$mcp-rpc/{CID}/lamp-1/{NAME}");
    probe.subscribe(&rpc_topic, true).await;
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}});
    probe
        .publish_as_client(&format!("$mcp-server/lamp-1/{NAME}"), init.to_string(), CID)
        .await;
    let answer = probe
        .next_on(&rpc_topic, Duration::from_secs(5))
        .await
        .expect("initialize answered")
        .json();
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
    probe
        .publish_as_client(
            &rpc_topic,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            CID,
        )
        .await;

    let v = rpc(&mut probe, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":")
        .await
        .unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    let v = rpc(
        &mut probe,
        r#"{"jsonrpc":"2.0","id":3,"method":"lights/dance"}"#,
    )
    .await
    .unwrap();
    assert_eq!(v["error"]["code"], -32601);
    let v = rpc(&mut probe, r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"set_brightness","arguments":{"level":"high"}}}"#).await.unwrap();
    assert_eq!(
        (
            v["error"]["code"].clone(),
            v["error"]["data"]["field"].clone()
        ),
        (json!(-32602), json!("arguments.level"))
    );
    let v = rpc(&mut probe, r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"explode","arguments":{}}}"#).await.unwrap();
    assert_eq!(v["error"]["code"], -32602);
    let pad = "p".repeat(MAX_RPC_PAYLOAD);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{{"name":"get_state","arguments":{{}},"pad":"{pad}"}}}}"#
    );
    let v = rpc(&mut probe, big.clone())
        .await
        .expect("an oversize request is answered");
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(6), json!(-32600))
    );
    assert_eq!(v["error"]["data"]["size"], big.len());
    assert!(
        rpc_within(
            &mut probe,
            r#"{"jsonrpc":"2.0","method":"notifications/whatever"}"#,
            Duration::from_millis(300)
        )
        .await
        .is_none(),
        "notifications are not answered"
    );
    let v = rpc(&mut probe, r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
        .await
        .unwrap();
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (json!(0), json!({}))
    );

    // Still serving, and nothing bad reached the hardware.
    let v = rpc(&mut probe, r#"{"jsonrpc":"2.0","id":"ok","method":"tools/call","params":{"name":"set_power","arguments":{"on":true}}}"#).await.unwrap();
    assert_eq!(v["result"]["structuredContent"]["on"], true, "{v}");
    assert_eq!(sim.wait_tool_calls("lamp-1", "set_power", 1), 1);
    assert_eq!(sim.tool_calls("lamp-1", "set_brightness"), 0);
    probe.close().await;
}
