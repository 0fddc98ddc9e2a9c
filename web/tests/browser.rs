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

#[wasm_bindgen_test]
async fn the_face_follows_its_expression() {
    let el = host();
    let expression = RwSignal::new("neutral".to_string());
    let _mounted =
        leptos::mount::mount_to(el.clone(), move || view! { <Face expression=expression /> });
    let face = el.query_selector("[data-testid=face]").unwrap().unwrap();
    assert_eq!(
        face.get_attribute("data-expression").as_deref(),
        Some("neutral")
    );
    let mouth = || {
        face.query_selector("path")
            .unwrap()
            .unwrap()
            .get_attribute("d")
    };
    let neutral_mouth = mouth();
    expression.set("happy".into());
    leptos::task::tick().await;
    assert_eq!(
        face.get_attribute("data-expression").as_deref(),
        Some("happy")
    );
    assert_eq!(
        face.get_attribute("aria-label").as_deref(),
        Some("face: happy")
    );
    assert_ne!(mouth(), neutral_mouth, "the mouth is drawn differently");
}

#[wasm_bindgen_test]
async fn the_virtual_device_comes_online_over_the_browser_mqtt_session() {
    let Some(url) = option_env!("AXON_TEST_BROKER_WS") else {
        panic!("AXON_TEST_BROKER_WS is unset at build time: run scripts/test.sh, which starts a broker")
    };
    let ui = DeviceUi::new();
    wasm_bindgen_futures::spawn_local(web::device::run(ui, "tab-wbt".into(), url.into()));
    for _ in 0..100 {
        if ui.status.get_untracked() == "online" {
            return;
        }
        web::util::sleep(100).await;
    }
    panic!("not online after 10 s: {}", ui.status.get_untracked());
}

#[wasm_bindgen_test]
async fn a_broker_that_is_not_there_is_reported_not_hidden() {
    let ui = DeviceUi::new();
    // Port 9 (discard) on loopback: nothing listens there.
    wasm_bindgen_futures::spawn_local(web::device::run(
        ui,
        "tab-nobroker".into(),
        "ws://127.0.0.1:9/mqtt".into(),
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
