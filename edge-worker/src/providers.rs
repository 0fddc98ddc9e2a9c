//! LLM and VLM providers: where a turn's model requests go, chosen by `AXON_LLM` and, for the
//! request that carries a photo, `AXON_VLM`.
//!
//! Owns the HTTP (or binding) call and reading its answer into axon-core's [`Reply`]:
//! `offline` answers in-process with axon-core's offline model; `openai` streams from any
//! OpenAI-compatible Chat Completions endpoint (the vision model too, with the photo as an
//! `image_url` part); `workers-ai` calls the `AI` binding. The wire
//! formats and tool-call parsing are axon-core's; this file never decides what a turn does.

use std::time::Duration;

use axon_core::agent::llm::{
    parse_completion, parse_workers_ai, ChatRequest, Reply, StreamEvent, StreamReader,
};
use axon_core::agent::offline;
use axon_core::agent::turn::AgentTool;
use axon_core::protocol::mcp::client::DeviceInfo;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

use crate::config::{LlmProvider, VlmProvider};

/// How long a model may take for one request, streaming included.
const LLM_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the configured model. `on_delta` sees answer text as it streams.
pub async fn complete(
    provider: &LlmProvider,
    env: &Env,
    req: &ChatRequest,
    devices: &[DeviceInfo],
    tools: &[AgentTool],
    on_delta: &mut dyn FnMut(&str),
) -> Result<Reply, String> {
    match provider {
        LlmProvider::Offline => {
            let reply = offline::respond_for(&req.messages, devices, tools, req.device.as_deref());
            // One delta, so a client reads every provider's text the same way.
            if !reply.content.is_empty() {
                on_delta(&reply.content);
            }
            Ok(reply)
        }
        LlmProvider::OpenAi { base_url, api_key } => {
            openai_in_time(base_url, api_key.as_deref(), req, on_delta).await
        }
        LlmProvider::WorkersAi => workers_ai(env, req).await,
    }
}

/// Asks the vision model a request that carries a photo (axon-core's `Action::Vision`).
pub async fn look(
    provider: &VlmProvider,
    req: &ChatRequest,
    on_delta: &mut dyn FnMut(&str),
) -> Result<Reply, String> {
    match provider {
        VlmProvider::OpenAi {
            base_url, api_key, ..
        } => openai_in_time(base_url, api_key.as_deref(), req, on_delta).await,
        // The turn answers photos itself without a vision model; this is only a guard.
        VlmProvider::Offline => Err("no vision model is configured (AXON_VLM=offline)".into()),
    }
}

async fn openai_in_time(
    base_url: &str,
    api_key: Option<&str>,
    req: &ChatRequest,
    on_delta: &mut dyn FnMut(&str),
) -> Result<Reply, String> {
    let work = openai(base_url, api_key, req, on_delta).fuse();
    let timeout = worker::Delay::from(LLM_TIMEOUT).fuse();
    futures_util::pin_mut!(work, timeout);
    futures_util::select! {
        r = work => r,
        _ = timeout => Err(format!("no complete answer from {base_url} in {} s", LLM_TIMEOUT.as_secs())),
    }
}

async fn openai(
    base_url: &str,
    api_key: Option<&str>,
    req: &ChatRequest,
    on_delta: &mut dyn FnMut(&str),
) -> Result<Reply, String> {
    let url = format!("{base_url}/chat/completions");
    let body = serde_json::to_string(req).map_err(|e| e.to_string())?;
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| e.to_string());
    set("content-type", "application/json")?;
    set("accept", "text/event-stream, application/json")?;
    if let Some(key) = api_key {
        set("authorization", &format!("Bearer {key}"))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body)));
    let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let mut resp = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status_code();
    let content_type = resp
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !(200..300).contains(&status) {
        let text = resp.text().await.unwrap_or_default();
        let detail = parse_completion(text.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(format!("{url} answered HTTP {status}: {detail}"));
    }
    if !content_type.contains("text/event-stream") {
        // The server ignored `stream: true`: a whole answer.
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        let reply = parse_completion(&bytes).map_err(|e| e.to_string())?;
        if !reply.content.is_empty() {
            on_delta(&reply.content);
        }
        return Ok(reply);
    }
    let mut stream = resp.stream().map_err(|e| e.to_string())?;
    let mut reader = StreamReader::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the stream from {url} broke: {e}"))?;
        for StreamEvent::TextDelta(t) in reader.push(&chunk) {
            on_delta(&t);
        }
        if reader.is_done() {
            break;
        }
    }
    reader.finish().map_err(|e| e.to_string())
}

/// Workers AI (`env.AI.run`), not streamed. The input goes in as a plain JS object (JSON
/// parsed), so tool schemas stay objects rather than `Map`s.
async fn workers_ai(env: &Env, req: &ChatRequest) -> Result<Reply, String> {
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"type": "function", "function": t.function}))
        .collect();
    let input = json!({"messages": req.messages, "tools": tools});
    let input = js_sys::JSON::parse(&input.to_string()).map_err(|_| "bad input JSON")?;
    let out = run_ai(env, &req.model, &input, false).await?;
    let text: String = js_sys::JSON::stringify(&out)
        .map(String::from)
        .map_err(|_| "Workers AI answer is not JSON")?;
    parse_workers_ai(text.as_bytes()).map_err(|e| e.to_string())
}

/// `env.AI.run(model, input, {returnRawResponse: raw})`, for the LLM and for speech.
pub async fn run_ai(env: &Env, model: &str, input: &JsValue, raw: bool) -> Result<JsValue, String> {
    let ai = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str("AI"))
        .ok()
        .filter(|v| !v.is_undefined())
        .ok_or("workers-ai needs an [ai] binding named AI in wrangler.toml")?;
    let run: js_sys::Function = js_sys::Reflect::get(&ai, &JsValue::from_str("run"))
        .map_err(|_| "the AI binding has no run()")?
        .dyn_into()
        .map_err(|_| "AI.run is not a function")?;
    let options = js_sys::Object::new();
    if raw {
        let _ = js_sys::Reflect::set(&options, &"returnRawResponse".into(), &JsValue::TRUE);
    }
    let promise: js_sys::Promise = run
        .call3(&ai, &JsValue::from_str(model), input, &options)
        .map_err(|e| format!("AI.run({model}) failed: {e:?}"))?
        .dyn_into()
        .map_err(|_| "AI.run did not return a promise")?;
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|e| format!("Workers AI {model} refused the request: {e:?}"))
}
