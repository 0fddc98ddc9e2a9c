//! A door lock on batteries. Unlocking needs a person's confirmation (`axon/permission: confirm`).

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use serde_json::{json, Value};

use super::{no_args, round1, tool, unknown, Effect, Env, HardwareEvent, Profile, Sample};

/// Lock state.
#[derive(Debug, Clone)]
pub struct Lock {
    /// Bolt thrown.
    pub locked: bool,
    /// Battery, %.
    pub battery_pct: f64,
    jammed: bool,
    warned_low: bool,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            locked: true,
            battery_pct: 23.0,
            jammed: false,
            warned_low: false,
        }
    }
}

impl Lock {
    fn state(&self) -> Value {
        json!({"locked": self.locked, "battery_pct": round1(self.battery_pct)})
    }
}

impl Profile for Lock {
    fn kind(&self) -> &'static str {
        "lock"
    }

    fn description(&self) -> String {
        "Door lock: lock, unlock (asks for confirmation), battery".into()
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            tool(
                "lock",
                "Lock",
                "Lock the door",
                no_args(),
                Effect::Idempotent,
                "auto",
            ),
            tool(
                "unlock",
                "Unlock",
                "Unlock the door (a person must confirm)",
                no_args(),
                Effect::Destructive,
                "confirm",
            ),
            tool(
                "get_state",
                "Read state",
                "Whether the door is locked, and the battery level",
                no_args(),
                Effect::ReadOnly,
                "auto",
            ),
        ]
    }

    fn call(&mut self, tool: &str, _args: &Value, env: &mut Env) -> CallToolResult {
        match tool {
            "lock" | "unlock" => {
                if env.fault() {
                    self.jammed = true;
                }
                if self.jammed {
                    self.jammed = false;
                    return CallToolResult::tool_error("the bolt is jammed; try again");
                }
                self.locked = tool == "lock";
                self.battery_pct = (self.battery_pct - 0.1).max(0.0);
            }
            "get_state" => {}
            other => return unknown("lock", other),
        }
        CallToolResult::structured(self.state())
    }

    fn tick(&mut self, dt: Duration, _env: &mut Env) -> Sample {
        self.battery_pct = (self.battery_pct - dt.as_secs_f64() * 0.001).max(0.0);
        let mut s = Sample::default();
        if self.battery_pct < 20.0 && !self.warned_low {
            self.warned_low = true;
            s.events.push(HardwareEvent {
                kind: "battery_low",
                severity: "warning",
                message: format!("front door lock battery at {}%", round1(self.battery_pct)),
                data: json!({"battery_pct": round1(self.battery_pct)}),
            });
        }
        s.metrics.insert("locked".into(), json!(self.locked));
        s.metrics
            .insert("battery_pct".into(), json!(round1(self.battery_pct)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    #[test]
    fn unlock_needs_confirmation_and_battery_warns_once() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 0.0,
        };
        let mut l = Lock::default();
        let unlock = l.tools().into_iter().find(|t| t.name == "unlock").unwrap();
        assert_eq!(unlock.declared_permission(), Some("confirm"));
        assert_eq!(
            l.call("unlock", &json!({}), &mut env)
                .structured_content
                .unwrap()["locked"],
            json!(false)
        );
        let s = l.tick(Duration::from_secs(4000), &mut env);
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].kind, "battery_low");
        assert!(l.tick(Duration::from_secs(10), &mut env).events.is_empty());
    }

    #[test]
    fn a_jam_is_a_tool_error() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 1.0,
        };
        let mut l = Lock::default();
        assert!(l.call("unlock", &json!({}), &mut env).is_error);
        assert!(l.locked);
    }
}
