//! Leaving, crashing and reconnecting: presence, wills, and what happens to calls in flight.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::protocol::mcp::client::{ClientEvent, DeviceState};
use axon_core::protocol::mcp::server::ServerEvent;
use common::{Net, ToolMode};
use serde_json::json;

const PRESENCE: &str = "$mcp-server/presence/k1/axon/lamp/k1";

#[test]
fn graceful_leave_clears_presence_and_fails_pending_calls_at_once() {
    let mut net = Net::started(&["k1"]);
    net.devices[0].mode = ToolMode::Hold;
    let h = net.call("k1", "set_power", json!({"on": true})).unwrap();
    net.leave_device(0);
    assert!(
        net.retained(PRESENCE).is_none(),
        "tombstone removed the retained online message"
    );
    assert_eq!(net.hub.device("k1").unwrap().state, DeviceState::Offline);
    let e = net
        .outcome(h)
        .expect("failed at once, not after a timeout")
        .clone()
        .unwrap_err();
    assert_eq!(e.code, -32010);
    assert_eq!(
        net.call("k1", "set_power", json!({"on": true}))
            .unwrap_err()
            .code,
        -32010
    );
}

#[test]
fn a_crash_clears_presence_through_the_will() {
    let mut net = Net::started(&["k1"]);
    net.kill_device(0);
    assert!(net.retained(PRESENCE).is_none());
    assert!(net
        .hub_events
        .iter()
        .any(|e| matches!(e, ClientEvent::DeviceOffline { device_id } if device_id == "k1")));
    // It comes back: the Hub initializes it again.
    net.connect_device(0);
    assert!(net.ready("k1"));
    let h = net.call("k1", "get_state", json!({})).unwrap();
    assert!(net.outcome(h).unwrap().is_ok());
}

#[test]
fn client_disconnected_makes_the_device_drop_the_session() {
    let mut net = Net::started(&["k1"]);
    assert_eq!(net.devices[0].server.client_count(), 1);
    let before = net.trace.len();
    net.hub.leave();
    net.settle();
    assert_eq!(net.devices[0].server.client_count(), 0);
    assert!(net.devices[0]
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::ClientLeft { .. })));
    assert!(
        !net.trace[before..]
            .iter()
            .any(|l| l.starts_with("PUB Device")),
        "the device says nothing more to a client that left"
    );
}

#[test]
fn disconnected_on_rpc_drops_just_that_device() {
    let mut net = Net::started(&["k1", "k2"]);
    net.hub.disconnect_device("k1");
    net.settle();
    assert_eq!(net.devices[0].server.client_count(), 0);
    assert_eq!(net.devices[1].server.client_count(), 1);
    assert!(net.ready("k2"));
}

#[test]
fn a_broker_restart_fails_calls_in_flight_and_reinitializes_devices() {
    let mut net = Net::started(&["k1", "k2"]);
    net.devices[0].mode = ToolMode::Hold;
    let h = net.call("k1", "set_power", json!({"on": true})).unwrap();
    net.drop_hub();
    let e = net.outcome(h).unwrap().clone().unwrap_err();
    assert_eq!(e.code, -32013);
    assert!(net.hub.devices().all(|d| d.state == DeviceState::Unknown));
    assert_eq!(
        net.call("k2", "get_state", json!({})).unwrap_err().code,
        -32013
    );
    net.connect_hub();
    assert!(
        net.ready("k1") && net.ready("k2"),
        "retained presence replays and both are initialized again"
    );
}

#[test]
fn a_device_that_reconnects_is_initialized_again() {
    let mut net = Net::started(&["k1"]);
    let now = net.now;
    net.devices[0].server.handle_disconnected(now);
    net.connect_device(0);
    assert!(net.ready("k1"));
    assert_eq!(net.devices[0].server.client_count(), 1);
    let h = net.call("k1", "get_state", json!({})).unwrap();
    assert!(net.outcome(h).unwrap().is_ok());
}
