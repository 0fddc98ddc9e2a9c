//! The virtual device page's voice over WebRTC, end to end: headless Chromium's fake
//! microphone says "turn on the kitchen lamp" into the page, which calls the media endpoint
//! (`axon-media`) with an `RTCPeerConnection` and its signalling on the tab's own MQTT session;
//! the Hub's voice session (real local AI, `wrangler dev`, Mosquitto, the demo home) hears it,
//! and the answer comes back as an audio track. Then a barge-in over WebRTC in the browser:
//! speech while the answer plays cuts it off and is answered in the same call. Neither page
//! opens the Hub's `/api/voice` WebSocket. Screenshots go to `test-output/web/`.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axon_core::media::audio::{wav_decode, wav_encode};
use axon_tests::local_ai::espeak_wav;
use axon_tests::media::{hung_up, MediaEndpoint};
use axon_tests::peer::{browser_steps, step};
use axon_tests::voice_home::{temp_dir, VoiceHome};

const OWNER_TOKEN: &str = "axon-webrtc-owner-token";
const MEDIA_TOKEN: &str = "media-token-for-the-browser-webrtc-test-0123";

#[test]
fn the_device_page_speaks_over_webrtc_and_a_barge_in_cuts_the_answer() {
    let mut home = VoiceHome::start_with_vars(&[
        ("AXON_API_TOKEN", OWNER_TOKEN),
        ("AXON_MEDIA_TOKEN", MEDIA_TOKEN),
    ]);
    let endpoint = Mutex::new(MediaEndpoint::start(
        &home.broker,
        &home.url(),
        MEDIA_TOKEN,
        &[],
    ));

    // The fake microphone: a second of silence (the call is still being set up), then speech.
    let dir = temp_dir("browser-webrtc");
    let spoken = wav_decode(&espeak_wav("turn on the kitchen lamp", &dir.join("on.wav"))).unwrap();
    let mut samples = vec![0i16; spoken.sample_rate as usize];
    samples.extend_from_slice(&spoken.samples);
    let mic = dir.join("mic.wav");
    std::fs::write(&mic, wav_encode(&samples, spoken.sample_rate)).unwrap();
    let mic_ms = samples.len() as u64 * 1000 / u64::from(spoken.sample_rate);
    let first = dir.join("off.wav");
    espeak_wav("turn off the kitchen lamp", &first);
    let second = dir.join("second.wav");
    espeak_wav("turn on the floor lamp in the living room", &second);

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("test-output/web");
    let ws = format!("ws://127.0.0.1:{}/mqtt", home.broker.ws_port());
    let restart = dir.join("restart-endpoint");
    let browser_done = AtomicBool::new(false);
    let url = home.url();
    let (lines, first_endpoint) = std::thread::scope(|scope| {
        // When the page asks (the file appears), the endpoint is stopped (its calls end with
        // `shutdown`) and a new one started; the file goes once it is ready.
        let restarter = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(240);
            while !restart.exists() {
                if browser_done.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut guard = endpoint.lock().unwrap();
            guard.process.interrupt();
            let old = std::mem::replace(
                &mut *guard,
                MediaEndpoint::start(&home.broker, &url, MEDIA_TOKEN, &[]),
            );
            let _ = std::fs::remove_file(&restart);
            Some(old)
        });
        let lines = browser_steps(
            "webrtc.mjs",
            &[
                &url,
                &ws,
                &out.display().to_string(),
                &mic.display().to_string(),
                &mic_ms.to_string(),
                OWNER_TOKEN,
                &first.display().to_string(),
                &second.display().to_string(),
                &restart.display().to_string(),
            ],
            Duration::from_secs(240),
            || {
                let log = endpoint.try_lock().map(|m| m.log()).unwrap_or_default();
                format!("{}\nendpoint log:\n{log}", home.worker.log())
            },
        );
        browser_done.store(true, Ordering::Relaxed);
        (lines, restarter.join().unwrap())
    });
    let mut media = first_endpoint.expect("the page never asked for the endpoint's restart");
    let mut restarted = endpoint.into_inner().unwrap();

    // 1. WebRTC is the page's default, the call connects, and the command is carried out.
    let tab = step(&lines, "webrtc_voice_on_the_device_page");
    assert_eq!(tab["transport"], "webrtc", "{tab}");
    assert!(
        tab["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kitchen lamp"),
        "{tab}"
    );
    assert_eq!(tab["answer"], "Kitchen lamp is on.", "{tab}");
    assert_eq!(tab["link"], "WebRTC: connected", "{tab}");
    assert_eq!(tab["voice_error"], "", "{tab}");
    // The answer arrived as audio on the call's track: at least 300 ms of it.
    assert!(tab["audio_ms"].as_u64().unwrap() > 300, "{tab}");
    assert_eq!(tab["voice_sockets"], serde_json::json!([]), "{tab}");
    // The endpoint carried the call, and the tab's hang-up ended it with nothing left.
    let ended = media.wait_ended("tab-call", 1);
    assert!(hung_up(&ended), "{ended}");
    assert_eq!(ended["active_calls"], 0, "{ended}");
    assert!(
        ended["packets_in"].as_u64().unwrap() > 100,
        "the tab's microphone did not reach the endpoint: {ended}"
    );

    // 2. Barge-in over WebRTC: the second utterance, spoken while the answer to the first
    //    plays, stops it (`tts_terminate`) and is itself heard and answered in the same call.
    let barge = step(&lines, "barge_in_over_webrtc");
    assert!(
        barge["first_transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kitchen lamp"),
        "{barge}"
    );
    assert_eq!(barge["terminated"], 1, "{barge}");
    assert_eq!(barge["link_at_cut"], "WebRTC: connected", "{barge}");
    assert!(
        !barge["transcript"].as_str().unwrap().is_empty(),
        "the barge-in's utterance was not heard: {barge}"
    );
    assert_eq!(barge["voice_sockets"], serde_json::json!([]), "{barge}");
    // The barge-in's utterance was carried out (the living room lamp on).
    assert_eq!(home.sim.wait_tool_calls("living-lamp", "set_power", 1), 1);
    let ended = media.wait_ended("tab-barge", 1);
    assert!(hung_up(&ended), "{ended}");
    assert_eq!(ended["active_calls"], 0, "{ended}");
    assert!(out.join("device-webrtc.png").exists());

    // 3. The endpoint restarts under a connected call: the page shows the drop, calls again
    //    by itself, and the new call carries a spoken turn.
    let redial = step(&lines, "the_call_is_made_again_after_the_endpoint_restarts");
    assert!(
        redial["link_dropped"]
            .as_str()
            .unwrap()
            .contains("calling again (1 of 3)"),
        "{redial}"
    );
    assert_eq!(redial["phase_dropped"], "connecting", "{redial}");
    assert_eq!(redial["link"], "WebRTC: connected", "{redial}");
    assert!(
        redial["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kitchen lamp"),
        "{redial}"
    );
    assert_eq!(
        redial["voice_error"], "",
        "the drop's error outlived the new call: {redial}"
    );
    assert_eq!(redial["voice_sockets"], serde_json::json!([]), "{redial}");
    let ended = media.wait_ended("tab-redial", 1);
    assert!(
        ended["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("shutdown"),
        "{ended}"
    );
    let ended = restarted.wait_ended("tab-redial", 1);
    assert!(hung_up(&ended), "{ended}");
    assert_eq!(ended["active_calls"], 0, "{ended}");
    // Every spoken command reached the kitchen lamp once: on (1), off before the barge-in
    // cut its spoken answer (2), and off again over the call made again (3).
    assert_eq!(home.sim.wait_tool_calls("kitchen-lamp", "set_power", 3), 3);
}
