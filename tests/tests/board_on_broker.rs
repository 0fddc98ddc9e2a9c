//! One lamp board run in this process through the library (`board::run`, `Controller`), on a
//! real broker, and the same on the lean board (`lean::run`, axon-core's own MQTT session): it comes online, is discovered, acts on calls, acts once for a repeated
//! `axon/call-id`, republishes its retained telemetry `/latest` on every connect (a broker
//! restart included), and a graceful leave clears its retained presence.
//!
//! The other system tests drive the `axon-device-sim` process; this one watches the board's
//! own reports, so "acted once" is counted at the board, not inferred from its answers.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::collections::HashMap;
use std::time::Duration;

use axon_core::protocol::mcp::client::{CallOptions, DeviceState};
use axon_core::protocol::telemetry::Telemetry;
use axon_tests::{Broker, Probe};
use device_sim::board::{self, BoardReport, DeviceSpec};
use device_sim::ctl::Controller;
use device_sim::fleet::Link;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(10);
const ID: &str = "lamp-1";

/// The board's reports, and what it has acted on so far.
struct Reports {
    rx: mpsc::UnboundedReceiver<BoardReport>,
    acted: HashMap<String, usize>,
    /// `get_state` calls made by the test; they run on the board in order with the others.
    fences: usize,
}

impl Reports {
    /// The next report that `pred` accepts (tool calls are counted on the way).
    async fn next(&mut self, what: &str, pred: impl Fn(&BoardReport) -> bool) -> BoardReport {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => {
                    if let BoardReport::ToolCall { tool, .. } = &r {
                        *self.acted.entry(tool.clone()).or_default() += 1;
                    }
                    if pred(&r) {
                        return r;
                    }
                }
                Ok(None) => panic!("the board stopped before {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// `get_state` through `ctl`; its report later fences the count of everything before it.
    async fn get_state(&mut self, ctl: &Controller) -> Value {
        self.fences += 1;
        let r = ctl
            .call_tool(ID, "get_state", json!({}), None)
            .await
            .unwrap();
        r["structuredContent"].clone()
    }

    /// How often the board ran `tool`, counted up to the report of the last `get_state`: the
    /// board reports in order, so nothing called before that is still on its way.
    async fn acted(&mut self, tool: &str) -> usize {
        while self.acted.get("get_state").copied().unwrap_or(0) < self.fences {
            self.next(
                "get_state report",
                |r| matches!(r, BoardReport::ToolCall { tool, .. } if tool == "get_state"),
            )
            .await;
        }
        self.acted.get(tool).copied().unwrap_or(0)
    }
}

fn lamp(broker: &Broker) -> DeviceSpec {
    DeviceSpec {
        id: ID.into(),
        kind: "lamp".into(),
        room: Some("lab".into()),
        title: Some("Lab lamp".into()),
        site: "test".into(),
        // An hour: within the test, only the sample taken on connect can reach /latest.
        telemetry_interval: Duration::from_secs(3600),
        fault_rate: 0.0,
        seed: 5,
        credentials: Some(broker.provision_device(ID, "test")),
    }
}

/// The retained `/latest`, checked to be one valid sample.
async fn latest(broker: &Broker, probe_id: &str) -> Telemetry {
    let mut probe = Probe::connect_to(broker, probe_id).await;
    let found = probe.retained(&format!("axon/telemetry/{ID}/latest")).await;
    probe.close().await;
    assert_eq!(found.len(), 1, "one retained /latest");
    Telemetry::parse(&found[0].payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lamp_board_serves_acts_once_per_call_id_and_leaves_cleanly() {
    serves_acts_once_per_call_id_and_leaves_cleanly(Link::Rumqttc).await;
}

/// The lean board (axon-core's own MQTT session, `run --lean`) passes the same scenario: the
/// same MCP server on another client, so every check above holds for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lean_lamp_board_serves_acts_once_per_call_id_and_leaves_cleanly() {
    serves_acts_once_per_call_id_and_leaves_cleanly(Link::Lean).await;
}

async fn serves_acts_once_per_call_id_and_leaves_cleanly(link: Link) {
    let mut broker = Broker::start();
    let (reports_tx, rx) = mpsc::unbounded_channel();
    let mut reports = Reports {
        rx,
        acted: HashMap::new(),
        fences: 0,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let stop_signal = async {
        let _ = stopped.await;
    };
    let spec = lamp(&broker);
    let addr = broker.url().parse().unwrap();
    let board = match link {
        Link::Rumqttc => tokio::spawn(board::run(spec, addr, reports_tx, stop_signal)),
        Link::Lean => tokio::spawn(device_sim::lean::run(spec, addr, reports_tx, stop_signal)),
    };
    let online = reports
        .next("online", |r| matches!(r, BoardReport::Online { .. }))
        .await;
    assert_eq!(
        online,
        BoardReport::Online {
            device: ID.into(),
            server_name: "axon/lamp/lamp-1".into()
        }
    );
    let sample = latest(&broker, "test-latest-1").await;
    assert!(sample.metrics.contains_key("power_w"), "{sample:?}");

    // Discovery and initialize.
    let ctl = Controller::connect(&broker.url().parse().unwrap(), broker.ctl_options())
        .await
        .unwrap();
    ctl.wait_for_devices(&[ID], WAIT).await.unwrap();
    let info = ctl
        .devices()
        .into_iter()
        .find(|d| d.device_id == ID)
        .unwrap();
    assert_eq!(info.server_name, "axon/lamp/lamp-1");
    assert_eq!(info.meta.title.as_deref(), Some("Lab lamp"));
    let mut tools: Vec<_> = info.tools.iter().map(|t| t.name.as_str()).collect();
    tools.sort();
    assert_eq!(tools, ["get_state", "set_brightness", "set_power"]);

    // A call changes what get_state reads.
    assert_eq!(reports.get_state(&ctl).await["on"], false);
    let on = ctl
        .call_tool(ID, "set_power", json!({"on": true}), None)
        .await
        .unwrap();
    assert_eq!(on["isError"], false, "{on}");
    assert_eq!(reports.get_state(&ctl).await["on"], true);

    // The same call-id twice: the second answer is the cached first one, and the board acts once.
    let with_id = || CallOptions {
        timeout: None,
        call_id: Some("0b7e4c1a-3f2d-4e5a-9c8b-1d2e3f4a5b6c".into()),
    };
    let first = ctl
        .call_tool_with(ID, "set_brightness", json!({"level": 40}), with_id())
        .await
        .unwrap();
    let again = ctl
        .call_tool_with(ID, "set_brightness", json!({"level": 40}), with_id())
        .await
        .unwrap();
    assert_eq!(again, first, "the repeat gets the cached result");
    let other = ctl
        .call_tool_with(ID, "set_brightness", json!({"level": 70}), with_id())
        .await
        .unwrap_err();
    assert_eq!(other.code, -32602, "a call-id reused with other arguments");
    assert_eq!(reports.get_state(&ctl).await["brightness"], 40);
    assert_eq!(
        reports.acted("set_brightness").await,
        1,
        "the board acted once"
    );
    assert_eq!(reports.acted("set_power").await, 1);

    // Broker restart without persistence: the board reconnects and republishes /latest at once,
    // not an hour later at its next tick.
    broker.restart();
    reports
        .next("offline", |r| matches!(r, BoardReport::Offline { .. }))
        .await;
    reports
        .next("online again", |r| matches!(r, BoardReport::Online { .. }))
        .await;
    let sample = latest(&broker, "test-latest-2").await;
    assert_eq!(
        sample.metrics["on"],
        axon_core::protocol::telemetry::MetricValue::Bool(true),
        "the sample reflects the lamp's state"
    );
    ctl.wait_for_devices(&[ID], WAIT).await.unwrap();

    // Graceful leave: the tombstone clears the retained presence, and the client sees it go.
    stop.send(()).unwrap();
    reports
        .next("stopped", |r| {
            matches!(
                r,
                BoardReport::Stopped {
                    taken_over: false,
                    ..
                }
            )
        })
        .await;
    tokio::time::timeout(WAIT, board)
        .await
        .expect("the board task ends")
        .unwrap()
        .unwrap();
    assert!(
        ctl.wait_until(WAIT, |s| s
            .devices
            .iter()
            .any(|d| d.device_id == ID && d.state == DeviceState::Offline))
            .await,
        "the client saw the device leave"
    );
    let mut fresh = Probe::connect_to(&broker, "test-presence").await;
    let presence = fresh.retained("$mcp-server/presence/+/axon/#").await;
    assert!(
        presence.is_empty(),
        "retained presence is left: {presence:?}"
    );
    fresh.close().await;
    ctl.close().await;
}
