//! Voice in the browser (docs/voice.md): the tab's microphone to the Hub's `/api/voice`
//! session, and the answer's speech back out of the speaker.
//!
//! Owns the tab's audio I/O: an AudioWorklet that turns the microphone into 16 kHz s16le
//! 20 ms frames and a level, the WebSocket, and the playback queue (Web Audio), which it drops
//! at once on `tts_terminate`. It never decides when an utterance ends or what a turn does:
//! the Hub's `VoiceSession` (axon-core) does, so a tab and a board behave the same.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::json::{object, Json};
use crate::util::{js_error, sleep};

/// Samples per second on the wire, both ways, and in one 20 ms frame sent up: the contract's.
pub use axon_core::media::voice::{FRAME_SAMPLES, SAMPLE_RATE};
/// At most this many frames (3 s) wait for the socket to open.
const PENDING_FRAMES: usize = 150;

/// The AudioWorklet processor: averages the context's rate down to 16 kHz (a box filter over
/// each output sample's span, enough against aliasing for speech at 44.1/48 kHz), and posts
/// one 20 ms s16le frame at a time with its RMS level. It runs on the audio thread, so it is
/// JavaScript; everything else is Rust.
const MIC_WORKLET: &str = r#"
class AxonMic extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000; this.phase = 0; this.acc = 0; this.cnt = 0;
    this.frame = new Int16Array(320); this.n = 0; this.sq = 0;
  }
  process(inputs) {
    const x = inputs[0] && inputs[0][0];
    if (!x) return true;
    for (let i = 0; i < x.length; i++) {
      this.acc += x[i]; this.cnt++; this.phase += 1;
      if (this.phase < this.step) continue;
      this.phase -= this.step;
      const v = Math.max(-1, Math.min(1, this.acc / this.cnt));
      this.acc = 0; this.cnt = 0;
      this.frame[this.n++] = v < 0 ? v * 32768 : v * 32767;
      this.sq += v * v;
      if (this.n === 320) {
        this.port.postMessage({ pcm: this.frame.buffer, rms: Math.sqrt(this.sq / 320) }, [this.frame.buffer]);
        this.frame = new Int16Array(320); this.n = 0; this.sq = 0;
      }
    }
    return true;
  }
}
registerProcessor('axon-mic', AxonMic);
"#;

/// How the session finds utterances: the Hub's own (`hands_free`, `push_to_talk`).
pub use axon_core::media::voice::Mode;

/// What a page shows of its voice session.
#[derive(Clone, Copy)]
pub struct VoiceUi {
    /// `off`, `connecting`, or the Hub's `state`: `listening`, `thinking`, `speaking`.
    pub phase: RwSignal<String>,
    /// The user is speaking now (the Hub's `speech_started` until `speech_ended`, or the
    /// push-to-talk button held).
    pub hearing: RwSignal<bool>,
    /// The microphone's level, 0–100.
    pub level: RwSignal<u32>,
    /// The loudest level since whoever reads it last reset it to `Some(0)`; `None` while the
    /// microphone is off. The virtual device's telemetry reads it (`mic_level_pct`); it is
    /// updated without notifying anyone, so 50 frames a second wake no effect.
    pub peak: RwSignal<Option<u32>>,
    /// What ASR heard last.
    pub transcript: RwSignal<String>,
    /// The agent's answer to it, as it streams.
    pub answer: RwSignal<String>,
    /// The last error, with its code.
    pub error: RwSignal<String>,
    /// How the session travels and where that stands ("WebSocket", "WebRTC: connected"…);
    /// empty while off.
    pub link: RwSignal<String>,
    /// Answer audio received (bytes) and its length (ms), since the page opened.
    pub audio_bytes: RwSignal<u32>,
    pub audio_ms: RwSignal<u32>,
    /// Turns finished, and playbacks cut by a barge-in or cancel, since the page opened.
    pub turns: RwSignal<u32>,
    pub terminated: RwSignal<u32>,
}

impl VoiceUi {
    /// Voice off, nothing heard.
    pub fn new() -> Self {
        VoiceUi {
            phase: RwSignal::new("off".into()),
            hearing: RwSignal::new(false),
            level: RwSignal::new(0),
            peak: RwSignal::new(None),
            transcript: RwSignal::new(String::new()),
            answer: RwSignal::new(String::new()),
            error: RwSignal::new(String::new()),
            link: RwSignal::new(String::new()),
            audio_bytes: RwSignal::new(0),
            audio_ms: RwSignal::new(0),
            turns: RwSignal::new(0),
            terminated: RwSignal::new(0),
        }
    }

    /// The face the session asks for, if any: listening while the user speaks, thinking,
    /// speaking. Otherwise the face is the device's own (its `set_expression`), so a spoken
    /// "make the screen happy" still ends on a happy face.
    pub fn expression(&self) -> Option<&'static str> {
        match self.phase.get().as_str() {
            "thinking" => Some("thinking"),
            "speaking" => Some("speaking"),
            "listening" if self.hearing.get() => Some("listening"),
            _ => None,
        }
    }
}

impl Default for VoiceUi {
    fn default() -> Self {
        Self::new()
    }
}

/// `/api/voice` on the worker at `api` (its origin, or "" for this page's), as a `ws:` or
/// `wss:` URL. It names no person: the worker takes who speaks from the credential.
pub fn voice_url(api: &str, device: Option<&str>, mode: Mode) -> String {
    let origin = if api.is_empty() {
        web_sys::window()
            .and_then(|w| w.location().origin().ok())
            .unwrap_or_default()
    } else {
        api.trim_end_matches('/').to_string()
    };
    let ws = if let Some(rest) = origin.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = origin.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        origin
    };
    let enc = |s: &str| String::from(js_sys::encode_uri_component(s));
    let mut url = format!("{ws}/api/voice?mode={}", mode.as_str());
    if let Some(d) = device {
        url.push_str(&format!("&device={}", enc(d)));
    }
    url
}

/// s16le bytes as Web Audio samples.
pub fn pcm_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// A running audio context, the microphone (with the browser's echo cancellation, noise
/// suppression and gain control) and the worklet that frames and meters it, pulled by the
/// context through a muted gain. Both transports hear through it: the WebSocket sends its
/// frames, a WebRTC call only its level.
pub(crate) async fn open_microphone() -> Result<
    (
        web_sys::AudioContext,
        web_sys::MediaStream,
        web_sys::AudioWorkletNode,
    ),
    String,
> {
    let window = web_sys::window().ok_or("no window")?;
    let ctx = web_sys::AudioContext::new().map_err(js_error)?;
    if let Ok(p) = ctx.resume() {
        let _ = JsFuture::from(p).await;
    }
    let media = window
        .navigator()
        .media_devices()
        .map_err(|_| "this browser has no microphone API (a secure origin is needed)")?;
    let audio = js_sys::Object::new();
    for (k, v) in [
        ("echoCancellation", true),
        ("noiseSuppression", true),
        ("autoGainControl", true),
    ] {
        let _ = js_sys::Reflect::set(&audio, &k.into(), &JsValue::from_bool(v));
    }
    let constraints = web_sys::MediaStreamConstraints::new();
    constraints.set_audio(&audio);
    let stream: web_sys::MediaStream = JsFuture::from(
        media
            .get_user_media_with_constraints(&constraints)
            .map_err(js_error)?,
    )
    .await
    .map_err(|e| format!("the microphone was not allowed: {}", js_error(e)))?
    .dyn_into()
    .map_err(|_| "not a media stream")?;

    let parts = js_sys::Array::of1(&JsValue::from_str(MIC_WORKLET));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("application/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts).map_err(js_error)?;
    let module = web_sys::Url::create_object_url_with_blob(&blob).map_err(js_error)?;
    let worklet = ctx.audio_worklet().map_err(js_error)?;
    JsFuture::from(worklet.add_module(&module).map_err(js_error)?)
        .await
        .map_err(|e| format!("cannot load the microphone worklet: {}", js_error(e)))?;
    let _ = web_sys::Url::revoke_object_url(&module);
    let source = ctx.create_media_stream_source(&stream).map_err(js_error)?;
    let mic = web_sys::AudioWorkletNode::new(&ctx, "axon-mic").map_err(js_error)?;
    source.connect_with_audio_node(&mic).map_err(js_error)?;
    // A worklet is only pulled when it leads to the destination: through a muted gain.
    let mute = ctx.create_gain().map_err(js_error)?;
    mute.gain().set_value(0.0);
    mic.connect_with_audio_node(&mute).map_err(js_error)?;
    mute.connect_with_audio_node(&ctx.destination())
        .map_err(js_error)?;
    Ok((ctx, stream, mic))
}

/// Shows a worklet frame's level on the meter and raises the peak; returns the level (0–100).
pub(crate) fn show_level(ui: &VoiceUi, frame: &JsValue) -> u32 {
    let rms = js_sys::Reflect::get(frame, &"rms".into())
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    // -60 dBFS .. 0 dBFS onto 0..100, as a meter reads.
    let db = 20.0 * rms.max(1e-6).log10();
    let level = ((db + 60.0) / 60.0 * 100.0).clamp(0.0, 100.0) as u32;
    ui.level.set(level);
    ui.peak
        .update_untracked(|p| *p = Some(p.unwrap_or(0).max(level)));
    level
}

struct Inner {
    ui: VoiceUi,
    mode: Mode,
    ws: web_sys::WebSocket,
    ctx: web_sys::AudioContext,
    stream: web_sys::MediaStream,
    mic: web_sys::AudioWorkletNode,
    out: web_sys::GainNode,
    /// Scheduled answer audio: each source and when it ends (context time).
    queue: Vec<(web_sys::AudioBufferSourceNode, f64)>,
    play_until: f64,
    /// Bumped when playback is dropped, so a pending `playback_done` of the old turn is not sent.
    generation: u32,
    talking: bool,
    /// Frames captured while the socket was still opening: sent right after `start`, so the
    /// first words of a press that also opened the session are not lost.
    pending: Vec<js_sys::ArrayBuffer>,
    handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    mic_handler: Option<Closure<dyn FnMut(web_sys::MessageEvent)>>,
}

/// A running voice session: microphone, socket, speaker. [`Voice::stop`] ends it.
#[derive(Clone)]
pub struct Voice {
    inner: Rc<RefCell<Inner>>,
}

impl Voice {
    /// Asks for the microphone, loads the worklet, connects to `url` (see [`voice_url`]) and
    /// waits (bounded) until the socket is open. `volume` (0–100) scales the answer's speech;
    /// `talking` says the push-to-talk button is already held (the press that opened it).
    pub async fn start(
        ui: VoiceUi,
        url: &str,
        mode: Mode,
        volume: u32,
        talking: bool,
    ) -> Result<Voice, String> {
        ui.phase.set("connecting".into());
        ui.error.set(String::new());
        ui.link.set("WebSocket".into());
        let started = Self::open(ui, url, mode, volume, talking).await;
        if let Err(e) = &started {
            ui.phase.set("off".into());
            ui.link.set(String::new());
            ui.error.set(e.clone());
        }
        started
    }

    async fn open(
        ui: VoiceUi,
        url: &str,
        mode: Mode,
        volume: u32,
        talking: bool,
    ) -> Result<Voice, String> {
        let (ctx, stream, mic) = open_microphone().await?;
        let out = ctx.create_gain().map_err(js_error)?;
        out.gain().set_value(volume.min(100) as f32 / 100.0);
        out.connect_with_audio_node(&ctx.destination())
            .map_err(js_error)?;

        // A credential rides as a subprotocol (browsers set no headers on a WebSocket); the
        // worker answers with `axon`. Without one, the session cookie speaks for the page.
        let ws = match crate::util::token() {
            Some(t) => web_sys::WebSocket::new_with_str_sequence(
                url,
                &js_sys::Array::of2(&"axon".into(), &format!("axon-token.{t}").into()),
            ),
            None => web_sys::WebSocket::new(url),
        }
        .map_err(js_error)?;
        ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
        let voice = Voice {
            inner: Rc::new(RefCell::new(Inner {
                ui,
                mode,
                ws: ws.clone(),
                ctx,
                stream,
                mic: mic.clone(),
                out,
                queue: Vec::new(),
                play_until: 0.0,
                generation: 0,
                talking,
                pending: Vec::new(),
                handlers: Vec::new(),
                mic_handler: None,
            })),
        };
        voice.attach(&ws, &mic);
        for _ in 0..200 {
            match ws.ready_state() {
                web_sys::WebSocket::OPEN => return Ok(voice),
                web_sys::WebSocket::CLOSING | web_sys::WebSocket::CLOSED => break,
                _ => sleep(50).await,
            }
        }
        voice.stop();
        Err(format!("cannot open the voice session at {url}"))
    }

    fn attach(&self, ws: &web_sys::WebSocket, mic: &web_sys::AudioWorkletNode) {
        let on_open = {
            let me = self.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                let mut inner = me.inner.borrow_mut();
                let start = object(&[
                    ("type", JsValue::from_str("start")),
                    ("format", JsValue::from_str("s16le")),
                    ("sample_rate", JsValue::from_f64(SAMPLE_RATE.into())),
                    ("channels", JsValue::from_f64(1.0)),
                ]);
                let _ = inner.ws.send_with_str(&start);
                if inner.mode == Mode::PushToTalk && inner.talking {
                    inner.ui.hearing.set(true);
                    let _ = inner.ws.send_with_str(&ptt_message(true));
                }
                for frame in std::mem::take(&mut inner.pending) {
                    let _ = inner.ws.send_with_array_buffer(&frame);
                }
            })
        };
        let on_message = {
            let me = self.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let Some(m) = e.dyn_ref::<web_sys::MessageEvent>() else {
                    return;
                };
                let data = m.data();
                if let Some(text) = data.as_string() {
                    match Json::try_parse(&text) {
                        Ok(msg) => me.on_text(&msg),
                        Err(e) => me.ui().error.set(format!("bad message from the Hub: {e}")),
                    }
                } else if data.is_instance_of::<js_sys::ArrayBuffer>() {
                    me.on_audio(&js_sys::Uint8Array::new(&data).to_vec());
                }
            })
        };
        let on_close = {
            let me = self.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let why = e
                    .dyn_ref::<web_sys::CloseEvent>()
                    .map(|c| format!("the voice session closed (code {})", c.code()))
                    .unwrap_or_else(|| "the voice session failed".into());
                let ui = me.ui();
                if ui.phase.get_untracked() != "off" {
                    ui.error.set(why);
                }
                me.stop();
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_close.as_ref().unchecked_ref()));
        let on_frame = {
            let me = self.clone();
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                me.on_frame(&e.data());
            })
        };
        if let Ok(port) = mic.port() {
            port.set_onmessage(Some(on_frame.as_ref().unchecked_ref()));
        }
        let mut inner = self.inner.borrow_mut();
        inner.handlers = vec![on_open, on_message, on_close];
        inner.mic_handler = Some(on_frame);
    }

    fn ui(&self) -> VoiceUi {
        self.inner.borrow().ui
    }

    /// A 20 ms frame from the worklet: the meter, and up to the Hub when it should hear it.
    fn on_frame(&self, data: &JsValue) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return;
        };
        show_level(&inner.ui, data);
        let send = inner.mode == Mode::HandsFree || inner.talking;
        let Some(frame) = js_sys::Reflect::get(data, &"pcm".into())
            .ok()
            .and_then(|pcm| pcm.dyn_into::<js_sys::ArrayBuffer>().ok())
        else {
            return;
        };
        match inner.ws.ready_state() {
            web_sys::WebSocket::OPEN if send => {
                let _ = inner.ws.send_with_array_buffer(&frame);
            }
            web_sys::WebSocket::CONNECTING if send && inner.pending.len() < PENDING_FRAMES => {
                inner.pending.push(frame);
            }
            _ => {}
        }
    }

    fn on_text(&self, msg: &Json) {
        let ui = self.ui();
        let text = || msg.get("text").str_or_empty();
        match msg.get("type").str_or_empty().as_str() {
            "ready" => ui.phase.set("listening".into()),
            "state" => {
                let state = msg
                    .get("state")
                    .as_str()
                    .unwrap_or_else(|| "listening".into());
                if state != "listening" {
                    ui.hearing.set(false);
                }
                ui.phase.set(state);
            }
            "speech_started" => ui.hearing.set(true),
            // Held a moment: the Hub's `thinking` follows at once when the utterance makes a
            // turn, and the face should not blink back to neutral in between.
            "speech_ended" => leptos::task::spawn_local(async move {
                sleep(300).await;
                if ui.phase.get_untracked() == "listening" {
                    ui.hearing.set(false);
                }
            }),
            "transcript" => {
                ui.transcript.set(text());
                ui.answer.set(String::new());
            }
            "text_delta" => ui.answer.update(|a| a.push_str(&text())),
            "answer" => ui.answer.set(text()),
            "confirmation_required" => ui.answer.set(format!(
                "{} (say yes or no)",
                msg.get("prompt").str_or_empty()
            )),
            "tts_terminate" => {
                self.drop_playback();
                ui.terminated.update(|n| *n += 1);
            }
            "tts_complete" => self.report_playback_done(),
            "done" => ui.turns.update(|n| *n += 1),
            "error" => ui.error.set(format!(
                "{} ({})",
                msg.get("message").str_or_empty(),
                msg.get("code").as_str().unwrap_or_else(|| "error".into())
            )),
            _ => {}
        }
    }

    /// Queues answer audio right after what is already queued.
    fn on_audio(&self, bytes: &[u8]) {
        let samples = pcm_to_f32(bytes);
        if samples.is_empty() {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        let ui = inner.ui;
        ui.audio_bytes.update(|n| *n += bytes.len() as u32);
        ui.audio_ms
            .update(|n| *n += (samples.len() as u32 * 1000) / SAMPLE_RATE);
        let played = (|| -> Result<(web_sys::AudioBufferSourceNode, f64), JsValue> {
            let buf = inner
                .ctx
                .create_buffer(1, samples.len() as u32, SAMPLE_RATE as f32)?;
            buf.copy_to_channel(&samples, 0)?;
            let src = inner.ctx.create_buffer_source()?;
            src.set_buffer(Some(&buf));
            src.connect_with_audio_node(&inner.out)?;
            let now = inner.ctx.current_time();
            let at = inner.play_until.max(now + 0.02);
            src.start_with_when(at)?;
            Ok((src, at + buf.duration()))
        })();
        match played {
            Ok((src, end)) => {
                let now = inner.ctx.current_time();
                inner.queue.retain(|(_, e)| *e > now);
                inner.queue.push((src, end));
                inner.play_until = end;
            }
            Err(e) => ui
                .error
                .set(format!("cannot play the answer: {}", js_error(e))),
        }
    }

    /// Stops what plays and drops what is queued (a barge-in or cancel from the Hub).
    fn drop_playback(&self) {
        let mut inner = self.inner.borrow_mut();
        for (src, _) in inner.queue.drain(..) {
            #[allow(deprecated)]
            let _ = src.stop();
        }
        inner.play_until = 0.0;
        inner.generation = inner.generation.wrapping_add(1);
    }

    /// When the queued speech has played, tells the Hub (so it stops counting on its own).
    fn report_playback_done(&self) {
        let (left_ms, generation) = {
            let inner = self.inner.borrow();
            let left = (inner.play_until - inner.ctx.current_time()).max(0.0);
            ((left * 1000.0) as u32, inner.generation)
        };
        let me = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            sleep(left_ms).await;
            let inner = me.inner.borrow();
            if inner.generation == generation && inner.ws.ready_state() == web_sys::WebSocket::OPEN
            {
                let _ = inner
                    .ws
                    .send_with_str(&object(&[("type", JsValue::from_str("playback_done"))]));
            }
        });
    }

    /// Push-to-talk pressed or released (in hands-free mode too: it marks an utterance).
    pub fn ptt(&self, down: bool) {
        let mut inner = self.inner.borrow_mut();
        // The Hub starts a new utterance on every press: a repeat (the press that opened the
        // session, already sent on open) must not drop what it heard.
        if inner.talking == down {
            return;
        }
        inner.talking = down;
        inner.ui.hearing.set(down);
        if inner.ws.ready_state() == web_sys::WebSocket::OPEN {
            let _ = inner.ws.send_with_str(&ptt_message(down));
        }
    }

    /// The answer's loudness, 0–100.
    pub fn set_volume(&self, volume: u32) {
        self.inner
            .borrow()
            .out
            .gain()
            .set_value(volume.min(100) as f32 / 100.0);
    }

    /// Ends the session: socket, microphone, audio, handlers.
    pub fn stop(&self) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return;
        };
        inner.ui.phase.set("off".into());
        inner.ui.hearing.set(false);
        inner.ui.level.set(0);
        inner.ui.peak.set(None);
        inner.ui.link.set(String::new());
        inner.ws.set_onopen(None);
        inner.ws.set_onmessage(None);
        inner.ws.set_onclose(None);
        inner.ws.set_onerror(None);
        let _ = inner.ws.close();
        if let Ok(port) = inner.mic.port() {
            port.set_onmessage(None);
        }
        for track in inner.stream.get_tracks().iter() {
            if let Ok(t) = track.dyn_into::<web_sys::MediaStreamTrack>() {
                t.stop();
            }
        }
        let _ = inner.ctx.close();
        inner.queue.clear();
        // Dropped later: a handler may be the caller of this function.
        let handlers = std::mem::take(&mut inner.handlers);
        let mic_handler = inner.mic_handler.take();
        wasm_bindgen_futures::spawn_local(async move {
            drop(handlers);
            drop(mic_handler);
        });
    }
}

/// How a voice session travels: a WebRTC call to the media endpoint (a device page whose MQTT
/// session carries the signalling), or the Hub's `/api/voice` WebSocket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An `RTCPeerConnection` (docs/voice.md §6).
    WebRtc,
    /// PCM over `/api/voice` (docs/voice.md §1).
    WebSocket,
}

/// A running session on either transport.
#[derive(Clone)]
enum Session {
    Socket(Voice),
    #[cfg(feature = "device")]
    Call(crate::call::Call),
}

impl Session {
    fn stop(&self) {
        match self {
            Session::Socket(v) => v.stop(),
            #[cfg(feature = "device")]
            Session::Call(c) => c.stop(),
        }
    }

    fn ptt(&self, down: bool) {
        match self {
            Session::Socket(v) => v.ptt(down),
            #[cfg(feature = "device")]
            Session::Call(c) => c.ptt(down),
        }
    }

    fn set_volume(&self, volume: u32) {
        match self {
            Session::Socket(v) => v.set_volume(volume),
            #[cfg(feature = "device")]
            Session::Call(c) => c.set_volume(volume),
        }
    }
}

/// Voice controls: start/stop, mode, push-to-talk, a mic level meter, what was heard and
/// answered. `device` names the device this tab is (the agent prefers it for "say", "show").
/// With `call` (the device page's MQTT session), the session is a WebRTC call unless the
/// person picks the WebSocket (or `?voice=websocket`); a call nobody answers falls back to it.
#[component]
pub fn VoicePanel(
    ui: VoiceUi,
    #[prop(into)] api: String,
    #[prop(optional, into)] device: Option<String>,
    /// The speaker's volume (0–100).
    #[prop(into)]
    volume: Signal<u32>,
    /// Offer the mode choice (the widget is push-to-talk only).
    #[prop(optional)]
    choose_mode: bool,
    /// The device's signalling path for WebRTC calls.
    #[prop(default = None)]
    call: Option<crate::call::CallLink>,
) -> impl IntoView {
    let session: Rc<RefCell<Option<Session>>> = Rc::new(RefCell::new(None));
    let can_call = call.is_some();
    let transport = RwSignal::new(
        if can_call && crate::util::query("voice").as_deref() != Some("websocket") {
            Transport::WebRtc
        } else {
            Transport::WebSocket
        },
    );
    let mode = RwSignal::new(if choose_mode {
        Mode::HandsFree
    } else {
        Mode::PushToTalk
    });
    let held = RwSignal::new(false);
    let url = move || voice_url(&api, device.as_deref(), mode.get_untracked());
    #[cfg(not(feature = "device"))]
    let _ = (&call, &transport);

    let s = session.clone();
    Effect::new(move |_| {
        let v = volume.get();
        if let Some(voice) = s.borrow().as_ref() {
            voice.set_volume(v);
        }
    });

    // Starts a session unless one runs; resolves to it.
    let ensure = {
        let session = session.clone();
        move || {
            let session = session.clone();
            let url = url.clone();
            async move {
                // Another press is starting it: wait for that one (bounded by its own timeout).
                while ui.phase.get_untracked() == "connecting" {
                    sleep(50).await;
                }
                if ui.phase.get_untracked() == "off" {
                    session.borrow_mut().take();
                }
                if let Some(v) = session.borrow().as_ref() {
                    return Some(v.clone());
                }
                let (m, vol) = (mode.get_untracked(), volume.get_untracked());
                let talking = held.get_untracked() && m == Mode::PushToTalk;
                // Why a WebRTC call was not taken, when the WebSocket stands in for it.
                #[cfg_attr(not(feature = "device"), allow(unused_mut))]
                let mut fell_back: Option<String> = None;
                #[cfg(feature = "device")]
                if let (Transport::WebRtc, Some(link)) = (transport.get_untracked(), call.clone()) {
                    use crate::call::{Call, CallError};
                    match Call::start(ui, link, m, vol, talking).await {
                        Ok(c) => {
                            let s = Session::Call(c);
                            *session.borrow_mut() = Some(s.clone());
                            return Some(s);
                        }
                        Err(CallError::NoAnswer(why)) => fell_back = Some(why),
                        Err(CallError::Tab(_)) => return None,
                    }
                }
                let v = Voice::start(ui, &url(), m, vol, talking).await.ok()?;
                if let Some(why) = fell_back {
                    ui.link.set(format!("WebSocket (WebRTC: {why})"));
                }
                let s = Session::Socket(v);
                *session.borrow_mut() = Some(s.clone());
                Some(s)
            }
        }
    };
    let toggle = {
        let session = session.clone();
        let ensure = ensure.clone();
        move |_| {
            let running = ui.phase.get_untracked() != "off";
            if running {
                if let Some(v) = session.borrow_mut().take() {
                    v.stop();
                }
                return;
            }
            let ensure = ensure.clone();
            leptos::task::spawn_local(async move {
                let _ = ensure().await;
            });
        }
    };
    let press = {
        let ensure = ensure.clone();
        move |down: bool| {
            if held.get_untracked() == down {
                return;
            }
            held.set(down);
            let ensure = ensure.clone();
            leptos::task::spawn_local(async move {
                if let Some(v) = ensure().await {
                    // Released while the session was starting: nothing to mark.
                    if held.get_untracked() == down {
                        v.ptt(down);
                    }
                }
            });
        }
    };
    let press_down = press.clone();
    let press_up = press.clone();
    let press_leave = press.clone();
    let press_key = press.clone();
    let press_key_up = press;
    let running = move || ui.phase.get() != "off";
    view! {
        <section class="voice" aria-label="Voice" data-testid="voice"
            data-phase=move || ui.phase.get()
            data-audio-bytes=move || ui.audio_bytes.get()
            data-audio-ms=move || ui.audio_ms.get()
            data-turns=move || ui.turns.get()
            data-terminated=move || ui.terminated.get()
            data-link=move || ui.link.get()>
            <div class="voice-controls">
                {choose_mode.then(|| view! {
                    <label>
                        "Mode "
                        <select data-testid="voice-mode" disabled=running
                            on:change=move |ev| mode.set(if event_target_value(&ev) == "push_to_talk" { Mode::PushToTalk } else { Mode::HandsFree })>
                            // The mode starts hands-free, the first option; after that the
                            // select holds the choice and on:change copies it into `mode`.
                            <option value="hands_free">"Hands-free"</option>
                            <option value="push_to_talk">"Push to talk"</option>
                        </select>
                    </label>
                    {can_call.then(|| transport_choice(transport, Signal::derive(running)))}
                    <button type="button" data-testid="voice-toggle" aria-pressed=move || running().to_string() on:click=toggle.clone()>
                        {move || if running() { "Stop voice" } else { "Start voice" }}
                    </button>
                })}
                <button type="button" class="ptt" data-testid="voice-ptt"
                    aria-pressed=move || held.get().to_string()
                    title="Hold to talk (or hold Space)"
                    on:pointerdown=move |_| press_down(true)
                    on:pointerup=move |_| press_up(false)
                    on:pointerleave=move |_| press_leave(false)
                    on:keydown=move |ev: web_sys::KeyboardEvent| if (ev.key() == " " || ev.key() == "Enter") && !ev.repeat() { ev.prevent_default(); press_key(true) }
                    on:keyup=move |ev: web_sys::KeyboardEvent| if ev.key() == " " || ev.key() == "Enter" { ev.prevent_default(); press_key_up(false) }>
                    {move || if held.get() { "Listening…" } else { "Hold to talk" }}
                </button>
                <meter class="mic-level" data-testid="mic-level" min="0" max="100" low="20" high="85"
                    aria-label="Microphone level" value=move || ui.level.get()></meter>
                <span class="voice-phase" data-testid="voice-phase" role="status" aria-live="polite">
                    {move || ui.phase.get()}
                </span>
            </div>
            {can_call.then(|| link_line(ui))}
            <p class="voice-heard" data-testid="voice-transcript">{move || ui.transcript.get()}</p>
            <p class="voice-answer" data-testid="voice-answer" aria-live="polite">{move || ui.answer.get()}</p>
            <p class="voice-error" role="alert" data-testid="voice-error" hidden=move || ui.error.get().is_empty()>{move || ui.error.get()}</p>
        </section>
    }
}
/// The transport picker (a device page's: only it can call).
#[cfg(feature = "device")]
fn transport_choice(transport: RwSignal<Transport>, running: Signal<bool>) -> impl IntoView {
    view! {
        <label>
            "Transport "
            <select data-testid="voice-transport" disabled=move || running.get()
                on:change=move |ev| transport.set(if event_target_value(&ev) == "websocket" { Transport::WebSocket } else { Transport::WebRtc })>
                <option value="webrtc" selected=transport.get_untracked() == Transport::WebRtc>"WebRTC"</option>
                <option value="websocket" selected=transport.get_untracked() == Transport::WebSocket>"WebSocket"</option>
            </select>
        </label>
    }
}

#[cfg(not(feature = "device"))]
fn transport_choice(_: RwSignal<Transport>, _: Signal<bool>) {}

/// How the session travels, and why when WebRTC was not taken.
#[cfg(feature = "device")]
fn link_line(ui: VoiceUi) -> impl IntoView {
    view! {
        <p class="voice-link" data-testid="voice-link" hidden=move || ui.link.get().is_empty()>{move || ui.link.get()}</p>
    }
}

#[cfg(not(feature = "device"))]
fn link_line(_: VoiceUi) {}

/// The push-to-talk message: the button (or Space) went down or up.
fn ptt_message(down: bool) -> String {
    object(&[
        ("type", JsValue::from_str("ptt")),
        ("down", JsValue::from_bool(down)),
    ])
}
