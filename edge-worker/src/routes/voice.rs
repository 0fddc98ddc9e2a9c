//! `GET /api/voice`: a full-duplex voice session over a WebSocket (docs/voice.md).
//!
//! Owns the session's I/O: frames and control messages from the socket into axon-core's
//! [`VoiceSession`], its requests out to ASR and TTS ([`crate::speech`]) and to agent turns
//! ([`crate::agent`]), and what it answers back onto the socket and `/api/events`. What
//! happens when is axon-core's; this loop only waits on the socket, the providers and the
//! playback timer.

use std::time::Duration;

use axon_core::agent::llm::Message;
use axon_core::agent::turn::{TurnEvent, TurnUpdate};
use axon_core::media::audio::VadConfig;
use axon_core::media::speech::asr_prompt;
use axon_core::media::voice::{
    ErrorCode, Mode, Outbound, ServerMessage, SpeechKey, VoiceAction, VoiceConfig, VoiceSession,
};
use futures_channel::mpsc;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use serde_json::json;
use worker::{Request, Response, Result, WebSocket, WebSocketPair, WebsocketEvent};

use crate::clock::now;
use crate::config::AsrPrompt;
use crate::http::{bad_request, device_of, user_of};
use crate::hub::Ctx;
use axon_core::trust::access::{Access, Action, Principal};

enum Done {
    Transcript(u64, std::result::Result<String, String>),
    Speech(
        String,
        u32,
        SpeechKey,
        std::result::Result<Vec<i16>, String>,
    ),
}

/// Accepts the WebSocket and starts the session's loop.
pub async fn handle(ctx: &Ctx, req: Request, who: Principal) -> Result<Response> {
    let upgrade = req
        .headers()
        .get("upgrade")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Response::error(
            "/api/voice is a WebSocket: connect with ws://HOST/api/voice?user=U&device=D&mode=hands_free (docs/voice.md)",
            426,
        );
    }
    let url = req.url()?;
    let query = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.to_string())
    };
    let named = match query("user") {
        None => None,
        Some(u) => match user_of(&json!({ "user": u })) {
            Ok(u) => Some(u),
            Err(e) => return bad_request(e),
        },
    };
    let device = match device_of(&json!({ "device": query("device") })) {
        Ok(d) => d,
        Err(e) => return bad_request(e),
    };
    let person = match who.voice_speaker(named.as_deref(), device.as_deref()) {
        Ok(p) => p,
        Err(e) if e.code == axon_core::protocol::jsonrpc::code::INVALID_PARAMS => {
            return bad_request(e.message)
        }
        Err(e) => return crate::http::error_response(403, &e),
    };
    // A browser that offered subprotocols (its credential rides in one) needs one back.
    let offered = req
        .headers()
        .get("sec-websocket-protocol")
        .ok()
        .flatten()
        .is_some_and(|p| p.split(',').any(|p| p.trim() == "axon"));
    let mode = match query("mode").as_deref() {
        None | Some("") => Mode::HandsFree,
        Some(m) => match Mode::parse(m) {
            Some(m) => m,
            None => return bad_request(format!("mode {m:?}: use hands_free or push_to_talk")),
        },
    };
    let session = format!("v{}", ctx.next_turn_id().trim_start_matches('t'));
    let mut config = VoiceConfig::new(session);
    config.mode = mode;
    config.vad = VadConfig {
        silence_ms: ctx.config().vad_silence_ms,
        pause_ms: ctx.config().vad_pause_ms,
        ..VadConfig::default()
    };
    config.asr = ctx.config().asr.name().into();
    config.tts = ctx.config().tts.name().into();
    config.llm = ctx.config().llm_name().into();
    config.semantic_endpoint = ctx.config().semantic_endpoint;
    config.device = device.clone();
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    wasm_bindgen_futures::spawn_local(run(ctx.clone(), pair.server, config, who, person, device));
    let resp = Response::from_websocket(pair.client)?;
    if offered {
        let h = worker::Headers::new();
        h.set("sec-websocket-protocol", "axon")?;
        return Ok(resp.with_headers(h));
    }
    Ok(resp)
}

async fn run(
    ctx: Ctx,
    ws: WebSocket,
    config: VoiceConfig,
    who: Principal,
    person: Option<String>,
    device: Option<String>,
) {
    let user = person.clone().unwrap_or_else(|| who.label());
    let mut session = VoiceSession::new(config);
    let Ok(mut socket) = ws.events() else {
        return;
    };
    let (turn_tx, mut turn_rx) = mpsc::unbounded::<(String, TurnUpdate)>();
    let mut work: FuturesUnordered<LocalBoxFuture<'static, Option<Done>>> = FuturesUnordered::new();
    // Never empty, so waiting on it never ends at once.
    work.push(futures_util::future::pending().boxed_local());
    loop {
        while let Some(action) = session.poll_action() {
            match action {
                VoiceAction::Transcribe { utterance, wav } => {
                    // The semantic endpoint judges the transcript against the devices as
                    // they are when it was asked for.
                    session.set_devices(ctx.devices());
                    let ctx = ctx.clone();
                    let prompt = match &ctx.config().asr_prompt {
                        AsrPrompt::Auto => ctx.registry(|c| asr_prompt(c.devices())),
                        AsrPrompt::Off => String::new(),
                        AsrPrompt::Fixed(text) => text.clone(),
                    };
                    work.push(
                        async move {
                            let r = crate::speech::transcribe(
                                &ctx.config().asr,
                                ctx.env(),
                                wav,
                                &prompt,
                            )
                            .await;
                            Some(Done::Transcript(utterance, r))
                        }
                        .boxed_local(),
                    );
                }
                VoiceAction::Synthesize { turn, index, text } => {
                    let key = ctx.speech_key(&text);
                    if let Some(samples) = ctx.cached_speech(&key) {
                        session.handle_cached_speech(now(), &turn, index, samples);
                        continue;
                    }
                    let ctx = ctx.clone();
                    work.push(
                        async move {
                            let r = crate::speech::synthesize(&ctx.config().tts, ctx.env(), &text)
                                .await;
                            Some(Done::Speech(turn, index, key, r))
                        }
                        .boxed_local(),
                    );
                }
                VoiceAction::StartTurn { turn, text } => {
                    start_turn(
                        &ctx,
                        &who,
                        person.clone(),
                        device.clone(),
                        turn,
                        text,
                        &turn_tx,
                    )
                    .await;
                }
                VoiceAction::Confirm { id, approve } => {
                    if let Access::Refuse { error, .. } = who.may(Action::Approve) {
                        let _ = ws.send_with_str(
                            ServerMessage::error(ErrorCode::BadMessage, error.message).to_text(),
                        );
                        continue;
                    }
                    match ctx.answer_confirmation(&id, approve) {
                        true => {}
                        false => {
                            let _ = ws.send_with_str(ServerMessage::error(
                                ErrorCode::BadMessage,
                                format!("no confirmation is waiting under {id:?}: it was answered, timed out (60 s), or never asked"),
                            ).to_text());
                        }
                    }
                }
            }
        }
        while let Some(out) = session.poll_outbound() {
            let sent = match out {
                Outbound::Audio(bytes) => ws.send_with_bytes(&bytes),
                Outbound::Message(msg) => {
                    if let ServerMessage::Timings(_) = &msg {
                        // The message itself, `"type"` and all, as docs/voice.md §1.4 says.
                        let timings = serde_json::to_value(&msg).unwrap_or_default();
                        ctx.publish_event(
                            "voice_timings",
                            &json!({"user": user, "timings": timings}),
                        );
                    }
                    ws.send_with_str(msg.to_text())
                }
            };
            if sent.is_err() {
                return; // the device went away; its turns still finish and are remembered
            }
        }
        let wait = session
            .poll_timeout()
            .map(|d| d.saturating_since(now()).max(Duration::from_millis(1)))
            .unwrap_or(Duration::from_secs(60));
        futures_util::select! {
            ev = socket.next().fuse() => match ev {
                Some(Ok(WebsocketEvent::Message(m))) => {
                    if let Some(text) = m.text() {
                        session.handle_text(now(), &text);
                    } else if let Some(bytes) = m.bytes() {
                        session.handle_audio(now(), &bytes);
                    }
                }
                Some(Ok(WebsocketEvent::Close(_))) | Some(Err(_)) | None => return,
            },
            done = work.next() => match done.flatten() {
                Some(Done::Transcript(utterance, r)) => session.handle_transcript(now(), utterance, r),
                Some(Done::Speech(turn, index, key, r)) => {
                    if let Ok(samples) = &r {
                        ctx.keep_speech(key, samples.clone());
                    }
                    session.handle_speech(now(), &turn, index, r)
                }
                None => {}
            },
            ev = turn_rx.next() => {
                if let Some((turn, update)) = ev {
                    session.handle_turn(now(), &turn, &update);
                }
            },
            _ = worker::Delay::from(wait).fuse() => session.handle_timeout(now()),
        }
    }
}

/// Starts an agent turn whose events come back on `to_session`, tagged with the turn id.
async fn start_turn(
    ctx: &Ctx,
    who: &Principal,
    person: Option<String>,
    device: Option<String>,
    turn: String,
    text: String,
    to_session: &mpsc::UnboundedSender<(String, TurnUpdate)>,
) {
    let (tx, mut rx) = mpsc::unbounded::<TurnUpdate>();
    let user = person.clone().unwrap_or_else(|| who.label());
    match crate::agent::begin_turn(
        ctx,
        Some(turn.clone()),
        person.as_deref(),
        device,
        Message::user(text),
    )
    .await
    {
        Ok((id, t)) => {
            let _ = tx.unbounded_send(TurnUpdate::Started {
                turn: id.clone(),
                user: user.to_string(),
                llm: ctx.config().llm_name().into(),
                vlm: ctx.config().vlm_name().into(),
            });
            wasm_bindgen_futures::spawn_local(crate::agent::drive(
                ctx.clone(),
                id,
                who.clone(),
                person,
                t,
                tx,
            ));
        }
        Err(e) => {
            let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::Error {
                message: format!("the turn could not start: {e}"),
            }));
            let _ = tx.unbounded_send(TurnUpdate::Done { turn: turn.clone() });
        }
    }
    let to_session = to_session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        while let Some(update) = rx.next().await {
            if to_session.unbounded_send((turn.clone(), update)).is_err() {
                return;
            }
        }
    });
}
