//! kill -9 of a board: the broker publishes its will, presence clears, the client marks the
//! device offline and refuses further calls at once with -32010.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::{Duration, Instant};

use axon_core::protocol::mcp::client::DeviceState;
use axon_tests::{Broker, DeviceSim, Probe};
use device_sim::ctl::Controller;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_board_is_cleared_by_its_will() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(
        &broker,
        &["--profile", "lamp", "--devices", "2", "--fault-rate", "0"],
    );
    let ctl = Controller::connect(&broker.url().parse().unwrap(), broker.ctl_options())
        .await
        .unwrap();
    ctl.wait_for_devices(&["lamp-1", "lamp-2"], Duration::from_secs(10))
        .await
        .unwrap();
    sim.kill9();
    let offline = ctl
        .wait_until(Duration::from_secs(5), |s| {
            s.devices.iter().all(|d| d.state == DeviceState::Offline)
        })
        .await;
    assert!(offline, "the wills cleared both devices");
    let t = Instant::now();
    let e = ctl
        .call_tool("lamp-1", "set_power", json!({"on": true}), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, -32010, "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "refused at once, not after a timeout"
    );
    let mut fresh = Probe::connect_to(&broker, "test-will").await;
    let presence = fresh.retained("$mcp-server/presence/+/axon/#").await;
    assert!(
        presence.is_empty(),
        "the will removed the retained presence: {presence:?}"
    );
    ctl.close().await;
}
