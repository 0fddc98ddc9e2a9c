//! Voice in the browser, end to end: headless Chromium's fake microphone plays espeak-ng's
//! "turn on the kitchen lamp"; the virtual device page (hands-free) and the widget on another
//! origin (push-to-talk) send it through their AudioWorklet to the Hub's `/api/voice`, with the
//! real local AI server (faster-whisper, piper), `wrangler dev`, Mosquitto and the demo home.
//! The kitchen lamp in device-sim turns on each time, the answer's audio reaches the page, and
//! the tab's face goes listening → thinking → speaking, and the push-to-talk button pressed while
//! the answer plays cuts it off (barge-in). No media endpoint runs, so the device page's first
//! session (WebRTC by default) falls back to the WebSocket and says so; the second is the
//! WebSocket picked by hand. Screenshots go to `test-output/web/`.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use axon_core::media::audio::{wav_decode, wav_encode};
use axon_tests::local_ai::espeak_wav;
use axon_tests::peer::{browser_steps, step};
use axon_tests::voice_home::{temp_dir, VoiceHome};

/// The owner token (the device page's browser signs in with it) and the widget's key.
const OWNER_TOKEN: &str = "axon-voice-owner-token";
const WIDGET_KEY: &str = "axon-voice-widget-key";

#[test]
fn a_tab_and_the_widget_speak_to_the_agent_and_the_kitchen_lamp_turns_on() {
    let widget_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let widget_origin = format!("http://127.0.0.1:{widget_port}");
    let mut home = VoiceHome::start_with_vars(&[
        ("AXON_ALLOWED_ORIGINS", &widget_origin),
        ("AXON_API_TOKEN", OWNER_TOKEN),
        ("AXON_WIDGET_KEY", WIDGET_KEY),
    ]);

    // A second of silence first: the page is still opening its session when the file starts.
    let dir = temp_dir("browser");
    let speech = dir.join("speech.wav");
    let spoken = wav_decode(&espeak_wav("turn on the kitchen lamp", &speech)).unwrap();
    let mut samples = vec![0i16; spoken.sample_rate as usize];
    samples.extend_from_slice(&spoken.samples);
    let wav: PathBuf = dir.join("mic.wav");
    std::fs::write(&wav, wav_encode(&samples, spoken.sample_rate)).unwrap();
    let wav_ms = samples.len() as u64 * 1000 / u64::from(spoken.sample_rate);

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("test-output/web");
    let ws = format!("ws://127.0.0.1:{}/mqtt", home.broker.ws_port());
    let lines = browser_steps(
        "voice.mjs",
        &[
            &home.url(),
            &ws,
            &out.display().to_string(),
            &wav.display().to_string(),
            &wav_ms.to_string(),
            &widget_port.to_string(),
            OWNER_TOKEN,
            WIDGET_KEY,
        ],
        Duration::from_secs(240),
        || home.worker.log(),
    );

    // Hands-free on the device page: heard, acted on, answered in speech.
    let tab = step(&lines, "hands_free_on_the_device_page");
    assert!(
        tab["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kitchen lamp"),
        "{tab}"
    );
    assert_eq!(tab["answer"], "Kitchen lamp is on.", "{tab}");
    assert!(tab["audio_bytes"].as_u64().unwrap() > 0, "{tab}");
    assert!(tab["audio_ms"].as_u64().unwrap() > 300, "{tab}");
    assert_eq!(tab["voice_error"], "", "{tab}");
    // WebRTC is the page's default; with no media endpoint the call went unanswered and the
    // session fell back to the WebSocket, saying so.
    assert!(
        tab["link"]
            .as_str()
            .unwrap()
            .starts_with("WebSocket (WebRTC: no media endpoint answered"),
        "{tab}"
    );
    assert!(
        tab["peak_level"].as_u64().unwrap() > 30,
        "the meter never moved: {tab}"
    );
    // The tab's telemetry reported the microphone while it was open.
    assert!(
        tab["mic_level_pct_max"].as_u64().unwrap() > 30,
        "no mic level in the tab's telemetry: {tab}"
    );
    // The face followed the session, in order.
    let faces: Vec<&str> = tab["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let at = |e: &str| {
        faces
            .iter()
            .position(|f| *f == e)
            .unwrap_or_else(|| panic!("the face never showed {e}: {faces:?}"))
    };
    assert!(
        at("listening") < at("thinking") && at("thinking") < at("speaking"),
        "{faces:?}"
    );
    // No blink back to the device's own face between hearing and thinking.
    assert_eq!(faces[at("listening") + 1], "thinking", "{faces:?}");

    // Barge-in: the button pressed while the answer plays stops it at once, and the session
    // listens again (a press with nothing said is reported, not taken as a turn).
    let barge = step(&lines, "barge_in_on_the_device_page");
    assert_eq!(barge["terminated"], 1, "{barge}");
    assert_eq!(barge["link_during"], "WebSocket", "{barge}");
    assert_ne!(barge["phase_during"], "speaking", "{barge}");
    assert_eq!(barge["phase"], "listening", "{barge}");
    assert!(
        barge["voice_error"].as_str().unwrap().contains("asr_empty"),
        "{barge}"
    );

    // Push-to-talk in the widget on another origin: the same, and it joins the chat.
    let widget = step(&lines, "push_to_talk_in_the_widget");
    assert_eq!(widget["answer"], "Kitchen lamp is on.", "{widget}");
    assert!(widget["audio_bytes"].as_u64().unwrap() > 0, "{widget}");
    assert_eq!(widget["voice_error"], "", "{widget}");
    assert!(
        widget["chat_you"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kitchen lamp"),
        "{widget}"
    );
    assert!(
        widget["chat_axon"]
            .as_str()
            .unwrap()
            .contains("Kitchen lamp is on."),
        "{widget}"
    );
    // Each of the three spoken turns (two on the tab, one in the widget) reached the board.
    assert_eq!(home.sim.wait_tool_calls("kitchen-lamp", "set_power", 3), 3);
    assert!(out.join("device-voice.png").exists());
}
