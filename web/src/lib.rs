//! Axon's browser app (Leptos CSR).
//!
//! Owns the browser UI: the virtual device, the console and the widget. It drives
//! `axon-core` and never talks to an LLM or holds a key. For now it mounts a placeholder
//! that proves the core links into the browser build; the pages land with the web-app issue.

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    let version = axon_core::mcp::types::LATEST_PROTOCOL_VERSION;
    view! {
        <main>
            <h1>"Axon"</h1>
            <p data-testid="protocol">"MCP " {version}</p>
        </main>
    }
}

/// Mounts the app into `el`.
#[wasm_bindgen]
pub fn mount(el: web_sys::HtmlElement) {
    leptos::mount::mount_to(el, App).forget();
}
