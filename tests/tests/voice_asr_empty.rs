//! An utterance with no words in it (a push-to-talk press held over silence, which ASR returns
//! empty for) gets `error` `asr_empty` and a spoken re-prompt (docs/voice.md §1.3); no agent
//! turn runs, and the next utterance is answered as usual.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::voice_home::{runtime, speech, VoiceHome};
use device_sim::voice::{Mode, TurnEnd, VoiceSession};

#[test]
fn nothing_understood_is_asr_empty_and_a_spoken_reprompt() {
    let mut home = VoiceHome::start();
    let words = speech("turn on the kitchen lamp");
    let mut opts = home.options("voice-asr-empty");
    opts.mode = Mode::PushToTalk;
    let rt = runtime();
    rt.block_on(async {
        let mut s = VoiceSession::connect(&opts).await.unwrap();
        // A second of the press with nothing said.
        let t = s
            .turn(vec![0; 16_000], Duration::from_secs(60), &mut |_| {})
            .await
            .unwrap();
        let codes: Vec<_> = t.errors().iter().map(|e| e["code"].clone()).collect();
        assert_eq!(codes, ["asr_empty"], "{:?}", t.events);
        let sentence = t.event("tts_sentence").unwrap();
        assert!(
            sentence["text"]
                .as_str()
                .unwrap()
                .starts_with("Sorry, I didn't catch that"),
            "{sentence}"
        );
        assert!(t.audio_ms() > 300, "the re-prompt is spoken");
        assert!(t.event("tool_started").is_none() && t.event("answer").is_none());
        assert_eq!(t.end, TurnEnd::Timings, "{:?}", t.events);

        // Then a real utterance works as usual.
        let t = s
            .turn(words, Duration::from_secs(60), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(t.end, TurnEnd::Timings, "{:?}", t.events);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        assert_eq!(t.event("answer").unwrap()["text"], "Kitchen lamp is on.");
        s.close().await;
    });
    assert_eq!(home.sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);
}
