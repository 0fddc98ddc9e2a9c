//! `/api/pair` and `/api/paired`: a new device earns its accounts, and the owner lists and
//! revokes paired devices (docs/security.md, "Pairing").
//!
//! Owns reading these requests and handing over the credentials. The codes and their rules
//! are `axon_core::trust::pairing`'s; the broker account is made by the Hub over its own
//! connection; who may call which of these routes is decided in [`super::dispatch`].

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::protocol::mcp::topics::{covered_by_filters, DeviceId};
use axon_core::trust::broker;
use axon_core::trust::pairing::{Collected, PairError, RANDOM_BYTES};
use axon_core::trust::rate::Limit;
use serde_json::{json, Value};
use worker::{Request, Response, Result};

use crate::clock::now;
use crate::http::{bad_request, error_response, json_body};
use crate::hub::Ctx;
use crate::trust::{new_secret, random_bytes, Kind};

fn refused(status: u16, e: &PairError) -> Result<Response> {
    error_response(
        status,
        &ErrorObject::new(code::INVALID_PARAMS, e.to_string()),
    )
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// `POST /api/pair {"device": "kitchen-tab", "kind": "virtual"}` → `{pair_id, code, secret,
/// expires_in_s}`. Anyone may ask (a new device has nothing else); asking is rate-limited per
/// address and the number waiting is bounded. A device built on another SDK adds its MCP
/// `"server_name"` (e.g. `demo/light/ts-light-1`): named outside the site's filters, it is
/// discovered by that name once approved.
pub async fn begin(ctx: &Ctx, mut req: Request) -> Result<Response> {
    let body = match json_body(&mut req, 4096).await {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let (Some(device), Some(kind)) = (field(&body, "device"), field(&body, "kind")) else {
        return bad_request("the body needs \"device\" (the id it proposes) and \"kind\", e.g. {\"device\":\"kitchen-tab\",\"kind\":\"virtual\"}");
    };
    if ctx
        .store()
        .subjects(Kind::Device)?
        .iter()
        .any(|d| d == device)
    {
        return error_response(
            409,
            &ErrorObject::new(
                code::INVALID_PARAMS,
                format!("device {device} is already paired: the owner revokes it first (DELETE /api/paired/{device}), or pick another id"),
            ),
        );
    }
    let server_name = match body.get("server_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.as_str()),
        Some(_) => {
            return bad_request(
                "\"server_name\" must be a string: the device's MCP server name, e.g. \"demo/light/ts-light-1\"",
            )
        }
    };
    let random = random_bytes(RANDOM_BYTES)?;
    match ctx.pairings(|p| p.begin(now(), device, kind, server_name, &random)) {
        Ok(ticket) => {
            worker::console_log!("pairing: device {device} ({kind}) waits for the owner");
            Response::from_json(&ticket)
        }
        Err(e @ PairError::TooMany) => refused(503, &e),
        Err(e) => refused(400, &e),
    }
}

/// `POST /api/pair/collect {"pair_id": "…", "secret": "…"}` → `{"waiting": true,
/// "expires_in_s": N}` until the owner approves, then the credentials, once.
pub async fn collect(ctx: &Ctx, mut req: Request) -> Result<Response> {
    let body = match json_body(&mut req, 4096).await {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let (Some(id), Some(secret)) = (field(&body, "pair_id"), field(&body, "secret")) else {
        return bad_request("the body needs \"pair_id\" and \"secret\" from POST /api/pair");
    };
    match ctx.pairings(|p| p.collect(now(), id, secret)) {
        Ok(Collected::Waiting { expires_in_s }) => {
            Response::from_json(&json!({"waiting": true, "expires_in_s": expires_in_s}))
        }
        Ok(Collected::Ready(credentials)) => Response::from_json(&credentials),
        Err(e @ PairError::Expired(_)) => refused(410, &e),
        Err(e) => refused(404, &e),
    }
}

/// `GET /api/pair`: the devices waiting (never their codes).
pub fn waiting(ctx: &Ctx) -> Result<Response> {
    Response::from_json(&json!({ "waiting": ctx.pairings(|p| p.waiting(now())) }))
}

/// `POST /api/pair/approve {"code": "7KQ3-M9ZD"}`: creates the device's broker account and
/// worker credential and hands them to the waiting device.
pub async fn approve(ctx: &Ctx, mut req: Request, address: &str) -> Result<Response> {
    let body = match json_body(&mut req, 4096).await {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(code_typed) = field(&body, "code") else {
        return bad_request("the body needs \"code\": the code the device shows");
    };
    let approval = match ctx.pairings(|p| p.approve(now(), code_typed)) {
        Ok(a) => a,
        Err(e) => {
            // Wrong codes are guesses: slow them down (per credential's address).
            if let Err(wait) = ctx.rate_check(&format!("code:{address}"), Limit::GUESSES) {
                return super::too_many(wait, "wrong codes");
            }
            let status = if matches!(e, PairError::Expired(_)) {
                410
            } else {
                404
            };
            return refused(status, &e);
        }
    };
    // The device's one secret: its worker credential and its broker password.
    let password = new_secret("axd_")?;
    // A name the site's filters miss is discovered as a filter of its own.
    let own_name = approval
        .server_name
        .clone()
        .filter(|n| !covered_by_filters(n, &ctx.server_name_filters()));
    if let Err(e) =
        broker_account(ctx, &approval.device, Some(&password), own_name.as_deref()).await
    {
        ctx.pairings(|p| p.fail(&approval.pair_id));
        return error_response(502, &e);
    }
    ctx.store()
        .add(&password, Kind::Device, &approval.device, None)?;
    if let Some(name) = &own_name {
        ctx.store().add_paired_name(&approval.device, name)?;
        if let Err(e) = ctx.discover_paired_name(name, true) {
            worker::console_error!("pairing: device {}: {e}", approval.device);
        }
        worker::console_log!(
            "pairing: device {} is discovered by its name {name} (outside the site's filters)",
            approval.device
        );
    }
    let site = ctx.config().site.clone();
    ctx.pairings(|p| {
        p.grant(
            &approval.pair_id,
            json!({
                "device": approval.device,
                "kind": approval.kind,
                "site": site,
                "username": approval.device,
                "password": password,
                "token": password,
            }),
        )
    });
    worker::console_log!("pairing: device {} approved", approval.device);
    Response::from_json(&json!({"device": approval.device, "kind": approval.kind, "paired": true}))
}

/// `GET /api/paired`: the devices with an account made by pairing.
pub fn paired(ctx: &Ctx) -> Result<Response> {
    Response::from_json(&json!({ "paired": ctx.store().subjects(Kind::Device)? }))
}

/// Creates (`password` given) or deletes device `id`'s broker account, confined to its own
/// topics and reachable by this site's Hub only. A Hub that connects without an account (a
/// broker without accounts) has none to manage.
/// `own_name` is the device's server name when the site discovers it by name: the site's
/// role may then subscribe to that presence (removed again on revoke).
async fn broker_account(
    ctx: &Ctx,
    id: &str,
    password: Option<&str>,
    own_name: Option<&str>,
) -> std::result::Result<(), ErrorObject> {
    if ctx.config().broker_credentials.is_none() {
        return Ok(());
    }
    let bad = |e: String| ErrorObject::new(code::INVALID_PARAMS, e);
    let device = DeviceId::new(id).map_err(|e| bad(e.to_string()))?;
    let site = ctx.config().site.clone();
    let mut batch = match password {
        Some(p) => {
            broker::provision_device(ctx.batch_id(), &device, broker::Secret::new(p), Some(&site))
        }
        None => broker::revoke_device(ctx.batch_id(), &device, Some(&site)),
    }
    .map_err(|e| bad(e.to_string()))?;
    if let Some(name) = own_name {
        batch
            .site_server_name(&site, name, password.is_none())
            .map_err(|e| bad(e.to_string()))?;
    }
    ctx.change_accounts(batch).await
}

/// `DELETE /api/paired/{id}`: the device's credential and broker account are gone (which
/// closes its broker connection); its next request is refused.
pub async fn revoke(ctx: &Ctx, id: &str) -> Result<Response> {
    let paired = ctx.store().subjects(Kind::Device)?.iter().any(|d| d == id);
    let own_name = ctx
        .store()
        .paired_names()?
        .into_iter()
        .find(|(d, _)| d == id)
        .map(|(_, n)| n);
    if paired {
        // The broker account first: a device that cannot be cut off stays listed.
        if let Err(e) = broker_account(ctx, id, None, own_name.as_deref()).await {
            return error_response(502, &e);
        }
    }
    if let Some(name) = &own_name {
        ctx.store().remove_paired_name(id)?;
        let _ = ctx.discover_paired_name(name, false);
    }
    let n = ctx.store().revoke(&[Kind::Device], id)?;
    if n == 0 {
        return error_response(
            404,
            &ErrorObject::new(
                code::INVALID_PARAMS,
                format!("device {id} is not paired: GET /api/paired lists them"),
            ),
        );
    }
    worker::console_log!("pairing: device {id} revoked");
    Response::from_json(&json!({"device": id, "revoked": true}))
}
