//! `/api/chat`, `/api/confirm` and `/api/memory`: agent turns over HTTP.
//!
//! Owns driving one [`Turn`] of axon-core: it performs the I/O the turn asks for (model
//! requests through [`crate::providers`], tool calls through the Hub, waiting for a person's
//! confirmation for at most 60 s), streams the turn's events as SSE, mirrors them on
//! `/api/events`, and stores the conversation. What happens in a turn is axon-core's.

use std::time::Duration;

use axon_core::agent::llm::Message;
use axon_core::agent::turn::{agent_tools, Action, Turn, TurnConfig, TurnEvent, TurnUpdate};
use axon_core::jsonrpc::ErrorObject;
use axon_core::mcp::client::DeviceInfo;
use futures_channel::{mpsc, oneshot};
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use worker::{Request, Response, Result};

use crate::events::{frame, sse_response};
use crate::hub::{bad_request, json_body, now, Ctx};
use crate::memory::Memory;

/// How long a `confirm` tool waits for the person.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest `/api/chat` body (an image as a data URL fits).
const CHAT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Longest request text.
const TEXT_LIMIT: usize = 4000;

pub fn user_of(v: &Value) -> std::result::Result<String, String> {
    match v.get("user") {
        None | Some(Value::Null) => Ok("default".into()),
        Some(Value::String(u))
            if !u.is_empty()
                && u.len() <= 64
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) =>
        {
            Ok(u.clone())
        }
        Some(_) => Err("\"user\" must be 1 to 64 letters, digits or - _ . @".into()),
    }
}

/// The device the person is using (`"device"`), if the body names one.
pub fn device_of(v: &Value) -> std::result::Result<Option<String>, String> {
    match v.get("device") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(d)) => axon_core::mcp::topics::DeviceId::new(d.clone())
            .map(|_| Some(d.clone()))
            .map_err(|e| format!("\"device\": {e}")),
        Some(_) => Err("\"device\" must be a device id string".into()),
    }
}

/// `POST /api/chat` `{"text": "...", "user": "ada", "image": "data:image/jpeg;base64,...",
/// "device": "kitchen-tab"}` (`device`: the one the person uses, preferred for "take a photo").
pub async fn start(ctx: &Ctx, mut req: Request) -> Result<Response> {
    let body = match json_body(&mut req, CHAT_BODY_LIMIT).await {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let text = match body.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_string(),
        Some(Value::String(_)) => return bad_request("\"text\" is empty: say what you want"),
        Some(_) => return bad_request("\"text\" must be a string"),
        None => {
            return bad_request(
                "the body needs \"text\", e.g. {\"text\":\"turn on the kitchen lamp\"}",
            )
        }
    };
    if text.chars().count() > TEXT_LIMIT {
        return bad_request(format!("\"text\" is longer than {TEXT_LIMIT} characters"));
    }
    let user = match user_of(&body) {
        Ok(u) => u,
        Err(e) => return bad_request(e),
    };
    let device = match device_of(&body) {
        Ok(d) => d,
        Err(e) => return bad_request(e),
    };
    let message = match body.get("image") {
        None | Some(Value::Null) => Message::user(text),
        Some(Value::String(url))
            if url.starts_with("data:image/") || url.starts_with("https://") =>
        {
            Message::user_with_image(text, url.clone())
        }
        Some(_) => return bad_request("\"image\" must be a data:image/... or https:// URL"),
    };
    let (turn_id, turn) = begin_turn(ctx, &user, device, message).await?;
    let (tx, rx) = mpsc::unbounded();
    let _ = tx.unbounded_send(TurnUpdate::Started {
        turn: turn_id.clone(),
        user: user.clone(),
        llm: ctx.config.llm_name().into(),
        vlm: ctx.config.vlm_name().into(),
    });
    wasm_bindgen_futures::spawn_local(drive(ctx.clone(), turn_id, user, turn, tx));
    sse_response(rx.map(|u| sse_frame(&u)))
}

/// Where a turn's updates go: `Started` (sent by whoever began it), its events, `Done`.
pub type TurnSink = mpsc::UnboundedSender<TurnUpdate>;

/// One update as `/api/chat`'s SSE: the event's name, and as data the event itself (with its
/// `"type"`), or `{turn, user, llm, vlm}` for `turn` and `{turn}` for `done`.
fn sse_frame(u: &TurnUpdate) -> Vec<u8> {
    match u {
        TurnUpdate::Started {
            turn,
            user,
            llm,
            vlm,
        } => frame(
            "turn",
            &json!({"turn": turn, "user": user, "llm": llm, "vlm": vlm}),
        ),
        TurnUpdate::Event(ev) => frame(ev.name(), &serde_json::to_value(ev).unwrap_or(Value::Null)),
        TurnUpdate::Done { turn } => frame("done", &json!({ "turn": turn })),
    }
}

/// A turn on `message` for `user`, with their memory and the devices online now. `id` names
/// it (and prefixes its call ids); a fresh one is made when it is `None`.
pub async fn begin_turn_as(
    ctx: &Ctx,
    id: Option<String>,
    user: &str,
    device: Option<String>,
    message: Message,
) -> Result<(String, Turn)> {
    ctx.settle_discovery().await;
    let memory = Memory::open(ctx.sql.clone())?;
    let (summary, history) = memory.recall(user)?;
    let turn_id = id.unwrap_or_else(|| ctx.next_turn_id());
    let tools = agent_tools(ctx.link.borrow().client.devices(), &ctx.config.policy);
    let config = TurnConfig {
        max_steps: ctx.config.max_steps,
        model: ctx.config.model.clone(),
        persona: ctx.config.persona.clone(),
        call_prefix: format!("{turn_id}."),
        device,
        vision: ctx.config.vision(),
    };
    let turn = Turn::new(config, tools, Some(&summary), history, message);
    Ok((turn_id, turn))
}

async fn begin_turn(
    ctx: &Ctx,
    user: &str,
    device: Option<String>,
    message: Message,
) -> Result<(String, Turn)> {
    begin_turn_as(ctx, None, user, device, message).await
}

enum Completion {
    Tool(String, std::result::Result<Value, ErrorObject>),
    Confirm(String, bool),
}

/// Runs a turn to its end: performs what it asks, sends its events to `tx` and `/api/events`,
/// and remembers the conversation.
pub async fn drive(ctx: Ctx, turn_id: String, user: String, mut turn: Turn, tx: TurnSink) {
    let publish = |ctx: &Ctx, ev: &TurnEvent| {
        // The client may have gone; the turn still finishes and is remembered.
        let _ = tx.unbounded_send(TurnUpdate::Event(ev.clone()));
        if !matches!(ev, TurnEvent::TextDelta { .. }) {
            let v = serde_json::to_value(ev).unwrap_or(Value::Null);
            ctx.link.borrow_mut().events.send(frame(
                "agent",
                &json!({"turn": turn_id, "user": user, "event": v}),
            ));
        }
    };
    let mut pending: FuturesUnordered<LocalBoxFuture<'static, Completion>> =
        FuturesUnordered::new();
    loop {
        while let Some(ev) = turn.poll_event() {
            publish(&ctx, &ev);
        }
        if turn.is_done() {
            break;
        }
        match turn.poll_action() {
            Some(Action::Llm(req)) => {
                let devices: Vec<DeviceInfo> =
                    ctx.link.borrow().client.devices().cloned().collect();
                let mut on_delta = |t: &str| {
                    let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::TextDelta {
                        text: t.to_string(),
                    }));
                };
                let outcome = crate::providers::complete(
                    &ctx.config.llm,
                    &ctx.env,
                    &req,
                    &devices,
                    turn.tools(),
                    &mut on_delta,
                )
                .await;
                match outcome {
                    Ok(reply) => turn.handle_reply(now(), reply),
                    Err(e) => turn.handle_llm_error(&e),
                }
            }
            Some(Action::Vision(req)) => {
                let mut on_delta = |t: &str| {
                    let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::TextDelta {
                        text: t.to_string(),
                    }));
                };
                match crate::providers::look(&ctx.config.vlm, &req, &mut on_delta).await {
                    Ok(reply) => turn.handle_reply(now(), reply),
                    Err(e) => turn.handle_llm_error(&e),
                }
            }
            Some(Action::CallTool {
                id,
                device,
                tool,
                arguments,
            }) => {
                let ctx = ctx.clone();
                pending.push(
                    async move {
                        let r = ctx.call_tool(&device, &tool, arguments).await;
                        Completion::Tool(id, r)
                    }
                    .boxed_local(),
                );
            }
            Some(Action::AwaitConfirmation { id }) => {
                let (otx, orx) = oneshot::channel();
                ctx.link.borrow_mut().confirmations.insert(id.clone(), otx);
                pending.push(
                    async move {
                        let timeout = worker::Delay::from(CONFIRM_TIMEOUT).fuse();
                        let answer = orx.fuse();
                        futures_util::pin_mut!(timeout, answer);
                        let ok = futures_util::select! {
                            a = answer => a.unwrap_or(false),
                            _ = timeout => false,
                        };
                        Completion::Confirm(id, ok)
                    }
                    .boxed_local(),
                );
            }
            None => match pending.next().await {
                Some(Completion::Tool(id, r)) => turn.handle_tool_result(now(), &id, r),
                Some(Completion::Confirm(id, ok)) => {
                    ctx.link.borrow_mut().confirmations.remove(&id);
                    turn.handle_confirmation(now(), &id, ok);
                }
                None => {
                    turn.handle_llm_error("the turn stalled with nothing left to wait for");
                }
            },
        }
    }
    let remembered = Memory::open(ctx.sql.clone())
        .and_then(|m| m.remember(&user, &turn.to_remember(), now().as_millis()));
    if let Err(e) = remembered {
        let _ = tx.unbounded_send(TurnUpdate::Event(TurnEvent::Error {
            message: format!("the answer was not saved to memory: {e}"),
        }));
    }
    let _ = tx.unbounded_send(TurnUpdate::Done { turn: turn_id });
}

/// `POST /api/confirm` `{"id": "<call id from confirmation_required>", "approve": true}`.
pub async fn confirm(ctx: &Ctx, mut req: Request) -> Result<Response> {
    let body = match json_body(&mut req, 4096).await {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(id) = body.get("id").and_then(Value::as_str) else {
        return bad_request("the body needs \"id\" (from the confirmation_required event)");
    };
    let Some(approve) = body.get("approve").and_then(Value::as_bool) else {
        return bad_request("the body needs \"approve\": true or false");
    };
    let waiting = ctx.link.borrow_mut().confirmations.remove(id);
    match waiting {
        Some(tx) => {
            let _ = tx.send(approve);
            Response::from_json(&json!({"id": id, "approved": approve}))
        }
        None => crate::hub::error_response(
            404,
            &ErrorObject::new(
                axon_core::jsonrpc::code::INVALID_PARAMS,
                format!("no confirmation is waiting under {id:?}: it was answered, timed out (60 s), or never asked"),
            ),
        ),
    }
}

/// `GET /api/memory?user=ada` shows what is remembered; `DELETE` forgets it.
pub fn memory(ctx: &Ctx, req: &Request, forget: bool) -> Result<Response> {
    let url = req.url()?;
    let user = url
        .query_pairs()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.to_string());
    let user = match user_of(&json!({ "user": user })) {
        Ok(u) => u,
        Err(e) => return bad_request(e),
    };
    let memory = Memory::open(ctx.sql.clone())?;
    if forget {
        memory.forget(&user)?;
        return Response::from_json(&json!({"user": user, "forgotten": true}));
    }
    Response::from_json(&memory.dump(&user)?)
}
