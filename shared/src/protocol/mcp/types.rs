//! MCP 2025-06-18 data types Axon uses: plain serde data, no behaviour.
//!
//! Owns the JSON shapes of `initialize`, tools, tool results, resources and the MCP-over-MQTT
//! online notification. Unknown fields are kept where MCP allows extension (`_meta`), and
//! ignored elsewhere, so newer peers still parse.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::jsonrpc::string_field;

/// The protocol version Axon offers and answers by default.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-06-18";
/// Versions a device echoes when offered, and the Hub accepts (docs/protocol.md §5.3, §11 quirk 6).
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 3] = ["2025-06-18", "2025-03-26", "2024-11-05"];

/// The version a server answers to an offer: the offer if supported, else the latest.
pub fn negotiate_version(offered: &str) -> &'static str {
    SUPPORTED_PROTOCOL_VERSIONS
        .iter()
        .find(|v| **v == offered)
        .copied()
        .unwrap_or(LATEST_PROTOCOL_VERSION)
}

/// `_meta` key: the idempotency key of a tool call.
pub const META_CALL_ID: &str = "axon/call-id";
/// `_meta` key: a tool's permission (`auto` | `confirm` | `deny`).
pub const META_PERMISSION: &str = "axon/permission";
/// `_meta` key: the device of an aggregated tool.
pub const META_DEVICE_ID: &str = "axon/device-id";
/// `_meta` key: the Axon error code of a failed call reported as `isError`.
pub const META_ERROR_CODE: &str = "axon/error-code";
/// `capabilities.experimental` key advertising the call-id cache.
pub const EXPERIMENTAL_CALL_ID: &str = "axon/call-id";

/// `{name, title?, version}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Implementation {
    /// Programmatic name.
    pub name: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Version.
    pub version: String,
}

/// `initialize` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// The version the client offers (its newest).
    pub protocol_version: String,
    /// Client capabilities (`roots`, `sampling`, `elicitation`, `experimental`).
    #[serde(default)]
    pub capabilities: Value,
    /// Who the client is.
    pub client_info: Implementation,
}

impl InitializeParams {
    /// Reads `initialize` params from their JSON, with the field that is wrong named in the
    /// error. Read by hand rather than with the derive: a device (and the browser's device
    /// page, where every KB counts) then carries no serde deserializer for JSON values.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or("params must be an object")?;
        let client_info = match obj.get("clientInfo") {
            Some(info) => Implementation::from_value(info, "clientInfo")?,
            None => return Err("missing field `clientInfo`".into()),
        };
        Ok(InitializeParams {
            protocol_version: string_field(obj, "protocolVersion", "protocolVersion")?,
            capabilities: obj.get("capabilities").cloned().unwrap_or(Value::Null),
            client_info,
        })
    }
}

impl Implementation {
    /// Reads `{name, title?, version}`; `path` names it in errors (`clientInfo`).
    pub fn from_value(v: &Value, path: &str) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("`{path}` must be an object"))?;
        let title = match obj.get("title") {
            None | Some(Value::Null) => None,
            Some(_) => Some(string_field(obj, "title", &format!("{path}.title"))?),
        };
        Ok(Implementation {
            name: string_field(obj, "name", &format!("{path}.name"))?,
            title,
            version: string_field(obj, "version", &format!("{path}.version"))?,
        })
    }
}

/// `initialize` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The version the server chose.
    pub protocol_version: String,
    /// Server capabilities.
    #[serde(default)]
    pub capabilities: Value,
    /// Who the server is.
    pub server_info: Implementation,
    /// Optional instructions for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Tool annotations: hints, never trusted from an untrusted server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The tool does not change its environment (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may destroy something (default true; meaningful only when not read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling twice with the same arguments has no further effect (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool talks to an open world (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// A tool as `tools/list` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Tool name, `^[a-z][a-z0-9_]{0,63}$` for Axon devices.
    pub name: String,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does, for people and LLMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (`{"type":"object",...}`).
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Behaviour hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolAnnotations>,
    /// Extension data, e.g. `axon/permission`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
}

impl Tool {
    /// The tool's `_meta["axon/permission"]`, if it declares one.
    pub fn declared_permission(&self) -> Option<&str> {
        self.meta.as_ref()?.get(META_PERMISSION)?.as_str()
    }
}

/// A content block of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, base64.
    Image {
        /// Base64 data.
        data: String,
        /// e.g. `image/jpeg`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Audio, base64.
    Audio {
        /// Base64 data.
        data: String,
        /// e.g. `audio/wav`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// A link to a resource.
    ResourceLink {
        /// Resource URI.
        uri: String,
        /// Resource name.
        name: String,
    },
    /// An embedded resource.
    Resource {
        /// The resource contents.
        resource: Value,
    },
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text { text: text.into() }
    }
}

/// `tools/call` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// Unstructured content.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Structured content, conforming to the tool's `outputSchema` when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// Whether the tool itself failed.
    #[serde(default)]
    pub is_error: bool,
    /// Extension data, e.g. `axon/error-code`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
}

impl CallToolResult {
    /// A success with structured content, serialised as a text block too (MCP SHOULD).
    pub fn structured(value: Value) -> Self {
        CallToolResult {
            content: vec![ContentBlock::text(crate::protocol::jsonrpc::json_text(
                &value,
            ))],
            structured_content: Some(value),
            is_error: false,
            meta: None,
        }
    }

    /// A tool failure the LLM can read (`isError: true`).
    pub fn tool_error(message: impl Into<String>) -> Self {
        CallToolResult {
            content: vec![ContentBlock::text(message)],
            structured_content: None,
            is_error: true,
            meta: None,
        }
    }

    /// The text of the first text block, if any.
    pub fn first_text(&self) -> Option<&str> {
        self.content.iter().find_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
    }
}

/// A resource as `resources/list` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// URI, e.g. `axon://kitchen-1/telemetry`.
    pub uri: String,
    /// Name.
    pub name: String,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// One item of a `resources/read` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceContents {
    /// URI.
    pub uri: String,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Text contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Base64 contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
}

/// Params of `notifications/server/online` (retained presence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerOnline {
    /// The server name (the TS SDK requires it).
    #[serde(default)]
    pub server_name: String,
    /// One line about the server (the TS SDK requires it).
    #[serde(default)]
    pub description: String,
    /// Extension data; Axon puts `{"axon": {device_id, kind, room?, title?, fw?}}` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// What an Axon device says about itself in `meta.axon` of its online message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceMeta {
    /// The device id.
    #[serde(default)]
    pub device_id: String,
    /// `lamp`, `thermostat`, `plug`, `lock`, `sensor`, `speaker`, `camera`, `virtual`.
    #[serde(default)]
    pub kind: String,
    /// Room, e.g. `kitchen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Display title, e.g. "Kitchen lamp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate_version("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate_version("2024-11-05"), "2024-11-05");
        assert_eq!(negotiate_version("1999-01-01"), "2025-06-18");
    }

    #[test]
    fn tool_matches_protocol_example() {
        let v = json!({"name":"set_power","title":"Switch power","description":"Turn the lamp on or off",
            "inputSchema":{"type":"object","properties":{"on":{"type":"boolean"}},"required":["on"],"additionalProperties":false},
            "annotations":{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":true},"_meta":{"axon/permission":"auto"}});
        let tool: Tool = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(tool.declared_permission(), Some("auto"));
        assert_eq!(serde_json::to_value(&tool).unwrap(), v);
    }

    #[test]
    fn initialize_params_read_by_hand_agree_with_the_derive() {
        let v = json!({"protocolVersion":"2025-03-26","capabilities":{"roots":{}},
            "clientInfo":{"name":"hub","title":"Axon Hub","version":"0.1.0"},"extra":1});
        let derived: InitializeParams = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(InitializeParams::from_value(&v).unwrap(), derived);
        let v = json!({"protocolVersion":"2024-11-05","clientInfo":{"name":"sdk","version":"1"}});
        let derived: InitializeParams = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(InitializeParams::from_value(&v).unwrap(), derived);
    }

    #[test]
    fn bad_initialize_params_name_the_field() {
        let cases = [
            (json!(null), "params must be an object"),
            (
                json!({"clientInfo":{"name":"a","version":"1"}}),
                "missing field `protocolVersion`",
            ),
            (
                json!({"protocolVersion":7,"clientInfo":{"name":"a","version":"1"}}),
                "`protocolVersion` must be a string",
            ),
            (
                json!({"protocolVersion":"2025-06-18"}),
                "missing field `clientInfo`",
            ),
            (
                json!({"protocolVersion":"2025-06-18","clientInfo":[]}),
                "`clientInfo` must be an object",
            ),
            (
                json!({"protocolVersion":"2025-06-18","clientInfo":{"version":"1"}}),
                "missing field `clientInfo.name`",
            ),
            (
                json!({"protocolVersion":"2025-06-18","clientInfo":{"name":"a","version":1}}),
                "`clientInfo.version` must be a string",
            ),
            (
                json!({"protocolVersion":"2025-06-18","clientInfo":{"name":"a","title":2,"version":"1"}}),
                "`clientInfo.title` must be a string",
            ),
        ];
        for (v, expected) in cases {
            assert_eq!(
                InitializeParams::from_value(&v).unwrap_err(),
                expected,
                "{v}"
            );
            assert!(
                serde_json::from_value::<InitializeParams>(v).is_err(),
                "the derive agrees"
            );
        }
    }

    #[test]
    fn call_result_matches_protocol_example() {
        let r = CallToolResult::structured(json!({"on": true}));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"content":[{"type":"text","text":"{\"on\":true}"}],"structuredContent":{"on":true},"isError":false})
        );
    }
}
