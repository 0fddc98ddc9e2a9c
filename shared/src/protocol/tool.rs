//! Tool argument validation against a tool's JSON Schema, and the permission policy.
//!
//! Owns deciding whether arguments fit a tool's `inputSchema` (a JSON Schema subset: `type`,
//! `properties`, `required`, `additionalProperties`, `enum`, `const`, `minimum`, `maximum`,
//! `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `items`, `minItems`,
//! `maxItems`; other keywords are ignored), with an error that names the bad field, and the
//! effective `auto` / `confirm` / `deny` of a tool (docs/protocol.md §6.4).
//!
//! Callers pass `{}` for a `tools/call` without `arguments`. Never panics on hostile schemas
//! or arguments; nesting deeper than [`MAX_DEPTH`] is an error, not a stack overflow.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::protocol::jsonrpc::{code, json_text, ErrorObject};
use crate::protocol::mcp::topics;
use crate::protocol::mcp::types::{Tool, META_PERMISSION};

/// How deep arguments and schemas may nest.
pub const MAX_DEPTH: usize = 32;

/// Why arguments do not fit a tool's input schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    /// Path of the bad field, e.g. `arguments.level` or `arguments.items[2].name`.
    pub field: String,
    /// What is wrong, e.g. `expected integer, got string "high"`.
    pub reason: String,
}

impl ArgumentError {
    /// The `-32602` error object with `data: {field, reason}`.
    pub fn to_error_object(&self) -> ErrorObject {
        ErrorObject::with_data(
            code::INVALID_PARAMS,
            format!("invalid arguments: {}: {}", self.field, self.reason),
            serde_json::json!({ "field": self.field, "reason": self.reason }),
        )
    }
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Checks `args` against `schema`. The root of the path is `arguments`.
pub fn validate_arguments(schema: &Value, args: &Value) -> Result<(), ArgumentError> {
    validate(schema, args, "arguments", 0)
}

fn fail(field: &str, reason: impl Into<String>) -> Result<(), ArgumentError> {
    Err(ArgumentError {
        field: field.to_string(),
        reason: reason.into(),
    })
}

/// A short rendering of a value for an error message.
fn show(v: &Value) -> String {
    let kind = type_name(v);
    // Containers are named, not written out: hostile arguments can be 256 KiB of them.
    if matches!(v, Value::Object(_) | Value::Array(_) | Value::Null) {
        return kind.to_string();
    }
    let text = json_text(v);
    let text = match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    };
    format!("{kind} {text}")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        // 3.0 is an integer in JSON Schema; 3.5 is not.
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
        }
        _ => true, // an unknown type name constrains nothing
    }
}

fn validate(schema: &Value, v: &Value, path: &str, depth: usize) -> Result<(), ArgumentError> {
    if depth > MAX_DEPTH {
        return fail(path, format!("nested deeper than {MAX_DEPTH} levels"));
    }
    // `true`/`{}` accept everything; `false` nothing.
    let s = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return fail(path, "no value is allowed here"),
        Value::Object(s) => s,
        _ => return Ok(()),
    };
    match s.get("type") {
        Some(Value::String(t)) if !is_type(v, t) => {
            return fail(path, format!("expected {t}, got {}", show(v)))
        }
        Some(Value::Array(ts)) => {
            let names: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            if !names.is_empty() && !names.iter().any(|t| is_type(v, t)) {
                return fail(
                    path,
                    format!("expected {}, got {}", names.join(" or "), show(v)),
                );
            }
        }
        _ => {}
    }
    if let Some(c) = s.get("const") {
        if !json_eq(c, v) {
            return fail(path, format!("must be {}, got {}", json_text(c), show(v)));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.iter().any(|o| json_eq(o, v)) {
            let list: Vec<String> = options.iter().take(10).map(json_text).collect();
            return fail(
                path,
                format!("must be one of [{}], got {}", list.join(","), show(v)),
            );
        }
    }
    match v {
        Value::Number(_) => check_number(s, v, path)?,
        Value::String(text) => check_string(s, text, path)?,
        Value::Array(items) => check_array(s, items, path, depth)?,
        Value::Object(map) => check_object(s, map, path, depth)?,
        _ => {}
    }
    Ok(())
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn check_number(s: &Map<String, Value>, v: &Value, path: &str) -> Result<(), ArgumentError> {
    let Some(x) = v.as_f64() else { return Ok(()) };
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(min) = bound("minimum") {
        if x < min {
            return fail(
                path,
                format!("must be >= {}, got {}", fmt_num(min), json_text(v)),
            );
        }
    }
    if let Some(max) = bound("maximum") {
        if x > max {
            return fail(
                path,
                format!("must be <= {}, got {}", fmt_num(max), json_text(v)),
            );
        }
    }
    if let Some(min) = bound("exclusiveMinimum") {
        if x <= min {
            return fail(
                path,
                format!("must be > {}, got {}", fmt_num(min), json_text(v)),
            );
        }
    }
    if let Some(max) = bound("exclusiveMaximum") {
        if x >= max {
            return fail(
                path,
                format!("must be < {}, got {}", fmt_num(max), json_text(v)),
            );
        }
    }
    Ok(())
}

/// A bound as the schema wrote it: "21", "0.5". serde_json's number formatting, not `f64`'s
/// `Display`: core's float formatting is ~12 KB of a browser page's wasm, and the pages that
/// validate tool arguments (the console's forms, the virtual device) carry serde_json anyway.
fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or_else(|| "NaN".into(), |n| n.to_string())
    }
}

fn check_string(s: &Map<String, Value>, text: &str, path: &str) -> Result<(), ArgumentError> {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
        if len < min {
            return fail(
                path,
                format!("must be at least {min} characters, got {len}"),
            );
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            return fail(path, format!("must be at most {max} characters, got {len}"));
        }
    }
    Ok(())
}

fn check_array(
    s: &Map<String, Value>,
    items: &[Value],
    path: &str,
    depth: usize,
) -> Result<(), ArgumentError> {
    let n = items.len() as u64;
    if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
        if n < min {
            return fail(path, format!("must have at least {min} items, got {n}"));
        }
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
        if n > max {
            return fail(path, format!("must have at most {max} items, got {n}"));
        }
    }
    if let Some(item_schema) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &format!("{path}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

fn check_object(
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
) -> Result<(), ArgumentError> {
    let props = s.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = s.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                return fail(&format!("{path}.{name}"), "missing required field");
            }
        }
    }
    for (name, value) in map {
        let field = format!("{path}.{name}");
        match props.and_then(|p| p.get(name)) {
            Some(sub) => validate(sub, value, &field, depth + 1)?,
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return fail(&field, format!("unknown field (additionalProperties is false); known fields: {known:?}"));
                }
                Some(extra @ Value::Object(_)) => validate(extra, value, &field, depth + 1)?,
                _ => {}
            },
        }
    }
    Ok(())
}

/// What the Hub does with a call to a tool (docs/protocol.md §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Runs.
    Auto,
    /// Runs only after a person approves.
    Confirm,
    /// Never reaches the device.
    Deny,
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Permission::Auto),
            "confirm" => Ok(Permission::Confirm),
            "deny" => Ok(Permission::Deny),
            other => Err(format!(
                "unknown permission {other:?}: use auto, confirm or deny"
            )),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Auto => "auto",
            Permission::Confirm => "confirm",
            Permission::Deny => "deny",
        })
    }
}

/// The effective permission: the site's override, else the device's `axon/permission`, else
/// `auto` for read-only tools, `confirm` for explicitly destructive ones, `auto` otherwise.
/// Device hints are untrusted; the site's configuration is authoritative.
pub fn effective_permission(tool: &Tool, site_override: Option<Permission>) -> Permission {
    if let Some(p) = site_override {
        return p;
    }
    if let Some(p) = tool.declared_permission().and_then(|p| p.parse().ok()) {
        return p;
    }
    let a = tool.annotations.as_ref();
    if a.and_then(|a| a.read_only_hint) == Some(true) {
        return Permission::Auto;
    }
    if a.and_then(|a| a.destructive_hint) == Some(true) {
        return Permission::Confirm;
    }
    Permission::Auto
}

/// Who asks for a tool call. A `confirm` tool needs a person's yes, and how that yes arrives
/// depends on the caller: an agent turn asks the person in the conversation and waits; a
/// console request carries the person's yes itself; an outside MCP client cannot give one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An agent turn, which can ask the person and wait for the answer.
    Agent,
    /// A person at the console (`/api`), who has (`confirmed`) or has not approved the call.
    Console {
        /// The person approved this call.
        confirmed: bool,
    },
    /// An outside MCP client (`/mcp`): it has no way to ask a person.
    OutsideClient,
}

/// What happens to a tool call, decided by [`authorize`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it to the device.
    Run,
    /// Ask the person first (only an agent turn gets this).
    AskPerson,
    /// Refuse it with this error; nothing reaches the device.
    Refuse(ErrorObject),
}

/// The one permission decision for every caller (the agent, `/mcp`, `/api` tool calls):
/// `deny` never runs, `auto` runs, `confirm` runs only with a person's yes.
pub fn authorize(permission: Permission, device: &str, tool: &str, caller: Caller) -> Verdict {
    let refuse = |why: String| Verdict::Refuse(ErrorObject::new(code::DENIED, why));
    match (permission, caller) {
        (Permission::Auto, _) | (Permission::Confirm, Caller::Console { confirmed: true }) => {
            Verdict::Run
        }
        (Permission::Deny, _) => refuse(format!(
            "{device}.{tool} is denied by the site's policy; nothing was sent"
        )),
        (Permission::Confirm, Caller::Agent) => Verdict::AskPerson,
        (Permission::Confirm, Caller::Console { confirmed: false }) => refuse(format!(
            "{device}.{tool} needs a person's confirmation: send the header x-axon-confirmed: yes after asking"
        )),
        (Permission::Confirm, Caller::OutsideClient) => refuse(format!(
            "{device}.{tool} needs a person's confirmation: ask for it in the Axon console or chat; nothing was sent"
        )),
    }
}

/// The site's per-tool permission overrides (authoritative over device hints), from
/// configuration such as `AXON_PERMISSIONS="front-door.unlock=confirm, *.factory_reset=deny"`.
/// A `*` stands for any device or any tool; the most specific entry wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SitePolicy {
    entries: Vec<(String, String, Permission)>,
}

impl SitePolicy {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `device.tool=permission` entries separated by commas or new lines.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for entry in text.split([',', '\n', ';']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let (target, perm) = entry.split_once('=').ok_or_else(|| {
                format!("permission entry {entry:?} needs the form device.tool=auto|confirm|deny")
            })?;
            let (device, tool) = target.trim().split_once('.').ok_or_else(|| {
                format!("permission entry {entry:?}: name the tool as device.tool (or *.tool)")
            })?;
            entries.push((
                device.trim().to_string(),
                tool.trim().to_string(),
                perm.trim().parse()?,
            ));
        }
        Ok(SitePolicy { entries })
    }

    /// The override for `device.tool`, if any.
    pub fn get(&self, device: &str, tool: &str) -> Option<Permission> {
        let matches = |pat: &str, s: &str| pat == "*" || pat == s;
        self.entries
            .iter()
            .filter(|(d, t, _)| matches(d, device) && matches(t, tool))
            .max_by_key(|(d, t, _)| usize::from(d != "*") * 2 + usize::from(t != "*"))
            .map(|(_, _, p)| *p)
    }
}

/// Checks a device's own tool definition against Axon's rules: name, an object input
/// schema, annotations, and a valid `axon/permission`.
pub fn check_tool_definition(tool: &Tool) -> Result<(), String> {
    topics::check_tool_name(&tool.name).map_err(|e| e.to_string())?;
    if tool.input_schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "tool {}: inputSchema must be {{\"type\":\"object\",...}}",
            tool.name
        ));
    }
    let a = tool
        .annotations
        .as_ref()
        .ok_or_else(|| format!("tool {}: set annotations explicitly", tool.name))?;
    if a.read_only_hint.is_none() || a.destructive_hint.is_none() || a.idempotent_hint.is_none() {
        return Err(format!(
            "tool {}: set readOnlyHint, destructiveHint and idempotentHint explicitly",
            tool.name
        ));
    }
    let p = tool
        .meta
        .as_ref()
        .and_then(|m| m.get(META_PERMISSION))
        .and_then(Value::as_str);
    match p {
        Some(p) => p
            .parse::<Permission>()
            .map(|_| ())
            .map_err(|e| format!("tool {}: {e}", tool.name)),
        None => Err(format!(
            "tool {}: _meta[\"axon/permission\"] is missing",
            tool.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mcp::types::ToolAnnotations;
    use serde_json::json;

    fn err(schema: Value, args: Value) -> ArgumentError {
        validate_arguments(&schema, &args).unwrap_err()
    }

    #[test]
    fn types_and_paths() {
        let s =
            json!({"type":"object","properties":{"level":{"type":"integer"}},"required":["level"]});
        assert!(validate_arguments(&s, &json!({"level": 3})).is_ok());
        assert!(
            validate_arguments(&s, &json!({"level": 3.0})).is_ok(),
            "3.0 is an integer"
        );
        let e = err(s.clone(), json!({"level": "high"}));
        assert_eq!(e.field, "arguments.level");
        assert_eq!(e.reason, "expected integer, got string \"high\"");
        assert_eq!(
            err(s.clone(), json!({"level": 2.5})).reason,
            "expected integer, got number 2.5"
        );
        assert_eq!(
            err(s.clone(), json!({})),
            ArgumentError {
                field: "arguments.level".into(),
                reason: "missing required field".into()
            }
        );
        assert_eq!(err(s, json!([1])).field, "arguments");
        let multi = json!({"type":["string","null"]});
        assert!(validate_arguments(&multi, &Value::Null).is_ok());
        assert!(err(multi, json!(1)).reason.contains("string or null"));
    }

    #[test]
    fn ranges_lengths_enums() {
        let s = json!({"type":"object","properties":{
            "level":{"type":"integer","minimum":0,"maximum":100},
            "t":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},
            "name":{"type":"string","minLength":1,"maxLength":3},
            "face":{"type":"string","enum":["neutral","happy"]},
            "k":{"const":"x"}}});
        assert_eq!(
            err(s.clone(), json!({"level": 150})).reason,
            "must be <= 100, got 150"
        );
        assert_eq!(
            err(s.clone(), json!({"level": -1})).reason,
            "must be >= 0, got -1"
        );
        assert!(err(s.clone(), json!({"t": 0}))
            .reason
            .starts_with("must be > 0"));
        assert!(err(s.clone(), json!({"t": 1}))
            .reason
            .starts_with("must be < 1"));
        // A fractional bound reads as the schema wrote it.
        let half = json!({"type":"object","properties":{"v":{"type":"number","minimum":0.5,"maximum":2.25}}});
        assert_eq!(
            err(half.clone(), json!({"v": 0.25})).reason,
            "must be >= 0.5, got 0.25"
        );
        assert_eq!(err(half, json!({"v": 3})).reason, "must be <= 2.25, got 3");
        assert!(
            validate_arguments(&s, &json!({"t": 0.5, "name": "héé"})).is_ok(),
            "lengths count characters"
        );
        assert!(err(s.clone(), json!({"name": ""}))
            .reason
            .contains("at least 1"));
        assert!(err(s.clone(), json!({"name": "abcd"}))
            .reason
            .contains("at most 3"));
        assert_eq!(
            err(s.clone(), json!({"face": "sad"})).reason,
            "must be one of [\"neutral\",\"happy\"], got string \"sad\""
        );
        assert!(err(s, json!({"k": "y"})).reason.contains("must be \"x\""));
    }

    #[test]
    fn arrays_and_nested_objects() {
        let s = json!({"type":"object","properties":{"items":{"type":"array","minItems":1,"maxItems":3,
            "items":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}}}});
        assert!(validate_arguments(&s, &json!({"items":[{"name":"a"}]})).is_ok());
        assert_eq!(
            err(
                s.clone(),
                json!({"items":[{"name":"a"},{"name":"b"},{"name":3}]})
            )
            .field,
            "arguments.items[2].name"
        );
        assert_eq!(
            err(s.clone(), json!({"items":[{"name":"a","x":1}]})).field,
            "arguments.items[0].x"
        );
        assert!(err(s.clone(), json!({"items":[]}))
            .reason
            .contains("at least 1"));
        assert!(err(
            s,
            json!({"items":[{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"}]})
        )
        .reason
        .contains("at most 3"));
    }

    #[test]
    fn additional_properties() {
        let closed = json!({"type":"object","properties":{"on":{"type":"boolean"}},"additionalProperties":false});
        let e = err(closed, json!({"on": true, "colour": "red"}));
        assert_eq!(e.field, "arguments.colour");
        assert!(e.reason.starts_with("unknown field"));
        let typed = json!({"type":"object","additionalProperties":{"type":"number"}});
        assert!(validate_arguments(&typed, &json!({"a": 1})).is_ok());
        assert_eq!(err(typed, json!({"a": "x"})).field, "arguments.a");
        assert!(validate_arguments(
            &json!({"type":"object"}),
            &json!({"anything": [1, {"b": null}]})
        )
        .is_ok());
    }

    #[test]
    fn hostile_depth_is_an_error_not_an_overflow() {
        let mut args = json!(1);
        let mut schema = json!({"type":"integer"});
        for _ in 0..200 {
            args = json!({"a": args});
            schema = json!({"type":"object","properties":{"a": schema}});
        }
        assert!(err(schema, args).reason.contains("nested deeper"));
        // A non-object schema constrains nothing.
        assert!(validate_arguments(&json!("weird"), &json!({})).is_ok());
        assert!(validate_arguments(&json!(false), &json!({})).is_err());
    }

    #[test]
    fn error_object_names_the_field() {
        let e = ArgumentError {
            field: "arguments.level".into(),
            reason: "expected integer".into(),
        }
        .to_error_object();
        assert_eq!(e.code, -32602);
        assert_eq!(
            e.data.unwrap(),
            json!({"field":"arguments.level","reason":"expected integer"})
        );
    }

    fn tool(read_only: Option<bool>, destructive: Option<bool>, permission: Option<&str>) -> Tool {
        Tool {
            name: "t".into(),
            title: None,
            description: None,
            input_schema: json!({"type":"object"}),
            output_schema: None,
            annotations: Some(ToolAnnotations {
                read_only_hint: read_only,
                destructive_hint: destructive,
                idempotent_hint: Some(true),
                ..Default::default()
            }),
            meta: permission.map(|p| Map::from_iter([(META_PERMISSION.to_string(), json!(p))])),
        }
    }

    #[test]
    fn permission_precedence() {
        assert_eq!(
            effective_permission(&tool(Some(false), Some(true), None), None),
            Permission::Confirm
        );
        assert_eq!(
            effective_permission(&tool(Some(true), Some(true), None), None),
            Permission::Auto
        );
        assert_eq!(
            effective_permission(&tool(None, None, None), None),
            Permission::Auto,
            "destructive by default, but only explicit true asks"
        );
        assert_eq!(
            effective_permission(&tool(Some(true), None, Some("deny")), None),
            Permission::Deny,
            "the device's word beats defaults"
        );
        assert_eq!(
            effective_permission(&tool(None, None, Some("bogus")), None),
            Permission::Auto
        );
        assert_eq!(
            effective_permission(&tool(None, None, Some("auto")), Some(Permission::Confirm)),
            Permission::Confirm,
            "the site decides"
        );
        assert_eq!("confirm".parse::<Permission>(), Ok(Permission::Confirm));
        assert!("maybe".parse::<Permission>().is_err());
    }

    #[test]
    fn tool_definitions_are_checked() {
        assert!(check_tool_definition(&tool(Some(true), Some(false), Some("auto"))).is_ok());
        assert!(check_tool_definition(&tool(Some(true), Some(false), None))
            .unwrap_err()
            .contains("axon/permission"));
        assert!(
            check_tool_definition(&tool(None, Some(false), Some("auto")))
                .unwrap_err()
                .contains("explicitly")
        );
        let mut t = tool(Some(true), Some(false), Some("auto"));
        t.input_schema = json!({"type":"string"});
        assert!(check_tool_definition(&t).is_err());
        t.name = "Bad-Name".into();
        assert!(check_tool_definition(&t).is_err());
    }

    #[test]
    fn site_policy_reads_entries_and_the_most_specific_wins() {
        let p =
            SitePolicy::parse("*.unlock=deny, front-door.unlock=confirm,\n kitchen-plug.*=deny")
                .unwrap();
        assert_eq!(p.get("front-door", "unlock"), Some(Permission::Confirm));
        assert_eq!(p.get("back-door", "unlock"), Some(Permission::Deny));
        assert_eq!(p.get("kitchen-plug", "set_power"), Some(Permission::Deny));
        assert_eq!(p.get("kitchen-lamp", "set_power"), None);
        assert!(SitePolicy::parse("front-door.unlock=maybe")
            .unwrap_err()
            .contains("auto, confirm or deny"));
        assert!(SitePolicy::parse("unlock=deny")
            .unwrap_err()
            .contains("device.tool"));
        assert_eq!(SitePolicy::parse("").unwrap(), SitePolicy::new());
    }
    #[test]
    fn every_caller_gets_the_same_decision_from_authorize() {
        use super::{authorize, Caller, Verdict};
        let run = |p, c| authorize(p, "front-door", "unlock", c);
        for c in [
            Caller::Agent,
            Caller::Console { confirmed: false },
            Caller::OutsideClient,
        ] {
            assert_eq!(run(Permission::Auto, c), Verdict::Run);
            match run(Permission::Deny, c) {
                Verdict::Refuse(e) => {
                    assert_eq!(e.code, code::DENIED);
                    assert!(
                        e.message.contains("front-door.unlock is denied"),
                        "{}",
                        e.message
                    );
                }
                other => panic!("deny must refuse, got {other:?}"),
            }
        }
        // Even a confirmed console call never runs a denied tool.
        assert!(matches!(
            run(Permission::Deny, Caller::Console { confirmed: true }),
            Verdict::Refuse(_)
        ));
        assert_eq!(run(Permission::Confirm, Caller::Agent), Verdict::AskPerson);
        assert_eq!(
            run(Permission::Confirm, Caller::Console { confirmed: true }),
            Verdict::Run
        );
        for c in [Caller::Console { confirmed: false }, Caller::OutsideClient] {
            match run(Permission::Confirm, c) {
                Verdict::Refuse(e) => assert!(e.message.contains("confirmation"), "{}", e.message),
                other => panic!("an unconfirmed confirm tool must be refused, got {other:?}"),
            }
        }
    }
}
