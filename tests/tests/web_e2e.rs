//! The web app end to end in headless Chromium (playwright-core + Debian's chromium), served by
//! the worker under `wrangler dev`, with real Mosquitto and the demo home in device-sim: the
//! console shows only its sign-in form (and asks for no data) until it signs in with the owner
//! token, refusing a wrong one; a tab of the signed-in browser becomes a device and shows up in
//! the registry, the agent changes its face, the console lists the home, plots live telemetry
//! and calls a lamp from a generated form (and refuses an invalid value before sending), the
//! activity log lists the call, a `confirm` tool waits for the dialog, the tab's telemetry
//! reaches the Hub, `take_photo` returns a JPEG from the fake camera, a tab with a stored
//! account is that device without pairing, the widget works on another origin with its key,
//! and a page loaded while the broker is down says so and comes online when it returns.
//! Screenshots go to `test-output/web/`. Pairing is `web_pairing.rs`.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use axon_tests::peer::{browser_steps, step};
use axon_tests::{Broker, DeviceSim, Peer, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn gz_size(path: &PathBuf) -> usize {
    use std::io::Write;
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut child = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

/// The owner token and the widget's publishable key this test gives the worker.
const OWNER_TOKEN: &str = "axon-e2e-owner-token";
const WIDGET_KEY: &str = "axon-e2e-widget-key";

fn steps(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["step"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_web_app_in_chromium_with_the_worker_broker_and_demo_home() {
    let mut broker = Broker::start();
    // A tab that paired earlier: its broker account exists before the Hub connects (adding a
    // device to the site's role would disconnect the Hub once).
    let stored = broker.provision_device("tab-stored", "home");
    let mut sim = DeviceSim::start(
        &broker,
        &[
            "--profile",
            "home",
            "--fault-rate",
            "0",
            "--telemetry-interval-ms",
            "500",
        ],
    );
    let widget_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let widget_origin = format!("http://127.0.0.1:{widget_port}");
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_ALLOWED_ORIGINS", &widget_origin),
            ("AXON_API_TOKEN", OWNER_TOKEN),
            ("AXON_WIDGET_KEY", WIDGET_KEY),
        ],
    );
    // As the owner: /healthz shows the devices only to the owner (the harness sends the token).
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["ready"] == DEMO_HOME_DEVICES
    });
    let base = format!("http://127.0.0.1:{}", worker.port());
    let ws = format!("ws://127.0.0.1:{}/mqtt", broker.ws_port());
    let out = root().join("test-output/web");
    let out_s = out.display().to_string();

    // Sizes of what a browser downloads (gzip), against the goals.
    let dist = root().join("target/web-dist");
    let page = |name: &str, html: &str, css: &str| {
        gz_size(&dist.join(format!("pkg-{name}/{name}_bg.wasm")))
            + gz_size(&dist.join(format!("pkg-{name}/{name}.js")))
            + gz_size(&dist.join(html))
            + gz_size(&dist.join(css))
    };
    let console = page("console", "index.html", "style.css");
    let device = page("device", "device.html", "device.css");
    let widget = page("widget", "widget.js", "widget.css");
    let kb = |bytes: usize| format!("{:.1}", bytes as f64 / 1024.0);
    println!(
        "web sizes (gzip): console {} KB, virtual device {} KB (goal 150 each), widget {} KB (goal 100)",
        kb(console),
        kb(device),
        kb(widget)
    );

    let lines = browser_steps(
        "e2e.mjs",
        &[
            "main",
            &base,
            &ws,
            &out_s,
            OWNER_TOKEN,
            &widget_port.to_string(),
            WIDGET_KEY,
            stored.password(),
        ],
        Duration::from_secs(180),
        || worker.log(),
    );
    assert_eq!(
        steps(&lines),
        [
            "console_asks_to_sign_in",
            "console_signs_in",
            "device_online",
            "console_lists_home",
            "chat_makes_the_screen_happy",
            "chat_asks_before_unlocking",
            "console_plots_live_telemetry",
            "tool_form_calls_the_lamp",
            "tool_form_refuses_an_invalid_value",
            "activity_lists_the_call",
            "device_telemetry_reaches_the_hub",
            "take_photo_returns_a_jpeg",
            "stored_account_is_used",
            "device_pairs_by_its_code",
            "widget_on_another_origin",
            "fits_a_phone_screen",
        ]
    );
    // Not signed in: the form, a clear refusal of a wrong token, and no request for the site's
    // data (only the session: the check and the refused sign-in).
    let before = step(&lines, "console_asks_to_sign_in");
    assert_eq!(
        before["shown"], 0,
        "device data before signing in: {before}"
    );
    assert_eq!(
        before["asked"],
        serde_json::json!(["GET /api/session", "POST /api/session"]),
        "{before}"
    );
    assert!(
        before["refusal"]
            .as_str()
            .unwrap()
            .contains("cannot sign in"),
        "{before}"
    );
    let session = &step(&lines, "console_signs_in")["session"];
    assert_eq!(
        (&session["signed_in"], &session["owner"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{session}"
    );
    let tools = step(&lines, "device_online")["tools"].clone();
    for t in [
        "show_text",
        "set_expression",
        "set_volume",
        "play_tone",
        "take_photo",
        "get_state",
    ] {
        assert!(
            tools.as_array().unwrap().iter().any(|n| n == t),
            "{t} missing from {tools}"
        );
    }
    assert_eq!(step(&lines, "console_lists_home")["devices"], 14);
    assert_eq!(step(&lines, "console_lists_home")["kitchen_lamp"], "ready");
    let chat = step(&lines, "chat_makes_the_screen_happy");
    assert_eq!(chat["answer"], "Screen looks happy now.");
    assert!(
        chat["chip"]
            .as_str()
            .unwrap()
            .contains("tab-e2e.set_expression"),
        "{chat}"
    );
    let unlock = step(&lines, "chat_asks_before_unlocking");
    assert!(
        unlock["prompt"]
            .as_str()
            .unwrap()
            .contains("Front door lock"),
        "{unlock}"
    );
    assert_eq!(
        sim.wait_tool_calls("front-door", "unlock", 1),
        1,
        "runs once, after Allow"
    );
    let plot = step(&lines, "console_plots_live_telemetry");
    assert!(plot["points_after"].as_u64() > plot["points_before"].as_u64());
    // The form's call reached the board; the invalid one did not.
    assert!(sim.wait_tool_calls("kitchen-lamp", "set_power", 1) >= 1);
    let invalid = step(&lines, "tool_form_refuses_an_invalid_value");
    assert!(
        invalid["field_error"]
            .as_str()
            .unwrap()
            .contains("arguments.level"),
        "{invalid}"
    );
    assert_eq!(invalid["result"], "");
    assert_eq!(sim.tool_calls("kitchen-lamp", "set_brightness"), 0);
    // The form's call, in the activity log: who, which device and tool, how it went.
    let row = step(&lines, "activity_lists_the_call")["row"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        row.contains("owner") && row.contains("kitchen-lamp.set_power") && row.ends_with("ok"),
        "{row}"
    );
    let metrics = &step(&lines, "device_telemetry_reaches_the_hub")["metrics"];
    assert_eq!(metrics["expression"], "happy", "{metrics}");
    assert!(
        metrics["tab_visible"].is_boolean() && metrics["volume_pct"] == 50,
        "{metrics}"
    );
    let photo = step(&lines, "take_photo_returns_a_jpeg");
    assert_eq!(
        (photo["mime"].as_str(), photo["jpeg"].as_bool()),
        (Some("image/jpeg"), Some(true))
    );
    assert!(photo["bytes"].as_u64().unwrap() > 1000);
    // A tab with a stored account is that device: no code asked for, online as it.
    let stored = step(&lines, "stored_account_is_used");
    assert_eq!(
        (&stored["id"], &stored["code"], &stored["pair_requests"]),
        (
            &Value::from("tab-stored"),
            &Value::from(""),
            &Value::from(0)
        ),
        "{stored}"
    );
    // Pairing, the page's side: a code on the screen, a new one when it expires (saying so),
    // then, approved, the account kept and the tab online as it (its own broker account), the
    // screen cleared.
    let pairing = step(&lines, "device_pairs_by_its_code");
    let codes = pairing["codes"].as_array().unwrap();
    assert!(
        codes.len() == 2 && codes[0] != codes[1] && codes[0].as_str().unwrap().len() == 9,
        "{pairing}"
    );
    assert_eq!(
        pairing["status_on_second_ask"], "code expired — getting a new one",
        "{pairing}"
    );
    assert!(
        pairing["id"].as_str().unwrap().starts_with("web-"),
        "{pairing}"
    );
    assert_eq!(pairing["approved"], 200, "the owner's approval: {pairing}");
    assert_eq!(pairing["account_device"], pairing["id"], "{pairing}");
    assert_eq!(pairing["screen"], "", "{pairing}");
    assert_eq!(
        step(&lines, "widget_on_another_origin")["answer"],
        "Kitchen lamp is off."
    );
    for shot in [
        "device.png",
        "device-happy.png",
        "console.png",
        "widget.png",
        "console-phone.png",
        "device-phone.png",
    ] {
        assert!(out.join(shot).exists(), "screenshot {shot} missing");
    }

    // The broker is down when a device page loads: it says so, then comes online by itself.
    // The tab paired earlier (pairing needs the broker: the Hub makes the account there).
    let late = broker.provision_device("tab-late", "home");
    broker.stop();
    let mut node = Peer::spawn_node(
        "e2e.mjs",
        &[
            "broker-down",
            &base,
            &ws,
            &out_s,
            OWNER_TOKEN,
            "",
            "",
            late.password(),
        ],
    );
    node.wait_for(Duration::from_secs(60), |l| {
        l["step"] == "waiting_for_broker" || l.get("error").is_some()
    });
    broker.restart();
    let lines = node.finish(Duration::from_secs(60));
    let failed: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(failed.is_empty(), "browser steps failed: {failed:#?}");
    let shown = step(&lines, "broker_down_is_shown")["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        shown.contains("reconnecting") || shown.contains("offline"),
        "{shown}"
    );
    step(&lines, "online_when_the_broker_returns");
}
