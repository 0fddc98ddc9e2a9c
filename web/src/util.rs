//! Small browser helpers: time, sleeping, fetch with JSON, reading a streamed response.
//! Owns nothing of the product; it only wraps web-sys so the pages stay readable.

use axon_core::time::Timestamp;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

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

async fn send(method: &str, url: &str, body: Option<&str>) -> Result<web_sys::Response, String> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(b) = body {
        init.set_body(&JsValue::from_str(b));
        let headers = web_sys::Headers::new().map_err(js_error)?;
        headers
            .set("content-type", "application/json")
            .map_err(js_error)?;
        init.set_headers(&headers);
    }
    let req = web_sys::Request::new_with_str_and_init(url, &init).map_err(js_error)?;
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|e| format!("cannot reach {url}: {}", js_error(e)))?;
    resp.dyn_into().map_err(|_| "not a Response".to_string())
}

/// Fetches JSON: the status and the body (a JSON error body too).
pub async fn fetch_json(
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, Value), String> {
    let resp = send(method, url, body).await?;
    let status = resp.status();
    let text = JsFuture::from(resp.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// POSTs `body` and hands each Server-Sent Event of the streamed answer to `on_event`
/// (event name, JSON data) as it arrives.
pub async fn post_sse(
    url: &str,
    body: &str,
    mut on_event: impl FnMut(&str, Value),
) -> Result<(), String> {
    let resp = send("POST", url, Some(body)).await?;
    if !resp.ok() {
        let text = JsFuture::from(resp.text().map_err(js_error)?)
            .await
            .map_err(js_error)?
            .as_string()
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let msg = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_string)
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
        for e in axon_core::sse::drain_events(&mut buf) {
            on_event(
                &e.event,
                serde_json::from_str(&e.data).unwrap_or(Value::Null),
            );
        }
    }
    Ok(())
}
