//! The broker restarts mid-session: calls fail fast with -32013 instead of hanging, both sides
//! reconnect with backoff, devices re-register, and a retried call with the same
//! `axon/call-id` is answered from the board's cache: the lamp acts once.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::{Duration, Instant};

use axon_core::protocol::mcp::client::CallOptions;
use axon_tests::{Broker, DeviceSim};
use device_sim::ctl::Controller;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_survived_and_a_retry_acts_once() {
    let mut broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "lamp", "--fault-rate", "0"]);
    let ctl = Controller::connect(&broker.url().parse().unwrap(), broker.ctl_options())
        .await
        .unwrap();
    ctl.wait_for_devices(&["lamp-1"], Duration::from_secs(10))
        .await
        .unwrap();
    let retry = || CallOptions {
        timeout: None,
        call_id: Some("5f0c2b9e-8d1a-4c3e-9b7f-2a6d1e4c8b90".into()),
    };
    let first = ctl
        .call_tool_with("lamp-1", "set_power", json!({"on": true}), retry())
        .await
        .unwrap();
    assert_eq!(sim.wait_tool_calls("lamp-1", "set_power", 1), 1);

    broker.stop();
    assert!(
        ctl.wait_until(Duration::from_secs(5), |s| !s.connected)
            .await,
        "the client notices the broker is gone"
    );
    let t = Instant::now();
    let e = ctl
        .call_tool("lamp-1", "get_state", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, -32013, "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "no hang while the broker is down"
    );

    broker.restart();
    // Persistence is off: retained presence is gone, so the board must re-register by itself.
    ctl.wait_for_devices(&["lamp-1"], Duration::from_secs(20))
        .await
        .unwrap();
    let again = ctl
        .call_tool_with("lamp-1", "set_power", json!({"on": true}), retry())
        .await
        .unwrap();
    assert_eq!(again, first, "the cached result");
    assert_eq!(
        sim.wait_tool_calls("lamp-1", "set_power", 1),
        1,
        "the lamp acted once across the restart"
    );
    let other = ctl
        .call_tool_with("lamp-1", "set_power", json!({"on": false}), retry())
        .await
        .unwrap_err();
    assert_eq!(
        other.code, -32602,
        "a call-id reused with different arguments is rejected"
    );
    ctl.close().await;
}
