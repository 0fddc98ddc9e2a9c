//! Agent turns end to end inside axon-core: the offline model, permissions, argument checks,
//! the step cap, and a model that writes its tool call as text.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use axon_core::agent::llm::{FunctionCall, Message, Reply, ToolCall};
use axon_core::agent::offline;
use axon_core::agent::turn::{agent_tools, llm_tool_name, Action, Turn, TurnConfig, TurnEvent};
use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::protocol::mcp::client::DeviceInfo;
use axon_core::protocol::mcp::types::CallToolResult;
use axon_core::protocol::tool::SitePolicy;
use axon_core::time::Timestamp;
use common::home::{device, tool, ToolExt};
use serde_json::{json, Value};

fn home() -> Vec<DeviceInfo> {
    let power = json!({"type":"object","properties":{"on":{"type":"boolean"}},"required":["on"],"additionalProperties":false});
    // Every tool states its read-only hint, as device-sim's boards do.
    let t = |name: &str| tool(name).read_only(name == "get_state");
    vec![
        device(
            "kitchen-lamp",
            "lamp",
            "kitchen",
            "Kitchen lamp",
            vec![t("set_power").args(power.clone()), t("get_state")],
        ),
        device(
            "living-sensor",
            "sensor",
            "living room",
            "Living room sensor",
            vec![t("get_state")],
        ),
        device(
            "front-door",
            "lock",
            "hall",
            "Front door lock",
            vec![t("lock"), t("unlock").permission("confirm")],
        ),
        device(
            "kitchen-plug",
            "plug",
            "kitchen",
            "Coffee machine plug",
            vec![t("set_power").args(power)],
        ),
    ]
}

/// A board's answer to a call, like device-sim's profiles give.
fn board(device: &str, tool: &str, args: &Value) -> Result<Value, ErrorObject> {
    let r = match (device, tool) {
        ("kitchen-lamp" | "kitchen-plug", "set_power") => {
            CallToolResult::structured(json!({"on": args["on"], "brightness": 80}))
        }
        ("living-sensor", "get_state") => {
            CallToolResult::structured(json!({"temperature_c": 21.5, "humidity_pct": 40}))
        }
        ("front-door", "unlock") => CallToolResult::structured(json!({"locked": false})),
        ("front-door", "lock") => CallToolResult::structured(json!({"locked": true})),
        _ => return Err(ErrorObject::new(code::DEVICE_OFFLINE, "unknown")),
    };
    Ok(serde_json::to_value(r).unwrap())
}

struct Run {
    events: Vec<TurnEvent>,
    sent: Vec<(String, String, Value)>,
    answer: String,
}

/// Drives a turn with the offline model and the boards above; `confirm` answers
/// confirmations.
fn run(turn: &mut Turn, devices: &[DeviceInfo], confirm: Option<bool>) -> Run {
    let mut now = Timestamp::from_millis(1_790_000_000_000);
    let mut out = Run {
        events: Vec::new(),
        sent: Vec::new(),
        answer: String::new(),
    };
    for _ in 0..50 {
        while let Some(e) = turn.poll_event() {
            out.events.push(e);
        }
        let Some(action) = turn.poll_action() else {
            break;
        };
        now = now + Duration::from_millis(7);
        match action {
            Action::Llm(req) => {
                let reply = offline::respond(&req.messages, devices, turn.tools());
                turn.handle_reply(now, reply);
            }
            Action::CallTool {
                id,
                device,
                tool,
                arguments,
            } => {
                let r = board(&device, &tool, &arguments);
                out.sent.push((device, tool, arguments));
                turn.handle_tool_result(now + Duration::from_millis(5), &id, r);
            }
            Action::AwaitConfirmation { id } => {
                if let Some(ok) = confirm {
                    assert!(turn.handle_confirmation(now, &id, ok));
                }
            }
            Action::Vision(_) => panic!("no camera in this home (see tests/vision.rs)"),
        }
    }
    while let Some(e) = turn.poll_event() {
        out.events.push(e);
    }
    out.answer = turn.answer().unwrap_or_default().to_string();
    out
}

fn new_turn(devices: &[DeviceInfo], policy: &SitePolicy, text: &str) -> Turn {
    Turn::new(
        TurnConfig::default(),
        agent_tools(devices, policy),
        None,
        Vec::new(),
        Message::user(text),
    )
}

#[test]
fn turn_on_the_kitchen_lamp_calls_the_tool_and_answers() {
    let devices = home();
    let mut turn = new_turn(&devices, &SitePolicy::new(), "turn on the kitchen lamp");
    let r = run(&mut turn, &devices, None);
    assert_eq!(
        r.sent,
        vec![(
            "kitchen-lamp".into(),
            "set_power".into(),
            json!({"on": true})
        )]
    );
    assert_eq!(r.answer, "Kitchen lamp is on.");
    assert!(
        matches!(&r.events[0], TurnEvent::ToolStarted { device, .. } if device == "kitchen-lamp")
    );
    // From the model's reply (t+7) to the board's result (t+7+7+5).
    assert!(
        matches!(
            &r.events[1],
            TurnEvent::ToolFinished {
                ok: true,
                ms: 12,
                ..
            }
        ),
        "{:?}",
        r.events[1]
    );
    assert!(matches!(&r.events[2], TurnEvent::Answer { steps: 2, .. }));
    assert_eq!(turn.to_remember().len(), 2);
}

#[test]
fn a_question_reads_the_sensor_and_answers_with_its_values() {
    let devices = home();
    let mut turn = new_turn(
        &devices,
        &SitePolicy::new(),
        "what's the temperature in the living room?",
    );
    let r = run(&mut turn, &devices, None);
    assert_eq!(r.sent[0].0, "living-sensor");
    assert_eq!(r.answer, "It's 21.5 °C in the living room, 40% humidity.");
}

#[test]
fn a_confirm_tool_waits_for_the_person_and_runs_only_when_approved() {
    let devices = home();
    let mut turn = new_turn(&devices, &SitePolicy::new(), "unlock the front door");
    let waiting = run(&mut turn, &devices, None);
    assert!(waiting.sent.is_empty(), "nothing runs before approval");
    assert!(!turn.is_done());
    assert!(waiting.events.iter().any(|e| matches!(e,
        TurnEvent::ConfirmationRequired { device, tool, prompt, .. }
            if device == "front-door" && tool == "unlock" && prompt.contains("Front door lock"))));
    assert_eq!(turn.awaiting_confirmation().len(), 1);
    let id = turn.awaiting_confirmation()[0].to_string();
    assert!(!turn.handle_confirmation(Timestamp::from_millis(0), "nope", true));
    assert!(turn.handle_confirmation(Timestamp::from_millis(0), &id, true));
    let approved = run(&mut turn, &devices, None);
    assert_eq!(approved.sent[0].1, "unlock");
    assert_eq!(approved.answer, "Front door lock is unlocked.");

    let mut turn = new_turn(&devices, &SitePolicy::new(), "unlock the front door");
    let declined = run(&mut turn, &devices, Some(false));
    assert!(declined.sent.is_empty());
    assert_eq!(declined.answer, "OK, I left the front door lock as it was.");
    assert!(declined.events.iter().any(|e| matches!(e,
        TurnEvent::ToolFinished { ok: false, error: Some(e), .. } if e.code == code::DENIED)));
}

#[test]
fn a_denied_tool_never_reaches_the_device() {
    let devices = home();
    let policy = SitePolicy::parse("kitchen-plug.set_power=deny").unwrap();
    let mut turn = new_turn(&devices, &policy, "switch on the coffee machine plug");
    let r = run(&mut turn, &devices, Some(true));
    assert!(r.sent.is_empty());
    assert_eq!(
        r.answer,
        "I'm not allowed to do that on the coffee machine plug."
    );
}

/// A scripted model: each request gets the next reply.
fn scripted(
    turn: &mut Turn,
    devices: &[DeviceInfo],
    replies: Vec<Reply>,
) -> (Vec<Vec<Message>>, Run) {
    let mut seen = Vec::new();
    let mut replies = replies.into_iter();
    let mut r = Run {
        events: Vec::new(),
        sent: Vec::new(),
        answer: String::new(),
    };
    let now = Timestamp::from_millis(1_790_000_000_000);
    while let Some(a) = turn.poll_action() {
        match a {
            Action::Llm(req) => {
                seen.push(req.messages.clone());
                match replies.next() {
                    Some(reply) => turn.handle_reply(now, reply),
                    None => turn.handle_llm_error("script ended"),
                }
            }
            Action::CallTool {
                id,
                device,
                tool,
                arguments,
            } => {
                let out = board(&device, &tool, &arguments);
                r.sent.push((device, tool, arguments));
                turn.handle_tool_result(now, &id, out);
            }
            Action::AwaitConfirmation { .. } => {}
            Action::Vision(_) => panic!("no camera in this home (see tests/vision.rs)"),
        }
    }
    let _ = devices;
    while let Some(e) = turn.poll_event() {
        r.events.push(e);
    }
    r.answer = turn.answer().unwrap_or_default().to_string();
    (seen, r)
}

fn call(name: &str, args: &str) -> Reply {
    Reply {
        content: String::new(),
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: args.into(),
            },
        }],
        finish_reason: Some("tool_calls".into()),
    }
}

fn text(t: &str) -> Reply {
    Reply {
        content: t.into(),
        tool_calls: Vec::new(),
        finish_reason: Some("stop".into()),
    }
}

#[test]
fn wrong_arguments_and_unknown_tools_go_back_to_the_model_not_to_the_device() {
    let devices = home();
    let mut turn = new_turn(&devices, &SitePolicy::new(), "lamp on");
    let (seen, r) = scripted(
        &mut turn,
        &devices,
        vec![
            call("kitchen-lamp__set_power", r#"{"on":"yes"}"#),
            call("garage__open", "{}"),
            call("kitchen-lamp__set_power", "{not json"),
            call("kitchen-lamp__set_power", r#"{"on":true}"#),
        ],
    );
    // Four model requests is the cap: the fourth call ran, then the turn stopped.
    assert_eq!(r.sent.len(), 1);
    let tool_msg = |i: usize| seen[i].last().unwrap().text_content();
    assert!(tool_msg(1).contains("arguments.on"), "{}", tool_msg(1));
    assert!(
        tool_msg(2).contains("there is no tool \\\"garage__open\\\""),
        "{}",
        tool_msg(2)
    );
    assert!(tool_msg(3).contains("not JSON"), "{}", tool_msg(3));
    assert!(r.answer.contains("stopped after 4 steps"), "{}", r.answer);
    // The tool message answers the model's own call id.
    assert_eq!(
        seen[1].last().unwrap().tool_call_id.as_deref(),
        Some("call_1")
    );
}

#[test]
fn a_tool_call_written_as_text_is_run() {
    let devices = home();
    let mut turn = new_turn(&devices, &SitePolicy::new(), "lamp on");
    let (seen, r) = scripted(
        &mut turn,
        &devices,
        vec![
            text(
                "```json\n{\"name\":\"kitchen-lamp__set_power\",\"arguments\":{\"on\":true}}\n```",
            ),
            text("The lamp is on."),
        ],
    );
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.answer, "The lamp is on.");
    assert!(seen[1]
        .last()
        .unwrap()
        .text_content()
        .contains("\"ok\":true"));
}

#[test]
fn a_model_failure_ends_the_turn_with_an_error_event() {
    let devices = home();
    let mut turn = new_turn(&devices, &SitePolicy::new(), "hi");
    let (_, r) = scripted(&mut turn, &devices, vec![]);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, TurnEvent::Error { message } if message.contains("script ended"))));
    assert!(turn.is_done());
}

#[test]
fn the_summary_and_history_reach_the_model() {
    let devices = home();
    let mut turn = Turn::new(
        TurnConfig::default(),
        agent_tools(&devices, &SitePolicy::new()),
        Some("- The user said: my name is Ada"),
        vec![Message::user("hello"), Message::assistant("hi")],
        Message::user("who am I?"),
    );
    let Some(Action::Llm(req)) = turn.poll_action() else {
        panic!("the turn starts by asking the model")
    };
    assert!(req.messages[0].text_content().contains("my name is Ada"));
    assert_eq!(req.messages.len(), 4);
    assert_eq!(req.tools.len(), 6);
    assert!(req.tools.iter().all(|t| !t.function.name.contains('.')));
}

#[test]
fn long_names_get_an_alias_within_64_characters() {
    let long = "d".repeat(60);
    let name = llm_tool_name(&long, "set_power", 3);
    assert!(name.len() <= 64);
    assert_eq!(name, "t3__set_power");
    assert_eq!(
        llm_tool_name("kitchen-lamp", "set_power", 0),
        "kitchen-lamp__set_power"
    );
}

#[test]
fn offline_honestly_says_when_it_does_not_understand() {
    let devices = home();
    let mut turn = new_turn(&devices, &SitePolicy::new(), "bake me a cake");
    let r = run(&mut turn, &devices, None);
    assert!(r.sent.is_empty());
    assert!(r.answer.starts_with("I didn't understand"), "{}", r.answer);
    assert!(r.answer.contains("turn lights on or off"));
}
