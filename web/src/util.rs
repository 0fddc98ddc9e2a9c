//! Small browser helpers: time, sleeping, fetch with JSON (and the page's credential), reading a
//! streamed response.
//! Owns nothing of the product; it only wraps web-sys so the pages stay readable.

use std::cell::RefCell;

use axon_core::time::Timestamp;
use wasm_bindgen::{JsCast, JsValue};

use crate::json::Json;
use wasm_bindgen_futures::JsFuture;

/// `x` to one decimal place ("21.5", "-0.3"), in integer arithmetic: `format!("{x:.1}")` would
/// link core's float formatting (~12 KB of wasm) for plot coordinates.
pub fn tenths(x: f64) -> String {
    if !x.is_finite() {
        return "0.0".into();
    }
    let t = (x * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!("{sign}{}.{}", t / 10, t % 10)
}

/// Wall-clock now.
pub fn now() -> Timestamp {
    Timestamp::from_millis(js_sys::Date::now() as u64)
}

/// A seed from the browser's randomness and clock.
pub fn seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64 ^ (js_sys::Date::now() as u64)
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                ms.min(i32::MAX as u32) as i32,
            );
        }
    });
    let _ = JsFuture::from(p).await;
}

/// A text for any JS error.
pub fn js_error(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(&e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// The query parameter `name` of the page's URL.
pub fn query(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    params.get(name).filter(|v| !v.is_empty())
}

thread_local! {
    static TOKEN: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets the credential this page presents from now on: the widget's publishable key or a
/// paired device's token, sent as `Authorization: Bearer` on every fetch and as the
/// `axon-token.` subprotocol on the voice WebSocket ([`token`]). `None` where the console's
/// session cookie speaks for the page: same-origin requests carry it by themselves.
pub fn set_token(token: Option<String>) {
    TOKEN.with(|t| *t.borrow_mut() = token);
}

/// The credential set by [`set_token`], if any.
pub fn token() -> Option<String> {
    TOKEN.with(|t| t.borrow().clone())
}

async fn send(method: &str, url: &str, body: Option<&str>) -> Result<web_sys::Response, String> {
    // The options as a plain object, not RequestInit, Headers and Request: fewer imports and
    // their glue (the device page has 0.5 KB to spare, docs/web-size.md).
    let mut headers = Vec::new();
    if body.is_some() {
        headers.push(("content-type", JsValue::from_str("application/json")));
    }
    if let Some(t) = token() {
        headers.push(("authorization", JsValue::from_str(&format!("Bearer {t}"))));
    }
    let init = crate::json::js_object(&[
        ("method", JsValue::from_str(method)),
        (
            "body",
            body.map(JsValue::from_str).unwrap_or(JsValue::UNDEFINED),
        ),
        ("headers", crate::json::js_object(&headers).into()),
    ]);
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str_and_init(url, init.unchecked_ref()))
        .await
        .map_err(|e| format!("cannot reach {url}: {}", js_error(e)))?;
    // fetch resolves to a Response, or rejects.
    Ok(resp.unchecked_into())
}

/// Fetches a text: the status and the body.
pub async fn fetch_text(
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let resp = send(method, url, body).await?;
    let status = resp.status();
    let text = JsFuture::from(resp.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    Ok((status, text))
}

/// Fetches JSON: the status and the body (a JSON error body too; a body that is not JSON comes
/// back as a JSON string).
pub async fn fetch_json(
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, Json), String> {
    let (status, text) = fetch_text(method, url, body).await?;
    Ok((
        status,
        Json::try_parse(&text).unwrap_or_else(|_| Json::string(&text)),
    ))
}

/// POSTs `body` and hands each Server-Sent Event of the streamed answer to `on_event`
/// (event name, JSON data) as it arrives.
pub async fn post_sse(
    url: &str,
    body: &str,
    mut on_event: impl FnMut(&str, Json),
) -> Result<(), String> {
    let resp = send("POST", url, Some(body)).await?;
    if !resp.ok() {
        let text = JsFuture::from(resp.text().map_err(js_error)?)
            .await
            .map_err(js_error)?
            .as_string()
            .unwrap_or_default();
        let msg = Json::parse(&text)
            .at(&["error", "message"])
            .as_str()
            .unwrap_or(text);
        return Err(format!("HTTP {}: {msg}", resp.status()));
    }
    let body = resp.body().ok_or("the answer has no body")?;
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "no stream reader")?;
    let mut buf = String::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_error)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).map_err(js_error)?;
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        buf.push_str(&String::from_utf8_lossy(&bytes));
        for e in axon_core::protocol::sse::drain_events(&mut buf) {
            on_event(&e.event, Json::parse(&e.data));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tenths;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn tenths_rounds_to_one_place() {
        assert_eq!(tenths(21.0), "21.0");
        assert_eq!(tenths(21.46), "21.5");
        assert_eq!(tenths(0.04), "0.0");
        assert_eq!(tenths(-0.3), "-0.3");
        assert_eq!(tenths(-12.25), "-12.3"); // half away from zero, as f64::round
        assert_eq!(tenths(280.0), "280.0");
        assert_eq!(tenths(f64::NAN), "0.0");
    }
}
