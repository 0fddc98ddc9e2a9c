//! Binary messages that are not whole 10 ms of s16le (an odd length) or are over 1 s are
//! dropped with `error` `bad_frame` (docs/voice.md §1.1), and the session goes on: a spoken
//! turn right after them is answered as usual.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::voice_home::{runtime, speech, VoiceHome};
use device_sim::voice::{Inbound, TurnEnd, VoiceSession};

#[test]
fn garbage_frames_get_bad_frame_and_the_session_goes_on() {
    let mut home = VoiceHome::start();
    let words = speech("turn on the kitchen lamp");
    let opts = home.options("voice-bad-frame");
    let rt = runtime();
    rt.block_on(async {
        let mut s = VoiceSession::connect(&opts).await.unwrap();
        let mut seen = Vec::new();
        for garbage in [vec![0x55u8; 641], vec![7u8; 1], vec![0u8; 32_320]] {
            let len = garbage.len();
            s.send_binary(garbage);
            let e = s
                .wait_for(Duration::from_secs(10), &mut seen, |i| {
                    i.kind() == Some("error")
                })
                .await
                .unwrap_or_else(|| panic!("no error for a {len}-byte frame; saw {seen:?}"));
            let Inbound::Json(e) = &e.msg else {
                unreachable!()
            };
            assert_eq!(e["code"], "bad_frame", "{len} bytes: {e}");
            assert!(
                e["message"].as_str().unwrap().contains(&len.to_string()),
                "the message names the size: {e}"
            );
        }
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
