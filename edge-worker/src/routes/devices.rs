//! `GET /api/devices`, `GET /api/devices/{id}` and `POST /api/devices/{id}/tools/{tool}`: the
//! registry, and calling a tool by hand. `{id}` is a device id or a server-name's unique last
//! level; it is resolved to the device id once, first, so the permission checked is the
//! device's own (docs/protocol.md §2.5).
//!
//! Owns reading these requests. Whether a call may run is `axon-core`'s
//! [`authorize`]: the console is a caller like any other, so `deny` never runs and `confirm`
//! needs the person's yes.

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::protocol::tool::{authorize, Caller, Verdict};
use serde_json::{json, Value};
use worker::{Request, Response, Result};

use crate::http::{error_response, query, status_of};
use crate::hub::Ctx;
use axon_core::protocol::mcp::gateway;
use axon_core::trust::access::{Access, Action, Principal};

/// `GET /api/devices[?after=ID][&limit=N]`: a page of the registry in device id order, with
/// `next` (the `after` of the next page) when more follow.
pub fn list(ctx: &Ctx, req: &Request) -> Result<Response> {
    let (after, limit) = match gateway::devices_query(
        query(req, "after")?.as_deref(),
        query(req, "limit")?.as_deref(),
    ) {
        Ok(q) => q,
        Err(e) => return error_response(400, &e),
    };
    ctx.registry(|c| {
        let (devices, next) = gateway::devices_page(c, after.as_deref(), limit);
        let mut body = json!({ "devices": devices });
        if let Some(n) = next {
            body["next"] = json!(n);
        }
        Response::from_json(&body)
    })
}

/// `GET /api/devices/{id}`.
pub fn detail(ctx: &Ctx, id: &str) -> Result<Response> {
    let id = match ctx.resolve(id) {
        Ok(id) => id,
        // Unknown: answered below, with where to look.
        Err(e) if e.code == code::DEVICE_OFFLINE => id.to_string(),
        Err(e) => return error_response(status_of(&e), &e),
    };
    match ctx.device_detail(&id) {
        Some(v) => Response::from_json(&v),
        None => error_response(
            404,
            &ErrorObject::new(
                code::DEVICE_OFFLINE,
                format!("unknown device {id}: GET /api/devices lists them"),
            ),
        ),
    }
}

/// `POST /api/devices/{id}/tools/{tool}` with the arguments as the body (`{}` when empty).
pub async fn call_tool(
    ctx: &Ctx,
    mut req: Request,
    address: &str,
    tool: &str,
    who: &Principal,
) -> Result<Response> {
    let text = req.text().await.unwrap_or_default();
    let args: Value = if text.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return error_response(
                    400,
                    &ErrorObject::new(code::PARSE_ERROR, format!("the body is not JSON: {e}")),
                )
            }
        }
    };
    // An alias is never a way around a device's permissions: policy is keyed by device id.
    let id = match ctx.resolve(address) {
        Ok(id) => id,
        Err(e) => return error_response(status_of(&e), &e),
    };
    let id = id.as_str();
    let log = |outcome: std::result::Result<(), &ErrorObject>, refused: bool| {
        ctx.store()
            .record(&who.label(), "console", id, tool, outcome, refused)
    };
    // An unknown tool gets its error from the MCP client below.
    if let Some(permission) = ctx.permission(id, tool) {
        // Only the owner's yes counts: the header alone confirms nothing.
        let confirmed = who.may(Action::Approve) == Access::Allow
            && req
                .headers()
                .get("x-axon-confirmed")
                .ok()
                .flatten()
                .as_deref()
                == Some("yes");
        match authorize(permission, id, tool, Caller::Console { confirmed }) {
            Verdict::Run => {}
            Verdict::Refuse(e) => {
                log(Err(&e), true);
                return error_response(403, &e);
            }
            // Only an agent turn is asked to wait for a person; the owner's console brings
            // the yes (x-axon-confirmed: yes with the owner's credential).
            Verdict::AskPerson => {
                let e = ErrorObject::new(
                    code::DENIED,
                    "needs the owner's confirmation: the owner sends it with x-axon-confirmed: yes",
                );
                log(Err(&e), true);
                return error_response(403, &e);
            }
        }
    }
    let r = ctx.call_tool(id, tool, args).await;
    let (outcome, refused) = crate::trust::outcome_of(&r);
    log(outcome.as_ref().map(|_| ()), refused);
    match r {
        Ok(result) => Response::from_json(&result),
        Err(e) => error_response(status_of(&e), &e),
    }
}
