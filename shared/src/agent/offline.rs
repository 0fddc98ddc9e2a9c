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
use crate::agent::wording;
use crate::protocol::mcp::client::DeviceInfo;

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
        sentences.push(phrase(intent, tool, &outcome, &text));
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
/// `question` is the person's request, so that a reading tells what was asked first.
fn phrase(
    intent: Option<Intent>,
    tool: Option<&AgentTool>,
    outcome: &Value,
    question: &str,
) -> String {
    let title = tool.map_or_else(|| "That device".to_string(), |t| t.device_title.clone());
    if outcome.get("ok").and_then(Value::as_bool) != Some(true) {
        let error = outcome
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("it did not answer");
        let code = outcome.get("code").and_then(Value::as_i64);
        return match code {
            Some(crate::protocol::jsonrpc::code::DENIED) if error.contains("declined") => {
                format!("OK, I left the {} as it was.", title.to_lowercase())
            }
            Some(crate::protocol::jsonrpc::code::DENIED) => {
                format!(
                    "I'm not allowed to do that on the {}.",
                    title.to_lowercase()
                )
            }
            Some(crate::protocol::jsonrpc::code::DEVICE_OFFLINE) => format!("{title} is offline."),
            Some(crate::protocol::jsonrpc::code::REQUEST_TIMEOUT) => {
                format!("{title} did not answer in time.")
            }
            Some(crate::protocol::jsonrpc::code::BROKER_UNAVAILABLE) => {
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
        _ => wording::describe_state(
            &title,
            tool.and_then(|t| t.room.as_deref()),
            &state,
            question,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::turn::{agent_tools, tool_message_for_result};
    use crate::protocol::mcp::types::CallToolResult;
    use crate::protocol::tool::SitePolicy;
    use serde_json::json;

    /// A ready device whose only tool is `get_state`.
    fn device(id: &str, kind: &str, room: &str, title: &str) -> DeviceInfo {
        crate::agent::test_home::device(id, kind, room, title, &["get_state"])
    }

    /// The offline model's answer to `question` when each device it calls answers `state`.
    fn answer(devices: &[DeviceInfo], question: &str, state: Value) -> String {
        let tools = agent_tools(devices, &SitePolicy::new());
        let mut messages = vec![Message::user(question)];
        let calls = respond(&messages, devices, &tools);
        assert!(!calls.tool_calls.is_empty(), "{calls:?}");
        messages.push(calls.to_message());
        for c in &calls.tool_calls {
            let result = serde_json::to_value(CallToolResult::structured(state.clone())).unwrap();
            messages.push(Message::tool(&c.id, tool_message_for_result(&result)));
        }
        respond(&messages, devices, &tools).content
    }

    #[test]
    fn the_thermostat_answers_in_words_not_keys() {
        // Issue 14: this read "Living room thermostat: current c 21, humidity pct 44.3, mode
        // auto, target c 21."
        let home = [device(
            "living-thermostat",
            "thermostat",
            "living room",
            "Living room thermostat",
        )];
        let thermostat =
            json!({"current_c": 21.0, "target_c": 21.0, "mode": "auto", "humidity_pct": 44.3});
        assert_eq!(
            answer(
                &home,
                "what is the temperature in the living room?",
                thermostat.clone()
            ),
            "It's 21 °C in the living room, 44% humidity."
        );
        assert_eq!(
            answer(&home, "how is the living room thermostat?", thermostat),
            "It's 21 °C in the living room, 44% humidity, set to 21 °C, mode auto."
        );
    }

    #[test]
    fn a_plug_and_a_lock_answer_what_was_asked_first() {
        let home = [
            device("tv-plug", "plug", "living room", "TV plug"),
            device("front-door", "lock", "hall", "Front door lock"),
        ];
        assert_eq!(
            answer(
                &home,
                "what's the tv plug using?",
                json!({"on": true, "power_w": 61.4, "energy_wh": 12.3})
            ),
            "TV plug is using 61 W, switched on."
        );
        assert_eq!(
            answer(
                &home,
                "is the front door locked?",
                json!({"locked": false, "battery_pct": 79.6})
            ),
            "Front door lock is unlocked, 80% battery."
        );
    }
}
