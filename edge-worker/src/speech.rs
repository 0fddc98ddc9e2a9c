//! Speech providers: ASR (`AXON_ASR`) and TTS (`AXON_TTS`) for voice sessions.
//!
//! Owns the HTTP (or binding) call: the local AI server and any OpenAI-compatible endpoint
//! over `/audio/transcriptions` and `/audio/speech`, and Workers AI's Whisper, Aura and MeloTTS. Request
//! bodies and reading the answers are axon-core's ([`axon_core::media::speech`]); this file only
//! moves bytes and says clearly which URL failed and how.

use std::time::Duration;

use axon_core::media::speech::{
    decode_speech, parse_transcription, speech_request, transcription_request,
    workers_ai_speech_input,
};
use futures_util::FutureExt;
use serde_json::Value;
use wasm_bindgen::JsCast;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

use crate::config::SpeechProvider;
use crate::providers::run_ai;

/// How long one transcription or one sentence's speech may take.
const SPEECH_TIMEOUT: Duration = Duration::from_secs(30);

/// What was said in a 16 kHz mono WAV. `prompt` (words to expect, may be empty) goes to
/// OpenAI-compatible endpoints; Workers AI's Whisper takes none.
pub async fn transcribe(
    provider: &SpeechProvider,
    env: &Env,
    wav: Vec<u8>,
    prompt: &str,
) -> Result<String, String> {
    match provider {
        SpeechProvider::Http {
            base_url,
            api_key,
            model,
            ..
        } => {
            let url = format!("{base_url}/audio/transcriptions");
            let boundary = format!("axon{}", (js_sys::Math::random() * 1e12) as u64);
            let (body, content_type) =
                transcription_request(&wav, model, Some("en"), prompt, &boundary);
            let (_, _, bytes) = post(&url, api_key.as_deref(), &content_type, body).await?;
            parse_transcription(&bytes).map_err(|e| format!("{url}: {e}"))
        }
        SpeechProvider::WorkersAi { model } => {
            // Whisper on Workers AI takes the audio as an array of bytes.
            let audio = js_sys::Uint8Array::from(wav.as_slice());
            let input = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&input, &"audio".into(), &js_sys::Array::from(&audio));
            let out = run_ai(env, model, &input.into(), false).await?;
            let text: String = js_sys::JSON::stringify(&out)
                .map(String::from)
                .map_err(|_| "the Workers AI answer is not JSON")?;
            parse_transcription(text.as_bytes()).map_err(|e| format!("Workers AI {model}: {e}"))
        }
    }
}

/// One sentence as 16 kHz mono samples.
pub async fn synthesize(
    provider: &SpeechProvider,
    env: &Env,
    text: &str,
) -> Result<Vec<i16>, String> {
    match provider {
        SpeechProvider::Http {
            base_url,
            api_key,
            model,
            voice,
            ..
        } => {
            let url = format!("{base_url}/audio/speech");
            let body = speech_request(model, voice, text).to_string().into_bytes();
            let (content_type, rate, bytes) =
                post(&url, api_key.as_deref(), "application/json", body).await?;
            decode_speech(&content_type, rate, &bytes).map_err(|e| format!("{url}: {e}"))
        }
        SpeechProvider::WorkersAi { model } => {
            // Aura answers a raw response with a 16 kHz WAV; MeloTTS answers JSON with base64
            // MP3, which decode_speech unpacks and decodes (axon_core::media::speech).
            let (input, raw) = workers_ai_speech_input(model, text);
            let input = js_sys::JSON::parse(&input.to_string()).map_err(|_| "bad input JSON")?;
            let out = run_ai(env, model, &input, raw).await?;
            if !raw {
                let text: String = js_sys::JSON::stringify(&out)
                    .map(String::from)
                    .map_err(|_| format!("the Workers AI {model} answer is not JSON"))?;
                return decode_speech("application/json", None, text.as_bytes())
                    .map_err(|e| format!("Workers AI {model}: {e}"));
            }
            let resp: web_sys_response::Response = out
                .dyn_into()
                .map_err(|_| format!("Workers AI {model} did not answer with a response"))?;
            let ct = resp
                .headers()
                .get("content-type")
                .ok()
                .flatten()
                .unwrap_or_default();
            let buf = wasm_bindgen_futures::JsFuture::from(
                resp.array_buffer().map_err(|_| "cannot read the speech")?,
            )
            .await
            .map_err(|e| format!("Workers AI {model}: the speech broke off: {e:?}"))?;
            let bytes = js_sys::Uint8Array::new(&buf).to_vec();
            decode_speech(&ct, None, &bytes).map_err(|e| format!("Workers AI {model}: {e}"))
        }
    }
}

/// Minimal access to a JS `Response` that the AI binding returns raw.
mod web_sys_response {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(extends = js_sys::Object)]
        pub type Response;
        #[wasm_bindgen(method, getter)]
        pub fn headers(this: &Response) -> Headers;
        #[wasm_bindgen(method, catch, js_name = arrayBuffer)]
        pub fn array_buffer(this: &Response) -> Result<js_sys::Promise, JsValue>;
        pub type Headers;
        #[wasm_bindgen(method, catch)]
        pub fn get(this: &Headers, name: &str) -> Result<Option<String>, JsValue>;
    }
}

/// POSTs with a deadline; returns the content type, an `x-sample-rate` if given, and the body.
async fn post(
    url: &str,
    api_key: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(String, Option<u32>, Vec<u8>), String> {
    let work = async {
        let headers = Headers::new();
        let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| e.to_string());
        set("content-type", content_type)?;
        if let Some(key) = api_key {
            set("authorization", &format!("Bearer {key}"))?;
        }
        let body = js_sys::Uint8Array::from(body.as_slice());
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
        let mut resp = Fetch::Request(request)
            .send()
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status_code();
        let ct = resp
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_default();
        let rate = resp
            .headers()
            .get("x-sample-rate")
            .ok()
            .flatten()
            .and_then(|r| r.parse().ok());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{url}: the answer broke off: {e}"))?;
        if !(200..300).contains(&status) {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let detail = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            return Err(format!("{url} answered HTTP {status}: {detail}"));
        }
        Ok((ct, rate, bytes))
    }
    .fuse();
    let timeout = worker::Delay::from(SPEECH_TIMEOUT).fuse();
    futures_util::pin_mut!(work, timeout);
    futures_util::select! {
        r = work => r,
        _ = timeout => Err(format!("no answer from {url} in {} s", SPEECH_TIMEOUT.as_secs())),
    }
}
