//! A thermostat: a room temperature that drifts toward the target while heating or cooling.

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use serde_json::{json, Value};

use super::{arg_number, no_args, round1, tool, unknown, Effect, Env, Profile, Sample};

const MODES: [&str; 4] = ["off", "heat", "cool", "auto"];

/// Thermostat state.
#[derive(Debug, Clone)]
pub struct Thermostat {
    /// Measured room temperature.
    pub current_c: f64,
    /// Set point.
    pub target_c: f64,
    /// `off`, `heat`, `cool` or `auto`.
    pub mode: &'static str,
    humidity_pct: f64,
}

impl Default for Thermostat {
    fn default() -> Self {
        Thermostat {
            current_c: 19.5,
            target_c: 21.0,
            mode: "auto",
            humidity_pct: 45.0,
        }
    }
}

impl Thermostat {
    fn state(&self) -> Value {
        json!({"current_c": round1(self.current_c), "target_c": self.target_c, "mode": self.mode, "humidity_pct": round1(self.humidity_pct)})
    }

    fn active(&self) -> Option<&'static str> {
        match self.mode {
            "heat" | "auto" if self.current_c < self.target_c - 0.2 => Some("heating"),
            "cool" | "auto" if self.current_c > self.target_c + 0.2 => Some("cooling"),
            _ => None,
        }
    }
}

impl Profile for Thermostat {
    fn kind(&self) -> &'static str {
        "thermostat"
    }

    fn description(&self) -> String {
        "Room thermostat: target temperature, mode, current temperature".into()
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            tool(
                "set_target",
                "Set target temperature",
                "Set the target room temperature in degrees Celsius",
                json!({"type":"object","properties":{"celsius":{"type":"number","minimum":5,"maximum":30}},"required":["celsius"],"additionalProperties":false}),
                Effect::Idempotent,
                "auto",
            ),
            tool(
                "set_mode",
                "Set mode",
                "Set the mode: off, heat, cool or auto",
                json!({"type":"object","properties":{"mode":{"type":"string","enum":MODES}},"required":["mode"],"additionalProperties":false}),
                Effect::Idempotent,
                "auto",
            ),
            tool(
                "get_state",
                "Read state",
                "Current and target temperature, mode and humidity",
                no_args(),
                Effect::ReadOnly,
                "auto",
            ),
        ]
    }

    fn call(&mut self, tool: &str, args: &Value, _env: &mut Env) -> CallToolResult {
        match tool {
            "set_target" => match arg_number(args, "celsius", 5.0, 30.0) {
                Ok(c) => self.target_c = round1(c),
                Err(e) => return e,
            },
            "set_mode" => match args
                .get("mode")
                .and_then(Value::as_str)
                .and_then(|m| MODES.iter().find(|x| **x == m))
            {
                Some(m) => self.mode = m,
                None => {
                    return CallToolResult::tool_error(format!("mode must be one of {MODES:?}"))
                }
            },
            "get_state" => {}
            other => return unknown("thermostat", other),
        }
        CallToolResult::structured(self.state())
    }

    fn tick(&mut self, dt: Duration, env: &mut Env) -> Sample {
        let secs = dt.as_secs_f64();
        let rate = 0.02 * secs; // degrees per second while active
        match self.active() {
            Some("heating") => self.current_c = (self.current_c + rate).min(self.target_c),
            Some(_) => self.current_c = (self.current_c - rate).max(self.target_c),
            None => self.current_c += (env.unit() - 0.5) * 0.02 * secs.min(10.0),
        }
        self.humidity_pct = (self.humidity_pct + (env.unit() - 0.5) * 0.2).clamp(20.0, 80.0);
        let mut s = Sample::default();
        s.metrics
            .insert("temperature_c".into(), json!(round1(self.current_c)));
        s.metrics.insert("target_c".into(), json!(self.target_c));
        s.metrics
            .insert("humidity_pct".into(), json!(round1(self.humidity_pct)));
        s.metrics
            .insert("heating".into(), json!(self.active() == Some("heating")));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    #[test]
    fn drifts_toward_the_target() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 0.0,
        };
        let mut t = Thermostat::default();
        let r = t.call("set_target", &json!({"celsius": 22}), &mut env);
        assert_eq!(r.structured_content.unwrap()["target_c"], json!(22.0));
        for _ in 0..100 {
            t.tick(Duration::from_secs(10), &mut env);
        }
        assert!((t.current_c - 22.0).abs() < 0.3, "{}", t.current_c);
        assert!(
            t.call("set_mode", &json!({"mode": "party"}), &mut env)
                .is_error
        );
        assert!(
            !t.call("set_mode", &json!({"mode": "off"}), &mut env)
                .is_error
        );
        assert!(
            t.call("set_target", &json!({"celsius": 40}), &mut env)
                .is_error
        );
    }
}
