//! Barge-in (docs/voice.md §1.5): speech from the device while the answer is still playing
//! stops it. The client starts a second utterance 300 ms into playing the first answer (played
//! time counted from the audio it received, in real time); the Hub sends `tts_terminate` with
//! `barge_in`, the goal being within 200 ms of that speech's start as the client sent it; then
//! the second utterance is answered, and the session takes a third turn as usual.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::time::Duration;

use axon_tests::voice_home::{runtime, speech, VoiceHome};
use device_sim::voice::{signed_ms, turn_of, Inbound, TurnEnd, VoiceSession};
use tokio::time::Instant;

/// The contract's goal; a loaded test machine gets some slack before the test fails, and the
/// figure is printed either way.
const GOAL_MS: f64 = 200.0;
const LIMIT_MS: f64 = 400.0;

#[test]
fn speech_during_the_answer_stops_it_and_becomes_the_next_turn() {
    let mut home = VoiceHome::start();
    let (on, off) = (
        speech("turn on the kitchen lamp"),
        speech("turn off the kitchen lamp"),
    );
    let rt = runtime();
    let opts = home.options("voice-barge-in");
    let log = || home.worker.log();
    rt.block_on(async {
        let mut s = VoiceSession::connect(&opts).await.unwrap();
        let mut seen = Vec::new();
        let _first = s.speak(on.clone());
        let audio = s
            .wait_for(Duration::from_secs(60), &mut seen, |i| {
                matches!(i.msg, Inbound::Audio(_))
            })
            .await
            .unwrap_or_else(|| panic!("no answer audio; saw {seen:?}\n{}", log()));
        let first_turn = turn_of(&seen, "transcript")
            .expect("a transcript with a turn id before the answer audio");

        // 300 ms into the answer, while the speaker still plays it, the person speaks again.
        let barge_at = audio.at + Duration::from_millis(300);
        while Instant::now() < barge_at {
            s.next(barge_at).await.into_iter().for_each(|i| seen.push(i));
        }
        assert!(
            s.playing(Instant::now()),
            "the answer is longer than 300 ms, so it is still playing"
        );
        let second = s.speak(off.clone());
        let terminate = s
            .wait_for(Duration::from_secs(10), &mut seen, |i| {
                i.kind() == Some("tts_terminate")
            })
            .await
            .unwrap_or_else(|| panic!("no tts_terminate; saw {seen:?}\n{}", log()));
        let Inbound::Json(t) = &terminate.msg else {
            unreachable!()
        };
        assert_eq!(t["reason"], "barge_in", "{t}");
        assert_eq!(t["turn"], first_turn.as_str(), "{t}");
        assert!(!s.playing(terminate.at), "the speaker stopped at once");
        let sent = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .unwrap()
            .unwrap();
        let delay = signed_ms(terminate.at, sent.speech_start);
        println!(
            "barge-in: tts_terminate {delay:.0} ms after the second utterance's speech started (goal ≤ {GOAL_MS} ms)"
        );
        assert!(
            delay > 0.0 && delay <= LIMIT_MS,
            "tts_terminate {delay:.0} ms after the speech started"
        );

        // The second utterance is the next turn: transcribed, the lamp switched off, answered.
        let done = s
            .wait_for(Duration::from_secs(60), &mut seen, |i| {
                i.kind() == Some("timings")
                    && matches!(&i.msg, Inbound::Json(v) if v["turn"] != first_turn.as_str())
            })
            .await
            .unwrap_or_else(|| panic!("the second turn had no timings; saw {seen:?}"));
        let Inbound::Json(timings) = &done.msg else {
            unreachable!()
        };
        let second_turn = timings["turn"].as_str().unwrap().to_string();
        let of_second = |kind: &str| {
            seen.iter().find_map(|i| match &i.msg {
                Inbound::Json(v) if v["type"] == kind && v["turn"] == second_turn.as_str() => {
                    Some(v.clone())
                }
                _ => None,
            })
        };
        let transcript = of_second("transcript").unwrap();
        assert!(
            transcript["text"].as_str().unwrap().to_lowercase().contains("off"),
            "{transcript}"
        );
        assert!(of_second("tts_complete").is_some(), "the second answer was spoken");
        let answers: Vec<_> = seen
            .iter()
            .filter_map(|i| match &i.msg {
                Inbound::Json(v) if v["type"] == "answer" => v["text"].as_str(),
                _ => None,
            })
            .collect();
        assert_eq!(answers, ["Kitchen lamp is on.", "Kitchen lamp is off."]);

        // Still usable: a third turn as usual.
        s.play_out(Instant::now() + Duration::from_secs(10), &mut |_| {})
            .await;
        let third = s
            .turn(on.clone(), Duration::from_secs(60), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(third.end, TurnEnd::Timings, "{:?}", third.events);
        assert!(third.audio_ms() > 300);
        assert!(third.errors().is_empty(), "{:?}", third.errors());
        s.close().await;
    });
    // The first turn's tool call was not undone; the second and third ran too.
    assert_eq!(home.sim.wait_tool_calls("kitchen-lamp", "set_power", 3), 3);
}
