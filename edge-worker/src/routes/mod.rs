//! The worker's routes: one table from (method, path) to the handler that owns it, and the
//! one check every route passes first: who is asking, whether they may, and how often.
//!
//! Owns which request goes where, the 404 that lists what exists, and applying
//! `axon_core::trust` (access and rate limits) to every request, once. Every handler takes the
//! site's [`Hub`](crate::hub::Hub) and the proven [`Principal`] and uses the Hub's methods;
//! the Hub never calls a route. `/mcp` checks its own bearer token (`AXON_MCP_TOKEN`): MCP
//! clients are neither people nor devices.

mod account;
mod chat;
mod devices;
mod mcp;
mod pair;
mod voice;

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::trust::access::{Access, Action, Principal};
use axon_core::trust::rate::Limit;
use worker::{Headers, Method, Request, Response, Result};

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
    /// `POST /api/session` signs in, `GET` says who is signed in, `DELETE` signs out.
    Session(Method),
    /// `GET /api/activity`: who called which tool.
    Activity,
    /// `GET /api/people`, `POST /api/people` (a new person's token).
    People(Method),
    /// `DELETE /api/people/{name}`.
    RemovePerson(String),
    /// `POST /api/pair`: a device asks for a code.
    PairBegin,
    /// `POST /api/pair/collect`: the device polls for its credentials.
    PairCollect,
    /// `GET /api/pair`: the devices waiting for the owner.
    PairWaiting,
    /// `POST /api/pair/approve`: the owner enters a code.
    PairApprove,
    /// `GET /api/paired`: the paired devices.
    Paired,
    /// `DELETE /api/paired/{id}`: revoke a device.
    Revoke(String),
    /// `/mcp`, every method (the MCP transport answers wrong ones itself).
    Mcp,
}

/// Every route, for the 404's message.
const ROUTES: &str = "/healthz, /api/devices, /api/chat, /api/confirm, /api/events, /api/memory, \
                      /api/voice, /api/session, /api/activity, /api/people, /api/pair, /api/paired, /mcp";

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
            (Method::Get | Method::Post | Method::Delete, ["api", "session"]) => {
                Route::Session(method.clone())
            }
            (Method::Get, ["api", "activity"]) => Route::Activity,
            (Method::Get | Method::Post, ["api", "people"]) => Route::People(method.clone()),
            (Method::Delete, ["api", "people", name]) => Route::RemovePerson(name.to_string()),
            (Method::Post, ["api", "pair"]) => Route::PairBegin,
            (Method::Post, ["api", "pair", "collect"]) => Route::PairCollect,
            (Method::Get, ["api", "pair"]) => Route::PairWaiting,
            (Method::Post, ["api", "pair", "approve"]) => Route::PairApprove,
            (Method::Get, ["api", "paired"]) => Route::Paired,
            (Method::Delete, ["api", "paired", id]) => Route::Revoke(id.to_string()),
            _ => return None,
        })
    }

    /// What the route asks to do, for `axon_core::trust::access`.
    pub fn action(&self) -> Action {
        match self {
            Route::Health => Action::Health,
            Route::Devices | Route::Device(_) => Action::ReadDevices,
            Route::CallTool(..) => Action::CallTool,
            Route::Chat => Action::Chat,
            Route::Confirm => Action::Approve,
            Route::Memory { .. } => Action::Memory,
            Route::Events => Action::ReadEvents,
            Route::Voice => Action::Voice,
            Route::Session(_) => Action::Session,
            Route::PairBegin | Route::PairCollect => Action::PairDevice,
            Route::Activity
            | Route::People(_)
            | Route::RemovePerson(_)
            | Route::PairWaiting
            | Route::PairApprove
            | Route::Paired
            | Route::Revoke(_) => Action::Administer,
            // Checked by the /mcp route's own token.
            Route::Mcp => Action::Health,
        }
    }
}

/// The network address a request came from (Cloudflare's header; `local` under wrangler dev
/// without one).
pub fn client_address(req: &Request) -> String {
    req.headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "local".into())
}

/// Who `req` is.
pub fn principal_of(ctx: &Ctx, req: &Request) -> Principal {
    let origin = req.headers().get("origin").ok().flatten();
    ctx.store().principal(
        ctx.config(),
        &crate::trust::presented(req),
        origin.as_deref(),
    )
}

/// A 429 with `Retry-After`.
pub fn too_many(retry_after_s: u64, what: &str) -> Result<Response> {
    let r = error_response(
        429,
        &ErrorObject::new(
            code::DENIED,
            format!("too many {what}: try again in {retry_after_s} s"),
        ),
    )?;
    let h = Headers::new();
    h.set("content-type", "application/json")?;
    h.set("retry-after", &retry_after_s.to_string())?;
    Ok(r.with_headers(h))
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
    if route == Route::Mcp {
        return mcp::handle(ctx, req).await;
    }
    let who = principal_of(ctx, &req);
    let action = route.action();
    // How often: guesses and pairing requests per address, everything else per credential.
    let address = client_address(&req);
    let allowance = match (&who, action) {
        (_, Action::Health) => None,
        // A waiting device polls every few seconds; asking for codes is what is scarce.
        _ if route == Route::PairCollect => {
            Some((format!("collect:{address}"), Limit::TALK, "pairing polls"))
        }
        (Principal::Invalid(_), _) => Some((
            format!("guess:{address}"),
            Limit::GUESSES,
            "refused credentials",
        )),
        (_, Action::PairDevice) => Some((
            format!("pair:{address}"),
            Limit::PAIRING,
            "pairing requests",
        )),
        (Principal::Stranger, _) => None,
        (Principal::Owner | Principal::Person(_), _) => {
            Some((who.label(), Limit::PERSON, "requests"))
        }
        (Principal::Widget { .. }, _) => Some((
            format!("{}:{address}", who.label()),
            Limit::TALK,
            "requests",
        )),
        (Principal::Device(_), _) => Some((who.label(), Limit::TALK, "requests")),
        // One voice session per call, for every calling device: a person's allowance.
        (Principal::MediaEndpoint, _) => Some((who.label(), Limit::PERSON, "requests")),
    };
    if let Some((key, limit, what)) = allowance {
        if let Err(wait) = ctx.rate_check(&key, limit) {
            return too_many(wait, what);
        }
    }
    if let Access::Refuse { status, error } = who.may(action) {
        let r = error_response(status, &error)?;
        if status == 401 {
            let h = Headers::new();
            h.set("content-type", "application/json")?;
            h.set("www-authenticate", "Bearer realm=\"axon\"")?;
            return Ok(r.with_headers(h));
        }
        return Ok(r);
    }
    match route {
        Route::Health => Response::from_json(&ctx.health(who.sees_details())),
        Route::Devices => devices::list(ctx, &req),
        Route::Device(id) => devices::detail(ctx, &id),
        Route::CallTool(id, tool) => devices::call_tool(ctx, req, &id, &tool, &who).await,
        Route::Chat => chat::start(ctx, req, &who).await,
        Route::Confirm => chat::confirm(ctx, req).await,
        Route::Memory { forget } => chat::memory(ctx, &req, forget, &who),
        Route::Events => sse_response(ctx.subscribe_events()),
        Route::Voice => voice::handle(ctx, req, who).await,
        Route::Session(m) => account::session(ctx, req, m, &who).await,
        Route::Activity => account::activity(ctx, &req),
        Route::People(m) => account::people(ctx, req, m).await,
        Route::RemovePerson(name) => account::remove_person(ctx, &name),
        Route::PairBegin => pair::begin(ctx, req).await,
        Route::PairCollect => pair::collect(ctx, req).await,
        Route::PairWaiting => pair::waiting(ctx),
        Route::PairApprove => pair::approve(ctx, req, &address).await,
        Route::Paired => pair::paired(ctx),
        Route::Revoke(id) => pair::revoke(ctx, &id).await,
        Route::Mcp => unreachable!("answered above"),
    }
}
