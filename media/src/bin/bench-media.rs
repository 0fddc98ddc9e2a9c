//! What one WebRTC call costs the media endpoint: `--calls N` calls on loopback, each a pair of
//! peers (a board's and the endpoint's, as `axon-media` makes them: str0m, libopus, paced
//! 20 ms packets), audio flowing both ways for `--seconds S`; memory per peer from the
//! process's resident size before and after (VmRSS), CPU per call from its CPU time over the
//! streaming time. One process holds both sides, so a call's figures are half the pair's.
//!
//! Usage: `cargo run --release -p axon-media --bin bench-media -- [--calls 50] [--seconds 10]`.
//! Prints a Markdown table; the anchor is Espressif's ESP32 WebRTC peer (~60 KB a connection),
//! not measured here.

use std::time::{Duration, Instant};

use axon_media::peer::{Peer, PeerEvent};

fn status_kb(field: &str) -> u64 {
    axon_media::usage::memory_kb(std::process::id(), field).max(0) as u64
}

fn cpu_seconds() -> f64 {
    axon_media::usage::cpu_seconds(std::process::id())
}

fn tone(ms: usize) -> Vec<i16> {
    (0..16 * ms)
        .map(|i| (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * i as f64 / 16000.0).sin()) as i16)
        .collect()
}

async fn pair() -> Result<(Peer, Peer), axon_media::MediaError> {
    let ip = std::net::Ipv4Addr::LOCALHOST.into();
    let mut board = Peer::bind(ip).await?;
    let mut endpoint = Peer::bind(ip).await?;
    let answer = endpoint.answer(&board.offer()?)?;
    board.accept_answer(&answer)?;
    Ok((board, endpoint))
}

/// Drives one peer: waits for ICE, then speaks 20 ms every 20 ms until `until`; counts the
/// audio it hears.
async fn drive(
    mut p: Peer,
    until: Instant,
    connected: tokio::sync::mpsc::Sender<()>,
) -> (u64, Peer) {
    let frame = tone(20);
    let mut heard = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut up = false;
    loop {
        tokio::select! {
            e = p.next() => match e {
                Ok(PeerEvent::Connected) => { up = true; let _ = connected.send(()).await; }
                Ok(PeerEvent::Audio(pcm)) => heard += pcm.len() as u64,
                Ok(PeerEvent::Disconnected) | Err(_) => break,
                Ok(PeerEvent::Drained) => {}
            },
            _ = tick.tick(), if up => {
                if Instant::now() >= until { break }
                let _ = p.queue_speech(&frame);
            }
        }
    }
    (heard, p)
}

fn main() {
    let (mut calls, mut seconds) = (50usize, 10u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut n = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(3)
            })
        };
        match a.as_str() {
            "--calls" => calls = n("--calls").max(1) as usize,
            "--seconds" => seconds = n("--seconds").max(1),
            "-h" | "--help" => {
                println!("bench-media [--calls N (50)] [--seconds S (10)]: memory and CPU of WebRTC calls on loopback (both sides in this process)");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}; try --help");
                std::process::exit(3)
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // One call first, so that what every process pays once (the crypto provider, the
        // runtime, libopus's tables) is not counted per call.
        let (b, e) = pair().await.expect("a first call");
        let until = Instant::now() + Duration::from_secs(1);
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let w = tokio::join!(drive(b, until, tx.clone()), drive(e, until, tx));
        drop(w);
        let rss0 = status_kb("VmRSS");
        eprintln!("{calls} calls, {seconds} s of audio both ways…");
        let (tx, mut rx) = tokio::sync::mpsc::channel(calls * 2);
        let until = Instant::now() + Duration::from_secs(seconds + 5);
        let mut tasks = Vec::new();
        let set_up = Instant::now();
        for _ in 0..calls {
            let (b, e) = pair().await.expect("a call");
            tasks.push(tokio::spawn(drive(b, until, tx.clone())));
            tasks.push(tokio::spawn(drive(e, until, tx.clone())));
        }
        let mut up = 0;
        while up < calls * 2 {
            if tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.is_err() {
                break;
            }
            up += 1;
        }
        let connect = set_up.elapsed();
        // Measured over the streaming only, once every call is up and has been for a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu, busy) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
        let rss = status_kb("VmRSS");
        let mut heard = 0u64;
        for t in tasks {
            if let Ok((h, _)) = t.await {
                heard += h;
            }
        }
        let peers = (calls * 2) as f64;
        println!();
        println!("WebRTC calls on loopback (str0m 0.24 + libopus, 20 ms Opus both ways), {calls} calls, both sides in one process, {seconds} s measured");
        println!();
        println!("| measure | value |");
        println!("|---|---:|");
        println!("| peers connected | {up} of {} (in {:.1} s) |", calls * 2, connect.as_secs_f64());
        println!("| memory per peer (VmRSS growth / peers) | {:.0} KB |", (rss.saturating_sub(rss0)) as f64 / peers);
        println!("| CPU per call (both directions, one side) | {:.2} % of one core |", cpu / busy * 100.0 / calls as f64 / 2.0);
        println!("| audio heard (of {:.0} s sent per peer) | {:.1} s per peer |", (seconds + 5) as f64, heard as f64 / 16000.0 / peers);
        println!();
        println!("Anchor (not measured here): Espressif's ESP32 WebRTC peer, ~60 KB a connection.");
    });
}
