//! The ASR provider down (`AXON_LOCAL_AI_URL` at a closed port): a spoken utterance gets
//! `error` `asr_failed` whose message names the URL, within a bounded time, instead of a hang
//! (docs/voice.md §1.3); the session stays open.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::voice_home::{closed_port, runtime, speech, VoiceHome};
use device_sim::voice::{signed_ms, TurnEnd, VoiceSession};

#[test]
fn a_closed_asr_port_is_an_asr_failed_error_naming_the_url() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let home = VoiceHome::start_with_ai_url(&url);
    let words = speech("turn on the kitchen lamp");
    let rt = runtime();
    rt.block_on(async {
        let mut s = VoiceSession::connect(&home.options("voice-asr-down"))
            .await
            .unwrap();
        let t = s
            .turn(words, Duration::from_secs(30), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(
            t.end,
            TurnEnd::Failed("asr_failed".into()),
            "{:?}\n{}",
            t.events,
            home.worker.log()
        );
        let e = t.errors()[0].clone();
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(t.event("transcript").is_none() && t.audio.is_empty());
        // Bounded: the failure comes soon after the utterance ended, not at some long timeout.
        let (failed_at, _) = t.events.iter().find(|(_, v)| v["type"] == "error").unwrap();
        let after = signed_ms(*failed_at, t.sent.unwrap().speech_end);
        println!("asr_failed {after:.0} ms after the end of the speech: {message}");
        assert!(after < 5_000.0, "{after} ms");
        // The session is still open and listening.
        let mut seen = Vec::new();
        s.send_json(&serde_json::json!({"type": "bogus"}));
        let e = s
            .wait_for(Duration::from_secs(5), &mut seen, |i| {
                i.kind() == Some("error")
            })
            .await
            .unwrap_or_else(|| panic!("the session stopped answering; saw {seen:?}"));
        assert!(
            matches!(&e.msg, device_sim::voice::Inbound::Json(v) if v["code"] == "bad_message")
        );
        s.close().await;
    });
}
