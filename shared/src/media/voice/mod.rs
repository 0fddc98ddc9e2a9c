//! Voice (`/api/voice`, docs/voice.md): PCM frames and control messages in; what to
//! transcribe, which turn to run, what to synthesise, and the frames and messages for the
//! device out.
//!
//! Owns the order of a spoken exchange: format checks, endpointing (the energy VAD in
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
//!
//! | module | owns |
//! |---|---|
//! | [`wire`] | the JSON messages both ways as enums ([`ClientMessage`], [`ServerMessage`]), [`Mode`], the frame constants; the only place a message's `"type"` is read or written |
//! | `session` | [`VoiceSession`]: the drive loop, endpointing (silence, and the semantic endpoint), early ASR, turn ids, barge-in |
//! | `playout` | one turn's speech: sentences synthesised one at a time, sent in order, its playback state |
//! | `sentences` | [`SentenceSplitter`], [`transcript_text`], [`yes_or_no`] |
//! | `timings` | one turn's stage times and its `timings` report |
//! | `cache` | [`SpeechCache`]: sentences already spoken, by [`SpeechKey`] (bounded, least recently used first) |
//!
//! ```no_run
//! use axon_core::time::Timestamp;
//! use axon_core::media::voice::{Outbound, VoiceAction, VoiceConfig, VoiceSession};
//! let mut s = VoiceSession::new(VoiceConfig::new("v1"));
//! let now = Timestamp::from_millis(0);
//! s.handle_audio(now, &[0u8; 640]); // or handle_text, handle_transcript, handle_turn, ...
//! while let Some(a) = s.poll_action() {
//!     match a {
//!         VoiceAction::Transcribe { .. } => { /* ASR, then s.handle_transcript(..) */ }
//!         VoiceAction::StartTurn { .. } => { /* run it, feeding s.handle_turn(..) */ }
//!         VoiceAction::Synthesize { .. } => { /* TTS, then s.handle_speech(..) */ }
//!         VoiceAction::Confirm { .. } => { /* answer the waiting confirmation */ }
//!     }
//! }
//! while let Some(out) = s.poll_outbound() {
//!     match out {
//!         Outbound::Message(m) => { let _text = m.to_text(); /* send as text */ }
//!         Outbound::Audio(_pcm) => { /* send as binary */ }
//!     }
//! }
//! // and call s.handle_timeout(now) at s.poll_timeout()
//! ```

mod cache;
mod playout;
mod sentences;
mod session;
mod timings;
pub mod wire;

pub use cache::{SpeechCache, SpeechKey, SPEECH_CACHE_ENTRIES, SPEECH_CACHE_SAMPLES};
pub use sentences::{transcript_text, yes_or_no, SentenceSplitter, FIRST_CLAUSE_MIN_CHARS};
pub use session::{Outbound, VoiceAction, VoiceConfig, VoiceSession, REPROMPT};
pub use wire::{
    ClientMessage, EndpointKind, ErrorCode, Mode, ServerMessage, StopReason, TurnTimings,
    VoiceState, WireError, FRAME_MS, FRAME_SAMPLES, MAX_FRAME_BYTES, SAMPLE_RATE,
};
