//! HTTP helpers every route shares: error bodies and statuses, reading a JSON body within a
//! limit, and the request parameters several routes take (`user`, `device`).
//!
//! Owns how a refusal or bad input looks on the wire (`{"error": {code, message}}` with a
//! message a person can act on). It never decides whether a request may proceed: the routes
//! and `axon-core` do.

use axon_core::protocol::jsonrpc::{code, ErrorObject};
use serde_json::{json, Value};
use worker::{Headers, Request, Response, Result};

/// A JSON-RPC error object as an HTTP response.
pub fn error_response(status: u16, e: &ErrorObject) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": e }))?.with_status(status))
}

/// A 400 with a message a person can act on.
pub fn bad_request(message: impl Into<String>) -> Result<Response> {
    error_response(400, &ErrorObject::new(code::INVALID_REQUEST, message))
}

/// `{"error": "message"}` with a status (the `/mcp` transport's own refusals).
pub fn plain(status: u16, message: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({"error": message}))?.with_status(status))
}

/// A 401 that names the bearer realm.
pub fn unauthorized(realm: &str, message: &str) -> Result<Response> {
    let r = plain(401, message)?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("www-authenticate", &format!("Bearer realm=\"{realm}\""))?;
    Ok(r.with_headers(headers))
}

/// Reads a JSON object body, or says what is wrong with it.
pub async fn json_body(req: &mut Request, limit: usize) -> std::result::Result<Value, String> {
    let bytes = req
        .bytes()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?;
    if bytes.len() > limit {
        return Err(format!(
            "the body is {} bytes; the limit is {limit}",
            bytes.len()
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty; send a JSON object".into());
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("the body must be a JSON object".into());
    }
    Ok(v)
}

/// The HTTP status of a Hub error.
pub fn status_of(e: &ErrorObject) -> u16 {
    match e.code {
        code::DEVICE_OFFLINE => 404,
        code::INVALID_PARAMS | code::INVALID_REQUEST | code::PARSE_ERROR => 400,
        code::DENIED => 403,
        code::REQUEST_TIMEOUT => 504,
        code::BROKER_UNAVAILABLE => 503,
        _ => 502,
    }
}

/// The person a request speaks for (`"user"`; `default` when absent).
pub fn user_of(v: &Value) -> std::result::Result<String, String> {
    match v.get("user") {
        None | Some(Value::Null) => Ok("default".into()),
        Some(Value::String(u))
            if !u.is_empty()
                && u.len() <= 64
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) =>
        {
            Ok(u.clone())
        }
        Some(_) => Err("\"user\" must be 1 to 64 letters, digits or - _ . @".into()),
    }
}

/// The device the person is using (`"device"`), if the body names one.
pub fn device_of(v: &Value) -> std::result::Result<Option<String>, String> {
    match v.get("device") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(d)) => axon_core::protocol::mcp::topics::DeviceId::new(d.clone())
            .map(|_| Some(d.clone()))
            .map_err(|e| format!("\"device\": {e}")),
        Some(_) => Err("\"device\" must be a device id string".into()),
    }
}

/// A query parameter's value.
pub fn query(req: &Request, key: &str) -> Result<Option<String>> {
    Ok(req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string()))
}
