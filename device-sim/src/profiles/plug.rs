//! A smart plug: a relay with an energy meter.

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use serde_json::{json, Value};

use super::{arg_bool, no_args, round1, tool, unknown, Effect, Env, Profile, Sample};

/// Plug state.
#[derive(Debug, Clone, Default)]
pub struct Plug {
    /// Relay.
    pub on: bool,
    power_w: f64,
    energy_wh: f64,
}

impl Plug {
    fn state(&self) -> Value {
        json!({"on": self.on, "power_w": round1(self.power_w), "energy_wh": round1(self.energy_wh)})
    }
}

impl Profile for Plug {
    fn kind(&self) -> &'static str {
        "plug"
    }

    fn description(&self) -> String {
        "Smart plug: relay and energy meter".into()
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            tool(
                "set_power",
                "Switch power",
                "Switch the plug on or off",
                json!({"type":"object","properties":{"on":{"type":"boolean"}},"required":["on"],"additionalProperties":false}),
                Effect::Idempotent,
                "auto",
            ),
            tool(
                "get_state",
                "Read state",
                "Relay state, power draw and energy used",
                no_args(),
                Effect::ReadOnly,
                "auto",
            ),
        ]
    }

    fn call(&mut self, tool: &str, args: &Value, _env: &mut Env) -> CallToolResult {
        match tool {
            "set_power" => match arg_bool(args, "on") {
                Ok(on) => {
                    self.on = on;
                    if !on {
                        self.power_w = 0.0;
                    }
                }
                Err(e) => return e,
            },
            "get_state" => {}
            other => return unknown("plug", other),
        }
        CallToolResult::structured(self.state())
    }

    fn tick(&mut self, dt: Duration, env: &mut Env) -> Sample {
        self.power_w = if self.on {
            60.0 + env.unit() * 40.0
        } else {
            0.0
        };
        self.energy_wh += self.power_w * dt.as_secs_f64() / 3600.0;
        let mut s = Sample::default();
        s.metrics.insert("on".into(), json!(self.on));
        s.metrics
            .insert("power_w".into(), json!(round1(self.power_w)));
        s.metrics
            .insert("energy_wh".into(), json!(round1(self.energy_wh)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    #[test]
    fn meters_energy_while_on() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 0.0,
        };
        let mut p = Plug::default();
        p.call("set_power", &json!({"on": true}), &mut env);
        p.tick(Duration::from_secs(3600), &mut env);
        assert!(p.energy_wh >= 60.0);
        let off = p.call("set_power", &json!({"on": false}), &mut env);
        assert_eq!(off.structured_content.unwrap()["power_w"], json!(0.0));
    }
}
