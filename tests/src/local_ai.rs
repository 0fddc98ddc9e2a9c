//! The local AI server (`local-ai/`, docs/voice.md §3) for a test: `python -m axon_local_ai`
//! from `.venv-ai` on a free loopback port, ready once `/healthz` answers, killed on drop.
//! Plus speech rendered by espeak-ng as the 16 kHz mono WAV the voice loop expects. Requests go
//! through [`crate::http`] (multipart uploads, WAV answers).
//!
//! Needs `scripts/setup-local-ai.sh` to have run (it installs `.venv-ai` and espeak-ng).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axon_core::media::audio::{resample, wav_decode, wav_encode, SAMPLE_RATE};
use serde_json::Value;

use crate::http::{self, Reply};
use crate::{free_port, repo_root};

/// How long one read may wait: a transcription on a busy 2-core machine takes seconds.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One request to the server on `port`: status, head, body. `content_type` empty sends none.
fn request(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<Reply> {
    let headers: &[(&str, &str)] = if content_type.is_empty() {
        &[]
    } else {
        &[("Content-Type", content_type)]
    };
    http::request(port, method, path, headers, body, READ_TIMEOUT)
}

/// A running local AI server.
pub struct LocalAi {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl LocalAi {
    /// Starts the server with its default models (Whisper tiny.en, the piper voice) and waits
    /// until `/healthz` answers (120 s at most: loading takes a few seconds, more on a busy machine).
    pub fn start() -> LocalAi {
        Self::start_with(&[])
    }

    /// As [`LocalAi::start`], with more arguments (`--tts espeak`, `--asr none`…).
    pub fn start_with(args: &[&str]) -> LocalAi {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = repo_root();
        let python = root.join(".venv-ai/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-local-ai.sh",
            python.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "axon-local-ai-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let child = Command::new(python)
            .current_dir(&root)
            .env("PYTHONPATH", root.join("local-ai"))
            .env("HF_HUB_OFFLINE", "1")
            .args(["-m", "axon_local_ai", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn python -m axon_local_ai");
        let mut ai = LocalAi {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = ai.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "the local AI server exited ({status}) before it answered:\n{}",
                    ai.log()
                );
            }
            if let Ok(Reply { status: 200, .. }) = request(port, "GET", "/healthz", "", &[]) {
                return ai;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = ai.log();
        ai.stop();
        panic!("the local AI server did not answer /healthz within 120 s; log:\n{log}");
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/v1`: what `AXON_LOCAL_AI_URL` takes.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// What the server logged so far (one line per request, with its duration).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /healthz` as JSON.
    pub fn health(&self) -> Value {
        let Reply { status, body, .. } = request(self.port, "GET", "/healthz", "", &[])
            .unwrap_or_else(|e| panic!("GET /healthz: {e}"));
        assert_eq!(
            status,
            200,
            "GET /healthz: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }

    /// `POST /v1/audio/transcriptions` with `wav` as the `file` field: status and JSON answer.
    pub fn transcribe(&self, wav: &[u8]) -> (u16, Value) {
        let boundary = "axon-test-boundary-7d1f";
        let mut body = Vec::new();
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\n"
        )
        .expect("write to a Vec");
        body.extend_from_slice(wav);
        write!(body, "\r\n--{boundary}--\r\n").expect("write to a Vec");
        let ctype = format!("multipart/form-data; boundary={boundary}");
        let Reply {
            status,
            body: answer,
            ..
        } = request(self.port, "POST", "/v1/audio/transcriptions", &ctype, &body)
            .unwrap_or_else(|e| panic!("POST /v1/audio/transcriptions: {e}"));
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        )
    }

    /// `POST /v1/audio/speech` with `{"input": text}`: status and the WAV (or error JSON) bytes.
    pub fn speech(&self, text: &str) -> (u16, Vec<u8>) {
        let body = serde_json::json!({ "model": "tts-1", "input": text }).to_string();
        let Reply {
            status,
            body: answer,
            ..
        } = request(
            self.port,
            "POST",
            "/v1/audio/speech",
            "application/json",
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("POST /v1/audio/speech: {e}"));
        (status, answer)
    }

    /// Stops the server (SIGKILL: it holds nothing that needs a clean exit).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalAi {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Renders `text` with espeak-ng and writes it to `path` as a 16 kHz mono 16-bit WAV (espeak-ng
/// itself writes 22,050 Hz). Returns the WAV bytes.
pub fn espeak_wav(text: &str, path: &Path) -> Vec<u8> {
    let mut child = Command::new("espeak-ng")
        .args(["--stdout", "-v", "en-us"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run espeak-ng ({e}): run scripts/setup-local-ai.sh to install it")
        });
    // Text on stdin: a text starting with '-' must not read as an option.
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to espeak-ng");
    let out = child.wait_with_output().expect("espeak-ng output");
    assert!(
        out.status.success(),
        "espeak-ng failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let wav = wav_decode(&out.stdout).unwrap_or_else(|e| panic!("espeak-ng's WAV: {e}"));
    let bytes = wav_encode(
        &resample(&wav.samples, wav.sample_rate, SAMPLE_RATE),
        SAMPLE_RATE,
    );
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    bytes
}
