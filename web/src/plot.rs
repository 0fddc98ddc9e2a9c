//! The console's plot geometry: one metric's samples to an SVG path, a time axis and a value
//! axis with the metric's unit.
//!
//! Owns the arithmetic only (no DOM, no clock), so it is tested as plain functions. Units come
//! from `axon-core`'s table ([`MetricKey`]), the same one the agent's answers read. It must
//! never format an `f64` with `{}`: that links core's float formatting into the page
//! (docs/web-size.md); numbers go through integer arithmetic ([`decimal_text`]).

use axon_core::protocol::telemetry::{decimal_text, MetricKey};

/// The drawing area, in SVG user units.
pub const W: u32 = 280;
/// The drawing area's height.
pub const H: u32 = 70;
/// Room above and below the line, so a flat or extreme value is not drawn on the border.
const PAD: f64 = 4.0;

/// The steps a time axis may tick at, in milliseconds: from 10 s to an hour.
const TICK_STEPS_MS: [u64; 9] = [
    10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
];
/// Most intervals between ticks, so the labels do not crowd a 280-wide axis.
const MAX_TICK_INTERVALS: u64 = 4;

/// What the console draws for one metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// The SVG path: `M` then `L` segments, or only `H`/`V` segments for a boolean.
    pub path: String,
    /// Time ticks: x (in 0..=W) and label, oldest first; the newest is `"now"`.
    pub ticks: Vec<(u32, String)>,
    /// The lowest value's label, with the unit (`"20.5 °C"`; `"off"` for a boolean).
    pub low: String,
    /// The highest value's label.
    pub high: String,
    /// The newest value, with the unit.
    pub last: String,
    /// The unit's symbol, empty when the name carries none.
    pub unit: &'static str,
}

/// The geometry of `points` (`(unix ms, value)`, oldest first) of the metric `name`.
/// `boolean` says the samples were true/false: they are drawn as steps between 0 and 1.
pub fn geometry(name: &str, points: &[(u64, f64)], boolean: bool) -> Geometry {
    let key = MetricKey::parse(name);
    let (t0, t1) = (
        points.first().map_or(0, |p| p.0),
        points.last().map_or(0, |p| p.0),
    );
    let (lo, hi) = if boolean {
        (0.0, 1.0)
    } else {
        points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        })
    };
    let span_t = t1.saturating_sub(t0).max(1) as f64;
    let span_y = hi - lo;
    let (w, h) = (f64::from(W), f64::from(H));
    let x = |t: u64| coordinate(t.saturating_sub(t0) as f64 / span_t * w);
    // A value that never changed is drawn across the middle, not along the bottom grid line.
    let y = |v: f64| {
        coordinate(if hi > lo {
            h - PAD - (v - lo) / span_y * (h - 2.0 * PAD)
        } else {
            h / 2.0
        })
    };
    let mut path = String::new();
    for (i, (t, v)) in points.iter().enumerate() {
        if i == 0 {
            path = format!("M{} {}", x(*t), y(*v));
        } else if boolean {
            // A switch holds its state until the next sample: along, then up or down.
            path.push_str(&format!(" H{} V{}", x(*t), y(*v)));
        } else {
            path.push_str(&format!(" L{} {}", x(*t), y(*v)));
        }
    }
    let label = |v: f64| {
        if boolean {
            let (yes, no) = key.state_words().unwrap_or(("true", "false"));
            (if v >= 0.5 { yes } else { no }).to_string()
        } else {
            key.unit.with_symbol(decimal_text(v, 1))
        }
    };
    let (low, high, last) = match points.last() {
        Some(p) => (label(lo), label(hi), label(p.1)),
        None => (String::new(), String::new(), String::new()),
    };
    Geometry {
        path,
        ticks: time_ticks(t0, t1),
        low,
        high,
        last,
        unit: key.unit.symbol(),
    }
}

/// Room left of the plot for the value labels ("unlocked", "21.5 °C"), in SVG units.
pub const GUTTER: u32 = 56;
/// Room below the plot for the time labels.
const FOOT: u32 = 14;

impl Geometry {
    /// The `viewBox` of [`Geometry::svg`].
    pub fn view_box() -> String {
        format!("0 0 {} {}", GUTTER + W, H + FOOT)
    }

    /// The plot's SVG content: the value labels in the gutter, grid lines at the lowest and
    /// highest value, the line, and the time ticks below. Markup as text, set once: every
    /// reactive element would cost the page code (docs/web-size.md). What it writes comes from
    /// digits and the unit table, never from a device, so nothing needs escaping.
    pub fn svg(&self) -> String {
        let (top, bottom) = (PAD as u32, H - PAD as u32);
        let mut out = format!(
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <text x=\"{x}\" y=\"{bottom}\" text-anchor=\"end\">{}</text>\
             <g transform=\"translate({GUTTER},0)\">\
             <path class=\"grid\" d=\"M0 {top} H{W} M0 {bottom} H{W}\"></path>\
             <path class=\"line\" d=\"{}\"></path>",
            top + 6,
            self.high,
            self.low,
            self.path,
            x = GUTTER - 4,
        );
        for (x, label) in &self.ticks {
            // Labels at the ends are anchored inward so they are not cut off.
            let anchor = match *x {
                x if x < 20 => "start",
                x if x > W - 20 => "end",
                _ => "middle",
            };
            out.push_str(&format!(
                "<path class=\"grid\" d=\"M{x} {bottom} V{H}\"></path>\
                 <text x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>",
                H + FOOT - 2
            ));
        }
        out.push_str("</g>");
        out
    }
}

/// An SVG coordinate to a tenth, in integer arithmetic (`"12.5"`, `"280"`).
fn coordinate(v: f64) -> String {
    decimal_text(v, 1)
}

/// Ticks back from the newest sample `t1` at a round step, as far as the oldest `t0`: for a
/// 10-minute window, "-10 min", "-5 min", "now".
pub fn time_ticks(t0: u64, t1: u64) -> Vec<(u32, String)> {
    let span = t1.saturating_sub(t0);
    if span == 0 {
        return vec![(W, "now".into())];
    }
    let step = TICK_STEPS_MS
        .into_iter()
        .find(|s| span / s <= MAX_TICK_INTERVALS)
        .unwrap_or(TICK_STEPS_MS[TICK_STEPS_MS.len() - 1]);
    let mut ticks: Vec<(u32, String)> = (0..=span / step)
        .map(|k| {
            let back = k * step;
            let x = (span - back) * u64::from(W) / span;
            (x as u32, ago(back))
        })
        .collect();
    ticks.reverse();
    ticks
}

/// `ms` before now, as a tick reads it: "now", "-30 s", "-5 min", "-1 h".
fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => "now".into(),
        s if s < 60 || s % 60 != 0 => format!("-{s} s"),
        s if s < 3600 || s % 3600 != 0 => format!("-{} min", s / 60),
        s => format!("-{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const T: u64 = 1_790_000_000_000;

    #[wasm_bindgen_test]
    fn a_boolean_is_drawn_as_steps_and_labelled_with_its_states() {
        let on = [
            (T, 0.0),
            (T + 60_000, 1.0),
            (T + 120_000, 1.0),
            (T + 180_000, 0.0),
        ];
        let g = geometry("on", &on, true);
        assert_eq!(g.path, "M0 66 H93.3 V4 H186.7 V4 H280 V66");
        // Only horizontal and vertical moves after the start: no ramp.
        let moves: Vec<&str> = g
            .path
            .split(' ')
            .filter(|p| p.starts_with(char::is_alphabetic))
            .collect();
        assert!(
            moves[1..]
                .iter()
                .all(|m| m.starts_with('H') || m.starts_with('V')),
            "{moves:?}"
        );
        assert_eq!(
            (g.low.as_str(), g.high.as_str(), g.last.as_str()),
            ("off", "on", "off")
        );
        let locked = geometry("locked", &on[..2], true);
        assert_eq!(
            (locked.low.as_str(), locked.high.as_str()),
            ("unlocked", "locked")
        );
        // A boolean that never changed still spans the axis from off to on.
        let flat = geometry("motion", &[(T, 0.0), (T + 5_000, 0.0)], true);
        assert_eq!(flat.path, "M0 66 H280 V66");
        assert_eq!(
            (flat.low.as_str(), flat.high.as_str()),
            ("none", "detected")
        );
    }

    #[wasm_bindgen_test]
    fn a_number_is_a_line_with_its_unit_on_the_value_axis() {
        let temp = [(T, 20.5), (T + 300_000, 21.0), (T + 600_000, 21.5)];
        let g = geometry("temperature_c", &temp, false);
        assert_eq!(g.path, "M0 66 L140 35 L280 4");
        assert_eq!((g.low.as_str(), g.high.as_str()), ("20.5 °C", "21.5 °C"));
        assert_eq!(g.last, "21.5 °C");
        assert_eq!(g.unit, "°C");
        let humidity = geometry("humidity_pct", &[(T, 44.3)], false);
        assert_eq!((humidity.low.as_str(), humidity.unit), ("44.3%", "%"));
        assert_eq!(
            humidity.path, "M0 35",
            "a value that never changed is drawn mid-height"
        );
        assert_eq!(geometry("power_w", &[(T, 3.46)], false).last, "3.5 W");
        assert_eq!(geometry("photos_taken", &[(T, 3.0)], false).unit, "");
        let empty = geometry("power_w", &[], false);
        assert_eq!((empty.path.as_str(), empty.last.as_str()), ("", ""));
    }

    #[wasm_bindgen_test]
    fn the_svg_carries_both_axes_and_the_line() {
        let g = geometry(
            "temperature_c",
            &[(T, 20.5), (T + 300_000, 21.0), (T + 600_000, 21.5)],
            false,
        );
        let svg = g.svg();
        assert_eq!(Geometry::view_box(), "0 0 336 84");
        for part in [
            ">21.5 °C</text>",
            ">20.5 °C</text>",
            "<path class=\"line\" d=\"M0 66 L140 35 L280 4\">",
            "text-anchor=\"start\">-10 min</text>",
            "text-anchor=\"middle\">-5 min</text>",
            "text-anchor=\"end\">now</text>",
        ] {
            assert!(svg.contains(part), "{part} not in {svg}");
        }
        assert_eq!(
            svg.matches("<text").count(),
            5,
            "two value labels, three ticks"
        );
    }

    #[wasm_bindgen_test]
    fn a_ten_minute_window_ticks_every_five_minutes_back_from_now() {
        assert_eq!(
            time_ticks(T, T + 600_000),
            vec![
                (0, "-10 min".to_string()),
                (140, "-5 min".into()),
                (280, "now".into())
            ]
        );
        // A window that is not a whole number of steps starts between ticks.
        assert_eq!(
            time_ticks(T, T + 100_000),
            vec![
                (28, "-90 s".to_string()),
                (112, "-1 min".into()),
                (196, "-30 s".into()),
                (280, "now".into())
            ]
        );
        assert_eq!(
            time_ticks(T, T + 7_200_000),
            vec![
                (0, "-2 h".to_string()),
                (70, "-90 min".into()),
                (140, "-1 h".into()),
                (210, "-30 min".into()),
                (280, "now".into())
            ]
        );
        assert_eq!(time_ticks(T, T), vec![(280, "now".to_string())]);
        assert_eq!(time_ticks(T, T + 20_000).len(), 3, "-20 s, -10 s, now");
    }
}
