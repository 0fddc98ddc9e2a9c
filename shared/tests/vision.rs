//! "What do you see?" inside axon-core: the offline planner picks the camera, the photo in the
//! tool result is attached to the next request as an `image_url` user message, and that
//! request goes to the vision model, or, with none, the turn answers with the measured facts
//! (docs/voice.md §5). Simulated clock, no I/O.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

mod common;

use std::time::Duration;

use axon_core::agent::llm::Message;
use axon_core::agent::llm::{ChatRequest, Reply, Role};
use axon_core::agent::offline;
use axon_core::agent::turn::{agent_tools, Action, Turn, TurnConfig, TurnEvent, Vision};
use axon_core::protocol::mcp::client::DeviceInfo;
use axon_core::protocol::mcp::types::{CallToolResult, ContentBlock};
use axon_core::protocol::tool::SitePolicy;
use axon_core::time::Timestamp;
use base64::Engine as _;
use common::home::{device, tools};
use serde_json::{json, Value};

fn home() -> Vec<DeviceInfo> {
    vec![
        device(
            "kitchen-lamp",
            "lamp",
            "kitchen",
            "Kitchen lamp",
            tools(&["set_power", "get_state"]),
        ),
        device(
            "hall-camera",
            "camera",
            "hall",
            "Hall camera",
            tools(&["take_photo", "get_state"]),
        ),
    ]
}

/// A `w`×`h` grey JPEG at `level` (0–255), base64.
fn grey_jpeg(w: u16, h: u16, level: u8) -> String {
    let px = vec![level; usize::from(w) * usize::from(h) * 3];
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn photo_result(data: String) -> CallToolResult {
    let mut r = CallToolResult::structured(json!({"width": 320, "height": 240}));
    r.content = vec![
        ContentBlock::Image {
            data,
            mime_type: "image/jpeg".into(),
        },
        ContentBlock::text("a 320×240 JPEG"),
    ];
    r
}

struct Run {
    calls: Vec<(String, String)>,
    llm: Vec<ChatRequest>,
    vision: Vec<ChatRequest>,
    events: Vec<TurnEvent>,
}

/// Drives a turn: the offline model for `Llm`, `vlm` for `Vision`, `photo` for every
/// `take_photo`.
fn run(
    turn: &mut Turn,
    devices: &[DeviceInfo],
    photo: impl Fn(&str) -> Result<Value, axon_core::protocol::jsonrpc::ErrorObject>,
    vlm: impl Fn(&ChatRequest) -> Result<Reply, String>,
) -> Run {
    let mut now = Timestamp::from_millis(1_790_000_000_000);
    let mut r = Run {
        calls: Vec::new(),
        llm: Vec::new(),
        vision: Vec::new(),
        events: Vec::new(),
    };
    for _ in 0..20 {
        while let Some(e) = turn.poll_event() {
            r.events.push(e);
        }
        let Some(action) = turn.poll_action() else {
            break;
        };
        now = now + Duration::from_millis(11);
        match action {
            Action::Llm(req) => {
                let reply = offline::respond_for(
                    &req.messages,
                    devices,
                    turn.tools(),
                    req.device.as_deref(),
                );
                r.llm.push(req);
                turn.handle_reply(now, reply);
            }
            Action::Vision(req) => {
                let outcome = vlm(&req);
                r.vision.push(req);
                match outcome {
                    Ok(reply) => {
                        turn.handle_text_delta(&reply.content);
                        turn.handle_reply(now, reply);
                    }
                    Err(e) => turn.handle_llm_error(&e),
                }
            }
            Action::CallTool {
                id, device, tool, ..
            } => {
                let out = photo(&device);
                r.calls.push((device, tool));
                turn.handle_tool_result(now + Duration::from_millis(40), &id, out);
            }
            Action::AwaitConfirmation { .. } => panic!("nothing here asks"),
        }
    }
    while let Some(e) = turn.poll_event() {
        r.events.push(e);
    }
    r
}

fn start(devices: &[DeviceInfo], text: &str, config: TurnConfig) -> Turn {
    let tools = agent_tools(devices, &SitePolicy::new());
    Turn::new(config, tools, None, Vec::new(), Message::user(text))
}

fn good_photo(_: &str) -> Result<Value, axon_core::protocol::jsonrpc::ErrorObject> {
    Ok(serde_json::to_value(photo_result(grey_jpeg(320, 240, 77))).unwrap())
}

fn no_vlm(_: &ChatRequest) -> Result<Reply, String> {
    panic!("no vision model is configured")
}

#[test]
fn offline_the_answer_says_there_is_no_vision_model_and_gives_the_measured_facts() {
    let h = home();
    let mut turn = start(&h, "What do you see?", TurnConfig::default());
    let r = run(&mut turn, &h, good_photo, no_vlm);
    assert_eq!(
        r.calls,
        [("hall-camera".to_string(), "take_photo".to_string())]
    );
    // Grey 77 of 255 is 30.2 %.
    assert_eq!(
        turn.answer(),
        Some(
            "No vision model is configured, so I can't say what is in the picture. \
             Measured from the image: 320×240 JPEG, average brightness 30 %, dim."
        )
    );
    // One model request (the planner's); the photo was not sent anywhere.
    assert_eq!((r.llm.len(), r.vision.len()), (1, 0));
    let last = turn.messages().last().unwrap();
    assert_eq!(last.role, Role::User);
    assert_eq!(last.image_urls().len(), 1);
    assert!(matches!(
        r.events.last(),
        Some(TurnEvent::Answer { steps: 1, .. })
    ));
}

#[test]
fn with_a_vision_model_the_request_carrying_the_photo_goes_to_it_and_its_words_are_the_answer() {
    let h = home();
    let config = TurnConfig {
        vision: Vision::Model("vlm-test".into()),
        ..TurnConfig::default()
    };
    let mut turn = start(&h, "what's in front of the camera?", config);
    let r = run(&mut turn, &h, good_photo, |_| {
        Ok(Reply {
            content: "A dim hallway with a coat rack.".into(),
            tool_calls: Vec::new(),
            finish_reason: Some("stop".into()),
        })
    });
    assert_eq!(r.calls.len(), 1);
    assert_eq!((r.llm.len(), r.vision.len()), (1, 1));
    let req = &r.vision[0];
    assert_eq!(req.model, "vlm-test");
    assert!(req.tools.is_empty() && req.stream);
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    // The tool message points at the photo; the image itself is a user message's image_url.
    let tool_msg: Value = serde_json::from_str(&req.messages[3].text_content()).unwrap();
    assert_eq!(tool_msg["ok"], true);
    assert_eq!(tool_msg["images"], "1 attached in the next message");
    let wire = serde_json::to_value(&req.messages[4]).unwrap();
    assert_eq!(wire["content"][0]["type"], "text");
    assert!(wire["content"][0]["text"]
        .as_str()
        .unwrap()
        .ends_with("what's in front of the camera?"));
    assert_eq!(wire["content"][1]["type"], "image_url");
    let url = wire["content"][1]["image_url"]["url"].as_str().unwrap();
    assert!(url.starts_with("data:image/jpeg;base64,/9j/"), "{url:.40}");
    assert!(req.carries_image() && !r.llm[0].carries_image());
    assert_eq!(turn.answer(), Some("A dim hallway with a coat rack."));
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, TurnEvent::TextDelta { text } if text.starts_with("A dim"))));
    assert!(matches!(
        r.events.last(),
        Some(TurnEvent::Answer { steps: 2, .. })
    ));
    // Only the request and the answer are remembered, not the photo.
    let kept = turn.to_remember();
    assert!(kept.iter().all(|m| !m.carries_image()));

    // A vision model that fails ends the turn with its error.
    let mut turn = start(
        &h,
        "take a photo",
        TurnConfig {
            vision: Vision::Model("vlm-test".into()),
            ..TurnConfig::default()
        },
    );
    let r = run(&mut turn, &h, good_photo, |_| Err("HTTP 500".into()));
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, TurnEvent::Error { message } if message == "the vision model failed: HTTP 500")));
}

#[test]
fn the_persons_own_device_takes_the_photo_when_the_request_names_none() {
    let mut h = home();
    h.push(device(
        "tab-1",
        "virtual",
        "office",
        "Kitchen tab",
        tools(&["take_photo", "set_expression"]),
    ));
    let config = |device: Option<&str>| TurnConfig {
        device: device.map(str::to_string),
        ..TurnConfig::default()
    };
    let mut turn = start(&h, "take a picture", config(Some("tab-1")));
    let r = run(&mut turn, &h, good_photo, no_vlm);
    assert_eq!(r.calls, [("tab-1".to_string(), "take_photo".to_string())]);
    assert!(r.llm[0].messages[0]
        .text_content()
        .contains("The person is using the device tab-1 (Kitchen tab)"));
    // Without a device of their own, two cameras: the agent asks which.
    let mut turn = start(&h, "take a picture", config(None));
    let r = run(&mut turn, &h, good_photo, no_vlm);
    assert!(r.calls.is_empty());
    let a = turn.answer().unwrap();
    assert!(
        a.starts_with("Which one") && a.contains("Hall camera") && a.contains("Kitchen tab"),
        "{a}"
    );
}

#[test]
fn bad_photos_and_failed_cameras_are_said_honestly() {
    let h = home();
    // The camera sends bytes that are no JPEG.
    let mut turn = start(&h, "what do you see", TurnConfig::default());
    run(
        &mut turn,
        &h,
        |_| Ok(serde_json::to_value(photo_result("/9j/AAAA".into())).unwrap()),
        no_vlm,
    );
    let a = turn.answer().unwrap();
    assert!(a.starts_with("No vision model is configured"), "{a}");
    assert!(
        a.contains(
            "Measured from the image: nothing could be measured (the JPEG cannot be decoded"
        ),
        "{a}"
    );
    // The camera fails: its error, and no vision at all.
    let mut turn = start(&h, "what do you see", TurnConfig::default());
    let r = run(
        &mut turn,
        &h,
        |_| Ok(serde_json::to_value(CallToolResult::tool_error("the lens cap is on")).unwrap()),
        no_vlm,
    );
    assert_eq!(r.llm.len(), 2);
    assert_eq!(
        turn.answer(),
        Some("Hall camera couldn't do it: the lens cap is on.")
    );
}

#[test]
fn an_image_sent_with_the_request_is_looked_at_straight_away() {
    let h = home();
    let url = format!("data:image/jpeg;base64,{}", grey_jpeg(64, 48, 230));
    let tools = agent_tools(&h, &SitePolicy::new());
    let mut turn = Turn::new(
        TurnConfig::default(),
        tools.clone(),
        None,
        Vec::new(),
        Message::user_with_image("what is this?", url.clone()),
    );
    assert!(turn.poll_action().is_none());
    assert_eq!(
        turn.answer(),
        Some(
            "No vision model is configured, so I can't say what is in the picture. \
             Measured from the image: 64×48 JPEG, average brightness 90 %, very bright."
        )
    );
    let mut turn = Turn::new(
        TurnConfig {
            vision: Vision::Model("vlm-test".into()),
            ..TurnConfig::default()
        },
        tools,
        None,
        Vec::new(),
        Message::user_with_image("what is this?", url),
    );
    let Some(Action::Vision(req)) = turn.poll_action() else {
        panic!("the first request carries the image")
    };
    assert_eq!(req.messages.last().unwrap().image_urls().len(), 1);
}
