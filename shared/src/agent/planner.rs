//! The offline planner: everyday requests to tool calls, from the registry alone.
//!
//! Owns understanding a short request ("turn on the kitchen lamp", "set the bedroom thermostat
//! to 21", "what's the temperature in the living room?", "turn off all the lights", "unlock the
//! front door", "what do you see?") against the devices that exist, their rooms, titles and
//! tools, preferring the device the person is using when the request names none. It never calls
//! anything: it returns a [`Plan`] that the agent checks (permissions, validation) and runs.
//! When it does not understand, it says so and lists what it can do; it never guesses a device.

use serde_json::{json, Value};

use crate::protocol::mcp::client::{DeviceInfo, DeviceState};

/// One tool call the planner wants.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    /// Device id.
    pub device: String,
    /// Tool name.
    pub tool: String,
    /// Arguments (already shaped for the tool's schema; the agent still validates them).
    pub arguments: Value,
}

/// What kind of request it was, to phrase the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Switch something on.
    TurnOn,
    /// Switch something off.
    TurnOff,
    /// Set a level (brightness, volume) or a target temperature.
    Set,
    /// Lock.
    Lock,
    /// Unlock.
    Unlock,
    /// Read a value (temperature, state).
    Query,
    /// Change a screen's face (`happy`, `sad`…).
    Expression,
    /// Take a photo ("what do you see?", "look at the hall"), for a vision model to describe.
    Photo,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Run these calls.
    Calls {
        /// What was asked.
        intent: Intent,
        /// The calls, one per device.
        calls: Vec<PlannedCall>,
    },
    /// Not understood: an honest answer that says what it can do.
    NotUnderstood {
        /// For the person.
        reply: String,
    },
}

/// Words that name a kind of device.
const KIND_WORDS: [(&str, &[&str]); 8] = [
    ("virtual", &["screen", "display", "face", "tab"]),
    ("lamp", &["lamp", "lamps", "light", "lights"]),
    (
        "thermostat",
        &["thermostat", "heating", "heater", "temperature"],
    ),
    ("plug", &["plug", "socket", "outlet"]),
    ("lock", &["lock", "door"]),
    ("sensor", &["sensor"]),
    ("speaker", &["speaker", "volume", "music"]),
    ("camera", &["camera", "cam", "webcam"]),
];

/// Words that ask for a photo, alone or with "what" ("what do you see", "what's in front of
/// the camera").
const PHOTO_WORDS: [&str; 7] = [
    "photo",
    "picture",
    "pic",
    "snapshot",
    "photograph",
    "see",
    "look",
];

const FILLER: [&str; 14] = [
    "the", "a", "an", "in", "on", "of", "to", "please", "my", "and", "at", "is", "it", "all",
];

pub(crate) fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('.').trim_end_matches("'s").to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn has(ws: &[String], w: &str) -> bool {
    ws.iter().any(|x| x == w)
}

fn has_seq(ws: &[String], seq: &[&str]) -> bool {
    ws.windows(seq.len())
        .any(|win| win.iter().zip(seq).all(|(a, b)| a == b))
}

fn first_number(ws: &[String]) -> Option<f64> {
    ws.iter().find_map(|w| {
        w.trim_end_matches('%')
            .trim_end_matches("°c")
            .trim_end_matches("c")
            .parse::<f64>()
            .ok()
    })
}

/// Faces a screen can make (the virtual device's `set_expression`).
pub const EXPRESSIONS: [&str; 7] = [
    "neutral",
    "happy",
    "sad",
    "thinking",
    "surprised",
    "listening",
    "speaking",
];

fn expression(ws: &[String]) -> Option<&'static str> {
    EXPRESSIONS.into_iter().find(|e| has(ws, e)).or_else(|| {
        if has(ws, "smile") {
            Some("happy")
        } else {
            None
        }
    })
}

fn intent(ws: &[String]) -> Option<Intent> {
    if expression(ws).is_some() && kinds(ws).contains(&"virtual") {
        return Some(Intent::Expression);
    }
    if PHOTO_WORDS.iter().any(|w| has(ws, w))
        || (kinds(ws).contains(&"camera") && !has(ws, "on") && !has(ws, "off"))
    {
        return Some(Intent::Photo);
    }
    if has(ws, "unlock") {
        return Some(Intent::Unlock);
    }
    if has(ws, "lock") && !has(ws, "is") {
        return Some(Intent::Lock);
    }
    let on = has_seq(ws, &["turn", "on"])
        || has_seq(ws, &["switch", "on"])
        || (has(ws, "on") && ws.first().is_some_and(|w| w == "turn" || w == "switch"));
    let off = has(ws, "off");
    if off && (has(ws, "turn") || has(ws, "switch") || ws.first().is_some_and(|w| w == "lights")) {
        return Some(Intent::TurnOff);
    }
    if has(ws, "what") || has(ws, "what's") || has(ws, "how") || has(ws, "is") || has(ws, "status")
    {
        return Some(Intent::Query);
    }
    if (has(ws, "set")
        || has(ws, "dim")
        || has(ws, "make")
        || has(ws, "brightness")
        || has(ws, "volume"))
        && first_number(ws).is_some()
    {
        return Some(Intent::Set);
    }
    if on || has(ws, "on") {
        return Some(Intent::TurnOn);
    }
    if off {
        return Some(Intent::TurnOff);
    }
    None
}

/// The kinds the request names, in order of mention.
fn kinds(ws: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for w in ws {
        for (kind, names) in KIND_WORDS {
            if names.contains(&w.as_str()) && !out.contains(&kind) {
                out.push(kind);
            }
        }
    }
    out
}

/// How well a device matches the words: room words and title words, beyond the kind.
fn score(d: &DeviceInfo, ws: &[String]) -> usize {
    let room = d.meta.room.as_deref().map(words).unwrap_or_default();
    let title = d.meta.title.as_deref().map(words).unwrap_or_default();
    let room_hit = !room.is_empty() && room.iter().all(|r| has(ws, r));
    // Kind words ("lamp") say nothing about which lamp; only the other title words count.
    let is_kind_word = |t: &str| KIND_WORDS.iter().any(|(_, names)| names.contains(&t));
    let title_hits = title
        .iter()
        .filter(|t| !FILLER.contains(&t.as_str()) && !is_kind_word(t) && has(ws, t))
        .count();
    let id_hit = ws.iter().any(|w| d.device_id == w.as_str());
    usize::from(room_hit) * 10 + title_hits + usize::from(id_hit) * 20
}

/// The tools the request can use on a device for an intent, with arguments.
fn call_for(d: &DeviceInfo, intent: Intent, ws: &[String]) -> Option<PlannedCall> {
    let has_tool = |t: &str| d.tool(t).is_some();
    let call = |tool: &str, arguments: Value| {
        Some(PlannedCall {
            device: d.device_id.to_string(),
            tool: tool.into(),
            arguments,
        })
    };
    let n = first_number(ws);
    match intent {
        Intent::TurnOn if has_tool("set_power") => call("set_power", json!({"on": true})),
        Intent::TurnOff if has_tool("set_power") => call("set_power", json!({"on": false})),
        Intent::TurnOff if has_tool("set_mode") => call("set_mode", json!({"mode": "off"})),
        Intent::TurnOn if has_tool("set_mode") => call("set_mode", json!({"mode": "auto"})),
        Intent::Lock if has_tool("lock") => call("lock", json!({})),
        Intent::Unlock if has_tool("unlock") => call("unlock", json!({})),
        Intent::Set => {
            let n = n?;
            if has_tool("set_target") {
                call("set_target", json!({"celsius": n}))
            } else if has_tool("set_brightness") {
                call("set_brightness", json!({"level": n.round() as i64}))
            } else if has_tool("set_volume") {
                call("set_volume", json!({"level": n.round() as i64}))
            } else {
                None
            }
        }
        Intent::Query if has_tool("get_state") => call("get_state", json!({})),
        Intent::Expression if has_tool("set_expression") => {
            call("set_expression", json!({"expression": expression(ws)?}))
        }
        Intent::Photo if has_tool("take_photo") => call("take_photo", json!({})),
        _ => None,
    }
}

/// Plans `text` against the ready devices in `devices`.
pub fn plan<'a>(text: &str, devices: impl IntoIterator<Item = &'a DeviceInfo>) -> Plan {
    plan_for(text, devices, None)
}

/// Plans `text` for a person using the device `preferred` (the tab or board they talk
/// through): when the request does not say which device and several could do it, that one
/// does it ("take a photo" on the tab's own camera).
pub fn plan_for<'a>(
    text: &str,
    devices: impl IntoIterator<Item = &'a DeviceInfo>,
    preferred: Option<&str>,
) -> Plan {
    let ready: Vec<&DeviceInfo> = devices
        .into_iter()
        .filter(|d| d.state == DeviceState::Ready)
        .collect();
    let ws = words(text);
    let Some(intent) = intent(&ws) else {
        return not_understood(text, &ready);
    };
    let mut named = kinds(&ws);
    // Anything with `take_photo` is a camera, whatever its kind (a tab, a doorbell).
    if intent == Intent::Photo {
        named.retain(|k| *k != "camera");
        if let Some(plan) = photo_elsewhere(&ws, &ready) {
            return plan;
        }
    }
    // "what's the temperature" reads sensors and thermostats alike.
    if intent == Intent::Query && has(&ws, "temperature") && !named.contains(&"sensor") {
        named.push("sensor");
    }
    let all = has(&ws, "all")
        || has(&ws, "every")
        || has(&ws, "lights")
            && !ws.iter().any(|w| {
                ready.iter().any(|d| {
                    d.meta
                        .room
                        .as_deref()
                        .map(words)
                        .unwrap_or_default()
                        .contains(w)
                })
            });
    let candidates: Vec<&DeviceInfo> = ready
        .iter()
        .copied()
        .filter(|d| named.is_empty() || named.contains(&d.kind.as_str()))
        .filter(|d| call_for(d, intent, &ws).is_some())
        .collect();
    if candidates.is_empty() {
        if intent == Intent::Photo {
            return Plan::NotUnderstood {
                reply: "None of the devices online has a camera (a take_photo tool).".into(),
            };
        }
        return not_understood(text, &ready);
    }
    let best = candidates.iter().map(|d| score(d, &ws)).max().unwrap_or(0);
    let chosen: Vec<&DeviceInfo> = if all && best < 10 {
        candidates
    } else if best > 0 {
        candidates
            .into_iter()
            .filter(|d| score(d, &ws) == best)
            .collect()
    } else if candidates.len() == 1 {
        candidates
    } else if let Some(d) = candidates
        .iter()
        .copied()
        .find(|d| Some(d.device_id.as_str()) == preferred)
    {
        vec![d]
    } else {
        let names: Vec<String> = candidates.iter().map(|d| describe(d)).collect();
        return Plan::NotUnderstood {
            reply: format!("Which one do you mean: {}?", names.join(", ")),
        };
    };
    // A query about temperature in a room prefers one reading over two.
    let chosen = if intent == Intent::Query && has(&ws, "temperature") && chosen.len() > 1 {
        chosen
            .iter()
            .copied()
            .filter(|d| d.kind == "sensor")
            .take(1)
            .chain(chosen.iter().copied().filter(|d| d.kind != "sensor"))
            .take(1)
            .collect()
    } else {
        chosen
    };
    let calls = chosen
        .iter()
        .filter_map(|d| call_for(d, intent, &ws))
        .collect();
    Plan::Calls { intent, calls }
}

/// Words a request does not end on when it is whole: "turn on the", "the lamp and", "set it
/// to". ("on" and "off" are not among them: "turn the lamp off" is whole.)
const DANGLING: [&str; 17] = [
    "the", "a", "an", "and", "or", "but", "to", "of", "at", "in", "into", "for", "with", "my",
    "then", "also", "its",
];

/// Whether `text` is a whole request by this planner's own reading: it would run calls on a
/// device (every argument there, "set the bedroom thermostat to" has no number yet), and it
/// does not end on a word that wants more. The voice session's semantic endpoint
/// (docs/voice.md §1.4) ends an utterance early on it; whatever the model that answers, a
/// request this planner cannot read only waits for the full silence, so nothing is lost.
pub fn is_complete<'a>(
    text: &str,
    devices: impl IntoIterator<Item = &'a DeviceInfo>,
    preferred: Option<&str>,
) -> bool {
    let ws = words(text);
    if ws.last().is_none_or(|w| DANGLING.contains(&w.as_str())) {
        return false;
    }
    matches!(plan_for(text, devices, preferred), Plan::Calls { calls, .. } if !calls.is_empty())
}

/// "look at the kitchen" when no camera is in the kitchen: say so rather than show the hall.
fn photo_elsewhere(ws: &[String], ready: &[&DeviceInfo]) -> Option<Plan> {
    let room_of = |d: &DeviceInfo| d.meta.room.as_deref().map(words).unwrap_or_default();
    let named_room = ready
        .iter()
        .map(|d| room_of(d))
        .find(|r| !r.is_empty() && r.iter().all(|w| has(ws, w)))?;
    let cameras: Vec<&&DeviceInfo> = ready
        .iter()
        .filter(|d| d.tool("take_photo").is_some())
        .collect();
    if cameras.is_empty() || cameras.iter().any(|d| room_of(d) == named_room) {
        return None;
    }
    // A camera named by id or title still wins ("the hall camera in the kitchen doorway").
    if cameras
        .iter()
        .any(|d| score(d, ws) % 10 > 0 || ws.iter().any(|w| d.device_id == w.as_str()))
    {
        return None;
    }
    let names: Vec<String> = cameras.iter().map(|d| describe(d)).collect();
    Some(Plan::NotUnderstood {
        reply: format!(
            "There is no camera in the {}; the cameras are: {}.",
            named_room.join(" "),
            names.join(", ")
        ),
    })
}

fn describe(d: &DeviceInfo) -> String {
    d.meta
        .title
        .clone()
        .unwrap_or_else(|| d.device_id.to_string())
}

fn not_understood(text: &str, ready: &[&DeviceInfo]) -> Plan {
    let mut kinds: Vec<&str> = ready.iter().map(|d| d.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let examples: Vec<&str> = kinds
        .iter()
        .filter_map(|k| match *k {
            "lamp" => Some("turn lights on or off, or dim them"),
            "thermostat" => Some("set a thermostat to a temperature"),
            "sensor" => Some("tell you the temperature in a room"),
            "lock" => Some("lock or unlock a door (unlocking asks you first)"),
            "plug" => Some("switch a plug on or off"),
            "speaker" => Some("set a speaker's volume"),
            "virtual" => Some("change a screen's face (happy, sad, surprised…)"),
            "camera" => Some("take a photo and tell you what it shows"),
            _ => None,
        })
        .collect();
    let reply = if examples.is_empty() {
        format!("I didn't understand \"{text}\", and no devices are online right now.")
    } else {
        format!(
            "I didn't understand \"{text}\". I can {}.",
            examples.join("; ")
        )
    };
    Plan::NotUnderstood { reply }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::agent::test_home::device;

    fn home() -> Vec<DeviceInfo> {
        let lamp = ["set_power", "set_brightness", "get_state"];
        vec![
            device("kitchen-lamp", "lamp", "kitchen", "Kitchen lamp", &lamp),
            device(
                "living-lamp",
                "lamp",
                "living room",
                "Living room lamp",
                &lamp,
            ),
            device("bedroom-lamp", "lamp", "bedroom", "Bedroom lamp", &lamp),
            device(
                "living-thermostat",
                "thermostat",
                "living room",
                "Living room thermostat",
                &["set_target", "set_mode", "get_state"],
            ),
            device(
                "bedroom-thermostat",
                "thermostat",
                "bedroom",
                "Bedroom thermostat",
                &["set_target", "set_mode", "get_state"],
            ),
            device(
                "kitchen-plug",
                "plug",
                "kitchen",
                "Coffee machine plug",
                &["set_power", "get_state"],
            ),
            device(
                "front-door",
                "lock",
                "hall",
                "Front door lock",
                &["lock", "unlock", "get_state"],
            ),
            device(
                "hall-sensor",
                "sensor",
                "hall",
                "Hall sensor",
                &["get_state"],
            ),
            device(
                "living-speaker",
                "speaker",
                "living room",
                "Living room speaker",
                &["set_volume", "get_state"],
            ),
        ]
    }

    fn calls(text: &str) -> Vec<(String, String, Value)> {
        match plan(text, &home()) {
            Plan::Calls { calls, .. } => calls
                .into_iter()
                .map(|c| (c.device, c.tool, c.arguments))
                .collect(),
            Plan::NotUnderstood { reply } => panic!("{text:?} not understood: {reply}"),
        }
    }

    fn one(d: &str, t: &str, a: Value) -> Vec<(String, String, Value)> {
        vec![(d.into(), t.into(), a)]
    }

    /// The semantic endpoint's test: a request with its device and every argument is whole;
    /// one that stops on a word wanting more, or lacks its number, is not.
    #[test]
    fn a_request_is_complete_only_with_its_device_and_arguments() {
        let home = home();
        let complete = |t: &str| is_complete(t, &home, None);
        for whole in [
            "Turn on the kitchen lamp.",
            "turn off the kitchen lamp",
            "Set the bedroom thermostat to 21.",
            "What is the temperature in the hall?",
            "turn the kitchen lamp off",
            "lock the front door",
        ] {
            assert!(complete(whole), "{whole:?} is whole");
        }
        for part in [
            "Turn on the",
            "turn on the.",
            "Turn on the kitchen lamp and",
            "Set the bedroom thermostat to",
            "Set the bedroom thermostat",
            "turn on",
            "",
            "Thank you.",
        ] {
            assert!(!complete(part), "{part:?} is not whole");
        }
        // No devices, nothing to do: never whole (the full silence is waited for).
        assert!(!is_complete("turn on the kitchen lamp", &[], None));
    }

    #[test]
    fn everyday_requests() {
        assert_eq!(
            calls("Turn on the kitchen lamp"),
            one("kitchen-lamp", "set_power", json!({"on": true}))
        );
        assert_eq!(
            calls("switch off the living room light please"),
            one("living-lamp", "set_power", json!({"on": false}))
        );
        assert_eq!(
            calls("Set the bedroom thermostat to 21"),
            one("bedroom-thermostat", "set_target", json!({"celsius": 21.0}))
        );
        assert_eq!(
            calls("dim the bedroom lamp to 30%"),
            one("bedroom-lamp", "set_brightness", json!({"level": 30}))
        );
        assert_eq!(
            calls("unlock the front door"),
            one("front-door", "unlock", json!({}))
        );
        assert_eq!(calls("lock the door"), one("front-door", "lock", json!({})));
        assert_eq!(
            calls("turn on the coffee machine"),
            one("kitchen-plug", "set_power", json!({"on": true}))
        );
        assert_eq!(
            calls("set the speaker volume to 55"),
            one("living-speaker", "set_volume", json!({"level": 55}))
        );
    }

    #[test]
    fn all_the_lights() {
        let c = calls("turn off all the lights");
        assert_eq!(c.len(), 3);
        assert!(c
            .iter()
            .all(|(_, t, a)| t == "set_power" && a["on"] == false));
    }

    #[test]
    fn temperature_questions_read_one_device_in_the_room() {
        assert_eq!(
            calls("what's the temperature in the living room?"),
            one("living-thermostat", "get_state", json!({}))
        );
        assert_eq!(
            calls("what is the temperature in the hall"),
            one("hall-sensor", "get_state", json!({}))
        );
    }

    #[test]
    fn ambiguity_and_nonsense_are_said_honestly() {
        match plan("turn on the lamp", &home()) {
            Plan::NotUnderstood { reply } => assert!(reply.starts_with("Which one"), "{reply}"),
            other => panic!("{other:?}"),
        }
        match plan("sing me a song about cheese", &home()) {
            Plan::NotUnderstood { reply } => {
                assert!(reply.contains("didn't understand"));
                assert!(reply.contains("turn lights on or off"));
            }
            other => panic!("{other:?}"),
        }
        match plan("turn on the kitchen lamp", &[]) {
            Plan::NotUnderstood { reply } => assert!(reply.contains("no devices are online")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offline_devices_are_not_planned() {
        let mut h = home();
        h[0].state = DeviceState::Offline;
        assert!(matches!(
            plan("turn on the kitchen lamp", &h),
            Plan::NotUnderstood { .. } | Plan::Calls { .. }
        ));
        if let Plan::Calls { calls, .. } = plan("turn on the kitchen lamp", &h) {
            assert!(calls.iter().all(|c| c.device != "kitchen-lamp"));
        }
    }

    #[test]
    fn a_screen_changes_its_face() {
        let mut devices = home();
        devices.push(device(
            "tab-1",
            "virtual",
            "office",
            "Screen",
            &["set_expression", "show_text", "get_state"],
        ));
        assert_eq!(
            match plan("make the screen happy", &devices) {
                Plan::Calls { intent, calls } =>
                    (intent, calls[0].tool.clone(), calls[0].arguments.clone()),
                other => panic!("{other:?}"),
            },
            (
                Intent::Expression,
                "set_expression".to_string(),
                json!({"expression": "happy"})
            )
        );
        // Without a screen, "happy" alone means nothing to the lamps.
        assert!(matches!(
            plan("make the screen happy", &home()),
            Plan::NotUnderstood { .. }
        ));
    }

    fn photo(
        text: &str,
        devices: &[DeviceInfo],
        preferred: Option<&str>,
    ) -> Result<String, String> {
        match plan_for(text, devices, preferred) {
            Plan::Calls { intent, calls } => {
                assert_eq!(intent, Intent::Photo, "{text:?}");
                assert_eq!(calls.len(), 1, "{text:?}: {calls:?}");
                assert_eq!(
                    (calls[0].tool.as_str(), &calls[0].arguments),
                    ("take_photo", &json!({}))
                );
                Ok(calls[0].device.clone())
            }
            Plan::NotUnderstood { reply } => Err(reply),
        }
    }

    fn with_cameras() -> Vec<DeviceInfo> {
        let mut h = home();
        h.push(device(
            "hall-camera",
            "camera",
            "hall",
            "Hall camera",
            &["take_photo", "get_state"],
        ));
        h
    }

    #[test]
    fn what_do_you_see_takes_a_photo_with_the_only_camera() {
        let h = with_cameras();
        for text in [
            "what do you see?",
            "What's in front of the camera",
            "take a photo",
            "take a picture please",
            "look at the hall",
            "can you see anything",
        ] {
            assert_eq!(
                photo(text, &h, None).as_deref(),
                Ok("hall-camera"),
                "{text:?}"
            );
        }
        // Asking about the temperature is still a query, not a photo.
        assert_eq!(
            calls("what is the temperature in the hall"),
            one("hall-sensor", "get_state", json!({}))
        );
    }

    #[test]
    fn the_named_camera_then_the_persons_device_then_the_question() {
        let mut h = with_cameras();
        h.push(device(
            "tab-1",
            "virtual",
            "office",
            "Kitchen tab",
            &["take_photo", "set_expression", "get_state"],
        ));
        // Two cameras, none named: ask which, naming both.
        let ask = photo("what do you see?", &h, None).unwrap_err();
        assert!(
            ask.starts_with("Which one")
                && ask.contains("Hall camera")
                && ask.contains("Kitchen tab"),
            "{ask}"
        );
        // The person's own device answers an unnamed request...
        assert_eq!(
            photo("what do you see?", &h, Some("tab-1")).as_deref(),
            Ok("tab-1")
        );
        assert_eq!(
            photo("take a photo", &h, Some("hall-camera")).as_deref(),
            Ok("hall-camera")
        );
        // ...but a named one wins over it.
        assert_eq!(
            photo("look at the hall", &h, Some("tab-1")).as_deref(),
            Ok("hall-camera")
        );
        assert_eq!(
            photo("take a photo with the tab", &h, Some("hall-camera")).as_deref(),
            Ok("tab-1")
        );
        // A preferred device without a camera changes nothing.
        assert!(photo("what do you see?", &h, Some("kitchen-lamp")).is_err());
        // The preference breaks other ties too.
        assert_eq!(
            match plan_for("turn on the lamp", &h, Some("bedroom-lamp")) {
                Plan::Calls { calls, .. } => calls[0].device.clone(),
                other => panic!("{other:?}"),
            },
            "bedroom-lamp"
        );
    }

    #[test]
    fn no_camera_or_none_in_the_room_is_said_plainly() {
        assert_eq!(
            photo("what do you see?", &home(), None),
            Err("None of the devices online has a camera (a take_photo tool).".into())
        );
        assert_eq!(
            photo("look at the kitchen", &with_cameras(), None),
            Err("There is no camera in the kitchen; the cameras are: Hall camera.".into())
        );
        let mut h = with_cameras();
        h.last_mut().unwrap().state = DeviceState::Offline;
        assert!(photo("take a photo", &h, None).is_err());
    }
}
