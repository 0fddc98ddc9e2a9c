//! `POST /api/chat`, `POST /api/confirm` and `GET`/`DELETE /api/memory`: agent turns over
//! HTTP.
//!
//! Owns reading and checking these requests and streaming a turn's events as SSE; the turn
//! itself runs in [`crate::agent`], the waiting calls live in the Hub.

use axon_core::agent::llm::Message;
use axon_core::agent::turn::TurnUpdate;
use axon_core::protocol::jsonrpc::ErrorObject;
use futures_channel::mpsc;
use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{Request, Response, Result};

use crate::events::{frame, sse_response};
use crate::http::{bad_request, device_of, error_response, json_body, query, user_of};
use crate::hub::Ctx;
use crate::memory::Memory;
use axon_core::trust::access::Principal;

/// Largest `/api/chat` body (an image as a data URL fits).
const CHAT_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Longest request text.
const TEXT_LIMIT: usize = 4000;

/// `POST /api/chat` `{"text": "...", "user": "ada", "image": "data:image/jpeg;base64,...",
/// "device": "kitchen-tab"}` (`device`: the one the person uses, preferred for "take a photo").
pub async fn start(ctx: &Ctx, mut req: Request, who: &Principal) -> Result<Response> {
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
    let named = match body.get("user") {
        None | Some(Value::Null) => None,
        Some(_) => match user_of(&body) {
            Ok(u) => Some(u),
            Err(e) => return bad_request(e),
        },
    };
    // The person comes from the credential; a body that names another is refused.
    let person = match who.speaks_as(named.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_response(403, &e),
    };
    let user = person.clone().unwrap_or_else(|| who.label());
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
    let (turn_id, turn) =
        crate::agent::begin_turn(ctx, None, person.as_deref(), device, message).await?;
    let (tx, rx) = mpsc::unbounded();
    let _ = tx.unbounded_send(TurnUpdate::Started {
        turn: turn_id.clone(),
        user: user.clone(),
        llm: ctx.config().llm_name().into(),
        vlm: ctx.config().vlm_name().into(),
    });
    wasm_bindgen_futures::spawn_local(crate::agent::drive(
        ctx.clone(),
        turn_id,
        who.clone(),
        person,
        turn,
        tx,
    ));
    sse_response(rx.map(|u| sse_frame(&u)))
}

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
    if ctx.answer_confirmation(id, approve) {
        return Response::from_json(&json!({"id": id, "approved": approve}));
    }
    error_response(
        404,
        &ErrorObject::new(
            axon_core::protocol::jsonrpc::code::INVALID_PARAMS,
            format!("no confirmation is waiting under {id:?}: it was answered, timed out (60 s), or never asked"),
        ),
    )
}

/// `GET /api/memory` shows what is remembered of the signed-in person; `DELETE` forgets it.
/// `?user=` may only name that same person.
pub fn memory(ctx: &Ctx, req: &Request, forget: bool, who: &Principal) -> Result<Response> {
    let named = query(req, "user")?;
    let user = match who.speaks_as(named.as_deref()) {
        Ok(Some(u)) => u,
        Ok(None) => return bad_request("this credential has no memory"),
        Err(e) => return error_response(403, &e),
    };
    let memory = Memory::open(ctx.sql())?;
    if forget {
        memory.forget(&user)?;
        return Response::from_json(&json!({"user": user, "forgotten": true}));
    }
    Response::from_json(&memory.dump(&user)?)
}
