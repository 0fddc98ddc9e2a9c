//! `/api/session` (the console signs in once), `/api/people` (the owner gives a person a
//! token) and `/api/activity` (who called which tool).
//!
//! Owns reading these requests and the session cookie's attributes. Who may come here is
//! decided in [`super::dispatch`]; the credentials themselves are [`crate::trust::Store`]'s.

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use axon_core::trust::access::{valid_person, Principal, OWNER};
use serde_json::{json, Value};
use worker::{Headers, Method, Request, Response, Result};

use crate::clock::now;
use crate::http::{bad_request, error_response, json_body, query};
use crate::hub::Ctx;
use crate::trust::{new_secret, presented, Kind, Presented, SESSION_COOKIE, SESSION_MS};

/// `POST /api/session {"token": "…"}` signs in (a session cookie: HttpOnly, SameSite=Strict,
/// Secure over https); `GET` says who is signed in; `DELETE` signs out.
pub async fn session(
    ctx: &Ctx,
    mut req: Request,
    method: Method,
    who: &Principal,
) -> Result<Response> {
    match method {
        Method::Get => match who {
            Principal::Owner | Principal::Person(_) => Response::from_json(&json!({
                "signed_in": true,
                "person": who.person(),
                "owner": matches!(who, Principal::Owner),
            })),
            _ => error_response(
                401,
                &ErrorObject::new(
                    code::DENIED,
                    "not signed in: POST /api/session {\"token\": …}",
                ),
            ),
        },
        Method::Delete => {
            if let Presented::Session(s) = presented(&req) {
                ctx.store().remove(&s)?;
            }
            let h = Headers::new();
            h.set("set-cookie", &cookie(&req, "", 0))?;
            Ok(Response::from_json(&json!({"signed_in": false}))?.with_headers(h))
        }
        _ => {
            let body = match json_body(&mut req, 4096).await {
                Ok(v) => v,
                Err(e) => return bad_request(e),
            };
            let Some(token) = body.get("token").and_then(Value::as_str) else {
                return bad_request(
                    "the body needs \"token\": the owner token or a person's token",
                );
            };
            let subject = match ctx.store().principal(
                ctx.config(),
                &Presented::Token(token.trim().to_string()),
                None,
            ) {
                Principal::Owner => OWNER.to_string(),
                Principal::Person(p) => p,
                Principal::Invalid(why) => {
                    if let Err(wait) = ctx.rate_check(
                        &format!("guess:{}", super::client_address(&req)),
                        axon_core::trust::rate::Limit::GUESSES,
                    ) {
                        return super::too_many(wait, "refused credentials");
                    }
                    return error_response(
                        401,
                        &ErrorObject::new(code::DENIED, format!("cannot sign in: {why}")),
                    );
                }
                _ => {
                    return error_response(
                        403,
                        &ErrorObject::new(
                            code::DENIED,
                            "only the owner token or a person's token signs in to the console",
                        ),
                    )
                }
            };
            let secret = new_secret("axs_")?;
            ctx.store().add(
                &secret,
                Kind::Session,
                &subject,
                Some(now().as_millis() + SESSION_MS),
            )?;
            let h = Headers::new();
            h.set("content-type", "application/json")?;
            h.set("set-cookie", &cookie(&req, &secret, SESSION_MS / 1000))?;
            Ok(Response::from_json(&json!({
                "signed_in": true,
                "person": subject,
                "owner": subject == OWNER,
            }))?
            .with_headers(h))
        }
    }
}

/// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends
/// it), Secure when served over https (wrangler dev serves http on loopback).
fn cookie(req: &Request, value: &str, max_age_s: u64) -> String {
    let secure = req.url().map(|u| u.scheme() == "https").unwrap_or(true);
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `GET /api/activity?limit=N` (default 100, at most 1000), newest first.
pub fn activity(ctx: &Ctx, req: &Request) -> Result<Response> {
    let limit = match query(req, "limit")? {
        None => 100,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return bad_request("limit must be a number from 1 to 1000"),
        },
    };
    Response::from_json(&json!({ "activity": ctx.store().activity(limit)? }))
}

/// `GET /api/people` lists them; `POST /api/people {"person": "ada"}` makes (or replaces)
/// ada's token and shows it once.
pub async fn people(ctx: &Ctx, mut req: Request, method: Method) -> Result<Response> {
    if method == Method::Get {
        return Response::from_json(&json!({ "people": ctx.store().subjects(Kind::Person)? }));
    }
    let body = match json_body(&mut req, 4096).await {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(person) = body.get("person").and_then(Value::as_str) else {
        return bad_request("the body needs \"person\": a name like \"ada\"");
    };
    if !valid_person(person) || person == OWNER {
        return bad_request(format!(
            "{person:?} cannot be a person's name: 1 to 32 lower-case letters, digits, - or _, starting with a letter, and not \"owner\""
        ));
    }
    // A new token replaces the old one; the person's sessions end with it.
    ctx.store().revoke(&[Kind::Person, Kind::Session], person)?;
    let token = new_secret("axp_")?;
    ctx.store().add(&token, Kind::Person, person, None)?;
    Response::from_json(&json!({
        "person": person,
        "token": token,
        "note": "shown once: give it to the person; POST it to /api/session to sign in",
    }))
}

/// `DELETE /api/people/{name}`: the token and every session end.
pub fn remove_person(ctx: &Ctx, name: &str) -> Result<Response> {
    let n = ctx.store().revoke(&[Kind::Person, Kind::Session], name)?;
    if n == 0 {
        return error_response(
            404,
            &ErrorObject::new(
                code::INVALID_PARAMS,
                format!("no person {name:?}: GET /api/people lists them"),
            ),
        );
    }
    Response::from_json(&json!({"person": name, "removed": true}))
}
