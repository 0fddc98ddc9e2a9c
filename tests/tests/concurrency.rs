//! 100 calls in flight to 10 boards over one client connection: every answer is matched to
//! its own request.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::{Broker, DeviceSim};
use device_sim::ctl::Controller;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_in_flight_to_ten_boards_are_each_matched() {
    let broker = Broker::start();
    let _sim = DeviceSim::start(
        &broker,
        &["--profile", "lamp", "--devices", "10", "--fault-rate", "0"],
    );
    let ctl = Controller::connect(&broker.url().parse().unwrap(), broker.ctl_options())
        .await
        .unwrap();
    let ids: Vec<String> = (1..=10).map(|i| format!("lamp-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    ctl.wait_for_devices(&refs, Duration::from_secs(10))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..100u64 {
        let ctl = ctl.clone();
        let device = ids[(n % 10) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let r = ctl
                .call_tool(&device, "set_brightness", json!({"level": n}), None)
                .await;
            (n, device, r)
        }));
    }
    for t in tasks {
        let (n, device, r) = t.await.unwrap();
        let r = r.unwrap_or_else(|e| panic!("call {n} to {device} failed: {e}"));
        assert_eq!(
            r["structuredContent"]["brightness"], n,
            "call {n} to {device} got another call's answer: {r}"
        );
    }
    ctl.close().await;
}
