//! JSON-RPC 2.0 envelopes, ids and error objects, as MCP 2025-06-18 uses them.
//!
//! Owns turning bytes into a [`Message`] and back. A parse failure is not a Rust error but a
//! wire error: [`parse`] returns the [`ErrorObject`] to send back (with the request id when it
//! could be found), so the shell can answer `-32700`/`-32600` without thinking.
//! Never does I/O and never panics on input.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON value as compact text, the same bytes [`Message::to_bytes`] writes. Use it instead of
/// `Value`'s `Display` (`to_string()`, `{}`) in code a browser page carries: `Display` is a
/// second and third copy of serde_json's serializer (compact and pretty) beside the one that
/// writes messages.
pub fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A required string member of a JSON object.
pub(crate) fn string_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("`{path}` must be a string")),
        None => Err(format!("missing field `{path}`")),
    }
}

/// Standard and Axon error codes (docs/protocol.md §7).
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid request object (also: payload too large).
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid params, unknown tool, invalid tool arguments, unsupported protocol version.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP: resource not found.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// Axon: the device is offline or unknown.
    pub const DEVICE_OFFLINE: i64 = -32010;
    /// Axon: the request timed out.
    pub const REQUEST_TIMEOUT: i64 = -32011;
    /// Axon: denied by policy or declined by the user.
    pub const DENIED: i64 = -32012;
    /// Axon: the broker is unavailable.
    pub const BROKER_UNAVAILABLE: i64 = -32013;
}

/// A JSON-RPC request id: a string or an integer, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id (the TS SDK ignores id 0, so Axon numbers from 1).
    Number(i64),
    /// A string id.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl RequestId {
    fn from_value(v: &Value) -> Option<RequestId> {
        match v {
            Value::String(s) => Some(RequestId::String(s.clone())),
            Value::Number(n) => n.as_i64().map(RequestId::Number),
            _ => None,
        }
    }
}

/// A JSON-RPC error object: `{code, message, data?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code (see [`code`]).
    pub code: i64,
    /// A short description a person can act on.
    pub message: String,
    /// Machine-readable detail, e.g. `{"field":"arguments.level","reason":"expected integer"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// Reads `{code, message, data?}`. By hand rather than with the derive, so that a peer that
    /// only parses messages carries no serde deserializer for JSON values (see
    /// `InitializeParams::from_value`).
    pub fn from_value(v: Value) -> Result<Self, String> {
        let Value::Object(mut obj) = v else {
            return Err("an error must be an object".into());
        };
        let code = match obj.get("code") {
            Some(c) => c.as_i64().ok_or("`code` must be an integer")?,
            None => return Err("missing field `code`".into()),
        };
        let message = string_field(&obj, "message", "message")?;
        let data = obj.remove("data").filter(|d| !d.is_null());
        Ok(ErrorObject {
            code,
            message,
            data,
        })
    }

    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// An error with data.
    pub fn with_data(code: i64, message: impl Into<String>, data: Value) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: Some(data),
        }
    }

    /// `-32601` for `method`.
    pub fn method_not_found(method: &str) -> Self {
        Self::with_data(
            code::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
            serde_json::json!({ "method": method }),
        )
    }

    /// `-32602` with a message.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }

    /// `-32600` "payload too large" with the limit and the size (docs/protocol.md §6.5).
    pub fn payload_too_large(size: usize, limit: usize) -> Self {
        Self::with_data(
            code::INVALID_REQUEST,
            format!("payload too large: {size} bytes exceeds the {limit} byte limit"),
            serde_json::json!({ "limit": limit, "size": size }),
        )
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// A request: it expects a response with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Correlates the response.
    pub id: RequestId,
    /// e.g. `tools/call`.
    pub method: String,
    /// Absent params are `None`.
    pub params: Option<Value>,
}

/// A notification: never answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// e.g. `notifications/initialized`.
    pub method: String,
    /// Absent params are `None`.
    pub params: Option<Value>,
}

/// A response: a result or an error, never both.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request it answers; `None` only for errors about unreadable requests.
    pub id: Option<RequestId>,
    /// The result or the error.
    pub outcome: Result<Value, ErrorObject>,
}

/// Any JSON-RPC 2.0 message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response.
    Response(Response),
}

/// Why bytes could not be read as a message, and what to answer (if anything).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure {
    /// The id of the request, when it could be found cheaply; `None` serialises as `null`.
    pub id: Option<RequestId>,
    /// The error to send back.
    pub error: ErrorObject,
    /// Whether the bytes looked like a request (answer) or not (a bad response or
    /// notification is never answered, to avoid ping-pong between two confused peers).
    pub answerable: bool,
}

impl ParseFailure {
    /// The error response to publish back, if this failure deserves one.
    pub fn response(&self) -> Option<Response> {
        self.answerable.then(|| Response {
            id: self.id.clone(),
            outcome: Err(self.error.clone()),
        })
    }
}

/// Reads one JSON-RPC message. Never panics; every failure names what was wrong.
pub fn parse(bytes: &[u8]) -> Result<Message, ParseFailure> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseFailure {
        id: None,
        error: ErrorObject::new(code::PARSE_ERROR, format!("parse error: {e}")),
        answerable: true,
    })?;
    from_value(value)
}

/// Reads one JSON-RPC message from an already parsed JSON value.
pub fn from_value(value: Value) -> Result<Message, ParseFailure> {
    let invalid = |id: Option<RequestId>, msg: String, answerable: bool| ParseFailure {
        id,
        error: ErrorObject::new(code::INVALID_REQUEST, format!("invalid request: {msg}")),
        answerable,
    };
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batches are not supported (MCP 2025-06-18)"
        } else {
            "expected a JSON object"
        };
        return Err(invalid(None, what.into(), true));
    };
    let raw_id = obj.remove("id");
    let id = raw_id.as_ref().and_then(RequestId::from_value);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        // Only what looks like a request is answered (docs/protocol.md §7): answering a bad
        // response or notification lets two confused peers ping-pong errors.
        let request_shaped = raw_id.is_some() && obj.contains_key("method");
        return Err(invalid(
            id,
            "\"jsonrpc\" must be \"2.0\"".into(),
            request_shaped,
        ));
    }
    let method = obj.remove("method");
    let params = obj.remove("params");
    if let Some(method) = method {
        let Value::String(method) = method else {
            return Err(invalid(
                id,
                "\"method\" must be a string".into(),
                raw_id.is_some(),
            ));
        };
        if let Some(p) = &params {
            if !(p.is_object() || p.is_array()) {
                return Err(invalid(
                    id,
                    "\"params\" must be an object or an array".into(),
                    raw_id.is_some(),
                ));
            }
        }
        return match raw_id {
            None => Ok(Message::Notification(Notification { method, params })),
            Some(raw) => match id {
                Some(id) => Ok(Message::Request(Request { id, method, params })),
                None => Err(invalid(
                    None,
                    format!(
                        "\"id\" must be a string or an integer, got {}",
                        json_text(&raw)
                    ),
                    true,
                )),
            },
        };
    }
    // A response.
    let result = obj.remove("result");
    let error = obj.remove("error");
    let outcome = match (result, error) {
        (Some(r), None) => Ok(r),
        (None, Some(e)) => match ErrorObject::from_value(e) {
            Ok(e) => Err(e),
            Err(e) => return Err(invalid(id, format!("bad error object: {e}"), false)),
        },
        (Some(_), Some(_)) => {
            return Err(invalid(
                id,
                "a response carries result or error, not both".into(),
                false,
            ))
        }
        (None, None) => return Err(invalid(id, "no method, result or error".into(), false)),
    };
    Ok(Message::Response(Response { id, outcome }))
}

impl Message {
    /// The message as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), Value::from("2.0"));
        match self {
            Message::Request(r) => {
                obj.insert("id".into(), id_value(Some(&r.id)));
                obj.insert("method".into(), Value::from(r.method.clone()));
                if let Some(p) = &r.params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Notification(n) => {
                obj.insert("method".into(), Value::from(n.method.clone()));
                if let Some(p) = &n.params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Response(r) => {
                obj.insert("id".into(), id_value(r.id.as_ref()));
                match &r.outcome {
                    Ok(v) => obj.insert("result".into(), v.clone()),
                    Err(e) => obj.insert(
                        "error".into(),
                        serde_json::to_value(e).unwrap_or(Value::Null),
                    ),
                };
            }
        }
        Value::Object(obj)
    }

    /// The message serialised to compact JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a `Value` cannot fail: every key is a string.
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// A request.
    pub fn request(id: RequestId, method: impl Into<String>, params: Option<Value>) -> Self {
        Message::Request(Request {
            id,
            method: method.into(),
            params,
        })
    }

    /// A notification.
    pub fn notification(method: impl Into<String>, params: Option<Value>) -> Self {
        Message::Notification(Notification {
            method: method.into(),
            params,
        })
    }

    /// A successful response.
    pub fn result(id: RequestId, result: Value) -> Self {
        Message::Response(Response {
            id: Some(id),
            outcome: Ok(result),
        })
    }

    /// An error response.
    pub fn error(id: Option<RequestId>, error: ErrorObject) -> Self {
        Message::Response(Response {
            id,
            outcome: Err(error),
        })
    }
}

fn id_value(id: Option<&RequestId>) -> Value {
    match id {
        Some(RequestId::Number(n)) => Value::from(*n),
        Some(RequestId::String(s)) => Value::from(s.clone()),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_objects_read_by_hand_agree_with_the_derive() {
        for v in [
            json!({"code":-32602,"message":"bad level"}),
            json!({"code":-32010,"message":"offline","data":{"device":"k1"}}),
            json!({"code":1,"message":"","data":null,"extra":true}),
        ] {
            let derived: ErrorObject = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(ErrorObject::from_value(v).unwrap(), derived);
        }
        for (v, expected) in [
            (json!("oops"), "an error must be an object"),
            (json!({"message":"x"}), "missing field `code`"),
            (
                json!({"code":1.5,"message":"x"}),
                "`code` must be an integer",
            ),
            (json!({"code":1}), "missing field `message`"),
            (json!({"code":1,"message":{}}), "`message` must be a string"),
        ] {
            assert!(
                serde_json::from_value::<ErrorObject>(v.clone()).is_err(),
                "the derive agrees on {v}"
            );
            assert_eq!(ErrorObject::from_value(v).unwrap_err(), expected);
        }
        let e =
            parse(br#"{"jsonrpc":"2.0","id":3,"error":{"code":"x","message":"m"}}"#).unwrap_err();
        assert!(
            e.error
                .message
                .contains("bad error object: `code` must be an integer"),
            "{}",
            e.error.message
        );
    }

    #[test]
    fn parses_request_notification_and_response() {
        let m = parse(br#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#).unwrap();
        assert_eq!(m, Message::request(RequestId::Number(0), "ping", None));
        let m = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(m, Message::Notification(_)));
        let m = parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(m, Message::result(RequestId::String("a".into()), json!({})));
        let m =
            parse(br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"x"}}"#).unwrap();
        assert!(matches!(
            m,
            Message::Response(Response {
                outcome: Err(ErrorObject { code: -32601, .. }),
                ..
            })
        ));
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_null_id() {
        let f = parse(b"{not json").unwrap_err();
        assert_eq!(f.error.code, code::PARSE_ERROR);
        assert_eq!(f.id, None);
        let resp = Message::Response(f.response().unwrap()).to_value();
        assert_eq!(resp["id"], Value::Null);
        assert_eq!(resp["error"]["code"], -32700);
    }

    #[test]
    fn invalid_requests_keep_their_id() {
        let f = parse(br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#).unwrap_err();
        assert_eq!(
            (f.error.code, f.id),
            (code::INVALID_REQUEST, Some(RequestId::Number(7)))
        );
        let f = parse(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).unwrap_err();
        assert_eq!(f.error.code, code::INVALID_REQUEST);
        let f = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert!(f.error.message.contains("batch"));
        let f = parse(br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":""}}"#)
            .unwrap_err();
        assert!(!f.answerable, "a bad response is never answered");
    }

    /// Found by `axon-device-sim hostile` (rpc family): a response or notification with a wrong
    /// `jsonrpc` was marked answerable, so a device answered it.
    #[test]
    fn a_wrong_version_is_answered_only_for_a_request() {
        for (bytes, answerable) in [
            (&br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#[..], true),
            (br#"{"id":7,"method":"ping"}"#, true),
            (
                br#"{"jsonrpc":"1.0","method":"notifications/initialized"}"#,
                false,
            ),
            (br#"{"jsonrpc":"1.0","id":4,"result":{}}"#, false),
            (br#"{"":{"":null},"id":4,"":""}"#, false),
        ] {
            let f = parse(bytes).unwrap_err();
            assert_eq!(f.error.code, code::INVALID_REQUEST);
            assert_eq!(
                f.answerable,
                answerable,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn round_trips_through_bytes() {
        let m = Message::request(
            RequestId::String("x".into()),
            "tools/call",
            Some(json!({"name":"a"})),
        );
        assert_eq!(parse(&m.to_bytes()).unwrap(), m);
        let m = Message::error(None, ErrorObject::payload_too_large(300_000, 262_144));
        assert_eq!(parse(&m.to_bytes()).unwrap(), m);
    }
}
