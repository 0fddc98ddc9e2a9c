//! `/mcp`: the Hub as an MCP Streamable HTTP server (2025-06-18) for outside MCP clients.
//!
//! Owns HTTP concerns only: the bearer token (`AXON_MCP_TOKEN`), `Origin` checks, the
//! `Mcp-Session-Id` header, `MCP-Protocol-Version`, the GET stream for list-changed, DELETE.
//! The JSON-RPC side (tool aggregation, checks, error results) is axon-core's
//! `mcp::gateway`; tool calls go through the Hub like any other caller's.

use axon_core::protocol::mcp::gateway::{self, GatewayOutcome, HTTP_PROTOCOL_VERSIONS};
use axon_core::trust::same_secret;
use serde_json::json;
use worker::{Method, Request, Response, Result};

use crate::events::sse_response;
use crate::http::{plain, unauthorized};
use crate::hub::Ctx;

/// Largest POST body.
const BODY_LIMIT: usize = axon_core::protocol::mcp::MAX_RPC_PAYLOAD;

fn refuse(message: &str) -> Result<Response> {
    unauthorized("axon-mcp", message)
}

pub async fn handle(ctx: &Ctx, mut req: Request) -> Result<Response> {
    let Some(token) = ctx.config().mcp_token.as_deref() else {
        return refuse("/mcp is disabled: set the AXON_MCP_TOKEN secret (.dev.vars locally)");
    };
    let given = req.headers().get("authorization")?.unwrap_or_default();
    match given.strip_prefix("Bearer ") {
        Some(t) if same_secret(t.trim(), token) => {}
        Some(_) => return refuse("wrong bearer token for /mcp"),
        None => return refuse("/mcp needs Authorization: Bearer <AXON_MCP_TOKEN>"),
    }
    // DNS rebinding: a browser page may only come from an allowed origin.
    if let Some(origin) = req.headers().get("origin")? {
        if !ctx.config().allowed_origins.allows(&origin) {
            return plain(
                403,
                &format!("origin {origin} is not in AXON_ALLOWED_ORIGINS"),
            );
        }
    }
    if let Some(v) = req.headers().get("mcp-protocol-version")? {
        if !HTTP_PROTOCOL_VERSIONS.contains(&v.as_str()) && v != "2024-11-05" {
            return plain(
                400,
                &format!(
                    "unsupported MCP-Protocol-Version {v}: use one of {HTTP_PROTOCOL_VERSIONS:?}"
                ),
            );
        }
    }
    let session = req.headers().get("mcp-session-id")?;
    let known = |ctx: &Ctx, s: &Option<String>| s.as_ref().is_some_and(|s| ctx.has_mcp_session(s));
    match req.method() {
        Method::Post => {}
        Method::Get => {
            if !known(ctx, &session) {
                return plain(404, "unknown or missing Mcp-Session-Id: initialize first");
            }
            let rx = ctx.subscribe_mcp_stream();
            return sse_response(rx);
        }
        Method::Delete => {
            return match session {
                Some(s) if ctx.end_mcp_session(&s) => plain(200, "session ended"),
                _ => plain(404, "unknown session"),
            };
        }
        _ => return plain(405, "use POST, GET or DELETE on /mcp"),
    }
    let body = req.bytes().await?;
    if body.len() > BODY_LIMIT {
        let e =
            axon_core::protocol::jsonrpc::ErrorObject::payload_too_large(body.len(), BODY_LIMIT);
        return Ok(
            Response::from_json(&json!({"jsonrpc": "2.0", "id": null, "error": e}))?
                .with_status(413),
        );
    }
    let is_initialize = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("method")
                .and_then(|m| m.as_str())
                .map(|m| m == "initialize")
        })
        .unwrap_or(false);
    if !is_initialize {
        match &session {
            None => return plain(400, "missing Mcp-Session-Id: initialize first"),
            Some(_) if !known(ctx, &session) => {
                return plain(
                    404,
                    "unknown Mcp-Session-Id (the Hub restarted?): initialize again",
                )
            }
            _ => {}
        }
    }
    // A Hub that has just started lists its devices once it has discovered them.
    ctx.settle_discovery().await;
    let outcome = ctx
        .registry(|c| gateway::handle(&body, c, &ctx.config().policy, ctx.config().mcp_page_tools));
    match outcome {
        GatewayOutcome::Accepted => Ok(Response::empty()?.with_status(202)),
        GatewayOutcome::Reply {
            status,
            body,
            initialized,
        } => {
            let mut r = Response::from_json(&body)?.with_status(status);
            if initialized {
                let id = ctx.open_mcp_session();
                r.headers_mut().set("mcp-session-id", &id)?;
            }
            Ok(r)
        }
        GatewayOutcome::Call {
            id,
            device,
            tool,
            arguments,
        } => {
            let outcome = ctx.call_tool(&device, &tool, arguments).await;
            let (logged, refused) = crate::trust::outcome_of(&outcome);
            ctx.store().record(
                "mcp",
                "mcp",
                &device,
                &tool,
                logged.as_ref().map(|_| ()),
                refused,
            );
            Response::from_json(&gateway::call_result(id, outcome))
        }
    }
}
