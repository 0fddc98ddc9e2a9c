//! Benchmark of the voice loop on loopback, against the real parts it starts itself (Mosquitto,
//! the demo home in device-sim, the local AI server, `wrangler dev` with `AXON_ASR=local`,
//! `AXON_TTS=local`): spoken commands rendered by espeak-ng, streamed by device-sim's voice
//! client in 20 ms frames at real-time pace, one turn after another in one session.
//!
//! Measured at the client: the frame carrying the utterance's last voiced sample sent → the
//! first answer audio received. From the Hub's `timings` (docs/voice.md §1.4): each stage, and
//! its share of the Hub's own end of speech → first audio.
//!
//! Three series in the same run, the Hub restarted between them: the baseline
//! (`AXON_VOICE_SEMANTIC_ENDPOINT=off`, `AXON_TTS_CACHE=off`: the VAD's full silence ends every
//! utterance, every sentence is synthesised), the semantic endpoint alone (answers synthesised
//! as if said for the first time), then both (the defaults); the table gives each measure in
//! each series and the ratio of the last to the baseline.
//!
//! Then the same commands over WebRTC (the defaults still on): the media endpoint (`axon-media`)
//! answers a board's call (`axon_media::board`, the code behind `say --webrtc`), one call per
//! utterance; measured at the board from its last speech frame sent to the first answer audio
//! decoded, beside the WebSocket series, with the endpoint's CPU per active call and its peak
//! memory growth over one call (from /proc).
//!
//! Then barge-in (with both on, over the WebSocket): 300 ms into an answer the client speaks again; measured from the frame with
//! that speech's first voiced sample sent → `tts_terminate` received (goal ≤ 200 ms).
//!
//! Prints a table. Usage: `cargo run --release -p axon-tests --bin bench-voice -- [--utterances N]
//! [--warmup N] [--barge-ins N]` (build `device-sim` first: `cargo build --release -p device-sim --bins`; needs
//! `scripts/setup.sh` and `scripts/setup-local-ai.sh`).

#![allow(clippy::unwrap_used)] // a benchmark run fails loudly

use std::time::Duration;

use axon_tests::voice_home::{runtime, speech, VoiceHome};
use device_sim::voice::VoiceOptions;
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
    (
        "endpoint_ms",
        "endpoint (silence, or the semantic endpoint)",
    ),
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

/// One measured series: `warmup` turns, then `utterances` measured, in one session.
#[derive(Default)]
struct Pass {
    client: Vec<f64>,
    hub_total: Vec<f64>,
    stages: Vec<Vec<f64>>,
    shares: Vec<Vec<f64>>,
    failed: Vec<String>,
    tools: usize,
    semantic: usize,
    cached: usize,
}

async fn pass(
    opts: &VoiceOptions,
    speeches: &[Vec<i16>],
    warmup: usize,
    utterances: usize,
) -> Pass {
    let mut p = Pass {
        stages: vec![Vec::new(); STAGES.len()],
        shares: vec![Vec::new(); STAGES.len()],
        ..Pass::default()
    };
    let mut s = VoiceSession::connect(opts).await.unwrap();
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
        let timings = t.event("timings").cloned().unwrap_or(Value::Null);
        eprintln!(
            "{}{:>2} {:?}: heard {heard:?}, {} ms of answer, first audio {} after the speech ended (endpoint {}{}){}",
            if measured { "" } else { "warm-up " },
            i + 1,
            COMMANDS[k],
            t.audio_ms(),
            cell(first),
            timings["endpoint"].as_str().unwrap_or("?"),
            if timings["tts_cached"] == true { ", cached speech" } else { "" },
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
            p.failed.push(format!("{:?}: {:?}", COMMANDS[k], t.end));
            continue;
        };
        if t.event("tool_finished").is_some() {
            p.tools += 1;
        }
        p.semantic += usize::from(timings["endpoint"] == "semantic");
        p.cached += usize::from(timings["tts_cached"] == true);
        p.client.push(first);
        let total = timings["end_of_speech_to_first_audio_ms"].as_f64();
        if let Some(total) = total {
            p.hub_total.push(total);
        }
        for (j, (field, _)) in STAGES.iter().enumerate() {
            if let Some(v) = timings[*field].as_f64() {
                p.stages[j].push(v);
                if let Some(total) = total.filter(|t| *t > 0.0) {
                    p.shares[j].push(v / total * 100.0);
                }
            }
        }
    }
    s.close().await;
    p
}

const MEDIA_TOKEN: &str = "bench-voice-media-token-6f1e0c";

#[derive(Default)]
struct WebRtcPass {
    client: Vec<f64>,
    connect: Vec<f64>,
    failed: Vec<String>,
    calls: usize,
    cpu_percent: f64,
    peak_growth_kb: i64,
    barge_ins: Vec<f64>,
    after_terminate: Vec<f64>,
}

use axon_media::usage::{cpu_seconds, memory_kb};

fn webrtc_series(
    home: &VoiceHome,
    speeches: &[Vec<i16>],
    warmup: usize,
    utterances: usize,
    barge_ins: usize,
) -> WebRtcPass {
    use axon_media::board::say;
    let media =
        axon_tests::media::MediaEndpoint::start(&home.broker, &home.url(), MEDIA_TOKEN, &[]);
    let pid = media.process.pid().expect("axon-media runs");
    let account = home.broker.provision_device("bench-board", "home");
    let o = axon_tests::media::board_options(&home.broker, "bench-board", &account);
    let mut p = WebRtcPass::default();
    let rt = runtime();
    let rss_before = memory_kb(pid, "VmRSS");
    let (mut cpu, mut busy) = (0.0, Duration::ZERO);
    for i in 0..warmup + utterances {
        let k = i % COMMANDS.len();
        // Up to the last voiced sample, as the WebSocket client measures from it.
        let end =
            device_sim::voice::speech_span(&speeches[k]).map_or(speeches[k].len(), |(_, e)| e);
        let (cpu0, t0) = (cpu_seconds(pid), std::time::Instant::now());
        let r = rt.block_on(say(&o, &speeches[k][..end], &mut |_| {}));
        if i == 0 {
            p.peak_growth_kb = memory_kb(pid, "VmHWM") - rss_before;
        }
        let measured = i >= warmup;
        match r {
            Ok(x) => {
                eprintln!(
                    "{}{:>2} {:?} over WebRTC: heard {:?}, {} ms of answer, first audio {} ms after the speech ended",
                    if measured { "" } else { "warm-up " },
                    i + 1,
                    COMMANDS[k],
                    x.transcript().unwrap_or(""),
                    x.answer.len() / 16,
                    x.speech_end_to_first_audio_ms.map_or("–".into(), |m| m.to_string())
                );
                if !measured {
                    continue;
                }
                cpu += cpu_seconds(pid) - cpu0;
                busy += t0.elapsed();
                p.calls += 1;
                match x.speech_end_to_first_audio_ms {
                    Some(ms) if !x.answer.is_empty() => p.client.push(ms as f64),
                    _ => p.failed.push(format!("{:?}: no answer audio", COMMANDS[k])),
                }
                if let Some(c) = x.connect_ms {
                    p.connect.push(c as f64);
                }
            }
            Err(e) if measured => p.failed.push(format!("{:?}: {e}", COMMANDS[k])),
            Err(e) => eprintln!("warm-up call failed: {e}"),
        }
    }
    p.cpu_percent = if busy.is_zero() {
        0.0
    } else {
        cpu / busy.as_secs_f64() * 100.0
    };
    // Barge-in over WebRTC: 300 ms into the temperature answer (the longest), the first
    // command (measured from its first voiced sample, as over the WebSocket).
    let mut b = o.clone();
    b.barge_in = Some((Duration::from_millis(300), speeches[0].clone()));
    for i in 0..barge_ins {
        match rt.block_on(say(&b, &speeches[4], &mut |_| {})) {
            Ok(x) => match x.barge_in_ms {
                Some(ms) => {
                    eprintln!("barge-in {:>2} over WebRTC: tts_terminate {ms} ms after the speech started; {} ms of the cut answer played after it", i + 1, x.audio_after_terminate_ms);
                    p.barge_ins.push(ms as f64);
                    p.after_terminate.push(x.audio_after_terminate_ms as f64);
                }
                None => p
                    .failed
                    .push(format!("barge-in {}: no tts_terminate", i + 1)),
            },
            Err(e) => p.failed.push(format!("barge-in {}: {e}", i + 1)),
        }
    }
    p
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
    // The baseline first: the VAD's full silence ends every utterance, every sentence is
    // synthesised. Then the same Hub restarted with both on (their defaults).
    let mut home = VoiceHome::start_with_vars(&[
        ("AXON_VOICE_SEMANTIC_ENDPOINT", "off"),
        ("AXON_TTS_CACHE", "off"),
        ("AXON_MEDIA_TOKEN", MEDIA_TOKEN),
    ]);
    let rt = runtime();
    let mut opts = home.options("bench-voice");
    opts.device = Some("living-speaker".into());
    eprintln!("baseline (silence endpoint, no speech cache): {warmup} warm-up utterances, then {utterances} measured…");
    let baseline = rt.block_on(pass(&opts, &speeches, warmup, utterances));
    let mut series = vec![("baseline", baseline)];
    for (label, cache) in [
        ("semantic endpoint", "off"),
        ("semantic endpoint + speech cache", "on"),
    ] {
        eprintln!("restarting the Hub: {label}…");
        home.worker.restart_with(&[
            ("AXON_VOICE_SEMANTIC_ENDPOINT", "on"),
            ("AXON_TTS_CACHE", cache),
        ]);
        home.worker
            .wait_for("/healthz", Duration::from_secs(60), |v| {
                v["broker"] == "connected" && v["ready"].as_u64() >= Some(13)
            });
        eprintln!("{label}: {warmup} warm-up utterances, then {utterances} measured…");
        series.push((
            label,
            rt.block_on(pass(&opts, &speeches, warmup, utterances)),
        ));
    }
    eprintln!("WebRTC: the media endpoint, {warmup} warm-up calls, then {utterances} measured…");
    let webrtc = webrtc_series(&home, &speeches, warmup, utterances, barge_ins);
    let (mut barges, mut barge_failed) = (Vec::new(), Vec::<String>::new());
    rt.block_on(async {
        let mut s = VoiceSession::connect(&opts).await.unwrap();
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

    let ai = home
        .local_ai
        .as_ref()
        .map(|a| {
            a.health()["tts"]["engine"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .unwrap_or_default();
    println!();
    println!(
        "Voice loop on loopback (device-sim say client → wrangler dev → local AI: faster-whisper tiny.en, {ai}; offline planner), {utterances} utterances after {warmup} warm-up in each series, same run"
    );
    println!();
    println!(
        "| measure | {} | {} / baseline (p50) |",
        series
            .iter()
            .map(|(l, _)| format!("{l} p50 | {l} p90"))
            .collect::<Vec<_>>()
            .join(" | "),
        series.last().unwrap().0
    );
    println!("|---|{}---:|", "---:|".repeat(series.len() * 2));
    let row = |name: &str, get: &dyn Fn(&Pass) -> &Vec<f64>| {
        let all: Vec<Vec<f64>> = series.iter().map(|(_, p)| sorted(get(p).clone())).collect();
        let ratio = match (pct(&all[0], 0.5), pct(all.last().unwrap(), 0.5)) {
            (Some(x), Some(y)) if x > 0.0 => format!("{:.2}×", y / x),
            _ => "–".into(),
        };
        let cells: Vec<String> = all
            .iter()
            .map(|v| format!("{} | {}", cell(pct(v, 0.5)), cell(pct(v, 0.9))))
            .collect();
        println!("| {name} | {} | {ratio} |", cells.join(" | "));
    };
    row(
        "**end of speech → first answer audio, at the client**",
        &|p| &p.client,
    );
    row("Hub: end_of_speech_to_first_audio_ms", &|p| &p.hub_total);
    for (j, (field, name)) in STAGES.iter().enumerate() {
        row(&format!("Hub: {name} `{field}`"), &|p| &p.stages[j]);
    }
    println!();
    for (label, p) in &series {
        println!(
            "{label}: the endpoint's share of the Hub's end of speech → first audio (p50) {}; {} of {} utterances ended by the semantic endpoint; {} answers' first audio from the speech cache; {} turns with a tool call.",
            pct(&sorted(p.shares[0].clone()), 0.5).map_or("–".into(), |s| format!("{s:.0} %")),
            p.semantic,
            p.client.len(),
            p.cached,
            p.tools
        );
    }
    {
        let ws = sorted(series.last().unwrap().1.client.clone());
        let rtc = sorted(webrtc.client.clone());
        println!();
        println!("| transport (semantic endpoint + speech cache) | end of speech → first answer audio p50 | p90 | turns |");
        println!("|---|---:|---:|---:|");
        println!(
            "| WebSocket (`/api/voice`, s16le 16 kHz) | {} | {} | {} |",
            cell(pct(&ws, 0.5)),
            cell(pct(&ws, 0.9)),
            ws.len()
        );
        println!(
            "| WebRTC (media endpoint, Opus 48 kHz) | {} | {} | {} |",
            cell(pct(&rtc, 0.5)),
            cell(pct(&rtc, 0.9)),
            rtc.len()
        );
        println!();
        println!(
            "WebRTC: call set-up (offer → ICE and DTLS up) p50 {}; the media endpoint used {:.1} % of one core per active call (CPU time over call time, {} calls one at a time) and grew by {} KB of peak memory over its first call (VmHWM); {} calls without a spoken answer {:?}.",
            cell(pct(&sorted(webrtc.connect.clone()), 0.5)),
            webrtc.cpu_percent,
            webrtc.calls,
            webrtc.peak_growth_kb,
            webrtc.failed.len(),
            webrtc.failed
        );
    }
    let goal = 500.0;
    let fast = &series.last().unwrap().1;
    match pct(&sorted(fast.client.clone()), 0.5) {
        Some(p50) => println!(
            "End of speech → first answer audio at the client: p50 {p50:.0} ms (goal ≤ {goal:.0} ms: {})",
            if p50 <= goal { "met" } else { "not met" }
        ),
        None => println!("No turn was answered in speech."),
    }
    for (name, p) in &series {
        if !p.failed.is_empty() {
            println!(
                "{name}: {} turns without a spoken answer: {:?}",
                p.failed.len(),
                p.failed
            );
        }
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
            "| speech start sent → `tts_terminate` received (WebSocket) | {} | {} | {} |",
            cell(pct(&b, 0.5)),
            cell(pct(&b, 0.9)),
            cell(b.last().copied())
        );
        let w = sorted(webrtc.barge_ins.clone());
        println!(
            "| the same over WebRTC ({} of {barge_ins}; the side channel's `tts_terminate`) | {} | {} | {} |",
            w.len(),
            cell(pct(&w, 0.5)),
            cell(pct(&w, 0.9)),
            cell(w.last().copied())
        );
        let a = sorted(webrtc.after_terminate.clone());
        println!(
            "| WebRTC: answer audio still arriving > 100 ms after `tts_terminate` (ms) | {} | {} | {} |",
            cell(pct(&a, 0.5)),
            cell(pct(&a, 0.9)),
            cell(a.last().copied())
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
