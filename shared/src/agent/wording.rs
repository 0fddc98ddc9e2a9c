//! A device's state in one sentence a person would say: "It's 21 °C in the living room, 44%
//! humidity."
//!
//! Owns how a `get_state`-like result reads: each value named from its metric's quantity and
//! unit ([`MetricKey`], the table in [`crate::protocol::telemetry`]) and rounded for people, the room or
//! the device in the sentence, and the value the question asked for first. It must never show
//! a key (`current_c`) or a raw float (`44.300000001`), and never invent a value that the state
//! does not carry.

use serde_json::Value;

use crate::protocol::telemetry::{decimal_text, MetricKey, Unit};

/// One value of the state, with what its name says.
struct Fact<'a> {
    key: MetricKey<'a>,
    value: Reading<'a>,
    kind: Kind,
}

enum Reading<'a> {
    Number(f64),
    Bool(bool),
    Text(&'a str),
}

/// What a value is about, which decides its words and where it goes in the sentence. The
/// order of the variants is the order a person tells them when nothing in particular was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The temperature where the device is (`temperature_c`, a thermostat's `current_c`).
    RoomTemperature,
    Humidity,
    /// A set point (`target_c`).
    Target,
    /// A switch-like state: `on`, `locked`, `open`, `heating`.
    Switch,
    /// A level from 0 to 100 (`brightness`, `volume`).
    Level,
    Power,
    Mode,
    Energy,
    Light,
    Motion,
    /// Any other temperature (a lamp's `driver_temp_c`).
    OtherTemperature,
    Battery,
    Other,
}

fn kind_of(key: &MetricKey<'_>) -> Kind {
    match (key.quantity, key.unit) {
        ("target", Unit::Celsius) => Kind::Target,
        ("temperature" | "temp" | "current" | "room" | "ambient", Unit::Celsius) => {
            Kind::RoomTemperature
        }
        (_, Unit::Celsius) => Kind::OtherTemperature,
        ("humidity", _) => Kind::Humidity,
        ("battery", _) => Kind::Battery,
        ("power", _) => Kind::Power,
        ("energy", _) => Kind::Energy,
        ("light", _) | (_, Unit::Lux) => Kind::Light,
        ("motion", _) => Kind::Motion,
        ("mode", _) => Kind::Mode,
        ("on" | "locked" | "open" | "heating" | "cooling", _) => Kind::Switch,
        (_, Unit::Percent) if matches!(key.quantity, "brightness" | "volume" | "level") => {
            Kind::Level
        }
        _ => Kind::Other,
    }
}

/// Question words that ask for a kind of value, beyond the quantity's own name.
fn asked_for(kind: Kind, quantity: &str, words: &[&str]) -> bool {
    let synonyms: &[&str] = match kind {
        Kind::RoomTemperature => &[
            "temperature",
            "temp",
            "warm",
            "cold",
            "hot",
            "degrees",
            "celsius",
        ],
        Kind::Humidity => &["humidity", "humid"],
        Kind::Target => &["target", "set"],
        Kind::Switch => match quantity {
            "on" => &["on", "off"],
            "locked" => &["locked", "unlocked", "lock"],
            "open" => &["open", "closed", "shut"],
            _ => &[],
        },
        Kind::Level => &["brightness", "bright", "dim", "volume", "loud"],
        Kind::Power => &["power", "watts", "using", "consumption", "drawing"],
        Kind::Energy => &["energy", "consumed", "kwh"],
        Kind::Light => &["light", "bright", "dark", "lux"],
        Kind::Motion => &["motion", "movement", "moving", "anyone", "someone"],
        Kind::Battery => &["battery", "charge"],
        _ => &[],
    };
    synonyms.iter().any(|s| words.contains(s)) || quantity.split('_').all(|q| words.contains(&q))
}

fn facts(state: &Value) -> Vec<Fact<'_>> {
    let Some(map) = state.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<Fact<'_>> = map
        .iter()
        .filter_map(|(name, v)| {
            let value = match v {
                Value::Bool(b) => Reading::Bool(*b),
                Value::Number(n) => Reading::Number(n.as_f64()?),
                Value::String(s) if !s.is_empty() => Reading::Text(s),
                _ => return None,
            };
            let key = MetricKey::parse(name);
            Some(Fact {
                kind: kind_of(&key),
                key,
                value,
            })
        })
        .collect();
    // Stable: values of one kind keep the state's (alphabetical) order.
    out.sort_by_key(|f| f.kind);
    out
}

fn switch_word(key: &MetricKey<'_>, on: bool) -> String {
    match key.state_words() {
        // A sentence names it: "motion detected", "no motion" (a plot's axis says "detected").
        Some(_) if key.quantity == "motion" => {
            (if on { "motion detected" } else { "no motion" }).into()
        }
        Some((yes, no)) => (if on { yes } else { no }).into(),
        None if on => key.words(),
        None => format!("not {}", key.words()),
    }
}

/// A value after the first: "44% humidity", "set to 21 °C", "using 60 W", "mode auto".
fn clause(f: &Fact<'_>) -> String {
    let words = f.key.words();
    match (&f.value, f.kind) {
        // "TV plug is using 61 W, switched on": a bare "on" after a comma reads as a typo.
        (Reading::Bool(b), _) if f.key.quantity == "on" => {
            format!("switched {}", switch_word(&f.key, *b))
        }
        (Reading::Bool(b), _) => switch_word(&f.key, *b),
        (Reading::Text(s), _) => format!("{words} {s}"),
        (Reading::Number(n), Kind::Target) => format!("set to {}", target_text(*n)),
        (Reading::Number(n), Kind::Power) => format!("using {}", f.key.unit.value_text(*n)),
        (Reading::Number(n), Kind::Energy) => format!("{} used", f.key.unit.value_text(*n)),
        (Reading::Number(n), Kind::RoomTemperature) => {
            format!("temperature {}", f.key.unit.value_text(*n))
        }
        (Reading::Number(n), Kind::Light) => f.key.unit.value_text(*n),
        (Reading::Number(n), _) if f.key.unit == Unit::Percent => {
            format!("{} {words}", f.key.unit.value_text(*n))
        }
        (Reading::Number(n), _) => format!("{words} {}", f.key.unit.value_text(*n)),
    }
}

/// A set point is told as set, to the tenth: rounding it would misreport what was asked.
fn target_text(n: f64) -> String {
    format!("{} {}", decimal_text(n, 1), Unit::Celsius.symbol())
}

/// The start of the sentence, about the first value: "It's 21 °C in the living room",
/// "Kitchen lamp is on", "The humidity in the hall is 44%".
fn lead(f: &Fact<'_>, title: &str, place: &str) -> String {
    let words = f.key.words();
    match (&f.value, f.kind) {
        (Reading::Number(n), Kind::RoomTemperature) => {
            format!("It's {} {place}", f.key.unit.value_text(*n))
        }
        (Reading::Number(n), Kind::Target) => format!("{title} is set to {}", target_text(*n)),
        (Reading::Number(n), Kind::Power) => {
            format!("{title} is using {}", f.key.unit.value_text(*n))
        }
        (Reading::Bool(b), Kind::Motion) => {
            format!(
                "There's {} {place}",
                if *b { "motion" } else { "no motion" }
            )
        }
        (Reading::Bool(b), _) => format!("{title} is {}", switch_word(&f.key, *b)),
        (Reading::Text(s), _) => format!("{title}'s {words} is {s}"),
        (Reading::Number(n), Kind::Humidity | Kind::Light) => {
            format!("The {words} {place} is {}", f.key.unit.value_text(*n))
        }
        (Reading::Number(n), _) => {
            format!("{title}'s {words} is {}", f.key.unit.value_text(*n))
        }
    }
}

/// A device's state in one sentence. `question` is what the person asked: the value it asks
/// for comes first, followed by one more (a short answer to a question); with nothing in
/// particular asked, every value is told in the usual order. `room` places the device ("in
/// the living room"); without one the device's title does ("at the hall sensor").
pub fn describe_state(title: &str, room: Option<&str>, state: &Value, question: &str) -> String {
    let mut facts = facts(state);
    if facts.is_empty() {
        return match state.as_str() {
            Some(s) => format!("{title}: {s}"),
            None => format!("{title} answered."),
        };
    }
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let asked = facts
        .iter()
        .position(|f| asked_for(f.kind, f.key.quantity, &words));
    if let Some(i) = asked {
        let first = facts.remove(i);
        facts.insert(0, first);
        facts.truncate(2);
    }
    let place = match room {
        Some(r) => format!("in the {}", r.replace('-', " ").to_lowercase()),
        None => format!("at the {}", title.to_lowercase()),
    };
    let mut sentence = lead(&facts[0], title, &place);
    for f in &facts[1..] {
        sentence.push_str(", ");
        sentence.push_str(&clause(f));
    }
    sentence.push('.');
    sentence
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // States as the device-sim profiles' `get_state` returns them.
    fn thermostat() -> Value {
        json!({"current_c": 21.0, "target_c": 21.0, "mode": "auto", "humidity_pct": 44.3})
    }
    fn sensor() -> Value {
        json!({"temperature_c": 20.3, "humidity_pct": 48.2, "light_lux": 312.4, "motion": false, "battery_pct": 86.9})
    }
    fn plug() -> Value {
        json!({"on": true, "power_w": 61.4, "energy_wh": 12.3})
    }
    fn lamp() -> Value {
        json!({"on": true, "brightness": 80})
    }
    fn lock() -> Value {
        json!({"locked": true, "battery_pct": 79.6})
    }

    const LIVING: Option<&str> = Some("living room");

    #[test]
    fn a_temperature_question_gets_the_temperature_first_in_words() {
        let q = "what is the temperature in the living room?";
        assert_eq!(
            describe_state("Living room thermostat", LIVING, &thermostat(), q),
            "It's 21 °C in the living room, 44% humidity."
        );
        assert_eq!(
            describe_state("Living room sensor", LIVING, &sensor(), q),
            "It's 20.5 °C in the living room, 48% humidity."
        );
        assert_eq!(
            describe_state(
                "Hall sensor",
                Some("hall-way"),
                &sensor(),
                "how warm is it?"
            ),
            "It's 20.5 °C in the hall way, 48% humidity."
        );
    }

    #[test]
    fn the_value_asked_for_leads_whatever_its_kind() {
        assert_eq!(
            describe_state("Living room sensor", LIVING, &sensor(), "how humid is it"),
            "The humidity in the living room is 48%, temperature 20.5 °C."
        );
        assert_eq!(
            describe_state("Living room sensor", LIVING, &sensor(), "is there motion?"),
            "There's no motion in the living room, temperature 20.5 °C."
        );
        assert_eq!(
            describe_state(
                "Living room sensor",
                LIVING,
                &sensor(),
                "battery of the sensor"
            ),
            "Living room sensor's battery is 87%, temperature 20.5 °C."
        );
        assert_eq!(
            describe_state(
                "TV plug",
                LIVING,
                &plug(),
                "how much power is the tv using?"
            ),
            "TV plug is using 61 W, switched on."
        );
        assert_eq!(
            describe_state(
                "Front door lock",
                Some("hall"),
                &lock(),
                "is the front door locked?"
            ),
            "Front door lock is locked, 80% battery."
        );
        assert_eq!(
            describe_state(
                "Living room thermostat",
                LIVING,
                &thermostat(),
                "what's the mode"
            ),
            "Living room thermostat's mode is auto, temperature 21 °C."
        );
        assert_eq!(
            describe_state(
                "Living room thermostat",
                None,
                &thermostat(),
                "what's it set to?"
            ),
            "Living room thermostat is set to 21 °C, temperature 21 °C."
        );
    }

    #[test]
    fn a_status_question_tells_everything_in_order_without_keys() {
        let q = "status";
        assert_eq!(
            describe_state("Living room thermostat", LIVING, &thermostat(), q),
            "It's 21 °C in the living room, 44% humidity, set to 21 °C, mode auto."
        );
        assert_eq!(
            describe_state("Hall sensor", None, &sensor(), q),
            "It's 20.5 °C at the hall sensor, 48% humidity, 312 lux, no motion, 87% battery."
        );
        assert_eq!(
            describe_state("TV plug", LIVING, &plug(), q),
            "TV plug is on, using 61 W, 12 Wh used."
        );
        assert_eq!(
            describe_state(
                "Kitchen lamp",
                Some("kitchen"),
                &lamp(),
                "is the kitchen lamp on?"
            ),
            "Kitchen lamp is on, 80% brightness."
        );
        let off = json!({"on": false, "brightness": 0});
        assert_eq!(
            describe_state("Kitchen lamp", Some("kitchen"), &off, q),
            "Kitchen lamp is off, 0% brightness."
        );
        assert_eq!(
            describe_state(
                "Front door lock",
                Some("hall"),
                &json!({"locked": false, "battery_pct": 12}),
                q
            ),
            "Front door lock is unlocked, 12% battery."
        );
        for state in [thermostat(), sensor(), plug(), lamp(), lock()] {
            let s = describe_state("Device", LIVING, &state, q);
            for key in state
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.contains('_'))
            {
                assert!(!s.contains(key.as_str()), "{key} in {s:?}");
            }
            assert!(!s.contains(" c ") && !s.contains(" pct"), "{s:?}");
        }
    }

    #[test]
    fn strings_counts_and_odd_states_read_plainly() {
        let speaker = json!({"volume": 35, "last_said": "hello", "tones_played": 2});
        assert_eq!(
            describe_state("Kitchen speaker", Some("kitchen"), &speaker, "status"),
            "Kitchen speaker's volume is 35%, last said hello, tones played 2."
        );
        let camera = json!({"light_pct": 61.2, "photos_taken": 3, "resolution": "640x480"});
        assert_eq!(
            describe_state("Hall camera", Some("hall"), &camera, "status"),
            "The light in the hall is 61%, photos taken 3, resolution 640x480."
        );
        assert_eq!(
            describe_state("Phone", None, &json!({"fast_charging": false}), "status"),
            "Phone is not fast charging."
        );
        assert_eq!(
            describe_state("Hall camera", None, &json!("ready"), "status"),
            "Hall camera: ready"
        );
        assert_eq!(
            describe_state(
                "Hall camera",
                None,
                &json!({"nested": {}, "empty": ""}),
                "status"
            ),
            "Hall camera answered."
        );
        assert_eq!(
            describe_state(
                "Board",
                None,
                &json!({"uptime_s": 3600, "rssi_dbm": -61.5}),
                "status"
            ),
            "Board's rssi is -62 dBm, uptime 3600 s."
        );
    }
}
