//! The worker's configuration, read once per Hub from `wrangler.toml` `[vars]` and secrets
//! (`.dev.vars` locally, `wrangler secret put` in production). Nothing secret lives in code.
//!
//! | Name | Default | What |
//! |---|---|---|
//! | `AXON_SITE` | `home` | which Hub (one per site) |
//! | `AXON_BROKER_URL` | `ws://127.0.0.1:8083/mqtt` | the broker's MQTT-over-WebSocket URL |
//! | `AXON_BROKER_USERNAME` | none | the site's broker account, `hub-{site}` (docs/security.md "Broker accounts"); without it the Hub connects anonymously |
//! | `AXON_BROKER_PASSWORD` (secret) | none | its password (`axon-device-sim provision --hub --site SITE` prints both; scripts/run.sh passes them) |
//! | `AXON_LLM` | `offline` | `offline`, `openai` (any OpenAI-compatible endpoint) or `workers-ai` |
//! | `AXON_LLM_BASE_URL` | `https://api.openai.com/v1` | for `openai`: DeepSeek, DashScope, Ollama, local-ai… |
//! | `AXON_LLM_MODEL` | `gpt-4o-mini` / `@cf/meta/llama-3.1-8b-instruct` | model name |
//! | `AXON_LLM_API_KEY` (secret) | none | bearer key for `openai` |
//! | `AXON_PERSONA` | built in | the agent's system prompt |
//! | `AXON_MAX_STEPS` | 4 | model requests per turn |
//! | `AXON_PERMISSIONS` | none | site overrides, `front-door.unlock=confirm, *.factory_reset=deny` |
//! | `AXON_MCP_TOKEN` (secret) | none | bearer token of `/mcp`; without it `/mcp` answers 401 |
//! | `AXON_API_TOKEN` (secret) | none | the owner's token for `/api/*` (and the console's sign-in); without it only people and paired devices the owner made earlier get in |
//! | `AXON_WIDGET_KEY` | none | the publishable key of the widget on a product site: chat and talk only, and only from `AXON_ALLOWED_ORIGINS` |
//! | `AXON_ASR` / `AXON_TTS` | `local` | speech providers: `local` (the local AI server), `openai`, `workers-ai` |
//! | `AXON_LOCAL_AI_URL` | `http://127.0.0.1:8788/v1` | the local AI server (docs/voice.md §3) |
//! | `AXON_ASR_BASE_URL`, `AXON_ASR_MODEL`, `AXON_ASR_API_KEY` | `AXON_LLM_BASE_URL`, `whisper-1`, `AXON_LLM_API_KEY` | for `openai` ASR |
//! | `AXON_TTS_BASE_URL`, `AXON_TTS_MODEL`, `AXON_TTS_VOICE`, `AXON_TTS_API_KEY` | `AXON_LLM_BASE_URL`, `tts-1`, `alloy`, `AXON_LLM_API_KEY` | for `openai` TTS |
//! | `AXON_ASR_PROMPT` | `auto` | words that bias ASR: `auto` (the online devices' names and a command per kind, `axon_core::media::speech::asr_prompt`), `off`, or a text of your own |
//! | `AXON_VAD_SILENCE_MS` | 400 | silence that ends an utterance (100–3000) |
//! | `AXON_VAD_PAUSE_MS` | 200 | silence after which ASR starts early, overlapping the rest of the endpoint's wait (0: off; below `AXON_VAD_SILENCE_MS`) |
//! | `AXON_VLM` | `offline` | who looks at photos: `offline` (says there is no vision model, reports the measured facts) or `openai` |
//! | `AXON_VLM_BASE_URL` | `AXON_LLM_BASE_URL` | for `openai`: any OpenAI-compatible endpoint with image input |
//! | `AXON_VLM_MODEL` | `AXON_LLM_MODEL`, else `gpt-4o-mini` | the vision model |
//! | `AXON_VLM_API_KEY` (secret) | `AXON_LLM_API_KEY` | bearer key for `openai` |
//! | `AXON_SERVER_NAME_FILTERS` | `axon/#` | server-name filters for discovery, comma-separated (a device built on another SDK may be named outside `axon/`); the broker's `MCP-SERVER-NAME-FILTERS` wins |
//! | `AXON_MCP_PAGE_TOOLS` | 500 | tools per `/mcp` `tools/list` page (1–5000; clients follow `nextCursor`) |
//! | `AXON_ALLOWED_ORIGINS` | none | other sites' origins a browser may call the worker from (comma-separated; `*` is refused) |

use axon_core::agent::turn::DEFAULT_PERSONA;
use axon_core::protocol::mcp::topics::check_server_name_filter;
use axon_core::protocol::tool::SitePolicy;
use axon_core::transport::link::Credentials;
use worker::Env;

/// What the ASR provider is told to expect (`AXON_ASR_PROMPT`).
#[derive(Debug, Clone, PartialEq)]
pub enum AsrPrompt {
    /// Built from the registry at each utterance.
    Auto,
    /// None.
    Off,
    /// This text.
    Fixed(String),
}

/// Which model answers.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmProvider {
    /// The planner in axon-core: no network, no keys.
    Offline,
    /// An OpenAI-compatible Chat Completions endpoint.
    OpenAi {
        /// Base URL, e.g. `https://api.openai.com/v1`.
        base_url: String,
        /// Bearer key, if the endpoint needs one.
        api_key: Option<String>,
    },
    /// The Workers AI binding `AI`.
    WorkersAi,
}

/// Where speech goes (ASR or TTS).
#[derive(Debug, Clone, PartialEq)]
pub enum SpeechProvider {
    /// An OpenAI-compatible audio endpoint: the local AI server, OpenAI, or any other.
    Http {
        /// `local` or `openai`, for `/healthz` and the session's `ready`.
        name: &'static str,
        /// Base URL, e.g. `http://127.0.0.1:8788/v1`.
        base_url: String,
        /// Bearer key, if needed.
        api_key: Option<String>,
        /// Model name.
        model: String,
        /// The TTS voice (unused for ASR).
        voice: String,
    },
    /// The Workers AI binding `AI`, with this model.
    WorkersAi {
        /// Model name.
        model: String,
    },
}

impl SpeechProvider {
    pub fn name(&self) -> &'static str {
        match self {
            SpeechProvider::Http { name, .. } => name,
            SpeechProvider::WorkersAi { .. } => "workers-ai",
        }
    }
}

/// Everything configurable.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: String,
    pub broker_url: String,
    /// The site's broker account (`AXON_BROKER_USERNAME`, secret `AXON_BROKER_PASSWORD`).
    pub broker_credentials: Option<Credentials>,
    pub llm: LlmProvider,
    pub model: String,
    pub persona: String,
    pub max_steps: u32,
    pub policy: SitePolicy,
    pub mcp_token: Option<String>,
    /// The owner token (`AXON_API_TOKEN`).
    pub api_token: Option<String>,
    /// The widget's publishable key (`AXON_WIDGET_KEY`).
    pub widget_key: Option<String>,
    /// The media endpoint's credential (`AXON_MEDIA_TOKEN`): voice sessions for calling
    /// devices only. Unset: no media endpoint may connect.
    pub media_token: Option<String>,
    pub asr: SpeechProvider,
    pub tts: SpeechProvider,
    /// Endpointing silence for voice sessions.
    pub vad_silence_ms: u32,
    pub vad_pause_ms: u32,
    /// Tools per `/mcp` `tools/list` page (`AXON_MCP_PAGE_TOOLS`, default
    /// `gateway::TOOLS_PER_PAGE`).
    pub mcp_page_tools: usize,
    /// End an utterance at a pause when it is a whole command (`AXON_VOICE_SEMANTIC_ENDPOINT`,
    /// on unless `off`; it needs early ASR, `AXON_VAD_PAUSE_MS` above 0).
    pub semantic_endpoint: bool,
    /// Keep the speech of sentences already said (`AXON_TTS_CACHE`, on unless `off`).
    pub speech_cache: bool,
    pub asr_prompt: AsrPrompt,
    /// Who looks at photos.
    pub vlm: VlmProvider,
    /// Other sites' origins a browser may call the worker from (`AXON_ALLOWED_ORIGINS`).
    pub allowed_origins: AllowedOrigins,
    /// Server-name filters for discovery (`AXON_SERVER_NAME_FILTERS`, default `axon/#`).
    pub server_name_filters: Vec<String>,
    /// A problem with the configuration, shown on `/healthz`.
    pub problem: Option<String>,
}

/// The broker account from `AXON_BROKER_USERNAME` and `AXON_BROKER_PASSWORD`: both or neither.
pub fn broker_credentials(
    username: Option<String>,
    password: Option<String>,
) -> (Option<Credentials>, Option<String>) {
    match (username, password) {
        (Some(u), Some(p)) => (Some(Credentials::new(u.trim(), p)), None),
        (None, None) => (None, None),
        (Some(_), None) => (
            None,
            Some("AXON_BROKER_USERNAME is set but the AXON_BROKER_PASSWORD secret is not: the Hub connects without an account".into()),
        ),
        (None, Some(_)) => (
            None,
            Some("AXON_BROKER_PASSWORD is set but AXON_BROKER_USERNAME is not: the Hub connects without an account".into()),
        ),
    }
}

/// `AXON_SERVER_NAME_FILTERS`: comma-separated MQTT topic filters over server names
/// (`axon/#, demo/#`), or `axon/#`; a malformed one is reported and the default used.
pub fn server_name_filters(text: Option<&str>) -> (Vec<String>, Option<String>) {
    let default = vec!["axon/#".to_string()];
    let Some(text) = text else {
        return (default, None);
    };
    let filters: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect();
    let bad = filters
        .iter()
        .find(|f| check_server_name_filter(f).is_err());
    match (bad, filters.is_empty()) {
        (Some(f), _) => (
            default,
            Some(format!(
                "AXON_SERVER_NAME_FILTERS: {f:?} is not a topic filter over server names (e.g. axon/#, demo/+/#); axon/# is used"
            )),
        ),
        (None, true) => (default, None),
        (None, false) => (filters, None),
    }
}

/// `AXON_ALLOWED_ORIGINS`: the other sites whose pages may call the worker from a visitor's
/// browser (CORS, `/mcp`, writes and WebSockets). Read here, once, for the Hub and for the
/// worker's front door alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedOrigins {
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// Parses a comma-separated list. `*` is refused (it would let any site drive the home
    /// through a visitor's browser) and reported as the returned problem.
    pub fn parse(text: &str) -> (AllowedOrigins, Option<String>) {
        let mut origins = Vec::new();
        let mut problem = None;
        for o in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if o == "*" {
                problem = Some(
                    "AXON_ALLOWED_ORIGINS may not be *: list each site's origin (https://shop.example)"
                        .to_string(),
                );
            } else {
                origins.push(o.trim_end_matches('/').to_string());
            }
        }
        (AllowedOrigins { origins }, problem)
    }

    /// Reads `AXON_ALLOWED_ORIGINS`.
    pub fn from_env(env: &Env) -> (AllowedOrigins, Option<String>) {
        Self::parse(&var(env, "AXON_ALLOWED_ORIGINS").unwrap_or_default())
    }

    /// Whether a page on `origin` may call the worker.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.origins.iter().any(|o| o == origin)
    }
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

impl Config {
    pub fn from_env(env: &Env) -> Config {
        let mut problem = None;
        let llm = match var(env, "AXON_LLM").as_deref().unwrap_or("offline") {
            "offline" => LlmProvider::Offline,
            "openai" => LlmProvider::OpenAi {
                base_url: var(env, "AXON_LLM_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".into())
                    .trim_end_matches('/')
                    .to_string(),
                api_key: var(env, "AXON_LLM_API_KEY"),
            },
            "workers-ai" => LlmProvider::WorkersAi,
            other => {
                problem = Some(format!(
                    "AXON_LLM={other:?} is not a provider: use offline, openai or workers-ai (offline is used)"
                ));
                LlmProvider::Offline
            }
        };
        let model = var(env, "AXON_LLM_MODEL").unwrap_or_else(|| {
            match llm {
                LlmProvider::Offline => "offline",
                LlmProvider::OpenAi { .. } => "gpt-4o-mini",
                LlmProvider::WorkersAi => "@cf/meta/llama-3.1-8b-instruct",
            }
            .into()
        });
        let (policy, policy_error) =
            match SitePolicy::parse(&var(env, "AXON_PERMISSIONS").unwrap_or_default()) {
                Ok(p) => (p, None),
                Err(e) => (SitePolicy::new(), Some(format!("AXON_PERMISSIONS: {e}"))),
            };
        let max_steps = match var(env, "AXON_MAX_STEPS").map(|s| s.parse::<u32>()) {
            None => 4,
            Some(Ok(n)) if (1..=16).contains(&n) => n,
            Some(_) => {
                problem = Some("AXON_MAX_STEPS must be a number from 1 to 16 (4 is used)".into());
                4
            }
        };
        let llm_base = var(env, "AXON_LLM_BASE_URL");
        let llm_key = var(env, "AXON_LLM_API_KEY");
        let local =
            var(env, "AXON_LOCAL_AI_URL").unwrap_or_else(|| "http://127.0.0.1:8788/v1".into());
        let mut speech = |kind: &str, default_model: &str, workers_model: &str| {
            let up = kind.to_ascii_uppercase();
            let model = var(env, &format!("AXON_{up}_MODEL"));
            let voice = var(env, "AXON_TTS_VOICE");
            match var(env, &format!("AXON_{up}"))
                .as_deref()
                .unwrap_or("local")
            {
                "workers-ai" => SpeechProvider::WorkersAi {
                    model: model.unwrap_or_else(|| workers_model.into()),
                },
                "openai" => SpeechProvider::Http {
                    name: "openai",
                    base_url: var(env, &format!("AXON_{up}_BASE_URL"))
                        .or_else(|| llm_base.clone())
                        .unwrap_or_else(|| "https://api.openai.com/v1".into())
                        .trim_end_matches('/')
                        .to_string(),
                    api_key: var(env, &format!("AXON_{up}_API_KEY")).or_else(|| llm_key.clone()),
                    model: model.unwrap_or_else(|| default_model.into()),
                    voice: voice.unwrap_or_else(|| "alloy".into()),
                },
                other => {
                    if other != "local" {
                        problem = Some(format!(
                            "AXON_{up}={other:?} is not a provider: use local, openai or workers-ai (local is used)"
                        ));
                    }
                    SpeechProvider::Http {
                        name: "local",
                        base_url: var(env, &format!("AXON_{up}_BASE_URL"))
                            .unwrap_or_else(|| local.clone())
                            .trim_end_matches('/')
                            .to_string(),
                        api_key: None,
                        model: model.unwrap_or_else(|| "default".into()),
                        voice: voice.unwrap_or_else(|| "default".into()),
                    }
                }
            }
        };
        let asr = speech("asr", "whisper-1", "@cf/openai/whisper");
        let tts = speech("tts", "tts-1", "@cf/deepgram/aura-1");
        let vad_silence_ms = match var(env, "AXON_VAD_SILENCE_MS").map(|s| s.parse::<u32>()) {
            None => 400,
            Some(Ok(n)) if (100..=3000).contains(&n) => n,
            Some(_) => {
                problem = Some("AXON_VAD_SILENCE_MS must be 100 to 3000 (400 is used)".into());
                400
            }
        };
        let vad_pause_ms = match var(env, "AXON_VAD_PAUSE_MS").map(|s| s.parse::<u32>()) {
            None => 200.min(vad_silence_ms / 2),
            Some(Ok(n)) if n == 0 || n < vad_silence_ms => n,
            Some(_) => {
                problem = Some(format!(
                    "AXON_VAD_PAUSE_MS must be 0 (off) or below AXON_VAD_SILENCE_MS ({vad_silence_ms}); early ASR is off"
                ));
                0
            }
        };
        let page_default = axon_core::protocol::mcp::gateway::TOOLS_PER_PAGE;
        let mcp_page_tools = match var(env, "AXON_MCP_PAGE_TOOLS").map(|s| s.parse::<usize>()) {
            None => page_default,
            Some(Ok(n)) if (1..=5000).contains(&n) => n,
            Some(_) => {
                problem = Some(format!(
                    "AXON_MCP_PAGE_TOOLS must be 1 to 5000 ({page_default} is used)"
                ));
                page_default
            }
        };
        let semantic_endpoint = match var(env, "AXON_VOICE_SEMANTIC_ENDPOINT")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("on") => true,
            Some("off") => false,
            Some(_) => {
                problem =
                    Some("AXON_VOICE_SEMANTIC_ENDPOINT must be on or off (on is used)".into());
                true
            }
        };
        let speech_cache = match var(env, "AXON_TTS_CACHE").as_deref().map(str::trim) {
            None | Some("") | Some("on") => true,
            Some("off") => false,
            Some(_) => {
                problem = Some("AXON_TTS_CACHE must be on or off (on is used)".into());
                true
            }
        };
        let asr_prompt = match var(env, "AXON_ASR_PROMPT").as_deref().map(str::trim) {
            None | Some("") | Some("auto") => AsrPrompt::Auto,
            Some("off") => AsrPrompt::Off,
            Some(text) => AsrPrompt::Fixed(text.chars().take(600).collect()),
        };
        let (vlm, vlm_problem) = vlm_from_env(env);
        let (allowed_origins, origins_problem) = AllowedOrigins::from_env(env);
        let (server_name_filters, filters_problem) =
            server_name_filters(var(env, "AXON_SERVER_NAME_FILTERS").as_deref());
        let (broker_credentials, account_problem) = broker_credentials(
            var(env, "AXON_BROKER_USERNAME"),
            var(env, "AXON_BROKER_PASSWORD"),
        );
        let problem = problem
            .or(account_problem)
            .or(vlm_problem)
            .or(origins_problem)
            .or(filters_problem);
        Config {
            asr,
            tts,
            vad_silence_ms,
            vad_pause_ms,
            mcp_page_tools,
            semantic_endpoint,
            speech_cache,
            asr_prompt,
            vlm,
            site: var(env, "AXON_SITE").unwrap_or_else(|| "home".into()),
            broker_url: var(env, "AXON_BROKER_URL")
                .unwrap_or_else(|| "ws://127.0.0.1:8083/mqtt".into()),
            broker_credentials,
            llm,
            model,
            persona: var(env, "AXON_PERSONA").unwrap_or_else(|| DEFAULT_PERSONA.into()),
            max_steps,
            problem: problem.or(policy_error),
            policy,
            mcp_token: var(env, "AXON_MCP_TOKEN"),
            api_token: var(env, "AXON_API_TOKEN"),
            widget_key: var(env, "AXON_WIDGET_KEY"),
            media_token: var(env, "AXON_MEDIA_TOKEN"),
            allowed_origins,
            server_name_filters,
        }
    }

    pub fn llm_name(&self) -> &'static str {
        match self.llm {
            LlmProvider::Offline => "offline",
            LlmProvider::OpenAi { .. } => "openai",
            LlmProvider::WorkersAi => "workers-ai",
        }
    }
}

// --- Vision (docs/voice.md §5) -------------------------------------------------------------

/// Who looks at the photos a turn gets (`AXON_VLM`).
#[derive(Debug, Clone, PartialEq)]
pub enum VlmProvider {
    /// No vision model: axon-core's turn answers with the measured facts, labelled as such.
    Offline,
    /// An OpenAI-compatible chat model with image input (`image_url` content parts).
    OpenAi {
        /// Base URL, e.g. `https://api.openai.com/v1`.
        base_url: String,
        /// Bearer key, if the endpoint needs one.
        api_key: Option<String>,
        /// Model name.
        model: String,
    },
}

/// `AXON_VLM*`, each `openai` setting defaulting to its `AXON_LLM_*` one; and a problem, if any.
fn vlm_from_env(env: &Env) -> (VlmProvider, Option<String>) {
    match var(env, "AXON_VLM").as_deref().unwrap_or("offline") {
        "offline" => (VlmProvider::Offline, None),
        "openai" => (
            VlmProvider::OpenAi {
                base_url: var(env, "AXON_VLM_BASE_URL")
                    .or_else(|| var(env, "AXON_LLM_BASE_URL"))
                    .unwrap_or_else(|| "https://api.openai.com/v1".into())
                    .trim_end_matches('/')
                    .to_string(),
                api_key: var(env, "AXON_VLM_API_KEY").or_else(|| var(env, "AXON_LLM_API_KEY")),
                model: var(env, "AXON_VLM_MODEL")
                    .or_else(|| var(env, "AXON_LLM_MODEL"))
                    .unwrap_or_else(|| "gpt-4o-mini".into()),
            },
            None,
        ),
        other => (
            VlmProvider::Offline,
            Some(format!(
                "AXON_VLM={other:?} is not a provider: use offline or openai (offline is used)"
            )),
        ),
    }
}

impl Config {
    /// What axon-core's turn needs to know about the vision model.
    pub fn vision(&self) -> axon_core::agent::turn::Vision {
        match &self.vlm {
            VlmProvider::Offline => axon_core::agent::turn::Vision::Offline,
            VlmProvider::OpenAi { model, .. } => {
                axon_core::agent::turn::Vision::Model(model.clone())
            }
        }
    }

    /// `offline` or `openai`.
    pub fn vlm_name(&self) -> &'static str {
        match self.vlm {
            VlmProvider::Offline => "offline",
            VlmProvider::OpenAi { .. } => "openai",
        }
    }
}
