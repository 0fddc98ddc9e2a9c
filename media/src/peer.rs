//! One WebRTC peer on one UDP socket: either side of a call, audio only.
//!
//! Owns the str0m `Rtc` (ICE, DTLS, SRTP, SDP: sans-I/O), the socket it is driven by, the Opus
//! codecs, and the pacing of outgoing audio (one 20 ms packet every 20 ms, whatever the burst
//! the sender handed over). Incoming packets come out as 16 kHz PCM; a lost one is concealed
//! by libopus so the listener's timeline has no hole. It never decides what a call is for or
//! when it ends: the endpoint and the board do, with axon-core's `signalling::Call`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::codec::{OpusIn, OpusOut, WIRE_FRAME, WIRE_RATE};
use crate::MediaError;

const FRAME: Duration = Duration::from_millis(20);
/// At most this much audio is concealed for one gap: a longer one is a pause (DTX, a muted
/// microphone), not loss.
const MAX_CONCEALED_FRAMES: u64 = 10;

/// What happened on the call.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    /// ICE and DTLS are up: media flows.
    Connected,
    /// The connection was lost.
    Disconnected,
    /// Audio received, 16 kHz (concealment for lost packets included).
    Audio(Vec<i16>),
    /// Everything handed to [`Peer::queue_speech`] before [`Peer::finish_speech`] was sent.
    Drained,
}

/// Counts for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Audio packets received and decoded.
    pub packets_in: u64,
    /// Packets dropped on purpose ([`Peer::drop_incoming_percent`]).
    pub dropped: u64,
    /// 20 ms frames concealed.
    pub concealed: u64,
    /// Audio packets sent.
    pub packets_out: u64,
}

/// One side of a WebRTC call.
pub struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    candidate: Candidate,
    pending_offer: Option<SdpPendingOffer>,
    mid: Option<Mid>,
    pt: Option<Pt>,
    connected: bool,
    events: VecDeque<PeerEvent>,
    buf: Vec<u8>,
    // Receiving.
    decoder: OpusIn,
    expect: Option<u64>,
    drop_percent: u64,
    drop_rng: axon_core::time::Rng,
    // Sending.
    encoder: OpusOut,
    out: VecDeque<Vec<u8>>,
    next_send: Option<Instant>,
    clock_origin: Instant,
    sent_samples: u64,
    finishing: bool,
    stats: PeerStats,
}

impl Peer {
    /// A peer on a new UDP socket at `ip` (a free port), with its host candidate.
    pub async fn bind(ip: IpAddr) -> Result<Peer, MediaError> {
        crate::init_crypto();
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| MediaError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(candidate.clone());
        Ok(Peer {
            rtc,
            socket,
            local,
            candidate,
            pending_offer: None,
            mid: None,
            pt: None,
            connected: false,
            events: VecDeque::new(),
            buf: vec![0; 2000],
            decoder: OpusIn::new()?,
            expect: None,
            drop_percent: 0,
            drop_rng: axon_core::time::Rng::new(u64::from(local.port())),
            encoder: OpusOut::new()?,
            out: VecDeque::new(),
            next_send: None,
            clock_origin: now,
            sent_samples: 0,
            finishing: false,
            stats: PeerStats::default(),
        })
    }

    /// Where its socket listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Its host candidate as a `candidate:` line (for trickling).
    pub fn local_candidate(&self) -> String {
        self.candidate.to_sdp_string()
    }

    /// Drops this share of the audio packets received before decoding, as a lossy network
    /// would (the loss test; 0 in service).
    pub fn drop_incoming_percent(&mut self, percent: u8) {
        self.drop_percent = u64::from(percent.min(100));
    }

    /// The counts so far.
    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    /// Answers a device's offer; returns the answer's SDP.
    pub fn answer(&mut self, offer_sdp: &str) -> Result<String, MediaError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| MediaError::Rtc(e.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?;
        Ok(answer.to_sdp_string())
    }

    /// Makes an offer with one audio track, sent and received; returns its SDP.
    pub fn offer(&mut self) -> Result<String, MediaError> {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| MediaError::Rtc("the offer has no change to make".into()))?;
        self.mid = Some(mid);
        self.pending_offer = Some(pending);
        Ok(offer.to_sdp_string())
    }

    /// Takes the answer to [`Peer::offer`].
    pub fn accept_answer(&mut self, answer_sdp: &str) -> Result<(), MediaError> {
        // Checked before the pending offer is used up: an answer to another offer (a late one,
        // from an earlier call) names other media ids, and must leave this offer waiting.
        if let Some(mid) = self.mid {
            let ours = format!("a=mid:{mid}");
            if !answer_sdp.lines().any(|l| l.trim() == ours) {
                return Err(MediaError::Rtc(format!(
                    "the answer is not for this offer (no media id {mid})"
                )));
            }
        }
        let pending = self
            .pending_offer
            .take()
            .ok_or_else(|| MediaError::Rtc("an answer came, but no offer is pending".into()))?;
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| MediaError::Rtc(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        Ok(())
    }

    /// Adds the other side's trickled candidate (`candidate:…`, with or without `a=`). An
    /// empty one (end of candidates) is ignored.
    pub fn add_remote_candidate(&mut self, line: &str) -> Result<(), MediaError> {
        let line = line.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(());
        }
        let c = Candidate::from_sdp_string(line)
            .map_err(|e| MediaError::Rtc(format!("candidate {line:?}: {e}")))?;
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Queues 16 kHz speech to send, paced at one 20 ms packet every 20 ms.
    pub fn queue_speech(&mut self, pcm16k: &[i16]) -> Result<(), MediaError> {
        let packets = self.encoder.push(pcm16k)?;
        self.out.extend(packets);
        Ok(())
    }

    /// The speech queued so far is all there is for now: its last partial frame is sent too,
    /// and [`PeerEvent::Drained`] comes once the queue is empty.
    pub fn finish_speech(&mut self) -> Result<(), MediaError> {
        if let Some(p) = self.encoder.finish()? {
            self.out.push_back(p);
        }
        if self.out.is_empty() {
            self.events.push_back(PeerEvent::Drained);
        } else {
            self.finishing = true;
        }
        Ok(())
    }

    /// Drops the speech not yet sent (barge-in).
    pub fn flush_speech(&mut self) {
        self.out.clear();
        self.encoder.reset();
        self.finishing = false;
        self.next_send = None;
    }

    /// Milliseconds of speech waiting to be sent.
    pub fn queued_ms(&self) -> u64 {
        self.out.len() as u64 * 20
    }

    /// Ends the call's DTLS and ICE (the other side sees the connection close).
    pub fn close(&mut self) {
        self.rtc.disconnect();
    }

    /// Drives the call until something happens. Cancel-safe: a `select!` may drop it
    /// between events and call it again.
    pub async fn next(&mut self) -> Result<PeerEvent, MediaError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            if !self.rtc.is_alive() {
                return Ok(PeerEvent::Disconnected);
            }
            self.send_due(Instant::now())?;
            let timeout = loop {
                match self.rtc.poll_output()? {
                    Output::Transmit(t) => {
                        // UDP: a full send buffer loses the datagram, as the network would.
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Output::Event(e) => self.on_event(e)?,
                    Output::Timeout(t) => break t,
                }
            };
            if !self.events.is_empty() {
                continue;
            }
            let wake = match self.next_send {
                Some(s) if !self.out.is_empty() && self.connected => timeout.min(s),
                _ => timeout,
            };
            tokio::select! {
                r = self.socket.recv_from(&mut self.buf) => {
                    let (n, source) = r?;
                    // A datagram that is none of STUN, DTLS, RTP or RTCP is ignored.
                    if let Ok(contents) = self.buf[..n].try_into() {
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents,
                        });
                        if self.rtc.accepts(&input) {
                            self.rtc.handle_input(input)?;
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), MediaError> {
        match e {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(PeerEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.events.push_back(PeerEvent::Disconnected);
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio && self.mid.is_none() => {
                self.mid = Some(m.mid);
            }
            Event::MediaData(d) if Some(d.mid) == self.mid => {
                if self.drop_percent > 0 && self.drop_rng.below_or_eq(99) < self.drop_percent {
                    self.stats.dropped += 1;
                    return Ok(());
                }
                let at = d.time.numer() * u64::from(WIRE_RATE) / u64::from(d.time.denom().max(1));
                let mut pcm = Vec::new();
                if let Some(expect) = self.expect {
                    let missing = at.saturating_sub(expect) / WIRE_FRAME as u64;
                    for _ in 0..missing.min(MAX_CONCEALED_FRAMES) {
                        pcm.extend(self.decoder.conceal()?);
                        self.stats.concealed += 1;
                    }
                }
                // A packet libopus cannot read is concealed instead: one bad packet must not
                // end a call.
                let decoded = match self.decoder.decode(&d.data) {
                    Ok(p) => p,
                    Err(_) => {
                        self.stats.concealed += 1;
                        self.decoder.conceal()?
                    }
                };
                self.expect = Some(at + decoded.len() as u64 * 3);
                pcm.extend(decoded);
                self.stats.packets_in += 1;
                self.events.push_back(PeerEvent::Audio(pcm));
            }
            _ => {}
        }
        Ok(())
    }

    fn send_due(&mut self, now: Instant) -> Result<(), MediaError> {
        if !self.connected {
            return Ok(());
        }
        let Some(mid) = self.mid else { return Ok(()) };
        while !self.out.is_empty() {
            let due = match self.next_send {
                Some(d) => d,
                None => {
                    // A new talk spurt: the RTP clock has run on through the pause.
                    let elapsed = now.duration_since(self.clock_origin).as_micros() as u64;
                    self.sent_samples = self.sent_samples.max(elapsed * 48 / 1000);
                    now
                }
            };
            if due > now {
                break;
            }
            let pt = match self.pt {
                Some(pt) => pt,
                None => {
                    let w = self.rtc.writer(mid).ok_or_else(|| {
                        MediaError::Rtc("the audio track cannot be written".into())
                    })?;
                    let pt = w
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::Opus)
                        .map(|p| p.pt())
                        .ok_or_else(|| {
                            MediaError::Rtc("the other side did not agree to Opus".into())
                        })?;
                    self.pt = Some(pt);
                    pt
                }
            };
            let Some(packet) = self.out.pop_front() else {
                break;
            };
            let w = self
                .rtc
                .writer(mid)
                .ok_or_else(|| MediaError::Rtc("the audio track cannot be written".into()))?;
            let time = MediaTime::new(self.sent_samples, str0m::media::Frequency::FORTY_EIGHT_KHZ);
            w.write(pt, now, time, packet)?;
            self.sent_samples += WIRE_FRAME as u64;
            self.stats.packets_out += 1;
            // Late by more than three frames (a busy machine): restart the pace from now
            // rather than bursting to catch up.
            self.next_send = Some(if now.duration_since(due) > FRAME * 3 {
                now + FRAME
            } else {
                due + FRAME
            });
        }
        if self.out.is_empty() {
            if self.next_send.is_some_and(|d| d <= now) {
                self.next_send = None;
            }
            if self.finishing {
                self.finishing = false;
                self.events.push_back(PeerEvent::Drained);
            }
        }
        Ok(())
    }
}
