//! `_meta["axon/call-id"]`: a repeated call is answered from the cache and acts once.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::protocol::mcp::client::CallOptions;
use common::{probe_initialize, probe_rpc, Net, ToolMode};
use serde_json::json;

fn call_with(
    net: &mut Net,
    args: serde_json::Value,
    call_id: &str,
) -> axon_core::protocol::mcp::client::RequestHandle {
    let now = net.now;
    let h = net
        .hub
        .call_tool(
            now,
            "k1",
            "set_power",
            args,
            CallOptions {
                call_id: Some(call_id.into()),
                ..Default::default()
            },
        )
        .unwrap();
    net.settle();
    h
}

#[test]
fn a_repeated_call_id_returns_the_cached_result_and_acts_once() {
    let mut net = Net::started(&["k1"]);
    let a = call_with(&mut net, json!({"on": true}), "c-1");
    let b = call_with(&mut net, json!({"on": true}), "c-1");
    assert_ne!(a, b);
    assert_eq!(net.outcome(a), net.outcome(b));
    assert_eq!(net.devices[0].executed.len(), 1, "the lamp toggled once");
    // Key order does not make a different call.
    let (rpc, _) = probe_initialize(&mut net, 0, "probe-1", "2025-06-18");
    let v = probe_rpc(&mut net, &rpc, "probe-1", br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"arguments":{"on":true},"name":"set_power","_meta":{"axon/call-id":"c-1"}}}"#).unwrap();
    assert_eq!(v["result"]["structuredContent"]["count"], 1);
    assert_eq!(net.devices[0].executed.len(), 1);
}

#[test]
fn a_call_id_reused_with_different_arguments_is_rejected() {
    let mut net = Net::started(&["k1"]);
    call_with(&mut net, json!({"on": true}), "c-2");
    let h = call_with(&mut net, json!({"on": false}), "c-2");
    let e = net.outcome(h).unwrap().clone().unwrap_err();
    assert_eq!(e.code, -32602);
    assert!(e
        .message
        .contains("call-id reused with different arguments"));
    assert_eq!(net.devices[0].executed.len(), 1);
}

#[test]
fn a_repeat_while_running_is_answered_when_the_first_finishes() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = ToolMode::Hold;
    let a = call_with(&mut net, json!({"on": true}), "c-3");
    let b = call_with(&mut net, json!({"on": true}), "c-3");
    assert_eq!(
        net.devices[0].held.len(),
        1,
        "the device runs the tool once"
    );
    assert!(net.outcome(a).is_none() && net.outcome(b).is_none());
    net.release_held(0);
    let ra = net.outcome(a).unwrap().clone().unwrap();
    assert_eq!(net.outcome(b).unwrap().clone().unwrap(), ra);
}

#[test]
fn calls_without_call_id_run_every_time_and_the_cache_expires() {
    let mut net = Net::started(&["k1"]);
    let (rpc, _) = probe_initialize(&mut net, 0, "probe-1", "2025-06-18");
    for id in 1..=2 {
        let msg = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"set_power","arguments":{{"on":true}}}}}}"#
        );
        probe_rpc(&mut net, &rpc, "probe-1", msg.as_bytes()).unwrap();
    }
    assert_eq!(net.devices[0].executed.len(), 2);
    call_with(&mut net, json!({"on": true}), "c-4");
    net.advance(301_000);
    call_with(&mut net, json!({"on": true}), "c-4");
    assert_eq!(
        net.devices[0].executed.len(),
        4,
        "after 300 s the call-id is forgotten"
    );
}

#[test]
fn the_cache_holds_at_most_256_calls() {
    let mut net = Net::started(&["k1"]);
    for n in 0..300 {
        call_with(&mut net, json!({"on": true}), &format!("bulk-{n}"));
    }
    call_with(&mut net, json!({"on": true}), "bulk-299");
    assert_eq!(
        net.devices[0].executed.len(),
        300,
        "recent ids are still cached"
    );
    call_with(&mut net, json!({"on": true}), "bulk-0");
    assert_eq!(net.devices[0].executed.len(), 301, "the oldest was evicted");
}
