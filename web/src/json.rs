//! JSON in the browser's own parser, for the code the widget carries (chat, voice, fetch).
//!
//! Owns: reading fields of a parsed message and writing small objects, through `JSON.parse`,
//! `JSON.stringify` and `Reflect`. serde_json in the widget's wasm was 15 KB of its 245 KB
//! (twiggy) with the float formatting and maps it brings, and the browser already has a JSON
//! parser; the device page and the console still use serde_json where axon-core's types need it.
//! Never does: panic on a message from the network. A text that is not JSON reads as null, and a
//! missing field or one of another type as `None`.

use wasm_bindgen::JsValue;

/// A parsed JSON value (a JS value that `JSON.parse` made).
#[derive(Clone, Debug)]
pub struct Json(JsValue);

impl Json {
    /// `text` parsed; null when it is not JSON.
    pub fn parse(text: &str) -> Json {
        Json::try_parse(text).unwrap_or(Json(JsValue::NULL))
    }

    /// A JSON string holding `text`.
    pub fn string(text: &str) -> Json {
        Json(JsValue::from_str(text))
    }

    /// `text` parsed, or why not (the browser's message).
    pub fn try_parse(text: &str) -> Result<Json, String> {
        js_sys::JSON::parse(text)
            .map(Json)
            .map_err(crate::util::js_error)
    }

    /// The field `key` of an object; null for anything else.
    pub fn get(&self, key: &str) -> Json {
        if !self.0.is_object() {
            return Json(JsValue::NULL);
        }
        Json(js_sys::Reflect::get(&self.0, &JsValue::from_str(key)).unwrap_or(JsValue::NULL))
    }

    /// The value at a path of keys (`&["error", "message"]`).
    pub fn at(&self, path: &[&str]) -> Json {
        path.iter().fold(self.clone(), |v, k| v.get(k))
    }

    pub fn as_str(&self) -> Option<String> {
        self.0.as_string()
    }

    /// The value itself, to put into another object.
    pub fn as_js(&self) -> JsValue {
        self.0.clone()
    }

    /// The string, or "" when it is not one.
    pub fn str_or_empty(&self) -> String {
        self.0.as_string().unwrap_or_default()
    }

    pub fn as_f64(&self) -> Option<f64> {
        self.0.as_f64()
    }

    pub fn as_bool(&self) -> Option<bool> {
        self.0.as_bool()
    }

    pub fn is_null(&self) -> bool {
        self.0.is_null() || self.0.is_undefined()
    }
}

/// A JS object with `fields`, in order (a fetch's options, or what [`object`] writes).
pub fn js_object(fields: &[(&str, JsValue)]) -> js_sys::Object {
    let o = js_sys::Object::new();
    for (k, v) in fields {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

/// A JSON object text from `fields`, in order: strings, numbers and booleans as the JS values
/// made from them (`JsValue::from_str`, `from_f64`, `from_bool`).
pub fn object(fields: &[(&str, JsValue)]) -> String {
    js_sys::JSON::stringify(&js_object(fields))
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn fields_of_a_message() {
        let m = Json::parse(r#"{"type":"error","ok":true,"ms":12,"error":{"message":"no"}}"#);
        assert_eq!(m.get("type").as_str().as_deref(), Some("error"));
        assert_eq!(m.get("ok").as_bool(), Some(true));
        assert_eq!(m.get("ms").as_f64(), Some(12.0));
        assert_eq!(m.at(&["error", "message"]).str_or_empty(), "no");
        // Missing, of another type, or under a non-object: None, never a panic.
        assert_eq!(m.get("nope").as_str(), None);
        assert_eq!(m.get("ms").as_str(), None);
        assert!(m.at(&["type", "deeper", "still"]).is_null());
    }

    #[wasm_bindgen_test]
    fn text_that_is_not_json_is_null() {
        assert!(Json::parse("{not json").is_null());
        assert!(Json::parse("").get("x").is_null());
        assert!(Json::try_parse("{not json").is_err());
        assert!(Json::parse("[1,2]").get("0").as_f64().is_some()); // arrays are objects in JS
    }

    #[wasm_bindgen_test]
    fn objects_are_written_in_order_and_escaped() {
        let text = object(&[
            ("text", JsValue::from_str("say \"hi\"\n")),
            ("n", JsValue::from_f64(16000.0)),
            ("down", JsValue::from_bool(true)),
        ]);
        assert_eq!(text, r#"{"text":"say \"hi\"\n","n":16000,"down":true}"#);
    }
}
