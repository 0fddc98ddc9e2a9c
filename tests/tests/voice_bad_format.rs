//! A `start` with the wrong sample rate gets `error` `bad_format` (docs/voice.md §1.2), and the
//! audio is refused until a good one; the session is not lost: a correct `start` follows, and a spoken turn is answered as usual.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::voice_home::{runtime, speech, VoiceHome};
use device_sim::voice::{start_message, Inbound, TurnEnd, VoiceSession};

#[test]
fn a_wrong_sample_rate_is_refused_and_a_right_one_then_works() {
    let mut home = VoiceHome::start();
    let words = speech("turn on the kitchen lamp");
    let mut opts = home.options("voice-bad-format");
    // The client states the format itself, and sends no audio until it is right.
    opts.send_start = false;
    opts.idle_audio = false;
    let rt = runtime();
    rt.block_on(async {
        let mut s = VoiceSession::connect(&opts).await.unwrap();
        let mut seen = Vec::new();
        s.send_json(&start_message(44_100));
        let e = s
            .wait_for(Duration::from_secs(10), &mut seen, |i| {
                i.kind() == Some("error")
            })
            .await
            .unwrap_or_else(|| panic!("no error for a 44.1 kHz start; saw {seen:?}"));
        let Inbound::Json(e) = &e.msg else {
            unreachable!()
        };
        assert_eq!(e["code"], "bad_format", "{e}");
        assert!(e["message"].as_str().unwrap().contains("44100"), "{e}");
        // Audio is refused until a start with the right format.
        s.send_binary(vec![0u8; 640]);
        let e = s
            .wait_for(Duration::from_secs(10), &mut seen, |i| {
                i.kind() == Some("error")
            })
            .await
            .unwrap_or_else(|| panic!("no error for audio after a bad start; saw {seen:?}"));
        let Inbound::Json(e) = &e.msg else {
            unreachable!()
        };
        assert_eq!(e["code"], "bad_format", "{e}");

        s.send_json(&start_message(16_000));
        s.set_idle_audio(true);
        let t = s
            .turn(words, Duration::from_secs(60), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(t.end, TurnEnd::Timings, "{:?}", t.events);
        assert!(t.errors().is_empty(), "{:?}", t.errors());
        assert_eq!(t.event("answer").unwrap()["text"], "Kitchen lamp is on.");
        assert!(t.audio_ms() > 300);
        s.close().await;
    });
    assert_eq!(home.sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);
}
