//! Axon's edge worker (Cloudflare Worker in Rust).
//!
//! Owns the HTTP surface and hands everything about devices to the [`hub::Hub`] Durable Object
//! (one per site), which holds the broker connection and drives `axon-core`. It holds no
//! protocol logic of its own and no secrets in code.
//!
//! Routes: `GET /healthz`, `GET /api/devices`, `GET /api/devices/{id}`,
//! `POST /api/devices/{id}/tools/{tool}`, `POST /api/chat` (SSE), `POST /api/confirm`,
//! `GET|DELETE /api/memory`, `GET /api/events` (SSE), `/mcp` (MCP Streamable HTTP).

mod chat;
mod config;
mod events;
mod hub;
mod mcp_http;
mod memory;
mod providers;

use worker::{event, Context, Env, Request, Response, Result};

/// Every request goes to the site's Hub; the Hub answers `/healthz` too, so health reflects
/// the broker link and not just that the worker runs.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let site = env
        .var("AXON_SITE")
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "home".into());
    let path = req.path();
    if !(path == "/healthz" || path == "/mcp" || path.starts_with("/api/")) {
        return Response::error("not found: try /healthz, /api/devices or /mcp", 404);
    }
    let namespace = env.durable_object("HUB")?;
    let stub = namespace.id_from_name(&site)?.get_stub()?;
    stub.fetch_with_request(req).await
}
