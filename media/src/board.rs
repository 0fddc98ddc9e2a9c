//! A device's side of a call, as an EMQX-built device makes it: it offers on
//! `$webrtc/{id}/multimedia_proxy`, trickles its candidate, speaks into its microphone track
//! and plays the answer track; the transcript and the answer's markers arrive on
//! `$message/{id}`. Used by `axon-device-sim say --webrtc` and the tests.
//!
//! Owns the board's MQTT connection (the device's own account), its microphone pacing (the
//! speech, then silence for the Hub's endpoint, 20 ms at a time) and the bookkeeping of one
//! spoken exchange. It decides nothing about the call beyond hanging up when the answer is
//! over.

use std::net::IpAddr;
use std::time::Duration;

use axon_core::media::signalling::{
    self, Channel, Description, DeviceSignal, EndpointSignal, IceCandidate, TextToDevice,
};
use axon_core::protocol::mcp::topics::DeviceId;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::Event;
use tokio::time::Instant;

use crate::broker::{self, Account, BrokerAddr};
use crate::codec::HUB_FRAME;
use crate::peer::{Peer, PeerEvent, PeerStats};
use crate::MediaError;

/// How a board calls.
#[derive(Debug, Clone)]
pub struct BoardOptions {
    /// The broker.
    pub broker: BrokerAddr,
    /// The device's own broker account.
    pub account: Account,
    /// The device (its topics are `$webrtc/{device}…`).
    pub device: DeviceId,
    /// Where its UDP socket listens.
    pub bind: IpAddr,
    /// How long the whole exchange may take, from the offer to the end of the answer.
    pub timeout: Duration,
    /// Silence sent before the speech (the Hub's VAD learns the room first).
    pub lead_in: Duration,
    /// Speak again while the answer plays (a barge-in): this speech (16 kHz), this long after
    /// the answer's first audio arrived.
    pub barge_in: Option<(Duration, Vec<i16>)>,
}

/// What one spoken exchange gave.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// The answer audio received, 16 kHz mono.
    pub answer: Vec<i16>,
    /// Everything that came on `$message/{device}`, in order.
    pub texts: Vec<TextToDevice>,
    /// From the last speech frame sent to the first answer audio received.
    pub speech_end_to_first_audio_ms: Option<u64>,
    /// From the offer to ICE and DTLS up.
    pub connect_ms: Option<u64>,
    /// With [`BoardOptions::barge_in`]: from the frame with the barge-in's first voiced sample
    /// sent to the `tts_terminate` received.
    pub barge_in_ms: Option<u64>,
    /// With [`BoardOptions::barge_in`]: answer audio received more than 100 ms after the
    /// `tts_terminate` (what was already on its way when the endpoint stopped), in ms.
    pub audio_after_terminate_ms: u64,
    /// The call's packet counts.
    pub stats: PeerStats,
}

impl Exchange {
    /// What speech recognition heard (the last `asr_response`).
    pub fn transcript(&self) -> Option<&str> {
        self.texts.iter().rev().find_map(|t| match t {
            TextToDevice::AsrResponse { results } => Some(results.as_str()),
            _ => None,
        })
    }
}

/// After the answer's `tts_complete`, the call ends once no audio came for this long (the
/// endpoint paces the answer in real time, so its end arrives after the marker).
const QUIET_AFTER_COMPLETE: Duration = Duration::from_millis(600);
/// After `tts_complete`, the call ends without an answer if no audio came for this long.
const NO_AUDIO_AFTER_COMPLETE: Duration = Duration::from_secs(3);

/// Calls the media endpoint, says `speech` (16 kHz) and returns the answer (with a barge-in,
/// the answer to what was said last), then hangs up.
/// `on_text` sees each side-channel message as it arrives.
pub async fn say(
    o: &BoardOptions,
    speech: &[i16],
    on_text: &mut dyn FnMut(&TextToDevice),
) -> Result<Exchange, MediaError> {
    let deadline = Instant::now() + o.timeout;
    let (client, mut events) = broker::connect(&o.broker, &o.account);
    let to_device = [
        signalling::topic(Channel::SignalToDevice, &o.device),
        signalling::topic(Channel::TextToDevice, &o.device),
    ];
    // Connected and subscribed before offering, so the answer cannot be missed.
    let mut acks = 0;
    while acks < to_device.len() {
        let ev = tokio::time::timeout_at(deadline, events.poll())
            .await
            .map_err(|_| MediaError::Timeout("connecting to the broker".into()))?;
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(a))) => {
                if a.code != ConnectReturnCode::Success {
                    return Err(broker::refused(&o.broker, &o.account.username, a.code));
                }
                for t in &to_device {
                    client
                        .subscribe(t.clone(), QoS::AtLeastOnce)
                        .await
                        .map_err(|e| MediaError::Broker {
                            addr: o.broker.to_string(),
                            detail: e.to_string(),
                        })?;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(a))) => {
                if a.return_codes
                    .iter()
                    .any(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                {
                    return Err(MediaError::Broker {
                        addr: o.broker.to_string(),
                        detail: format!(
                            "refused {}'s subscription to its own $webrtc/$message topics ({:?})",
                            o.device, a.return_codes
                        ),
                    });
                }
                acks += 1;
            }
            Ok(_) => {}
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                return Err(broker::refused(&o.broker, &o.account.username, code))
            }
            Err(e) => {
                return Err(MediaError::Broker {
                    addr: o.broker.to_string(),
                    detail: e.to_string(),
                })
            }
        }
    }

    let mut peer = Peer::bind(o.bind).await?;
    let offered_at = Instant::now();
    let offer = DeviceSignal::SdpOffer {
        data: Description {
            kind: "offer".into(),
            sdp: peer.offer()?,
        },
        device_id: Some(o.device.as_str().to_string()),
    };
    let proxy = signalling::topic(Channel::SignalToEndpoint, &o.device);
    let send = |msg: DeviceSignal| {
        let client = client.clone();
        let proxy = proxy.clone();
        let addr = o.broker.to_string();
        async move {
            client
                .publish(proxy, QoS::AtLeastOnce, false, msg.to_bytes())
                .await
                .map_err(|e| MediaError::Broker {
                    addr,
                    detail: format!("the signalling message was not sent ({e})"),
                })
        }
    };
    send(offer).await?;
    // Trickled too, as a browser does (the offer's SDP carries it already).
    send(DeviceSignal::IceCandidate {
        data: IceCandidate {
            candidate: peer.local_candidate(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        },
    })
    .await?;

    let mut x = Exchange::default();
    let mut mic = tokio::time::interval(Duration::from_millis(20));
    mic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The microphone: what is still to be said, then silence.
    let mut mic_queue: std::collections::VecDeque<i16> =
        std::iter::repeat_n(0, (o.lead_in.as_millis() as usize / 20) * HUB_FRAME)
            .chain(speech.iter().copied())
            .collect();
    let mut barge_in = o.barge_in.clone();
    let mut barge_started: Option<Instant> = None;
    // Samples still to send before the barge-in's first voiced one.
    let mut barge_voiced_at: Option<usize> = None;
    let mut terminated_at: Option<Instant> = None;
    let mut connected = false;
    let mut speech_end: Option<Instant> = None;
    let mut first_audio: Option<Instant> = None;
    let mut first_turn: Option<String> = None;
    let mut complete: Option<Instant> = None;
    let mut last_audio: Option<Instant> = None;
    let result = loop {
        // The answer's marker can overtake its first packet (the endpoint paces the audio, the
        // marker goes at once): done once the audio has come and stopped, or never came.
        let quiet = match (complete, last_audio) {
            (Some(_), Some(t)) => t.elapsed() >= QUIET_AFTER_COMPLETE,
            (Some(c), None) => c.elapsed() >= NO_AUDIO_AFTER_COMPLETE,
            (None, _) => false,
        };
        if quiet {
            break Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                break Err(MediaError::Timeout(format!(
                    "no whole answer within {} s (connected: {connected}, heard: {:?})",
                    o.timeout.as_secs(), x.transcript()
                )));
            }
            _ = mic.tick(), if connected => {
                if let (Some((after, again)), Some(first)) = (&barge_in, first_audio) {
                    if first.elapsed() >= *after {
                        // Measured from its first voiced 10 ms, as the Hub's VAD would hear it.
                        let floor = axon_core::media::audio::VadConfig::default().min_speech_dbfs;
                        let voiced = again
                            .chunks(HUB_FRAME / 2)
                            .position(|c| axon_core::media::audio::level_dbfs(c) > floor)
                            .unwrap_or(0)
                            * (HUB_FRAME / 2);
                        barge_voiced_at = Some(mic_queue.len() + voiced);
                        mic_queue.extend(again.iter().copied());
                        barge_in = None;
                    }
                }
                let frame: Vec<i16> = (0..HUB_FRAME).map(|_| mic_queue.pop_front().unwrap_or(0)).collect();
                if let Some(left) = barge_voiced_at {
                    if left < HUB_FRAME {
                        barge_started = Some(Instant::now());
                        barge_voiced_at = None;
                    } else {
                        barge_voiced_at = Some(left - HUB_FRAME);
                    }
                }
                if mic_queue.is_empty() && speech_end.is_none() {
                    speech_end = Some(Instant::now());
                }
                peer.queue_speech(&frame)?;
            }
            ev = peer.next() => match ev? {
                PeerEvent::Connected => {
                    connected = true;
                    x.connect_ms = Some(offered_at.elapsed().as_millis() as u64);
                }
                PeerEvent::Disconnected => break Err(MediaError::CallEnded("the connection was lost".into())),
                PeerEvent::Audio(pcm) => {
                    if let (Some(end), None) = (speech_end, x.speech_end_to_first_audio_ms) {
                        x.speech_end_to_first_audio_ms = Some(end.elapsed().as_millis() as u64);
                        first_audio = Some(Instant::now());
                    }
                    if terminated_at.is_some_and(|t| t.elapsed() > Duration::from_millis(100))
                        && x.barge_in_ms.is_some()
                        && x.texts.iter().filter(|t| matches!(t, TextToDevice::TtsBegin { .. })).count() < 2
                    {
                        x.audio_after_terminate_ms += pcm.len() as u64 / 16;
                    }
                    last_audio = Some(Instant::now());
                    x.answer.extend(pcm);
                }
                PeerEvent::Drained => {}
            },
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    match signalling::parse_topic(&topic).map(|(c, _)| c) {
                        Some(Channel::SignalToDevice) => match EndpointSignal::parse(&p.payload) {
                            Ok(EndpointSignal::SdpAnswer { data }) => {
                                // The topic has no call id: an answer to an earlier call of this
                                // device (one that gave up) can arrive first. It does not fit this
                                // offer, so it is skipped; the right one follows.
                                if let Err(e) = peer.accept_answer(&data.sdp) {
                                    tracing::info!(error = %e, "an answer that is not for this offer skipped");
                                }
                            }
                            Ok(EndpointSignal::IceCandidate { data }) => {
                                let _ = peer.add_remote_candidate(&data.candidate);
                            }
                            Ok(EndpointSignal::WebrtcTerminated { reason }) => {
                                break Err(MediaError::CallEnded(reason));
                            }
                            Err(e) => tracing::info!(error = %e, "signalling message ignored"),
                        },
                        Some(Channel::TextToDevice) => {
                            if let Ok(t) = TextToDevice::parse(&p.payload) {
                                on_text(&t);
                                // With a barge-in, only the answer to what was said last ends the
                                // exchange.
                                if let (TextToDevice::TtsBegin { task_id }, None) = (&t, &first_turn) {
                                    first_turn = Some(task_id.clone());
                                }
                                let last_said = match (&t, &first_turn) {
                                    (TextToDevice::TtsComplete { task_id }, Some(first)) => {
                                        o.barge_in.is_none() || task_id != first
                                    }
                                    (TextToDevice::TtsComplete { .. }, None) => o.barge_in.is_none(),
                                    _ => false,
                                };
                                // Once the utterance was heard, not only once all of the WAV
                                // was sent: the Hub's semantic endpoint answers at the pause
                                // after the words, and a cached answer's marker can come
                                // while the WAV's silent tail is still going out (the
                                // back-to-back call in tests/tests/webrtc.rs caught it).
                                let heard = speech_end.is_some()
                                    || x.texts.iter().any(|t| matches!(t, TextToDevice::AsrResponse { .. }));
                                if last_said && heard {
                                    complete.get_or_insert_with(Instant::now);
                                }
                                if let (TextToDevice::TtsTerminate { .. }, Some(b), None) = (&t, barge_started, x.barge_in_ms) {
                                    x.barge_in_ms = Some(b.elapsed().as_millis() as u64);
                                    terminated_at = Some(Instant::now());
                                }
                                x.texts.push(t);
                            }
                        }
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(MediaError::Broker { addr: o.broker.to_string(), detail: e.to_string() }),
            }
        }
    };
    x.stats = peer.stats();
    // Hang up, whatever happened: the endpoint frees the call at once.
    let _ = send(DeviceSignal::WebrtcTerminated {
        reason: "hangup".into(),
    })
    .await;
    peer.close();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while events.poll().await.is_ok() {}
    })
    .await;
    result.map(|()| x)
}
