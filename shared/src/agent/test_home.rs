//! Devices for the agent's unit tests (planner, offline model, wording): one builder instead
//! of a copy per test module. Test-only.

use serde_json::json;

use crate::protocol::mcp::client::{DeviceInfo, DeviceState};
use crate::protocol::mcp::types::{DeviceMeta, Tool};

/// A tool with an open object schema and no hints.
pub(crate) fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        title: None,
        description: None,
        input_schema: json!({"type":"object"}),
        output_schema: None,
        annotations: None,
        meta: None,
    }
}

/// A ready device of `kind` in `room` with `tools`.
pub(crate) fn device(id: &str, kind: &str, room: &str, title: &str, tools: &[&str]) -> DeviceInfo {
    DeviceInfo {
        device_id: crate::protocol::mcp::topics::DeviceId::new(id).expect("test ids are valid"),
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
        tools: tools.iter().map(|t| tool(t)).collect(),
        protocol_version: None,
        call_id_cache: true,
        last_seen: Default::default(),
    }
}
