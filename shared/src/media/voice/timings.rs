//! One turn's stage times and the `timings` report made from them (docs/voice.md §1.4).
//!
//! Owns when each stage was reached, as the session saw it; never the clock (times come in
//! from the session's inputs) and never the wire (the report is a [`TurnTimings`]).

use super::wire::{EndpointKind, TurnTimings};
use crate::time::Timestamp;

/// When one turn reached each stage.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timings {
    /// ASR began at the VAD's pause, before the endpoint.
    pub early: bool,
    pub endpoint_ms: Option<u64>,
    /// What ended the utterance.
    pub endpoint: Option<EndpointKind>,
    /// The first audio sent was the speech cache's.
    pub first_audio_cached: bool,
    pub t_endpoint: Option<Timestamp>,
    pub t_transcript: Option<Timestamp>,
    pub t_first_token: Option<Timestamp>,
    pub t_first_tool_result: Option<Timestamp>,
    pub t_first_sentence: Option<Timestamp>,
    pub t_first_audio: Option<Timestamp>,
}

impl Timings {
    /// The report: each stage that happened, in milliseconds.
    pub fn report(&self, turn: &str) -> TurnTimings {
        let since = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_since(a).as_millis() as u64),
            _ => None,
        };
        let first_audio = since(self.t_endpoint, self.t_first_audio);
        TurnTimings {
            turn: turn.to_string(),
            endpoint_ms: self.endpoint_ms,
            asr_ms: since(self.t_endpoint, self.t_transcript),
            llm_first_token_ms: since(self.t_transcript, self.t_first_token),
            first_tool_result_ms: since(self.t_transcript, self.t_first_tool_result),
            tts_first_audio_ms: since(self.t_first_sentence, self.t_first_audio),
            first_audio_ms: first_audio,
            asr_early: self.early,
            endpoint: self.endpoint,
            tts_cached: self.first_audio_cached,
            end_of_speech_to_first_audio_ms: match (self.endpoint_ms, first_audio) {
                (Some(e), Some(f)) => Some(e + f),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_that_did_not_happen_are_left_out() {
        let t = |ms| Some(Timestamp::from_millis(ms));
        let typed = Timings {
            t_transcript: t(10),
            t_first_token: t(12),
            t_first_sentence: t(15),
            t_first_audio: t(40),
            ..Timings::default()
        };
        let r = typed.report("v1-1");
        assert_eq!(
            (r.llm_first_token_ms, r.tts_first_audio_ms),
            (Some(2), Some(25))
        );
        assert_eq!(
            (r.asr_ms, r.first_audio_ms, r.endpoint_ms),
            (None, None, None)
        );
        assert_eq!(r.end_of_speech_to_first_audio_ms, None);
        let spoken = Timings {
            endpoint_ms: Some(400),
            t_endpoint: t(0),
            ..typed
        };
        let r = spoken.report("v1-2");
        assert_eq!((r.asr_ms, r.first_audio_ms), (Some(10), Some(40)));
        assert_eq!(r.end_of_speech_to_first_audio_ms, Some(440));
    }
}
