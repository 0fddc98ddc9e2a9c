//! Axon's edge worker (Cloudflare Worker in Rust).
//!
//! Owns the HTTP routes and, as it grows, the Hub Durable Object and the providers. It drives
//! `axon-core` and never holds protocol logic of its own. For now it serves `/healthz` only;
//! the Hub, the agent and `/mcp` land with the edge-worker issue.

use worker::{event, Context, Env, Request, Response, Result, Router};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Router::new()
        .get("/healthz", |_, _| {
            Response::from_json(&serde_json::json!({
                "ok": true,
                "core": axon_core::mcp::types::LATEST_PROTOCOL_VERSION,
                "broker": "not connected (Hub not built yet)",
            }))
        })
        .run(req, env)
        .await
}
