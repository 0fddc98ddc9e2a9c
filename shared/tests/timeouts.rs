//! Deadlines: nothing hangs. A silent device times out with -32011 and a cancellation;
//! progress extends the deadline up to the 60 s cap; a late answer is ignored.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::protocol::mcp::client::{CallOptions, ClientEvent, DeviceState};
use common::{client_props, Net, ToolMode};
use serde_json::json;

#[test]
fn a_silent_device_times_out_after_ten_seconds_with_a_cancellation() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = ToolMode::Hold;
    let h = net.call("k1", "set_power", json!({"on": true})).unwrap();
    net.advance(9_999);
    assert!(net.outcome(h).is_none());
    net.advance(1);
    let e = net.outcome(h).unwrap().clone().unwrap_err();
    assert_eq!(e.code, -32011);
    let cancel = net
        .wire
        .iter()
        .rev()
        .find(|(_, p)| String::from_utf8_lossy(&p.payload).contains("notifications/cancelled"));
    assert!(cancel.is_some(), "the device is told");
    // The late answer is dropped without an event.
    let events = net.hub_events.len();
    net.release_held(0);
    assert_eq!(net.hub_events.len(), events);
}

#[test]
fn a_per_call_timeout_overrides_the_default() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = ToolMode::Hold;
    let now = net.now;
    let opts = CallOptions {
        timeout: Some(std::time::Duration::from_millis(500)),
        ..Default::default()
    };
    let h = net
        .hub
        .call_tool(now, "k1", "set_power", json!({"on": true}), opts)
        .unwrap();
    net.advance(500);
    assert_eq!(net.outcome(h).unwrap().as_ref().unwrap_err().code, -32011);
}

#[test]
fn progress_extends_the_deadline_up_to_the_cap() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = ToolMode::Hold;
    let h = net.call("k1", "set_power", json!({"on": true})).unwrap();
    // Find the request id the hub used: it is the progress token.
    let (_, req) = net
        .wire
        .iter()
        .rev()
        .find(|(_, p)| String::from_utf8_lossy(&p.payload).contains("tools/call"))
        .unwrap()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&req.payload).unwrap();
    let token = v["params"]["_meta"]["progressToken"].clone();
    assert_eq!(token, v["id"]);
    let rpc = req.topic.clone();
    let mut t = 0;
    for n in 1..=12 {
        net.advance(8_000);
        t += 8_000;
        if net.outcome(h).is_some() {
            assert!(t > 60_000 - 8_000, "failed at {t} ms, before the 60 s cap");
            break;
        }
        let progress = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": token, "progress": n}});
        net.probe_publish(&rpc, progress.to_string().as_bytes(), client_props("k1"));
    }
    let e = net
        .outcome(h)
        .expect("the cap ends it")
        .clone()
        .unwrap_err();
    assert_eq!(e.code, -32011);
}

#[test]
fn a_device_that_never_answers_initialize_is_unreachable() {
    let mut net = Net::new(&["k1"]);
    net.connect_device(0);
    // The device's answers are lost: it looks online but never answers.
    net.devices[0].connected = false;
    net.connect_hub();
    assert_eq!(
        net.hub.device("k1").unwrap().state,
        DeviceState::Initializing
    );
    net.advance(10_000);
    assert_eq!(
        net.hub.device("k1").unwrap().state,
        DeviceState::Unreachable
    );
    assert!(net
        .hub_events
        .iter()
        .any(|e| matches!(e, ClientEvent::DeviceUnreachable { .. })));
    assert_eq!(
        net.call("k1", "get_state", json!({})).unwrap_err().code,
        -32010
    );
}
