//! A dimmable lamp: power, brightness, a driver that can overheat.

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use serde_json::{json, Value};

use super::{
    arg_bool, arg_number, no_args, round1, tool, unknown, Effect, Env, HardwareEvent, Profile,
    Sample,
};

/// Lamp state.
#[derive(Debug, Clone)]
pub struct Lamp {
    /// Power.
    pub on: bool,
    /// Brightness when on, 0–100 %.
    pub brightness: u8,
    driver_temp_c: f64,
    overheating: bool,
}

impl Default for Lamp {
    fn default() -> Self {
        Lamp {
            on: false,
            brightness: 80,
            driver_temp_c: 25.0,
            overheating: false,
        }
    }
}

impl Lamp {
    fn state(&self) -> Value {
        json!({"on": self.on, "brightness": self.brightness})
    }
}

impl Profile for Lamp {
    fn kind(&self) -> &'static str {
        "lamp"
    }

    fn description(&self) -> String {
        "Dimmable lamp: power, brightness, state".into()
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            tool(
                "set_power",
                "Switch power",
                "Turn the lamp on or off",
                json!({"type":"object","properties":{"on":{"type":"boolean","description":"true = on"}},"required":["on"],"additionalProperties":false}),
                Effect::Idempotent,
                "auto",
            ),
            tool(
                "set_brightness",
                "Set brightness",
                "Set the brightness in percent; a level above 0 also turns the lamp on, 0 turns it off",
                json!({"type":"object","properties":{"level":{"type":"integer","minimum":0,"maximum":100}},"required":["level"],"additionalProperties":false}),
                Effect::Idempotent,
                "auto",
            ),
            tool("get_state", "Read state", "Whether the lamp is on, and its brightness", no_args(), Effect::ReadOnly, "auto"),
        ]
    }

    fn call(&mut self, tool: &str, args: &Value, _env: &mut Env) -> CallToolResult {
        let r = match tool {
            "set_power" => arg_bool(args, "on").map(|on| self.on = on),
            "set_brightness" => arg_number(args, "level", 0.0, 100.0).map(|level| {
                self.brightness = level as u8;
                self.on = self.brightness > 0;
            }),
            "get_state" => Ok(()),
            other => return unknown("lamp", other),
        };
        match r {
            Ok(()) => CallToolResult::structured(self.state()),
            Err(e) => e,
        }
    }

    fn tick(&mut self, dt: Duration, env: &mut Env) -> Sample {
        let power_w = if self.on {
            0.1 * f64::from(self.brightness)
        } else {
            0.0
        };
        let target = 25.0 + power_w * 4.0;
        let k = (dt.as_secs_f64() / 30.0).min(1.0);
        self.driver_temp_c += (target - self.driver_temp_c) * k;
        let mut events = Vec::new();
        if !self.overheating && self.on && env.fault() {
            self.overheating = true;
            events.push(HardwareEvent {
                kind: "fault",
                severity: "warning",
                message: "lamp driver overheating".into(),
                data: json!({"driver_temp_c": round1(self.driver_temp_c + 40.0)}),
            });
        } else if self.overheating && (!self.on || env.unit() < 0.2) {
            self.overheating = false;
            events.push(HardwareEvent {
                kind: "fault_cleared",
                severity: "info",
                message: "lamp driver temperature normal".into(),
                data: json!({}),
            });
        }
        let mut s = Sample {
            events,
            ..Sample::default()
        };
        s.metrics.insert("on".into(), json!(self.on));
        s.metrics.insert(
            "brightness_pct".into(),
            json!(if self.on { self.brightness } else { 0 }),
        );
        s.metrics.insert("power_w".into(), json!(round1(power_w)));
        s.metrics
            .insert("driver_temp_c".into(), json!(round1(self.driver_temp_c)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    #[test]
    fn power_and_brightness() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 0.0,
        };
        let mut lamp = Lamp::default();
        let r = lamp.call("set_power", &json!({"on": true}), &mut env);
        assert_eq!(
            r.structured_content,
            Some(json!({"on": true, "brightness": 80}))
        );
        lamp.call("set_brightness", &json!({"level": 0}), &mut env);
        assert!(!lamp.on);
        lamp.call("set_brightness", &json!({"level": 35}), &mut env);
        assert!(lamp.on && lamp.brightness == 35);
        assert!(
            lamp.call("set_brightness", &json!({"level": 101}), &mut env)
                .is_error
        );
        assert_eq!(
            lamp.call("get_state", &json!({}), &mut env)
                .structured_content,
            Some(json!({"on": true, "brightness": 35}))
        );
        let s = lamp.tick(Duration::from_secs(5), &mut env);
        assert_eq!(s.metrics["power_w"], json!(3.5));
    }

    #[test]
    fn faults_start_and_clear() {
        let mut env = Env {
            rng: Rng::new(3),
            fault_rate: 1.0,
        };
        let mut lamp = Lamp {
            on: true,
            ..Lamp::default()
        };
        let s = lamp.tick(Duration::from_secs(1), &mut env);
        assert_eq!(s.events[0].kind, "fault");
        lamp.on = false;
        let s = lamp.tick(Duration::from_secs(1), &mut env);
        assert_eq!(s.events[0].kind, "fault_cleared");
    }
}
