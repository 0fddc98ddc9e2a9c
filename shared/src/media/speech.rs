//! ASR and TTS wire formats: the OpenAI audio endpoints (`/v1/audio/transcriptions`,
//! `/v1/audio/speech`), which OpenAI, Groq, DashScope's compatible mode and Axon's local AI
//! server speak, and Workers AI's answers.
//!
//! Owns request bodies (the multipart form for a transcription, the JSON for speech) and
//! reading answers into text or 16 kHz mono samples. It never sends anything: the worker's
//! providers do the HTTP.

use serde_json::{json, Value};

use base64::Engine as _;

use crate::media::audio::{looks_like_mp3, mp3_decode, resample, wav_decode, Wav, SAMPLE_RATE};
use crate::protocol::mcp::client::{DeviceInfo, DeviceState};

/// Whisper reads at most 224 prompt tokens; this many characters stays well under.
const MAX_PROMPT_CHARS: usize = 600;

/// The words of this home for ASR: the devices' names and a few commands in the way people
/// say them, given to Whisper as its prompt (`prompt` on `/audio/transcriptions`,
/// `initial_prompt` in faster-whisper). It biases recognition toward what the agent can act
/// on: tiny.en hears espeak's "set the bedroom thermostat to 21" as "That's the Mad Room
/// thermostat 21." without it (and decodes four times over at rising temperatures, ~3.5 s
/// instead of ~0.7 s on the 2-core machine), and right with it. Empty with no devices.
pub fn asr_prompt<'a>(devices: impl IntoIterator<Item = &'a DeviceInfo>) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut examples: Vec<String> = Vec::new();
    let mut kinds_seen: Vec<String> = Vec::new();
    for d in devices {
        if d.state == DeviceState::Offline {
            continue;
        }
        let name = d
            .meta
            .title
            .clone()
            .unwrap_or_else(|| d.device_id.as_str().replace(['-', '_'], " "))
            .to_lowercase();
        if name.trim().is_empty() || names.contains(&name) {
            continue;
        }
        let kind = d.kind.as_str();
        if !kinds_seen.iter().any(|k| k == kind) {
            kinds_seen.push(kind.to_string());
            let example =
                match kind {
                    "lamp" | "plug" | "light" => Some(format!("Turn on the {name}.")),
                    "thermostat" => Some(format!("Set the {name} to 21.")),
                    "lock" => Some(format!("Unlock the {name}.")),
                    "sensor" => d.meta.room.as_ref().map(|r| {
                        format!("What is the temperature in the {}?", r.replace('-', " "))
                    }),
                    "camera" => Some("What do you see?".to_string()),
                    _ => None,
                };
            examples.extend(example);
        }
        names.push(name);
    }
    if names.is_empty() {
        return String::new();
    }
    let mut prompt = String::new();
    for (i, n) in names.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if prompt.len() + sep.len() + n.len() + 1 > MAX_PROMPT_CHARS / 2 {
            break;
        }
        prompt.push_str(sep);
        prompt.push_str(n);
    }
    // Sentence case: Whisper copies the prompt's style into what it writes.
    if let Some(first) = prompt.get(..1) {
        prompt = first.to_uppercase() + &prompt[1..];
    }
    prompt.push('.');
    for e in examples {
        if prompt.len() + 1 + e.len() > MAX_PROMPT_CHARS {
            break;
        }
        prompt.push(' ');
        prompt.push_str(&e);
    }
    prompt
}

/// A `multipart/form-data` body for `POST /audio/transcriptions`. Returns the body and its
/// content type.
/// `prompt` (see [`asr_prompt`]) is sent when not empty.
pub fn transcription_request(
    wav: &[u8],
    model: &str,
    language: Option<&str>,
    prompt: &str,
    boundary: &str,
) -> (Vec<u8>, String) {
    let mut body = Vec::with_capacity(wav.len() + 512);
    let mut field = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    field("model", model);
    field("response_format", "json");
    if let Some(lang) = language {
        field("language", lang);
    }
    if !prompt.is_empty() {
        field("prompt", prompt);
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"utterance.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// The text of a transcription answer: `{"text": ...}` (OpenAI, Workers AI), or plain text
/// (`response_format=text`). An OpenAI error object becomes its message.
pub fn parse_transcription(body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            if let Some(t) = v.get("text").and_then(Value::as_str) {
                return Ok(t.to_string());
            }
            // Workers AI wraps answers from its REST API in `result`.
            if let Some(t) = v.pointer("/result/text").and_then(Value::as_str) {
                return Ok(t.to_string());
            }
            Err(error_message(&v).unwrap_or_else(|| {
                format!("the transcription has no \"text\": {}", excerpt(&text))
            }))
        }
        Err(_) if !text.trim_start().starts_with(['{', '[', '<']) => Ok(text.trim().to_string()),
        Err(_) => Err(format!("the transcription is not JSON: {}", excerpt(&text))),
    }
}

/// The JSON body for `POST /audio/speech`, asking for WAV (which says its own rate).
pub fn speech_request(model: &str, voice: &str, text: &str) -> Value {
    json!({"model": model, "voice": voice, "input": text, "response_format": "wav"})
}

/// The input for a Workers AI text-to-speech model, and whether to ask the binding for the raw
/// response. Deepgram's Aura is asked for 16 kHz linear PCM in a WAV (no decoding, and a raw
/// response: its JSON form would be base64 MP3); MyShell's MeloTTS takes `prompt` and `lang`
/// and answers `{"audio": base64 MP3}`.
pub fn workers_ai_speech_input(model: &str, text: &str) -> (Value, bool) {
    if model.contains("melotts") {
        (json!({"prompt": text, "lang": "en"}), false)
    } else {
        (
            json!({"text": text, "encoding": "linear16", "container": "wav", "sample_rate": 16000}),
            true,
        )
    }
}

/// Speech audio as 16 kHz mono samples, from a WAV (any rate, mono or stereo), an MP3, raw
/// s16le PCM (`audio/pcm`, `audio/L16`; its rate from `sample_rate`, else OpenAI's 24 kHz), or
/// JSON carrying one of those in base64 under `audio` (Workers AI's MeloTTS).
pub fn decode_speech(
    content_type: &str,
    sample_rate: Option<u32>,
    body: &[u8],
) -> Result<Vec<i16>, String> {
    let to_16k = |w: Wav| resample(&w.samples, w.sample_rate, SAMPLE_RATE);
    if body.starts_with(b"RIFF") {
        return wav_decode(body).map(to_16k).map_err(|e| e.to_string());
    }
    let ct = content_type.to_ascii_lowercase();
    let pcm = ct.starts_with("audio/pcm") || ct.starts_with("audio/l16");
    if ct.starts_with("audio/mpeg") || ct.starts_with("audio/mp3") {
        return mp3_decode(body)
            .map(to_16k)
            .map_err(|e| format!("{content_type}: {e}"));
    }
    // Unlabelled bytes that look like MP3 are tried as MP3; raw PCM can start the same way
    // (0xFF 0xE0 is a sample of -7937), so on failure they are still read as PCM below.
    if !pcm && looks_like_mp3(body) {
        if let Ok(mp3) = mp3_decode(body) {
            return Ok(to_16k(mp3));
        }
    }
    if ct.contains("json") || body.first() == Some(&b'{') {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some(audio) = v.get("audio").and_then(Value::as_str) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(audio.trim())
                .map_err(|e| format!("the speech's audio is not valid base64: {e}"))?;
            if !bytes.starts_with(b"RIFF") && !looks_like_mp3(&bytes) {
                return Err(format!(
                    "the speech's audio ({} bytes) is neither WAV nor MP3",
                    bytes.len()
                ));
            }
            return decode_speech("", sample_rate, &bytes);
        }
        return Err(error_message(&v).unwrap_or_else(|| {
            format!(
                "speech came back as JSON: {}",
                excerpt(&String::from_utf8_lossy(body))
            )
        }));
    }
    if pcm || ct.is_empty() {
        let rate = sample_rate
            .or_else(|| rate_in_content_type(&ct))
            .unwrap_or(24_000);
        let samples: Vec<i16> = body
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        return Ok(resample(&samples, rate, SAMPLE_RATE));
    }
    Err(format!(
        "speech came back as {content_type}, which Axon does not decode: ask the provider for WAV or PCM"
    ))
}

fn rate_in_content_type(ct: &str) -> Option<u32> {
    ct.split(';')
        .filter_map(|p| p.trim().strip_prefix("rate="))
        .find_map(|r| r.parse().ok())
}

/// `{"error": {"message": ...}}` (OpenAI), `{"error": "..."}`, or Workers AI's `errors[]`.
fn error_message(v: &Value) -> Option<String> {
    v.pointer("/error/message")
        .or_else(|| v.get("error").filter(|e| e.is_string()))
        .or_else(|| v.pointer("/errors/0/message"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn excerpt(s: &str) -> String {
    s.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::audio::wav_encode;

    #[test]
    fn the_transcription_form_carries_the_wav_and_the_fields() {
        let wav = wav_encode(&[1, 2, 3], 16_000);
        let (body, ct) = transcription_request(&wav, "whisper-1", Some("en"), "", "axonXYZ");
        assert_eq!(ct, "multipart/form-data; boundary=axonXYZ");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(
            "--axonXYZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        ));
        assert!(text.contains("name=\"language\"\r\n\r\nen\r\n"));
        assert!(text.contains("filename=\"utterance.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF"));
        assert!(text.ends_with("\r\n--axonXYZ--\r\n"));
        assert!(!text.contains("name=\"prompt\""));
        let start = body.windows(4).position(|w| w == b"RIFF").unwrap();
        assert_eq!(&body[start..start + wav.len()], &wav[..]);

        let (body, _) = transcription_request(&wav, "whisper-1", None, "Kitchen lamp.", "b");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"prompt\"\r\n\r\nKitchen lamp.\r\n"));
        assert!(!text.contains("name=\"language\""));
    }

    fn device(id: &str, kind: &str, room: &str, title: Option<&str>) -> DeviceInfo {
        DeviceInfo {
            device_id: crate::protocol::mcp::topics::DeviceId::new(id).expect("test ids are valid"),
            server_id: id.into(),
            server_name: format!("axon/{kind}/{id}"),
            description: String::new(),
            meta: crate::protocol::mcp::types::DeviceMeta {
                device_id: id.into(),
                kind: kind.into(),
                room: Some(room.into()),
                title: title.map(str::to_string),
                fw: None,
            },
            kind: kind.into(),
            state: DeviceState::Ready,
            tools: vec![],
            protocol_version: None,
            call_id_cache: false,
            last_seen: Default::default(),
        }
    }

    #[test]
    fn the_asr_prompt_names_the_homes_devices_with_a_command_per_kind() {
        let home = [
            device("kitchen-lamp", "lamp", "kitchen", Some("Kitchen lamp")),
            device(
                "living-light",
                "lamp",
                "living-room",
                Some("Living room light"),
            ),
            device(
                "bedroom-thermostat",
                "thermostat",
                "bedroom",
                Some("Bedroom thermostat"),
            ),
            device("hall-sensor", "sensor", "hall", None),
            device("front-door", "lock", "hall", Some("Front door")),
            device("kitchen-lamp-2", "lamp", "kitchen", Some("Kitchen lamp")),
            {
                let mut gone = device("porch-lamp", "lamp", "porch", Some("Porch lamp"));
                gone.state = DeviceState::Offline;
                gone
            },
        ];
        assert_eq!(
            asr_prompt(&home),
            "Kitchen lamp, living room light, bedroom thermostat, hall sensor, front door. \
             Turn on the kitchen lamp. Set the bedroom thermostat to 21. \
             What is the temperature in the hall? Unlock the front door."
        );
        assert_eq!(asr_prompt(&[]), "");
        // A big site stays within what Whisper reads.
        let many: Vec<DeviceInfo> = (0..500)
            .map(|i| device(&format!("lamp-{i}"), "lamp", "hall", None))
            .collect();
        let p = asr_prompt(&many);
        assert!(p.len() <= MAX_PROMPT_CHARS, "{}", p.len());
        assert!(p.ends_with("Turn on the lamp 0."), "{p}");
    }

    #[test]
    fn transcriptions_are_read_from_every_shape() {
        assert_eq!(
            parse_transcription(br#"{"text":" Hello."}"#).unwrap(),
            " Hello."
        );
        assert_eq!(
            parse_transcription(br#"{"result":{"text":"hi"},"success":true}"#).unwrap(),
            "hi"
        );
        assert_eq!(
            parse_transcription(b"plain words\n").unwrap(),
            "plain words"
        );
        assert_eq!(
            parse_transcription(
                br#"{"error":{"message":"Invalid file format.","type":"invalid_request_error"}}"#
            )
            .unwrap_err(),
            "Invalid file format."
        );
        assert!(parse_transcription(b"{broken")
            .unwrap_err()
            .contains("not JSON"));
        assert!(parse_transcription(br#"{"segments":[]}"#)
            .unwrap_err()
            .contains("no \"text\""));
    }

    #[test]
    fn speech_is_resampled_to_16_khz_from_wav_and_pcm() {
        let tone: Vec<i16> = (0..24_000).map(|i| ((i % 50) * 100) as i16).collect();
        let wav = wav_encode(&tone, 24_000);
        let out = decode_speech("audio/wav", None, &wav).unwrap();
        assert_eq!(out.len(), 16_000);
        let pcm: Vec<u8> = tone.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(
            decode_speech("audio/pcm", None, &pcm).unwrap().len(),
            16_000
        );
        assert_eq!(
            decode_speech("audio/pcm", Some(22_050), &pcm[..44_100])
                .unwrap()
                .len(),
            16_000
        );
        assert_eq!(
            decode_speech("audio/L16; rate=16000", None, &pcm[..32_000])
                .unwrap()
                .len(),
            16_000
        );
        let err = decode_speech("audio/mpeg", None, b"ID3...").unwrap_err();
        assert!(
            err.contains("audio/mpeg") && err.contains("no MPEG audio frames"),
            "{err}"
        );
        let err = decode_speech(
            "application/json",
            None,
            br#"{"error":{"message":"quota exceeded"}}"#,
        )
        .unwrap_err();
        assert_eq!(err, "quota exceeded");
        assert!(decode_speech("audio/wav", None, b"RIFF\x00\x00").is_err());
    }

    /// Made by `lame -b 32` from a 0.5 s 440 Hz tone, 44.1 kHz stereo (what MP3-only TTS
    /// models answer, e.g. Workers AI's MeloTTS).
    const TONE_MP3: &[u8] = include_bytes!("../../tests/fixtures/tone-440hz-0.5s-44k-stereo.mp3");

    #[test]
    fn mp3_speech_is_decoded_mixed_down_and_resampled() {
        for ct in ["audio/mpeg", ""] {
            let out = decode_speech(ct, None, TONE_MP3).unwrap();
            // 0.5 s at 16 kHz, plus up to one 1152-sample frame of the encoder's delay and padding.
            assert!(
                (7_500..=9_500).contains(&out.len()),
                "{ct:?}: {}",
                out.len()
            );
            let level = crate::media::audio::level_dbfs(&out[2_000..6_000]);
            assert!(
                level > -15.0,
                "the tone (-11.7 dBFS RMS) came through: {level} dBFS"
            );
            // 440 Hz at 16 kHz: one rising zero crossing every ~36 samples.
            let rising = out[2_000..6_000]
                .windows(2)
                .filter(|w| w[0] < 0 && w[1] >= 0)
                .count();
            assert!(
                (105..=115).contains(&rising),
                "{rising} rising zero crossings in 0.25 s"
            );
        }
    }

    #[test]
    fn melotts_json_carries_base64_mp3() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(TONE_MP3);
        let body = json!({ "audio": b64 }).to_string();
        let out = decode_speech("application/json", None, body.as_bytes()).unwrap();
        assert!((7_500..=9_500).contains(&out.len()), "{}", out.len());
        let err = decode_speech("application/json", None, br#"{"audio":"%%%"}"#).unwrap_err();
        assert!(err.contains("not valid base64"), "{err}");
        let err = decode_speech("application/json", None, br#"{"audio":"aGVsbG8="}"#).unwrap_err();
        assert!(err.contains("neither WAV nor MP3"), "{err}");
        // The request shapes: MeloTTS takes prompt + lang; Aura is asked for 16 kHz WAV, raw.
        let (melo, raw) = workers_ai_speech_input("@cf/myshell-ai/melotts", "Hi.");
        assert_eq!((melo, raw), (json!({"prompt": "Hi.", "lang": "en"}), false));
        let (aura, raw) = workers_ai_speech_input("@cf/deepgram/aura-1", "Hi.");
        assert!(raw && aura["container"] == "wav" && aura["sample_rate"] == 16000);
    }

    #[test]
    fn raw_pcm_that_starts_like_an_mp3_header_is_still_pcm() {
        let pcm: Vec<u8> = std::iter::repeat_n([0xFF, 0xE0], 1600).flatten().collect();
        let out = decode_speech("", Some(16_000), &pcm).unwrap();
        assert_eq!(out.len(), 1600);
        assert!(out.iter().all(|&s| s == i16::from_le_bytes([0xFF, 0xE0])));
    }
}
