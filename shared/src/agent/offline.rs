//! The offline model: answers the agent's Chat Completions requests with no network and no
//! keys, so the whole loop runs out of the box.
//!
//! Owns two steps of a turn: a person's request → tool calls (through [`planner`]), and tool
//! results → a short answer in plain words. It reads the same messages and tools a real model
//! gets and answers in the same [`Reply`] shape, so the turn cannot tell the difference. It
//! never invents a device or a result: what it says comes from the registry and the devices.

use serde_json::Value;

use crate::agent::llm::{FunctionCall, Message, Reply, Role, ToolCall};
use crate::agent::planner::{self, Intent, Plan};
use crate::agent::turn::AgentTool;
use crate::mcp::client::DeviceInfo;

/// The offline answer to `messages`, given the registry and the tools the turn offers.
pub fn respond<'a>(
    messages: &[Message],
    devices: impl IntoIterator<Item = &'a DeviceInfo>,
    tools: &[AgentTool],
) -> Reply {
    respond_for(messages, devices, tools, None)
}

/// [`respond`] for a person using the device `preferred` (a request's
/// [`ChatRequest::device`](crate::agent::llm::ChatRequest::device)).
pub fn respond_for<'a>(
    messages: &[Message],
    devices: impl IntoIterator<Item = &'a DeviceInfo>,
    tools: &[AgentTool],
    preferred: Option<&str>,
) -> Reply {
    let Some(user_at) = messages.iter().rposition(|m| m.role == Role::User) else {
        return text_reply("I'm listening: ask me to do something with your devices.");
    };
    let text = messages[user_at].text_content();
    let plan = planner::plan_for(&text, devices, preferred);
    let after = &messages[user_at + 1..];
    if after.is_empty() {
        return match plan {
            Plan::NotUnderstood { reply } => text_reply(&reply),
            Plan::Calls { calls, .. } => {
                let tool_calls: Vec<ToolCall> = calls
                    .iter()
                    .filter_map(|c| {
                        let t = tools
                            .iter()
                            .find(|t| t.device == c.device && t.tool == c.tool)?;
                        Some((t, c))
                    })
                    .enumerate()
                    .map(|(i, (t, c))| ToolCall {
                        id: format!("offline_{i}"),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: t.name.clone(),
                            arguments: c.arguments.to_string(),
                        },
                    })
                    .collect();
                if tool_calls.is_empty() {
                    text_reply("None of the devices that could do that are ready right now.")
                } else {
                    Reply {
                        content: String::new(),
                        tool_calls,
                        finish_reason: Some("tool_calls".into()),
                    }
                }
            }
        };
    }
    let intent = match plan {
        Plan::Calls { intent, .. } => Some(intent),
        Plan::NotUnderstood { .. } => None,
    };
    // Which tool each call id went to, from the assistant messages after the request.
    let mut sentences = Vec::new();
    for m in after {
        if m.role != Role::Tool {
            continue;
        }
        let call = after
            .iter()
            .flat_map(|a| a.tool_calls.iter())
            .find(|c| Some(&c.id) == m.tool_call_id.as_ref());
        let tool = call.and_then(|c| tools.iter().find(|t| t.name == c.function.name));
        let outcome: Value = serde_json::from_str(&m.text_content()).unwrap_or(Value::Null);
        sentences.push(phrase(intent, tool, &outcome));
    }
    text_reply(&sentences.join(" "))
}

fn text_reply(text: &str) -> Reply {
    Reply {
        content: text.to_string(),
        tool_calls: Vec::new(),
        finish_reason: Some("stop".into()),
    }
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 => format!("{n:.0}"),
        Some(n) => format!("{n:.1}"),
        None => v.to_string(),
    }
}

/// One sentence about one call's outcome.
fn phrase(intent: Option<Intent>, tool: Option<&AgentTool>, outcome: &Value) -> String {
    let title = tool.map_or_else(|| "That device".to_string(), |t| t.device_title.clone());
    if outcome.get("ok").and_then(Value::as_bool) != Some(true) {
        let error = outcome
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("it did not answer");
        let code = outcome.get("code").and_then(Value::as_i64);
        return match code {
            Some(crate::jsonrpc::code::DENIED) if error.contains("declined") => {
                format!("OK, I left the {} as it was.", title.to_lowercase())
            }
            Some(crate::jsonrpc::code::DENIED) => {
                format!(
                    "I'm not allowed to do that on the {}.",
                    title.to_lowercase()
                )
            }
            Some(crate::jsonrpc::code::DEVICE_OFFLINE) => format!("{title} is offline."),
            Some(crate::jsonrpc::code::REQUEST_TIMEOUT) => {
                format!("{title} did not answer in time.")
            }
            Some(crate::jsonrpc::code::BROKER_UNAVAILABLE) => {
                "I can't reach the devices right now (the broker is down).".to_string()
            }
            _ => format!("{title} couldn't do it: {error}."),
        };
    }
    let state = outcome.get("result").cloned().unwrap_or(Value::Null);
    let field = |k: &str| state.get(k).filter(|v| !v.is_null());
    match intent {
        Some(Intent::TurnOn | Intent::TurnOff) => {
            let on = field("on")
                .and_then(Value::as_bool)
                .or_else(|| field("mode").map(|m| m != "off"))
                .unwrap_or(intent == Some(Intent::TurnOn));
            format!("{title} is {}.", if on { "on" } else { "off" })
        }
        Some(Intent::Set) => {
            if let Some(t) = field("target_c") {
                format!("{title} is set to {} °C.", number(t))
            } else if let Some(l) = field("brightness").or_else(|| field("level")) {
                format!("{title} is at {}%.", number(l))
            } else if let Some(v) = field("volume") {
                format!("{title}'s volume is {}%.", number(v))
            } else {
                format!("{title} is set.")
            }
        }
        Some(Intent::Expression) => format!(
            "{title} looks {} now.",
            field("expression")
                .and_then(Value::as_str)
                .unwrap_or("different")
        ),
        // An image is answered by the turn (a vision model or the measured facts) before this
        // is asked; a result here had none.
        Some(Intent::Photo) => format!("{title} answered without a photo."),
        Some(Intent::Lock | Intent::Unlock) => {
            let locked = field("locked")
                .and_then(Value::as_bool)
                .unwrap_or(intent == Some(Intent::Lock));
            format!("{title} is {}.", if locked { "locked" } else { "unlocked" })
        }
        _ => describe_state(&title, tool.and_then(|t| t.room.as_deref()), &state),
    }
}

fn describe_state(title: &str, room: Option<&str>, state: &Value) -> String {
    if let Some(t) = state.get("temperature_c").filter(|v| v.is_number()) {
        let place = room.map_or_else(
            || format!("at the {}", title.to_lowercase()),
            |r| format!("in the {}", r.replace('-', " ")),
        );
        let mut s = format!("It's {} °C {place}", number(t));
        if let Some(h) = state.get("humidity_pct").filter(|v| v.is_number()) {
            s.push_str(&format!(", {}% humidity", number(h)));
        }
        if let Some(target) = state.get("target_c").filter(|v| v.is_number()) {
            s.push_str(&format!(" (set to {} °C)", number(target)));
        }
        s.push('.');
        return s;
    }
    let Some(map) = state.as_object() else {
        return format!("{title}: {}", state.as_str().unwrap_or("done"));
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
        .map(|(k, v)| match v {
            Value::Bool(b) => format!("{} {}", k.replace('_', " "), if *b { "yes" } else { "no" }),
            Value::String(s) => format!("{} {s}", k.replace('_', " ")),
            v => format!("{} {}", k.replace('_', " "), number(v)),
        })
        .collect();
    format!("{title}: {}.", parts.join(", "))
}
