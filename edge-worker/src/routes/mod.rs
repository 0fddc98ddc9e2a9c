//! The worker's routes: one table from (method, path) to the handler that owns it.
//!
//! Owns which request goes where, and the 404 that lists what exists. Every handler takes the
//! site's [`Hub`](crate::hub::Hub) and uses its methods; the Hub never calls a route. A check
//! every route needs (the next one: who is asking) goes in [`dispatch`], once.

mod chat;
mod devices;
mod mcp;
mod voice;

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use worker::{Method, Request, Response, Result};

use crate::events::sse_response;
use crate::http::error_response;
use crate::hub::Ctx;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`.
    Health,
    /// `GET /api/devices`.
    Devices,
    /// `GET /api/devices/{id}`.
    Device(String),
    /// `POST /api/devices/{id}/tools/{tool}`.
    CallTool(String, String),
    /// `POST /api/chat`.
    Chat,
    /// `POST /api/confirm`.
    Confirm,
    /// `GET /api/memory` (or `DELETE`: `forget`).
    Memory {
        /// `DELETE`.
        forget: bool,
    },
    /// `GET /api/events`.
    Events,
    /// `GET /api/voice` (a WebSocket).
    Voice,
    /// `/mcp`, every method (the MCP transport answers wrong ones itself).
    Mcp,
}

/// Every route, for the 404's message.
const ROUTES: &str =
    "/healthz, /api/devices, /api/chat, /api/confirm, /api/events, /api/memory, /api/voice, /mcp";

impl Route {
    /// The route of `method` and `path`, if there is one.
    pub fn of(method: &Method, path: &str) -> Option<Route> {
        if path == "/mcp" {
            return Some(Route::Mcp);
        }
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match (method, parts.as_slice()) {
            (Method::Get, ["healthz"]) => Route::Health,
            (Method::Get, ["api", "devices"]) => Route::Devices,
            (Method::Get, ["api", "devices", id]) => Route::Device(id.to_string()),
            (Method::Post, ["api", "devices", id, "tools", tool]) => {
                Route::CallTool(id.to_string(), tool.to_string())
            }
            (Method::Post, ["api", "chat"]) => Route::Chat,
            (Method::Get, ["api", "voice"]) => Route::Voice,
            (Method::Post, ["api", "confirm"]) => Route::Confirm,
            (Method::Get, ["api", "memory"]) => Route::Memory { forget: false },
            (Method::Delete, ["api", "memory"]) => Route::Memory { forget: true },
            (Method::Get, ["api", "events"]) => Route::Events,
            _ => return None,
        })
    }
}

/// Answers one request to the site's Hub.
pub async fn dispatch(ctx: &Ctx, req: Request) -> Result<Response> {
    let path = req.path();
    let Some(route) = Route::of(&req.method(), &path) else {
        return error_response(
            404,
            &ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("no route {} {path}: see {ROUTES}", req.method()),
            ),
        );
    };
    match route {
        Route::Health => Response::from_json(&ctx.health()),
        Route::Devices => devices::list(ctx),
        Route::Device(id) => devices::detail(ctx, &id),
        Route::CallTool(id, tool) => devices::call_tool(ctx, req, &id, &tool).await,
        Route::Chat => chat::start(ctx, req).await,
        Route::Confirm => chat::confirm(ctx, req).await,
        Route::Memory { forget } => chat::memory(ctx, &req, forget),
        Route::Events => sse_response(ctx.subscribe_events()),
        Route::Voice => voice::handle(ctx, req).await,
        Route::Mcp => mcp::handle(ctx, req).await,
    }
}
