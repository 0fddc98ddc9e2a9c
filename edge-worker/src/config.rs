//! The worker's configuration, read once per Hub from `wrangler.toml` `[vars]` and secrets
//! (`.dev.vars` locally, `wrangler secret put` in production). Nothing secret lives in code.
//!
//! | Name | Default | What |
//! |---|---|---|
//! | `AXON_SITE` | `home` | which Hub (one per site) |
//! | `AXON_BROKER_URL` | `ws://127.0.0.1:8083/mqtt` | the broker's MQTT-over-WebSocket URL |
//! | `AXON_LLM` | `offline` | `offline`, `openai` (any OpenAI-compatible endpoint) or `workers-ai` |
//! | `AXON_LLM_BASE_URL` | `https://api.openai.com/v1` | for `openai`: DeepSeek, DashScope, Ollama, local-ai… |
//! | `AXON_LLM_MODEL` | `gpt-4o-mini` / `@cf/meta/llama-3.1-8b-instruct` | model name |
//! | `AXON_LLM_API_KEY` (secret) | none | bearer key for `openai` |
//! | `AXON_PERSONA` | built in | the agent's system prompt |
//! | `AXON_MAX_STEPS` | 4 | model requests per turn |
//! | `AXON_PERMISSIONS` | none | site overrides, `front-door.unlock=confirm, *.factory_reset=deny` |
//! | `AXON_MCP_TOKEN` (secret) | none | bearer token of `/mcp`; without it `/mcp` answers 401 |
//! | `AXON_VLM` | `offline` | who looks at photos: `offline` (says there is no vision model, reports the measured facts) or `openai` |
//! | `AXON_VLM_BASE_URL` | `AXON_LLM_BASE_URL` | for `openai`: any OpenAI-compatible endpoint with image input |
//! | `AXON_VLM_MODEL` | `AXON_LLM_MODEL`, else `gpt-4o-mini` | the vision model |
//! | `AXON_VLM_API_KEY` (secret) | `AXON_LLM_API_KEY` | bearer key for `openai` |

use axon_core::agent::turn::DEFAULT_PERSONA;
use axon_core::tool::SitePolicy;
use worker::Env;

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

/// Everything configurable.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: String,
    pub broker_url: String,
    pub llm: LlmProvider,
    pub model: String,
    pub persona: String,
    pub max_steps: u32,
    pub policy: SitePolicy,
    pub mcp_token: Option<String>,
    /// Who looks at photos.
    pub vlm: VlmProvider,
    /// A problem with the configuration, shown on `/healthz`.
    pub problem: Option<String>,
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
        let (vlm, vlm_problem) = vlm_from_env(env);
        let problem = problem.or(vlm_problem);
        Config {
            vlm,
            site: var(env, "AXON_SITE").unwrap_or_else(|| "home".into()),
            broker_url: var(env, "AXON_BROKER_URL")
                .unwrap_or_else(|| "ws://127.0.0.1:8083/mqtt".into()),
            llm,
            model,
            persona: var(env, "AXON_PERSONA").unwrap_or_else(|| DEFAULT_PERSONA.into()),
            max_steps,
            problem: problem.or(policy_error),
            policy,
            mcp_token: var(env, "AXON_MCP_TOKEN"),
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
