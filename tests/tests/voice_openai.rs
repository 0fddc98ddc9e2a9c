//! A voice session on `/api/voice` with the `openai` ASR and TTS providers: the worker's real
//! client code against a local server that speaks OpenAI's audio wire format
//! (`tests/interop/speech_server.py`), the demo home on real Mosquitto, under `wrangler dev`.
//! Speech → endpoint → transcription → agent turn → the lamp acts → each sentence spoken →
//! 16 kHz audio back; bad frames and formats are refused without ending the session.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::voice::{silence, tone};
use axon_tests::voice_home::TIMING_FIELDS;
use axon_tests::{Broker, DeviceSim, Peer, VoiceClient, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn speech_turns_on_the_lamp_and_the_answer_comes_back_as_audio() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
    let (mut speech, base) = Peer::spawn_server(
        "speech_server.py",
        &["--heard", "Turn on the kitchen lamp.", "[BLANK_AUDIO]"],
    );
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_ASR", "openai"),
            ("AXON_TTS", "openai"),
            ("AXON_ASR_BASE_URL", &base),
            ("AXON_TTS_BASE_URL", &base),
            ("AXON_ASR_API_KEY", "sk-test"),
            ("AXON_TTS_API_KEY", "sk-test"),
            ("AXON_TTS_VOICE", "nova"),
        ],
    );
    let health = worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    assert_eq!(health["asr"]["provider"], "openai");
    assert_eq!(health["tts"]["url"], base.as_str());

    let mut voice = VoiceClient::connect(worker.port(), "user=ada&device=kitchen-speaker");
    let ready = voice.wait_kind("ready", WAIT);
    assert_eq!(ready["sample_rate"], 16000);
    assert_eq!(
        (ready["asr"].as_str(), ready["tts"].as_str()),
        (Some("openai"), Some("openai"))
    );
    assert_eq!(ready["silence_ms"], 400);

    // Bad input first: the session refuses it and goes on.
    voice.send_bytes(&[0u8; 333]);
    let err = voice.wait_kind("error", WAIT);
    assert_eq!(err["code"], "bad_frame");
    voice.send_json(&json!({"type": "start", "format": "s16le", "sample_rate": 44100}));
    let err = voice.wait_kind("error", WAIT);
    assert_eq!(err["code"], "bad_format");
    assert!(err["message"].as_str().unwrap().contains("44100"), "{err}");
    voice.send_json(
        &json!({"type": "start", "format": "s16le", "sample_rate": 16000, "channels": 1}),
    );
    voice.send_json(&json!({"type": "sing"}));
    assert_eq!(voice.wait_kind("error", WAIT)["code"], "bad_message");

    // An utterance: 1.2 s of "speech", then silence until the endpoint.
    let mut audio = silence(300);
    audio.extend(tone(1200));
    audio.extend(silence(600));
    voice.send_audio(&audio, false);
    let ended = voice.wait_kind("speech_ended", WAIT);
    assert!(
        (1100..=1300).contains(&ended["speech_ms"].as_u64().unwrap()),
        "{ended}"
    );
    let heard = voice.wait_kind("transcript", WAIT);
    assert_eq!(heard["text"], "Turn on the kitchen lamp.");
    let turn = heard["turn"].as_str().unwrap().to_string();
    let started = voice.wait_kind("tool_started", WAIT);
    assert_eq!(
        (started["device"].as_str(), started["tool"].as_str()),
        (Some("kitchen-lamp"), Some("set_power"))
    );
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);
    let spoken = voice.wait_kind("tts_sentence", WAIT);
    let complete = voice.wait_kind("tts_complete", WAIT);
    assert_eq!(complete["turn"], turn.as_str());
    let timings = voice.wait_kind("timings", WAIT);
    for field in TIMING_FIELDS {
        assert!(timings[field].is_u64(), "{field} missing in {timings}");
    }
    // The fake ASR answers the early transcription (at the 200 ms pause) at once, and "Turn on
    // the kitchen lamp." is a whole command: the semantic endpoint ends it before the 400 ms
    // silence does (docs/voice.md §1.4), unless a loaded machine delays that answer.
    match timings["endpoint"].as_str() {
        Some("semantic") => assert!(
            (200..400).contains(&timings["endpoint_ms"].as_u64().unwrap()),
            "{timings}"
        ),
        Some("silence") => assert_eq!(timings["endpoint_ms"], 400, "{timings}"),
        other => panic!("endpoint {other:?} in {timings}"),
    }

    // What the providers were sent: a 16 kHz mono WAV of the utterance in a multipart form
    // with the model, and each sentence as JSON with the voice; the 24 kHz answer came back
    // resampled to 16 kHz (50 ms per character).
    let asr = speech.wait_for(WAIT, |v| v["request"] == "transcription");
    assert_eq!(
        (asr["model"].as_str(), asr["language"].as_str()),
        (Some("whisper-1"), Some("en"))
    );
    // The home's words, so that Whisper hears "thermostat", not "Thermists".
    let prompt = asr["prompt"].as_str().unwrap_or_default();
    assert!(
        prompt.contains("kitchen lamp") && prompt.contains("Set the bedroom thermostat to 21."),
        "ASR prompt: {prompt:?}"
    );
    assert_eq!(
        (asr["rate"].as_u64(), asr["channels"].as_u64()),
        (Some(16000), Some(1))
    );
    let ms = asr["ms"].as_u64().unwrap();
    assert!(
        (1500..=1900).contains(&ms),
        "the utterance sent was {ms} ms"
    );
    let tts = speech.wait_for(WAIT, |v| v["request"] == "speech");
    assert_eq!(
        (tts["model"].as_str(), tts["voice"].as_str()),
        (Some("tts-1"), Some("nova"))
    );
    assert_eq!(tts["input"], spoken["text"]);
    let chars: usize = voice
        .texts("tts_sentence")
        .iter()
        .map(|s| s["text"].as_str().unwrap().chars().count())
        .sum();
    let expected_bytes = chars * 50 * 16 * 2;
    let got = voice.audio_bytes();
    assert!(
        got.abs_diff(expected_bytes) <= 64 * voice.texts("tts_sentence").len(),
        "audio {got} B, expected {expected_bytes} B"
    );
    assert_eq!(complete["audio_ms"].as_u64().unwrap() as usize, got / 32);

    // Nothing understood: an error and a spoken re-prompt, and the session still works.
    voice.send_audio(&tone(600), false);
    voice.send_audio(&silence(600), false);
    let err = voice.wait_kind("error", WAIT);
    assert_eq!(err["code"], "asr_empty");
    let reprompt = voice.wait_kind("tts_sentence", WAIT);
    assert!(
        reprompt["text"].as_str().unwrap().starts_with("Sorry"),
        "{reprompt}"
    );

    // A typed turn in the same session is answered in speech too.
    voice.send_json(&json!({"type": "text", "text": "turn off the kitchen lamp"}));
    voice.wait_for(WAIT, |m| m.kind() == "tool_finished");
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 2), 2);
    voice.wait_kind("tts_complete", WAIT);

    // A plain GET is told to upgrade.
    let (status, _) = worker.get("/api/voice");
    assert_eq!(status, 426);
}
