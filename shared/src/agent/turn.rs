//! One agent turn as a state machine: user text (and an optional image) → model → tool calls →
//! results → model → answer, with a cap on steps.
//!
//! Owns the order of things in a turn, the tool table a model sees (LLM-safe names and the
//! reverse map), argument checks before anything is sent, the permission policy (`auto` runs,
//! `confirm` waits for a person, `deny` never reaches the device), per-call timings and the
//! events the person sees, and where a photo goes: a tool result's image is attached to the
//! next request as a user message with an `image_url` part (a tool message cannot carry one),
//! and that request goes to the vision model ([`Action::Vision`]) or, with none configured,
//! the turn answers with what can be measured from the image ([`crate::media::vision`]). It never
//! talks to a model or a device itself: it asks for that with [`Action`]s, and the worker
//! answers with `handle_*` calls. Time comes in as an argument.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agent::llm::{ChatRequest, FunctionSpec, Message, Reply, ToolSpec};
use crate::media::vision;
use crate::protocol::jsonrpc::{code, ErrorObject};
use crate::protocol::mcp::client::{DeviceInfo, DeviceState};
use crate::protocol::tool::{
    authorize, effective_permission, validate_arguments, Caller, Permission, SitePolicy, Verdict,
};
use crate::time::Timestamp;

/// What the agent is told about itself when the configuration says nothing.
pub const DEFAULT_PERSONA: &str = "You are Axon, a concise home assistant. You control devices \
only through the tools you are given, one tool per device function. Say briefly what you did. \
If a tool fails, say why in plain words. Never invent devices or results.";

/// A device tool as the model sees it, with the way back to the device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentTool {
    /// The LLM-side name, `^[a-zA-Z0-9_-]{1,64}$` (docs/protocol.md §2.4).
    pub name: String,
    /// Device id.
    pub device: String,
    /// The device's tool name.
    pub tool: String,
    /// The device's title (or its id).
    pub device_title: String,
    /// The device's room, if it says.
    pub room: Option<String>,
    /// What the tool does.
    pub description: String,
    /// Input JSON Schema.
    pub input_schema: Value,
    /// The effective permission.
    pub permission: Permission,
}

/// The LLM-side name of `{device}.{tool}`: `.` becomes `__` (function names allow no dot).
/// Over 64 characters, an alias `t{index}__{tool}` (cut to 64) stands in; the turn keeps
/// the reverse map either way.
pub fn llm_tool_name(device: &str, tool: &str, index: usize) -> String {
    let name = format!("{device}__{tool}");
    let ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if ok(&name) {
        return name;
    }
    let mut alias = format!("t{index}__{tool}");
    alias.truncate(64);
    alias
}

/// The tools of every ready device, with their effective permissions.
pub fn agent_tools<'a>(
    devices: impl IntoIterator<Item = &'a DeviceInfo>,
    policy: &SitePolicy,
) -> Vec<AgentTool> {
    let mut out = Vec::new();
    for d in devices {
        if d.state != DeviceState::Ready {
            continue;
        }
        let title = d
            .meta
            .title
            .clone()
            .unwrap_or_else(|| d.device_id.to_string());
        for t in &d.tools {
            let description = match (&t.title, &t.description) {
                (Some(tt), Some(desc)) => format!("{title}: {tt}. {desc}"),
                (None, Some(desc)) => format!("{title}: {desc}"),
                (Some(tt), None) => format!("{title}: {tt}"),
                (None, None) => title.clone(),
            };
            out.push(AgentTool {
                name: llm_tool_name(d.device_id.as_str(), &t.name, out.len()),
                device: d.device_id.to_string(),
                tool: t.name.clone(),
                device_title: title.clone(),
                room: d.meta.room.clone(),
                description,
                input_schema: t.input_schema.clone(),
                permission: effective_permission(t, policy.get(d.device_id.as_str(), &t.name)),
            });
        }
    }
    out
}

/// Who looks at the photos a turn gets.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Vision {
    /// No vision model (`AXON_VLM=offline`): the turn answers that there is none and reports
    /// what it measured from the image (docs/voice.md §5).
    #[default]
    Offline,
    /// A vision model (`AXON_VLM=openai`), by model name: the request that carries the image
    /// goes to it as [`Action::Vision`], and its answer is the turn's.
    Model(String),
}

/// How a turn runs.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Model requests at most per turn.
    pub max_steps: u32,
    /// Model name, passed to the provider.
    pub model: String,
    /// Who the agent is.
    pub persona: String,
    /// Put before this turn's call ids, so they are unique across turns (e.g. `t42.`).
    pub call_prefix: String,
    /// The device the person is using (`/api/chat`'s `"device"`, `/api/voice?device=`): it
    /// does what the request asks when the request names no device ("take a photo").
    pub device: Option<String>,
    /// Who looks at photos.
    pub vision: Vision,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            max_steps: 4,
            model: "offline".into(),
            persona: DEFAULT_PERSONA.into(),
            call_prefix: String::new(),
            device: None,
            vision: Vision::Offline,
        }
    }
}

/// What the person sees of a turn, in order (the `/api/chat` SSE events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnEvent {
    /// More answer text, as the model writes it.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A tool call was sent to its device.
    ToolStarted {
        /// The call's id in this turn.
        id: String,
        /// Device id.
        device: String,
        /// Tool name.
        tool: String,
        /// Arguments.
        arguments: Value,
    },
    /// A tool call finished (or was refused before it was sent).
    ToolFinished {
        /// The call's id in this turn.
        id: String,
        /// Device id.
        device: String,
        /// Tool name.
        tool: String,
        /// Whether it worked.
        ok: bool,
        /// Milliseconds from sending to the result (0 if never sent).
        ms: u64,
        /// The device's `CallToolResult`, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// What went wrong, when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorObject>,
    },
    /// A `confirm` tool waits for the person (`POST /api/confirm`).
    ConfirmationRequired {
        /// The call's id: pass it to `/api/confirm`.
        id: String,
        /// Device id.
        device: String,
        /// Tool name.
        tool: String,
        /// What the person is asked.
        prompt: String,
        /// Arguments.
        arguments: Value,
    },
    /// The final answer.
    Answer {
        /// The whole answer text.
        text: String,
        /// Model requests used.
        steps: u32,
    },
    /// The turn failed.
    Error {
        /// Why, for the person.
        message: String,
    },
}

impl TurnEvent {
    /// Its `type`: the `/api/chat` SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            TurnEvent::TextDelta { .. } => "text_delta",
            TurnEvent::ToolStarted { .. } => "tool_started",
            TurnEvent::ToolFinished { .. } => "tool_finished",
            TurnEvent::ConfirmationRequired { .. } => "confirmation_required",
            TurnEvent::Answer { .. } => "answer",
            TurnEvent::Error { .. } => "error",
        }
    }
}

/// What a shell relays of a turn it drives, in order: `Started`, the turn's events, `Done`.
/// `/api/chat` sends them as SSE (`turn`, each event by its name, `done`); a voice session
/// hears the same ([`crate::media::voice::VoiceSession::handle_turn`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TurnUpdate {
    /// The turn began.
    Started {
        /// Its id.
        turn: String,
        /// Whose memory it uses.
        user: String,
        /// LLM provider name.
        llm: String,
        /// VLM provider name.
        vlm: String,
    },
    /// One of its events.
    Event(TurnEvent),
    /// It is over (nothing follows).
    Done {
        /// Its id.
        turn: String,
    },
}

/// What the turn needs done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask the model (or the offline planner) this.
    Llm(ChatRequest),
    /// Ask the vision model this (it carries an image and offers no tools); its answer ends
    /// the turn.
    Vision(ChatRequest),
    /// Send this tool call to the device (through the Hub's MCP client).
    CallTool {
        /// The call's id in this turn.
        id: String,
        /// Device id.
        device: String,
        /// Tool name.
        tool: String,
        /// Arguments, already validated.
        arguments: Value,
    },
    /// Wait for the person's answer to [`TurnEvent::ConfirmationRequired`].
    AwaitConfirmation {
        /// The call's id.
        id: String,
    },
}

#[derive(Debug)]
struct Outstanding {
    // Ours, unique in the turn; the model's ids need not be.
    id: String,
    model_id: String,
    tool: Option<usize>,
    arguments: Value,
    started: Option<Timestamp>,
    awaiting_confirmation: bool,
    // The tool message, once there is an outcome.
    result: Option<String>,
}

/// One turn.
#[derive(Debug)]
pub struct Turn {
    config: TurnConfig,
    tools: Vec<AgentTool>,
    by_name: HashMap<String, usize>,
    messages: Vec<Message>,
    user: Message,
    // Calls of the model's latest reply, in its order.
    calls: Vec<Outstanding>,
    actions: VecDeque<Action>,
    events: VecDeque<TurnEvent>,
    steps: u32,
    answer: Option<String>,
    // This turn's images, (whose, data or https URL), in the order they came.
    images: Vec<(String, String)>,
    // Photos of the latest tool results, to attach to the next request.
    attach: Vec<String>,
    // The vision model was asked; its reply is the answer.
    asked_vision: bool,
}

impl Turn {
    /// Starts a turn: the persona, what is remembered, the recent conversation, the request.
    pub fn new(
        config: TurnConfig,
        tools: Vec<AgentTool>,
        summary: Option<&str>,
        history: Vec<Message>,
        user: Message,
    ) -> Turn {
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let mut system = config.persona.clone();
        if let Some(id) = &config.device {
            let title = tools
                .iter()
                .find(|t| &t.device == id)
                .map_or(String::new(), |t| format!(" ({})", t.device_title));
            system.push_str(&format!(
                "\n\nThe person is using the device {id}{title}. When they do not say which \
                 device, and it can do what they ask (take a photo, show or say something), use it."
            ));
        }
        if let Some(s) = summary.filter(|s| !s.trim().is_empty()) {
            system.push_str("\n\nWhat you remember from earlier conversations:\n");
            system.push_str(s);
        }
        let mut messages = vec![Message::system(system)];
        messages.extend(history);
        messages.push(user.clone());
        let images = user
            .image_urls()
            .into_iter()
            .map(|u| ("the image you sent".to_string(), u.to_string()))
            .collect();
        let mut turn = Turn {
            config,
            tools,
            by_name,
            messages,
            user,
            calls: Vec::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            steps: 0,
            answer: None,
            images,
            attach: Vec::new(),
            asked_vision: false,
        };
        if turn.images.is_empty() {
            turn.ask_model();
        } else {
            turn.look();
        }
        turn
    }

    /// The tools the model is offered.
    pub fn tools(&self) -> &[AgentTool] {
        &self.tools
    }

    /// The conversation so far, as the model sees it.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing to show.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// Whether the turn has ended (answer or error).
    pub fn is_done(&self) -> bool {
        self.answer.is_some()
    }

    /// The final answer, once done.
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }

    /// What to remember of this turn: the request and the answer.
    pub fn to_remember(&self) -> Vec<Message> {
        match &self.answer {
            Some(a) => vec![self.user.clone(), Message::assistant(a.clone())],
            None => Vec::new(),
        }
    }

    fn ask_model(&mut self) {
        self.steps += 1;
        let tools = self
            .tools
            .iter()
            .map(|t| ToolSpec {
                kind: "function".into(),
                function: FunctionSpec {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                },
            })
            .collect();
        self.actions.push_back(Action::Llm(ChatRequest {
            model: self.config.model.clone(),
            messages: self.messages.clone(),
            tools,
            stream: true,
            temperature: Some(0.2),
            device: self.config.device.clone(),
        }));
    }

    /// The conversation now carries this turn's images: someone has to look at them.
    fn look(&mut self) {
        match self.config.vision.clone() {
            Vision::Offline => {
                let measured: Vec<(String, Result<vision::ImageFacts, vision::VisionError>)> = self
                    .images
                    .iter()
                    .map(|(whose, url)| {
                        let facts = vision::parse_data_url(url)
                            .and_then(|(_, data)| vision::measure_base64(data));
                        (whose.clone(), facts)
                    })
                    .collect();
                self.finish(vision::offline_answer(&measured));
            }
            Vision::Model(model) => {
                if self.steps >= self.config.max_steps {
                    self.finish(format!(
                        "I stopped after {} steps, before the vision model could look at the photo.",
                        self.steps
                    ));
                    return;
                }
                self.steps += 1;
                self.asked_vision = true;
                // No tools: the vision model describes, it does not act (many cannot call
                // tools at all), and what it says is the answer.
                self.actions.push_back(Action::Vision(ChatRequest {
                    model,
                    messages: self.messages.clone(),
                    tools: Vec::new(),
                    stream: true,
                    temperature: Some(0.2),
                    device: self.config.device.clone(),
                }));
            }
        }
    }

    /// More text from the model, as it streams.
    pub fn handle_text_delta(&mut self, text: &str) {
        if !self.is_done() && !text.is_empty() {
            self.events.push_back(TurnEvent::TextDelta {
                text: text.to_string(),
            });
        }
    }

    /// The model could not be reached or answered nonsense.
    pub fn handle_llm_error(&mut self, message: &str) {
        if self.is_done() {
            return;
        }
        let who = if self.asked_vision {
            "vision"
        } else {
            "language"
        };
        let message = format!("the {who} model failed: {message}");
        self.events.push_back(TurnEvent::Error {
            message: message.clone(),
        });
        self.answer = Some(format!("Sorry, {message}"));
        self.actions.clear();
    }

    /// The model's whole reply to the latest request.
    pub fn handle_reply(&mut self, now: Timestamp, mut reply: Reply) {
        if self.is_done() {
            return;
        }
        if self.asked_vision {
            let text = reply.content.trim();
            self.messages.push(Message::assistant(text));
            self.finish(if text.is_empty() {
                "The vision model gave no description of the photo.".to_string()
            } else {
                text.to_string()
            });
            return;
        }
        if reply.tool_calls.is_empty() {
            let known: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
            reply.tool_calls = crate::agent::llm::tool_calls_in_text(&reply.content, &known);
            if !reply.tool_calls.is_empty() {
                reply.content.clear();
            }
        }
        self.messages.push(reply.to_message());
        if reply.tool_calls.is_empty() {
            self.finish(reply.content.trim().to_string());
            return;
        }
        self.calls = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(n, call)| Outstanding {
                id: format!("{}s{}c{}", self.config.call_prefix, self.steps, n),
                model_id: call.id.clone(),
                tool: self.by_name.get(&call.function.name).copied(),
                arguments: Value::Null,
                started: None,
                awaiting_confirmation: false,
                result: None,
            })
            .collect();
        for (n, call) in reply.tool_calls.iter().enumerate() {
            let id = self.calls[n].id.clone();
            let Some(index) = self.calls[n].tool else {
                let names: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
                let e = ErrorObject::new(
                    code::INVALID_PARAMS,
                    format!(
                        "there is no tool {:?}; the tools are: {}",
                        call.function.name,
                        names.join(", ")
                    ),
                );
                self.calls[n].result = Some(tool_message_for_error(&e));
                self.events.push_back(TurnEvent::ToolFinished {
                    id,
                    device: String::new(),
                    tool: call.function.name.clone(),
                    ok: false,
                    ms: 0,
                    result: None,
                    error: Some(e),
                });
                continue;
            };
            let t = self.tools[index].clone();
            let args_text = match call.function.arguments.trim() {
                "" => "{}",
                a => a,
            };
            let checked = serde_json::from_str::<Value>(args_text)
                .map_err(|e| ErrorObject::invalid_params(format!("arguments are not JSON: {e}")))
                .and_then(|args| {
                    validate_arguments(&t.input_schema, &args)
                        .map(|()| args)
                        .map_err(|e| e.to_error_object())
                });
            let args = match checked {
                Ok(args) => args,
                Err(e) => {
                    self.refuse(n, e);
                    continue;
                }
            };
            self.calls[n].arguments = args.clone();
            match authorize(t.permission, &t.device, &t.tool, Caller::Agent) {
                Verdict::Refuse(e) => self.refuse(n, e),
                Verdict::AskPerson => {
                    self.calls[n].awaiting_confirmation = true;
                    self.events.push_back(TurnEvent::ConfirmationRequired {
                        id: id.clone(),
                        prompt: format!(
                            "Allow {}: {}{}?",
                            t.device_title,
                            t.tool.replace('_', " "),
                            describe_args(&args)
                        ),
                        device: t.device,
                        tool: t.tool,
                        arguments: args,
                    });
                    self.actions.push_back(Action::AwaitConfirmation { id });
                }
                Verdict::Run => self.start(now, n),
            }
        }
        self.maybe_continue();
    }

    fn start(&mut self, now: Timestamp, n: usize) {
        let call = &mut self.calls[n];
        let Some(index) = call.tool else { return };
        call.started = Some(now);
        let t = &self.tools[index];
        self.events.push_back(TurnEvent::ToolStarted {
            id: call.id.clone(),
            device: t.device.clone(),
            tool: t.tool.clone(),
            arguments: call.arguments.clone(),
        });
        self.actions.push_back(Action::CallTool {
            id: call.id.clone(),
            device: t.device.clone(),
            tool: t.tool.clone(),
            arguments: call.arguments.clone(),
        });
    }

    /// A call that never reaches the device (bad arguments, denied, declined).
    fn refuse(&mut self, n: usize, e: ErrorObject) {
        let call = &mut self.calls[n];
        call.result = Some(tool_message_for_error(&e));
        let (device, tool) = call
            .tool
            .map(|i| (self.tools[i].device.clone(), self.tools[i].tool.clone()))
            .unwrap_or_default();
        self.events.push_back(TurnEvent::ToolFinished {
            id: call.id.clone(),
            device,
            tool,
            ok: false,
            ms: 0,
            result: None,
            error: Some(e),
        });
    }

    /// The ids of calls waiting for a person.
    pub fn awaiting_confirmation(&self) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| c.awaiting_confirmation)
            .map(|c| c.id.as_str())
            .collect()
    }

    /// The person's answer to a confirmation. Returns false if no call waits under `id`.
    pub fn handle_confirmation(&mut self, now: Timestamp, id: &str, approved: bool) -> bool {
        let Some(n) = self
            .calls
            .iter()
            .position(|c| c.id == id && c.awaiting_confirmation)
        else {
            return false;
        };
        self.calls[n].awaiting_confirmation = false;
        if approved {
            self.start(now, n);
        } else {
            self.refuse(
                n,
                ErrorObject::new(code::DENIED, "declined by the user; nothing was done"),
            );
            self.maybe_continue();
        }
        true
    }

    /// A tool call's outcome: the device's `CallToolResult`, or the Hub's error
    /// (`-32010` offline, `-32011` timeout, `-32013` broker, `-32602` arguments…).
    pub fn handle_tool_result(
        &mut self,
        now: Timestamp,
        id: &str,
        outcome: Result<Value, ErrorObject>,
    ) {
        let Some(call) = self
            .calls
            .iter_mut()
            .find(|c| c.id == id && c.started.is_some() && c.result.is_none())
        else {
            return;
        };
        let ms = call
            .started
            .map_or(0, |s| now.saturating_since(s).as_millis() as u64);
        let (device, tool) = call
            .tool
            .map(|i| (self.tools[i].device.clone(), self.tools[i].tool.clone()))
            .unwrap_or_default();
        let event = match outcome {
            Ok(result) => {
                let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
                call.result = Some(tool_message_for_result(&result));
                if !is_error {
                    let whose = call
                        .tool
                        .map_or_else(|| device.clone(), |i| self.tools[i].device_title.clone());
                    for url in image_urls(&result) {
                        self.images.push((whose.clone(), url.clone()));
                        self.attach.push(url);
                    }
                }
                TurnEvent::ToolFinished {
                    id: id.to_string(),
                    device,
                    tool,
                    ok: !is_error,
                    ms,
                    result: Some(result),
                    error: None,
                }
            }
            Err(e) => {
                call.result = Some(tool_message_for_error(&e));
                TurnEvent::ToolFinished {
                    id: id.to_string(),
                    device,
                    tool,
                    ok: false,
                    ms,
                    result: None,
                    error: Some(e),
                }
            }
        };
        self.events.push_back(event);
        self.maybe_continue();
    }

    /// Once every call of the reply has an outcome: hand the results to the model.
    fn maybe_continue(&mut self) {
        if self.is_done() || self.calls.iter().any(|c| c.result.is_none()) {
            return;
        }
        for c in std::mem::take(&mut self.calls) {
            self.messages
                .push(Message::tool(c.model_id, c.result.unwrap_or_default()));
        }
        if !self.attach.is_empty() {
            let n = self.attach.len();
            self.messages.push(Message::user_with_images(
                format!(
                    "{} from the tool result{} above. Answer my request from {}: {}",
                    if n == 1 { "The photo" } else { "The photos" },
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" },
                    self.user.text_content()
                ),
                std::mem::take(&mut self.attach),
            ));
            self.look();
            return;
        }
        if self.steps >= self.config.max_steps {
            self.finish(format!(
                "I stopped after {} steps without a final answer; the tool results are above.",
                self.steps
            ));
            return;
        }
        self.ask_model();
    }

    fn finish(&mut self, text: String) {
        let text = if text.is_empty() {
            "Done.".to_string()
        } else {
            text
        };
        self.events.push_back(TurnEvent::Answer {
            text: text.clone(),
            steps: self.steps,
        });
        self.answer = Some(text);
        self.actions.clear();
    }
}

/// The tool message for a device's result: `{"ok":true,"result":…}` with the structured
/// content when there is one (or the text), `{"ok":false,"error":…}` for `isError`.
pub fn tool_message_for_result(result: &Value) -> String {
    let text: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let code = result
            .pointer("/_meta/axon~1error-code")
            .cloned()
            .unwrap_or(Value::Null);
        return json!({"ok": false, "error": text.join(" "), "code": code}).to_string();
    }
    let body = match result.get("structuredContent") {
        Some(s) if !s.is_null() => s.clone(),
        _ => Value::String(text.join(" ")),
    };
    match image_urls(result).len() {
        0 => json!({"ok": true, "result": body}).to_string(),
        n => json!({"ok": true, "result": body, "images": format!("{n} attached in the next message")})
            .to_string(),
    }
}

/// The images of a `CallToolResult` (`{"type":"image","data":…,"mimeType":"image/…"}`
/// blocks) as data URLs.
pub fn image_urls(result: &Value) -> Vec<String> {
    result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("image"))
        .filter_map(|b| {
            let mime = b.get("mimeType").and_then(Value::as_str)?;
            let data = b.get("data").and_then(Value::as_str)?;
            mime.starts_with("image/")
                .then(|| vision::data_url(mime, data))
        })
        .collect()
}

/// The tool message for a call that failed before or instead of the device answering.
pub fn tool_message_for_error(e: &ErrorObject) -> String {
    json!({"ok": false, "error": e.message, "code": e.code}).to_string()
}

fn describe_args(args: &Value) -> String {
    match args.as_object() {
        Some(m) if !m.is_empty() => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!(" ({})", parts.join(", "))
        }
        _ => String::new(),
    }
}
