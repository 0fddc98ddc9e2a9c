//! A spoken command, end to end through `axon-device-sim say` (the board's voice client)
//! against the real Hub under `wrangler dev`, the local AI server (faster-whisper, piper) and the
//! demo home: espeak-ng's "turn on the kitchen lamp" turns the kitchen lamp on, the turn is
//! transcribed and answered in speech, the answer is written as a WAV, and the Hub reports the
//! turn's stage timings (docs/voice.md §1.4).

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::process::Command;

use axon_tests::local_ai::espeak_wav;
use axon_tests::voice_home::{temp_dir, VoiceHome, TIMING_FIELDS};
use serde_json::{json, Value};

#[test]
fn a_spoken_command_turns_the_kitchen_lamp_on_and_is_answered_in_speech() {
    // A silence long enough that the early transcript (at the 200 ms pause) is always back
    // before it ends, even on a loaded machine: the semantic endpoint, not the silence, must end
    // a whole command.
    let mut home = VoiceHome::start_with_vars(&[("AXON_VAD_SILENCE_MS", "1500")]);
    let dir = temp_dir("turn");
    let (wav, out) = (dir.join("in.wav"), dir.join("answer.wav"));
    espeak_wav("turn on the kitchen lamp", &wav);

    // The board says the WAV; `out` keeps the answer's audio.
    let say = |home: &VoiceHome, out: &[&std::path::Path]| {
        Command::new(axon_tests::device_sim::binary())
            .arg("say")
            .env("AXON_API_TOKEN", home.owner_token())
            .args(["--worker", &home.url(), "--device", "living-speaker"])
            .args(["--user", "voice-turn", "--timeout-s", "60"])
            .arg("--wav")
            .arg(&wav)
            .args(
                out.iter()
                    .flat_map(|o| [std::ffi::OsStr::new("--out"), o.as_os_str()]),
            )
            .output()
            .unwrap()
    };
    let run = say(&home, &[&out]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let context = || {
        format!(
            "say: {}\nstdout:\n{stdout}\nstderr:\n{}\nwrangler:\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr),
            home.worker.log()
        )
    };
    assert!(run.status.success(), "{}", context());
    let find = |kind: &str| {
        lines
            .iter()
            .find(|l| l["type"] == kind || l["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} line; {}", context()))
    };

    assert_eq!(find("ready")["sample_rate"], 16_000);
    let transcript = find("transcript")["text"].as_str().unwrap().to_lowercase();
    assert!(transcript.contains("kitchen lamp"), "{transcript}");
    let started = find("tool_started");
    assert_eq!(
        (&started["device"], &started["tool"], &started["arguments"]),
        (
            &json!("kitchen-lamp"),
            &json!("set_power"),
            &json!({"on": true})
        )
    );
    assert_eq!(find("answer")["text"], "Kitchen lamp is on.");
    assert!(lines.iter().all(|l| l["type"] != "error"), "{}", context());

    // The answer audio: announced, received, saved.
    let complete = find("tts_complete");
    assert!(complete["audio_ms"].as_u64().unwrap() > 0, "{complete}");
    let said = find("said");
    let audio_ms = said["audio_ms"].as_u64().unwrap();
    assert!(audio_ms > 300, "{said}");
    assert_eq!(said["end"], "timings", "{said}");
    let answer = axon_core::media::audio::wav_decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(answer.sample_rate, 16_000);
    assert_eq!(answer.samples.len() as u64 * 1000 / 16_000, audio_ms);
    assert!(
        axon_core::media::audio::level_dbfs(&answer.samples) > -50.0,
        "speech, not silence"
    );

    // The Hub's stage timings, each a number of milliseconds.
    let timings = find("timings");
    for field in TIMING_FIELDS {
        assert!(timings[field].is_u64(), "{field} in {timings}");
    }
    assert_eq!(
        timings["end_of_speech_to_first_audio_ms"].as_u64(),
        Some(
            timings["endpoint_ms"].as_u64().unwrap() + timings["first_audio_ms"].as_u64().unwrap()
        )
    );
    println!(
        "end of speech → first answer audio: {} ms at the client, {} ms by the Hub ({timings})",
        said["speech_end_to_first_audio_ms"], timings["end_of_speech_to_first_audio_ms"]
    );
    // A whole command ended at the pause (docs/voice.md §1.4), not after the 1.5 s silence.
    assert_eq!(timings["endpoint"], "semantic", "{timings}");
    assert!(timings["endpoint_ms"].as_u64().unwrap() < 1500, "{timings}");
    assert_eq!(
        timings["tts_cached"], false,
        "the first answer is synthesised: {timings}"
    );

    // The lamp itself is on.
    assert_eq!(home.sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);
    let (_, state) = home
        .worker
        .post("/api/devices/kitchen-lamp/tools/get_state", "");
    assert_eq!(state["structuredContent"]["on"], true, "{state}");

    // The same command again: the same answer, its speech from the Hub's cache.
    let again = say(&home, &[]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    let line = |kind: &str| {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["type"] == kind || l["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} line: {stdout}"))
    };
    assert_eq!(line("answer")["text"], "Kitchen lamp is on.");
    assert_eq!(line("timings")["tts_cached"], true, "{stdout}");
    assert!(line("said")["audio_ms"].as_u64().unwrap() > 300, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
