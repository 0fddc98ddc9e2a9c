//! The media endpoint: answers every device's WebRTC call and bridges it to the Hub's voice
//! session (docs/voice.md §6).
//!
//! Owns the endpoint's MQTT connection (its own account, `axon-media`: it reads only
//! `…/multimedia_proxy` topics and writes only `$webrtc/{id}` and `$message/{id}`), one call
//! task per device, and each call's `/api/voice` WebSocket (its own Hub credential,
//! `AXON_MEDIA_TOKEN`, valid for voice sessions only). What a signalling message means and why
//! a call ends are axon-core's (`signalling::decide`, `signalling::Call`); this module never
//! runs VAD, ASR, the agent or TTS: the Hub does, for every transport alike.
//!
//! It prints one JSON line per call event on stdout (`ready`, `call_started`,
//! `call_connected`, `call_ended` with the reason and the calls still running) for the
//! tests and for logs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axon_core::media::signalling::{
    self, decide, Call, Channel, Decision, Description, EndpointSignal, Termination, TextToEndpoint,
};
use axon_core::media::voice::{ClientMessage, ServerMessage};
use axon_core::protocol::mcp::topics::DeviceId;
use axon_core::time::Timestamp;
use futures_util::{SinkExt, StreamExt};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::broker::{self, Account, BrokerAddr};
use crate::codec::{from_le_bytes, to_le_bytes};
use crate::peer::{Peer, PeerEvent, PeerStats};
use crate::MediaError;

/// How the endpoint runs.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The broker.
    pub broker: BrokerAddr,
    /// The endpoint's broker account.
    pub account: Account,
    /// The Hub: `http://HOST:PORT`.
    pub worker: String,
    /// The endpoint's Hub credential (`AXON_MEDIA_TOKEN`).
    pub token: String,
    /// Where calls' UDP sockets listen (their host candidates).
    pub bind: IpAddr,
    /// How long a call may take from offer to ICE connectivity.
    pub ice_timeout: Duration,
    /// Share of each call's incoming audio packets to drop (loss tests; 0 in service).
    pub drop_percent: u8,
}

/// Monotonic time for axon-core, from a process-wide origin.
fn now() -> Timestamp {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    Timestamp::from_millis(ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64)
}

fn instant_of(t: Timestamp) -> tokio::time::Instant {
    let ahead = t.as_millis().saturating_sub(now().as_millis());
    tokio::time::Instant::now() + Duration::from_millis(ahead)
}

fn report(event: &str, fields: serde_json::Value) {
    let mut v = json!({ "event": event });
    if let (Some(o), serde_json::Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    println!("{v}");
}

enum CallCmd {
    Candidate(String),
    Chat(String),
    End(Termination, String),
}

struct CallHandle {
    id: u64,
    cmds: mpsc::UnboundedSender<CallCmd>,
    task: tokio::task::JoinHandle<()>,
}

struct Ended {
    device: DeviceId,
    id: u64,
    reason: String,
    stats: PeerStats,
}

/// Runs the endpoint until `shutdown` resolves; every running call is then ended with
/// `shutdown`.
pub async fn run(
    config: EndpointConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), MediaError> {
    crate::init_crypto();
    worker_host(&config.worker)?;
    let config = Arc::new(config);
    let (client, mut events) = broker::connect(&config.broker, &config.account);
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<Ended>();
    let mut calls: HashMap<DeviceId, CallHandle> = HashMap::new();
    let mut next_id = 0u64;
    let mut subscribed = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        return Err(broker::refused(&config.broker, &config.account.username, ack.code));
                    }
                    for f in signalling::ENDPOINT_FILTERS {
                        client.subscribe(f, QoS::AtLeastOnce).await.map_err(|e| MediaError::Broker {
                            addr: config.broker.to_string(),
                            detail: e.to_string(),
                        })?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| !matches!(c, rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_))) {
                        return Err(MediaError::Broker {
                            addr: config.broker.to_string(),
                            detail: format!("refused the endpoint's subscriptions ({:?}); its account needs the axon-media role", ack.return_codes),
                        });
                    }
                    if !subscribed {
                        subscribed = true;
                        report("ready", json!({ "broker": config.broker.to_string(), "worker": config.worker }));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).to_string();
                    let Some((channel, device)) = signalling::parse_topic(&topic) else { continue };
                    match channel {
                        Channel::SignalToEndpoint => {
                            let has_call = calls.contains_key(&device);
                            match decide(&device, &p.payload, has_call) {
                                Decision::Answer(offer) => {
                                    if let Some(old) = calls.remove(&device) {
                                        old.task.abort();
                                        report("call_ended", json!({ "device": device.as_str(), "reason": "replaced: a new offer", "active_calls": calls.len() }));
                                    }
                                    next_id += 1;
                                    let (tx, rx) = mpsc::unbounded_channel();
                                    let task = tokio::spawn(call(
                                        config.clone(), client.clone(), device.clone(), next_id, offer, rx, ended_tx.clone(),
                                    ));
                                    calls.insert(device.clone(), CallHandle { id: next_id, cmds: tx, task });
                                    report("call_started", json!({ "device": device.as_str(), "active_calls": calls.len() }));
                                }
                                Decision::AddCandidate(c) => {
                                    if let Some(h) = calls.get(&device) {
                                        let _ = h.cmds.send(CallCmd::Candidate(c.candidate));
                                    }
                                }
                                Decision::Terminate(why, detail) => match calls.get(&device) {
                                    Some(h) => { let _ = h.cmds.send(CallCmd::End(why, detail)); }
                                    None => {
                                        publish(&client, &device, why.message(&detail)).await;
                                        report("refused", json!({ "device": device.as_str(), "reason": format!("{}: {detail}", why.code()), "active_calls": calls.len() }));
                                    }
                                },
                                Decision::Ignore => {}
                            }
                        }
                        Channel::TextToEndpoint => match TextToEndpoint::parse(&p.payload) {
                            Ok(TextToEndpoint::Chat { payload }) => {
                                let text = match payload {
                                    serde_json::Value::String(s) => s,
                                    v => v.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_string(),
                                };
                                match calls.get(&device) {
                                    Some(h) if !text.trim().is_empty() => { let _ = h.cmds.send(CallCmd::Chat(text)); }
                                    _ => tracing::info!(device = device.as_str(), "chat with no call (or empty): ignored"),
                                }
                            }
                            Err(e) => tracing::info!(device = device.as_str(), error = %e, "text message ignored"),
                        },
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let rumqttc::v5::ConnectionError::ConnectionRefused(code) = e {
                        return Err(broker::refused(&config.broker, &config.account.username, code));
                    }
                    tracing::warn!(error = %e, broker = %config.broker, "broker connection lost; retrying in 1 s");
                    subscribed = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            Some(e) = ended_rx.recv() => {
                if calls.get(&e.device).is_some_and(|h| h.id == e.id) {
                    calls.remove(&e.device);
                }
                report("call_ended", json!({
                    "device": e.device.as_str(), "reason": e.reason, "active_calls": calls.len(),
                    "packets_in": e.stats.packets_in, "packets_out": e.stats.packets_out,
                    "concealed": e.stats.concealed, "dropped": e.stats.dropped,
                }));
            }
            () = &mut shutdown => {
                let ending: Vec<_> = calls.drain().collect();
                let mut left = ending.len();
                for (device, h) in ending {
                    h.task.abort();
                    let detail = "the media endpoint is stopping";
                    publish(&client, &device, Termination::Shutdown.message(detail)).await;
                    let reason = format!("{}: {detail}", Termination::Shutdown.code());
                    // Every call's end is reported, a cut one too (its packet counts died with
                    // its task).
                    left -= 1;
                    report("call_ended", json!({
                        "device": device.as_str(), "reason": reason, "active_calls": left,
                    }));
                }
                let _ = client.disconnect().await;
                // Let the DISCONNECT and the terminations go out.
                let _ = tokio::time::timeout(Duration::from_millis(300), async {
                    while events.poll().await.is_ok() {}
                }).await;
                report("stopped", json!({}));
                return Ok(());
            }
        }
    }
}

async fn publish(client: &AsyncClient, device: &DeviceId, msg: EndpointSignal) {
    let topic = signalling::topic(Channel::SignalToDevice, device);
    if let Err(e) = client
        .publish(topic, QoS::AtLeastOnce, false, msg.to_bytes())
        .await
    {
        tracing::warn!(error = %e, "could not queue a signalling message");
    }
}

/// `HOST:PORT` of `http://HOST:PORT`.
fn worker_host(worker: &str) -> Result<String, MediaError> {
    let w = worker.trim();
    let rest = w
        .strip_prefix("http://")
        .or_else(|| w.strip_prefix("ws://"))
        .ok_or_else(|| MediaError::WorkerUrl(w.to_string()))?;
    match rest.split('/').next() {
        Some(h) if !h.is_empty() => Ok(h.to_string()),
        _ => Err(MediaError::WorkerUrl(w.to_string())),
    }
}

type VoiceSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the Hub's voice session for `device` with the endpoint's credential.
async fn open_voice(config: &EndpointConfig, device: &DeviceId) -> Result<VoiceSocket, MediaError> {
    let url = format!(
        "ws://{}/api/voice?mode=hands_free&device={}",
        worker_host(&config.worker)?,
        device.as_str()
    );
    let fail = |detail: String| MediaError::Voice {
        url: url.clone(),
        detail,
    };
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| fail(e.to_string()))?;
    let bearer = format!("Bearer {}", config.token)
        .parse()
        .map_err(|_| fail("the token is not a valid header value".into()))?;
    req.headers_mut().insert("authorization", bearer);
    let open = tokio_tungstenite::connect_async_with_config(req, None, true);
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), open)
        .await
        .map_err(|_| fail("no answer within 10 s".into()))?
        .map_err(|e| fail(e.to_string()))?;
    ws.send(Message::text(
        ClientMessage::start(axon_core::media::audio::SAMPLE_RATE).to_text(),
    ))
    .await
    .map_err(|e| fail(e.to_string()))?;
    Ok(ws)
}

#[allow(clippy::too_many_arguments)]
async fn call(
    config: Arc<EndpointConfig>,
    client: AsyncClient,
    device: DeviceId,
    id: u64,
    offer: Description,
    cmds: mpsc::UnboundedReceiver<CallCmd>,
    ended: mpsc::UnboundedSender<Ended>,
) {
    let mut stats = PeerStats::default();
    let reason = match run_call(&config, &client, &device, offer, cmds, &mut stats).await {
        Ok(r) => r,
        Err((why, detail)) => {
            let msg = why.message(&detail);
            publish(&client, &device, msg).await;
            format!("{}: {detail}", why.code())
        }
    };
    let _ = ended.send(Ended {
        device,
        id,
        reason,
        stats,
    });
}

/// One call, from the answer to its end; returns the reason it ended (already sent to the
/// device), or the reason to send.
async fn run_call(
    config: &EndpointConfig,
    client: &AsyncClient,
    device: &DeviceId,
    offer: Description,
    mut cmds: mpsc::UnboundedReceiver<CallCmd>,
    stats: &mut PeerStats,
) -> Result<String, (Termination, String)> {
    let mut peer = Peer::bind(config.bind)
        .await
        .map_err(|e| (Termination::BadOffer, e.to_string()))?;
    peer.drop_incoming_percent(config.drop_percent);
    let answer = peer.answer(&offer.sdp).map_err(|e| {
        (
            Termination::BadOffer,
            format!("the endpoint could not take the offer's SDP ({e})"),
        )
    })?;
    let mut state = Call::with_ice_timeout(now(), config.ice_timeout);
    let reply = EndpointSignal::SdpAnswer {
        data: Description {
            kind: "answer".into(),
            sdp: answer,
        },
    };
    publish(client, device, reply).await;
    let ws = open_voice(config, device).await.map_err(|e| {
        (
            Termination::VoiceUnavailable,
            format!("{e}; is the Hub running, and is AXON_MEDIA_TOKEN the same on both sides?"),
        )
    })?;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let text_topic = signalling::topic(Channel::TextToDevice, device);
    let end = |state: &mut Call, why: Termination, detail: &str| {
        let msg = state.end(why, detail);
        (msg, format!("{}: {detail}", why.code()))
    };
    let outcome = loop {
        let deadline = state.deadline().map(instant_of);
        tokio::select! {
            ev = peer.next() => match ev {
                Ok(PeerEvent::Connected) => {
                    state.connected();
                    report("call_connected", json!({ "device": device.as_str() }));
                }
                Ok(PeerEvent::Disconnected) => {
                    break (state.disconnected(), format!("{}: the device's connection was lost", Termination::Disconnected.code()));
                }
                Ok(PeerEvent::Audio(pcm)) => {
                    if ws_tx.send(Message::binary(to_le_bytes(&pcm))).await.is_err() {
                        break end(&mut state, Termination::VoiceUnavailable, "the Hub closed the voice session");
                    }
                }
                Ok(PeerEvent::Drained) => {
                    let _ = ws_tx.send(Message::text(ClientMessage::PlaybackDone.to_text())).await;
                }
                Err(e) => break end(&mut state, Termination::Disconnected, &e.to_string()),
            },
            m = ws_rx.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    if let Err(e) = peer.queue_speech(&from_le_bytes(&b)) {
                        tracing::warn!(error = %e, "answer audio not sent");
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let Ok(msg) = ServerMessage::parse(&t) else { continue };
                    match &msg {
                        ServerMessage::TtsTerminate { .. } => peer.flush_speech(),
                        ServerMessage::TtsComplete { .. } => {
                            if let Err(e) = peer.finish_speech() {
                                tracing::warn!(error = %e, "last answer frame not sent");
                            }
                        }
                        _ => {}
                    }
                    if let Some(side) = signalling::side_channel(&msg) {
                        let _ = client.publish(text_topic.clone(), QoS::AtLeastOnce, false, side.to_bytes()).await;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    break end(&mut state, Termination::VoiceUnavailable, "the Hub closed the voice session");
                }
                Some(Ok(_)) => {}
            },
            c = cmds.recv() => match c {
                Some(CallCmd::Candidate(line)) => {
                    if let Err(e) = peer.add_remote_candidate(&line) {
                        tracing::info!(device = device.as_str(), error = %e, "remote candidate ignored");
                    }
                }
                Some(CallCmd::Chat(text)) => {
                    let _ = ws_tx.send(Message::text(ClientMessage::Text { text }.to_text())).await;
                }
                Some(CallCmd::End(why, detail)) => break end(&mut state, why, &detail),
                None => break end(&mut state, Termination::Shutdown, "the media endpoint is stopping"),
            },
            () = sleep_until_opt(deadline) => {
                if let Some(msg) = state.poll(now()) {
                    let reason = match &msg {
                        EndpointSignal::WebrtcTerminated { reason } => reason.clone(),
                        _ => String::new(),
                    };
                    break (Some(msg), reason);
                }
            }
        }
    };
    *stats = peer.stats();
    peer.close();
    let _ = ws_tx.send(Message::Close(None)).await;
    let (msg, reason) = outcome;
    if let Some(m) = msg {
        publish(client, device, m).await;
    }
    Ok(reason)
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_hub_address_is_plain_http_or_a_clear_error() {
        assert_eq!(
            worker_host("http://127.0.0.1:8787/").unwrap(),
            "127.0.0.1:8787"
        );
        let e = worker_host("https://hub.example").unwrap_err().to_string();
        assert!(e.contains("http://HOST:PORT"), "{e}");
    }
}
