//! The voice session: the order of one spoken exchange (docs/voice.md §1), behind
//! [`VoiceSession`]'s `handle_*` / `poll_*` drive loop.
//!
//! Owns format checks, endpointing (the VAD's silence, and the semantic endpoint: a pause whose
//! early transcript is a whole command ends the utterance there), early ASR, turn ids, what is passed on to the device, and
//! which turn's speech plays; the per-turn speech is [`super::playout`]'s, sentence cutting
//! [`super::sentences`]', stage times [`super::timings`]'. It never touches a socket or a clock
//! and never reads or writes JSON itself: messages go through [`super::wire`].

use std::collections::{HashMap, VecDeque};

use super::playout::{AnswerText, Speech};
use super::sentences::{transcript_text, yes_or_no};
use super::timings::Timings;
use super::wire::{
    ClientMessage, EndpointKind, ErrorCode, Mode, ServerMessage, StopReason, VoiceState, FORMAT,
    FRAME_MS, MAX_FRAME_BYTES, SAMPLE_RATE,
};
use crate::agent::planner;
use crate::agent::turn::{TurnEvent, TurnUpdate};
use crate::media::audio::SAMPLES_PER_10MS;
use crate::media::audio::{
    has_speech, pcm_from_bytes, pcm_to_bytes, wav_encode, Vad, VadConfig, VadEvent,
};
use crate::protocol::mcp::client::DeviceInfo;
use crate::time::Timestamp;

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
    /// End an utterance at a pause when its early transcript is a whole command
    /// ([`planner::is_complete`]), instead of waiting for the rest of `vad.silence_ms`.
    pub semantic_endpoint: bool,
    /// The device that speaks and listens: the command's device when it names none.
    pub device: Option<String>,
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
            semantic_endpoint: true,
            device: None,
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
    /// Run an agent turn on this text under this id; feed what it reports to
    /// [`VoiceSession::handle_turn`].
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
    /// A control message (send it as text: [`ServerMessage::to_text`]).
    Message(ServerMessage),
    /// PCM s16le 16 kHz mono.
    Audio(Vec<u8>),
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

/// An utterance the semantic endpoint ended, kept until its turn's answer starts: speech
/// before then is the same utterance going on (the end was wrong), and is transcribed with it.
#[derive(Debug)]
struct Joinable {
    /// The turn it started.
    turn: String,
    /// Its audio, up to the semantic endpoint.
    samples: Vec<i16>,
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
    /// What the semantic endpoint judges a command against (the Hub's devices).
    devices: Vec<DeviceInfo>,
    /// The last utterance, if the semantic endpoint ended it and its answer has not started.
    joinable: Option<Joinable>,
    speeches: HashMap<String, Speech>,
    current: Option<String>,
    /// A confirmation waiting for the person: (call id, turn).
    pending_confirmation: Option<(String, String)>,
    playback_done: bool,
    state: VoiceState,
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
            devices: Vec::new(),
            joinable: None,
            speeches: HashMap::new(),
            current: None,
            pending_confirmation: None,
            playback_done: false,
            state: VoiceState::Listening,
            actions: VecDeque::new(),
            out: VecDeque::new(),
            config,
        };
        s.send(ServerMessage::Ready {
            session: s.config.session.clone(),
            mode: s.config.mode,
            format: FORMAT.into(),
            sample_rate: SAMPLE_RATE,
            frame_ms: FRAME_MS,
            asr: s.config.asr.clone(),
            tts: s.config.tts.clone(),
            llm: s.config.llm.clone(),
            silence_ms: s.config.vad.silence_ms,
        });
        s.send(ServerMessage::State {
            state: VoiceState::Listening,
        });
        s
    }

    /// The devices commands are judged against by the semantic endpoint (a copy of the Hub's
    /// registry; refresh it when ASR is asked for). Without any, no command is whole and every
    /// utterance waits for the full silence.
    pub fn set_devices(&mut self, devices: Vec<DeviceInfo>) {
        self.devices = devices;
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
        if self.state != VoiceState::Speaking {
            return None;
        }
        self.current
            .as_ref()
            .and_then(|t| self.speeches.get(t))
            .filter(|s| s.playout.complete())
            .and_then(|s| s.playback_end)
    }

    /// Time passed: a finished playback returns the face to listening.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if let Some(end) = self.poll_timeout() {
            if now >= end {
                self.set_state(VoiceState::Listening);
            }
        }
    }

    /// Whether the device may still be playing the current turn's speech.
    pub fn is_speaking(&self, now: Timestamp) -> bool {
        let Some(s) = self.current.as_ref().and_then(|t| self.speeches.get(t)) else {
            return false;
        };
        s.playout.audible()
            && !(s.playout.complete()
                && (self.playback_done || s.playback_end.is_some_and(|e| now >= e)))
    }

    /// A binary message: audio.
    pub fn handle_audio(&mut self, now: Timestamp, bytes: &[u8]) {
        let step = SAMPLES_PER_10MS * 2;
        if bytes.is_empty() || bytes.len() % step != 0 || bytes.len() > MAX_FRAME_BYTES {
            self.error(
                ErrorCode::BadFrame,
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
                    ErrorCode::BadFormat,
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
                        VadEvent::Resumed { at_ms } => self.resumed(now, at_ms),
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
        let mut u: Vec<i16> = self.recent.iter().skip(skip).copied().collect();
        self.recent.clear();
        // The semantic endpoint ended the last utterance too soon: the speaker went on before
        // its answer started. The words so far stay in: one utterance, transcribed whole.
        if let Some(mut before) = self.take_joinable() {
            before.append(&mut u);
            u = before;
        }
        self.utterance = Some(u);
        self.speech_start_ms = at_ms;
        self.send(ServerMessage::SpeechStarted { at_ms });
        self.barge_in(now, StopReason::BargeIn);
        self.set_state(VoiceState::Listening);
    }

    /// The semantic endpoint's utterance, if its turn has not started speaking (nor ended,
    /// nor been stopped): then speech now is that utterance going on.
    fn take_joinable(&mut self) -> Option<Vec<i16>> {
        let j = self.joinable.take()?;
        let speech = self.speeches.get(&j.turn)?;
        let pending = self.current.as_deref() == Some(j.turn.as_str())
            && !speech.playout.audible()
            && !speech.playout.complete()
            && !speech.playout.stopped();
        pending.then_some(j.samples)
    }

    /// Speech went on after a pause, within the VAD's utterance. Its early transcript will not
    /// be the utterance's. If the semantic endpoint had already ended the utterance there, this
    /// is new speech for the session (joined to the last utterance while its answer has not
    /// started, a barge-in once it has); the VAD's start stays the utterance's start.
    fn resumed(&mut self, now: Timestamp, at_ms: u64) {
        self.drop_early();
        if self.utterance.is_none() {
            let vad_start = self.speech_start_ms;
            self.speech_started(now, at_ms);
            self.speech_start_ms = vad_start;
        }
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
        self.send(ServerMessage::SpeechEnded { at_ms, speech_ms });
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
                    t.endpoint = Some(EndpointKind::Silence);
                    t.t_endpoint = Some(now);
                }
                self.set_state(VoiceState::Thinking);
                if let Some(outcome) = e.outcome {
                    self.handle_transcript(now, e.utterance, outcome);
                }
            }
            other => {
                self.early = other;
                self.drop_early();
                self.transcribe(now, u, endpoint_ms, EndpointKind::Silence);
            }
        }
    }

    /// The semantic endpoint: the early transcript of a pause that still stands is a whole
    /// command, so the utterance ends here rather than after the rest of the silence.
    fn semantic_endpoint(&mut self, now: Timestamp, e: EarlyAsr, outcome: Result<String, String>) {
        let Some(samples) = self.utterance.take() else {
            return;
        };
        // The words ended `pause_ms` before the pause was reported.
        let words_end = e
            .paused_at_ms
            .saturating_sub(u64::from(self.config.vad.pause_ms));
        let speech_ms = words_end.saturating_sub(self.speech_start_ms);
        self.send(ServerMessage::SpeechEnded {
            at_ms: self.audio_ms,
            speech_ms,
        });
        if let Some(t) = self.asr_pending.get_mut(&e.utterance) {
            t.endpoint_ms = Some(self.audio_ms.saturating_sub(words_end));
            t.endpoint = Some(EndpointKind::Semantic);
            t.t_endpoint = Some(now);
        }
        self.set_state(VoiceState::Thinking);
        let before = self.next_turn;
        self.handle_transcript(now, e.utterance, outcome);
        if self.next_turn != before {
            if let Some(turn) = self.current.clone() {
                self.joinable = Some(Joinable { turn, samples });
            }
        }
    }

    /// Whether `text` ends the utterance now (the semantic endpoint's judgement, made once by
    /// the planner's reading of a whole command; a pending confirmation's yes or no counts).
    fn is_whole(&self, text: &str) -> bool {
        let text = transcript_text(text);
        (self.pending_confirmation.is_some() && yes_or_no(&text).is_some())
            || planner::is_complete(&text, &self.devices, self.config.device.as_deref())
    }

    fn transcribe(
        &mut self,
        now: Timestamp,
        samples: Vec<i16>,
        endpoint_ms: u64,
        endpoint: EndpointKind,
    ) {
        let id = self.next_utterance;
        self.next_utterance += 1;
        self.asr_pending.insert(
            id,
            Timings {
                endpoint_ms: Some(endpoint_ms),
                endpoint: Some(endpoint),
                t_endpoint: Some(now),
                ..Default::default()
            },
        );
        self.set_state(VoiceState::Thinking);
        self.actions.push_back(VoiceAction::Transcribe {
            utterance: id,
            wav: wav_encode(&samples, SAMPLE_RATE),
        });
    }

    /// A text message: a control message (docs/voice.md §1.2). One that breaks the contract
    /// is answered `bad_message` and changes nothing.
    pub fn handle_text(&mut self, now: Timestamp, text: &str) {
        match ClientMessage::parse(text) {
            Ok(m) => self.handle_message(now, m),
            Err(e) => self.error(ErrorCode::BadMessage, e.to_string()),
        }
    }

    /// A control message already parsed.
    pub fn handle_message(&mut self, now: Timestamp, msg: ClientMessage) {
        match msg {
            ClientMessage::Start {
                format,
                sample_rate: rate,
                channels,
            } => {
                if format == FORMAT && rate == u64::from(SAMPLE_RATE) && channels == 1 {
                    self.format_ok = true;
                    self.refused_reported = false;
                } else {
                    self.format_ok = false;
                    // The first audio refused is reported too: a device that ignores the
                    // start's error learns why its audio goes nowhere.
                    self.refused_reported = false;
                    self.error(
                        ErrorCode::BadFormat,
                        format!(
                            "{format} at {rate} Hz with {channels} channel(s) is not accepted: send s16le, 16000 Hz, 1 channel (audio is refused until a start with that format)"
                        ),
                    );
                }
            }
            ClientMessage::Ptt { down: true } => {
                self.drop_early();
                self.ptt_down = true;
                self.utterance = Some(Vec::new());
                self.send(ServerMessage::SpeechStarted {
                    at_ms: self.audio_ms,
                });
                self.barge_in(now, StopReason::BargeIn);
                self.set_state(VoiceState::Listening);
            }
            ClientMessage::Ptt { down: false } => {
                self.ptt_down = false;
                if let Some(u) = self.utterance.take() {
                    let ms = u.len() as u64 / SAMPLES_PER_MS;
                    self.send(ServerMessage::SpeechEnded {
                        at_ms: self.audio_ms,
                        speech_ms: ms,
                    });
                    if ms < MIN_UTTERANCE_MS {
                        self.error(
                            ErrorCode::AsrEmpty,
                            format!(
                                "the press held {ms} ms of audio: hold the button while you speak"
                            ),
                        );
                        self.set_state(VoiceState::Listening);
                    } else if !has_speech(&u, &self.config.vad) {
                        // Never sent to ASR: Whisper, given the home's prompt, writes one
                        // of its example commands for silence (tiny.en: "Set the bedroom
                        // thermostat to 21."), and the agent would carry it out.
                        let floor = self.config.vad.min_speech_dbfs as i32;
                        let timings = Timings {
                            endpoint_ms: Some(0),
                            endpoint: Some(EndpointKind::PushToTalk),
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
                        self.transcribe(now, u, 0, EndpointKind::PushToTalk);
                    }
                }
            }
            ClientMessage::Text { text } => {
                self.barge_in(now, StopReason::BargeIn);
                self.understood(now, text, Timings::default());
            }
            ClientMessage::Confirm { id, approve } => self.confirm(id, approve),
            ClientMessage::Cancel => self.barge_in(now, StopReason::Cancel),
            ClientMessage::PlaybackDone => {
                self.playback_done = true;
                if self.state == VoiceState::Speaking && !self.is_speaking(now) {
                    self.set_state(VoiceState::Listening);
                }
            }
        }
    }

    /// What ASR heard in an utterance, or why it failed.
    pub fn handle_transcript(
        &mut self,
        now: Timestamp,
        utterance: u64,
        outcome: Result<String, String>,
    ) {
        if self
            .early
            .as_ref()
            .is_some_and(|e| e.utterance == utterance)
        {
            // Before the endpoint, and the pause still stands (speech going on drops it): a
            // whole command ends the utterance now; anything else is kept until the VAD says
            // whether the pause was the end.
            let whole = self.config.semantic_endpoint
                && self.utterance.is_some()
                && outcome.as_ref().is_ok_and(|text| self.is_whole(text));
            match self.early.take() {
                Some(e) if whole => self.semantic_endpoint(now, e, outcome),
                Some(mut e) => {
                    e.outcome = Some(outcome);
                    self.early = Some(e);
                }
                None => {}
            }
            return;
        }
        let Some(mut timings) = self.asr_pending.remove(&utterance) else {
            return;
        };
        timings.t_transcript = Some(now);
        match outcome {
            Err(e) => {
                self.error(ErrorCode::AsrFailed, e);
                self.set_state(VoiceState::Listening);
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
                        self.send(ServerMessage::Transcript {
                            turn: None,
                            text,
                            confirms: Some(id.clone()),
                        });
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
        self.error(ErrorCode::AsrEmpty, why);
        let turn = self.turn_id();
        self.current = Some(turn.clone());
        let speech = Speech {
            answer: AnswerText::Streaming,
            ..Speech::new(timings)
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
        self.send(ServerMessage::Transcript {
            turn: Some(turn.clone()),
            text: text.clone(),
            confirms: None,
        });
        self.speeches.insert(turn.clone(), Speech::new(timings));
        self.current = Some(turn.clone());
        self.playback_done = false;
        self.set_state(VoiceState::Thinking);
        self.actions
            .push_back(VoiceAction::StartTurn { turn, text });
    }

    /// What a turn this session started reports (its start, each event, its end), in order.
    /// Every update is passed on to the device.
    pub fn handle_turn(&mut self, now: Timestamp, turn: &str, update: &TurnUpdate) {
        self.send(match update {
            TurnUpdate::Started {
                turn,
                user,
                llm,
                vlm,
            } => ServerMessage::Turn {
                turn: turn.clone(),
                user: user.clone(),
                llm: llm.clone(),
                vlm: vlm.clone(),
            },
            TurnUpdate::Event(ev) => ServerMessage::Agent(ev.clone()),
            TurnUpdate::Done { turn } => ServerMessage::Done { turn: turn.clone() },
        });
        let Some(speech) = self.speeches.get_mut(turn) else {
            return;
        };
        let event = match update {
            TurnUpdate::Started { .. } => return,
            TurnUpdate::Done { .. } => return self.finish_text(now, turn),
            TurnUpdate::Event(ev) => ev,
        };
        let first_token = matches!(
            event,
            TurnEvent::TextDelta { .. }
                | TurnEvent::ToolStarted { .. }
                | TurnEvent::ConfirmationRequired { .. }
        );
        if first_token && speech.timings.t_first_token.is_none() {
            speech.timings.t_first_token = Some(now);
        }
        if matches!(event, TurnEvent::ToolFinished { .. })
            && speech.timings.t_first_tool_result.is_none()
        {
            speech.timings.t_first_tool_result = Some(now);
        }
        let heard = speech.heard_text();
        let mut hear = || {
            if !heard {
                speech.answer = AnswerText::Streaming;
            }
        };
        match event {
            TurnEvent::TextDelta { text } => {
                hear();
                self.speak_text(now, turn, text);
            }
            TurnEvent::ConfirmationRequired { id, prompt, .. } => {
                self.pending_confirmation = Some((id.clone(), turn.to_string()));
                let ask = format!(" {prompt} Say yes or no.\n");
                self.speak_text(now, turn, &ask);
            }
            // A provider that streamed nothing still has its answer spoken.
            TurnEvent::Answer { text, .. } if !heard => {
                hear();
                self.speak_text(now, turn, text);
            }
            TurnEvent::Error { message } => {
                hear();
                self.error(ErrorCode::TurnFailed, message.clone());
                if !heard {
                    self.speak_text(now, turn, message);
                }
            }
            TurnEvent::ToolStarted { .. }
            | TurnEvent::ToolFinished { .. }
            | TurnEvent::Answer { .. } => {}
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
                    answer: if old.heard_text() {
                        AnswerText::Streaming
                    } else {
                        AnswerText::Awaited
                    },
                    ..Speech::new(old.timings)
                };
                self.speeches.insert(turn.clone(), speech);
                self.current = Some(turn);
                self.playback_done = false;
            }
        }
        self.set_state(VoiceState::Thinking);
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
        if speech.playout.stopped() {
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
        if speech.playout.stopped() {
            // Nothing more is spoken: the waiting sentences count as done without audio.
            speech.stop();
            return;
        }
        if speech.synthesizing.is_some() {
            return;
        }
        if let Some(index) = speech.unsynthesized.pop_front() {
            speech.synthesizing = Some(index);
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
        speech.answer = AnswerText::Ended;
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
        speech.synthesizing = None;
        match outcome {
            Ok(audio) => {
                speech.ready.insert(index, Some(audio));
            }
            Err(e) => {
                speech.ready.insert(index, None);
                self.error(ErrorCode::TtsFailed, e);
            }
        }
        self.next_synthesis(turn);
        self.flush(now, turn);
    }

    /// A sentence's audio that the Hub already had (its speech cache, docs/voice.md §1.4):
    /// the same as [`VoiceSession::handle_speech`], and the turn's `tts_cached` says so when it
    /// is the first audio sent.
    pub fn handle_cached_speech(
        &mut self,
        now: Timestamp,
        turn: &str,
        index: u32,
        samples: Vec<i16>,
    ) {
        if let Some(speech) = self.speeches.get_mut(turn) {
            speech.cached.insert(index);
        }
        self.handle_speech(now, turn, index, Ok(samples));
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
            if speech.playout.stopped() {
                continue;
            }
            if speech.begin() {
                out.push(Outbound::Message(ServerMessage::TtsBegin {
                    turn: turn.to_string(),
                }));
            }
            let text = speech.texts.get(&index).cloned().unwrap_or_default();
            out.push(Outbound::Message(ServerMessage::TtsSentence {
                turn: turn.to_string(),
                index,
                text,
            }));
            for chunk in audio.chunks(OUT_CHUNK_SAMPLES) {
                out.push(Outbound::Audio(pcm_to_bytes(chunk)));
            }
            if speech.timings.t_first_audio.is_none() {
                speech.timings.t_first_audio = Some(now);
                speech.timings.first_audio_cached = speech.cached.contains(&index);
            }
            let ms = audio.len() as u64 / SAMPLES_PER_MS;
            speech.audio_ms += ms;
            let from = speech.playback_end.filter(|e| *e > now).unwrap_or(now);
            speech.playback_end = Some(from + std::time::Duration::from_millis(ms));
        }
        if speech.all_sent() && !speech.playout.complete() {
            if speech.playout.audible() {
                out.push(Outbound::Message(ServerMessage::TtsComplete {
                    turn: turn.to_string(),
                    audio_ms: speech.audio_ms,
                }));
            }
            speech.complete();
            out.push(Outbound::Message(ServerMessage::Timings(
                speech.timings.report(turn),
            )));
        }
        let speaking = speech.playout.audible();
        let done = speech.playout.complete();
        self.out.extend(out);
        if is_current && speaking && self.state != VoiceState::Speaking && !done {
            self.set_state(VoiceState::Speaking);
        }
        if is_current && done {
            if speaking && !self.playback_done {
                self.set_state(VoiceState::Speaking);
                self.handle_timeout(now);
            } else if self.state != VoiceState::Listening && self.pending_confirmation.is_none() {
                self.set_state(VoiceState::Listening);
            }
        }
        if done {
            self.speeches
                .retain(|t, s| !s.playout.complete() || Some(t) == self.current.as_ref());
        }
    }

    /// Speech from the device, a new typed turn or `cancel`: the current speech stops.
    fn barge_in(&mut self, now: Timestamp, reason: StopReason) {
        let speaking = self.is_speaking(now);
        let Some(turn) = self.current.clone() else {
            return;
        };
        let Some(speech) = self.speeches.get_mut(&turn) else {
            return;
        };
        if speech.playout.stopped() || (speech.playout.complete() && !speaking) {
            return;
        }
        let audible = speech.playout.audible();
        speech.stop();
        if audible && speaking {
            self.send(ServerMessage::TtsTerminate { turn, reason });
        }
        self.playback_done = true;
    }

    fn set_state(&mut self, state: VoiceState) {
        if self.state != state {
            self.state = state;
            self.send(ServerMessage::State { state });
        }
    }

    fn error(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.send(ServerMessage::error(code, message));
    }

    fn send(&mut self, m: ServerMessage) {
        self.out.push_back(Outbound::Message(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn delta(text: &str) -> TurnUpdate {
        TurnUpdate::Event(TurnEvent::TextDelta { text: text.into() })
    }

    fn answer(text: &str) -> TurnUpdate {
        TurnUpdate::Event(TurnEvent::Answer {
            text: text.into(),
            steps: 1,
        })
    }

    fn done(turn: &str) -> TurnUpdate {
        TurnUpdate::Done { turn: turn.into() }
    }

    fn tool(id: &str, finished: bool) -> TurnUpdate {
        let (device, tool) = ("kitchen-lamp".to_string(), "set_power".to_string());
        TurnUpdate::Event(if finished {
            TurnEvent::ToolFinished {
                id: id.into(),
                device,
                tool,
                ok: true,
                ms: 8,
                result: None,
                error: None,
            }
        } else {
            TurnEvent::ToolStarted {
                id: id.into(),
                device,
                tool,
                arguments: json!({"on": true}),
            }
        })
    }

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
            if let Outbound::Message(m) = o {
                v.push(serde_json::from_str(&m.to_text()).expect("our own JSON"));
            }
        }
        v
    }

    fn drain(s: &mut VoiceSession) -> (Vec<Value>, usize) {
        let mut v = Vec::new();
        let mut audio = 0;
        while let Some(o) = s.poll_outbound() {
            match o {
                Outbound::Message(m) => {
                    v.push(serde_json::from_str(&m.to_text()).expect("our own JSON"))
                }
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
        let wav = crate::media::audio::wav_decode(&wav).expect("a WAV");
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

        s.handle_turn(t(now + 302), &turn, &tool("a", false));
        s.handle_turn(t(now + 310), &turn, &tool("a", true));
        s.handle_turn(
            t(now + 311),
            &turn,
            &delta("The kitchen lamp is on. Anything else?"),
        );
        let first = synth_actions(&mut s);
        assert_eq!(
            first,
            vec![(turn.clone(), 0, "The kitchen lamp is on.".to_string())]
        );
        s.handle_turn(
            t(now + 312),
            &turn,
            &answer("The kitchen lamp is on. Anything else?"),
        );
        s.handle_turn(t(now + 313), &turn, &done(&turn));
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
        let ms = crate::media::audio::wav_decode(&wav).unwrap().samples.len() as u64 / 16;
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
        s.handle_turn(t(now + 5), &turn, &answer("On."));
        s.handle_turn(t(now + 6), &turn, &done(&turn));
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
        let ms = crate::media::audio::wav_decode(&wav).unwrap().samples.len() as u64 / 16;
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

    /// A session that knows a kitchen lamp and a bedroom thermostat (the semantic endpoint's
    /// home).
    fn home_session(semantic: bool) -> VoiceSession {
        use crate::agent::test_home::device;
        let mut cfg = VoiceConfig::new("v1");
        cfg.semantic_endpoint = semantic;
        let mut s = VoiceSession::new(cfg);
        texts(&mut s);
        s.set_devices(vec![
            device(
                "kitchen-lamp",
                "lamp",
                "kitchen",
                "Kitchen lamp",
                &["set_power", "get_state"],
            ),
            device(
                "bedroom-thermostat",
                "thermostat",
                "bedroom",
                "Bedroom thermostat",
                &["set_target", "get_state"],
            ),
        ]);
        s
    }

    fn start_turn(s: &mut VoiceSession) -> (String, String) {
        match s.poll_action() {
            Some(VoiceAction::StartTurn { turn, text }) => (turn, text),
            other => panic!("expected StartTurn, got {other:?}"),
        }
    }

    /// The early transcript at the 200 ms pause is a whole command: the utterance ends when it
    /// comes back (300 ms after the words), not at the 400 ms silence, and the VAD's own end
    /// later changes nothing.
    #[test]
    fn a_whole_command_ends_the_utterance_at_the_pause() {
        let mut s = home_session(true);
        let paused = speak(&mut s, 0, 1000, 200);
        let (utt, _) = transcribe_action(&mut s);
        drain(&mut s);
        // ASR takes 100 ms of audio time; the silence goes on meanwhile.
        let now = speak(&mut s, paused, 0, 100);
        assert!(texts(&mut s).is_empty(), "nothing before the transcript");
        s.handle_transcript(t(now), utt, Ok(" Turn on the kitchen lamp.".into()));
        let ev = texts(&mut s);
        assert_eq!(
            types(&ev),
            ["speech_ended", "state", "transcript"].map(String::from),
            "{ev:?}"
        );
        assert_eq!(ev[0]["speech_ms"], 1000);
        assert_eq!(ev[0]["at_ms"], 1300);
        let (turn, text) = start_turn(&mut s);
        assert_eq!(text, "Turn on the kitchen lamp.");
        // The rest of the VAD's silence: no second end, no second transcription.
        let now = speak(&mut s, now, 0, 300);
        assert!(texts(&mut s).is_empty());
        assert!(s.poll_action().is_none());
        s.handle_turn(t(now), &turn, &answer("Kitchen lamp is on."));
        s.handle_turn(t(now + 1), &turn, &done(&turn));
        let (_, index, _) = synth_actions(&mut s).remove(0);
        s.handle_speech(t(now + 50), &turn, index, Ok(vec![1; 1600]));
        let timings = texts(&mut s)
            .into_iter()
            .find(|e| e["type"] == "timings")
            .expect("timings");
        assert_eq!(timings["endpoint"], "semantic", "{timings}");
        assert_eq!(timings["endpoint_ms"], 300, "{timings}");
        assert_eq!(timings["asr_ms"], 0, "{timings}");
        assert_eq!(timings["asr_early"], true, "{timings}");
        assert_eq!(timings["tts_cached"], false, "{timings}");
    }

    /// "Turn on the" is no whole command: the session waits for the full silence, and then uses
    /// the same early transcript; with the semantic endpoint off, a whole command waits too.
    #[test]
    fn an_incomplete_phrase_or_a_session_without_it_waits_for_the_silence() {
        for (semantic, said) in [
            (true, "Turn on the"),
            (true, "Set the bedroom thermostat to"),
            (false, "Turn on the kitchen lamp."),
        ] {
            let mut s = home_session(semantic);
            let paused = speak(&mut s, 0, 800, 200);
            let (utt, _) = transcribe_action(&mut s);
            drain(&mut s);
            s.handle_transcript(t(paused + 50), utt, Ok(said.into()));
            let now = speak(&mut s, paused, 0, 180);
            assert!(texts(&mut s).is_empty(), "{said:?} waits");
            assert!(s.poll_action().is_none(), "{said:?} waits");
            let now = speak(&mut s, now, 0, 20);
            let ev = texts(&mut s);
            assert_eq!(
                types(&ev),
                ["speech_ended", "state", "transcript"].map(String::from),
                "{said:?}: {ev:?}"
            );
            let (turn, text) = start_turn(&mut s);
            assert_eq!(text, said);
            s.handle_turn(t(now), &turn, &answer("Which one?"));
            s.handle_turn(t(now), &turn, &done(&turn));
            synth_actions(&mut s);
            s.handle_speech(t(now + 50), &turn, 0, Ok(vec![1; 1600]));
            let timings = texts(&mut s)
                .into_iter()
                .find(|e| e["type"] == "timings")
                .expect("timings");
            assert_eq!(timings["endpoint"], "silence", "{said:?}: {timings}");
            assert_eq!(timings["endpoint_ms"], 400, "{said:?}: {timings}");
        }
    }

    /// A wrong early end loses no words: speech that goes on before the answer starts, within
    /// the VAD's silence or after it, joins the utterance, which is transcribed whole as the next
    /// turn; the early turn says nothing.
    #[test]
    fn speech_before_the_answer_starts_joins_the_early_ended_utterance() {
        // (gap after the early end, in ms of silence): 60 is inside the VAD's 400 ms, 500 after.
        for gap in [60u64, 500] {
            let mut s = home_session(true);
            let paused = speak(&mut s, 0, 1000, 200);
            let (utt, _) = transcribe_action(&mut s);
            s.handle_transcript(t(paused), utt, Ok("Turn on the kitchen lamp.".into()));
            let (first, _) = start_turn(&mut s);
            drain(&mut s);
            // "… and the bedroom thermostat to 21": 600 ms more, then the full silence.
            let resumed = speak(&mut s, paused, 0, gap);
            let now = speak(&mut s, resumed, 600, 0);
            let ev = texts(&mut s);
            assert!(
                types(&ev).contains(&"speech_started".to_string()),
                "gap {gap}: {ev:?}"
            );
            assert!(
                !types(&ev).contains(&"tts_terminate".to_string()),
                "nothing was playing"
            );
            // The early turn's answer is never spoken.
            s.handle_turn(t(now), &first, &answer("Kitchen lamp is on."));
            s.handle_turn(t(now), &first, &done(&first));
            assert!(synth_actions(&mut s).is_empty(), "gap {gap}");
            let (_, audio) = drain(&mut s);
            assert_eq!(audio, 0);
            // The whole utterance, both parts, goes to ASR (early at the pause, used at the end).
            let paused = speak(&mut s, now, 0, 200);
            let (utt, wav) = transcribe_action(&mut s);
            let ms = crate::media::audio::wav_decode(&wav).unwrap().samples.len() as u64 / 16;
            assert!(ms >= 1000 + 600, "gap {gap}: {ms} ms, the first words too");
            s.handle_transcript(
                t(paused),
                utt,
                Ok("Turn on the kitchen lamp and the bedroom thermostat to 21.".into()),
            );
            let (second, text) = start_turn(&mut s);
            assert_ne!(second, first);
            assert!(text.starts_with("Turn on the kitchen lamp and"), "{text}");
        }
    }

    /// Once the early turn's answer is playing, speech is a barge-in as always: it stops the
    /// answer and is an utterance of its own.
    #[test]
    fn speech_after_the_answer_started_is_a_barge_in_not_a_join() {
        let mut s = home_session(true);
        let paused = speak(&mut s, 0, 1000, 200);
        let (utt, _) = transcribe_action(&mut s);
        s.handle_transcript(t(paused), utt, Ok("Turn on the kitchen lamp.".into()));
        let (turn, _) = start_turn(&mut s);
        s.handle_turn(t(paused + 5), &turn, &answer("Kitchen lamp is on."));
        synth_actions(&mut s);
        s.handle_speech(t(paused + 20), &turn, 0, Ok(vec![1; 16000 * 2]));
        drain(&mut s);
        let now = speak(&mut s, paused, 0, 600);
        let now = speak(&mut s, now, 500, 0);
        let ev = texts(&mut s);
        assert!(types(&ev).contains(&"tts_terminate".to_string()), "{ev:?}");
        let paused = speak(&mut s, now, 0, 200);
        let (_, wav) = transcribe_action(&mut s);
        let ms = crate::media::audio::wav_decode(&wav).unwrap().samples.len() as u64 / 16;
        assert!(ms < 1000, "only the new words: {ms} ms");
        let _ = paused;
    }

    /// Speech the Hub had cached goes out at once and the turn's timings say so.
    #[test]
    fn cached_speech_is_sent_and_reported_as_cached() {
        let (mut s, turn) = typed_turn_answered("Kitchen lamp is on.");
        let (_, index, _) = synth_actions(&mut s).remove(0);
        s.handle_cached_speech(t(2), &turn, index, vec![1; 1600]);
        let (ev, audio) = drain(&mut s);
        assert_eq!(audio, 3200);
        let timings = ev.iter().find(|e| e["type"] == "timings").expect("timings");
        assert_eq!(timings["tts_cached"], true, "{timings}");
        assert_eq!(
            timings["tts_first_audio_ms"], 0,
            "sent as soon as the sentence was whole: {timings}"
        );
        assert!(timings.get("endpoint").is_none(), "a typed turn: {timings}");
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
        s.handle_turn(
            t(now),
            &turn,
            &delta("Once upon a time. There was a lamp. "),
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
        s.handle_turn(t(later), &turn, &done(&turn));
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
        let wav = crate::media::audio::wav_decode(&wav).unwrap();
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
            crate::media::audio::wav_decode(&wav).unwrap().samples.len(),
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
        s.handle_turn(
            t(5),
            &turn,
            &TurnUpdate::Event(TurnEvent::ConfirmationRequired {
                id: "v1-1.c1".into(),
                device: "front-door".into(),
                tool: "unlock".into(),
                prompt: "Unlock the front door?".into(),
                arguments: json!({}),
            }),
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
        s.handle_turn(t(now + 20), &turn, &delta("The front door is unlocked."));
        s.handle_turn(t(now + 21), &turn, &done(&turn));
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
        s.handle_turn(t(1), &turn, &delta(answer));
        s.handle_turn(t(2), &turn, &done(&turn));
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
