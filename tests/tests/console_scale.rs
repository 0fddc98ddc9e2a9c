//! The console with a big site (docs/scale.md §3): 2,000 lean lamps beside the demo home, the
//! real worker under `wrangler dev`, headless Chromium. A big site's rooms start closed, a
//! search finds one lamp among thousands, and an opened room of thousands draws only the rows in
//! view. `AXON_CONSOLE_DEVICES` sets the fleet's size for a bigger run by hand (docs/scale.md
//! has the 10,000 figures).
//!
//! The broker is anonymous: the subject is the console, and 2,000 accounts through Mosquitto's
//! dynamic security plugin take minutes (docs/scale.md §3).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use axon_tests::peer::{browser_steps, step};
use axon_tests::{Broker, DeviceSim, WranglerDev, DEMO_HOME_DEVICES};

#[test]
fn a_big_site_on_the_console_starts_closed_searches_and_draws_only_rows_in_view() {
    let lamps: usize = std::env::var("AXON_CONSOLE_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    if let Some(warning) = device_sim::raise_open_file_limit(lamps + 500) {
        eprintln!("warning: {warning}");
    }
    let broker = Broker::start_anonymous();
    let anyone = ["--username", "console", "--password", "console"];
    let _home = DeviceSim::start(
        &broker,
        &[&["--profile", "home", "--fault-rate", "0"][..], &anyone].concat(),
    );
    let worker = WranglerDev::start(&broker);
    let count = lamps.to_string();
    let mut fleet = DeviceSim::spawn(
        &broker,
        &[
            &anyone[..],
            &["--lean", "--profile", "lamp", "--devices", &count],
            &["--id-prefix", "scale", "--fault-rate", "0"],
            &["--telemetry-interval-ms", "5000"],
        ]
        .concat(),
    );
    let total = DEMO_HOME_DEVICES as usize + lamps;
    worker.wait_for("/healthz", Duration::from_secs(120), |v| {
        v["ready"].as_u64() == Some(total as u64)
    });
    let out = std::env::temp_dir().join(format!("axon-console-scale-{}", std::process::id()));
    let lines = browser_steps(
        "console-scale.mjs",
        &[
            &format!("http://127.0.0.1:{}", worker.port()),
            &worker.owner_token(),
            &total.to_string(),
            &out.display().to_string(),
        ],
        Duration::from_secs(240),
        || worker.log(),
    );
    let first = step(&lines, "first_paint");
    assert_eq!(first["ok"], true, "{first}");
    assert!(
        first["rooms"].as_u64().unwrap() >= 5,
        "the demo home's rooms and the lamps' own: {first}"
    );
    let search = step(&lines, "search");
    assert_eq!(search["found"], 1, "{search}");
    let list = step(&lines, "virtual_list");
    assert!(list["drawn_at_end"].as_u64().unwrap() <= 40, "{list}");
    println!(
        "console with {total} devices: rooms shown {} ms after navigation, all listed {} ms, a search drawn in {} ms",
        first["first_rooms_ms"], first["all_listed_ms"], search["search_ms"]
    );
    fleet.interrupt();
}
