//! Benchmark of the edge worker on loopback, against the real parts it starts itself
//! (Mosquitto, the demo home in device-sim, `wrangler dev`):
//!
//! 1. a text turn through `POST /api/chat` with the offline planner, timed until the tool has
//!    executed (`tool_finished`) and until the turn is done;
//! 2. a `tools/call` through `/mcp` (Streamable HTTP → Hub → MQTT → board) against the same
//!    call made directly over MQTT by an in-process MCP client, interleaved, as a ratio.
//!
//! Prints a table. Usage: `cargo run --release -p axon-tests --bin bench-edge -- [--turns N]`
//! (build `device-sim` first: `cargo build --release -p device-sim --bins`).

#![allow(clippy::unwrap_used)] // a benchmark run fails loudly

use std::time::{Duration, Instant};

use axon_tests::bench::{chat_turn, mcp_call, mcp_session, ms, pace, pct, Series};
use axon_tests::{http_with, Broker, DeviceSim, WranglerDev, DEMO_HOME_DEVICES};
use device_sim::ctl::{Controller, ControllerOptions};
use device_sim::mqtt::BrokerAddr;
use serde_json::json;

const TOKEN: &str = "bench-token";

fn main() {
    let mut turns = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--turns" => {
                turns = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--turns needs a number")
            }
            "-h" | "--help" => {
                println!("bench-edge [--turns N]   (default 200): /api/chat and /mcp latency on loopback");
                return;
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    eprintln!("starting Mosquitto, the demo home and wrangler dev…");
    let broker = Broker::start();
    let _sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
    let worker = WranglerDev::start_with(&broker, &[("AXON_MCP_TOKEN", TOKEN)]);
    worker.wait_for("/healthz", Duration::from_secs(60), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    let port = worker.port();

    // 1. Chat turns.
    let mut to_tool = Series::new("/api/chat → tool executed");
    let mut to_done = Series::new("/api/chat → turn done");
    let texts = ["turn on the kitchen lamp", "turn off the kitchen lamp"];
    let warmup = 20;
    eprintln!("{warmup} warm-up turns, then {turns} measured…");
    let mut last = None;
    for i in 0..warmup + turns {
        last = Some(pace(last));
        let (tool, done) = chat_turn(port, "bench", texts[i % 2]);
        if i >= warmup {
            to_tool.samples.push(tool);
            to_done.samples.push(done);
        }
    }
    // Memory grows by two messages per turn; start the next user clean.
    let _ = http_with(port, "DELETE", "/api/memory?user=bench", &[], None);

    // 2. /mcp vs direct MQTT, interleaved.
    let session = mcp_session(port, TOKEN);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let broker_addr: BrokerAddr = broker.url().parse().unwrap();
    let ctl = rt
        .block_on(Controller::connect(
            &broker_addr,
            ControllerOptions::default(),
        ))
        .unwrap();
    rt.block_on(ctl.wait_for_devices(&["kitchen-lamp"], Duration::from_secs(10)))
        .unwrap();
    let mut health = Series::new("GET /healthz (HTTP to the Hub, no MQTT)");
    let mut via_mcp = Series::new("/mcp tools/call");
    let mut direct = Series::new("direct MQTT tools/call");
    let calls = turns;
    for i in 0..warmup + calls {
        let on = i % 2 == 0;
        let t_mcp = mcp_call(
            port,
            TOKEN,
            &session,
            i + 1,
            "kitchen-lamp.set_power",
            json!({"on": on}),
        );
        let t0 = Instant::now();
        let (status, _) = axon_tests::http::http(port, "GET", "/healthz", None).unwrap();
        assert_eq!(status, 200);
        let t_health = t0.elapsed();
        let t0 = Instant::now();
        let r = rt
            .block_on(ctl.call_tool("kitchen-lamp", "set_power", json!({"on": !on}), None))
            .unwrap();
        let t_direct = t0.elapsed();
        assert_eq!(r["isError"], false);
        if i >= warmup {
            via_mcp.samples.push(t_mcp);
            health.samples.push(t_health);
            direct.samples.push(t_direct);
        }
    }
    rt.block_on(ctl.close());

    println!();
    println!(
        "Edge worker on loopback (wrangler dev + Mosquitto + device-sim), {turns} samples each"
    );
    println!();
    println!("| measure | p50 | p90 | p99 |");
    println!("|---|---:|---:|---:|");
    for s in [&to_tool, &to_done, &via_mcp, &direct, &health] {
        let v = s.sorted();
        println!(
            "| {} | {} | {} | {} |",
            s.name,
            ms(pct(&v, 0.5)),
            ms(pct(&v, 0.9)),
            ms(pct(&v, 0.99))
        );
    }
    let (m, d) = (via_mcp.sorted(), direct.sorted());
    let ratio = |p: f64| pct(&m, p).as_secs_f64() / pct(&d, p).as_secs_f64().max(1e-9);
    println!();
    println!(
        "/mcp vs direct MQTT: {:.2}× at p50, {:.2}× at p99 (baseline: the same tools/call over MQTT from an in-process client)",
        ratio(0.5),
        ratio(0.99)
    );
    let goal = Duration::from_millis(20);
    let p50 = pct(&to_tool.sorted(), 0.5);
    let p99 = pct(&to_tool.sorted(), 0.99);
    println!(
        "/api/chat until the tool executed: p50 {} / p99 {} (goal ≤ {}: {})",
        ms(p50),
        ms(p99),
        ms(goal),
        if p99 <= goal {
            "met"
        } else if p50 <= goal {
            "met at p50"
        } else {
            "not met"
        }
    );
}
