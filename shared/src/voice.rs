//! One voice session (`/api/voice`, docs/voice.md): PCM frames and control messages in; what
//! to transcribe, which turn to run, what to synthesise, and the frames and JSON messages for
//! the device out.
//!
//! Owns the order of a spoken exchange: format checks, endpointing (the energy [`Vad`] in
//! hands-free mode, `ptt` messages in push-to-talk), keeping the utterance with a little audio
//! from before the VAD was sure, the answer split into sentences and each sent for speech as
//! soon as it is whole, sentences played in order whatever order their audio comes back in,
//! barge-in (speech during playback stops it), a spoken re-prompt when nothing was understood,
//! a spoken yes/no answering a pending confirmation, and each turn's stage timings.
//!
//! It never transcribes, synthesises, runs a turn or touches a socket: it asks for that with
//! [`VoiceAction`]s and hears back through `handle_*`. Time comes in as an argument; audio
//! time is the count of samples received. Drain [`VoiceSession::poll_action`] and
//! [`VoiceSession::poll_outbound`] after every input.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{json, Value};

use crate::audio::{
    has_speech, pcm_from_bytes, pcm_to_bytes, wav_encode, Vad, VadConfig, VadEvent,
};
use crate::audio::{SAMPLES_PER_10MS, SAMPLE_RATE};
use crate::time::Timestamp;

/// The largest audio message accepted: one second.
pub const MAX_FRAME_BYTES: usize = 32_000;
/// What the agent says when it understood nothing.
pub const REPROMPT: &str = "Sorry, I didn't catch that. Could you say it again?";
/// Audio kept from before the VAD was sure speech had started (it needs 100 ms to be sure,
/// and the first consonant is often quieter than the threshold).
const PRE_ROLL_MS: u64 = 250;
/// Speech goes down in 100 ms messages: few enough messages, fine enough to stop quickly.
const OUT_CHUNK_SAMPLES: usize = SAMPLE_RATE as usize / 10;
/// A push-to-talk press shorter than this held no words.
const MIN_UTTERANCE_MS: u64 = 200;
const SAMPLES_PER_MS: u64 = (SAMPLE_RATE / 1000) as u64;

/// How utterances are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The VAD finds the start and the end of each utterance.
    HandsFree,
    /// The device marks them with `ptt` messages.
    PushToTalk,
}

impl Mode {
    /// `hands_free` or `push_to_talk`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "hands_free" => Some(Mode::HandsFree),
            "push_to_talk" => Some(Mode::PushToTalk),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::HandsFree => "hands_free",
            Mode::PushToTalk => "push_to_talk",
        }
    }
}

/// A session's settings.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// Session id, unique in the Hub: turn ids are `{session}-{n}`.
    pub session: String,
    /// How utterances are found.
    pub mode: Mode,
    /// Endpointing.
    pub vad: VadConfig,
    /// Provider names, reported in `ready`.
    pub asr: String,
    /// TTS provider name.
    pub tts: String,
    /// LLM provider name.
    pub llm: String,
}

impl VoiceConfig {
    /// Defaults: hands-free, 400 ms endpointing.
    pub fn new(session: impl Into<String>) -> Self {
        VoiceConfig {
            session: session.into(),
            mode: Mode::HandsFree,
            vad: VadConfig::default(),
            asr: "local".into(),
            tts: "local".into(),
            llm: "offline".into(),
        }
    }
}

/// What the session needs done.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceAction {
    /// Send this utterance (a 16 kHz mono WAV) to ASR; answer with
    /// [`VoiceSession::handle_transcript`].
    Transcribe {
        /// Which utterance.
        utterance: u64,
        /// The audio.
        wav: Vec<u8>,
    },
    /// Run an agent turn on this text under this id; feed its events to
    /// [`VoiceSession::handle_turn_event`].
    StartTurn {
        /// The turn id (also its call-id prefix).
        turn: String,
        /// What the person said.
        text: String,
    },
    /// Synthesise one sentence; answer with [`VoiceSession::handle_speech`].
    Synthesize {
        /// The turn it belongs to.
        turn: String,
        /// Its place in the turn's answer.
        index: u32,
        /// The words.
        text: String,
    },
    /// Answer a pending confirmation (spoken "yes"/"no", or a `confirm` message).
    Confirm {
        /// The call id.
        id: String,
        /// Yes or no.
        approve: bool,
    },
}

/// A message for the device.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A JSON control message.
    Text(String),
    /// PCM s16le 16 kHz mono.
    Audio(Vec<u8>),
}

/// The first piece of an answer may end at a comma once it is this long: the first audio waits
/// for the first piece's whole synthesis, and a long first sentence ("It's 21.3 °C in the hall,
/// 45% humidity, set to 21 °C.") was the voice loop's p90 (bench-voice).
pub const FIRST_CLAUSE_MIN_CHARS: usize = 20;

/// Splits streamed answer text into sentences to speak, one as soon as it is whole. The first
/// piece may be a clause (see [`FIRST_CLAUSE_MIN_CHARS`]), so that speech starts sooner.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    buf: String,
    emitted: usize,
}

impl SentenceSplitter {
    /// A splitter with nothing in it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds text; returns the sentences it completed. A sentence ends at `.`, `!`, `?`, `;`
    /// or `:` followed by white space, at a new line, or at a CJK full stop; "21.5" and
    /// "e.g." inside a word do not end one. Before anything was returned, a `,` or `，`
    /// followed by white space also ends a piece of [`FIRST_CLAUSE_MIN_CHARS`] or more.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        loop {
            let mut cut = None;
            let mut chars = self.buf.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                let next = chars.peek().map(|&(_, n)| n);
                let first = self.emitted == 0;
                let end = match c {
                    '。' | '！' | '？' | '\n' => Some(i + c.len_utf8()),
                    '.' | '!' | '?' | ';' | ':' if next.is_some_and(char::is_whitespace) => {
                        Some(i + 1)
                    }
                    ',' | '，'
                        if first
                            && next.is_some_and(char::is_whitespace)
                            && self.buf[..i].trim().chars().count() >= FIRST_CLAUSE_MIN_CHARS =>
                    {
                        Some(i + c.len_utf8())
                    }
                    _ => None,
                };
                if end.is_some() {
                    cut = end;
                    break;
                }
            }
            let Some(cut) = cut else { break };
            let sentence: String = self.buf.drain(..cut).collect();
            if let Some(s) = clean(&sentence) {
                self.emitted += 1;
                out.push(s);
            }
        }
        out
    }

    /// What is left when the text is complete.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        clean(&rest)
    }
}

/// Markdown and list marks are not read aloud.
fn clean(s: &str) -> Option<String> {
    let t: String = s
        .chars()
        .filter(|c| !matches!(c, '*' | '`' | '#' | '_'))
        .collect();
    let t = t.trim().trim_start_matches("- ").trim();
    t.chars().any(char::is_alphanumeric).then(|| t.to_string())
}

/// What an ASR said, minus the non-speech marks Whisper writes for silence and noise.
pub fn transcript_text(raw: &str) -> String {
    let mut out = String::new();
    let mut depth = 0u32;
    for c in raw.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let t = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().any(char::is_alphanumeric) {
        t
    } else {
        String::new()
    }
}

/// A spoken answer to a confirmation: `Some(true)` for yes, `Some(false)` for no.
pub fn yes_or_no(text: &str) -> Option<bool> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let has = |set: &[&str]| words.iter().any(|w| set.contains(&w.as_str()));
    let no = has(&["no", "nope", "don't", "dont", "cancel", "stop", "not"]);
    let yes = has(&[
        "yes", "yeah", "yep", "sure", "ok", "okay", "confirm", "go", "do",
    ]);
    match (yes, no) {
        (_, true) if words.len() <= 6 => Some(false),
        (true, false) if words.len() <= 6 => Some(true),
        _ => None,
    }
}

#[derive(Debug, Default, Clone)]
struct Timings {
    /// ASR began at the VAD's pause, before the endpoint.
    early: bool,
    endpoint_ms: Option<u64>,
    t_endpoint: Option<Timestamp>,
    t_transcript: Option<Timestamp>,
    t_first_token: Option<Timestamp>,
    t_first_tool_result: Option<Timestamp>,
    t_first_sentence: Option<Timestamp>,
    t_first_audio: Option<Timestamp>,
}

impl Timings {
    fn to_json(&self, turn: &str) -> Value {
        let since = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_since(a).as_millis() as u64),
            _ => None,
        };
        let first_audio = since(self.t_endpoint, self.t_first_audio);
        let mut v = json!({
            "type": "timings",
            "turn": turn,
            "endpoint_ms": self.endpoint_ms,
            "asr_ms": since(self.t_endpoint, self.t_transcript),
            "llm_first_token_ms": since(self.t_transcript, self.t_first_token),
            "first_tool_result_ms": since(self.t_transcript, self.t_first_tool_result),
            "tts_first_audio_ms": since(self.t_first_sentence, self.t_first_audio),
            "first_audio_ms": first_audio,
            "asr_early": self.early,
            "end_of_speech_to_first_audio_ms": match (self.endpoint_ms, first_audio) {
                (Some(e), Some(f)) => Some(e + f),
                _ => None,
            },
        });
        if let Some(obj) = v.as_object_mut() {
            obj.retain(|_, x| !x.is_null());
        }
        v
    }
}

/// ASR started when the speaker paused: if the pause becomes the endpoint, its transcript is
/// the utterance's (the words are the same: nothing voiced came after), and the endpoint's
/// wait overlapped ASR; if the speaker goes on, it is dropped.
#[derive(Debug)]
struct EarlyAsr {
    utterance: u64,
    /// When the VAD reported the pause (audio ms).
    paused_at_ms: u64,
    /// The transcript, if it came before the endpoint.
    outcome: Option<Result<String, String>>,
}

/// One turn's speech.
#[derive(Debug, Default)]
struct Speech {
    splitter: SentenceSplitter,
    texts: BTreeMap<u32, String>,
    /// Sentences waiting for their `Synthesize`: one is synthesised at a time (see
    /// `next_synthesis`).
    unsynthesized: VecDeque<u32>,
    synthesizing: bool,
    ready: BTreeMap<u32, Option<Vec<i16>>>,
    next_index: u32,
    next_to_send: u32,
    heard_text: bool,
    turn_done: bool,
    begun: bool,
    completed: bool,
    terminated: bool,
    audio_ms: u64,
    playback_end: Option<Timestamp>,
    timings: Timings,
    timings_sent: bool,
}

/// One voice session.
#[derive(Debug)]
pub struct VoiceSession {
    config: VoiceConfig,
    vad: Vad,
    format_ok: bool,
    refused_reported: bool,
    audio_ms: u64,
    recent: VecDeque<i16>,
    utterance: Option<Vec<i16>>,
    ptt_down: bool,
    speech_start_ms: u64,
    next_utterance: u64,
    next_turn: u64,
    asr_pending: HashMap<u64, Timings>,
    /// A transcription started at the VAD's pause, before the endpoint (hands-free).
    early: Option<EarlyAsr>,
    speeches: HashMap<String, Speech>,
    current: Option<String>,
    /// A confirmation waiting for the person: (call id, turn).
    pending_confirmation: Option<(String, String)>,
    playback_done: bool,
    state: &'static str,
    actions: VecDeque<VoiceAction>,
    out: VecDeque<Outbound>,
}

impl VoiceSession {
    /// A session; its `ready` message is the first outbound.
    pub fn new(config: VoiceConfig) -> Self {
        let mut s = VoiceSession {
            vad: Vad::new(config.vad),
            format_ok: true,
            refused_reported: false,
            audio_ms: 0,
            recent: VecDeque::new(),
            utterance: None,
            ptt_down: false,
            speech_start_ms: 0,
            next_utterance: 1,
            next_turn: 1,
            asr_pending: HashMap::new(),
            early: None,
            speeches: HashMap::new(),
            current: None,
            pending_confirmation: None,
            playback_done: false,
            state: "listening",
            actions: VecDeque::new(),
            out: VecDeque::new(),
            config,
        };
        s.send(json!({
            "type": "ready",
            "session": s.config.session,
            "mode": s.config.mode.as_str(),
            "format": "s16le",
            "sample_rate": SAMPLE_RATE,
            "frame_ms": 20,
            "asr": s.config.asr,
            "tts": s.config.tts,
            "llm": s.config.llm,
            "silence_ms": s.config.vad.silence_ms,
        }));
        s.send(json!({"type": "state", "state": "listening"}));
        s
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<VoiceAction> {
        self.actions.pop_front()
    }

    /// The next message for the device.
    pub fn poll_outbound(&mut self) -> Option<Outbound> {
        self.out.pop_front()
    }

    /// When [`VoiceSession::handle_timeout`] wants to be called (playback ends).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.state != "speaking" {
            return None;
        }
        self.current
            .as_ref()
            .and_then(|t| self.speeches.get(t))
            .filter(|s| s.completed)
            .and_then(|s| s.playback_end)
    }

    /// Time passed: a finished playback returns the face to listening.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if let Some(end) = self.poll_timeout() {
            if now >= end {
                self.set_state("listening");
            }
        }
    }

    /// Whether the device may still be playing the current turn's speech.
    pub fn is_speaking(&self, now: Timestamp) -> bool {
        let Some(s) = self.current.as_ref().and_then(|t| self.speeches.get(t)) else {
            return false;
        };
        s.begun
            && !s.terminated
            && !(s.completed && (self.playback_done || s.playback_end.is_some_and(|e| now >= e)))
    }

    /// A binary message: audio.
    pub fn handle_audio(&mut self, now: Timestamp, bytes: &[u8]) {
        let step = SAMPLES_PER_10MS * 2;
        if bytes.is_empty() || bytes.len() % step != 0 || bytes.len() > MAX_FRAME_BYTES {
            self.error(
                "bad_frame",
                format!(
                    "an audio message of {} bytes was dropped: send s16le mono 16 kHz in whole 10 ms steps ({step} bytes each), at most {MAX_FRAME_BYTES} bytes (1 s) per message",
                    bytes.len()
                ),
            );
            return;
        }
        if !self.format_ok {
            if !self.refused_reported {
                self.refused_reported = true;
                self.error(
                    "bad_format",
                    "audio refused: send {\"type\":\"start\",\"format\":\"s16le\",\"sample_rate\":16000,\"channels\":1} first",
                );
            }
            return;
        }
        let Ok(samples) = pcm_from_bytes(bytes) else {
            return; // the length was checked above
        };
        self.audio_ms += samples.len() as u64 / SAMPLES_PER_MS;
        match self.config.mode {
            Mode::PushToTalk => {
                if let Some(u) = self.utterance.as_mut() {
                    u.extend_from_slice(&samples);
                }
            }
            Mode::HandsFree => {
                match self.utterance.as_mut() {
                    Some(u) => u.extend_from_slice(&samples),
                    None => {
                        self.recent.extend(samples.iter().copied());
                        let keep = ((PRE_ROLL_MS + 200) * SAMPLES_PER_MS) as usize;
                        while self.recent.len() > keep {
                            self.recent.pop_front();
                        }
                    }
                }
                for ev in self.vad.push(&samples) {
                    match ev {
                        VadEvent::SpeechStarted { at_ms } => self.speech_started(now, at_ms),
                        VadEvent::Paused { at_ms } => self.paused(at_ms),
                        VadEvent::SpeechEnded { at_ms, speech_ms } => {
                            self.speech_ended(now, at_ms, speech_ms)
                        }
                    }
                }
            }
        }
    }

    fn speech_started(&mut self, now: Timestamp, at_ms: u64) {
        // The utterance starts a little before the VAD's start, from the recent audio.
        let recent_start = self.audio_ms - self.recent.len() as u64 / SAMPLES_PER_MS;
        let from_ms = at_ms.saturating_sub(PRE_ROLL_MS).max(recent_start);
        let skip = ((from_ms - recent_start) * SAMPLES_PER_MS) as usize;
        let u: Vec<i16> = self.recent.iter().skip(skip).copied().collect();
        self.recent.clear();
        self.utterance = Some(u);
        self.speech_start_ms = at_ms;
        self.send(json!({"type": "speech_started", "at_ms": at_ms}));
        self.barge_in(now, "barge_in");
        self.set_state("listening");
    }

    /// The speaker paused: transcribe what was said so far, in case that was all.
    fn paused(&mut self, at_ms: u64) {
        let Some(u) = self.utterance.as_ref() else {
            return;
        };
        let wav = wav_encode(u, SAMPLE_RATE);
        self.drop_early();
        let id = self.next_utterance;
        self.next_utterance += 1;
        self.asr_pending.insert(
            id,
            Timings {
                early: true,
                ..Default::default()
            },
        );
        self.early = Some(EarlyAsr {
            utterance: id,
            paused_at_ms: at_ms,
            outcome: None,
        });
        self.actions
            .push_back(VoiceAction::Transcribe { utterance: id, wav });
    }

    /// An early transcription that will not be used: its transcript is ignored when it comes.
    fn drop_early(&mut self) {
        if let Some(e) = self.early.take() {
            self.asr_pending.remove(&e.utterance);
        }
    }

    fn speech_ended(&mut self, now: Timestamp, at_ms: u64, speech_ms: u64) {
        let Some(u) = self.utterance.take() else {
            return;
        };
        self.send(json!({"type": "speech_ended", "at_ms": at_ms, "speech_ms": speech_ms}));
        // From the end of the words to the endpoint: the silence the VAD waited for.
        let endpoint_ms = at_ms.saturating_sub(self.speech_start_ms + speech_ms);
        // The pause is this endpoint's own silence run only if it came exactly that much
        // earlier (an utterance cut at the VAD's maximum length ends without one).
        let wait = u64::from(
            self.config
                .vad
                .silence_ms
                .saturating_sub(self.config.vad.pause_ms),
        );
        match self.early.take() {
            Some(e) if at_ms.checked_sub(e.paused_at_ms) == Some(wait) => {
                if let Some(t) = self.asr_pending.get_mut(&e.utterance) {
                    t.endpoint_ms = Some(endpoint_ms);
                    t.t_endpoint = Some(now);
                }
                self.set_state("thinking");
                if let Some(outcome) = e.outcome {
                    self.handle_transcript(now, e.utterance, outcome);
                }
            }
            other => {
                self.early = other;
                self.drop_early();
                self.transcribe(now, u, Some(endpoint_ms));
            }
        }
    }

    fn transcribe(&mut self, now: Timestamp, samples: Vec<i16>, endpoint_ms: Option<u64>) {
        let id = self.next_utterance;
        self.next_utterance += 1;
        self.asr_pending.insert(
            id,
            Timings {
                endpoint_ms,
                t_endpoint: Some(now),
                ..Default::default()
            },
        );
        self.set_state("thinking");
        self.actions.push_back(VoiceAction::Transcribe {
            utterance: id,
            wav: wav_encode(&samples, SAMPLE_RATE),
        });
    }

    /// A text message: a control message (docs/voice.md §1.2).
    pub fn handle_text(&mut self, now: Timestamp, text: &str) {
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.error(
                    "bad_message",
                    "a text message must be a JSON object with \"type\": start, ptt, text, confirm, cancel or playback_done",
                );
                return;
            }
        };
        match v.get("type").and_then(Value::as_str) {
            Some("start") => {
                let format = v.get("format").and_then(Value::as_str).unwrap_or("s16le");
                let rate = v.get("sample_rate").and_then(Value::as_u64).unwrap_or(16_000);
                let channels = v.get("channels").and_then(Value::as_u64).unwrap_or(1);
                if format == "s16le" && rate == u64::from(SAMPLE_RATE) && channels == 1 {
                    self.format_ok = true;
                    self.refused_reported = false;
                } else {
                    self.format_ok = false;
                    // The first audio refused is reported too: a device that ignores the
                    // start's error learns why its audio goes nowhere.
                    self.refused_reported = false;
                    self.error(
                        "bad_format",
                        format!(
                            "{format} at {rate} Hz with {channels} channel(s) is not accepted: send s16le, 16000 Hz, 1 channel (audio is refused until a start with that format)"
                        ),
                    );
                }
            }
            Some("ptt") => match v.get("down").and_then(Value::as_bool) {
                Some(true) => {
                    self.drop_early();
                    self.ptt_down = true;
                    self.utterance = Some(Vec::new());
                    self.send(json!({"type": "speech_started", "at_ms": self.audio_ms}));
                    self.barge_in(now, "barge_in");
                    self.set_state("listening");
                }
                Some(false) => {
                    self.ptt_down = false;
                    if let Some(u) = self.utterance.take() {
                        let ms = u.len() as u64 / SAMPLES_PER_MS;
                        self.send(json!({"type": "speech_ended", "at_ms": self.audio_ms, "speech_ms": ms}));
                        if ms < MIN_UTTERANCE_MS {
                            self.error(
                                "asr_empty",
                                format!("the press held {ms} ms of audio: hold the button while you speak"),
                            );
                            self.set_state("listening");
                        } else if !has_speech(&u, &self.config.vad) {
                            // Never sent to ASR: Whisper, given the home's prompt, writes one
                            // of its example commands for silence (tiny.en: "Set the bedroom
                            // thermostat to 21."), and the agent would carry it out.
                            let floor = self.config.vad.min_speech_dbfs as i32;
                            let timings = Timings {
                                endpoint_ms: Some(0),
                                t_endpoint: Some(now),
                                t_transcript: Some(now),
                                ..Default::default()
                            };
                            self.nothing_understood(
                                now,
                                timings,
                                &format!("the press held {ms} ms without speech (nothing louder than {floor} dBFS): speak while you hold the button"),
                            );
                        } else {
                            self.transcribe(now, u, Some(0));
                        }
                    }
                }
                None => self.error("bad_message", "ptt needs \"down\": true or false"),
            },
            Some("text") => match v.get("text").and_then(Value::as_str).map(str::trim) {
                Some(t) if !t.is_empty() => {
                    let t = t.to_string();
                    self.barge_in(now, "barge_in");
                    self.understood(now, t, Timings::default());
                }
                _ => self.error("bad_message", "text needs a non-empty \"text\""),
            },
            Some("confirm") => {
                match (
                    v.get("id").and_then(Value::as_str),
                    v.get("approve").and_then(Value::as_bool),
                ) {
                    (Some(id), Some(approve)) => {
                        let id = id.to_string();
                        self.confirm(id, approve);
                    }
                    _ => self.error(
                        "bad_message",
                        "confirm needs \"id\" (from confirmation_required) and \"approve\": true or false",
                    ),
                }
            }
            Some("cancel") => self.barge_in(now, "cancel"),
            Some("playback_done") => {
                self.playback_done = true;
                if self.state == "speaking" && !self.is_speaking(now) {
                    self.set_state("listening");
                }
            }
            other => self.error(
                "bad_message",
                format!(
                    "unknown message type {:?}: use start, ptt, text, confirm, cancel or playback_done",
                    other.unwrap_or("(none)")
                ),
            ),
        }
    }

    /// What ASR heard in an utterance, or why it failed.
    pub fn handle_transcript(
        &mut self,
        now: Timestamp,
        utterance: u64,
        outcome: Result<String, String>,
    ) {
        if let Some(e) = self.early.as_mut().filter(|e| e.utterance == utterance) {
            // Before the endpoint: kept until the VAD says whether the pause was the end.
            e.outcome = Some(outcome);
            return;
        }
        let Some(mut timings) = self.asr_pending.remove(&utterance) else {
            return;
        };
        timings.t_transcript = Some(now);
        match outcome {
            Err(e) => {
                self.error("asr_failed", e);
                self.set_state("listening");
            }
            Ok(raw) => {
                let text = transcript_text(&raw);
                if text.is_empty() {
                    self.nothing_understood(
                        now,
                        timings,
                        "nothing was understood in that utterance",
                    );
                    return;
                }
                if let Some((id, _)) = self.pending_confirmation.clone() {
                    if let Some(approve) = yes_or_no(&text) {
                        self.send(json!({"type": "transcript", "text": text, "confirms": id}));
                        self.confirm(id, approve);
                        return;
                    }
                }
                self.understood(now, text, timings);
            }
        }
    }

    /// `asr_empty`, and the re-prompt spoken as the turn's answer.
    fn nothing_understood(&mut self, now: Timestamp, timings: Timings, why: &str) {
        self.error("asr_empty", why);
        let turn = self.turn_id();
        self.current = Some(turn.clone());
        let speech = Speech {
            timings,
            heard_text: true,
            ..Default::default()
        };
        self.speeches.insert(turn.clone(), speech);
        self.speak_text(now, &turn, REPROMPT);
        self.finish_text(now, &turn);
    }

    fn turn_id(&mut self) -> String {
        let id = format!("{}-{}", self.config.session, self.next_turn);
        self.next_turn += 1;
        id
    }

    fn understood(&mut self, now: Timestamp, text: String, mut timings: Timings) {
        let turn = self.turn_id();
        if timings.t_transcript.is_none() {
            timings.t_transcript = Some(now);
        }
        self.send(json!({"type": "transcript", "turn": turn, "text": text}));
        self.speeches.insert(
            turn.clone(),
            Speech {
                timings,
                ..Default::default()
            },
        );
        self.current = Some(turn.clone());
        self.playback_done = false;
        self.set_state("thinking");
        self.actions
            .push_back(VoiceAction::StartTurn { turn, text });
    }

    /// One event of a turn this session started (the `/api/chat` event objects, each with
    /// `"type"`; `done` when the turn is over). Every event is passed on to the device.
    pub fn handle_turn_event(&mut self, now: Timestamp, turn: &str, event: &Value) {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        self.send(event.clone());
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        let first_token = matches!(
            kind,
            "text_delta" | "tool_started" | "confirmation_required"
        );
        if first_token && speech.timings.t_first_token.is_none() {
            speech.timings.t_first_token = Some(now);
        }
        if kind == "tool_finished" && speech.timings.t_first_tool_result.is_none() {
            speech.timings.t_first_tool_result = Some(now);
        }
        let str_of = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match kind {
            "text_delta" => {
                speech.heard_text = true;
                self.speak_text(now, turn, &str_of("text"));
            }
            "confirmation_required" => {
                self.pending_confirmation = Some((str_of("id"), turn.to_string()));
                let ask = format!(" {} Say yes or no.\n", str_of("prompt"));
                self.speak_text(now, turn, &ask);
            }
            // A provider that streamed nothing still has its answer spoken.
            "answer" if !speech.heard_text => {
                speech.heard_text = true;
                self.speak_text(now, turn, &str_of("text"));
            }
            "error" => {
                let spoken = speech.heard_text;
                speech.heard_text = true;
                let message = str_of("message");
                self.error("turn_failed", message.clone());
                if !spoken {
                    self.speak_text(now, turn, &message);
                }
            }
            "done" => self.finish_text(now, turn),
            _ => {}
        }
    }

    /// Answers a confirmation; the turn's speech plays again if a barge-in had stopped it
    /// (the person's "yes" was itself speech).
    fn confirm(&mut self, id: String, approve: bool) {
        if let Some((_, turn)) = self
            .pending_confirmation
            .take_if(|(pending, _)| *pending == id)
        {
            if let Some(old) = self.speeches.remove(&turn) {
                // Indexes go on from the old speech, so late audio for it is told apart.
                let speech = Speech {
                    next_index: old.next_index,
                    next_to_send: old.next_index,
                    heard_text: old.heard_text,
                    timings: old.timings,
                    ..Default::default()
                };
                self.speeches.insert(turn.clone(), speech);
                self.current = Some(turn);
                self.playback_done = false;
            }
        }
        self.set_state("thinking");
        self.actions.push_back(VoiceAction::Confirm { id, approve });
    }

    fn speak_text(&mut self, now: Timestamp, turn: &str, text: &str) {
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        let sentences = speech.splitter.push(text);
        for s in sentences {
            self.queue_sentence(now, turn, s);
        }
    }

    fn queue_sentence(&mut self, now: Timestamp, turn: &str, text: String) {
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        if speech.terminated {
            return;
        }
        let index = speech.next_index;
        speech.next_index += 1;
        if speech.timings.t_first_sentence.is_none() {
            speech.timings.t_first_sentence = Some(now);
        }
        speech.texts.insert(index, text);
        speech.unsynthesized.push_back(index);
        self.next_synthesis(turn);
    }

    /// Asks for the next sentence's speech once the one before it is back. One at a time: a
    /// local TTS shares the CPU, and two sentences synthesised at once made the first audio wait
    /// for both (piper, 2 cores: the first clause alone 239 ms); a cloud TTS is faster than the
    /// sentence before it takes to play, so nothing is lost there.
    fn next_synthesis(&mut self, turn: &str) {
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        if speech.terminated {
            // Nothing more is spoken: the waiting sentences count as done without audio.
            for index in speech.unsynthesized.drain(..) {
                speech.ready.insert(index, None);
            }
            return;
        }
        if speech.synthesizing {
            return;
        }
        if let Some(index) = speech.unsynthesized.pop_front() {
            speech.synthesizing = true;
            let text = speech.texts.get(&index).cloned().unwrap_or_default();
            self.actions.push_back(VoiceAction::Synthesize {
                turn: turn.to_string(),
                index,
                text,
            });
        }
    }

    fn finish_text(&mut self, now: Timestamp, turn: &str) {
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        speech.turn_done = true;
        if let Some(rest) = speech.splitter.finish() {
            self.queue_sentence(now, turn, rest);
        }
        self.flush(now, turn);
    }

    /// A sentence's audio (16 kHz mono), or why it could not be made.
    pub fn handle_speech(
        &mut self,
        now: Timestamp,
        turn: &str,
        index: u32,
        outcome: Result<Vec<i16>, String>,
    ) {
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        if index < speech.next_to_send {
            return; // for speech that was replaced (see `confirm`)
        }
        speech.synthesizing = false;
        match outcome {
            Ok(audio) => {
                speech.ready.insert(index, Some(audio));
            }
            Err(e) => {
                speech.ready.insert(index, None);
                self.error("tts_failed", e);
            }
        }
        self.next_synthesis(turn);
        self.flush(now, turn);
    }

    /// Sends whatever is ready in order; completes the turn's speech when all is sent.
    fn flush(&mut self, now: Timestamp, turn: &str) {
        let is_current = self.current.as_deref() == Some(turn);
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        let mut out = Vec::new();
        while let Some(audio) = speech.ready.remove(&speech.next_to_send) {
            let index = speech.next_to_send;
            speech.next_to_send += 1;
            let Some(audio) = audio.filter(|a| !a.is_empty()) else {
                continue;
            };
            if speech.terminated {
                continue;
            }
            if !speech.begun {
                speech.begun = true;
                out.push(Outbound::Text(
                    json!({"type": "tts_begin", "turn": turn}).to_string(),
                ));
            }
            let text = speech.texts.get(&index).cloned().unwrap_or_default();
            out.push(Outbound::Text(
                json!({"type": "tts_sentence", "turn": turn, "index": index, "text": text})
                    .to_string(),
            ));
            for chunk in audio.chunks(OUT_CHUNK_SAMPLES) {
                out.push(Outbound::Audio(pcm_to_bytes(chunk)));
            }
            if speech.timings.t_first_audio.is_none() {
                speech.timings.t_first_audio = Some(now);
            }
            let ms = audio.len() as u64 / SAMPLES_PER_MS;
            speech.audio_ms += ms;
            let from = speech.playback_end.filter(|e| *e > now).unwrap_or(now);
            speech.playback_end = Some(from + std::time::Duration::from_millis(ms));
        }
        let all_sent = speech.turn_done && speech.next_to_send == speech.next_index;
        let mut finished = None;
        if all_sent && !speech.completed {
            speech.completed = true;
            if speech.begun && !speech.terminated {
                out.push(Outbound::Text(
                    json!({"type": "tts_complete", "turn": turn, "audio_ms": speech.audio_ms})
                        .to_string(),
                ));
            }
            if !speech.timings_sent {
                speech.timings_sent = true;
                finished = Some(speech.timings.to_json(turn));
            }
        }
        let speaking = speech.begun && !speech.terminated;
        let done = speech.completed;
        self.out.extend(out);
        if let Some(t) = finished {
            self.send(t);
        }
        if is_current && speaking && self.state != "speaking" && !done {
            self.set_state("speaking");
        }
        if is_current && done {
            if speaking && !self.playback_done {
                self.set_state("speaking");
                self.handle_timeout(now);
            } else if self.state != "listening" && self.pending_confirmation.is_none() {
                self.set_state("listening");
            }
        }
        if done {
            self.speeches
                .retain(|t, s| !s.completed || Some(t) == self.current.as_ref());
        }
    }

    /// Speech from the device, a new typed turn or `cancel`: the current speech stops.
    fn barge_in(&mut self, now: Timestamp, reason: &str) {
        let speaking = self.is_speaking(now);
        let Some(turn) = self.current.clone() else {
            return;
        };
        let Some(speech) = self.speeches.get_mut(&turn) else {
            return;
        };
        if speech.terminated || (speech.completed && !speaking) {
            return;
        }
        speech.terminated = true;
        for index in speech.unsynthesized.drain(..) {
            speech.ready.insert(index, None);
        }
        if speech.begun && speaking {
            self.send(json!({"type": "tts_terminate", "turn": turn, "reason": reason}));
        }
        self.playback_done = true;
    }

    fn set_state(&mut self, state: &'static str) {
        if self.state != state {
            self.state = state;
            self.send(json!({"type": "state", "state": state}));
        }
    }

    fn error(&mut self, code: &str, message: impl Into<String>) {
        self.send(json!({"type": "error", "code": code, "message": message.into()}));
    }

    fn send(&mut self, v: Value) {
        self.out.push_back(Outbound::Text(v.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// 20 ms of a tone loud enough for speech, or of near silence.
    fn frame(loud: bool) -> Vec<u8> {
        let samples: Vec<i16> = (0..320)
            .map(|i| {
                if loud {
                    ((i as f32 * 0.3).sin() * 8000.0) as i16
                } else {
                    (i % 3) as i16
                }
            })
            .collect();
        pcm_to_bytes(&samples)
    }

    fn texts(s: &mut VoiceSession) -> Vec<Value> {
        let mut v = Vec::new();
        while let Some(o) = s.poll_outbound() {
            if let Outbound::Text(t) = o {
                v.push(serde_json::from_str(&t).expect("our own JSON"));
            }
        }
        v
    }

    fn drain(s: &mut VoiceSession) -> (Vec<Value>, usize) {
        let mut v = Vec::new();
        let mut audio = 0;
        while let Some(o) = s.poll_outbound() {
            match o {
                Outbound::Text(t) => v.push(serde_json::from_str(&t).expect("our own JSON")),
                Outbound::Audio(a) => audio += a.len(),
            }
        }
        (v, audio)
    }

    fn types(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|e| e["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Feeds `ms` of audio from `start`, returns the time after it.
    fn speak(s: &mut VoiceSession, start: u64, loud_ms: u64, quiet_ms: u64) -> u64 {
        let mut now = start;
        // A frame arrives when its 20 ms have been recorded.
        for _ in 0..loud_ms / 20 {
            now += 20;
            s.handle_audio(t(now), &frame(true));
        }
        for _ in 0..quiet_ms / 20 {
            now += 20;
            s.handle_audio(t(now), &frame(false));
        }
        now
    }

    fn session() -> VoiceSession {
        let mut s = VoiceSession::new(VoiceConfig::new("v1"));
        let first = texts(&mut s);
        assert_eq!(first[0]["type"], "ready");
        assert_eq!(first[0]["sample_rate"], 16000);
        s
    }

    fn transcribe_action(s: &mut VoiceSession) -> (u64, Vec<u8>) {
        match s.poll_action() {
            Some(VoiceAction::Transcribe { utterance, wav }) => (utterance, wav),
            other => panic!("expected Transcribe, got {other:?}"),
        }
    }

    fn synth_actions(s: &mut VoiceSession) -> Vec<(String, u32, String)> {
        let mut v = Vec::new();
        while let Some(a) = s.poll_action() {
            if let VoiceAction::Synthesize { turn, index, text } = a {
                v.push((turn, index, text));
            }
        }
        v
    }

    #[test]
    fn splitter_emits_whole_sentences_as_they_complete() {
        let mut sp = SentenceSplitter::new();
        assert!(sp.push("The kitchen lamp").is_empty());
        assert_eq!(
            sp.push(" is on. It is 21.5 "),
            vec!["The kitchen lamp is on."]
        );
        assert_eq!(
            sp.push("degrees! Anything else"),
            vec!["It is 21.5 degrees!"]
        );
        assert_eq!(sp.finish().as_deref(), Some("Anything else"));
        assert_eq!(sp.finish(), None);
        assert_eq!(
            SentenceSplitter::new().push("**Done**.\n- next: item\n"),
            vec!["Done.", "next:", "item"]
        );
        assert_eq!(
            SentenceSplitter::new().push("好的。灯开了。"),
            vec!["好的。", "灯开了。"]
        );
    }

    /// A long first sentence is spoken in two pieces, from its first comma, so the first audio
    /// needs only the first clause's synthesis; later sentences and short clauses stay whole.
    #[test]
    fn a_long_first_sentence_starts_with_its_first_clause() {
        let mut sp = SentenceSplitter::new();
        assert_eq!(
            sp.push(
                "It's 21.3 °C in the hall, 45% humidity, set to 21 °C. Anything else, or done? "
            ),
            vec![
                "It's 21.3 °C in the hall,",
                "45% humidity, set to 21 °C.",
                "Anything else, or done?"
            ]
        );
        // Under the length, or without a space after it (a decimal comma): no cut.
        assert_eq!(
            SentenceSplitter::new().push("Yes, it is on. "),
            vec!["Yes, it is on."]
        );
        assert_eq!(
            SentenceSplitter::new().push("Es sind genau 21,5 Grad im Flur, sagt der Sensor. "),
            vec!["Es sind genau 21,5 Grad im Flur,", "sagt der Sensor."]
        );
        // Streamed: the comma is seen when the space after it arrives.
        let mut sp = SentenceSplitter::new();
        assert!(sp
            .push("The bedroom thermostat is set to 21 °C,")
            .is_empty());
        assert_eq!(
            sp.push(" and the heating is on."),
            vec!["The bedroom thermostat is set to 21 °C,"]
        );
        assert_eq!(sp.finish().as_deref(), Some("and the heating is on."));
    }

    #[test]
    fn whisper_noise_marks_are_not_words() {
        assert_eq!(transcript_text(" [BLANK_AUDIO] "), "");
        assert_eq!(transcript_text("(wind blowing)  ..."), "");
        assert_eq!(
            transcript_text(" Turn on the kitchen lamp. "),
            "Turn on the kitchen lamp."
        );
    }

    #[test]
    fn yes_and_no_are_recognised_only_in_short_answers() {
        assert_eq!(yes_or_no("Yes, please."), Some(true));
        assert_eq!(yes_or_no("OK do it"), Some(true));
        assert_eq!(yes_or_no("No."), Some(false));
        assert_eq!(yes_or_no("don't"), Some(false));
        assert_eq!(yes_or_no("turn on the lamp"), None);
        assert_eq!(
            yes_or_no("yes and also turn on every light in the whole house"),
            None
        );
    }

    #[test]
    fn an_utterance_is_endpointed_transcribed_answered_and_spoken_in_order() {
        let mut s = session();
        let now = speak(&mut s, 0, 1000, 400);
        let (events, _) = drain(&mut s);
        let ty = types(&events);
        assert!(ty.contains(&"speech_started".to_string()), "{ty:?}");
        assert!(ty.contains(&"speech_ended".to_string()), "{ty:?}");
        let ended = events.iter().find(|e| e["type"] == "speech_ended").unwrap();
        assert_eq!(ended["speech_ms"], 1000);
        let (utt, wav) = transcribe_action(&mut s);
        let wav = crate::audio::wav_decode(&wav).expect("a WAV");
        // All the speech, a little from before, and the endpointing silence.
        let ms = wav.samples.len() as u64 / 16;
        assert!((1000..=1000 + 400 + PRE_ROLL_MS).contains(&ms), "{ms} ms");

        s.handle_transcript(t(now + 300), utt, Ok(" Turn on the kitchen lamp.".into()));
        let ev = texts(&mut s);
        assert_eq!(ev[0]["type"], "transcript");
        assert_eq!(ev[0]["text"], "Turn on the kitchen lamp.");
        let turn = match s.poll_action() {
            Some(VoiceAction::StartTurn { turn, text }) => {
                assert_eq!(text, "Turn on the kitchen lamp.");
                turn
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(turn, "v1-1");

        s.handle_turn_event(
            t(now + 302),
            &turn,
            &json!({"type": "tool_started", "id": "a"}),
        );
        s.handle_turn_event(
            t(now + 310),
            &turn,
            &json!({"type": "tool_finished", "id": "a", "ok": true}),
        );
        s.handle_turn_event(
            t(now + 311),
            &turn,
            &json!({"type": "text_delta", "text": "The kitchen lamp is on. Anything else?"}),
        );
        let first = synth_actions(&mut s);
        assert_eq!(
            first,
            vec![(turn.clone(), 0, "The kitchen lamp is on.".to_string())]
        );
        s.handle_turn_event(
            t(now + 312),
            &turn,
            &json!({"type": "answer", "text": "The kitchen lamp is on. Anything else?"}),
        );
        s.handle_turn_event(t(now + 313), &turn, &json!({"type": "done"}));
        // One sentence is synthesised at a time: the second is asked for when the first is back.
        assert!(synth_actions(&mut s).is_empty());
        drain(&mut s);
        s.handle_speech(t(now + 400), &turn, 0, Ok(vec![1; 16000]));
        let second = synth_actions(&mut s);
        assert_eq!(
            second,
            vec![(turn.clone(), 1, "Anything else?".to_string())]
        );
        let (mut ev, audio) = drain(&mut s);
        assert_eq!(audio, 16000 * 2, "the first sentence goes out at once");
        s.handle_speech(t(now + 450), &turn, 1, Ok(vec![1; 8000]));
        let (rest, audio) = drain(&mut s);
        assert_eq!(audio, 8000 * 2, "{rest:?}");
        ev.extend(rest);
        let ty = types(&ev);
        assert_eq!(
            ty,
            [
                "tts_begin",
                "tts_sentence",
                "state",
                "tts_sentence",
                "tts_complete",
                "timings",
            ]
        );
        assert_eq!(ev[1]["index"], 0);
        assert_eq!(ev[3]["index"], 1);
        assert_eq!(ev[4]["audio_ms"], 1500);
        let timings = &ev[5];
        assert_eq!(timings["endpoint_ms"], 400);
        assert_eq!(timings["asr_ms"], 300);
        assert_eq!(timings["llm_first_token_ms"], 2);
        assert_eq!(timings["first_tool_result_ms"], 10);
        assert_eq!(timings["tts_first_audio_ms"], 89);
        assert_eq!(timings["first_audio_ms"], 400);
        assert_eq!(timings["end_of_speech_to_first_audio_ms"], 800);
        assert_eq!(ev[2]["state"], "speaking");
        // Playback ends 1.5 s after the first audio: the face listens again.
        assert_eq!(s.poll_timeout(), Some(t(now + 400 + 1500)));
        s.handle_timeout(t(now + 1900));
        assert_eq!(
            texts(&mut s),
            vec![json!({"type": "state", "state": "listening"})]
        );
    }

    /// ASR starts at the VAD's pause (200 ms of silence), so the endpoint's remaining 200 ms
    /// overlap it: a transcript that is back by the endpoint is used at once (asr_ms 0).
    #[test]
    fn asr_starts_at_the_pause_and_its_transcript_is_used_at_the_endpoint() {
        let mut s = session();
        let paused = speak(&mut s, 0, 1000, 200);
        let (utt, wav) = transcribe_action(&mut s);
        let ms = crate::audio::wav_decode(&wav).unwrap().samples.len() as u64 / 16;
        assert!((1000..=1000 + 200 + PRE_ROLL_MS).contains(&ms), "{ms} ms");
        // Still listening: the face must not think before the person has finished.
        let (ev, _) = drain(&mut s);
        assert!(!types(&ev).contains(&"state".to_string()), "{ev:?}");
        s.handle_transcript(t(paused + 150), utt, Ok("Turn on the kitchen lamp.".into()));
        assert!(texts(&mut s).is_empty(), "nothing before the endpoint");
        assert!(s.poll_action().is_none());

        let now = speak(&mut s, paused, 0, 200);
        let ev = texts(&mut s);
        assert_eq!(
            types(&ev),
            ["speech_ended", "state", "transcript"].map(String::from)
        );
        assert_eq!(ev[1]["state"], "thinking");
        assert_eq!(ev[2]["text"], "Turn on the kitchen lamp.");
        let turn = match s.poll_action() {
            Some(VoiceAction::StartTurn { turn, text }) => {
                assert_eq!(text, "Turn on the kitchen lamp.");
                turn
            }
            other => panic!("one transcription only, then the turn: {other:?}"),
        };
        s.handle_turn_event(t(now + 5), &turn, &json!({"type": "answer", "text": "On."}));
        s.handle_turn_event(t(now + 6), &turn, &json!({"type": "done"}));
        let (_, index, _) = synth_actions(&mut s).remove(0);
        s.handle_speech(t(now + 100), &turn, index, Ok(vec![1; 1600]));
        let timings = texts(&mut s)
            .into_iter()
            .find(|e| e["type"] == "timings")
            .expect("timings");
        assert_eq!(timings["asr_ms"], 0, "{timings}");
        assert_eq!(timings["asr_early"], true, "{timings}");
        assert_eq!(timings["endpoint_ms"], 400, "{timings}");
    }

    /// The speaker pauses and goes on: the early transcript of the first half is dropped, and
    /// the whole utterance is transcribed; a transcript still due at the endpoint is awaited.
    #[test]
    fn a_pause_that_was_not_the_end_drops_its_early_transcript() {
        let mut s = session();
        let now = speak(&mut s, 0, 600, 300);
        let (first, _) = transcribe_action(&mut s);
        let now = speak(&mut s, now, 600, 200);
        let (second, wav) = transcribe_action(&mut s);
        assert_ne!(first, second);
        let ms = crate::audio::wav_decode(&wav).unwrap().samples.len() as u64 / 16;
        assert!(ms >= 1500, "the whole utterance: {ms} ms");
        let (ev, _) = drain(&mut s);
        assert_eq!(
            types(&ev),
            ["speech_started"].map(String::from),
            "one utterance"
        );
        s.handle_transcript(t(now + 10), first, Ok("Set the bedroom".into()));
        assert!(texts(&mut s).is_empty());
        let now = speak(&mut s, now, 0, 200);
        let ev = texts(&mut s);
        assert_eq!(types(&ev), ["speech_ended", "state"].map(String::from));
        assert!(s.poll_action().is_none(), "no third transcription");
        s.handle_transcript(
            t(now + 300),
            second,
            Ok("Set the bedroom thermostat to 21.".into()),
        );
        let ev = texts(&mut s);
        assert_eq!(ev[0]["text"], "Set the bedroom thermostat to 21.");
        assert!(matches!(
            s.poll_action(),
            Some(VoiceAction::StartTurn { .. })
        ));
    }

    #[test]
    fn speech_during_playback_stops_it_and_becomes_the_next_turn() {
        let mut s = session();
        let now = speak(&mut s, 0, 600, 420);
        let (utt, _) = transcribe_action(&mut s);
        s.handle_transcript(t(now), utt, Ok("tell me a story".into()));
        let Some(VoiceAction::StartTurn { turn, .. }) = s.poll_action() else {
            panic!()
        };
        s.handle_turn_event(
            t(now),
            &turn,
            &json!({"type": "text_delta", "text": "Once upon a time. There was a lamp. "}),
        );
        let synth = synth_actions(&mut s);
        assert_eq!(synth.len(), 1, "one sentence at a time");
        s.handle_speech(t(now), &turn, 0, Ok(vec![1; 16000 * 3]));
        assert_eq!(
            synth_actions(&mut s).len(),
            1,
            "the second, once the first is back"
        );
        drain(&mut s);
        assert!(s.is_speaking(t(now + 100)));
        // 100 ms of speech (what the VAD needs) during playback.
        let later = speak(&mut s, now + 200, 120, 0);
        let (ev, _) = drain(&mut s);
        let term = ev
            .iter()
            .find(|e| e["type"] == "tts_terminate")
            .expect("playback stopped");
        assert_eq!(term["reason"], "barge_in");
        assert_eq!(term["turn"], turn);
        assert!(!s.is_speaking(t(later)));
        // The first turn's remaining audio is never sent.
        s.handle_speech(t(later), &turn, 1, Ok(vec![1; 16000]));
        s.handle_turn_event(t(later), &turn, &json!({"type": "done"}));
        let (ev, audio) = drain(&mut s);
        assert_eq!(audio, 0);
        assert!(!types(&ev).contains(&"tts_sentence".to_string()), "{ev:?}");
        // The new utterance is the next turn.
        let later = speak(&mut s, later, 500, 420);
        let (utt2, _) = transcribe_action(&mut s);
        s.handle_transcript(t(later), utt2, Ok("stop".into()));
        match s.poll_action() {
            Some(VoiceAction::StartTurn { turn: t2, text }) => {
                assert_eq!(t2, "v1-2");
                assert_eq!(text, "stop");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_frames_and_formats_are_refused_and_the_session_goes_on() {
        let mut s = session();
        s.handle_audio(t(0), &[0u8; 321]);
        s.handle_audio(t(0), &vec![0u8; MAX_FRAME_BYTES + 320]);
        let ev = texts(&mut s);
        assert_eq!(types(&ev), ["error", "error"]);
        assert_eq!(ev[0]["code"], "bad_frame");
        assert!(ev[0]["message"].as_str().unwrap().contains("321 bytes"));

        s.handle_text(
            t(0),
            r#"{"type":"start","format":"s16le","sample_rate":44100}"#,
        );
        let ev = texts(&mut s);
        assert_eq!(ev[0]["code"], "bad_format");
        assert!(ev[0]["message"].as_str().unwrap().contains("44100"));
        // Audio is refused (reported once, then silently) until a good start.
        speak(&mut s, 0, 600, 500);
        let ev = texts(&mut s);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0]["code"], "bad_format");
        assert!(s.poll_action().is_none());
        s.handle_text(t(0), r#"{"type":"start","sample_rate":16000}"#);
        assert!(texts(&mut s).is_empty());
        speak(&mut s, 2000, 600, 500);
        transcribe_action(&mut s);
        texts(&mut s);

        for bad in [
            "not json",
            "[1]",
            r#"{"type":"dance"}"#,
            r#"{"type":"ptt"}"#,
            r#"{"type":"text","text":"  "}"#,
        ] {
            s.handle_text(t(0), bad);
            let ev = texts(&mut s);
            assert_eq!(ev.len(), 1, "{bad}: {ev:?}");
            assert_eq!(ev[0]["code"], "bad_message", "{bad}");
        }
    }

    #[test]
    fn nothing_understood_gets_a_spoken_reprompt_and_asr_failure_an_error() {
        let mut s = session();
        let now = speak(&mut s, 0, 500, 420);
        let (utt, _) = transcribe_action(&mut s);
        texts(&mut s);
        s.handle_transcript(t(now), utt, Ok("[BLANK_AUDIO]".into()));
        let ev = texts(&mut s);
        assert_eq!(ev[0]["code"], "asr_empty");
        let mut synth = synth_actions(&mut s);
        s.handle_speech(t(now + 50), &synth[0].0, 0, Ok(vec![1; 1600]));
        synth.extend(synth_actions(&mut s));
        let said: Vec<&str> = synth.iter().map(|x| x.2.as_str()).collect();
        assert_eq!(said.join(" "), REPROMPT);
        s.handle_speech(t(now + 60), &synth[1].0, 1, Ok(vec![1; 1600]));
        let (ev, audio) = drain(&mut s);
        assert_eq!(audio, 6400);
        assert!(types(&ev).contains(&"tts_complete".to_string()));

        let now = speak(&mut s, now + 1000, 500, 420);
        let (utt, _) = transcribe_action(&mut s);
        texts(&mut s);
        s.handle_transcript(
            t(now),
            utt,
            Err("cannot reach http://127.0.0.1:9/v1/audio/transcriptions".into()),
        );
        let ev = texts(&mut s);
        assert_eq!(ev[0]["code"], "asr_failed");
        assert!(ev[0]["message"].as_str().unwrap().contains("127.0.0.1:9"));
        assert_eq!(ev[1], json!({"type": "state", "state": "listening"}));
        assert!(s.poll_action().is_none());
    }

    #[test]
    fn push_to_talk_marks_the_utterance_and_a_short_press_is_refused() {
        let mut cfg = VoiceConfig::new("p");
        cfg.mode = Mode::PushToTalk;
        let mut s = VoiceSession::new(cfg);
        texts(&mut s);
        // Audio outside a press is ignored.
        speak(&mut s, 0, 1000, 500);
        assert!(s.poll_action().is_none());
        s.handle_text(t(2000), r#"{"type":"ptt","down":true}"#);
        speak(&mut s, 2000, 600, 0);
        s.handle_text(t(2600), r#"{"type":"ptt","down":false}"#);
        let (_, wav) = transcribe_action(&mut s);
        let wav = crate::audio::wav_decode(&wav).unwrap();
        assert_eq!(wav.samples.len(), 600 * 16);
        s.handle_text(t(3000), r#"{"type":"ptt","down":true}"#);
        s.handle_text(t(3050), r#"{"type":"ptt","down":false}"#);
        let ev = texts(&mut s);
        assert!(ev.iter().any(|e| e["code"] == "asr_empty"), "{ev:?}");
        assert!(s.poll_action().is_none());
    }

    #[test]
    fn a_silent_press_is_never_sent_to_asr() {
        // Whisper with the home's prompt writes an example command for silence; the press is
        // answered asr_empty and the re-prompt instead, whatever the ASR provider.
        let mut cfg = VoiceConfig::new("p");
        cfg.mode = Mode::PushToTalk;
        let mut s = VoiceSession::new(cfg);
        texts(&mut s);
        s.handle_text(t(0), r#"{"type":"ptt","down":true}"#);
        speak(&mut s, 0, 0, 1000);
        s.handle_text(t(1000), r#"{"type":"ptt","down":false}"#);
        let ev = texts(&mut s);
        let empty = ev
            .iter()
            .find(|e| e["code"] == "asr_empty")
            .unwrap_or_else(|| panic!("asr_empty expected: {ev:?}"));
        assert!(
            empty["message"]
                .as_str()
                .unwrap()
                .contains("without speech (nothing louder than -45 dBFS)"),
            "{empty}"
        );
        let actions: Vec<VoiceAction> = std::iter::from_fn(|| s.poll_action()).collect();
        assert!(
            matches!(actions.as_slice(), [VoiceAction::Synthesize { text, .. }] if REPROMPT.starts_with(text.as_str())),
            "the re-prompt's first sentence and no transcription: {actions:?}"
        );
        // A press with words in it still goes to ASR, quiet lead-in and all.
        s.handle_text(t(5000), r#"{"type":"ptt","down":true}"#);
        speak(&mut s, 5000, 0, 300);
        speak(&mut s, 5300, 400, 0);
        s.handle_text(t(5700), r#"{"type":"ptt","down":false}"#);
        texts(&mut s);
        let (_, wav) = transcribe_action(&mut s);
        assert_eq!(
            crate::audio::wav_decode(&wav).unwrap().samples.len(),
            700 * 16
        );
    }

    #[test]
    fn a_spoken_yes_answers_a_pending_confirmation() {
        let mut s = session();
        s.handle_text(t(0), r#"{"type":"text","text":"unlock the front door"}"#);
        let Some(VoiceAction::StartTurn { turn, .. }) = s.poll_action() else {
            panic!()
        };
        s.handle_turn_event(
            t(5),
            &turn,
            &json!({"type": "confirmation_required", "id": "v1-1.c1", "prompt": "Unlock the front door?"}),
        );
        let synth = synth_actions(&mut s);
        // One at a time: "Say yes or no." waits for the question's speech.
        assert_eq!(synth.len(), 1);
        assert_eq!(synth[0].2, "Unlock the front door?");
        let now = speak(&mut s, 100, 400, 420);
        let (utt, _) = transcribe_action(&mut s);
        s.handle_transcript(t(now), utt, Ok("Yes.".into()));
        assert_eq!(
            s.poll_action(),
            Some(VoiceAction::Confirm {
                id: "v1-1.c1".into(),
                approve: true
            })
        );
        // The "yes" was speech, which stopped the prompt; the turn's answer is still spoken.
        s.handle_turn_event(
            t(now + 20),
            &turn,
            &json!({"type": "text_delta", "text": "The front door is unlocked."}),
        );
        s.handle_turn_event(t(now + 21), &turn, &json!({"type": "done"}));
        let synth = synth_actions(&mut s);
        assert_eq!(
            synth,
            vec![(turn.clone(), 2, "The front door is unlocked.".to_string())]
        );
        // Late audio of the stopped prompt is not played.
        s.handle_speech(t(now + 22), &turn, 0, Ok(vec![1; 1600]));
        let (_, audio) = drain(&mut s);
        assert_eq!(audio, 0);
        s.handle_speech(t(now + 30), &turn, 2, Ok(vec![1; 1600]));
        let (ev, audio) = drain(&mut s);
        assert_eq!(audio, 3200);
        assert!(types(&ev).contains(&"tts_complete".to_string()), "{ev:?}");
    }

    /// A typed turn whose whole answer is `answer`, streamed at 1 ms and done at 2 ms.
    fn typed_turn_answered(answer: &str) -> (VoiceSession, String) {
        let mut s = session();
        s.handle_text(t(0), r#"{"type":"text","text":"hi"}"#);
        let Some(VoiceAction::StartTurn { turn, .. }) = s.poll_action() else {
            panic!()
        };
        let delta = json!({"type": "text_delta", "text": answer});
        s.handle_turn_event(t(1), &turn, &delta);
        s.handle_turn_event(t(2), &turn, &json!({"type": "done"}));
        (s, turn)
    }

    #[test]
    fn a_failed_sentence_is_skipped_and_the_rest_still_plays() {
        let (mut s, turn) = typed_turn_answered("One. Two.");
        assert_eq!(synth_actions(&mut s).len(), 1);
        drain(&mut s);
        s.handle_speech(t(3), &turn, 0, Err("TTS answered HTTP 500".into()));
        // The failed sentence does not hold up the next one.
        assert_eq!(synth_actions(&mut s)[0].2, "Two.");
        s.handle_speech(t(4), &turn, 1, Ok(vec![1; 3200]));
        let (ev, audio) = drain(&mut s);
        assert_eq!(audio, 6400);
        let ty = types(&ev);
        assert_eq!(ty[0], "error");
        assert_eq!(ev[0]["code"], "tts_failed");
        assert!(ty.contains(&"tts_complete".to_string()));
        // A typed turn has no endpoint or ASR stage.
        let timings = ev.iter().find(|e| e["type"] == "timings").unwrap();
        assert!(timings.get("asr_ms").is_none());
        assert_eq!(timings["tts_first_audio_ms"], 3);
        assert!(s.is_speaking(t(5)));
        assert!(!s.is_speaking(t(4) + Duration::from_millis(200)));
    }

    /// A barge-in while sentences still wait for synthesis: they are never asked for, and the
    /// turn still completes (its timings go out) when the one in flight comes back.
    #[test]
    fn a_barge_in_drops_the_sentences_not_yet_synthesised() {
        let (mut s, turn) = typed_turn_answered("One. Two. Three.");
        assert_eq!(synth_actions(&mut s).len(), 1);
        s.handle_speech(t(3), &turn, 0, Ok(vec![1; 16000 * 2]));
        assert_eq!(synth_actions(&mut s)[0].1, 1);
        drain(&mut s);
        s.handle_text(t(500), r#"{"type":"cancel"}"#);
        let (ev, _) = drain(&mut s);
        assert!(types(&ev).contains(&"tts_terminate".to_string()), "{ev:?}");
        s.handle_speech(t(600), &turn, 1, Ok(vec![1; 1600]));
        assert!(
            synth_actions(&mut s).is_empty(),
            "\"Three.\" is not synthesised"
        );
        let (ev, audio) = drain(&mut s);
        assert_eq!(audio, 0);
        assert!(types(&ev).contains(&"timings".to_string()), "{ev:?}");
    }
}
