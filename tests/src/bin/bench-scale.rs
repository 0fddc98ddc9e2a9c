//! Benchmark of a big site on one machine, against the real parts it starts itself
//! (Mosquitto, the demo home and a fleet of lean boards in device-sim, `wrangler dev`):
//!
//! 1. the demo home's 13 devices alone: `/api/chat` turns and `/mcp` `tools/call`s (the
//!    baseline, measured in the same run);
//! 2. `--devices N` lean lamps start at once: how long until all are online, and until the
//!    Hub has discovered, initialized and listed every one (`/healthz` `ready`, then every page
//!    of `/api/devices`), with progress while it waits;
//! 3. the same turns and calls again with all of them online, as a ratio to (1).
//!
//! Prints a table (docs/scale.md §3). Usage:
//! `cargo run --release -p axon-tests --bin bench-scale -- [--devices N] [--turns N] [--calls N]`
//! (build `device-sim` first: `cargo build --release -p device-sim --bins`). CI runs a small
//! one (`tests/tests/bench_small.rs`).
//!
//! The broker is anonymous here: provisioning 10,000 accounts through Mosquitto's dynamic
//! security plugin rewrites its whole file once per account (docs/scale.md §3).

#![allow(clippy::unwrap_used)] // a benchmark run fails loudly

use std::time::{Duration, Instant};

use axon_tests::bench::{chat_turn, mcp_call, mcp_session, ms, pace, Series};
use axon_tests::{Broker, DeviceSim, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::{json, Value};

const TOKEN: &str = "bench-token";
/// The goal for discovering, initializing and listing the whole site.
const GOAL_READY: Duration = Duration::from_secs(30);

struct Options {
    devices: usize,
    turns: usize,
    calls: usize,
    telemetry_ms: u64,
    give_up: Duration,
}

fn options() -> Option<Options> {
    let mut o = Options {
        devices: 10_000,
        turns: 100,
        calls: 200,
        telemetry_ms: 5_000,
        give_up: Duration::from_secs(120),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> u64 {
            args.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number; try --help"))
        };
        match a.as_str() {
            "--devices" => o.devices = number("--devices") as usize,
            "--turns" => o.turns = number("--turns") as usize,
            "--calls" => o.calls = number("--calls") as usize,
            "--telemetry-ms" => o.telemetry_ms = number("--telemetry-ms"),
            "--give-up-s" => o.give_up = Duration::from_secs(number("--give-up-s")),
            "-h" | "--help" => {
                println!(
                    "bench-scale [--devices N] [--turns N] [--calls N] [--telemetry-ms MS] [--give-up-s S]\n\n\
                     A site of N lean lamps (default 10000) beside the 13-device demo home, on loopback:\n\
                     how long until the Hub has all of them ready and listed (goal 30 s), and /api/chat\n\
                     and /mcp tools/call latency with them online against the demo home alone.\n\
                     --turns: chat turns per phase (100); --calls: tools/calls per phase (200);\n\
                     --telemetry-ms: each lamp's telemetry period (5000); --give-up-s: how long to wait\n\
                     for the Hub (120)."
                );
                return None;
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    Some(o)
}

/// Chat turns and `/mcp` calls against the demo home's kitchen lamp.
fn measure(port: u16, session: &str, o: &Options, label: &str) -> (Series, Series) {
    let texts = ["turn on the kitchen lamp", "turn off the kitchen lamp"];
    let warmup = 10;
    eprintln!(
        "{label}: {warmup} warm-up turns and calls, then {} turns and {} calls…",
        o.turns, o.calls
    );
    let mut chat = Series::new(format!("/api/chat → tool executed ({label})"));
    let mut last = None;
    for i in 0..warmup + o.turns {
        last = Some(pace(last));
        let (tool, _) = chat_turn(port, "bench-scale", texts[i % 2]);
        if i >= warmup {
            chat.samples.push(tool);
        }
    }
    let _ = axon_tests::http_with(port, "DELETE", "/api/memory?user=bench-scale", &[], None);
    let mut call = Series::new(format!("/mcp tools/call ({label})"));
    for i in 0..warmup + o.calls {
        let took = mcp_call(
            port,
            TOKEN,
            session,
            i + 1,
            "kitchen-lamp.set_power",
            json!({"on": i % 2 == 0}),
        );
        if i >= warmup {
            call.samples.push(took);
        }
    }
    (chat, call)
}

/// Every page of `/api/devices`: (devices listed, pages).
fn list_all(worker: &WranglerDev) -> (usize, usize) {
    let (mut listed, mut pages) = (0, 0);
    let mut path = "/api/devices".to_string();
    loop {
        let (status, v) = worker.get(&path);
        assert_eq!(status, 200, "{path}: {v}");
        listed += v["devices"].as_array().map_or(0, Vec::len);
        pages += 1;
        match v["next"].as_str() {
            Some(after) => path = format!("/api/devices?after={after}"),
            None => return (listed, pages),
        }
    }
}

/// Resident memory of every `workerd` process on this machine (the worker's runtime), in MB.
fn workerd_rss_mb() -> f64 {
    let mut kb = 0u64;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "workerd" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        kb += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    kb as f64 / 1024.0
}

fn main() {
    let Some(o) = options() else { return };
    // Mosquitto and device-sim inherit this process's open-file limit.
    if let Some(warning) = device_sim::raise_open_file_limit(o.devices + 500) {
        eprintln!("warning: {warning}");
    }
    eprintln!("starting Mosquitto, the demo home and wrangler dev…");
    let broker = Broker::start_anonymous();
    // Anonymous: any account name passes (boards refuse to start without one).
    let anyone = ["--username", "bench", "--password", "bench"];
    let _home = DeviceSim::start(
        &broker,
        &[&["--profile", "home", "--fault-rate", "0"][..], &anyone].concat(),
    );
    let worker = WranglerDev::start_with(&broker, &[("AXON_MCP_TOKEN", TOKEN)]);
    worker.wait_for("/healthz", Duration::from_secs(60), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    let port = worker.port();
    let session = mcp_session(port, TOKEN);
    let (chat_home, call_home) = measure(port, &session, &o, "13 devices");
    let rss_home = workerd_rss_mb();

    // 2. The fleet starts; the clock runs from its spawn.
    let total = DEMO_HOME_DEVICES + o.devices as u64;
    eprintln!("starting {} lean lamps…", o.devices);
    let t0 = Instant::now();
    let devices = o.devices.to_string();
    let telemetry = o.telemetry_ms.to_string();
    let mut fleet = DeviceSim::spawn(
        &broker,
        &[
            "--username",
            "bench",
            "--password",
            "bench",
            "--lean",
            "--profile",
            "lamp",
            "--devices",
            &devices,
            "--id-prefix",
            "scale",
            "--telemetry-interval-ms",
            &telemetry,
            "--fault-rate",
            "0",
        ],
    );
    let mut online = None;
    let mut ready_at = None;
    let mut last: Value = Value::Null;
    let mut next_report = Instant::now();
    while t0.elapsed() < o.give_up {
        fleet.drain();
        if online.is_none() && fleet.seen.iter().any(|v| v["event"] == "ready") {
            online = Some(t0.elapsed());
        }
        let (_, h) = worker.get("/healthz");
        if h["ready"].as_u64() == Some(total) {
            ready_at = Some(t0.elapsed());
            last = h;
            break;
        }
        if Instant::now() >= next_report {
            eprintln!(
                "  {:>5.1} s: Hub knows {} devices, {} ready of {total}; initializing {}, waiting {}",
                t0.elapsed().as_secs_f64(),
                h["devices"],
                h["ready"],
                h["initializing"]["now"],
                h["initializing"]["waiting"]
            );
            next_report += Duration::from_secs(2);
        }
        last = h;
        std::thread::sleep(Duration::from_millis(100));
    }
    let t_list = Instant::now();
    let (listed, pages) = if ready_at.is_some() {
        list_all(&worker)
    } else {
        (0, 0)
    };
    let listed_at = ready_at.map(|r| r + t_list.elapsed());
    let rss_fleet = workerd_rss_mb();

    // 3. The same requests with the whole site online.
    let big = format!("{total} devices");
    let measured = ready_at.map(|_| measure(port, &session, &o, &big));

    println!();
    println!(
        "A site of {} lean lamps + the 13-device demo home on loopback (wrangler dev + Mosquitto + device-sim), telemetry every {} ms",
        o.devices, o.telemetry_ms
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    let secs = |d: Option<Duration>| {
        d.map_or("not within the wait".to_string(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    println!("| lamps online (device-sim's `ready`) | {} |", secs(online));
    println!(
        "| Hub: all {total} ready (`/healthz`) | {} |",
        secs(ready_at)
    );
    println!(
        "| Hub: all listed (`/api/devices`, {pages} pages, {listed} devices) | {} |",
        secs(listed_at)
    );
    println!("| workerd memory, 13 devices → {total} | {rss_home:.0} MB → {rss_fleet:.0} MB |");
    match listed_at {
        Some(t) if t <= GOAL_READY && listed as u64 == total => {
            println!("\nready and listed within {} s: met", GOAL_READY.as_secs())
        }
        _ => println!(
            "\nready and listed within {} s: not met (last /healthz: ready {} of {total}, last error {})",
            GOAL_READY.as_secs(),
            last["ready"],
            last["last_error"]
        ),
    }
    let Some((chat_big, call_big)) = measured else {
        return;
    };
    println!();
    println!("| measure | 13 devices | {total} devices | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, p, a, b) in [
        ("/api/chat → tool executed, p50", 0.5, &chat_home, &chat_big),
        (
            "/api/chat → tool executed, p99",
            0.99,
            &chat_home,
            &chat_big,
        ),
        ("/mcp tools/call, p50", 0.5, &call_home, &call_big),
        ("/mcp tools/call, p99", 0.99, &call_home, &call_big),
    ] {
        let (x, y) = (a.at(p), b.at(p));
        println!(
            "| {name} | {} | {} | {:.2}× |",
            ms(x),
            ms(y),
            y.as_secs_f64() / x.as_secs_f64().max(1e-9)
        );
    }
    let chat_p50 = chat_big.at(0.5);
    let call_ratio = call_big.at(0.99).as_secs_f64() / call_home.at(0.99).as_secs_f64().max(1e-9);
    println!();
    println!(
        "/api/chat p50 with {total} online ≤ 20 ms: {}; tools/call p99 within 1.5× of 13 devices: {}",
        if chat_p50 <= Duration::from_millis(20) { "met" } else { "not met" },
        if call_ratio <= 1.5 { "met" } else { "not met" }
    );
    drop(fleet);
}
