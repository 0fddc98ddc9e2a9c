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
use crate::protocol::mcp::client::{DeviceInfo, DeviceState, McpClient};
use crate::protocol::mcp::topics::DeviceId;
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

/// Tools on one `tools/list` page, unless the Hub is configured otherwise
/// (`AXON_MCP_PAGE_TOOLS`): a site of 10,000 devices has ~30,000 tools, which a client reads
/// page by page, following `nextCursor`.
pub const TOOLS_PER_PAGE: usize = 500;

/// Where the gateway finds devices: by id, and in device id order from a point, so that a
/// page is read without a scan from the start and a call without a scan at all.
pub trait Registry {
    /// The device with this id.
    fn device(&self, device_id: &str) -> Option<&DeviceInfo>;
    /// The devices after `after` (all when `None`), in device id order.
    fn devices_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a DeviceInfo> + 'a>;
}

impl Registry for McpClient {
    fn device(&self, device_id: &str) -> Option<&DeviceInfo> {
        McpClient::device(self, device_id)
    }
    fn devices_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a DeviceInfo> + 'a> {
        Box::new(McpClient::devices_after(self, after))
    }
}

/// A plain list (tests, tools): scanned, sorted on each call.
impl Registry for [DeviceInfo] {
    fn device(&self, device_id: &str) -> Option<&DeviceInfo> {
        self.iter().find(|d| d.device_id.as_str() == device_id)
    }
    fn devices_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a DeviceInfo> + 'a> {
        let mut v: Vec<&DeviceInfo> = self
            .iter()
            .filter(|d| after.is_none_or(|a| d.device_id.as_str() > a))
            .collect();
        v.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Box::new(v.into_iter())
    }
}

/// One device's tools as the aggregated list shows them: the original schemas, annotations and
/// `_meta`, plus `_meta["axon/device-id"]`, named `{device_id}.{tool}` and titled
/// `{device title}: {tool title}`.
fn device_tools(d: &DeviceInfo, out: &mut Vec<Value>) {
    let device_title = d
        .meta
        .title
        .clone()
        .unwrap_or_else(|| d.device_id.to_string());
    for t in d.tools.iter() {
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

/// One page of the aggregated tool list: the tools of the ready devices after `cursor`, whole
/// devices only (a device's tools never straddle two pages), until at least `per_page` tools;
/// and the cursor of the next page (the last device id on this one) when more devices follow.
/// The cursor is a position in device id order, not an offset, so devices coming and going
/// between pages neither repeat nor skip the others.
pub fn tools_page<R: Registry + ?Sized>(
    registry: &R,
    cursor: Option<&str>,
    per_page: usize,
) -> (Vec<Value>, Option<String>) {
    let mut out = Vec::new();
    let mut ready = registry
        .devices_after(cursor)
        .filter(|d| d.state == DeviceState::Ready)
        .peekable();
    while let Some(d) = ready.next() {
        device_tools(d, &mut out);
        if out.len() >= per_page.max(1) {
            let next = ready.peek().map(|_| d.device_id.to_string());
            return (out, next);
        }
    }
    (out, None)
}

/// Devices on one `GET /api/devices` page unless `limit` asks for fewer or more.
pub const DEVICES_PER_PAGE: usize = 500;
/// The most devices one `GET /api/devices` page holds.
pub const DEVICES_PAGE_MAX: usize = 2000;

/// Reads `GET /api/devices`'s `after` and `limit` (each optional): where the page starts and
/// how many devices it holds, or what is wrong with them.
pub fn devices_query(
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<(Option<String>, usize), ErrorObject> {
    let after = match after {
        None => None,
        Some(a) => Some(
            DeviceId::new(a)
                .map_err(|_| {
                    ErrorObject::invalid_params(format!(
                        "after={a:?} is not a device id: use the `next` of the previous page"
                    ))
                })?
                .to_string(),
        ),
    };
    let limit = match limit {
        None => DEVICES_PER_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=DEVICES_PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ErrorObject::invalid_params(format!(
                    "limit={l:?}: a number of devices from 1 to {DEVICES_PAGE_MAX}"
                ))
            })?,
    };
    Ok((after, limit))
}

/// One page of `GET /api/devices`: up to `limit` devices after `after` in device id order,
/// and the `next` cursor (the last device id on the page) when more follow.
pub fn devices_page<'a, R: Registry + ?Sized>(
    registry: &'a R,
    after: Option<&str>,
    limit: usize,
) -> (Vec<&'a DeviceInfo>, Option<String>) {
    let mut page: Vec<&DeviceInfo> = registry.devices_after(after).take(limit + 1).collect();
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|d| d.device_id.to_string())
    });
    (page, next.flatten())
}

/// The notification `/mcp` streams when devices come or go.
pub fn list_changed() -> Value {
    Message::notification("notifications/tools/list_changed", None).to_value()
}

/// Handles one POSTed JSON-RPC message; `tools/list` answers `tools_per_page` tools a page
/// ([`TOOLS_PER_PAGE`] unless configured).
pub fn handle<R: Registry + ?Sized>(
    body: &[u8],
    registry: &R,
    policy: &SitePolicy,
    tools_per_page: usize,
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
        "tools/list" => {
            let cursor = match params.get("cursor") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if DeviceId::new(c.as_str()).is_ok() => Some(c.as_str()),
                Some(other) => {
                    return error(
                        Some(req.id),
                        ErrorObject::invalid_params(format!(
                            "invalid cursor {other}: use the nextCursor of the previous page"
                        )),
                        200,
                    )
                }
            };
            let (tools, next) = tools_page(registry, cursor, tools_per_page);
            let mut result = json!({ "tools": tools });
            if let Some(n) = next {
                result["nextCursor"] = json!(n);
            }
            reply(req.id, result)
        }
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
            let Some(device) = registry.device(device_id) else {
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
        handle(
            body.to_string().as_bytes(),
            home().as_slice(),
            &SitePolicy::new(),
            TOOLS_PER_PAGE,
        )
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
            home().as_slice(),
            &SitePolicy::new(),
            TOOLS_PER_PAGE,
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
            home().as_slice(),
            &SitePolicy::new(),
            TOOLS_PER_PAGE,
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
            home().as_slice(),
            &SitePolicy::new(),
            TOOLS_PER_PAGE,
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
        let o = handle(
            b"{oops",
            home().as_slice(),
            &SitePolicy::new(),
            TOOLS_PER_PAGE,
        );
        let GatewayOutcome::Reply { status, body, .. } = o else {
            panic!()
        };
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], code::PARSE_ERROR);
        assert_eq!(body["id"], Value::Null);
        assert_eq!(
            handle(
                br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                home().as_slice(),
                &SitePolicy::new(),
                TOOLS_PER_PAGE,
            ),
            GatewayOutcome::Accepted
        );
        let m = body_of(handle(
            br#"{"jsonrpc":"2.0","id":"x","method":"resources/list"}"#,
            home().as_slice(),
            &SitePolicy::new(),
            TOOLS_PER_PAGE,
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

    /// A site of 10,000 lamps (30,000 tools, a few offline) read page by page: every ready
    /// device's tools exactly once, in order, whole devices per page; a device that comes or
    /// goes between pages neither repeats nor skips the others; a bad cursor is refused.
    #[test]
    fn thirty_thousand_tools_are_listed_page_by_page() {
        let template = home().remove(0);
        let mk = |i: usize| {
            let mut d = template.clone();
            d.device_id = DeviceId::new(format!("lamp-{i:05}")).unwrap();
            if i % 1000 == 7 {
                d.state = DeviceState::Offline;
            }
            d
        };
        let mut site: Vec<DeviceInfo> = (0..10_000).map(mk).collect();
        let list = |site: &[DeviceInfo], cursor: Option<&str>| {
            let req = match cursor {
                None => json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
                Some(c) => {
                    json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":c}})
                }
            };
            body(handle(
                req.to_string().as_bytes(),
                site,
                &SitePolicy::new(),
                TOOLS_PER_PAGE,
            ))["result"]
                .clone()
        };
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let r = list(&site, cursor.as_deref());
            let tools = r["tools"].as_array().unwrap();
            // Whole devices: a page holds at least TOOLS_PER_PAGE tools unless it is the last,
            // and never more than one device's worth beyond it.
            assert!(tools.len() < TOOLS_PER_PAGE + 3, "{}", tools.len());
            names.extend(
                tools
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_string()),
            );
            pages += 1;
            if pages == 3 {
                // Between pages: a device before the cursor goes away, one after it comes.
                site.retain(|d| d.device_id.as_str() != "lamp-00000");
                site.push(mk(10_001));
            }
            match r["nextCursor"].as_str() {
                Some(c) => {
                    assert!(tools.len() >= TOOLS_PER_PAGE);
                    cursor = Some(c.to_string());
                }
                None => break,
            }
        }
        let ready = 10_000 - 10 + 1;
        assert_eq!(names.len(), ready * 3);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a tool was listed twice");
        assert!(names.iter().any(|n| n == "lamp-10001.set_power"));
        assert!(!names.iter().any(|n| n.starts_with("lamp-00007.")));
        assert_eq!(pages, (ready * 3).div_ceil(501));
        // A cursor that is not a device id is refused with what to do.
        for bad in [json!(42), json!("not a device!")] {
            let req = json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":bad}});
            let b = body(handle(
                req.to_string().as_bytes(),
                site.as_slice(),
                &SitePolicy::new(),
                TOOLS_PER_PAGE,
            ));
            assert_eq!(b["error"]["code"], code::INVALID_PARAMS, "{b}");
            assert!(b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nextCursor"));
        }
    }

    /// `/api/devices` pages: in order, each device once, `next` only when more follow; bad
    /// `after` and `limit` are refused with what to use.
    #[test]
    fn devices_are_listed_page_by_page() {
        let template = home().remove(0);
        let site: Vec<DeviceInfo> = (0..1234)
            .map(|i| {
                let mut d = template.clone();
                d.device_id = DeviceId::new(format!("d-{i:04}")).unwrap();
                d
            })
            .collect();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (after_q, limit) =
                devices_query(after.as_deref(), Some("500")).expect("a good query");
            let (page, next) = devices_page(site.as_slice(), after_q.as_deref(), limit);
            seen.extend(page.iter().map(|d| d.device_id.to_string()));
            match next {
                Some(n) => {
                    assert_eq!(page.len(), 500);
                    after = Some(n);
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 1234);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        // Exactly one page: no `next`.
        let (page, next) = devices_page(site.as_slice(), None, 1234);
        assert_eq!((page.len(), next), (1234, None));
        assert_eq!(devices_query(None, None).unwrap(), (None, DEVICES_PER_PAGE));
        for (after, limit, says) in [
            (Some("no such id!"), None, "not a device id"),
            (None, Some("0"), "from 1 to"),
            (None, Some("lots"), "from 1 to"),
            (None, Some("999999"), "from 1 to"),
        ] {
            let e = devices_query(after, limit).unwrap_err();
            assert_eq!(e.code, code::INVALID_PARAMS);
            assert!(e.message.contains(says), "{}", e.message);
        }
    }
}
