//! LLM wire types: the OpenAI-compatible Chat Completions format that OpenAI, DeepSeek,
//! Qwen/DashScope, Doubao, Ollama, llama.cpp and the local-ai server all speak.
//!
//! Owns the request and message shapes, reading a streamed answer (`text/event-stream` of
//! `chat.completion.chunk`s, tool-call fragments joined by index) and a whole one, and finding
//! tool calls that a model wrote as JSON into its text. It never sends anything: the worker's
//! provider does the HTTP.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's id for the call, echoed in the tool message.
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Name and arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

/// The function part of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The LLM-side tool name (see `agent::turn::llm_tool_name`).
    pub name: String,
    /// The arguments as a JSON text (OpenAI sends a string, not an object).
    #[serde(default)]
    pub arguments: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// Text, or an array of parts (text and `image_url`) for a user message with an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// The assistant's tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a tool message: which call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    /// A user message with an image (a `data:` or `https:` URL).
    pub fn user_with_image(text: impl Into<String>, image_url: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: Some(json!([
                {"type": "text", "text": text.into()},
                {"type": "image_url", "image_url": {"url": image_url.into()}},
            ])),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }

    /// A tool result.
    pub fn tool(call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            tool_call_id: Some(call_id.into()),
            ..Self::text(Role::Tool, text)
        }
    }

    fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: Some(Value::String(text.into())),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A user message with several images after the text.
    pub fn user_with_images(
        text: impl Into<String>,
        image_urls: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut parts = vec![json!({"type": "text", "text": text.into()})];
        parts.extend(
            image_urls
                .into_iter()
                .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
        );
        Message {
            role: Role::User,
            content: Some(Value::Array(parts)),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The URLs of its `image_url` parts.
    pub fn image_urls(&self) -> Vec<&str> {
        match &self.content {
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
                .filter_map(|p| p.pointer("/image_url/url").and_then(Value::as_str))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether it has an `image_url` part.
    pub fn carries_image(&self) -> bool {
        !self.image_urls().is_empty()
    }

    /// The text of the message (the text parts joined, for a multi-part one).
    pub fn text_content(&self) -> String {
        match &self.content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name, description, JSON Schema.
    pub function: FunctionSpec,
}

/// The function part of a [`ToolSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// `^[a-zA-Z0-9_-]{1,64}$`.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Input JSON Schema.
    pub parameters: Value,
}

/// A Chat Completions request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools it may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Stream the answer.
    pub stream: bool,
    /// Low, for device control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// The device the person is using, for the offline model (a real model reads it in the
    /// system message). Never sent.
    #[serde(skip)]
    pub device: Option<String>,
}

impl ChatRequest {
    /// Whether any message carries an `image_url` part.
    pub fn carries_image(&self) -> bool {
        self.messages.iter().any(Message::carries_image)
    }
}

/// The model's whole answer to one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    /// Text.
    pub content: String,
    /// Tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `tool_calls`, `length`…
    pub finish_reason: Option<String>,
}

impl Reply {
    /// The assistant message to keep in the conversation.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: (!self.content.is_empty() || self.tool_calls.is_empty())
                .then(|| Value::String(self.content.clone())),
            tool_calls: self.tool_calls.clone(),
            tool_call_id: None,
        }
    }
}

/// What went wrong talking to a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The endpoint answered with an error object.
    #[error("the model endpoint refused the request: {0}")]
    Refused(String),
    /// The answer was not the Chat Completions format.
    #[error("the model endpoint's answer is not OpenAI Chat Completions JSON: {0}")]
    Malformed(String),
    /// The stream ended before `[DONE]` or a finish reason.
    #[error("the model's stream ended early")]
    Truncated,
}

/// Something read from a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More answer text.
    TextDelta(String),
}

/// Reads a streamed answer, chunk by chunk, whatever the network's chunk boundaries.
#[derive(Debug, Default)]
pub struct StreamReader {
    buf: Vec<u8>,
    reply: Reply,
    // Tool-call fragments by index: (id, name, arguments).
    calls: Vec<(String, String, String)>,
    done: bool,
    error: Option<LlmError>,
}

impl StreamReader {
    /// A reader for one answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes of the response body; returns the text deltas they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            self.line(line.trim_end_matches(['\r', '\n']), &mut out);
        }
        out
    }

    /// Whether `[DONE]` (or an error) was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn line(&mut self, line: &str, out: &mut Vec<StreamEvent>) {
        let Some(data) = line.strip_prefix("data:") else {
            return; // comments, `event:` lines, blank separators
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(LlmError::Malformed(format!("{e} in {data:.80}")));
                self.done = true;
                return;
            }
        };
        if let Some(err) = chunk.get("error") {
            self.error = Some(LlmError::Refused(error_message(err)));
            self.done = true;
            return;
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return; // usage-only chunks
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.reply.finish_reason = Some(reason.to_string());
        }
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        let Some(delta) = delta else { return };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            if !text.is_empty() {
                self.reply.content.push_str(text);
                out.push(StreamEvent::TextDelta(text.to_string()));
            }
        }
        for (n, call) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .map_or(n, |i| i as usize)
                .min(63);
            while self.calls.len() <= index {
                self.calls.push(Default::default());
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.0 = id.to_string();
            }
            if let Some(f) = call.get("function") {
                if let Some(name) = f.get("name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                match f.get("arguments") {
                    Some(Value::String(a)) => slot.2.push_str(a),
                    // Some servers (Ollama) send the arguments as an object.
                    Some(v @ Value::Object(_)) => slot.2.push_str(&v.to_string()),
                    _ => {}
                }
            }
        }
    }

    /// The whole answer, once the body has ended.
    pub fn finish(mut self) -> Result<Reply, LlmError> {
        if !self.buf.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).to_string();
            let mut sink = Vec::new();
            self.line(rest.trim_end(), &mut sink);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.done && self.reply.finish_reason.is_none() {
            return Err(LlmError::Truncated);
        }
        let mut reply = self.reply;
        reply.tool_calls = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, (_, name, _))| !name.is_empty())
            .map(|(i, (id, name, arguments))| ToolCall {
                id: if id.is_empty() {
                    format!("call_{i}")
                } else {
                    id
                },
                kind: function_type(),
                function: FunctionCall { name, arguments },
            })
            .collect();
        Ok(reply)
    }
}

fn error_message(err: &Value) -> String {
    err.get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| err.to_string())
}

/// Reads a whole (non-streamed) Chat Completions answer.
pub fn parse_completion(body: &[u8]) -> Result<Reply, LlmError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| LlmError::Malformed(e.to_string()))?;
    if let Some(err) = v.get("error") {
        return Err(LlmError::Refused(error_message(err)));
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| LlmError::Malformed("no choices".into()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| LlmError::Malformed("no message in the first choice".into()))?;
    let mut reply = Reply {
        content: message
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        tool_calls: Vec::new(),
    };
    for (i, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = call.get("function").cloned().unwrap_or(Value::Null);
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        reply.tool_calls.push(ToolCall {
            id: call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("call_{i}"), str::to_string),
            kind: function_type(),
            function: FunctionCall {
                name: name.to_string(),
                arguments: match f.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "{}".into(),
                },
            },
        });
    }
    Ok(reply)
}

/// Reads a Workers AI text-generation answer: `{"response": "...", "tool_calls": [{"name":…,
/// "arguments":{…}}]}` (some models nest the call in `function`).
pub fn parse_workers_ai(body: &[u8]) -> Result<Reply, LlmError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| LlmError::Malformed(e.to_string()))?;
    if !v.is_object() {
        return Err(LlmError::Malformed("expected an object".into()));
    }
    let tool_calls = v
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, c)| {
            let f = c.get("function").unwrap_or(c);
            Some(ToolCall {
                id: format!("wai_{i}"),
                kind: function_type(),
                function: FunctionCall {
                    name: f.get("name")?.as_str()?.to_string(),
                    arguments: match f.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "{}".into(),
                    },
                },
            })
        })
        .collect();
    Ok(Reply {
        content: v
            .get("response")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        tool_calls,
        finish_reason: Some("stop".into()),
    })
}

/// Tool calls a model wrote into its text instead of `tool_calls` (small local models do:
/// a bare JSON object, a fenced ```json block, or Qwen's `<tool_call>…</tool_call>`), in the
/// shapes `{"name":…,"arguments":…}`, `{"tool":…,"parameters":…}` or `{"function":{…}}`.
/// Only names in `known` count, so an answer that merely shows JSON is left alone.
pub fn tool_calls_in_text(text: &str, known: &[&str]) -> Vec<ToolCall> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let used = stream.byte_offset();
                for v in match v {
                    Value::Array(items) => items,
                    v => vec![v],
                } {
                    if let Some(call) = call_from_value(&v, known, out.len()) {
                        out.push(call);
                    }
                }
                i += used.max(1);
            }
            _ => i += 1,
        }
    }
    out
}

fn call_from_value(v: &Value, known: &[&str], n: usize) -> Option<ToolCall> {
    let v = v.get("function").filter(|f| f.is_object()).unwrap_or(v);
    let name = v
        .get("name")
        .or_else(|| v.get("tool"))
        .and_then(Value::as_str)?;
    if !known.contains(&name) {
        return None;
    }
    let args = v
        .get("arguments")
        .or_else(|| v.get("parameters"))
        .or_else(|| v.get("args"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let arguments = match args {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Some(ToolCall {
        id: format!("text_call_{n}"),
        kind: function_type(),
        function: FunctionCall {
            name: name.to_string(),
            arguments,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_split_anywhere_gives_the_same_reply() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Sure\"}}]}\n\n",
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"kitchen-lamp__set_power\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"on\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" true}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for cut in 0..body.len() {
            let mut r = StreamReader::new();
            let mut text = String::new();
            for piece in [&body.as_bytes()[..cut], &body.as_bytes()[cut..]] {
                for StreamEvent::TextDelta(t) in r.push(piece) {
                    text.push_str(&t);
                }
            }
            assert!(r.is_done());
            let reply = r.finish().unwrap();
            assert_eq!(text, "Sure");
            assert_eq!(reply.content, "Sure");
            assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
            assert_eq!(reply.tool_calls.len(), 1);
            assert_eq!(reply.tool_calls[0].id, "call_a");
            assert_eq!(reply.tool_calls[0].function.name, "kitchen-lamp__set_power");
            assert_eq!(reply.tool_calls[0].function.arguments, "{\"on\": true}");
        }
    }

    #[test]
    fn a_stream_that_stops_early_is_an_error_not_an_empty_answer() {
        let mut r = StreamReader::new();
        r.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n");
        assert_eq!(r.finish(), Err(LlmError::Truncated));
    }

    #[test]
    fn an_error_in_the_stream_is_reported() {
        let mut r = StreamReader::new();
        r.push(b"data: {\"error\":{\"message\":\"model not found\"}}\n\n");
        assert_eq!(r.finish(), Err(LlmError::Refused("model not found".into())));
        let mut r = StreamReader::new();
        r.push(b"data: {not json\n\n");
        assert!(matches!(r.finish(), Err(LlmError::Malformed(_))));
    }

    #[test]
    fn whole_answers_with_object_arguments_are_read() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lamp__set_power","arguments":{"on":true}}}]},"finish_reason":"tool_calls"}]}"#;
        let r = parse_completion(body).unwrap();
        assert_eq!(r.tool_calls[0].function.arguments, r#"{"on":true}"#);
        assert_eq!(
            parse_completion(br#"{"error":{"message":"bad key"}}"#),
            Err(LlmError::Refused("bad key".into()))
        );
        assert!(parse_completion(b"<html>").is_err());
    }

    #[test]
    fn tool_calls_written_as_text_are_found_only_for_known_tools() {
        let known = ["kitchen-lamp__set_power"];
        let fenced = "Sure!\n```json\n{\"name\": \"kitchen-lamp__set_power\", \"arguments\": {\"on\": true}}\n```";
        let calls = tool_calls_in_text(fenced, &known);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function.arguments, r#"{"on":true}"#);
        let qwen = "<tool_call>\n{\"function\": {\"name\": \"kitchen-lamp__set_power\", \"parameters\": \"{\\\"on\\\":false}\"}}\n</tool_call>";
        assert_eq!(
            tool_calls_in_text(qwen, &known)[0].function.arguments,
            r#"{"on":false}"#
        );
        assert!(tool_calls_in_text("Use {\"name\": \"rm_rf\"} carefully", &known).is_empty());
        assert!(tool_calls_in_text("{ unbalanced", &known).is_empty());
    }

    #[test]
    fn workers_ai_answers_are_read_with_object_arguments() {
        let r = parse_workers_ai(
            br#"{"response":null,"tool_calls":[{"name":"kitchen-lamp__set_power","arguments":{"on":true}}]}"#,
        )
        .unwrap();
        assert_eq!(r.tool_calls[0].function.name, "kitchen-lamp__set_power");
        assert_eq!(r.tool_calls[0].function.arguments, r#"{"on":true}"#);
        assert_eq!(r.content, "");
        assert_eq!(
            parse_workers_ai(br#"{"response":"hi"}"#).unwrap().content,
            "hi"
        );
        assert!(parse_workers_ai(b"[]").is_err());
    }

    #[test]
    fn messages_serialise_as_the_wire_format() {
        let m = Message::tool("c1", "ok");
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"role":"tool","content":"ok","tool_call_id":"c1"})
        );
        let img = Message::user_with_image("what is this?", "data:image/jpeg;base64,AAAA");
        assert_eq!(img.text_content(), "what is this?");
        let reply = Reply {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c".into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: "x".into(),
                    arguments: "{}".into(),
                },
            }],
            finish_reason: None,
        };
        assert_eq!(
            serde_json::to_value(reply.to_message()).unwrap(),
            json!({"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"x","arguments":"{}"}}]})
        );
    }
}
