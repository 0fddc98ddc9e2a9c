//! The voice loop for a system test or the voice benchmark: Mosquitto, the demo home in
//! device-sim, the local AI server, and `wrangler dev` with `AXON_ASR=local`, `AXON_TTS=local`
//! and `AXON_LOCAL_AI_URL` pointing at it; speech rendered by espeak-ng; and a runtime for
//! device-sim's voice client (`device_sim::voice`, the code behind `axon-device-sim say`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use device_sim::voice::VoiceOptions;

use crate::local_ai::{espeak_wav, LocalAi};
use crate::{Broker, DeviceSim, WranglerDev, DEMO_HOME_DEVICES};

/// Everything a spoken turn needs, started on free loopback ports; stopped on drop.
pub struct VoiceHome {
    /// The Hub under `wrangler dev` (dropped first: it holds connections to the rest).
    pub worker: WranglerDev,
    /// The local AI server, unless the test pointed the Hub elsewhere.
    pub local_ai: Option<LocalAi>,
    /// The demo home (13 devices, faults off).
    pub sim: DeviceSim,
    /// The broker.
    pub broker: Broker,
}

impl VoiceHome {
    /// The demo home with the local AI server for ASR and TTS.
    pub fn start() -> VoiceHome {
        Self::start_with_vars(&[])
    }

    /// As [`VoiceHome::start`], with more worker settings (`AXON_ALLOWED_ORIGINS`…).
    pub fn start_with_vars(vars: &[(&str, &str)]) -> VoiceHome {
        let ai = LocalAi::start();
        let url = ai.base_url();
        Self::launch(Some(ai), &url, vars)
    }

    /// The demo home with `AXON_LOCAL_AI_URL` set to `url` and no local AI server started
    /// (a closed port: the providers are down).
    pub fn start_with_ai_url(url: &str) -> VoiceHome {
        Self::launch(None, url, &[])
    }

    fn launch(local_ai: Option<LocalAi>, url: &str, vars: &[(&str, &str)]) -> VoiceHome {
        let broker = Broker::start();
        let sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
        let mut all = vec![
            ("AXON_ASR", "local"),
            ("AXON_TTS", "local"),
            ("AXON_LOCAL_AI_URL", url),
        ];
        all.extend_from_slice(vars);
        let worker = WranglerDev::start_with(&broker, &all);
        worker.wait_for("/healthz", Duration::from_secs(60), |v| {
            v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
        });
        VoiceHome {
            worker,
            local_ai,
            sim,
            broker,
        }
    }

    /// `http://127.0.0.1:PORT`, the Hub.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.worker.port())
    }

    /// The worker's owner token.
    pub fn owner_token(&self) -> String {
        self.worker.owner_token()
    }

    /// Options for a session as the living-room speaker, for `user`.
    pub fn options(&self, user: &str) -> VoiceOptions {
        let mut o = VoiceOptions::new(&self.url());
        o.device = Some("living-speaker".into());
        o.user = Some(user.into());
        o.token = Some(self.worker.owner_token());
        o.connect_timeout = Duration::from_secs(30);
        o
    }
}

/// A fresh temporary directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "axon-voice-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// `text` spoken by espeak-ng as 16 kHz mono samples.
pub fn speech(text: &str) -> Vec<i16> {
    let path = temp_dir("speech").join("speech.wav");
    let bytes = espeak_wav(text, &path);
    let _ = std::fs::remove_file(&path);
    axon_core::media::audio::wav_decode(&bytes)
        .expect("espeak_wav writes a WAV")
        .samples
}

/// A runtime for the async voice client: two threads, so that the client's socket task stamps
/// arrivals while a test's own code runs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A loopback port nothing listens on (bound, read, released).
pub fn closed_port() -> u16 {
    crate::free_port()
}

/// The timing fields of docs/voice.md §1.4 that every spoken turn with a tool reports.
pub const TIMING_FIELDS: [&str; 7] = [
    "endpoint_ms",
    "asr_ms",
    "llm_first_token_ms",
    "first_tool_result_ms",
    "tts_first_audio_ms",
    "first_audio_ms",
    "end_of_speech_to_first_audio_ms",
];
