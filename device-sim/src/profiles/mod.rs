//! Device profiles: the simulated hardware behind each kind of board.
//!
//! Owns each kind's state, its tool table (names, schemas, annotations, permissions), what a
//! tool call does to the state, and the telemetry and events the hardware produces as time
//! passes. Pure logic: no MQTT, no clock, no tokio; tested natively. Arguments reach a
//! profile already validated against its schema by `axon-core`, but a profile still reads
//! them defensively (a missing or odd value becomes an `isError` result, never a panic).

mod camera;
mod lamp;
mod lock;
mod plug;
mod sensor;
mod speaker;
mod thermostat;

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool, ToolAnnotations};
use axon_core::time::Rng;
use serde_json::{json, Map, Value};

pub use camera::Camera;
pub use lamp::Lamp;
pub use lock::Lock;
pub use plug::Plug;
pub use sensor::Sensor;
pub use speaker::Speaker;
pub use thermostat::Thermostat;

/// The kinds a board can be.
pub const KINDS: [&str; 7] = [
    "lamp",
    "thermostat",
    "plug",
    "lock",
    "sensor",
    "speaker",
    "camera",
];

/// Something the hardware reports on `axon/events/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareEvent {
    /// `fault`, `fault_cleared`, `battery_low`, `motion`, `door`, ...
    pub kind: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// For people.
    pub message: String,
    /// Extra detail.
    pub data: Value,
}

/// One telemetry tick: metrics for `axon/telemetry/{id}` and any events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// snake_case metric names with unit suffixes.
    pub metrics: Map<String, Value>,
    /// Events that happened during the tick.
    pub events: Vec<HardwareEvent>,
}

/// Randomness and fault injection, owned by the board.
#[derive(Debug, Clone)]
pub struct Env {
    /// Seeded per board, so runs repeat.
    pub rng: Rng,
    /// Chance per tick that a fault starts (0.0 to 1.0).
    pub fault_rate: f64,
}

impl Env {
    /// A uniform float in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether a fault starts this tick.
    pub fn fault(&mut self) -> bool {
        self.fault_rate > 0.0 && self.unit() < self.fault_rate
    }
}

/// The simulated hardware of one board.
pub trait Profile: Send {
    /// `lamp`, `thermostat`, ...
    fn kind(&self) -> &'static str;
    /// One line for the online message.
    fn description(&self) -> String;
    /// The tool table.
    fn tools(&self) -> Vec<Tool>;
    /// Carries out a tool call.
    fn call(&mut self, tool: &str, args: &Value, env: &mut Env) -> CallToolResult;
    /// Time passed: update the physics, report telemetry and events.
    fn tick(&mut self, dt: Duration, env: &mut Env) -> Sample;
}

/// A profile of `kind`, or `None` for an unknown kind.
pub fn profile(kind: &str) -> Option<Box<dyn Profile>> {
    Some(match kind {
        "lamp" => Box::new(Lamp::default()),
        "thermostat" => Box::new(Thermostat::default()),
        "plug" => Box::new(Plug::default()),
        "lock" => Box::new(Lock::default()),
        "sensor" => Box::new(Sensor::default()),
        "speaker" => Box::new(Speaker::default()),
        "camera" => Box::new(Camera::default()),
        _ => return None,
    })
}

/// How a tool behaves, for its annotations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Effect {
    /// Reads state only.
    ReadOnly,
    /// Changes state; repeating it changes nothing more.
    Idempotent,
    /// Changes state in a way that matters (unlocking a door).
    Destructive,
    /// Changes state; repeating it repeats the effect (a tone plays twice).
    Repeating,
}

/// A tool definition with every annotation set explicitly and `axon/permission`.
pub(crate) fn tool(
    name: &str,
    title: &str,
    description: &str,
    schema: Value,
    effect: Effect,
    permission: &str,
) -> Tool {
    let (read_only, destructive, idempotent) = match effect {
        Effect::ReadOnly => (true, false, true),
        Effect::Idempotent => (false, false, true),
        Effect::Destructive => (false, true, true),
        Effect::Repeating => (false, false, false),
    };
    Tool {
        name: name.into(),
        title: Some(title.into()),
        description: Some(description.into()),
        input_schema: schema,
        output_schema: None,
        annotations: Some(ToolAnnotations {
            title: Some(title.into()),
            read_only_hint: Some(read_only),
            destructive_hint: Some(destructive),
            idempotent_hint: Some(idempotent),
            open_world_hint: Some(false),
        }),
        meta: Some(Map::from_iter([(
            "axon/permission".to_string(),
            json!(permission),
        )])),
    }
}

/// `{"type":"object","properties":{},"additionalProperties":false}`.
pub(crate) fn no_args() -> Value {
    json!({"type":"object","properties":{},"additionalProperties":false})
}

/// A tool name this profile does not have (validation upstream makes this rare).
pub(crate) fn unknown(kind: &str, tool: &str) -> CallToolResult {
    CallToolResult::tool_error(format!("the {kind} has no tool {tool:?}"))
}

/// Reads a required boolean argument.
pub(crate) fn arg_bool(args: &Value, name: &str) -> Result<bool, CallToolResult> {
    args.get(name)
        .and_then(Value::as_bool)
        .ok_or_else(|| CallToolResult::tool_error(format!("argument {name:?} must be a boolean")))
}

/// Reads a required number argument within `min..=max`.
pub(crate) fn arg_number(
    args: &Value,
    name: &str,
    min: f64,
    max: f64,
) -> Result<f64, CallToolResult> {
    match args.get(name).and_then(Value::as_f64) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(CallToolResult::tool_error(format!(
            "argument {name:?} must be between {min} and {max}, got {v}"
        ))),
        None => Err(CallToolResult::tool_error(format!(
            "argument {name:?} must be a number"
        ))),
    }
}

/// Rounds to one decimal, as a sensor would report.
pub(crate) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_of_every_profile_is_well_formed() {
        for kind in KINDS {
            let p = profile(kind).unwrap();
            assert_eq!(p.kind(), kind);
            let tools = p.tools();
            assert!(
                tools.iter().any(|t| t.name == "get_state"),
                "{kind} has get_state"
            );
            for t in tools {
                axon_core::protocol::mcp::topics::check_tool_name(&t.name).unwrap();
                assert_eq!(t.input_schema["type"], "object", "{kind}.{}", t.name);
                let a = t.annotations.as_ref().unwrap();
                assert!(
                    a.read_only_hint.is_some()
                        && a.destructive_hint.is_some()
                        && a.idempotent_hint.is_some()
                );
                assert!(matches!(
                    t.declared_permission(),
                    Some("auto" | "confirm" | "deny")
                ));
            }
        }
    }

    #[test]
    fn unknown_tools_and_bad_arguments_are_tool_errors_not_panics() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 0.0,
        };
        for kind in KINDS {
            let mut p = profile(kind).unwrap();
            assert!(p.call("no_such_tool", &json!({}), &mut env).is_error);
            for t in p.tools() {
                // Garbage arguments never panic.
                let _ = p.call(
                    &t.name,
                    &json!({"on": "x", "level": -5, "celsius": null}),
                    &mut env,
                );
                let _ = p.call(&t.name, &Value::Null, &mut env);
            }
        }
    }
}
