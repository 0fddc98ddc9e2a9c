//! The `/api/voice` wire (docs/voice.md §1): the JSON text messages both ways as enums, the
//! session [`Mode`], and the audio frame constants.
//!
//! Owns the one place where a text message becomes a type: [`ClientMessage::parse`] on the Hub,
//! [`ServerMessage::parse`] on a device or in a test. Nothing outside this module reads or
//! writes a message's `"type"`. It must never decide what a message does: that is the
//! session's ([`super::VoiceSession`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::turn::TurnEvent;

pub use crate::media::audio::SAMPLE_RATE;

/// Milliseconds of audio in the frame the contract recommends (20 ms).
pub const FRAME_MS: u32 = 20;
/// Samples in one recommended frame: 20 ms at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE / 1000 * FRAME_MS) as usize;
/// The largest audio message accepted: one second of s16le.
pub const MAX_FRAME_BYTES: usize = SAMPLE_RATE as usize * 2;
/// The only sample format on the wire (`start`'s `format`, `ready`'s `format`).
pub const FORMAT: &str = "s16le";

/// The JSON member that names a message.
const TAG: &str = "type";
/// The types a device may send, in the order the errors list them.
const CLIENT_TYPES: [&str; 6] = ["start", "ptt", "text", "confirm", "cancel", "playback_done"];

/// How utterances are found (the `mode` query parameter, `ready`'s `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The VAD finds the start and the end of each utterance.
    #[default]
    HandsFree,
    /// The device marks them with `ptt` messages.
    PushToTalk,
}

impl Mode {
    /// The wire names, `hands_free` or `push_to_talk`, and nothing else.
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

/// For command lines: the wire names, and the spellings people type (`hands-free`,
/// `push-to-talk`, `ptt`). What goes on the wire is always [`Mode::as_str`].
impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hands-free" => Ok(Mode::HandsFree),
            "push-to-talk" | "ptt" => Ok(Mode::PushToTalk),
            other => Mode::parse(other)
                .ok_or_else(|| format!("unknown mode {other:?}: use hands_free or push_to_talk")),
        }
    }
}

fn default_format() -> String {
    FORMAT.to_string()
}
fn default_sample_rate() -> u64 {
    u64::from(SAMPLE_RATE)
}
fn default_channels() -> u64 {
    1
}

/// A text message from the device (docs/voice.md §1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// States the audio format; each member defaults to the one accepted format.
    Start {
        /// `s16le`.
        #[serde(default = "default_format")]
        format: String,
        /// 16000.
        #[serde(default = "default_sample_rate")]
        sample_rate: u64,
        /// 1.
        #[serde(default = "default_channels")]
        channels: u64,
    },
    /// Push-to-talk pressed (`true`: an utterance starts) or released (it ends).
    Ptt {
        /// Pressed or released.
        down: bool,
    },
    /// A typed turn (trimmed, never empty once parsed).
    Text {
        /// What the person typed.
        text: String,
    },
    /// Answers a `confirmation_required`.
    Confirm {
        /// The call id from `confirmation_required`.
        id: String,
        /// Yes or no.
        approve: bool,
    },
    /// Stops the turn's speech.
    Cancel,
    /// The device finished playing what it was sent.
    PlaybackDone,
}

impl ClientMessage {
    /// The `start` for s16le mono at `sample_rate` (another rate is refused by the Hub).
    pub fn start(sample_rate: u32) -> ClientMessage {
        ClientMessage::Start {
            format: FORMAT.into(),
            sample_rate: sample_rate.into(),
            channels: 1,
        }
    }

    /// Reads a text message from the device. Every error names what the contract expects.
    pub fn parse(text: &str) -> Result<ClientMessage, WireError> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(WireError::NotAnObject),
        };
        let kind = v.get(TAG).and_then(Value::as_str);
        let Some(kind) = kind.and_then(|k| CLIENT_TYPES.iter().find(|&&t| t == k)) else {
            return Err(WireError::UnknownType(kind.unwrap_or("(none)").to_string()));
        };
        let malformed = || WireError::Malformed(kind);
        match serde_json::from_value(v).map_err(|_| malformed())? {
            ClientMessage::Text { text } => match text.trim() {
                "" => Err(malformed()),
                t => Ok(ClientMessage::Text { text: t.into() }),
            },
            m => Ok(m),
        }
    }

    /// The JSON text to send.
    pub fn to_text(&self) -> String {
        to_text(self)
    }
}

/// What the face shows (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoiceState {
    /// Waiting for speech, or hearing it.
    Listening,
    /// ASR or the agent at work.
    Thinking,
    /// The answer is being sent or played.
    Speaking,
}

/// Why speech stopped (`tts_terminate`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The person spoke (or pressed push-to-talk, or typed a new turn).
    BargeIn,
    /// A `cancel` message.
    Cancel,
}

/// What failed (`error`'s `code`, docs/voice.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An audio message of the wrong size.
    BadFrame,
    /// A `start` with another format; audio is refused until a good one.
    BadFormat,
    /// A text message the contract does not describe.
    BadMessage,
    /// The ASR provider failed or is down.
    AsrFailed,
    /// Nothing was understood.
    AsrEmpty,
    /// A sentence could not be synthesised.
    TtsFailed,
    /// The agent turn failed.
    TurnFailed,
}

impl ErrorCode {
    /// The wire name (`bad_frame`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::BadFormat => "bad_format",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::AsrFailed => "asr_failed",
            ErrorCode::AsrEmpty => "asr_empty",
            ErrorCode::TtsFailed => "tts_failed",
            ErrorCode::TurnFailed => "turn_failed",
        }
    }
}

/// What ended an utterance (`timings`' `endpoint`, docs/voice.md §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// The VAD's full silence (`silence_ms`).
    Silence,
    /// The semantic endpoint: a pause, and a transcript that is a whole command.
    Semantic,
    /// The push-to-talk button's release.
    PushToTalk,
}

/// A turn's stage timings (`timings`, docs/voice.md §1.4); a stage that did not happen is left
/// out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TurnTimings {
    /// The turn.
    pub turn: String,
    /// End of speech → the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_ms: Option<u64>,
    /// Endpoint → transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr_ms: Option<u64>,
    /// Transcript → the model's first text or tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_first_token_ms: Option<u64>,
    /// Transcript → the first tool result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_tool_result_ms: Option<u64>,
    /// The first sentence ready → its first audio sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_first_audio_ms: Option<u64>,
    /// Endpoint → the first audio sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_audio_ms: Option<u64>,
    /// ASR started at the speaker's pause.
    #[serde(default)]
    pub asr_early: bool,
    /// What ended the utterance (absent for a typed turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointKind>,
    /// The first sentence's audio came from the Hub's speech cache.
    #[serde(default)]
    pub tts_cached: bool,
    /// `endpoint_ms` + `first_audio_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_speech_to_first_audio_ms: Option<u64>,
}

/// A text message to the device (docs/voice.md §1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Once, first: the session's settings.
    Ready {
        /// Session id.
        session: String,
        /// How utterances are found.
        mode: Mode,
        /// `s16le`.
        format: String,
        /// 16000.
        sample_rate: u32,
        /// The recommended frame (20 ms).
        frame_ms: u32,
        /// ASR provider.
        asr: String,
        /// TTS provider.
        tts: String,
        /// LLM provider.
        llm: String,
        /// The endpointing silence.
        silence_ms: u32,
    },
    /// What the face shows.
    State {
        /// Listening, thinking or speaking.
        state: VoiceState,
    },
    /// The VAD heard speech (or `ptt` went down), at this audio time.
    SpeechStarted {
        /// Audio ms since the session began.
        at_ms: u64,
    },
    /// The utterance's endpoint.
    SpeechEnded {
        /// Audio ms since the session began.
        at_ms: u64,
        /// How long the speech was.
        speech_ms: u64,
    },
    /// What ASR heard: the text of a new turn, or a spoken answer to a confirmation.
    Transcript {
        /// The turn it starts (absent for a confirmation's answer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<String>,
        /// The words.
        text: String,
        /// The confirmation it answers (absent for a turn).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirms: Option<String>,
    },
    /// An agent turn started (`/api/chat`'s `turn` event).
    Turn {
        /// Its id.
        turn: String,
        /// Whose memory it uses.
        user: String,
        /// LLM provider.
        llm: String,
        /// VLM provider.
        vlm: String,
    },
    /// The agent turn is over (`/api/chat`'s `done` event).
    Done {
        /// Its id.
        turn: String,
    },
    /// The turn's speech starts.
    TtsBegin {
        /// The turn.
        turn: String,
    },
    /// The next audio frames speak this sentence.
    TtsSentence {
        /// The turn.
        turn: String,
        /// Its place in the turn's answer.
        index: u32,
        /// The words.
        text: String,
    },
    /// All of the turn's speech has been sent.
    TtsComplete {
        /// The turn.
        turn: String,
        /// How much audio that was.
        audio_ms: u64,
    },
    /// Stop playing now and drop what is queued.
    TtsTerminate {
        /// The turn.
        turn: String,
        /// Why.
        reason: StopReason,
    },
    /// The turn's stage timings.
    Timings(TurnTimings),
    /// Something failed; the session goes on.
    Error {
        /// What failed.
        code: ErrorCode,
        /// Why, for a person.
        message: String,
    },
    /// One of the agent turn's events, as `/api/chat` sends it (`text_delta`, `tool_started`,
    /// `tool_finished`, `confirmation_required`, `answer`, and `error` without a `code`).
    #[serde(untagged)]
    Agent(TurnEvent),
}

impl ServerMessage {
    /// A voice `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }

    /// Reads a text message from the Hub.
    pub fn parse(text: &str) -> Result<ServerMessage, WireError> {
        let v: Value = serde_json::from_str(text).map_err(|_| WireError::NotJson)?;
        ServerMessage::from_json(&v)
    }

    /// Reads a message from the Hub already parsed as JSON.
    pub fn from_json(v: &Value) -> Result<ServerMessage, WireError> {
        ServerMessage::deserialize(v).map_err(|_| {
            WireError::UnknownServerMessage(
                crate::protocol::jsonrpc::json_text(v)
                    .chars()
                    .take(200)
                    .collect(),
            )
        })
    }

    /// The JSON text to send.
    pub fn to_text(&self) -> String {
        to_text(self)
    }

    /// The turn it belongs to, if it names one.
    pub fn turn(&self) -> Option<&str> {
        match self {
            ServerMessage::Transcript { turn, .. } => turn.as_deref(),
            ServerMessage::Turn { turn, .. }
            | ServerMessage::Done { turn }
            | ServerMessage::TtsBegin { turn }
            | ServerMessage::TtsSentence { turn, .. }
            | ServerMessage::TtsComplete { turn, .. }
            | ServerMessage::TtsTerminate { turn, .. } => Some(turn),
            ServerMessage::Timings(t) => Some(&t.turn),
            _ => None,
        }
    }
}

/// A message's `"type"`, for logs and test transcripts that list what came.
pub fn message_type(v: &Value) -> Option<&str> {
    v.get(TAG).and_then(Value::as_str)
}

fn to_text(m: &impl Serialize) -> String {
    // These types hold only strings, numbers, booleans and JSON values: serialising cannot fail.
    serde_json::to_string(m).unwrap_or_default()
}

/// A text message that breaks the contract; the Hub answers it with `error` `bad_message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not a JSON object.
    #[error("a text message must be a JSON object with \"type\": start, ptt, text, confirm, cancel or playback_done")]
    NotAnObject,
    /// A `type` the contract does not have (`(none)` when it is missing).
    #[error("unknown message type {0:?}: use start, ptt, text, confirm, cancel or playback_done")]
    UnknownType(String),
    /// A known type with a member missing or of the wrong kind.
    #[error("{}", malformed_help(.0))]
    Malformed(&'static str),
    /// Text from the Hub that is not JSON.
    #[error("a text message from the Hub is not JSON")]
    NotJson,
    /// JSON from the Hub that is none of docs/voice.md §1.3's messages.
    #[error("a message from the Hub that docs/voice.md §1.3 does not describe: {0}")]
    UnknownServerMessage(String),
}

fn malformed_help(kind: &str) -> &'static str {
    match kind {
        "start" => "start takes \"format\" (a string), \"sample_rate\" and \"channels\" (whole numbers), each optional",
        "ptt" => "ptt needs \"down\": true or false",
        "text" => "text needs a non-empty \"text\"",
        "confirm" => {
            "confirm needs \"id\" (from confirmation_required) and \"approve\": true or false"
        }
        _ => "cancel and playback_done take no members",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every device message as docs/voice.md §1.2 writes it, and its type.
    fn client_examples() -> Vec<(Value, ClientMessage)> {
        vec![
            (
                json!({"type":"start","format":"s16le","sample_rate":16000,"channels":1}),
                ClientMessage::start(16_000),
            ),
            (
                json!({"type":"ptt","down":true}),
                ClientMessage::Ptt { down: true },
            ),
            (
                json!({"type":"ptt","down":false}),
                ClientMessage::Ptt { down: false },
            ),
            (
                json!({"type":"text","text":"turn on the lamp"}),
                ClientMessage::Text {
                    text: "turn on the lamp".into(),
                },
            ),
            (
                json!({"type":"confirm","id":"v1-1.c1","approve":true}),
                ClientMessage::Confirm {
                    id: "v1-1.c1".into(),
                    approve: true,
                },
            ),
            (json!({"type":"cancel"}), ClientMessage::Cancel),
            (json!({"type":"playback_done"}), ClientMessage::PlaybackDone),
        ]
    }

    #[test]
    fn device_messages_serialise_as_documented_and_parse_back() {
        for (doc, msg) in client_examples() {
            let text = msg.to_text();
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc, "{text}");
            assert_eq!(ClientMessage::parse(&text), Ok(msg.clone()));
            assert_eq!(ClientMessage::parse(&doc.to_string()), Ok(msg));
        }
    }

    #[test]
    fn start_defaults_each_member_to_the_accepted_format() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"start"}"#),
            Ok(ClientMessage::start(16_000))
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"start","sample_rate":44100}"#),
            Ok(ClientMessage::Start {
                format: "s16le".into(),
                sample_rate: 44_100,
                channels: 1
            })
        );
        // A typed turn is trimmed.
        assert_eq!(
            ClientMessage::parse(r#"{"type":"text","text":"  hi \n"}"#),
            Ok(ClientMessage::Text { text: "hi".into() })
        );
    }

    #[test]
    fn bad_device_messages_get_errors_that_say_what_to_send() {
        let cases: [(&str, &str); 12] = [
            ("not json", "must be a JSON object"),
            ("[1]", "must be a JSON object"),
            ("\"start\"", "must be a JSON object"),
            (
                r#"{"type":"dance"}"#,
                "unknown message type \"dance\": use start, ptt",
            ),
            (r#"{"kind":"ptt"}"#, "unknown message type \"(none)\""),
            (r#"{"type":5}"#, "unknown message type \"(none)\""),
            (r#"{"type":"ptt"}"#, "ptt needs \"down\": true or false"),
            (r#"{"type":"ptt","down":"yes"}"#, "ptt needs \"down\""),
            (
                r#"{"type":"text","text":"  "}"#,
                "text needs a non-empty \"text\"",
            ),
            (r#"{"type":"text"}"#, "text needs a non-empty \"text\""),
            (r#"{"type":"confirm","id":"c1"}"#, "confirm needs \"id\""),
            (r#"{"type":"start","sample_rate":"fast"}"#, "start takes"),
        ];
        for (bad, want) in cases {
            let e = ClientMessage::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    /// Every Hub message as docs/voice.md §1.3 writes it (with the agent's events as
    /// `/api/chat` sends them), and its type.
    fn server_examples() -> Vec<(Value, ServerMessage)> {
        let t3 = || "t3".to_string();
        vec![
            (
                json!({"type":"ready","session":"v1","mode":"hands_free","format":"s16le","sample_rate":16000,"frame_ms":20,"asr":"local","tts":"local","llm":"offline","silence_ms":400}),
                ServerMessage::Ready {
                    session: "v1".into(),
                    mode: Mode::HandsFree,
                    format: "s16le".into(),
                    sample_rate: 16_000,
                    frame_ms: 20,
                    asr: "local".into(),
                    tts: "local".into(),
                    llm: "offline".into(),
                    silence_ms: 400,
                },
            ),
            (
                json!({"type":"state","state":"thinking"}),
                ServerMessage::State {
                    state: VoiceState::Thinking,
                },
            ),
            (
                json!({"type":"speech_started","at_ms":1230}),
                ServerMessage::SpeechStarted { at_ms: 1230 },
            ),
            (
                json!({"type":"speech_ended","at_ms":2890,"speech_ms":1260}),
                ServerMessage::SpeechEnded {
                    at_ms: 2890,
                    speech_ms: 1260,
                },
            ),
            (
                json!({"type":"transcript","turn":"t3","text":"turn on the kitchen lamp"}),
                ServerMessage::Transcript {
                    turn: Some(t3()),
                    text: "turn on the kitchen lamp".into(),
                    confirms: None,
                },
            ),
            (
                json!({"type":"transcript","text":"Yes.","confirms":"t3.c1"}),
                ServerMessage::Transcript {
                    turn: None,
                    text: "Yes.".into(),
                    confirms: Some("t3.c1".into()),
                },
            ),
            (
                json!({"type":"turn","turn":"t3","user":"ada","llm":"offline","vlm":"offline"}),
                ServerMessage::Turn {
                    turn: t3(),
                    user: "ada".into(),
                    llm: "offline".into(),
                    vlm: "offline".into(),
                },
            ),
            (
                json!({"type":"text_delta","text":"The kitchen"}),
                ServerMessage::Agent(TurnEvent::TextDelta {
                    text: "The kitchen".into(),
                }),
            ),
            (
                json!({"type":"tool_started","id":"t3.c1","device":"kitchen-lamp","tool":"set_power","arguments":{"on":true}}),
                ServerMessage::Agent(TurnEvent::ToolStarted {
                    id: "t3.c1".into(),
                    device: "kitchen-lamp".into(),
                    tool: "set_power".into(),
                    arguments: json!({"on": true}),
                }),
            ),
            (
                json!({"type":"tool_finished","id":"t3.c1","device":"kitchen-lamp","tool":"set_power","ok":true,"ms":12,"result":{"content":[]}}),
                ServerMessage::Agent(TurnEvent::ToolFinished {
                    id: "t3.c1".into(),
                    device: "kitchen-lamp".into(),
                    tool: "set_power".into(),
                    ok: true,
                    ms: 12,
                    result: Some(json!({"content": []})),
                    error: None,
                }),
            ),
            (
                json!({"type":"confirmation_required","id":"t3.c2","device":"front-door","tool":"unlock","prompt":"Unlock the front door?","arguments":{}}),
                ServerMessage::Agent(TurnEvent::ConfirmationRequired {
                    id: "t3.c2".into(),
                    device: "front-door".into(),
                    tool: "unlock".into(),
                    prompt: "Unlock the front door?".into(),
                    arguments: json!({}),
                }),
            ),
            (
                json!({"type":"answer","text":"The kitchen lamp is on.","steps":2}),
                ServerMessage::Agent(TurnEvent::Answer {
                    text: "The kitchen lamp is on.".into(),
                    steps: 2,
                }),
            ),
            (
                json!({"type":"error","message":"the model is down"}),
                ServerMessage::Agent(TurnEvent::Error {
                    message: "the model is down".into(),
                }),
            ),
            (
                json!({"type":"done","turn":"t3"}),
                ServerMessage::Done { turn: t3() },
            ),
            (
                json!({"type":"tts_begin","turn":"t3"}),
                ServerMessage::TtsBegin { turn: t3() },
            ),
            (
                json!({"type":"tts_sentence","turn":"t3","index":0,"text":"The kitchen lamp is on."}),
                ServerMessage::TtsSentence {
                    turn: t3(),
                    index: 0,
                    text: "The kitchen lamp is on.".into(),
                },
            ),
            (
                json!({"type":"tts_complete","turn":"t3","audio_ms":1840}),
                ServerMessage::TtsComplete {
                    turn: t3(),
                    audio_ms: 1840,
                },
            ),
            (
                json!({"type":"tts_terminate","turn":"t3","reason":"barge_in"}),
                ServerMessage::TtsTerminate {
                    turn: t3(),
                    reason: StopReason::BargeIn,
                },
            ),
            (
                json!({"type":"tts_terminate","turn":"t3","reason":"cancel"}),
                ServerMessage::TtsTerminate {
                    turn: t3(),
                    reason: StopReason::Cancel,
                },
            ),
            (
                json!({"type":"timings","turn":"t3","endpoint_ms":180,"asr_ms":0,"asr_early":true,"endpoint":"semantic","tts_cached":true,"first_audio_ms":350,"end_of_speech_to_first_audio_ms":530}),
                ServerMessage::Timings(TurnTimings {
                    turn: t3(),
                    endpoint_ms: Some(180),
                    asr_ms: Some(0),
                    asr_early: true,
                    endpoint: Some(EndpointKind::Semantic),
                    tts_cached: true,
                    first_audio_ms: Some(350),
                    end_of_speech_to_first_audio_ms: Some(530),
                    ..TurnTimings::default()
                }),
            ),
            (
                json!({"type":"error","code":"bad_frame","message":"an audio message of 321 bytes was dropped"}),
                ServerMessage::error(
                    ErrorCode::BadFrame,
                    "an audio message of 321 bytes was dropped",
                ),
            ),
        ]
    }

    #[test]
    fn hub_messages_serialise_as_documented_and_parse_back() {
        for (doc, msg) in server_examples() {
            let text = msg.to_text();
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc, "{text}");
            assert_eq!(ServerMessage::parse(&text), Ok(msg.clone()), "{text}");
            if let ServerMessage::Agent(ev) = &msg {
                // `/api/chat` names its SSE events by `TurnEvent::name`.
                assert_eq!(message_type(&doc), Some(ev.name()));
            }
            assert_eq!(ServerMessage::from_json(&doc), Ok(msg));
        }
        for code in [
            "bad_frame",
            "bad_format",
            "bad_message",
            "asr_failed",
            "asr_empty",
            "tts_failed",
            "turn_failed",
        ] {
            let v = json!({"type":"error","code":code,"message":"m"});
            match ServerMessage::from_json(&v) {
                Ok(ServerMessage::Error { code: c, .. }) => assert_eq!(c.as_str(), code),
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_hub_messages_are_refused_by_name() {
        assert_eq!(ServerMessage::parse("nope"), Err(WireError::NotJson));
        for bad in [
            json!({"type":"dance"}),
            json!({"type":"state","state":"sleeping"}),
            json!({"type":"tts_begin"}),
            json!({"text":"no type"}),
        ] {
            let e = ServerMessage::from_json(&bad)
                .expect_err("refused")
                .to_string();
            assert!(
                e.contains("does not describe") && e.contains(&bad.to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn modes_have_one_spelling_on_the_wire() {
        for m in [Mode::HandsFree, Mode::PushToTalk] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert_eq!(
            Mode::parse("push-to-talk"),
            None,
            "the wire takes one spelling"
        );
        assert_eq!("ptt".parse::<Mode>(), Ok(Mode::PushToTalk));
        assert!("loud".parse::<Mode>().unwrap_err().contains("hands_free"));
    }

    #[test]
    fn frame_constants_agree_with_the_contract() {
        assert_eq!(FRAME_SAMPLES, 320);
        assert_eq!(FRAME_SAMPLES * 2, 640);
        assert_eq!(MAX_FRAME_BYTES, 32_000);
    }
}
