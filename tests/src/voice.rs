//! A voice-session client for the system tests: `/api/voice` over a blocking WebSocket
//! (docs/voice.md), with audio sent in 20 ms frames and every wait bounded.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use axon_core::media::voice::wire::message_type;
use axon_core::media::voice::{ClientMessage, ServerMessage};
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// 20 ms of 16 kHz mono.
pub use axon_core::media::voice::FRAME_SAMPLES;

/// Something the Hub sent.
#[derive(Debug, Clone)]
pub enum VoiceMsg {
    /// A JSON control message.
    Text(Value),
    /// PCM s16le 16 kHz mono.
    Audio(Vec<u8>),
}

impl VoiceMsg {
    /// The `type` of a text message ("audio" for audio).
    pub fn kind(&self) -> &str {
        match self {
            VoiceMsg::Text(v) => message_type(v).unwrap_or(""),
            VoiceMsg::Audio(_) => "audio",
        }
    }

    /// A text message as the contract's type (`None` for audio, or a message docs/voice.md
    /// does not describe).
    pub fn message(&self) -> Option<ServerMessage> {
        match self {
            VoiceMsg::Text(v) => ServerMessage::from_json(v).ok(),
            VoiceMsg::Audio(_) => None,
        }
    }
}

/// One open session.
pub struct VoiceClient {
    ws: WebSocket<TcpStream>,
    /// Everything received so far.
    pub seen: Vec<VoiceMsg>,
}

impl VoiceClient {
    /// Connects to `ws://127.0.0.1:{port}/api/voice?{query}`.
    pub fn connect(port: u16, query: &str) -> VoiceClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the worker");
        stream.set_nodelay(true).expect("nodelay");
        let url = format!("ws://127.0.0.1:{port}/api/voice?{query}");
        let mut req = url
            .as_str()
            .into_client_request()
            .expect("a WebSocket request");
        if let Some(t) = crate::http::owner_token(port) {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("a header value"),
            );
        }
        let (ws, resp) = tungstenite::client(req, stream).expect("WebSocket handshake");
        assert_eq!(resp.status().as_u16(), 101);
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        VoiceClient {
            ws,
            seen: Vec::new(),
        }
    }

    /// Sends a control message.
    pub fn send(&mut self, m: &ClientMessage) {
        self.ws.send(Message::text(m.to_text())).expect("send text");
    }

    /// Sends any JSON as a text message (hostile-input tests).
    pub fn send_json(&mut self, v: &Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .expect("send text");
    }

    /// Sends raw bytes as one binary message.
    pub fn send_bytes(&mut self, b: &[u8]) {
        self.ws
            .send(Message::binary(b.to_vec()))
            .expect("send binary");
    }

    /// Sends samples in 20 ms frames; with `paced`, at real-time pace (reading meanwhile).
    pub fn send_audio(&mut self, samples: &[i16], paced: bool) {
        let start = Instant::now();
        for (i, frame) in samples.chunks(FRAME_SAMPLES).enumerate() {
            let mut f = frame.to_vec();
            f.resize(FRAME_SAMPLES, 0);
            let bytes: Vec<u8> = f.iter().flat_map(|s| s.to_le_bytes()).collect();
            self.send_bytes(&bytes);
            if paced {
                let due = start + Duration::from_millis(20 * (i as u64 + 1));
                while Instant::now() < due {
                    self.poll_once();
                }
            }
        }
    }

    fn poll_once(&mut self) -> Option<VoiceMsg> {
        match self.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON from the Hub");
                self.seen.push(VoiceMsg::Text(v));
            }
            Ok(Message::Binary(b)) => self.seen.push(VoiceMsg::Audio(b.to_vec())),
            Ok(_) => return None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e) => panic!("the voice socket failed: {e}"),
        }
        self.seen.last().cloned()
    }

    /// Reads until a message matches (returned), failing after `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&VoiceMsg) -> bool) -> VoiceMsg {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(m) = self.poll_once() {
                if pred(&m) {
                    return m;
                }
            }
        }
        panic!(
            "no matching voice message in {timeout:?}; got: {:?}",
            self.kinds()
        );
    }

    /// Reads until a text message of this type arrives.
    pub fn wait_kind(&mut self, kind: &str, timeout: Duration) -> Value {
        match self.wait_for(timeout, |m| m.kind() == kind) {
            VoiceMsg::Text(v) => v,
            VoiceMsg::Audio(_) => unreachable!("audio has no type"),
        }
    }

    /// The types of everything received, in order (audio runs shown once).
    pub fn kinds(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.seen {
            if m.kind() == "audio" && out.last().is_some_and(|k| k == "audio") {
                continue;
            }
            out.push(m.kind().to_string());
        }
        out
    }

    /// Audio bytes received so far.
    pub fn audio_bytes(&self) -> usize {
        self.seen
            .iter()
            .map(|m| match m {
                VoiceMsg::Audio(b) => b.len(),
                VoiceMsg::Text(_) => 0,
            })
            .sum()
    }

    /// Text messages of this type received so far.
    pub fn texts(&self, kind: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter_map(|m| match m {
                VoiceMsg::Text(v) if message_type(v) == Some(kind) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A loud 220 Hz tone (a stand-in for speech where the words do not matter) of `ms`.
pub fn tone(ms: u64) -> Vec<i16> {
    (0..ms * 16)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 220.0 / 16_000.0).sin() * 9000.0) as i16)
        .collect()
}

/// Silence of `ms`.
pub fn silence(ms: u64) -> Vec<i16> {
    vec![0; (ms * 16) as usize]
}
