//! WebRTC signalling over MQTT (docs/protocol.md §9): EMQX's multimedia scheme, unchanged.
//!
//! Owns the `$webrtc/…` and `$message/…` topics, their JSON messages as types (parsed here
//! and nowhere else), and [`Call`], one device's call as seen by the media endpoint: the
//! decisions to answer, to refuse with a reason, or to give up on ICE. It never touches a
//! socket, an SDP parser or a codec: the shell (the `axon-media` endpoint, a board) does, and
//! hands in what happened with the time it happened.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::turn::TurnEvent;
use crate::media::voice::ServerMessage;
use crate::protocol::mcp::topics::DeviceId;
use crate::time::Timestamp;

/// How long a call may take from its offer to ICE connectivity before it is terminated.
pub const ICE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest signalling message read (an SDP offer is a few KiB; a hostile one is not read).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Which of the four topics a message came on or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `$webrtc/{device_id}/multimedia_proxy`: device → endpoint signalling.
    SignalToEndpoint,
    /// `$webrtc/{device_id}`: endpoint → device signalling.
    SignalToDevice,
    /// `$message/{device_id}/multimedia_proxy`: device → endpoint text.
    TextToEndpoint,
    /// `$message/{device_id}`: endpoint → device text.
    TextToDevice,
}

/// What the endpoint subscribes to: every device's signalling and text.
pub const ENDPOINT_FILTERS: [&str; 2] =
    ["$webrtc/+/multimedia_proxy", "$message/+/multimedia_proxy"];

/// The topic of `channel` for device `d`.
pub fn topic(channel: Channel, d: &DeviceId) -> String {
    match channel {
        Channel::SignalToEndpoint => format!("$webrtc/{d}/multimedia_proxy"),
        Channel::SignalToDevice => format!("$webrtc/{d}"),
        Channel::TextToEndpoint => format!("$message/{d}/multimedia_proxy"),
        Channel::TextToDevice => format!("$message/{d}"),
    }
}

/// The channel and device of a topic, or `None` for a topic that is not one of the four (or
/// names no valid device id).
pub fn parse_topic(t: &str) -> Option<(Channel, DeviceId)> {
    let mut parts = t.split('/');
    let root = parts.next()?;
    let id = DeviceId::new(parts.next()?).ok()?;
    let proxy = match (parts.next(), parts.next()) {
        (None, _) => false,
        (Some("multimedia_proxy"), None) => true,
        _ => return None,
    };
    let channel = match (root, proxy) {
        ("$webrtc", true) => Channel::SignalToEndpoint,
        ("$webrtc", false) => Channel::SignalToDevice,
        ("$message", true) => Channel::TextToEndpoint,
        ("$message", false) => Channel::TextToDevice,
        _ => return None,
    };
    Some((channel, id))
}

/// A session description as `RTCPeerConnection` writes it (`{"type":"offer","sdp":…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP text.
    pub sdp: String,
}

/// An ICE candidate as `RTCIceCandidate.toJSON()` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` line (without `a=`); empty means the end of candidates.
    pub candidate: String,
    /// The media section's id.
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The media section's index.
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u32>,
    /// The ICE username fragment it belongs to.
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// Device → endpoint, on `$webrtc/{device_id}/multimedia_proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceSignal {
    /// The device's offer (the device always offers).
    SdpOffer {
        /// The offer.
        data: Description,
        /// Axon extension, optional: the device the offer is for. When present it must be the
        /// topic's (a client that copies another device's offer is refused, not answered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
    },
    /// One of the device's candidates (trickled).
    IceCandidate {
        /// The candidate.
        data: IceCandidate,
    },
    /// The device hangs up (Axon extension: `reason` is `hangup`).
    WebrtcTerminated {
        /// Why.
        #[serde(default)]
        reason: String,
    },
}

/// Endpoint → device, on `$webrtc/{device_id}`. Read by [`EndpointSignal::parse`] (by hand,
/// see [`read`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EndpointSignal {
    /// The answer to the device's offer.
    SdpAnswer {
        /// The answer.
        data: Description,
    },
    /// One of the endpoint's candidates.
    IceCandidate {
        /// The candidate.
        data: IceCandidate,
    },
    /// The call is over (or was never taken), with the reason.
    WebrtcTerminated {
        /// A reason a person can act on; starts with a [`Termination`] code.
        reason: String,
    },
}

/// Endpoint → device text, on `$message/{device_id}` (EMQX's side channel). Read by
/// [`TextToDevice::parse`] (by hand, see [`read`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextToDevice {
    /// What speech recognition heard.
    AsrResponse {
        /// The transcript.
        results: String,
    },
    /// Answer speech starts.
    TtsBegin {
        /// The turn.
        task_id: String,
    },
    /// The text the next answer audio speaks.
    TtsText {
        /// The turn.
        task_id: String,
        /// One sentence.
        text: String,
    },
    /// All of the turn's speech was sent.
    TtsComplete {
        /// The turn.
        task_id: String,
    },
    /// Stop playing now (barge-in, cancel).
    TtsTerminate {
        /// The turn.
        task_id: String,
        /// Why (`barge_in`, `cancel`).
        #[serde(default)]
        reason: String,
    },
    /// Anything else for the device: the agent's answer text, an error.
    Message {
        /// The content, as JSON.
        payload: serde_json::Value,
    },
}

/// Device → endpoint text, on `$message/{device_id}/multimedia_proxy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextToEndpoint {
    /// A typed turn in the call's voice session.
    Chat {
        /// The text (EMQX's demo sends a string here).
        payload: serde_json::Value,
    },
}

/// What of the Hub's voice session the device hears on its text side channel: the transcript,
/// the answer speech's markers and text, the agent's answer and errors. The rest (state, VAD
/// marks, timings, text deltas) stays between the endpoint and the Hub.
pub fn side_channel(msg: &ServerMessage) -> Option<TextToDevice> {
    Some(match msg {
        ServerMessage::Transcript { text, .. } => TextToDevice::AsrResponse {
            results: text.clone(),
        },
        ServerMessage::TtsBegin { turn } => TextToDevice::TtsBegin {
            task_id: turn.clone(),
        },
        ServerMessage::TtsSentence { turn, text, .. } => TextToDevice::TtsText {
            task_id: turn.clone(),
            text: text.clone(),
        },
        ServerMessage::TtsComplete { turn, .. } => TextToDevice::TtsComplete {
            task_id: turn.clone(),
        },
        ServerMessage::TtsTerminate { turn, reason } => TextToDevice::TtsTerminate {
            task_id: turn.clone(),
            reason: serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        ServerMessage::Error { .. }
        | ServerMessage::Agent(TurnEvent::Answer { .. } | TurnEvent::Error { .. }) => {
            TextToDevice::Message {
                payload: serde_json::to_value(msg).unwrap_or_default(),
            }
        }
        _ => return None,
    })
}

/// Why a message was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("signalling message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not one of the scheme's messages.
    #[error("not a signalling message ({0}); see docs/protocol.md §9")]
    Malformed(String),
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, SignalError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(SignalError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| SignalError::Malformed(e.to_string()))
}

macro_rules! wire {
    ($t:ty, $parse:path) => {
        impl $t {
            /// Reads one message from an MQTT payload.
            pub fn parse(bytes: &[u8]) -> Result<Self, SignalError> {
                $parse(bytes)
            }
            /// The MQTT payload.
            pub fn to_bytes(&self) -> Vec<u8> {
                // Plain structs and strings: serialising cannot fail.
                serde_json::to_vec(self).unwrap_or_default()
            }
        }
    };
}
wire!(DeviceSignal, parse);
wire!(EndpointSignal, read::endpoint_signal);
wire!(TextToDevice, read::text_to_device);
wire!(TextToEndpoint, parse);

/// The readers of what a device receives, written by hand over `serde_json::Value`.
///
/// The browser's device page reads these messages too, and every byte of its wasm is
/// downloaded: serde's derived readers for them (and for the agent's events inside a
/// `message`) cost the page 44 KB gzip, these a few (docs/web-size.md). Each message's
/// writer is still serde's, and the tests read back everything it writes.
pub mod read {
    use serde_json::{Map, Value};

    use super::{Description, EndpointSignal, IceCandidate, SignalError, TextToDevice};

    fn object(bytes: &[u8]) -> Result<Map<String, Value>, SignalError> {
        if bytes.len() > super::MAX_MESSAGE_BYTES {
            return Err(SignalError::TooLarge(bytes.len()));
        }
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(SignalError::Malformed("not a JSON object".into())),
            Err(e) => Err(SignalError::Malformed(e.to_string())),
        }
    }

    fn text(m: &Map<String, Value>, key: &str) -> Result<String, SignalError> {
        m.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SignalError::Malformed(format!("no string field `{key}`")))
    }

    fn maybe_text(m: &Map<String, Value>, key: &str) -> Option<String> {
        m.get(key).and_then(Value::as_str).map(str::to_string)
    }

    fn inner<'a>(
        m: &'a Map<String, Value>,
        key: &str,
    ) -> Result<&'a Map<String, Value>, SignalError> {
        m.get(key)
            .and_then(Value::as_object)
            .ok_or_else(|| SignalError::Malformed(format!("no object field `{key}`")))
    }

    fn unknown(kind: &str) -> SignalError {
        SignalError::Malformed(format!("unknown message type `{kind}`"))
    }

    /// Reads an [`EndpointSignal`].
    pub fn endpoint_signal(bytes: &[u8]) -> Result<EndpointSignal, SignalError> {
        let m = object(bytes)?;
        Ok(match text(&m, "type")?.as_str() {
            "sdp_answer" => {
                let d = inner(&m, "data")?;
                EndpointSignal::SdpAnswer {
                    data: Description {
                        kind: text(d, "type")?,
                        sdp: text(d, "sdp")?,
                    },
                }
            }
            "ice_candidate" => {
                let d = inner(&m, "data")?;
                EndpointSignal::IceCandidate {
                    data: IceCandidate {
                        candidate: text(d, "candidate")?,
                        sdp_mid: maybe_text(d, "sdpMid"),
                        sdp_m_line_index: d
                            .get("sdpMLineIndex")
                            .and_then(Value::as_u64)
                            .and_then(|i| u32::try_from(i).ok()),
                        username_fragment: maybe_text(d, "usernameFragment"),
                    },
                }
            }
            "webrtc_terminated" => EndpointSignal::WebrtcTerminated {
                reason: text(&m, "reason")?,
            },
            other => return Err(unknown(other)),
        })
    }

    /// Reads a [`TextToDevice`].
    pub fn text_to_device(bytes: &[u8]) -> Result<TextToDevice, SignalError> {
        let mut m = object(bytes)?;
        let task = |m: &Map<String, Value>| text(m, "task_id");
        Ok(match text(&m, "type")?.as_str() {
            "asr_response" => TextToDevice::AsrResponse {
                results: text(&m, "results")?,
            },
            "tts_begin" => TextToDevice::TtsBegin { task_id: task(&m)? },
            "tts_text" => TextToDevice::TtsText {
                task_id: task(&m)?,
                text: text(&m, "text")?,
            },
            "tts_complete" => TextToDevice::TtsComplete { task_id: task(&m)? },
            "tts_terminate" => TextToDevice::TtsTerminate {
                task_id: task(&m)?,
                reason: maybe_text(&m, "reason").unwrap_or_default(),
            },
            "message" => TextToDevice::Message {
                payload: m
                    .remove("payload")
                    .ok_or_else(|| SignalError::Malformed("no field `payload`".into()))?,
            },
            other => return Err(unknown(other)),
        })
    }
}

/// What a person reads of a side-channel `message`: the agent's answer, or why the turn
/// failed (with the Hub's error code when it gave one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The agent's whole answer.
    Answer(String),
    /// An error: its message, and the Hub's code (`asr_empty`…) when it has one.
    Error {
        /// For a person.
        message: String,
        /// The Hub's error code.
        code: Option<String>,
    },
}

impl Note {
    /// Reads a `message`'s payload as [`side_channel`] writes it (an agent's `answer` or
    /// `error`, or the Hub's `error` with a code); `None` for anything else.
    pub fn of(payload: &serde_json::Value) -> Option<Note> {
        let field = |k: &str| payload.get(k).and_then(serde_json::Value::as_str);
        match field("type")? {
            "answer" => Some(Note::Answer(field("text")?.to_string())),
            "error" => Some(Note::Error {
                message: field("message")?.to_string(),
                code: field("code").map(str::to_string),
            }),
            _ => None,
        }
    }
}

/// Why a call ended, as the first word of `webrtc_terminated`'s reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The message on the proxy topic was not one of the scheme's.
    BadMessage,
    /// The offer names another device than its topic.
    WrongDevice,
    /// The offer is not an offer, or its SDP has no audio section.
    NoAudio,
    /// The endpoint could not take the offer (its WebRTC stack refused the SDP).
    BadOffer,
    /// ICE did not connect within [`ICE_TIMEOUT`].
    IceTimeout,
    /// The connection was lost after it was up.
    Disconnected,
    /// The device hung up.
    Hangup,
    /// The Hub's voice session could not be opened or closed.
    VoiceUnavailable,
    /// The endpoint is shutting down.
    Shutdown,
}

impl Termination {
    /// The code at the start of the reason.
    pub fn code(self) -> &'static str {
        match self {
            Termination::BadMessage => "bad_message",
            Termination::WrongDevice => "wrong_device",
            Termination::NoAudio => "no_audio",
            Termination::BadOffer => "bad_offer",
            Termination::IceTimeout => "ice_timeout",
            Termination::Disconnected => "disconnected",
            Termination::Hangup => "hangup",
            Termination::VoiceUnavailable => "voice_unavailable",
            Termination::Shutdown => "shutdown",
        }
    }

    /// `webrtc_terminated` with `code: detail` as its reason.
    pub fn message(self, detail: &str) -> EndpointSignal {
        EndpointSignal::WebrtcTerminated {
            reason: format!("{}: {detail}", self.code()),
        }
    }
}

/// Whether an SDP has an audio media section that the device sends (`m=audio` not marked
/// `recvonly` or `inactive`, and not port 0).
pub fn sdp_sends_audio(sdp: &str) -> bool {
    let mut in_audio = false;
    let mut found = false;
    let mut sends = true;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio && sends {
                return true;
            }
            let mut f = m.split_whitespace();
            in_audio = f.next() == Some("audio") && f.next() != Some("0");
            found |= in_audio;
            sends = true;
        } else if in_audio && (line == "a=recvonly" || line == "a=inactive") {
            sends = false;
        }
    }
    found && in_audio && sends
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Answered; waiting for ICE since the given time.
    Connecting {
        /// When the offer was taken.
        since: Timestamp,
    },
    /// ICE and DTLS are up: media flows.
    Connected,
    /// Over.
    Ended,
}

/// What the endpoint does with a device's signalling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a call with this offer (replacing any call the device had: renegotiation is a
    /// new offer).
    Answer(Description),
    /// Give the running call this remote candidate.
    AddCandidate(IceCandidate),
    /// Tell the device this (a `webrtc_terminated`) and end its call, if any.
    Terminate(Termination, String),
    /// Nothing to do (a candidate with no call, a hang-up with no call).
    Ignore,
}

/// Reads a device's signalling message from topic `$webrtc/{device}/multimedia_proxy` and
/// decides what it means; `has_call` says whether the device has a call running.
pub fn decide(device: &DeviceId, payload: &[u8], has_call: bool) -> Decision {
    let msg = match DeviceSignal::parse(payload) {
        Ok(m) => m,
        Err(e) => return Decision::Terminate(Termination::BadMessage, e.to_string()),
    };
    match msg {
        DeviceSignal::SdpOffer { data, device_id } => {
            if let Some(named) = device_id.filter(|n| n != device.as_str()) {
                return Decision::Terminate(
                    Termination::WrongDevice,
                    format!(
                        "the offer names device {named:?} but came on {device}'s topic; a \
                         device offers only for itself"
                    ),
                );
            }
            if data.kind != "offer" {
                return Decision::Terminate(
                    Termination::NoAudio,
                    format!(
                        "sdp_offer carries a description of type {:?}, not \"offer\"",
                        data.kind
                    ),
                );
            }
            if !sdp_sends_audio(&data.sdp) {
                return Decision::Terminate(
                    Termination::NoAudio,
                    "the offer has no audio track the device sends (an m=audio section, not \
                     recvonly); add a microphone track before offering"
                        .into(),
                );
            }
            Decision::Answer(data)
        }
        DeviceSignal::IceCandidate { data } if has_call => Decision::AddCandidate(data),
        DeviceSignal::IceCandidate { .. } => Decision::Ignore,
        DeviceSignal::WebrtcTerminated { .. } if has_call => {
            Decision::Terminate(Termination::Hangup, "the device hung up".into())
        }
        DeviceSignal::WebrtcTerminated { .. } => Decision::Ignore,
    }
}

/// One call's clock: when ICE must be up, and whether it is.
#[derive(Debug, Clone)]
pub struct Call {
    state: CallState,
    ice_timeout: Duration,
}

impl Call {
    /// A call answered at `now`.
    pub fn answered(now: Timestamp) -> Call {
        Call::with_ice_timeout(now, ICE_TIMEOUT)
    }

    /// As [`Call::answered`], with another ICE deadline (tests).
    pub fn with_ice_timeout(now: Timestamp, ice_timeout: Duration) -> Call {
        Call {
            state: CallState::Connecting { since: now },
            ice_timeout,
        }
    }

    /// Where it is.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// ICE and DTLS came up.
    pub fn connected(&mut self) {
        if self.state != CallState::Ended {
            self.state = CallState::Connected;
        }
    }

    /// The connection was lost: the reason to send, unless the call already ended.
    pub fn disconnected(&mut self) -> Option<EndpointSignal> {
        self.end(
            Termination::Disconnected,
            "the device's connection was lost",
        )
    }

    /// When [`Call::poll`] next has something to decide.
    pub fn deadline(&self) -> Option<Timestamp> {
        match self.state {
            CallState::Connecting { since } => Some(since + self.ice_timeout),
            _ => None,
        }
    }

    /// At `now`: the `webrtc_terminated` to send if ICE has not come up in time.
    pub fn poll(&mut self, now: Timestamp) -> Option<EndpointSignal> {
        match self.deadline() {
            Some(d) if now >= d => {
                let secs = self.ice_timeout.as_secs_f32();
                self.end(
                    Termination::IceTimeout,
                    &format!(
                        "no ICE connectivity within {secs} s of the offer; check that the \
                         device's candidates reach the endpoint (UDP, same network)"
                    ),
                )
            }
            _ => None,
        }
    }

    /// Ends the call for `why`: the `webrtc_terminated` to send, or `None` if it had ended
    /// already (one reason per call) or the device hung up itself. A device that hung up knows;
    /// and the topic carries no call id, so a late reply would reach the device's next call
    /// and end it (seen: back-to-back calls from one board).
    pub fn end(&mut self, why: Termination, detail: &str) -> Option<EndpointSignal> {
        if self.state == CallState::Ended {
            return None;
        }
        self.state = CallState::Ended;
        (why != Termination::Hangup).then(|| why.message(detail))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const AUDIO_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n";
    const VIDEO_SDP: &str = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n";
    const RECVONLY_SDP: &str =
        "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 RTP 96\r\n";

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    fn offer(sdp: &str) -> Vec<u8> {
        DeviceSignal::SdpOffer {
            data: Description {
                kind: "offer".into(),
                sdp: sdp.into(),
            },
            device_id: None,
        }
        .to_bytes()
    }

    #[test]
    fn topics_round_trip_and_strangers_are_not_topics() {
        let d = dev("kitchen-speaker");
        for c in [
            Channel::SignalToEndpoint,
            Channel::SignalToDevice,
            Channel::TextToEndpoint,
            Channel::TextToDevice,
        ] {
            assert_eq!(parse_topic(&topic(c, &d)), Some((c, d.clone())));
        }
        assert_eq!(
            topic(Channel::SignalToDevice, &d),
            "$webrtc/kitchen-speaker"
        );
        assert_eq!(
            topic(Channel::TextToEndpoint, &d),
            "$message/kitchen-speaker/multimedia_proxy"
        );
        for t in [
            "$webrtc",
            "$webrtc/",
            "$webrtc/a/b",
            "$webrtc/a/multimedia_proxy/x",
            "$mcp-server/a",
            "$webrtc/+/multimedia_proxy",
            "$webrtc/a b",
        ] {
            assert_eq!(parse_topic(t), None, "{t}");
        }
    }

    #[test]
    fn emqx_shaped_messages_parse() {
        let o = br#"{"type":"sdp_offer","data":{"type":"offer","sdp":"v=0"}}"#;
        assert!(matches!(
            DeviceSignal::parse(o).unwrap(),
            DeviceSignal::SdpOffer {
                device_id: None,
                ..
            }
        ));
        let c = br#"{"type":"ice_candidate","data":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}"#;
        let DeviceSignal::IceCandidate { data } = DeviceSignal::parse(c).unwrap() else {
            panic!()
        };
        assert_eq!(data.sdp_m_line_index, Some(0));
        assert_eq!(data.username_fragment.as_deref(), Some("abcd"));
        // A browser's candidate JSON may carry nulls.
        let n = br#"{"type":"ice_candidate","data":{"candidate":"","sdpMid":null,"sdpMLineIndex":null}}"#;
        assert!(DeviceSignal::parse(n).is_ok());
        let t = br#"{"type":"webrtc_terminated"}"#;
        assert!(matches!(
            DeviceSignal::parse(t).unwrap(),
            DeviceSignal::WebrtcTerminated { .. }
        ));
        let a = EndpointSignal::SdpAnswer {
            data: Description {
                kind: "answer".into(),
                sdp: "v=0".into(),
            },
        };
        let v: serde_json::Value = serde_json::from_slice(&a.to_bytes()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"sdp_answer","data":{"type":"answer","sdp":"v=0"}})
        );
        let asr: serde_json::Value = serde_json::from_slice(
            &TextToDevice::AsrResponse {
                results: "turn on the lamp".into(),
            }
            .to_bytes(),
        )
        .unwrap();
        assert_eq!(
            asr,
            serde_json::json!({"type":"asr_response","results":"turn on the lamp"})
        );
        let chat = br#"{"type":"chat","payload":"hello"}"#;
        assert!(TextToEndpoint::parse(chat).is_ok());
    }

    #[test]
    fn hostile_json_is_refused_with_a_reason_and_never_answered() {
        let d = dev("tab");
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            b"[]",
            b"null",
            b"{\"type\":\"sdp_answer\",\"data\":{\"type\":\"answer\",\"sdp\":\"\"}}",
            b"{\"type\":\"sdp_offer\"}",
            b"{\"type\":\"sdp_offer\",\"data\":{\"sdp\":7,\"type\":\"offer\"}}",
            b"{\"type\":\"ice_candidate\",\"data\":{\"sdpMLineIndex\":-1,\"candidate\":\"x\"}}",
            b"{\"type\":\"sdp_offer\",\"data\":{\"type\":\"offer\",\"sdp\":\"v=0\"}",
            b"\xff\xfe",
            &big,
        ] {
            match decide(&d, bad, true) {
                Decision::Terminate(Termination::BadMessage, why) => assert!(!why.is_empty()),
                other => panic!("{:?} → {other:?}", String::from_utf8_lossy(bad)),
            }
        }
        let deep = "[".repeat(10_000);
        assert!(matches!(
            decide(&d, deep.as_bytes(), false),
            Decision::Terminate(Termination::BadMessage, _)
        ));
    }

    #[test]
    fn an_offer_with_audio_is_answered() {
        let d = dev("tab");
        assert!(
            matches!(decide(&d, &offer(AUDIO_SDP), false), Decision::Answer(o) if o.sdp == AUDIO_SDP)
        );
    }

    #[test]
    fn an_offer_without_audio_is_refused() {
        let d = dev("tab");
        for sdp in [
            VIDEO_SDP,
            RECVONLY_SDP,
            "v=0\r\n",
            "m=audio 0 RTP/SAVPF 111\r\n",
        ] {
            match decide(&d, &offer(sdp), false) {
                Decision::Terminate(Termination::NoAudio, why) => {
                    assert!(why.contains("audio"), "{why}")
                }
                other => panic!("{sdp:?} → {other:?}"),
            }
        }
        let answer_as_offer =
            br#"{"type":"sdp_offer","data":{"type":"answer","sdp":"m=audio 9 RTP 111"}}"#;
        assert!(matches!(
            decide(&d, answer_as_offer, false),
            Decision::Terminate(Termination::NoAudio, _)
        ));
        assert!(sdp_sends_audio(
            "m=audio 9 X 111\r\na=recvonly\r\nm=audio 9 X 111\r\na=sendonly\r\n"
        ));
    }

    #[test]
    fn an_offer_for_another_device_is_refused() {
        let m = DeviceSignal::SdpOffer {
            data: Description {
                kind: "offer".into(),
                sdp: AUDIO_SDP.into(),
            },
            device_id: Some("front-door".into()),
        };
        match decide(&dev("tab"), &m.to_bytes(), false) {
            Decision::Terminate(Termination::WrongDevice, why) => {
                assert!(why.contains("front-door") && why.contains("tab"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let same = br#"{"type":"sdp_offer","device_id":"tab","data":{"type":"offer","sdp":"m=audio 9 X 111\r\n"}}"#;
        assert!(matches!(
            decide(&dev("tab"), same, false),
            Decision::Answer(_)
        ));
    }

    #[test]
    fn candidates_and_hangups_need_a_call() {
        let d = dev("tab");
        let c = br#"{"type":"ice_candidate","data":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host"}}"#;
        assert_eq!(decide(&d, c, false), Decision::Ignore);
        assert!(matches!(decide(&d, c, true), Decision::AddCandidate(_)));
        let h = br#"{"type":"webrtc_terminated","reason":"hangup"}"#;
        assert_eq!(decide(&d, h, false), Decision::Ignore);
        assert!(matches!(
            decide(&d, h, true),
            Decision::Terminate(Termination::Hangup, _)
        ));
    }

    #[test]
    fn the_side_channel_carries_what_a_device_shows() {
        let m = |v: serde_json::Value| {
            side_channel(&ServerMessage::from_json(&v).unwrap())
                .map(|t| serde_json::from_slice::<serde_json::Value>(&t.to_bytes()).unwrap())
        };
        use serde_json::json;
        assert_eq!(
            m(json!({"type":"transcript","turn":"t1","text":"turn on the lamp"})),
            Some(json!({"type":"asr_response","results":"turn on the lamp"}))
        );
        assert_eq!(
            m(json!({"type":"tts_sentence","turn":"t1","index":0,"text":"On."})),
            Some(json!({"type":"tts_text","task_id":"t1","text":"On."}))
        );
        assert_eq!(
            m(json!({"type":"tts_terminate","turn":"t1","reason":"barge_in"})),
            Some(json!({"type":"tts_terminate","task_id":"t1","reason":"barge_in"}))
        );
        assert_eq!(
            m(json!({"type":"tts_complete","turn":"t1","audio_ms":5})),
            Some(json!({"type":"tts_complete","task_id":"t1"}))
        );
        let a = m(json!({"type":"answer","text":"Kitchen lamp is on.","steps":1})).unwrap();
        assert_eq!(a["type"], "message");
        assert_eq!(a["payload"]["text"], "Kitchen lamp is on.");
        assert_eq!(m(json!({"type":"state","state":"thinking"})), None);
    }

    #[test]
    fn ice_that_never_connects_times_out_once() {
        let t0 = Timestamp::from_millis(1_000);
        let mut c = Call::answered(t0);
        assert_eq!(c.deadline(), Some(t0 + ICE_TIMEOUT));
        assert_eq!(c.poll(t0 + Duration::from_millis(9_999)), None);
        let Some(EndpointSignal::WebrtcTerminated { reason }) = c.poll(t0 + ICE_TIMEOUT) else {
            panic!()
        };
        assert!(reason.starts_with("ice_timeout: "), "{reason}");
        assert_eq!(c.state(), CallState::Ended);
        assert_eq!(c.poll(t0 + ICE_TIMEOUT * 2), None);
        assert_eq!(c.disconnected(), None);
    }

    #[test]
    fn a_connected_call_has_no_ice_deadline() {
        let t0 = Timestamp::ZERO;
        let mut c = Call::with_ice_timeout(t0, Duration::from_secs(1));
        c.connected();
        assert_eq!(c.deadline(), None);
        assert_eq!(c.poll(t0 + Duration::from_secs(60)), None);
        let Some(EndpointSignal::WebrtcTerminated { reason }) = c.disconnected() else {
            panic!()
        };
        assert!(reason.starts_with("disconnected: "));
        c.connected();
        assert_eq!(c.state(), CallState::Ended, "an ended call stays ended");
    }

    #[test]
    fn a_device_that_hangs_up_is_not_told_so() {
        let mut c = Call::answered(Timestamp::from_millis(0));
        c.connected();
        assert_eq!(c.end(Termination::Hangup, "the device hung up"), None);
        assert_eq!(c.state(), CallState::Ended);
        // Any other end is told, once.
        let mut c = Call::answered(Timestamp::from_millis(0));
        assert!(c.end(Termination::Shutdown, "stopping").is_some());
        assert_eq!(c.end(Termination::Shutdown, "stopping"), None);
    }

    /// The hand-written readers read back everything serde writes, for every message a
    /// device receives.
    #[test]
    fn what_a_device_receives_reads_back_as_written() {
        let signals = [
            EndpointSignal::SdpAnswer {
                data: Description {
                    kind: "answer".into(),
                    sdp: AUDIO_SDP.into(),
                },
            },
            EndpointSignal::IceCandidate {
                data: IceCandidate {
                    candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                    username_fragment: Some("abcd".into()),
                },
            },
            EndpointSignal::IceCandidate {
                data: IceCandidate {
                    candidate: String::new(),
                    sdp_mid: None,
                    sdp_m_line_index: None,
                    username_fragment: None,
                },
            },
            Termination::IceTimeout.message("no ICE"),
        ];
        for s in signals {
            assert_eq!(EndpointSignal::parse(&s.to_bytes()).unwrap(), s);
        }
        let texts = [
            TextToDevice::AsrResponse {
                results: "turn on the lamp".into(),
            },
            TextToDevice::TtsBegin {
                task_id: "t1".into(),
            },
            TextToDevice::TtsText {
                task_id: "t1".into(),
                text: "Kitchen lamp is on.".into(),
            },
            TextToDevice::TtsComplete {
                task_id: "t1".into(),
            },
            TextToDevice::TtsTerminate {
                task_id: "t1".into(),
                reason: "barge_in".into(),
            },
            TextToDevice::Message {
                payload: serde_json::json!({"type": "answer", "text": "ok", "steps": 1}),
            },
        ];
        for t in texts {
            assert_eq!(TextToDevice::parse(&t.to_bytes()).unwrap(), t);
        }
        // EMQX's own spelling of a reason-less terminate still reads.
        assert_eq!(
            TextToDevice::parse(br#"{"type":"tts_terminate","task_id":"t2"}"#).unwrap(),
            TextToDevice::TtsTerminate {
                task_id: "t2".into(),
                reason: String::new()
            }
        );
    }

    /// Bad input to the readers is an error that says what is wrong, never a panic.
    #[test]
    fn the_readers_refuse_what_is_not_a_message_and_say_why() {
        for (bytes, says) in [
            (&b"not json"[..], "not a signalling message"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"type":"sdp_answer"}"#, "`data`"),
            (
                br#"{"type":"sdp_answer","data":{"type":"answer"}}"#,
                "`sdp`",
            ),
            (br#"{"type":"dance"}"#, "unknown message type `dance`"),
            (br#"{"reason":"x"}"#, "`type`"),
        ] {
            let e = EndpointSignal::parse(bytes).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let e = TextToDevice::parse(br#"{"type":"tts_text","task_id":"t"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`text`"), "{e}");
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            TextToDevice::parse(&big),
            Err(SignalError::TooLarge(_))
        ));
    }

    /// A page reads the agent's answer and the Hub's errors out of what [`side_channel`]
    /// writes as a `message`.
    #[test]
    fn a_note_reads_what_the_side_channel_writes_as_a_message() {
        use crate::media::voice::ErrorCode;
        let note = |m: ServerMessage| match side_channel(&m) {
            Some(TextToDevice::Message { payload }) => Note::of(&payload),
            other => panic!("not a message: {other:?}"),
        };
        assert_eq!(
            note(ServerMessage::Agent(TurnEvent::Answer {
                text: "Kitchen lamp is on.".into(),
                steps: 1
            })),
            Some(Note::Answer("Kitchen lamp is on.".into()))
        );
        assert_eq!(
            note(ServerMessage::Agent(TurnEvent::Error {
                message: "the model failed".into()
            })),
            Some(Note::Error {
                message: "the model failed".into(),
                code: None
            })
        );
        assert_eq!(
            note(ServerMessage::error(
                ErrorCode::AsrEmpty,
                "nothing was heard"
            )),
            Some(Note::Error {
                message: "nothing was heard".into(),
                code: Some("asr_empty".into())
            })
        );
        assert_eq!(Note::of(&serde_json::json!({"type": "state"})), None);
    }
}
