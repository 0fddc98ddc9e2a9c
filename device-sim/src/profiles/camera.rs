//! A camera: `take_photo` returns a small synthetic JPEG of a hallway (a window, a door, a
//! floor) whose mean brightness is the simulated light level, so what a vision model or the
//! offline facts say about it can be checked against `light_pct`.

use std::time::Duration;

use axon_core::protocol::mcp::types::{CallToolResult, ContentBlock, Tool};
use base64::Engine as _;
use serde_json::{json, Value};

use super::{no_args, round1, tool, unknown, Effect, Env, Profile, Sample};

/// Photo width in pixels.
pub const WIDTH: u16 = 320;
/// Photo height in pixels.
pub const HEIGHT: u16 = 240;
/// JPEG quality.
const QUALITY: u8 = 80;

/// Camera state.
#[derive(Debug, Clone)]
pub struct Camera {
    /// The scene's light level, 5–95 %: the photo's mean brightness.
    pub light_pct: f64,
    photos_taken: u64,
    temperature_c: f64,
}

impl Default for Camera {
    fn default() -> Self {
        Camera {
            light_pct: 40.0,
            photos_taken: 0,
            temperature_c: 31.0,
        }
    }
}

impl Camera {
    fn state(&self) -> Value {
        json!({
            "light_pct": round1(self.light_pct),
            "photos_taken": self.photos_taken,
            "resolution": format!("{WIDTH}x{HEIGHT}"),
            "temperature_c": round1(self.temperature_c),
        })
    }

    /// The scene at the current light level, as grey pixels. The pattern (a vertical
    /// gradient, a bright window and a dark door of the same area) averages to zero, and its
    /// amplitude never reaches 0 or 255, so the mean is exactly the light level.
    pub fn scene(&self) -> Vec<u8> {
        let base = self.light_pct.clamp(0.0, 100.0) / 100.0 * 255.0;
        let amplitude = 0.8 * base.min(255.0 - base);
        let (w, h) = (usize::from(WIDTH), usize::from(HEIGHT));
        let inside = |x: usize, y: usize, x0: usize, y0: usize| {
            (x0..x0 + 60).contains(&x) && (y0..y0 + 60).contains(&y)
        };
        let mut px = Vec::with_capacity(w * h);
        for y in 0..h {
            // -1 at the top (the ceiling's shade) to +1 at the bottom (a lit floor).
            let gradient = (y as f64 / (h - 1) as f64) * 2.0 - 1.0;
            for x in 0..w {
                let shape = if inside(x, y, 40, 130) {
                    1.0 // the window, lit
                } else if inside(x, y, 210, 30) {
                    -1.0 // the door, in shadow
                } else {
                    0.0
                };
                let v = base + amplitude * (0.5 * gradient + 0.5 * shape);
                px.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
        px
    }

    fn photo(&mut self) -> CallToolResult {
        let mut jpeg = Vec::new();
        let encoded = jpeg_encoder::Encoder::new(&mut jpeg, QUALITY).encode(
            &self.scene(),
            WIDTH,
            HEIGHT,
            jpeg_encoder::ColorType::Luma,
        );
        if let Err(e) = encoded {
            return CallToolResult::tool_error(format!("the camera could not encode a JPEG: {e}"));
        }
        self.photos_taken += 1;
        let bytes = jpeg.len();
        let mut r = CallToolResult::structured(json!({
            "width": WIDTH,
            "height": HEIGHT,
            "bytes": bytes,
            "light_pct": round1(self.light_pct),
        }));
        r.content = vec![
            ContentBlock::Image {
                data: base64::engine::general_purpose::STANDARD.encode(&jpeg),
                mime_type: "image/jpeg".into(),
            },
            ContentBlock::text(format!("a {WIDTH}×{HEIGHT} JPEG from the camera")),
        ];
        r
    }
}

impl Profile for Camera {
    fn kind(&self) -> &'static str {
        "camera"
    }

    fn description(&self) -> String {
        format!("Camera: {WIDTH}×{HEIGHT} JPEG photos, light level")
    }

    fn tools(&self) -> Vec<Tool> {
        vec![
            tool(
                "take_photo",
                "Take a photo",
                "Take a photo with the camera (JPEG)",
                no_args(),
                Effect::ReadOnly,
                "auto",
            ),
            tool(
                "get_state",
                "Read state",
                "Light level, photos taken, resolution and board temperature",
                no_args(),
                Effect::ReadOnly,
                "auto",
            ),
        ]
    }

    fn call(&mut self, tool: &str, _args: &Value, _env: &mut Env) -> CallToolResult {
        match tool {
            "take_photo" => self.photo(),
            "get_state" => CallToolResult::structured(self.state()),
            other => unknown("camera", other),
        }
    }

    fn tick(&mut self, dt: Duration, env: &mut Env) -> Sample {
        let w = dt.as_secs_f64().min(60.0) / 10.0;
        self.light_pct = (self.light_pct + (env.unit() - 0.5) * 4.0 * w).clamp(5.0, 95.0);
        self.temperature_c = (self.temperature_c + (env.unit() - 0.5) * 0.2 * w).clamp(20.0, 60.0);
        let mut s = Sample::default();
        if let Value::Object(m) = self.state() {
            s.metrics = m;
        }
        s.metrics.remove("resolution");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_core::time::Rng;

    fn env() -> Env {
        Env {
            rng: Rng::new(3),
            fault_rate: 0.0,
        }
    }

    #[test]
    fn a_photo_is_a_jpeg_whose_brightness_is_the_light_level() {
        let mut c = Camera::default();
        for light in [5.0, 23.0, 40.0, 77.0, 95.0] {
            c.light_pct = light;
            let r = c.call("take_photo", &json!({}), &mut env());
            assert!(!r.is_error);
            let Some(ContentBlock::Image { data, mime_type }) = r.content.first() else {
                panic!("no image block: {r:?}");
            };
            assert_eq!(mime_type, "image/jpeg");
            let facts = axon_core::media::vision::measure_base64(data).unwrap();
            assert_eq!((facts.width, facts.height), (320, 240));
            let b = facts.brightness_pct.unwrap();
            assert!((b - light).abs() < 1.0, "light {light} % measured {b} %");
            assert_eq!(r.structured_content.as_ref().unwrap()["light_pct"], light);
        }
        assert_eq!(c.state()["photos_taken"], 5);
    }

    #[test]
    fn the_scene_mean_is_exactly_the_light_level_and_it_has_shapes() {
        let c = Camera {
            light_pct: 60.0,
            ..Camera::default()
        };
        let px = c.scene();
        let mean = px.iter().map(|&p| f64::from(p)).sum::<f64>() / px.len() as f64;
        assert!((mean / 255.0 * 100.0 - 60.0).abs() < 0.3, "{mean}");
        let (min, max) = (px.iter().min().unwrap(), px.iter().max().unwrap());
        assert!(max - min > 100, "a scene, not a flat grey: {min}..{max}");
    }

    #[test]
    fn telemetry_reports_the_light_level_within_bounds() {
        let mut c = Camera::default();
        let mut e = env();
        for _ in 0..500 {
            let s = c.tick(Duration::from_secs(30), &mut e);
            let l = s.metrics["light_pct"].as_f64().unwrap();
            assert!((5.0..=95.0).contains(&l));
            assert!(s.metrics.contains_key("temperature_c"));
        }
    }
}
