//! Two peers on loopback, one offering as a board does, one answering as the endpoint does:
//! ICE, DTLS and SRTP through str0m, Opus both ways, the pacing, and loss concealment.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axon_core::media::audio::level_dbfs;
use axon_media::peer::{Peer, PeerEvent};

fn tone(ms: usize, hz: f64) -> Vec<i16> {
    (0..16 * ms)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 16000.0).sin()) as i16)
        .collect()
}

async fn connected_pair(drop_percent: u8) -> (Peer, Peer) {
    let ip = "127.0.0.1".parse().unwrap();
    let mut board = Peer::bind(ip).await.unwrap();
    let mut endpoint = Peer::bind(ip).await.unwrap();
    endpoint.drop_incoming_percent(drop_percent);
    let offer = board.offer().unwrap();
    assert!(offer.contains("m=audio"), "{offer}");
    let answer = endpoint.answer(&offer).unwrap();
    board.accept_answer(&answer).unwrap();
    let (mut a, mut b) = (false, false);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(a && b) {
            tokio::select! {
                e = board.next() => if e.unwrap() == PeerEvent::Connected { a = true },
                e = endpoint.next() => if e.unwrap() == PeerEvent::Connected { b = true },
            }
        }
    })
    .await
    .expect("ICE and DTLS up within 10 s on loopback");
    (board, endpoint)
}

/// Sends `speech` from `from`, paced, and collects what `to` hears until `from` drained.
async fn carry(from: &mut Peer, to: &mut Peer, speech: &[i16]) -> Vec<i16> {
    from.queue_speech(speech).unwrap();
    from.finish_speech().unwrap();
    let mut heard = Vec::new();
    let mut drained = false;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                e = from.next() => if e.unwrap() == PeerEvent::Drained { drained = true },
                e = to.next() => if let PeerEvent::Audio(p) = e.unwrap() { heard.extend(p) },
                () = tokio::time::sleep(Duration::from_millis(200)), if drained => break,
            }
        }
    })
    .await
    .expect("the audio is carried within 10 s");
    heard
}

#[tokio::test]
async fn audio_crosses_a_call_both_ways_in_real_time() {
    let (mut board, mut endpoint) = connected_pair(0).await;
    let speech = tone(1000, 440.0);
    let started = std::time::Instant::now();
    let heard = carry(&mut board, &mut endpoint, &speech).await;
    // Paced: a second of audio takes about a second, not a burst.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(heard.len(), speech.len(), "every 20 ms arrived");
    assert!((level_dbfs(&heard[3200..]) - level_dbfs(&speech[3200..])).abs() < 2.0);
    let answer = tone(500, 660.0);
    let back = carry(&mut endpoint, &mut board, &answer).await;
    assert_eq!(back.len(), answer.len());
    assert_eq!(board.stats().packets_out, 50);
    assert_eq!(endpoint.stats().packets_in, 50);
    assert_eq!(endpoint.stats().concealed, 0);
}

#[tokio::test]
async fn lost_packets_are_concealed_so_the_listener_hears_the_whole_length() {
    let (mut board, mut endpoint) = connected_pair(5).await;
    let speech = tone(2000, 440.0);
    let heard = carry(&mut board, &mut endpoint, &speech).await;
    let s = endpoint.stats();
    assert!(s.dropped > 0, "some packets were dropped: {s:?}");
    // A loss at the very end has no later packet to reveal it; all others are concealed.
    assert!(s.concealed + 1 >= s.dropped, "{s:?}");
    assert!(
        heard.len() + 320 >= speech.len(),
        "{} of {}",
        heard.len(),
        speech.len()
    );
}

#[tokio::test]
async fn a_barge_in_stops_the_answer_at_once() {
    let (mut board, mut endpoint) = connected_pair(0).await;
    endpoint.queue_speech(&tone(2000, 440.0)).unwrap();
    let mut heard = 0usize;
    tokio::time::timeout(Duration::from_secs(5), async {
        while heard < 16 * 300 {
            tokio::select! {
                e = endpoint.next() => { e.unwrap(); }
                e = board.next() => if let PeerEvent::Audio(p) = e.unwrap() { heard += p.len() },
            }
        }
    })
    .await
    .unwrap();
    endpoint.flush_speech();
    assert_eq!(endpoint.queued_ms(), 0);
    let sent = endpoint.stats().packets_out;
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            tokio::select! {
                e = endpoint.next() => { e.unwrap(); }
                e = board.next() => { e.unwrap(); }
            }
        }
    })
    .await;
    assert_eq!(
        endpoint.stats().packets_out,
        sent,
        "nothing more was sent after the flush"
    );
    assert!(sent < 40, "the 2 s answer was cut short: {sent} packets");
}

#[tokio::test]
async fn an_answer_to_another_offer_is_refused_and_the_right_one_still_fits() {
    let ip = "127.0.0.1".parse().unwrap();
    let mut earlier = Peer::bind(ip).await.unwrap();
    let mut board = Peer::bind(ip).await.unwrap();
    let stale = Peer::bind(ip)
        .await
        .unwrap()
        .answer(&earlier.offer().unwrap())
        .unwrap();
    let offer = board.offer().unwrap();
    assert!(
        board.accept_answer(&stale).is_err(),
        "a late answer to an earlier call"
    );
    let answer = Peer::bind(ip).await.unwrap().answer(&offer).unwrap();
    board.accept_answer(&answer).unwrap();
}

#[tokio::test]
async fn a_garbage_offer_is_an_error_not_a_panic() {
    let mut endpoint = Peer::bind("127.0.0.1".parse().unwrap()).await.unwrap();
    assert!(endpoint.answer("v=0\r\nthis is not sdp").is_err());
    assert!(endpoint.add_remote_candidate("candidate:garbage").is_err());
    assert!(
        endpoint.add_remote_candidate("").is_ok(),
        "end of candidates"
    );
}
