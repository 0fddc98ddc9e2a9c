//! Builders for the agent's view of a home: tool descriptors and discovered devices, for the
//! scenario tests that run agent turns (`agent.rs`, `vision.rs`) without a `Net`.
//!
//! Owns only plain values; never drives a client or a device (that is `Net`'s job).

use axon_core::protocol::mcp::client::{DeviceInfo, DeviceState};
use axon_core::protocol::mcp::types::{DeviceMeta, Tool, ToolAnnotations};
use serde_json::{json, Value};

/// The input schema of a tool that takes no arguments.
pub fn no_args() -> Value {
    json!({"type":"object","properties":{},"additionalProperties":false})
}

/// A tool as a board lists it: titled after its name (`set_power` → "set power"), no
/// arguments, no annotations, no declared permission. [`ToolExt`] adds to it.
pub fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        title: Some(name.replace('_', " ")),
        description: None,
        input_schema: no_args(),
        output_schema: None,
        annotations: None,
        meta: None,
    }
}

/// One [`tool`] per name.
pub fn tools(names: &[&str]) -> Vec<Tool> {
    names.iter().map(|n| tool(n)).collect()
}

/// What a test adds to a [`tool`].
pub trait ToolExt {
    /// Takes arguments described by `schema`.
    fn args(self, schema: Value) -> Tool;
    /// Says whether it is read-only (`annotations.readOnlyHint`).
    fn read_only(self, read_only: bool) -> Tool;
    /// Declares `_meta["axon/permission"]` (`auto`, `confirm`, `deny`).
    fn permission(self, permission: &str) -> Tool;
}

impl ToolExt for Tool {
    fn args(mut self, schema: Value) -> Tool {
        self.input_schema = schema;
        self
    }

    fn read_only(mut self, read_only: bool) -> Tool {
        self.annotations
            .get_or_insert_with(ToolAnnotations::default)
            .read_only_hint = Some(read_only);
        self
    }

    fn permission(mut self, permission: &str) -> Tool {
        self.meta
            .get_or_insert_with(Default::default)
            .insert("axon/permission".into(), json!(permission));
        self
    }
}

/// A device the Hub has discovered and initialized (`Ready`), named `axon/{kind}/{id}`.
pub fn device(id: &str, kind: &str, room: &str, title: &str, tools: Vec<Tool>) -> DeviceInfo {
    DeviceInfo {
        device_id: axon_core::protocol::mcp::topics::DeviceId::new(id).expect("test ids are valid"),
        server_id: id.into(),
        server_name: format!("axon/{kind}/{id}"),
        description: String::new(),
        meta: DeviceMeta {
            device_id: id.into(),
            kind: kind.into(),
            room: Some(room.into()),
            title: Some(title.into()),
            fw: None,
        },
        kind: kind.into(),
        state: DeviceState::Ready,
        tools,
        protocol_version: None,
        call_id_cache: true,
        last_seen: Default::default(),
    }
}
