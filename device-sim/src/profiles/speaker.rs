//! A speaker: volume, tones, and text it would speak.
//!
//! The `say` tool only records the text: a simulated board has no audio out. The voice path
//! itself (speech in, the agent's spoken answer out) is the Hub's `/api/voice` WebSocket, which
//! a board drives with `axon-device-sim say --device living-speaker --wav in.wav --out
//! answer.wav` (`crate::voice`, docs/voice.md §4).

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, Tool};
use serde_json::{json, Value};

use super::{arg_number, no_args, tool, unknown, Effect, Env, Profile, Sample};

/// Speaker state.
#[derive(Debug, Clone)]
pub struct Speaker {
    /// Volume, 0–100 %.
    pub volume: u8,
    /// The last thing it said.
    pub last_said: Option<String>,
    tones_played: u64,
}

impl Default for Speaker {
    fn default() -> Self {
        Speaker {
            volume: 40,
            last_said: None,
            tones_played: 0,
        }
    }
}

impl Speaker {
    fn state(&self) -> Value {
        json!({"volume": self.volume, "last_said": self.last_said, "tones_played": self.tones_played})
    }
}

impl Profile for Speaker {
    fn kind(&self) -> &'static str {
        "speaker"
    }

    fn description(&self) -> String {
        "Speaker: volume, tones, speech".into()
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            tool(
                "set_volume",
                "Set volume",
                "Set the volume in percent",
                json!({"type":"object","properties":{"level":{"type":"integer","minimum":0,"maximum":100}},"required":["level"],"additionalProperties":false}),
                Effect::Idempotent,
                "auto",
            ),
            tool(
                "play_tone",
                "Play a tone",
                "Play a sine tone",
                json!({"type":"object","properties":{
                    "frequency_hz":{"type":"integer","minimum":20,"maximum":20000},
                    "duration_ms":{"type":"integer","minimum":10,"maximum":5000}},
                    "required":["frequency_hz","duration_ms"],"additionalProperties":false}),
                Effect::Repeating,
                "auto",
            ),
            tool(
                "say",
                "Say",
                "Speak a short text aloud",
                json!({"type":"object","properties":{"text":{"type":"string","minLength":1,"maxLength":500}},"required":["text"],"additionalProperties":false}),
                Effect::Repeating,
                "auto",
            ),
            tool(
                "get_state",
                "Read state",
                "Volume and what was played",
                no_args(),
                Effect::ReadOnly,
                "auto",
            ),
        ]
    }

    fn call(&mut self, tool: &str, args: &Value, _env: &mut Env) -> CallToolResult {
        match tool {
            "set_volume" => match arg_number(args, "level", 0.0, 100.0) {
                Ok(v) => self.volume = v as u8,
                Err(e) => return e,
            },
            "play_tone" => {
                if let Err(e) = arg_number(args, "frequency_hz", 20.0, 20_000.0).and(arg_number(
                    args,
                    "duration_ms",
                    10.0,
                    5_000.0,
                )) {
                    return e;
                }
                self.tones_played += 1;
            }
            "say" => match args.get("text").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && t.chars().count() <= 500 => {
                    self.last_said = Some(t.to_string())
                }
                _ => return CallToolResult::tool_error("text must be 1 to 500 characters"),
            },
            "get_state" => {}
            other => return unknown("speaker", other),
        }
        CallToolResult::structured(self.state())
    }

    fn tick(&mut self, _dt: Duration, _env: &mut Env) -> Sample {
        let mut s = Sample::default();
        s.metrics.insert("volume_pct".into(), json!(self.volume));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    #[test]
    fn plays_and_says() {
        let mut env = Env {
            rng: Rng::new(1),
            fault_rate: 0.0,
        };
        let mut s = Speaker::default();
        s.call(
            "play_tone",
            &json!({"frequency_hz": 440, "duration_ms": 200}),
            &mut env,
        );
        s.call("say", &json!({"text": "hello"}), &mut env);
        let st = s
            .call("get_state", &json!({}), &mut env)
            .structured_content
            .unwrap();
        assert_eq!(
            (st["tones_played"].clone(), st["last_said"].clone()),
            (json!(1), json!("hello"))
        );
        assert!(
            s.call("set_volume", &json!({"level": 300}), &mut env)
                .is_error
        );
    }
}
