//! "What do you see?" against the real parts: Mosquitto, the demo home in device-sim (its
//! hall camera sends a JPEG whose brightness is its light level), `wrangler dev` (workerd).
//! Offline, the answer says there is no vision model and reports the photo's measured size
//! and brightness; with `AXON_VLM=openai`, the worker's real client sends the photo as an
//! `image_url` data URL to a local wire-format server (`tests/interop/vlm_server.py`) whose
//! description becomes the answer.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::http::find;
use axon_tests::{Broker, DeviceSim, Peer, SseEvent, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::{json, Value};

fn chat(worker: &WranglerDev, body: Value) -> Vec<SseEvent> {
    worker.chat(&body).until("done")
}

/// The camera's `take_photo` ran, on hall-camera: its structured result.
fn photo_taken(turn: &[SseEvent]) -> Value {
    let started = find(turn, "tool_started");
    assert_eq!(
        (started["device"].as_str(), started["tool"].as_str()),
        (Some("hall-camera"), Some("take_photo"))
    );
    let finished = find(turn, "tool_finished");
    assert_eq!(finished["ok"], true, "{finished}");
    let image = &finished["result"]["content"][0];
    assert_eq!(image["type"], "image");
    assert_eq!(image["mimeType"], "image/jpeg");
    finished["result"]["structuredContent"].clone()
}

#[test]
fn what_do_you_see_offline_reports_the_measured_photo_and_a_vision_model_describes_it() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);

    // Offline (the default): no vision model, the measured facts, labelled as such.
    let worker = WranglerDev::start(&broker);
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    let turn = chat(&worker, json!({"text": "What do you see?", "user": "lin"}));
    assert_eq!(find(&turn, "turn")["vlm"], "offline");
    let photo = photo_taken(&turn);
    assert_eq!(sim.wait_tool_calls("hall-camera", "take_photo", 1), 1);
    let light = photo["light_pct"].as_f64().unwrap();
    let answer = find(&turn, "answer")["text"].as_str().unwrap().to_string();
    let prefix = "No vision model is configured, so I can't say what is in the picture. \
                  Measured from the image: 320×240 JPEG, average brightness ";
    assert!(answer.starts_with(prefix), "{answer}");
    // The brightness the Hub measured from the JPEG is the camera's light level.
    let rest = &answer[prefix.len()..];
    let (pct, word) = rest.split_once(" %, ").unwrap();
    let pct: f64 = pct.parse().unwrap();
    assert!(
        (pct - light).abs() <= 1.5,
        "measured {pct} %, light {light} %"
    );
    assert_eq!(
        word.trim_end_matches('.'),
        axon_core::media::vision::brightness_word(pct)
    );
    assert_eq!(find(&turn, "answer")["steps"], 1);

    // The person's own device: a tab-less request naming the camera's id works the same, and
    // a malformed device id is refused before anything runs.
    let turn = chat(
        &worker,
        json!({"text": "take a picture", "user": "lin", "device": "hall-camera"}),
    );
    photo_taken(&turn);
    let (status, body) = worker.post(
        "/api/chat",
        &json!({"text": "take a picture", "device": "no spaces allowed"}).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("device"), "{body}");
    assert_eq!(sim.tool_calls("hall-camera", "take_photo"), 2);
    drop(worker);

    // A vision model: the request that carries the photo goes to it; its words are the answer.
    let (mut vlm, base) = Peer::spawn_server("vlm_server.py", &[]);
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_VLM", "openai"),
            ("AXON_VLM_BASE_URL", &base),
            ("AXON_VLM_MODEL", "test-vlm"),
            ("AXON_VLM_API_KEY", "sk-vlm"),
        ],
    );
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["ready"] == DEMO_HOME_DEVICES
    });
    let turn = chat(
        &worker,
        json!({"text": "what's in front of the camera?", "user": "lin"}),
    );
    assert_eq!(find(&turn, "turn")["vlm"], "openai");
    let photo = photo_taken(&turn);
    let bytes = photo["bytes"].as_u64().unwrap();
    let seen = vlm.wait_for(Duration::from_secs(5), |v| v["request"] == "vision");
    assert_eq!(seen["model"], "test-vlm");
    assert_eq!(seen["stream"], true);
    assert_eq!(seen["tools"], 0);
    assert_eq!(
        seen["roles"],
        json!(["system", "user", "assistant", "tool", "user"])
    );
    // One image, in the last (user) message, a data URL of the very JPEG the camera took.
    assert_eq!(
        seen["images"],
        json!([{"role": "user", "data_url": true, "base64": true, "bytes": bytes, "jpeg": true}])
    );
    assert!(seen["text"]
        .as_str()
        .unwrap()
        .ends_with("what's in front of the camera?"));
    let expected = format!("I see a dim hallway with a window and a door (a {bytes}-byte JPEG).");
    assert_eq!(find(&turn, "answer")["text"], expected.as_str());
    let deltas: String = turn
        .iter()
        .filter(|e| e.event == "text_delta")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, expected);
    assert_eq!(find(&turn, "answer")["steps"], 2);

    // The vision endpoint goes away: the turn says the vision model failed, naming it.
    drop(vlm);
    let turn = chat(&worker, json!({"text": "take a photo", "user": "lin"}));
    let error = find(&turn, "error")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("the vision model failed") && error.contains(&base),
        "{error}"
    );
}
