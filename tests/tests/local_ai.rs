//! The local AI server through the test harness: espeak-ng speech, rendered to the voice loop's
//! 16 kHz mono WAV, comes back as the words that were spoken; the server's own speech is a WAV
//! that axon-core reads.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use axon_core::media::audio::{level_dbfs, wav_decode};
use axon_tests::local_ai::espeak_wav;
use axon_tests::LocalAi;

fn words(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_harness_serves_speech_to_text_and_text_to_speech() {
    let ai = LocalAi::start();
    assert_eq!(ai.base_url(), format!("http://127.0.0.1:{}/v1", ai.port()));
    let health = ai.health();
    assert_eq!(health["asr"]["model"], "tiny.en", "{health}");

    let path = std::env::temp_dir().join(format!("axon-local-ai-{}.wav", std::process::id()));
    let wav = espeak_wav("turn on the kitchen lamp", &path);
    let decoded = wav_decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(decoded.sample_rate, 16_000);
    assert!(
        decoded.samples.len() > 16_000,
        "{} samples",
        decoded.samples.len()
    );

    let (status, answer) = ai.transcribe(&wav);
    assert_eq!(status, 200, "{answer}\n{}", ai.log());
    let heard = words(answer["text"].as_str().unwrap_or_default());
    assert!(heard.contains("kitchen lamp"), "heard {heard:?}");

    let (status, speech) = ai.speech("The kitchen lamp is on.");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&speech));
    let spoken = wav_decode(&speech).unwrap();
    assert_eq!(spoken.sample_rate, 22_050);
    assert!(spoken.samples.len() > 22_050 / 3);
    assert!(level_dbfs(&spoken.samples) > -35.0);
    assert!(ai.log().contains("POST /v1/audio/transcriptions 200"));
    let _ = std::fs::remove_file(path);
}
