//! The device-side benchmark (`axon-device-sim bench`), small: CI runs it so that the long run's
//! code keeps working (the README's figures come from the long run, never from here). Every
//! figure the long run prints must come out as a number: both round-trip paths with their ratio,
//! throughput, and memory per board for the lean board and the rumqttc board, with the ratio.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::process::Command;

use axon_tests::broker::Broker;

/// The numbers in a Markdown table row that starts with `prefix`.
fn row(stdout: &str, prefix: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no row {prefix:?} in:\n{stdout}"));
    line.split('|')
        .filter_map(|cell| {
            let t = cell.trim().trim_end_matches(['×', ' ']);
            let t = t
                .trim_end_matches(" KB")
                .trim_end_matches(" MB")
                .trim_end_matches(" ms")
                .trim_end_matches(" s")
                .trim_end_matches('×');
            t.parse::<f64>().ok()
        })
        .collect()
}

/// One benchmark at a time: two at once on a 2-core machine measure each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_device_benchmark_runs_small_and_prints_every_figure() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let broker = Broker::start();
    let out = Command::new(axon_tests::device_sim::binary())
        .args(["bench", "--broker", &broker.url()])
        .args(["--calls", "200", "--rss-devices", "50"])
        .envs(broker.admin_env())
        .env("AXON_DEVICE_STATE_DIR", broker.dir().join("devices"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = row(&stdout, "| raw MQTT 5 request/response");
    assert_eq!(raw.len(), 4, "p50, p99 and two 1.00 ratios: {raw:?}");
    assert!(raw[0] > 0.0 && raw[1] >= raw[0], "{raw:?}");
    let mcp = row(&stdout, "| MCP `tools/call`");
    assert_eq!(mcp.len(), 4, "{mcp:?}");
    assert!(mcp[0] > 0.0, "{mcp:?}");
    // The printed times are whole µs, the ratio is of the unrounded ones.
    let rounding = 0.5 / raw[0] + 0.5 * mcp[0] / (raw[0] * raw[0]);
    assert!(
        (mcp[2] - mcp[0] / raw[0]).abs() <= rounding + 0.01,
        "the ratio is MCP over raw: {mcp:?} {raw:?}"
    );
    for c in [1, 16, 64] {
        let r = row(&stdout, &format!("| {c} |"));
        assert!(
            r.len() == 2 && r[1] > 0.0,
            "calls/s at concurrency {c}: {r:?}"
        );
    }
    // Both boards, each online and running: boards, MB, KB per board, and the ratio to the
    // rumqttc board (1.00 for itself).
    for board in ["lean (axon-core session)", "rumqttc"] {
        for when in ["all online", "after"] {
            let r = row(&stdout, &format!("| {board} | 50 | {when}"));
            assert!(
                r.len() >= 4 && r[0] == 50.0 && r[2] > 0.0 && r[r.len() - 1] > 0.0,
                "{board} {when}: {r:?}"
            );
            if board == "rumqttc" {
                assert_eq!(r[r.len() - 1], 1.0, "{r:?}");
            }
        }
    }
    println!("{stdout}");
}

/// The site benchmark (`bench-scale`), small: 300 lean lamps beside the demo home. Every
/// figure must come out, and the Hub must have had every device ready and listed: a count,
/// not a time (the README's times come from the long run).
#[test]
fn the_site_benchmark_runs_small_and_the_hub_lists_every_device() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_bench-scale"))
        .args(["--devices", "300", "--turns", "10", "--calls", "20"])
        .args(["--telemetry-ms", "5000", "--give-up-s", "90"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let ready = row(&stdout, "| Hub: all 313 ready");
    assert!(
        ready.len() == 1 && ready[0] > 0.0,
        "the Hub never had all 313 ready: {ready:?}\n{stdout}\n{stderr}"
    );
    let listed = stdout
        .lines()
        .find(|l| l.starts_with("| Hub: all listed"))
        .unwrap_or_else(|| panic!("no listing row:\n{stdout}"));
    assert!(listed.contains(", 313 devices)"), "{listed}");
    for measure in ["/api/chat → tool executed", "/mcp tools/call"] {
        for p in ["p50", "p99"] {
            let r = row(&stdout, &format!("| {measure}, {p}"));
            assert!(
                r.len() == 3 && r[0] > 0.0 && r[1] > 0.0 && r[2] > 0.0,
                "{measure} {p}: {r:?}\n{stdout}"
            );
        }
    }
    println!("{stdout}");
}
