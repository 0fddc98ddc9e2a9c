//! Benchmark of the voice loop on loopback, against the real parts it starts itself (Mosquitto,
//! the demo home in device-sim, the local AI server, `wrangler dev` with `AXON_ASR=local`,
//! `AXON_TTS=local`): spoken commands rendered by espeak-ng, streamed by device-sim's voice
//! client in 20 ms frames at real-time pace, one turn after another in one session.
//!
//! Measured at the client: the frame carrying the utterance's last voiced sample sent → the
//! first answer audio received. From the Hub's `timings` (docs/voice.md §1.4): each stage, and
//! its share of the Hub's own end of speech → first audio.
//!
//! Then barge-in: 300 ms into an answer the client speaks again; measured from the frame with
//! that speech's first voiced sample sent → `tts_terminate` received (goal ≤ 200 ms).
//!
//! Prints a table. Usage: `cargo run --release -p axon-tests --bin bench-voice -- [--utterances N]
//! [--warmup N] [--barge-ins N]` (build `device-sim` first: `cargo build --release -p device-sim --bins`; needs
//! `scripts/setup.sh` and `scripts/setup-local-ai.sh`).

#![allow(clippy::unwrap_used)] // a benchmark run fails loudly

use std::time::Duration;

use axon_tests::voice_home::{runtime, speech, VoiceHome};
use device_sim::voice::{signed_ms, turn_of, Inbound, TurnEnd, VoiceSession};
use serde_json::Value;
use tokio::time::Instant;

/// Commands the offline planner carries out, in turn.
const COMMANDS: [&str; 5] = [
    "turn on the kitchen lamp",
    "turn off the kitchen lamp",
    "switch on the living room light",
    "set the bedroom thermostat to 21",
    "what is the temperature in the hall",
];

/// The Hub's stages, in the order they happen.
const STAGES: [(&str, &str); 6] = [
    ("endpoint_ms", "endpoint (the VAD's silence)"),
    ("asr_ms", "ASR (endpoint → transcript)"),
    ("llm_first_token_ms", "LLM first token (transcript →)"),
    ("first_tool_result_ms", "first tool result (transcript →)"),
    ("tts_first_audio_ms", "TTS first audio (sentence → audio)"),
    ("first_audio_ms", "endpoint → first audio sent"),
];

fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn cell(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0} ms"))
}

fn main() {
    let (mut utterances, mut warmup, mut barge_ins) = (20usize, COMMANDS.len(), 10usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--utterances" => utterances = number("--utterances").max(1),
            "--warmup" => warmup = number("--warmup"),
            "--barge-ins" => barge_ins = number("--barge-ins"),
            "-h" | "--help" => {
                println!(
                    "bench-voice [--utterances N (20)] [--warmup N (5: each command once)] [--barge-ins N (10)]: end of speech → first answer audio over /api/voice, and speech during an answer → tts_terminate"
                );
                return;
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    eprintln!("rendering speech, starting Mosquitto, the demo home, the local AI server and wrangler dev…");
    let speeches: Vec<Vec<i16>> = COMMANDS.iter().map(|c| speech(c)).collect();
    let home = VoiceHome::start();
    let rt = runtime();
    let mut opts = home.options("bench-voice");
    opts.device = Some("living-speaker".into());

    let mut client = Vec::new();
    let mut hub_total = Vec::new();
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut shares: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let (mut failed, mut tools) = (Vec::new(), 0usize);
    let (mut barges, mut barge_failed) = (Vec::new(), Vec::<String>::new());
    rt.block_on(async {
        let mut s = VoiceSession::connect(&opts).await.unwrap();
        eprintln!("{warmup} warm-up utterances, then {utterances} measured…");
        for i in 0..warmup + utterances {
            let k = i % COMMANDS.len();
            let t = s
                .turn(speeches[k].clone(), Duration::from_secs(60), &mut |_| {})
                .await
                .unwrap();
            let measured = i >= warmup;
            let heard = t
                .event("transcript")
                .and_then(|v| v["text"].as_str())
                .unwrap_or("")
                .to_string();
            let first = t.speech_end_to_first_audio_ms();
            eprintln!(
                "{}{:>2} {:?}: heard {heard:?}, {} ms of answer, first audio {} after the speech ended{}",
                if measured { "" } else { "warm-up " },
                i + 1,
                COMMANDS[k],
                t.audio_ms(),
                cell(first),
                if t.errors().is_empty() {
                    String::new()
                } else {
                    format!(", errors {:?}", t.errors())
                }
            );
            if !measured {
                continue;
            }
            let (Some(first), TurnEnd::Timings) = (first, &t.end) else {
                failed.push(format!("{:?}: {:?}", COMMANDS[k], t.end));
                continue;
            };
            if t.event("tool_finished").is_some() {
                tools += 1;
            }
            client.push(first);
            let timings = t.event("timings").cloned().unwrap_or(Value::Null);
            let total = timings["end_of_speech_to_first_audio_ms"].as_f64();
            if let Some(total) = total {
                hub_total.push(total);
            }
            for (j, (field, _)) in STAGES.iter().enumerate() {
                if let Some(v) = timings[*field].as_f64() {
                    stages[j].push(v);
                    if let Some(total) = total.filter(|t| *t > 0.0) {
                        shares[j].push(v / total * 100.0);
                    }
                }
            }
        }

        // Barge-in: the first command's answer is cut by the second command.
        for i in 0..barge_ins {
            let (a, b) = (&speeches[i % 2], &speeches[(i + 1) % 2]);
            let mut seen = Vec::new();
            let _first = s.speak(a.clone());
            let Some(audio) = s
                .wait_for(Duration::from_secs(60), &mut seen, |i| {
                    matches!(i.msg, Inbound::Audio(_))
                })
                .await
            else {
                barge_failed.push(format!("barge-in {}: no answer audio", i + 1));
                continue;
            };
            let at = audio.at + Duration::from_millis(300);
            while Instant::now() < at {
                s.next(at).await.into_iter().for_each(|i| seen.push(i));
            }
            let second = s.speak(b.clone());
            let terminate = s
                .wait_for(Duration::from_secs(10), &mut seen, |i| {
                    i.kind() == Some("tts_terminate")
                })
                .await;
            let sent = tokio::time::timeout(Duration::from_secs(10), second).await;
            match (terminate, sent) {
                (Some(t), Ok(Ok(sent))) => {
                    let ms = signed_ms(t.at, sent.speech_start);
                    eprintln!("barge-in {:>2}: tts_terminate {ms:.0} ms after the speech started", i + 1);
                    barges.push(ms);
                }
                _ => barge_failed.push(format!("barge-in {}: no tts_terminate", i + 1)),
            }
            // The second utterance's turn runs to its end and plays out before the next round.
            let first_turn = turn_of(&seen, "transcript");
            let _ = s
                .wait_for(Duration::from_secs(60), &mut seen, |i| {
                    i.kind() == Some("timings")
                        && matches!(&i.msg, Inbound::Json(v) if v["turn"].as_str() != first_turn.as_deref())
                })
                .await;
            if let Some(end) = s.playback_end() {
                tokio::time::sleep_until(end).await;
            }
            s.send(&axon_core::media::voice::ClientMessage::PlaybackDone);
        }
        s.close().await;
    });

    let client = sorted(client);
    println!();
    println!(
        "Voice loop on loopback (device-sim say client → wrangler dev → local AI: faster-whisper tiny.en, {}; offline planner), {} utterances after {warmup} warm-up, {} answered with a tool call",
        home.local_ai
            .as_ref()
            .map(|a| a.health()["tts"]["engine"].as_str().unwrap_or("?").to_string())
            .unwrap_or_default(),
        client.len(),
        tools
    );
    println!();
    println!("| measure | p50 | p90 | share of the Hub's total (p50) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| **end of speech → first answer audio, at the client** | **{}** | **{}** | |",
        cell(pct(&client, 0.5)),
        cell(pct(&client, 0.9))
    );
    let hub = sorted(hub_total);
    println!(
        "| Hub: end_of_speech_to_first_audio_ms | {} | {} | 100 % |",
        cell(pct(&hub, 0.5)),
        cell(pct(&hub, 0.9))
    );
    for (j, (field, name)) in STAGES.iter().enumerate() {
        let v = sorted(stages[j].clone());
        let share = sorted(shares[j].clone());
        println!(
            "| Hub: {name} `{field}` | {} | {} | {} |",
            cell(pct(&v, 0.5)),
            cell(pct(&v, 0.9)),
            pct(&share, 0.5).map_or("–".into(), |s| format!("{s:.0} %"))
        );
    }
    println!();
    let goal = 800.0;
    match pct(&client, 0.5) {
        Some(p50) => println!(
            "End of speech → first answer audio at the client: p50 {p50:.0} ms (goal ≤ {goal:.0} ms warm: {})",
            if p50 <= goal { "met" } else { "not met" }
        ),
        None => println!("No turn was answered in speech."),
    }
    if !failed.is_empty() {
        println!("{} turns without a spoken answer: {failed:?}", failed.len());
    }
    if barge_ins > 0 {
        let b = sorted(barges);
        println!();
        println!(
            "| barge-in ({} of {barge_ins}) | p50 | p90 | max |",
            b.len()
        );
        println!("|---|---:|---:|---:|");
        println!(
            "| speech start sent → `tts_terminate` received | {} | {} | {} |",
            cell(pct(&b, 0.5)),
            cell(pct(&b, 0.9)),
            cell(b.last().copied())
        );
        println!();
        match b.last() {
            Some(max) => println!(
                "Barge-in: max {max:.0} ms (goal ≤ 200 ms: {})",
                if *max <= 200.0 { "met" } else { "not met" }
            ),
            None => println!("No barge-in was measured."),
        }
        if !barge_failed.is_empty() {
            println!("{barge_failed:?}");
        }
    }
}
