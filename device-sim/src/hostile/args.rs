//! Family 3: tool arguments against `axon_core::protocol::tool::validate_arguments`.
//!
//! Owns generating arguments for every simulated board's tools and for a few richer schemas
//! (nesting, arrays, type unions, `const`, schema-valued `additionalProperties`) and, a fifth
//! of the time, for a hostile schema (a device's schema reaches the Hub over the wire, so it is
//! untrusted too). Arguments start as a valid instance and are then broken in a known way
//! (wrong type, out of range, missing or extra field, not in the enum, too long) or a
//! doubtful one (huge strings, extreme numbers, deep nesting). A known break must be refused
//! with a `-32602` naming the field; arguments that pass go on to the board, which must answer
//! without panicking.

use serde_json::{json, Map, Value};

use axon_core::protocol::jsonrpc::code;
use axon_core::protocol::tool;
use axon_core::time::Rng;

use super::gen::Gen;
use super::{clear_message, Outcome};
use crate::profiles::{self, Env, KINDS};

/// One input.
#[derive(Debug, Clone)]
pub struct Case {
    /// `kind.tool` of a board, or the name of a synthetic schema.
    pub target: String,
    /// The schema.
    pub schema: Value,
    /// The arguments.
    pub args: Value,
    /// Why validation must refuse them, when it must.
    pub must_reject: Option<&'static str>,
    /// How the generator made them.
    pub what: String,
}

fn synthetic() -> Vec<(&'static str, Value)> {
    let byte = json!({"type":"integer","minimum":0,"maximum":255});
    vec![
        (
            "nested",
            json!({"type":"object","properties":{
                "color":{"type":"object","properties":{"r":byte,"g":byte,"b":byte},"required":["r","g","b"],"additionalProperties":false},
                "scene":{"type":"string","enum":["relax","focus","night"]}},
              "required":["color"],"additionalProperties":false}),
        ),
        (
            "array",
            json!({"type":"object","properties":{
                "steps":{"type":"array","minItems":1,"maxItems":8,"items":{"type":"object","properties":{
                    "level":{"type":"integer","minimum":0,"maximum":100},
                    "ms":{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":60000}},"required":["level"]}}},
              "required":["steps"],"additionalProperties":false}),
        ),
        (
            "union",
            json!({"type":"object","properties":{
                "label":{"type":["string","null"],"minLength":1,"maxLength":8},
                "mode":{"const":"fixed"},
                "gain":{"type":"number","exclusiveMinimum":-1,"exclusiveMaximum":1}},
              "additionalProperties":{"type":"boolean"}}),
        ),
    ]
}

/// A valid instance of `schema` (as far as the generator understands it).
fn instance(g: &mut Gen, schema: &Value, depth: usize) -> Value {
    let Some(s) = schema.as_object() else {
        return json!(null);
    };
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.is_empty() {
            return g.pick(options).clone();
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .get(g.below(ts.len()))
            .and_then(Value::as_str)
            .unwrap_or("null"),
        _ => "null",
    };
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match ty {
        "object" if depth < 8 => {
            let mut m = Map::new();
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if required.contains(&k.as_str()) || g.chance(1, 2) {
                        m.insert(k.clone(), instance(g, sub, depth + 1));
                    }
                }
            }
            Value::Object(m)
        }
        "array" if depth < 8 => {
            let lo = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let hi = s.get("maxItems").and_then(Value::as_u64).unwrap_or(4) as usize;
            let n = lo + g.below(hi.saturating_sub(lo).min(6) + 1);
            let items = s.get("items").cloned().unwrap_or(json!({}));
            Value::Array((0..n).map(|_| instance(g, &items, depth + 1)).collect())
        }
        "integer" => {
            let lo = num("minimum")
                .or(num("exclusiveMinimum").map(|x| x + 1.0))
                .unwrap_or(-1000.0) as i64;
            let hi = num("maximum")
                .or(num("exclusiveMaximum").map(|x| x - 1.0))
                .unwrap_or(1000.0) as i64;
            json!(lo + g.below((hi - lo).max(0) as usize + 1) as i64)
        }
        "number" => {
            let lo = num("minimum").or(num("exclusiveMinimum")).unwrap_or(-1e3);
            let hi = num("maximum").or(num("exclusiveMaximum")).unwrap_or(1e3);
            let x = lo + (hi - lo) * (0.01 + 0.98 * (g.below(10_000) as f64 / 10_000.0));
            json!(x)
        }
        "string" => {
            let lo = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let hi = s.get("maxLength").and_then(Value::as_u64).unwrap_or(20) as usize;
            let n = lo + g.below(hi.saturating_sub(lo).min(40) + 1);
            json!("a".repeat(n))
        }
        "boolean" => json!(g.chance(1, 2)),
        _ => json!(null),
    }
}

/// A value of a JSON type `declared` never accepts.
fn wrong_type(g: &mut Gen, declared: &str) -> Option<Value> {
    let options: Vec<Value> = match declared {
        "boolean" => vec![json!(0), json!("true"), json!(null), json!([]), json!({})],
        "integer" => vec![
            json!(1.5),
            json!("1"),
            json!(true),
            json!(null),
            json!([1]),
            json!({}),
        ],
        "number" => vec![json!("1"), json!(true), json!(null), json!([]), json!({})],
        "string" => vec![json!(1), json!(true), json!(null), json!([]), json!({})],
        "object" => vec![json!(1), json!("x"), json!([]), json!(null)],
        "array" => vec![json!({}), json!("x"), json!(1)],
        _ => return None,
    };
    Some(g.pick(&options).clone())
}

/// Breaks `args` (an object fitting `schema`) at one property; `Some(why)` when the result
/// is sure to be invalid.
fn break_property(
    g: &mut Gen,
    schema: &Value,
    args: &mut Map<String, Value>,
) -> (String, Option<&'static str>) {
    let props = schema.get("properties").and_then(Value::as_object);
    let strict = schema.get("additionalProperties") == Some(&json!(false));
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<(String, Value)> = props
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    match g.below(8) {
        0 if !required.is_empty() => {
            let k = g.pick(&required).clone();
            args.remove(&k);
            (
                format!("required {k:?} removed"),
                Some("a required field is missing"),
            )
        }
        1 => {
            let k = if g.chance(1, 2) {
                g.word()
            } else {
                g.hostile_string()
            };
            let known = props.is_some_and(|p| p.contains_key(&k));
            let v = g.value(2);
            args.insert(k.clone(), v);
            let why =
                (strict && !known).then_some("an unknown field with additionalProperties false");
            (format!("extra field {k:?}"), why)
        }
        _ if names.is_empty() => {
            args.insert(g.word(), g.value(2));
            ("extra field on a schema without properties".into(), None)
        }
        2 | 3 => {
            let (k, sub) = g.pick(&names).clone();
            let declared = sub.get("type").and_then(Value::as_str).unwrap_or("");
            match wrong_type(g, declared) {
                Some(v) => {
                    args.insert(k.clone(), v);
                    (
                        format!("{k:?} given the wrong type (declared {declared})"),
                        Some("a value of the wrong type"),
                    )
                }
                None => {
                    args.insert(k.clone(), g.value(2));
                    (format!("{k:?} given any value"), None)
                }
            }
        }
        4 => {
            let (k, sub) = g.pick(&names).clone();
            let max = sub.get("maximum").and_then(Value::as_f64);
            let min = sub.get("minimum").and_then(Value::as_f64);
            let v = match (max, min, g.chance(1, 2)) {
                (Some(max), _, true) => Some(json!(if g.chance(1, 2) { max + 1.0 } else { 1e308 })),
                (_, Some(min), _) => Some(json!(if g.chance(1, 2) { min - 1.0 } else { -1e308 })),
                (Some(max), None, false) => Some(json!(max + 0.5)),
                _ => None,
            };
            match v {
                Some(v) => {
                    args.insert(k.clone(), v);
                    (format!("{k:?} out of range"), Some("a number out of range"))
                }
                None => {
                    args.insert(k.clone(), g.hostile_number());
                    (format!("{k:?} an extreme number"), None)
                }
            }
        }
        5 => {
            let (k, sub) = g.pick(&names).clone();
            match sub.get("enum").and_then(Value::as_array) {
                Some(options) => {
                    let v = json!(g.hostile_string());
                    let why = (!options.contains(&v)).then_some("a value outside the enum");
                    args.insert(k.clone(), v);
                    (format!("{k:?} outside its enum"), why)
                }
                None => match sub.get("maxLength").and_then(Value::as_u64) {
                    Some(max) => {
                        args.insert(
                            k.clone(),
                            json!("z".repeat(max as usize + 1 + g.below(5000))),
                        );
                        (
                            format!("{k:?} over maxLength"),
                            Some("a string over maxLength"),
                        )
                    }
                    None => {
                        args.insert(k.clone(), json!(g.hostile_string()));
                        (format!("{k:?} a hostile string"), None)
                    }
                },
            }
        }
        6 => {
            let (k, _) = g.pick(&names).clone();
            let levels = 1 + g.below(200);
            let v = g.nested(levels);
            args.insert(k.clone(), v);
            (format!("{k:?} nested deep"), None)
        }
        _ => {
            let (k, _) = g.pick(&names).clone();
            let v = g.value(3);
            args.insert(k.clone(), v);
            (format!("{k:?} any value"), None)
        }
    }
}

/// A schema a device should never send.
fn hostile_schema(g: &mut Gen) -> Value {
    let synth = synthetic();
    let (_, mut s) = g.pick(&synth).clone();
    match g.below(6) {
        0 => g.value(3),
        1 => {
            // Nested as deep as a JSON parser allows and past MAX_DEPTH.
            let mut s = json!({"type":"integer"});
            for _ in 0..(1 + g.below(150)) {
                let mut level = json!({"type":"object","properties":{},"required":["a"]});
                level["properties"]["a"] = s; // moved, not copied as `json!` would
                s = level;
            }
            s
        }
        _ => {
            let keywords = [
                "type",
                "properties",
                "required",
                "additionalProperties",
                "enum",
                "const",
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "minLength",
                "maxLength",
                "items",
                "minItems",
                "maxItems",
            ];
            if let Some(obj) = s.as_object_mut() {
                for _ in 0..(1 + g.below(3)) {
                    let k = *g.pick(&keywords);
                    let v = g.value(2);
                    obj.insert(k.to_string(), v);
                }
            }
            s
        }
    }
}

/// Arguments for `schema` (mostly an instance broken in one way) and why they must be refused,
/// if they must.
pub fn arguments(g: &mut Gen, schema: &Value) -> (Value, String, Option<&'static str>) {
    let valid = instance(g, schema, 0);
    match g.below(10) {
        0 => (valid, "a valid instance".into(), None),
        1 => {
            let v = match g.below(5) {
                0 => json!(null),
                1 => json!(g.chance(1, 2)),
                2 => g.hostile_number(),
                3 => json!(g.hostile_string()),
                _ => json!([g.value(1)]),
            };
            let strict_object = schema.get("type") == Some(&json!("object"));
            (
                v,
                "not an object".into(),
                strict_object.then_some("arguments that are not an object"),
            )
        }
        2 => (g.value(3), "any value".into(), None),
        _ => {
            let Value::Object(mut m) = valid else {
                return (valid, "a non-object instance".into(), None);
            };
            // A sure break stays the last change, so nothing after it can repair it.
            let (mut what, mut why) = break_property(g, schema, &mut m);
            if why.is_none() && g.chance(1, 2) {
                let (w, y) = break_property(g, schema, &mut m);
                what = format!("{what}; {w}");
                why = y;
            }
            (Value::Object(m), what, why)
        }
    }
}

/// Generates one input.
pub fn generate(g: &mut Gen) -> Case {
    let (target, schema) = match g.below(10) {
        0..=5 => {
            let kind = *g.pick(&KINDS);
            let tools = profiles::profile(kind)
                .map(|p| p.tools())
                .unwrap_or_default();
            match tools.get(g.below(tools.len())) {
                Some(t) => (format!("{kind}.{}", t.name), t.input_schema.clone()),
                None => ("empty".into(), json!({})),
            }
        }
        6 | 7 => {
            let synth = synthetic();
            let (name, s) = g.pick(&synth).clone();
            (name.to_string(), s)
        }
        _ => ("a hostile schema".into(), hostile_schema(g)),
    };
    let (args, what, must_reject) = arguments(g, &schema);
    Case {
        target,
        schema,
        args,
        must_reject,
        what,
    }
}

/// Validates, then lets the board run what passed.
pub fn check(case: &Case) -> Outcome {
    match tool::validate_arguments(&case.schema, &case.args) {
        Err(e) => {
            let obj = e.to_error_object();
            if obj.code != code::INVALID_PARAMS
                || !clear_message(&obj.message)
                || !clear_message(&e.reason)
                || !e.field.starts_with("arguments")
            {
                return Outcome::Unclear(format!("an unclear refusal: {obj:?}"));
            }
            let kind = match e.reason.as_str() {
                r if r.starts_with("expected") => "-32602 wrong type",
                r if r.starts_with("missing required") => "-32602 missing field",
                r if r.starts_with("unknown field") => "-32602 unknown field",
                r if r.starts_with("must be one of") => "-32602 not in the enum",
                r if r.starts_with("must be >") || r.starts_with("must be <") => {
                    "-32602 out of range"
                }
                r if r.contains("characters") || r.contains("items") => "-32602 length or count",
                r if r.starts_with("nested deeper") => "-32602 nested too deep",
                _ => "-32602 other",
            };
            Outcome::Error {
                kind,
                message: obj.message,
            }
        }
        Ok(()) => {
            if let Some(why) = case.must_reject {
                return Outcome::Unclear(format!("accepted {why}"));
            }
            let Some((kind, name)) = case.target.split_once('.') else {
                return Outcome::Accepted("valid for its schema");
            };
            if name == "take_photo" {
                // It reads no arguments, and encoding a JPEG would be most of this run's time.
                return Outcome::Accepted("valid for its schema");
            }
            let Some(mut board) = profiles::profile(kind) else {
                return Outcome::Accepted("valid for its schema");
            };
            let mut env = Env {
                rng: Rng::new(1),
                fault_rate: 0.0,
            };
            let result = board.call(name, &case.args, &mut env);
            if result.is_error && !result.first_text().is_some_and(clear_message) {
                return Outcome::Unclear("the board failed the call without saying why".into());
            }
            Outcome::Accepted("valid; the board ran it")
        }
    }
}

/// Smaller arguments: each member or item alone removed.
pub fn smaller(case: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    match &case.args {
        Value::Object(m) => {
            for k in m.keys() {
                let mut m2 = m.clone();
                m2.remove(k);
                out.push(Case {
                    args: Value::Object(m2),
                    ..case.clone()
                });
            }
        }
        Value::Array(a) if !a.is_empty() => {
            out.push(Case {
                args: Value::Array(a[..a.len() / 2].to_vec()),
                ..case.clone()
            });
        }
        _ => {}
    }
    out
}

/// The input as text.
pub fn describe(case: &Case) -> String {
    let show = |v: &Value| {
        let t = serde_json::to_string(v).unwrap_or_default();
        if t.len() > 600 {
            format!(
                "{}… ({} bytes)",
                &t[..t.floor_char_boundary_compat(600)],
                t.len()
            )
        } else {
            t
        }
    };
    format!(
        "validate_arguments(schema of {}: {}, arguments: {}); made as: {}",
        case.target,
        show(&case.schema),
        show(&case.args),
        case.what
    )
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut at: usize) -> usize {
        while at > 0 && !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}
