//! Axon's edge worker (Cloudflare Worker in Rust).
//!
//! Owns the worker's two entry points: the front door (`#[event(fetch)]`: browser origin
//! checks and CORS, then the site's Durable Object) and the [`Hub`] Durable Object itself,
//! which keeps the site's [`hub::Hub`] and answers through the route table in [`routes`]. It
//! holds no protocol logic of its own and no secrets in code.
//!
//! Dependencies point one way: `routes` and `agent` use the `hub`; the `hub` uses neither.
//!
//! Routes: `GET /healthz`, `GET /api/devices`, `GET /api/devices/{id}`,
//! `POST /api/devices/{id}/tools/{tool}`, `POST /api/chat` (SSE), `POST /api/confirm`,
//! `GET|DELETE /api/memory`, `GET /api/events` (SSE), `GET /api/voice` (WebSocket), `/mcp`
//! (MCP Streamable HTTP).

mod agent;
mod clock;
mod config;
mod events;
mod http;
mod hub;
mod memory;
mod providers;
mod routes;
mod speech;
mod trust;

use std::rc::Rc;

use worker::{
    durable_object, event, Context, DurableObject, Env, Headers, Method, Request, Response, Result,
    State,
};

use crate::config::AllowedOrigins;

/// The site's Hub as a Durable Object (one per `AXON_SITE`).
#[durable_object]
pub struct Hub {
    hub: hub::Ctx,
}

impl DurableObject for Hub {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        Hub {
            hub: Rc::new(hub::Hub::new(env, sql)),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.hub.ensure_running();
        routes::dispatch(&self.hub, req).await
    }
}

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
        return Response::error(
            "not found: try /, /device, /healthz, /api/devices or /mcp",
            404,
        );
    }
    let origin = cors_origin(&req, &env);
    if req.method() == Method::Options {
        // A browser's preflight for the widget on another site.
        return match origin {
            Some(o) => Ok(Response::empty()?
                .with_status(204)
                .with_headers(cors_headers(&o, true)?)),
            None => Response::error(
                "this origin is not allowed: add it to AXON_ALLOWED_ORIGINS",
                403,
            ),
        };
    }
    // A page on another site must not drive the home through the visitor's browser: a
    // WebSocket (/api/voice) or a "simple" POST needs no preflight, so CORS alone would not
    // stop it. Browsers always send Origin there; boards and curl send none.
    if let Some(o) = req.headers().get("origin").ok().flatten() {
        let writes = req.method() != Method::Get && req.method() != Method::Head;
        let upgrade = req
            .headers()
            .get("upgrade")
            .ok()
            .flatten()
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if (writes || upgrade) && origin.is_none() && !same_origin(&req, &o) {
            return Response::error(
                format!("origin {o} may not use {path}: add it to AXON_ALLOWED_ORIGINS"),
                403,
            );
        }
    }
    let namespace = env.durable_object("HUB")?;
    let stub = namespace.id_from_name(&site)?.get_stub()?;
    let resp = stub.fetch_with_request(req).await?;
    if resp.status_code() == 101 {
        // A WebSocket (/api/voice) passes as it is: rebuilding it would lose the socket, and
        // browsers apply no CORS to WebSockets.
        return Ok(resp);
    }
    match origin {
        // A response from the Hub has immutable headers: rebuild it around the same body.
        Some(o) => {
            let headers = Headers::new();
            for (k, v) in resp.headers().entries() {
                headers.set(&k, &v)?;
            }
            for (k, v) in cors_headers(&o, false)?.entries() {
                headers.set(&k, &v)?;
            }
            let status = resp.status_code();
            Ok(Response::from_body(resp.body().clone())?
                .with_status(status)
                .with_headers(headers))
        }
        None => Ok(resp),
    }
}

/// The request's `Origin` if `AXON_ALLOWED_ORIGINS` lists it.
fn cors_origin(req: &Request, env: &Env) -> Option<String> {
    let origin = req.headers().get("origin").ok().flatten()?;
    let (allowed, _) = AllowedOrigins::from_env(env);
    allowed.allows(&origin).then_some(origin)
}

/// Whether `origin` is the worker's own (the console, the device page).
fn same_origin(req: &Request, origin: &str) -> bool {
    req.url()
        .map(|u| u.origin().ascii_serialization() == origin.trim_end_matches('/'))
        .unwrap_or(false)
}

fn cors_headers(origin: &str, preflight: bool) -> Result<Headers> {
    let h = Headers::new();
    h.set("access-control-allow-origin", origin)?;
    h.set("vary", "Origin")?;
    if preflight {
        h.set("access-control-allow-methods", "GET, POST, DELETE, OPTIONS")?;
        h.set(
            "access-control-allow-headers",
            "content-type, authorization, mcp-session-id, mcp-protocol-version",
        )?;
        h.set("access-control-max-age", "600")?;
    } else {
        h.set("access-control-expose-headers", "mcp-session-id")?;
    }
    Ok(h)
}
