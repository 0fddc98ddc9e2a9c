//! The Hub's aggregated MCP server (`/mcp`, Streamable HTTP 2025-06-18): every online device
//! tool as one MCP tool named `{device_id}.{tool}` (docs/protocol.md §6.7).
//!
//! Owns the JSON-RPC side of `/mcp`: initialize and version negotiation, the aggregated tool
//! list, name splitting, argument validation, the permission policy for outside callers
//! (`deny` refused, `confirm` refused with a pointer to the console: elicitation is not
//! offered yet), and turning Hub errors into `CallToolResult`s with `isError` and
//! `_meta["axon/error-code"]`. It never does HTTP, sessions or the device call itself: it
//! answers, or says which device call to make.

use serde_json::{json, Map, Value};

use crate::protocol::jsonrpc::{self, code, ErrorObject, Message, RequestId};
use crate::protocol::mcp::client::{DeviceInfo, DeviceState};
use crate::protocol::mcp::types::{
    CallToolResult, LATEST_PROTOCOL_VERSION, META_DEVICE_ID, META_ERROR_CODE,
};
use crate::protocol::tool::{
    authorize, effective_permission, validate_arguments, Caller, SitePolicy, Verdict,
};

/// Versions `/mcp` speaks (Streamable HTTP exists from 2025-03-26 on).
pub const HTTP_PROTOCOL_VERSIONS: [&str; 2] = ["2025-06-18", "2025-03-26"];

/// What to do with one HTTP POST body.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayOutcome {
    /// Answer with this JSON-RPC message and HTTP status.
    Reply {
        /// 200, or 400 for a body that is not a JSON-RPC message.
        status: u16,
        /// The JSON-RPC response.
        body: Value,
        /// Set on an `initialize` answer: start a session.
        initialized: bool,
    },
    /// A notification or a response from the client: 202, no body.
    Accepted,
    /// Call this device tool, then answer with [`call_result`].
    Call {
        /// The JSON-RPC id to answer.
        id: RequestId,
        /// Device id.
        device: String,
        /// Tool name.
        tool: String,
        /// Validated arguments.
        arguments: Value,
    },
}

fn reply(id: RequestId, result: Value) -> GatewayOutcome {
    GatewayOutcome::Reply {
        status: 200,
        body: Message::result(id, result).to_value(),
        initialized: false,
    }
}

fn error(id: Option<RequestId>, e: ErrorObject, status: u16) -> GatewayOutcome {
    GatewayOutcome::Reply {
        status,
        body: Message::Response(jsonrpc::Response {
            id,
            outcome: Err(e),
        })
        .to_value(),
        initialized: false,
    }
}

/// The aggregated tool list: the original schemas, annotations and `_meta`, plus
/// `_meta["axon/device-id"]`, titled `{device title}: {tool title}`.
pub fn tools<'a>(devices: impl IntoIterator<Item = &'a DeviceInfo>) -> Vec<Value> {
    let mut devices: Vec<&DeviceInfo> = devices
        .into_iter()
        .filter(|d| d.state == DeviceState::Ready)
        .collect();
    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    let mut out = Vec::new();
    for d in devices {
        let device_title = d
            .meta
            .title
            .clone()
            .unwrap_or_else(|| d.device_id.to_string());
        for t in &d.tools {
            let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
            let Some(obj) = v.as_object_mut() else {
                continue;
            };
            obj.insert("name".into(), json!(format!("{}.{}", d.device_id, t.name)));
            let tool_title = t.title.clone().unwrap_or_else(|| t.name.replace('_', " "));
            obj.insert(
                "title".into(),
                json!(format!("{device_title}: {tool_title}")),
            );
            let meta = obj
                .entry("_meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = meta.as_object_mut() {
                m.insert(META_DEVICE_ID.into(), json!(d.device_id));
            }
            out.push(v);
        }
    }
    out
}

/// The notification `/mcp` streams when devices come or go.
pub fn list_changed() -> Value {
    Message::notification("notifications/tools/list_changed", None).to_value()
}

/// Handles one POSTed JSON-RPC message.
pub fn handle<'a>(
    body: &[u8],
    devices: impl IntoIterator<Item = &'a DeviceInfo> + Clone,
    policy: &SitePolicy,
) -> GatewayOutcome {
    let msg = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(f) => return error(f.id, f.error, 400),
    };
    let req = match msg {
        Message::Request(r) => r,
        Message::Notification(_) | Message::Response(_) => return GatewayOutcome::Accepted,
    };
    let params = req.params.clone().unwrap_or_else(|| json!({}));
    match req.method.as_str() {
        "initialize" => {
            let offered = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let version = HTTP_PROTOCOL_VERSIONS
                .iter()
                .find(|v| **v == offered)
                .copied()
                .unwrap_or(LATEST_PROTOCOL_VERSION);
            GatewayOutcome::Reply {
                status: 200,
                body: Message::result(
                    req.id,
                    json!({
                        "protocolVersion": version,
                        "capabilities": {"tools": {"listChanged": true}},
                        "serverInfo": {"name": "axon-hub", "title": "Axon Hub", "version": env!("CARGO_PKG_VERSION")},
                        "instructions": "Every online Axon device tool, named {device_id}.{tool}. Tools that need a person's confirmation must be run from the Axon console.",
                    }),
                )
                .to_value(),
                initialized: true,
            }
        }
        "ping" => reply(req.id, json!({})),
        "tools/list" => reply(req.id, json!({"tools": tools(devices)})),
        "tools/call" => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return error(
                    Some(req.id),
                    ErrorObject::invalid_params("tools/call needs params.name"),
                    200,
                );
            };
            let arguments = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let Some((device_id, tool_name)) = name.split_once('.') else {
                return error(
                    Some(req.id),
                    ErrorObject::invalid_params(format!(
                        "unknown tool {name:?}: tools are named device_id.tool (see tools/list)"
                    )),
                    200,
                );
            };
            let device = devices
                .clone()
                .into_iter()
                .find(|d| d.device_id == device_id);
            let Some(device) = device else {
                return reply(
                    req.id,
                    error_result(&ErrorObject::new(
                        code::DEVICE_OFFLINE,
                        format!("device {device_id} is unknown or offline"),
                    )),
                );
            };
            if device.state != DeviceState::Ready {
                return reply(
                    req.id,
                    error_result(&ErrorObject::new(
                        code::DEVICE_OFFLINE,
                        format!("device {device_id} is not ready ({:?})", device.state),
                    )),
                );
            }
            let Some(tool) = device.tool(tool_name) else {
                return error(
                    Some(req.id),
                    ErrorObject::invalid_params(format!(
                        "device {device_id} has no tool {tool_name:?}"
                    )),
                    200,
                );
            };
            if let Err(e) = validate_arguments(&tool.input_schema, &arguments) {
                return error(Some(req.id), e.to_error_object(), 200);
            }
            let permission = effective_permission(tool, policy.get(device_id, tool_name));
            match authorize(permission, device_id, tool_name, Caller::OutsideClient) {
                Verdict::Run => GatewayOutcome::Call {
                    id: req.id,
                    device: device_id.to_string(),
                    tool: tool_name.to_string(),
                    arguments,
                },
                Verdict::Refuse(e) => reply(req.id, error_result(&e)),
                // An outside client cannot ask a person: authorize refuses it instead.
                Verdict::AskPerson => reply(
                    req.id,
                    error_result(&ErrorObject::new(
                        code::DENIED,
                        "needs a person's confirmation",
                    )),
                ),
            }
        }
        other => error(Some(req.id), ErrorObject::method_not_found(other), 200),
    }
}

/// A Hub error as a `CallToolResult` the caller's model can read.
pub fn error_result(e: &ErrorObject) -> Value {
    let mut r = CallToolResult::tool_error(e.message.clone());
    let mut meta = Map::new();
    meta.insert(META_ERROR_CODE.into(), json!(e.code));
    r.meta = Some(meta);
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// The answer to a [`GatewayOutcome::Call`] once the device (or the Hub) has answered.
/// Invalid arguments stay JSON-RPC errors; offline, timeout, broker and denial become
/// `isError` results (docs/protocol.md §6.7, §7).
pub fn call_result(id: RequestId, outcome: Result<Value, ErrorObject>) -> Value {
    match outcome {
        Ok(v) => Message::result(id, v).to_value(),
        Err(e) if e.code == code::INVALID_PARAMS => Message::Response(jsonrpc::Response {
            id: Some(id),
            outcome: Err(e),
        })
        .to_value(),
        Err(e) => Message::result(id, error_result(&e)).to_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mcp::types::{DeviceMeta, Tool};

    fn home() -> Vec<DeviceInfo> {
        let mk = |id: &str, state: DeviceState, tools: Vec<Tool>| DeviceInfo {
            device_id: crate::protocol::mcp::topics::DeviceId::new(id).expect("test ids are valid"),
            server_id: id.into(),
            server_name: format!("axon/lamp/{id}"),
            description: String::new(),
            meta: DeviceMeta {
                device_id: id.into(),
                kind: "lamp".into(),
                room: None,
                title: Some("Kitchen lamp".into()),
                fw: None,
            },
            kind: "lamp".into(),
            state,
            tools,
            protocol_version: None,
            call_id_cache: true,
            last_seen: Default::default(),
        };
        let t = |name: &str, perm: Option<&str>| Tool {
            name: name.into(),
            title: Some("Set power".into()),
            description: None,
            input_schema: json!({"type":"object","properties":{"on":{"type":"boolean"}},"required":["on"]}),
            output_schema: None,
            annotations: None,
            meta: perm.map(|p| {
                let mut m = Map::new();
                m.insert("axon/permission".into(), json!(p));
                m
            }),
        };
        vec![
            mk(
                "kitchen-lamp",
                DeviceState::Ready,
                vec![
                    t("set_power", None),
                    t("self_destruct", Some("deny")),
                    t("unlock", Some("confirm")),
                ],
            ),
            mk(
                "gone-lamp",
                DeviceState::Offline,
                vec![t("set_power", None)],
            ),
        ]
    }

    fn call(name: &str, args: Value) -> GatewayOutcome {
        let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":args}});
        handle(body.to_string().as_bytes(), &home(), &SitePolicy::new())
    }

    fn body(o: GatewayOutcome) -> Value {
        match o {
            GatewayOutcome::Reply { body, .. } => body,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn initialize_negotiates_and_starts_a_session() {
        let o = handle(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            &home(),
            &SitePolicy::new(),
        );
        let GatewayOutcome::Reply {
            body, initialized, ..
        } = o
        else {
            panic!()
        };
        assert!(initialized);
        assert_eq!(body["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(body["result"]["capabilities"]["tools"]["listChanged"], true);
        let o = handle(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}"#,
            &home(),
            &SitePolicy::new(),
        );
        assert_eq!(
            body_of(o)["result"]["protocolVersion"],
            LATEST_PROTOCOL_VERSION
        );
    }

    fn body_of(o: GatewayOutcome) -> Value {
        body(o)
    }

    #[test]
    fn tools_are_listed_by_dotted_name_for_ready_devices_only() {
        let b = body(handle(
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            &home(),
            &SitePolicy::new(),
        ));
        let tools = b["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "kitchen-lamp.set_power",
                "kitchen-lamp.self_destruct",
                "kitchen-lamp.unlock"
            ]
        );
        assert_eq!(tools[0]["title"], "Kitchen lamp: Set power");
        assert_eq!(tools[0]["_meta"]["axon/device-id"], "kitchen-lamp");
        assert_eq!(tools[0]["inputSchema"]["required"][0], "on");
    }

    #[test]
    fn calls_are_checked_before_anything_is_sent() {
        assert_eq!(
            call("kitchen-lamp.set_power", json!({"on": true})),
            GatewayOutcome::Call {
                id: RequestId::Number(7),
                device: "kitchen-lamp".into(),
                tool: "set_power".into(),
                arguments: json!({"on": true}),
            }
        );
        let bad = body(call("kitchen-lamp.set_power", json!({"on": "yes"})));
        assert_eq!(bad["error"]["code"], code::INVALID_PARAMS);
        assert_eq!(bad["error"]["data"]["field"], "arguments.on");
        let unknown = body(call("kitchen-lamp.fly", json!({})));
        assert_eq!(unknown["error"]["code"], code::INVALID_PARAMS);
        let undotted = body(call("set_power", json!({})));
        assert!(undotted["error"]["message"]
            .as_str()
            .unwrap()
            .contains("device_id.tool"));
        let offline = body(call("gone-lamp.set_power", json!({"on": true})));
        assert_eq!(offline["result"]["isError"], true);
        assert_eq!(
            offline["result"]["_meta"]["axon/error-code"],
            code::DEVICE_OFFLINE
        );
        let nobody = body(call("nobody.set_power", json!({"on": true})));
        assert_eq!(
            nobody["result"]["_meta"]["axon/error-code"],
            code::DEVICE_OFFLINE
        );
        let denied = body(call("kitchen-lamp.self_destruct", json!({"on": true})));
        assert_eq!(denied["result"]["_meta"]["axon/error-code"], code::DENIED);
        let confirm = body(call("kitchen-lamp.unlock", json!({"on": true})));
        assert!(confirm["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("console"));
    }

    #[test]
    fn malformed_bodies_get_a_json_rpc_error_and_notifications_are_accepted() {
        let o = handle(b"{oops", &home(), &SitePolicy::new());
        let GatewayOutcome::Reply { status, body, .. } = o else {
            panic!()
        };
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], code::PARSE_ERROR);
        assert_eq!(body["id"], Value::Null);
        assert_eq!(
            handle(
                br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                &home(),
                &SitePolicy::new()
            ),
            GatewayOutcome::Accepted
        );
        let m = body_of(handle(
            br#"{"jsonrpc":"2.0","id":"x","method":"resources/list"}"#,
            &home(),
            &SitePolicy::new(),
        ));
        assert_eq!(m["error"]["code"], code::METHOD_NOT_FOUND);
        assert_eq!(m["id"], "x");
    }

    #[test]
    fn hub_errors_become_error_results_but_bad_arguments_stay_errors() {
        let timeout = call_result(
            RequestId::Number(1),
            Err(ErrorObject::new(code::REQUEST_TIMEOUT, "no answer in 10 s")),
        );
        assert_eq!(timeout["result"]["isError"], true);
        assert_eq!(
            timeout["result"]["_meta"]["axon/error-code"],
            code::REQUEST_TIMEOUT
        );
        let args = call_result(RequestId::Number(1), Err(ErrorObject::invalid_params("x")));
        assert_eq!(args["error"]["code"], code::INVALID_PARAMS);
    }
}
