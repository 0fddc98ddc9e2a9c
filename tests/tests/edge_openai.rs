//! The `openai` LLM provider: the worker's real client code against a local server that
//! speaks the OpenAI Chat Completions wire format (`tests/interop/openai_server.py`: streamed
//! chunks, tool-call fragments, error objects), with the demo home on real Mosquitto.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::{Broker, DeviceSim, Peer, SseEvent, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::{json, Value};

fn chat(worker: &WranglerDev, text: &str) -> Vec<SseEvent> {
    worker
        .chat(&json!({"text": text, "user": "grace"}))
        .until("done")
}

fn answer(events: &[SseEvent]) -> String {
    events
        .iter()
        .find(|e| e.event == "answer")
        .map(|e| e.data["text"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn deltas(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "text_delta")
        .map(|e| e.data["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_openai_provider_streams_tool_calls_and_answers_through_a_wire_format_server() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
    let (mut model, base) = Peer::spawn_server("openai_server.py", &[]);
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_LLM", "openai"),
            ("AXON_LLM_BASE_URL", &base),
            ("AXON_LLM_MODEL", "test-model"),
            ("AXON_LLM_API_KEY", "sk-test"),
        ],
    );
    let health = worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    assert_eq!(
        (health["llm"].as_str(), health["model"].as_str()),
        (Some("openai"), Some("test-model"))
    );

    // A streamed tool call (arguments split across chunks) runs on the board; the results go
    // back to the model, whose streamed text becomes the answer.
    let turn = chat(&worker, "please turn on the kitchen lamp");
    let started = turn.iter().find(|e| e.event == "tool_started").unwrap();
    assert_eq!(started.data["device"], "kitchen-lamp");
    assert_eq!(started.data["arguments"], json!({"on": true}));
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);
    assert_eq!(deltas(&turn), ["The kitchen ", "lamp is ", "now on."]);
    assert_eq!(answer(&turn), "The kitchen lamp is now on.");

    // What the model was sent: the model name, streaming, LLM-safe tool names, and then the
    // tool result under the model's own call id.
    let first = model.wait_for(Duration::from_secs(5), |v| v["request"] == "chat");
    assert_eq!(first["model"], "test-model");
    assert_eq!(first["stream"], true);
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"kitchen-lamp__set_power"), "{tools:?}");
    assert!(tools.iter().all(|t| !t.contains('.')));
    assert_eq!(first["roles"], json!(["system", "user"]));
    let second = model.wait_for(Duration::from_secs(5), |v| v["last"]["role"] == "tool");
    assert_eq!(second["last"]["tool_call_id"], "call_1");
    let result: Value = serde_json::from_str(second["last"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["result"]["on"], true);
    assert_eq!(
        second["roles"],
        json!(["system", "user", "assistant", "tool"])
    );

    // A model that writes its tool call as JSON in the text still acts.
    let turn = chat(&worker, "kitchen lamp off, as text");
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 2), 2);
    assert_eq!(answer(&turn), "The kitchen lamp is now off.");

    // Plain conversation: streamed text, no tools.
    let turn = chat(&worker, "hello");
    assert_eq!(answer(&turn), "Hello from the test model.");
    assert!(turn.iter().all(|e| e.event != "tool_started"));

    // Memory feeds the next request: the earlier turns come back as history.
    let with_history = model.wait_for(Duration::from_secs(5), |v| {
        v["request"] == "chat" && v["last"]["content"] == "hello"
    });
    assert_eq!(
        with_history["roles"].as_array().unwrap().len(),
        6,
        "{with_history}"
    );
    drop(worker);

    // A wrong key: the endpoint's own error message reaches the person; nothing runs.
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_LLM", "openai"),
            ("AXON_LLM_BASE_URL", &base),
            ("AXON_LLM_API_KEY", "sk-wrong"),
        ],
    );
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["ready"] == DEMO_HOME_DEVICES
    });
    let turn = chat(&worker, "turn on the kitchen lamp");
    let error = turn.iter().find(|e| e.event == "error").unwrap();
    let msg = error.data["message"].as_str().unwrap();
    assert!(
        msg.contains("HTTP 401") && msg.contains("Incorrect API key"),
        "{msg}"
    );

    // The endpoint goes down: a clear error naming it, no hang.
    drop(model);
    let t0 = std::time::Instant::now();
    let turn = chat(&worker, "turn on the kitchen lamp");
    let error = turn.iter().find(|e| e.event == "error").unwrap();
    assert!(
        error.data["message"].as_str().unwrap().contains(&base),
        "{}",
        error.data
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(sim.tool_calls("kitchen-lamp", "set_power"), 2);
}
