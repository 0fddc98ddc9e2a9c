//! Browser tests of the web crate (wasm-bindgen-test in headless Chromium via chromedriver):
//! the face component follows its signal, and the virtual device comes online through
//! `axon-core`'s MQTT session over the browser's WebSocket to a real Mosquitto, whose
//! WebSocket URL `scripts/test.sh` passes in `AXON_TEST_BROKER_WS` at build time.

#![cfg(all(target_arch = "wasm32", feature = "device"))]
#![allow(clippy::unwrap_used)] // a test fails loudly by design

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web::device::{DeviceUi, Face};

wasm_bindgen_test_configure!(run_in_browser);

fn host() -> web_sys::HtmlElement {
    let doc = web_sys::window().unwrap().document().unwrap();
    let el: web_sys::HtmlElement = doc.create_element("div").unwrap().dyn_into().unwrap();
    doc.body().unwrap().append_child(&el).unwrap();
    el
}

/// The mouths the page's stylesheet shows, by class (the face draws them all).
fn shown_mouths(face: &web_sys::Element) -> Vec<String> {
    let window = web_sys::window().unwrap();
    let paths = face.query_selector_all("path.mouth").unwrap();
    (0..paths.length())
        .filter_map(|i| paths.item(i)?.dyn_into::<web_sys::Element>().ok())
        .filter(|p| {
            let style = window.get_computed_style(p).unwrap().unwrap();
            style.get_property_value("display").unwrap() != "none"
        })
        .map(|p| p.get_attribute("class").unwrap())
        .collect()
}

#[wasm_bindgen_test]
async fn the_face_follows_its_expression() {
    // The page's real stylesheet: it is what picks the mouth.
    let doc = web_sys::window().unwrap().document().unwrap();
    let style = doc.create_element("style").unwrap();
    style.set_text_content(Some(include_str!("../style/device.css")));
    doc.head().unwrap().append_child(&style).unwrap();
    let el = host();
    let expression = RwSignal::new("neutral".to_string());
    let _mounted =
        leptos::mount::mount_to(el.clone(), move || view! { <Face expression=expression /> });
    let face = el.query_selector("[data-testid=face]").unwrap().unwrap();
    assert_eq!(
        face.get_attribute("data-expression").as_deref(),
        Some("neutral")
    );
    assert_eq!(shown_mouths(&face), ["mouth m-neutral"]);
    for expression_now in web::device::EXPRESSIONS {
        expression.set(expression_now.into());
        leptos::task::tick().await;
        assert_eq!(
            face.get_attribute("data-expression").as_deref(),
            Some(expression_now)
        );
        assert_eq!(
            face.get_attribute("aria-label"),
            Some(format!("face: {expression_now}"))
        );
        assert_eq!(
            shown_mouths(&face),
            [format!("mouth m-{expression_now}")],
            "one mouth, the expression's"
        );
    }
    expression.set("puzzled".into());
    leptos::task::tick().await;
    assert_eq!(
        shown_mouths(&face),
        ["mouth m-neutral"],
        "an unknown word looks neutral"
    );
}

#[wasm_bindgen_test]
async fn the_virtual_device_comes_online_over_the_browser_mqtt_session() {
    let Some(url) = option_env!("AXON_TEST_BROKER_WS") else {
        panic!("AXON_TEST_BROKER_WS is unset at build time: run scripts/test.sh, which starts a broker")
    };
    let ui = DeviceUi::new();
    wasm_bindgen_futures::spawn_local(web::device::run(
        ui,
        "tab-wbt".into(),
        url.into(),
        None,
        web::device::Link::new("tab-wbt"),
    ));
    for _ in 0..100 {
        if ui.status.get_untracked() == "online" {
            return;
        }
        web::util::sleep(100).await;
    }
    panic!("not online after 10 s: {}", ui.status.get_untracked());
}

/// A tab's calls take only what arrives on its own device's `$webrtc/{id}` and
/// `$message/{id}`: not another device's, not the proxy topics (what the tab itself sends), not
/// anything else on the session.
#[wasm_bindgen_test]
fn a_call_link_takes_only_its_own_devices_call_topics() {
    let link = web::device::Link::new("tab-calls")
        .call()
        .expect("a valid device id has a call link");
    assert_eq!(
        link.topics(),
        [
            "$webrtc/tab-calls".to_string(),
            "$message/tab-calls".to_string()
        ]
    );
    assert!(link.deliver("$webrtc/tab-calls", b"{}"));
    assert!(link.deliver("$message/tab-calls", b"{}"));
    for topic in [
        "$webrtc/other-tab",
        "$message/other-tab",
        "$webrtc/tab-calls/multimedia_proxy",
        "$message/tab-calls/multimedia_proxy",
        "axon/telemetry/tab-calls",
        "$webrtc",
    ] {
        assert!(!link.deliver(topic, b"{}"), "{topic}");
    }
    assert!(web::device::Link::new("not a device id!").call().is_none());
}

#[wasm_bindgen_test]
async fn a_broker_that_is_not_there_is_reported_not_hidden() {
    let ui = DeviceUi::new();
    // Port 9 (discard) on loopback: nothing listens there.
    wasm_bindgen_futures::spawn_local(web::device::run(
        ui,
        "tab-nobroker".into(),
        "ws://127.0.0.1:9/mqtt".into(),
        None,
        web::device::Link::new("tab-nobroker"),
    ));
    for _ in 0..50 {
        let s = ui.status.get_untracked();
        if s.contains("reconnecting") {
            return;
        }
        web::util::sleep(100).await;
    }
    panic!(
        "no reconnecting status after 5 s: {}",
        ui.status.get_untracked()
    );
}

#[wasm_bindgen_test]
fn the_voice_url_is_the_workers_websocket_with_escaped_names() {
    use web::voice::{voice_url, Mode};
    // No person in it: the worker takes who speaks from the credential.
    assert_eq!(
        voice_url("https://hub.example/", Some("tab/1"), Mode::PushToTalk),
        "wss://hub.example/api/voice?mode=push_to_talk&device=tab%2F1"
    );
    assert_eq!(
        voice_url("http://127.0.0.1:8787", None, Mode::HandsFree),
        "ws://127.0.0.1:8787/api/voice?mode=hands_free"
    );
    // "" is this page's own origin.
    let origin = web_sys::window().unwrap().location().origin().unwrap();
    let own = voice_url("", None, Mode::HandsFree);
    assert_eq!(
        own,
        format!(
            "{}/api/voice?mode=hands_free",
            origin.replacen("http", "ws", 1)
        )
    );
}

#[wasm_bindgen_test]
fn answer_audio_bytes_become_web_audio_samples() {
    let bytes: Vec<u8> = [0i16, 16384, -32768, 32767]
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .chain([7u8]) // half a sample at the end is ignored, not misread
        .collect();
    assert_eq!(
        web::voice::pcm_to_f32(&bytes),
        [0.0, 0.5, -1.0, 32767.0 / 32768.0]
    );
}

#[wasm_bindgen_test]
fn the_voice_session_sets_the_face_only_while_it_has_something_to_show() {
    let ui = web::voice::VoiceUi::new();
    let face = |phase: &str, hearing: bool| {
        ui.phase.set(phase.into());
        ui.hearing.set(hearing);
        ui.expression()
    };
    assert_eq!(face("off", false), None);
    // Listening and nobody speaking: the device's own face (a "make it happy" stays happy).
    assert_eq!(face("listening", false), None);
    assert_eq!(face("listening", true), Some("listening"));
    assert_eq!(face("thinking", false), Some("thinking"));
    assert_eq!(face("speaking", false), Some("speaking"));
}

#[wasm_bindgen_test]
fn the_tool_table_is_what_tools_list_has_always_said() {
    let tools = web::device::tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "show_text",
            "set_expression",
            "set_volume",
            "play_tone",
            "take_photo",
            "get_state"
        ]
    );
    // The wire shape the agent and the console read, from the struct the page builds directly.
    assert_eq!(
        serde_json::to_value(&tools[5]).unwrap(),
        serde_json::json!({
            "name": "get_state",
            "title": "Read state",
            "description": "The screen's text, expression and volume",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "annotations": {
                "readOnlyHint": true,
                "destructiveHint": false,
                "idempotentHint": true,
                "openWorldHint": false,
            },
            "_meta": {"axon/permission": "auto"},
        })
    );
    assert_eq!(tools[0].declared_permission(), Some("auto"));
    assert_eq!(
        tools[0].annotations.as_ref().unwrap().read_only_hint,
        Some(false)
    );
    let config = axon_core::protocol::mcp::server::DeviceConfig::new(
        axon_core::protocol::mcp::topics::DeviceId::new("tab-tools".to_string()).unwrap(),
        "virtual",
        "a test tab",
        tools,
    );
    assert!(
        axon_core::protocol::mcp::server::McpServer::new(config).is_ok(),
        "the server takes the table"
    );
}

#[wasm_bindgen_test]
fn telemetry_carries_the_mic_level_only_while_the_mic_is_open() {
    let ui = DeviceUi::new();
    let sample = web::device::telemetry_sample(1_000, true, None, &ui);
    let metrics = &sample["metrics"];
    assert_eq!(sample["ts"], 1_000);
    assert_eq!(metrics["tab_visible"], true);
    assert_eq!(metrics["volume_pct"], 50);
    assert_eq!(metrics["expression"], "neutral");
    assert!(metrics.get("mic_level_pct").is_none(), "{metrics}");
    assert!(metrics.get("battery_pct").is_none(), "{metrics}");
    ui.mic_peak.set(Some(42));
    let sample = web::device::telemetry_sample(2_000, false, Some(0.87), &ui);
    assert_eq!(sample["metrics"]["mic_level_pct"], 42);
    assert_eq!(sample["metrics"]["battery_pct"], 87.0);
}

#[wasm_bindgen_test]
fn the_tab_is_the_device_its_stored_account_names() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    storage
        .set_item(
            "axon.device",
            r#"{"device":"tab-paired","kind":"virtual","site":"home","username":"tab-paired","password":"axd_1","token":"axd_1"}"#,
        )
        .unwrap();
    let account = web::device::stored_account().unwrap();
    assert_eq!(web::device::device_id(Some(&account)), "tab-paired");
    // Not an account: not JSON, or without a password.
    storage.set_item("axon.device", "{not json").unwrap();
    assert!(web::device::stored_account().is_none());
    storage
        .set_item("axon.device", r#"{"device":"tab-paired"}"#)
        .unwrap();
    assert!(web::device::stored_account().is_none());
    storage.remove_item("axon.device").unwrap();
    // No account: a fresh id to propose, web- and 8 hex digits, remembered.
    storage.remove_item("axon-device-id").unwrap();
    let fresh = web::device::device_id(None);
    assert!(
        fresh.len() == 12
            && fresh.starts_with("web-")
            && fresh[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{fresh}"
    );
    assert_eq!(web::device::device_id(None), fresh);
}
