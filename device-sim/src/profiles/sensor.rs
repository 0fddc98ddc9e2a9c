//! A multi-sensor: temperature, humidity, light, motion, battery.

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use serde_json::{json, Value};

use super::{no_args, round1, tool, unknown, Effect, Env, HardwareEvent, Profile, Sample};

/// Sensor readings.
#[derive(Debug, Clone)]
pub struct Sensor {
    temperature_c: f64,
    humidity_pct: f64,
    light_lux: f64,
    motion: bool,
    battery_pct: f64,
}

impl Default for Sensor {
    fn default() -> Self {
        Sensor {
            temperature_c: 20.5,
            humidity_pct: 48.0,
            light_lux: 300.0,
            motion: false,
            battery_pct: 87.0,
        }
    }
}

impl Sensor {
    fn state(&self) -> Value {
        json!({
            "temperature_c": round1(self.temperature_c),
            "humidity_pct": round1(self.humidity_pct),
            "light_lux": round1(self.light_lux),
            "motion": self.motion,
            "battery_pct": round1(self.battery_pct),
        })
    }
}

impl Profile for Sensor {
    fn kind(&self) -> &'static str {
        "sensor"
    }

    fn description(&self) -> String {
        "Multi-sensor: temperature, humidity, light, motion, battery".into()
    }

    fn tools(&self) -> Vec<Tool> {
        vec![tool(
            "get_state",
            "Read sensors",
            "Temperature, humidity, light level, motion and battery",
            no_args(),
            Effect::ReadOnly,
            "auto",
        )]
    }

    fn call(&mut self, tool: &str, _args: &Value, _env: &mut Env) -> CallToolResult {
        match tool {
            "get_state" => CallToolResult::structured(self.state()),
            other => unknown("sensor", other),
        }
    }

    fn tick(&mut self, dt: Duration, env: &mut Env) -> Sample {
        let w = dt.as_secs_f64().min(60.0) / 10.0;
        self.temperature_c = (self.temperature_c + (env.unit() - 0.5) * 0.1 * w).clamp(10.0, 35.0);
        self.humidity_pct = (self.humidity_pct + (env.unit() - 0.5) * 0.5 * w).clamp(20.0, 90.0);
        self.light_lux = (self.light_lux + (env.unit() - 0.5) * 20.0 * w).clamp(0.0, 2000.0);
        self.battery_pct = (self.battery_pct - dt.as_secs_f64() * 0.0005).max(0.0);
        let was = self.motion;
        self.motion = env.unit() < 0.1;
        let mut s = Sample::default();
        if self.motion && !was {
            s.events.push(HardwareEvent {
                kind: "motion",
                severity: "info",
                message: "motion detected".into(),
                data: json!({}),
            });
        }
        if let Value::Object(m) = self.state() {
            s.metrics = m;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    #[test]
    fn reports_every_metric() {
        let mut env = Env {
            rng: Rng::new(9),
            fault_rate: 0.0,
        };
        let mut s = Sensor::default();
        let sample = s.tick(Duration::from_secs(5), &mut env);
        for m in [
            "temperature_c",
            "humidity_pct",
            "light_lux",
            "motion",
            "battery_pct",
        ] {
            assert!(sample.metrics.contains_key(m), "{m}");
        }
        let motions = (0..200)
            .filter(|_| !s.tick(Duration::from_secs(1), &mut env).events.is_empty())
            .count();
        assert!(motions > 0);
    }
}
