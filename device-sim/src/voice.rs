//! The board side of voice: a client of the Hub's `/api/voice` WebSocket (docs/voice.md §1).
//!
//! Owns the device's half of a voice session and nothing of the protocol's decisions (the Hub
//! does VAD, endpointing, ASR, the agent turn, TTS and barge-in):
//! - a microphone that sends 20 ms s16le frames at real-time pace, the queued speech or else
//!   silence, and notes when the first and last *voiced* samples of each utterance left;
//! - a speaker that counts what it would be playing from the audio it received (real time from
//!   the first frame; a `tts_terminate` stops it at once);
//! - turn bookkeeping: the events of one turn, its answer audio, the Hub's `timings`, and the
//!   client's own measure, the last speech sample sent → the first answer audio received.
//!
//! Used by `axon-device-sim say`, the voice system tests and the voice benchmark.
//!
//! ```no_run
//! # async fn demo() -> Result<(), device_sim::SimError> {
//! use device_sim::voice::{VoiceOptions, VoiceSession};
//! let mut s = VoiceSession::connect(&VoiceOptions::new("http://127.0.0.1:8787")).await?;
//! let speech = device_sim::voice::read_wav("in.wav".as_ref())?;
//! let turn = s.turn(speech, std::time::Duration::from_secs(30), &mut |_| {}).await?;
//! println!("{:?} ms to the first answer audio", turn.speech_end_to_first_audio_ms());
//! # Ok(()) }
//! ```

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::time::Duration;

use axon_core::agent::turn::TurnEvent;
use axon_core::media::audio::{self, SAMPLES_PER_10MS, SAMPLE_RATE};
use axon_core::media::voice::wire::message_type;
use axon_core::media::voice::{ClientMessage, ErrorCode, ServerMessage, VoiceState};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::SimError;

/// Milliseconds of audio in one frame the microphone sends (the contract's recommendation).
pub const FRAME_MS: u64 = axon_core::media::voice::FRAME_MS as u64;
/// Samples in one frame.
pub use axon_core::media::voice::FRAME_SAMPLES;
/// Anything quieter is not speech when we look for where a recording's speech begins and ends:
/// the Hub's VAD never takes less as speech either (`VadConfig::min_speech_dbfs`).
pub const SPEECH_DBFS: f32 = -45.0;

/// How utterances are marked (the `mode` query parameter): the contract's own.
pub use axon_core::media::voice::Mode;

/// How a session connects.
#[derive(Debug, Clone)]
pub struct VoiceOptions {
    /// The Hub: `http://HOST:PORT` (or `ws://`); `/api/voice` is added.
    pub worker: String,
    /// The device that speaks and listens (`device=`).
    pub device: Option<String>,
    /// Whose conversation memory the turns use (`user=`).
    pub user: Option<String>,
    /// Hands-free or push-to-talk.
    pub mode: Mode,
    /// Send the `start` message stating the format first (tests of bad formats turn it off).
    pub send_start: bool,
    /// Keep the microphone running with silence between utterances, as a board does; off, it
    /// sends only queued speech.
    pub idle_audio: bool,
    /// How long to wait for the socket and the `ready` message.
    pub connect_timeout: Duration,
    /// The credential the Hub asks for: the owner token, a person's or a paired device's
    /// (sent as `Authorization: Bearer`; never logged).
    pub token: Option<String>,
}

impl VoiceOptions {
    /// Defaults for the Hub at `worker`: hands-free, `start` sent, microphone running.
    pub fn new(worker: &str) -> Self {
        VoiceOptions {
            worker: worker.to_string(),
            device: None,
            user: None,
            mode: Mode::HandsFree,
            send_start: true,
            idle_audio: true,
            connect_timeout: Duration::from_secs(10),
            token: None,
        }
    }
}

/// `ws://HOST:PORT/api/voice?...` for these options. `https://` and `wss://` are refused with
/// a message: this client has no TLS.
pub fn voice_url(o: &VoiceOptions) -> Result<String, SimError> {
    let host = worker_host(&o.worker)?;
    let mut url = format!("ws://{host}/api/voice?mode={}", o.mode.as_str());
    if let Some(u) = &o.user {
        url.push_str(&format!("&user={}", query_escape(u)));
    }
    if let Some(d) = &o.device {
        url.push_str(&format!("&device={}", query_escape(d)));
    }
    Ok(url)
}

/// `HOST:PORT` of the Hub at `http://HOST:PORT` (or `ws://`); `https://` and `wss://` are
/// refused with a message: this client has no TLS.
pub fn worker_host(worker: &str) -> Result<String, SimError> {
    let w = worker.trim();
    let rest = if let Some(r) = w
        .strip_prefix("http://")
        .or_else(|| w.strip_prefix("ws://"))
    {
        r
    } else if w.starts_with("https://") || w.starts_with("wss://") {
        return Err(SimError::VoiceTls(w.to_string()));
    } else {
        return Err(SimError::VoiceUrl(w.to_string()));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(SimError::VoiceUrl(w.to_string()));
    }
    Ok(host.to_string())
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads a 16-bit PCM WAV (any rate, any channels) as 16 kHz mono.
pub fn read_wav(path: &Path) -> Result<Vec<i16>, SimError> {
    let bad = |detail: String| SimError::Audio {
        path: path.display().to_string(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let wav = audio::wav_decode(&bytes).map_err(|e| bad(e.to_string()))?;
    if wav.samples.is_empty() {
        return Err(bad("it holds no samples".into()));
    }
    Ok(audio::resample(&wav.samples, wav.sample_rate, SAMPLE_RATE))
}

/// Where the speech in a recording lies: the first sample of the first voiced 10 ms and the
/// end of the last one, or `None` if nothing in it is louder than [`SPEECH_DBFS`].
pub fn speech_span(samples: &[i16]) -> Option<(usize, usize)> {
    let voiced = |(_, c): &(usize, &[i16])| audio::level_dbfs(c) > SPEECH_DBFS;
    let mut steps = samples.chunks(SAMPLES_PER_10MS).enumerate();
    let first = steps.find(voiced)?.0;
    let last = samples
        .chunks(SAMPLES_PER_10MS)
        .enumerate()
        .rev()
        .find(voiced)
        .map_or(first, |(i, _)| i);
    Some((
        first * SAMPLES_PER_10MS,
        ((last + 1) * SAMPLES_PER_10MS).min(samples.len()),
    ))
}

/// When an utterance's frames left the client (each the moment the frame carrying that sample
/// was written to the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechSent {
    /// The utterance's first frame.
    pub first_frame: Instant,
    /// The frame with its first voiced sample (the speech's start).
    pub speech_start: Instant,
    /// The frame with its last voiced sample (the speech's end).
    pub speech_end: Instant,
    /// Its last frame (trailing silence included).
    pub last_frame: Instant,
}

/// Something that came from the Hub, with the time it arrived.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// When the client read it.
    pub at: Instant,
    /// What it was.
    pub msg: Inbound,
}

/// A message from the Hub.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A text message, as JSON (read it as a type with [`Incoming::message`]).
    Json(Value),
    /// A text message that is not JSON.
    Unparsed(String),
    /// Audio: s16le mono 16 kHz samples (an odd trailing byte is dropped).
    Audio(Vec<i16>),
    /// The socket closed, with the reason if there was one.
    Closed(Option<String>),
}

impl Incoming {
    /// The JSON message's `type`, if it is one.
    pub fn kind(&self) -> Option<&str> {
        match &self.msg {
            Inbound::Json(v) => message_type(v),
            _ => None,
        }
    }

    /// The text message as the contract's type; `None` for audio, a close, or a message
    /// docs/voice.md does not describe.
    pub fn message(&self) -> Option<ServerMessage> {
        match &self.msg {
            Inbound::Json(v) => ServerMessage::from_json(v).ok(),
            _ => None,
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// The Hub sent the turn's `timings`.
    Timings,
    /// `done` and the speech arrived and played, but no `timings` came.
    Played,
    /// An error that ends a turn (`asr_failed`, `turn_failed`, or `asr_empty` with no
    /// re-prompt), by its code.
    Failed(String),
    /// The timeout passed first.
    Timeout,
    /// The socket closed.
    Closed(Option<String>),
}

/// One turn as the client saw it.
#[derive(Debug, Clone)]
pub struct Turn {
    /// When the speech left the client (`None` if the turn ended before it was all sent).
    pub sent: Option<SpeechSent>,
    /// Every JSON message of the turn, with its arrival time.
    pub events: Vec<(Instant, Value)>,
    /// The answer audio received (until a `tts_terminate`, if one came).
    pub audio: Vec<i16>,
    /// Binary messages received.
    pub audio_messages: usize,
    /// When the first answer audio arrived.
    pub first_audio_at: Option<Instant>,
    /// How it ended.
    pub end: TurnEnd,
}

impl Turn {
    /// The first message of type `kind`.
    pub fn event(&self, kind: &str) -> Option<&Value> {
        self.events
            .iter()
            .map(|(_, v)| v)
            .find(|v| message_type(v) == Some(kind))
    }

    /// Every `error` message: the session's (with a `code`) and the agent turn's.
    pub fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .map(|(_, v)| v)
            .filter(|v| {
                matches!(
                    ServerMessage::from_json(v),
                    Ok(ServerMessage::Error { .. } | ServerMessage::Agent(TurnEvent::Error { .. }))
                )
            })
            .collect()
    }

    /// Milliseconds of answer audio.
    pub fn audio_ms(&self) -> u64 {
        self.audio.len() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }

    /// The client's measure: the frame with the last speech sample sent → the first answer
    /// audio received (negative if audio came before the speech ended).
    pub fn speech_end_to_first_audio_ms(&self) -> Option<f64> {
        let (sent, first) = (self.sent?, self.first_audio_at?);
        Some(signed_ms(first, sent.speech_end))
    }
}

/// The `turn` of the first `kind` message in `seen` (e.g. whose transcript came first).
pub fn turn_of(seen: &[Incoming], kind: &str) -> Option<String> {
    seen.iter()
        .find(|i| i.kind() == Some(kind))
        .and_then(|i| match &i.msg {
            Inbound::Json(v) => v["turn"].as_str().map(str::to_string),
            _ => None,
        })
}

/// `a - b` in milliseconds, signed.
pub fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}

enum Command {
    Speak {
        samples: Vec<i16>,
        ptt: bool,
        reply: oneshot::Sender<SpeechSent>,
    },
    Text(String),
    Binary(Vec<u8>),
    IdleAudio(bool),
    Close(oneshot::Sender<()>),
}

/// An open voice session.
pub struct VoiceSession {
    commands: mpsc::UnboundedSender<Command>,
    inbound: mpsc::UnboundedReceiver<Incoming>,
    ready: Value,
    mode: Mode,
    /// When what the speaker was given will have played out.
    playback_end: Option<Instant>,
    /// Turn ids already reported, so their late messages do not end the next turn.
    finished_turns: HashSet<String>,
    closed: Option<Option<String>>,
}

impl VoiceSession {
    /// Opens the WebSocket, sends `start` (unless told not to), and waits for `ready`.
    pub async fn connect(o: &VoiceOptions) -> Result<VoiceSession, SimError> {
        let url = voice_url(o)?;
        let failed = |detail: String| SimError::VoiceConnect {
            url: url.clone(),
            detail,
        };
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(t) = &o.token {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| failed("the token holds characters a header cannot carry".into()))?;
            req.headers_mut().insert("authorization", v);
        }
        let open = tokio_tungstenite::connect_async_with_config(req, None, true);
        let (ws, _) = match tokio::time::timeout(o.connect_timeout, open).await {
            Ok(Ok(ok)) => ok,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => {
                return Err(failed(format!(
                    "no answer within {} s",
                    o.connect_timeout.as_secs()
                )))
            }
        };
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        tokio::spawn(drive(ws, command_rx, inbound_tx, o.idle_audio));
        let mut s = VoiceSession {
            commands,
            inbound,
            ready: Value::Null,
            mode: o.mode,
            playback_end: None,
            finished_turns: HashSet::new(),
            closed: None,
        };
        if o.send_start {
            s.send(&ClientMessage::start(SAMPLE_RATE));
        }
        let deadline = Instant::now() + o.connect_timeout;
        loop {
            match s.next(deadline).await {
                Some(
                    inc @ Incoming {
                        msg: Inbound::Json(_),
                        ..
                    },
                ) if matches!(inc.message(), Some(ServerMessage::Ready { .. })) => {
                    if let Inbound::Json(v) = inc.msg {
                        s.ready = v;
                    }
                    return Ok(s);
                }
                Some(Incoming {
                    msg: Inbound::Closed(reason),
                    ..
                }) => {
                    return Err(failed(format!(
                        "closed before ready: {}",
                        reason.unwrap_or_else(|| "no reason given".into())
                    )))
                }
                Some(_) => {}
                None => {
                    return Err(failed(format!(
                        "no ready message within {} s",
                        o.connect_timeout.as_secs()
                    )))
                }
            }
        }
    }

    /// The Hub's `ready` message.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// Sends a control message now (between microphone frames).
    pub fn send(&self, m: &ClientMessage) {
        let _ = self.commands.send(Command::Text(m.to_text()));
    }

    /// Sends any JSON as a text message now (hostile-input tests).
    pub fn send_json(&self, v: &Value) {
        let _ = self.commands.send(Command::Text(v.to_string()));
    }

    /// Sends a binary message now, outside the microphone's pacing (hostile-input tests).
    pub fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.commands.send(Command::Binary(bytes));
    }

    /// Turns the silence between utterances on or off.
    pub fn set_idle_audio(&self, on: bool) {
        let _ = self.commands.send(Command::IdleAudio(on));
    }

    /// Queues an utterance on the microphone (after what is queued); the answer says when its
    /// frames left. In push-to-talk mode it is wrapped in `ptt` down/up.
    pub fn speak(&self, samples: Vec<i16>) -> oneshot::Receiver<SpeechSent> {
        let (reply, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Speak {
            samples,
            ptt: self.mode == Mode::PushToTalk,
            reply,
        });
        rx
    }

    /// The next message, or `None` at the deadline (or once the socket has closed and the
    /// close was reported). Keeps the speaker's count.
    pub async fn next(&mut self, deadline: Instant) -> Option<Incoming> {
        if self.closed.is_some() {
            return None;
        }
        let inc = match tokio::time::timeout_at(deadline, self.inbound.recv()).await {
            Ok(Some(inc)) => inc,
            Ok(None) => Incoming {
                at: Instant::now(),
                msg: Inbound::Closed(None),
            },
            Err(_) => return None,
        };
        match &inc.msg {
            Inbound::Audio(samples) => {
                let d = Duration::from_micros(samples.len() as u64 * 1_000_000 / 16_000);
                let from = self.playback_end.map_or(inc.at, |e| e.max(inc.at));
                self.playback_end = Some(from + d);
            }
            Inbound::Json(_)
                if matches!(inc.message(), Some(ServerMessage::TtsTerminate { .. })) =>
            {
                // Stop now and drop what is queued.
                self.playback_end = Some(inc.at);
            }
            Inbound::Closed(reason) => self.closed = Some(reason.clone()),
            Inbound::Json(_) | Inbound::Unparsed(_) => {}
        }
        Some(inc)
    }

    /// Waits for a message `pred` accepts; every message on the way goes to `seen`. `None`
    /// at the deadline or when the socket closes.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        seen: &mut Vec<Incoming>,
        pred: impl Fn(&Incoming) -> bool,
    ) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        while let Some(inc) = self.next(deadline).await {
            seen.push(inc.clone());
            if pred(&inc) {
                return Some(inc);
            }
        }
        None
    }

    /// Whether the speaker is still playing answer audio at `at`.
    pub fn playing(&self, at: Instant) -> bool {
        self.playback_end.is_some_and(|e| e > at)
    }

    /// When what the speaker was given will have played out.
    pub fn playback_end(&self) -> Option<Instant> {
        self.playback_end
    }

    /// Speaks `samples` and follows the turn until its `timings` (or an error that ends it, or
    /// `done` with its speech played, or the timeout), then lets the answer play out and sends
    /// `playback_done`. Every message goes to `on` as it arrives.
    pub async fn turn(
        &mut self,
        samples: Vec<i16>,
        timeout: Duration,
        on: &mut dyn FnMut(&Incoming),
    ) -> Result<Turn, SimError> {
        let deadline = Instant::now() + timeout;
        let mut sent_rx = Some(self.speak(samples));
        let mut t = Turn {
            sent: None,
            events: Vec::new(),
            audio: Vec::new(),
            audio_messages: 0,
            first_audio_at: None,
            end: TurnEnd::Timeout,
        };
        let mut ids: HashSet<String> = HashSet::new();
        let (mut done, mut spoken, mut terminated) = (false, false, false);
        let (mut empty, mut begun) = (false, false);
        let end = loop {
            // Waiting on playback only once everything else is in.
            let wake = match (done && spoken, self.playback_end) {
                (true, Some(e)) if e > Instant::now() => e.min(deadline),
                (true, _) => break TurnEnd::Played,
                _ => deadline,
            };
            let inc = tokio::select! {
                sent = async { sent_rx.as_mut().expect("polled only while pending").await }, if sent_rx.is_some() => {
                    sent_rx = None;
                    t.sent = sent.ok();
                    continue;
                }
                inc = self.next(wake) => inc,
            };
            let Some(inc) = inc else {
                if Instant::now() >= deadline {
                    break TurnEnd::Timeout;
                }
                continue;
            };
            on(&inc);
            match &inc.msg {
                Inbound::Audio(s) => {
                    if !terminated {
                        t.first_audio_at.get_or_insert(inc.at);
                        t.audio.extend_from_slice(s);
                        t.audio_messages += 1;
                    }
                }
                Inbound::Closed(reason) => break TurnEnd::Closed(reason.clone()),
                Inbound::Unparsed(_) => {}
                Inbound::Json(v) => {
                    let turn_id = v["turn"].as_str().map(str::to_string);
                    if turn_id
                        .as_ref()
                        .is_some_and(|id| self.finished_turns.contains(id))
                    {
                        // A late message of an earlier turn: shown, not counted.
                        continue;
                    }
                    ids.extend(turn_id);
                    t.events.push((inc.at, v.clone()));
                    let Some(msg) = inc.message() else {
                        continue; // not in the contract: shown, not counted
                    };
                    match msg {
                        ServerMessage::Timings(_) => break TurnEnd::Timings,
                        ServerMessage::Done { .. } => done = true,
                        ServerMessage::TtsComplete { .. } => spoken = true,
                        ServerMessage::TtsBegin { .. } => begun = true,
                        // Nothing understood and nothing to say (a press too short to hold
                        // words): the Hub is listening again, no re-prompt is coming.
                        ServerMessage::State {
                            state: VoiceState::Listening,
                        } if empty && !begun => {
                            break TurnEnd::Failed(ErrorCode::AsrEmpty.as_str().into())
                        }
                        ServerMessage::TtsTerminate { .. } => {
                            terminated = true;
                            spoken = true;
                        }
                        ServerMessage::Error { code, .. } => match code {
                            ErrorCode::AsrFailed | ErrorCode::TurnFailed => {
                                break TurnEnd::Failed(code.as_str().into())
                            }
                            ErrorCode::TtsFailed => spoken = true,
                            // The re-prompt is spoken, but no agent turn runs.
                            ErrorCode::AsrEmpty => {
                                done = true;
                                empty = true;
                            }
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
        };
        t.end = end;
        self.finished_turns.extend(ids);
        if t.sent.is_none() {
            if let Some(rx) = sent_rx {
                // The speech is still going out (the turn failed early): wait for it, within
                // the turn's deadline, so the next turn does not overlap it.
                t.sent = tokio::time::timeout_at(deadline, rx)
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
        }
        self.play_out(deadline, on).await;
        Ok(t)
    }

    /// Lets the speaker finish what it was given (reading messages meanwhile), then tells the
    /// Hub with `playback_done`.
    pub async fn play_out(&mut self, deadline: Instant, on: &mut dyn FnMut(&Incoming)) {
        while let Some(end) = self.playback_end.filter(|e| *e > Instant::now()) {
            if let Some(inc) = self.next(end.min(deadline)).await {
                on(&inc);
            } else if Instant::now() >= deadline {
                return;
            }
        }
        if self.playback_end.is_some() && self.closed.is_none() {
            self.send(&ClientMessage::PlaybackDone);
        }
    }

    /// Closes the socket (bounded).
    pub async fn close(self) {
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Close(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }
}

/// The `start` message for s16le mono at `sample_rate`, as JSON (for [`VoiceSession::send_json`]).
pub fn start_message(sample_rate: u32) -> Value {
    serde_json::to_value(ClientMessage::start(sample_rate)).unwrap_or_default()
}

struct Utterance {
    start: u64,
    speech_start: u64,
    speech_end: u64,
    end: u64,
    ptt: bool,
    times: [Option<Instant>; 4],
    reply: Option<oneshot::Sender<SpeechSent>>,
}

/// The microphone: queued samples out in 20 ms frames on a real-time schedule.
struct Mic {
    queue: VecDeque<i16>,
    idle_audio: bool,
    /// The schedule's origin and the frames sent on it.
    clock: Option<(Instant, u32)>,
    /// Samples sent so far (the position utterances are marked in).
    sent: u64,
    queued_end: u64,
    utterances: Vec<Utterance>,
}

/// A frame that falls this far behind its slot (a stalled process) restarts the schedule
/// instead of bursting to catch up, which would no longer be real time.
const MAX_LATE: Duration = Duration::from_millis(100);

impl Mic {
    fn active(&self) -> bool {
        self.idle_audio || !self.queue.is_empty()
    }

    fn next_frame(&mut self, now: Instant) -> Option<Instant> {
        if !self.active() {
            self.clock = None;
            return None;
        }
        let (origin, n) = *self.clock.get_or_insert((now, 0));
        let slot = origin + Duration::from_millis(FRAME_MS) * n;
        if now > slot + MAX_LATE {
            self.clock = Some((now, 0));
            return Some(now);
        }
        Some(slot)
    }

    fn queue(&mut self, samples: Vec<i16>, ptt: bool, reply: oneshot::Sender<SpeechSent>) {
        let start = self.queued_end;
        let len = samples.len() as u64;
        let (a, b) = speech_span(&samples).map_or((0, len), |(a, b)| (a as u64, b as u64));
        // Whole frames: the last one is padded with silence.
        let padded = len.div_ceil(FRAME_SAMPLES as u64).max(1) * FRAME_SAMPLES as u64;
        self.queue.extend(samples);
        self.queue
            .extend(std::iter::repeat_n(0, (padded - len) as usize));
        self.queued_end += padded;
        self.utterances.push(Utterance {
            start,
            speech_start: start + a,
            speech_end: start + b.saturating_sub(1).max(a),
            end: start + padded - 1,
            ptt,
            times: [None; 4],
            reply: Some(reply),
        });
    }

    /// The next frame's samples, and whether a `ptt` down goes before it / up after it.
    fn take(&mut self) -> (Vec<i16>, bool, bool) {
        let (a, b) = (self.sent, self.sent + FRAME_SAMPLES as u64);
        let n = self.queue.len().min(FRAME_SAMPLES);
        let mut frame: Vec<i16> = self.queue.drain(..n).collect();
        frame.resize(FRAME_SAMPLES, 0);
        if n == 0 {
            // Idle silence: it takes no place in the utterances' positions.
            self.queued_end = b;
        }
        let down = self
            .utterances
            .iter()
            .any(|u| u.ptt && (a..b).contains(&u.start));
        let up = self
            .utterances
            .iter()
            .any(|u| u.ptt && (a..b).contains(&u.speech_end));
        (frame, down, up)
    }

    /// Notes that the frame taken last left at `at`; answers utterances that are all sent.
    fn sent_at(&mut self, at: Instant) {
        let (a, b) = (self.sent, self.sent + FRAME_SAMPLES as u64);
        self.sent = b;
        if let Some((origin, n)) = self.clock {
            self.clock = Some((origin, n + 1));
        }
        for u in &mut self.utterances {
            for (i, pos) in [u.start, u.speech_start, u.speech_end, u.end]
                .into_iter()
                .enumerate()
            {
                if (a..b).contains(&pos) {
                    u.times[i] = Some(at);
                }
            }
            if let [Some(f), Some(s), Some(e), Some(l)] = u.times {
                if let Some(reply) = u.reply.take() {
                    let _ = reply.send(SpeechSent {
                        first_frame: f,
                        speech_start: s,
                        speech_end: e,
                        last_frame: l,
                    });
                }
            }
        }
        self.utterances.retain(|u| u.reply.is_some());
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn drive(
    mut ws: Ws,
    mut commands: mpsc::UnboundedReceiver<Command>,
    inbound: mpsc::UnboundedSender<Incoming>,
    idle_audio: bool,
) {
    let mut mic = Mic {
        queue: VecDeque::new(),
        idle_audio,
        clock: None,
        sent: 0,
        queued_end: 0,
        utterances: Vec::new(),
    };
    let report = |msg: Inbound| {
        let _ = inbound.send(Incoming {
            at: Instant::now(),
            msg,
        });
    };
    loop {
        let next_frame = mic.next_frame(Instant::now());
        tokio::select! {
            // Reading first: an arrival time is only as good as how soon we look.
            biased;
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => report(
                    serde_json::from_str(t.as_str())
                        .map_or_else(|_| Inbound::Unparsed(t.to_string()), Inbound::Json),
                ),
                Some(Ok(Message::Binary(b))) => report(Inbound::Audio(
                    b.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect(),
                )),
                Some(Ok(Message::Close(frame))) => {
                    report(Inbound::Closed(frame.map(|f| format!("{} {}", u16::from(f.code), f.reason))));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    report(Inbound::Closed(Some(e.to_string())));
                    return;
                }
                None => {
                    report(Inbound::Closed(None));
                    return;
                }
            },
            cmd = commands.recv() => {
                let result = match cmd {
                    Some(Command::Text(t)) => ws.send(Message::text(t)).await,
                    Some(Command::Binary(b)) => ws.send(Message::binary(b)).await,
                    Some(Command::Speak { samples, ptt, reply }) => {
                        mic.queue(samples, ptt, reply);
                        Ok(())
                    }
                    Some(Command::IdleAudio(on)) => {
                        mic.idle_audio = on;
                        Ok(())
                    }
                    Some(Command::Close(done)) => {
                        let _ = ws.close(None).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        let _ = ws.close(None).await;
                        return;
                    }
                };
                if let Err(e) = result {
                    report(Inbound::Closed(Some(e.to_string())));
                    return;
                }
            }
            _ = async { match next_frame { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                let (frame, down, up) = mic.take();
                let mut r = Ok(());
                if down {
                    r = ws.send(Message::text(ClientMessage::Ptt { down: true }.to_text())).await;
                }
                if r.is_ok() {
                    r = ws.send(Message::binary(audio::pcm_to_bytes(&frame))).await;
                }
                mic.sent_at(Instant::now());
                if up && r.is_ok() {
                    r = ws.send(Message::text(ClientMessage::Ptt { down: false }.to_text())).await;
                }
                if let Err(e) = r {
                    report(Inbound::Closed(Some(e.to_string())));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::net::TcpListener;

    fn tone(ms: usize) -> Vec<i16> {
        (0..16 * ms)
            .map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn urls() {
        let mut o = VoiceOptions::new("http://127.0.0.1:8787/");
        o.user = Some("ada@home".into());
        o.device = Some("kitchen speaker".into());
        assert_eq!(
            voice_url(&o).unwrap(),
            "ws://127.0.0.1:8787/api/voice?mode=hands_free&user=ada%40home&device=kitchen%20speaker"
        );
        o.worker = "wss://hub.example".into();
        let e = voice_url(&o).unwrap_err().to_string();
        assert!(e.contains("TLS"), "{e}");
        o.worker = "127.0.0.1:8787".into();
        assert!(voice_url(&o).unwrap_err().to_string().contains("http://"));
        assert_eq!("ptt".parse::<Mode>(), Ok(Mode::PushToTalk));
        assert!("loud".parse::<Mode>().is_err());
    }

    #[test]
    fn finds_the_speech_in_a_recording() {
        let mut s = vec![0i16; 1600];
        s.extend(tone(300));
        s.extend(vec![0; 3200]);
        assert_eq!(speech_span(&s), Some((1600, 1600 + 4800)));
        assert_eq!(speech_span(&[0; 1000]), None);
        assert_eq!(speech_span(&[]), None);
    }

    #[test]
    fn reads_a_stereo_wav_at_another_rate() {
        let dir = std::env::temp_dir().join(format!("axon-voice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 100 ms of 8 kHz stereo: both channels alike.
        let mono: Vec<i16> = (0..800).map(|i| (i % 100) as i16 * 50).collect();
        let mut wav = audio::wav_encode(&mono, 8000);
        // Rewrite as 2 channels by interleaving (header: channels, byte rate, block align).
        let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        wav.truncate(44);
        wav[22] = 2;
        wav[28..32].copy_from_slice(&(8000u32 * 4).to_le_bytes());
        wav[32] = 4;
        wav[40..44].copy_from_slice(&((stereo.len() * 2) as u32).to_le_bytes());
        wav.extend(audio::pcm_to_bytes(&stereo));
        let p = dir.join("in.wav");
        std::fs::write(&p, wav).unwrap();
        assert_eq!(read_wav(&p).unwrap().len(), 1600);
        std::fs::write(&p, b"not a wav").unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(e.contains("in.wav") && e.contains("WAV"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fake Hub: says ready, records every binary frame with its arrival time, and after the
    /// first `speech_ms` of audio answers with a scripted turn.
    async fn fake_hub(
        speech_frames: usize,
    ) -> (
        String,
        tokio::task::JoinHandle<(Vec<(Instant, usize)>, Vec<(Instant, ClientMessage)>)>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let ready = ServerMessage::Ready {
                session: "v1".into(),
                mode: Mode::HandsFree,
                format: "s16le".into(),
                sample_rate: 16_000,
                frame_ms: 20,
                asr: "local".into(),
                tts: "local".into(),
                llm: "offline".into(),
                silence_ms: 400,
            };
            ws.send(Message::text(ready.to_text())).await.unwrap();
            let t1 = || "t1".to_string();
            let (mut frames, mut texts) = (Vec::new(), Vec::new());
            let mut answered = false;
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Binary(b) => {
                        frames.push((Instant::now(), b.len()));
                        if frames.len() == speech_frames && !answered {
                            answered = true;
                            for m in [
                                ServerMessage::Transcript {
                                    turn: Some(t1()),
                                    text: "hi".into(),
                                    confirms: None,
                                },
                                ServerMessage::Done { turn: t1() },
                            ] {
                                ws.send(Message::text(m.to_text())).await.unwrap();
                            }
                            // 300 ms of answer, all at once (faster than real time).
                            for _ in 0..15 {
                                ws.send(Message::binary(vec![1u8; 640])).await.unwrap();
                            }
                            for m in [
                                ServerMessage::TtsComplete {
                                    turn: t1(),
                                    audio_ms: 300,
                                },
                                ServerMessage::Timings(axon_core::media::voice::TurnTimings {
                                    turn: t1(),
                                    asr_ms: Some(1),
                                    ..Default::default()
                                }),
                            ] {
                                ws.send(Message::text(m.to_text())).await.unwrap();
                            }
                        }
                    }
                    Message::Text(t) => {
                        let m = ClientMessage::parse(t.as_str()).unwrap();
                        let stop = m == ClientMessage::PlaybackDone;
                        texts.push((Instant::now(), m));
                        if stop {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            (frames, texts)
        });
        (url, h)
    }

    #[tokio::test]
    async fn streams_in_real_time_and_follows_a_turn() {
        // 400 ms of speech = 20 frames; the fake answers after the 20th.
        let (url, hub) = fake_hub(20).await;
        let mut s = VoiceSession::connect(&VoiceOptions::new(&url))
            .await
            .unwrap();
        assert_eq!(s.ready()["session"], "v1");
        let mut seen = 0;
        let t = s
            .turn(tone(400), Duration::from_secs(5), &mut |_| seen += 1)
            .await
            .unwrap();
        assert_eq!(t.end, TurnEnd::Timings);
        assert_eq!(t.event("transcript").unwrap()["text"], "hi");
        assert_eq!((t.audio_messages, t.audio_ms()), (15, 300));
        let sent = t.sent.unwrap();
        // 20 frames at 20 ms: the last leaves 380 ms after the first, never sooner (a loaded
        // machine may make it later).
        let span = sent.last_frame - sent.first_frame;
        assert!(
            span >= Duration::from_millis(375) && span < Duration::from_secs(3),
            "{span:?}"
        );
        assert!(t.speech_end_to_first_audio_ms().unwrap() >= 0.0);
        let first_audio = t.first_audio_at.unwrap();
        s.close().await;
        let (frames, texts) = hub.await.unwrap();
        assert!(seen >= 19);
        assert!(frames.iter().all(|(_, n)| *n == 640), "20 ms frames");
        // Paced: frame k arrives no sooner than 20 ms × k after the first (some slack for the
        // timer), never as a burst.
        let t0 = frames[0].0;
        for (k, (at, _)) in frames.iter().enumerate().take(20) {
            let due = Duration::from_millis(20 * k as u64);
            assert!(
                *at + Duration::from_millis(5) >= t0 + due,
                "frame {k} early"
            );
        }
        assert_eq!(
            serde_json::to_value(&texts[0].1).unwrap(),
            start_message(16_000)
        );
        let (done_at, done) = texts.last().unwrap();
        assert_eq!(*done, ClientMessage::PlaybackDone);
        assert!(
            *done_at >= first_audio + Duration::from_millis(295),
            "playback_done only after the 300 ms answer played"
        );
    }

    #[tokio::test]
    async fn push_to_talk_wraps_the_speech() {
        let (url, hub) = fake_hub(usize::MAX).await;
        let mut o = VoiceOptions::new(&url);
        o.mode = Mode::PushToTalk;
        o.idle_audio = false;
        let s = VoiceSession::connect(&o).await.unwrap();
        let mut speech = vec![0i16; 3200];
        speech.extend(tone(100));
        speech.extend(vec![0; 3200]);
        let sent = s.speak(speech).await.unwrap();
        assert!(sent.speech_start > sent.first_frame && sent.speech_end < sent.last_frame);
        s.send(&ClientMessage::PlaybackDone);
        let (frames, texts) = hub.await.unwrap();
        // 200 + 100 + 200 ms = 25 frames, and no idle silence after.
        assert_eq!(frames.len(), 25);
        let sent: Vec<&ClientMessage> = texts.iter().map(|(_, m)| m).collect();
        assert_eq!(
            sent,
            [
                &ClientMessage::start(16_000),
                &ClientMessage::Ptt { down: true },
                &ClientMessage::Ptt { down: false },
                &ClientMessage::PlaybackDone
            ]
        );
        // Down before the first frame, up after the speech and before the trailing silence ends.
        assert!(texts[1].0 <= frames[0].0);
        assert!(texts[2].0 > frames[14].0 && texts[2].0 < frames[24].0);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_clear_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = VoiceSession::connect(&VoiceOptions::new(&format!("http://127.0.0.1:{port}")))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("ws://127.0.0.1:{port}/api/voice")),
            "{e}"
        );
    }
}
