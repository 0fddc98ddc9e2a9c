//! One turn's speech: its sentences, their synthesis one at a time, their audio sent in order,
//! and where its playback is ([`Playout`]).
//!
//! Owns the per-turn bookkeeping the session drives; it never sends anything itself (the
//! session turns what it reports into messages) and never reads the clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::sentences::SentenceSplitter;
use super::timings::Timings;
use crate::time::Timestamp;

/// Where a turn's speech is. Moves forward only: `Pending` → `Sending` → `Complete`, with
/// `Stopped` reachable from any of them by a barge-in or `cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Playout {
    /// No audio sent yet (`tts_begin` not sent).
    #[default]
    Pending,
    /// `tts_begin` went out; sentences' audio is going out as it is ready.
    Sending,
    /// Every sentence is sent (or failed) after the text ended, and the turn's `timings` went
    /// out; `audible` when any audio was sent (then `tts_complete` went out too, and the device
    /// may still be playing it).
    Complete {
        /// Whether any audio was sent.
        audible: bool,
    },
    /// Stopped by a barge-in or `cancel`: nothing more is synthesised or sent. `complete` once
    /// its `timings` went out (a stop during playback, or the last sentence back afterwards).
    Stopped {
        /// Whether the turn's speech had completed (timings sent).
        complete: bool,
    },
}

impl Playout {
    /// `tts_begin` went out and no stop came.
    pub fn audible(self) -> bool {
        matches!(self, Playout::Sending | Playout::Complete { audible: true })
    }

    /// All of it was sent (or dropped by a stop) and its timings went out.
    pub fn complete(self) -> bool {
        matches!(
            self,
            Playout::Complete { .. } | Playout::Stopped { complete: true }
        )
    }

    /// A barge-in or `cancel` stopped it.
    pub fn stopped(self) -> bool {
        matches!(self, Playout::Stopped { .. })
    }
}

/// Whether the turn's answer text is still coming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum AnswerText {
    /// No answer text yet: an `answer` or a turn `error` is spoken when it comes.
    #[default]
    Awaited,
    /// Text is streaming in and being spoken.
    Streaming,
    /// The turn is over: what is left in the splitter was queued.
    Ended,
}

/// One turn's speech.
#[derive(Debug, Default)]
pub(crate) struct Speech {
    pub splitter: SentenceSplitter,
    pub answer: AnswerText,
    pub texts: BTreeMap<u32, String>,
    /// Sentences waiting for their `Synthesize`: one is synthesised at a time (see
    /// `VoiceSession::next_synthesis`).
    pub unsynthesized: VecDeque<u32>,
    /// The sentence whose synthesis is in flight.
    pub synthesizing: Option<u32>,
    /// Sentences back from synthesis, waiting for their turn to be sent (`None`: failed or
    /// dropped, sent as nothing).
    pub ready: BTreeMap<u32, Option<Vec<i16>>>,
    /// Sentences whose audio came from the Hub's speech cache.
    pub cached: BTreeSet<u32>,
    pub next_index: u32,
    pub next_to_send: u32,
    pub playout: Playout,
    /// Audio sent, in ms.
    pub audio_ms: u64,
    /// When the device will have played what it was sent.
    pub playback_end: Option<Timestamp>,
    pub timings: Timings,
}

impl Speech {
    /// A turn's speech with these stage times so far.
    pub fn new(timings: Timings) -> Speech {
        Speech {
            timings,
            ..Speech::default()
        }
    }

    /// Whether answer text was heard (so a later `answer` or `error` is not spoken again).
    pub fn heard_text(&self) -> bool {
        self.answer != AnswerText::Awaited
    }

    /// Every sentence of the ended text is sent (or failed, or dropped).
    pub fn all_sent(&self) -> bool {
        self.answer == AnswerText::Ended && self.next_to_send == self.next_index
    }

    /// Marks the first audio going out; true when that is now (`tts_begin` is due).
    pub fn begin(&mut self) -> bool {
        match self.playout {
            Playout::Pending => self.playout = Playout::Sending,
            Playout::Complete { audible: false } => {
                self.playout = Playout::Complete { audible: true }
            }
            _ => return false,
        }
        true
    }

    /// Marks everything sent and the timings out.
    pub fn complete(&mut self) {
        self.playout = match self.playout {
            Playout::Pending => Playout::Complete { audible: false },
            Playout::Sending => Playout::Complete { audible: true },
            Playout::Stopped { .. } => Playout::Stopped { complete: true },
            done @ Playout::Complete { .. } => done,
        };
    }

    /// Stops it: the sentences not yet synthesised count as done without audio.
    pub fn stop(&mut self) {
        self.playout = Playout::Stopped {
            complete: self.playout.complete(),
        };
        for index in self.unsynthesized.drain(..) {
            self.ready.insert(index, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_keeps_whether_the_speech_had_completed() {
        let mut s = Speech::default();
        s.unsynthesized.extend([2, 3]);
        assert!(s.begin() && !s.begin());
        assert_eq!(s.playout, Playout::Sending);
        assert!(s.playout.audible() && !s.playout.complete());
        s.stop();
        assert_eq!(s.playout, Playout::Stopped { complete: false });
        assert!(!s.playout.audible());
        assert_eq!(s.ready.keys().copied().collect::<Vec<_>>(), [2, 3]);
        let mut done = Speech {
            playout: Playout::Complete { audible: true },
            ..Speech::default()
        };
        done.stop();
        assert!(done.playout.complete() && done.playout.stopped());
    }
}
