//! Axon's browser app (Leptos CSR).
//!
//! Owns the browser UI: the virtual device (`/device`, [`device`]), the console (`/`,
//! [`console`]) and the embeddable chat widget ([`mount_widget`]). It drives `axon-core` for
//! the device's protocol and the worker's HTTP API for everything else (speech goes over
//! `/api/voice`, [`voice`]); it never talks to an LLM or holds a key.

pub mod chat;
#[cfg(feature = "console")]
pub mod console;
#[cfg(feature = "device")]
pub mod device;
pub mod json;
#[cfg(feature = "console")]
pub mod plot;
pub mod util;
pub mod voice;

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// The page for the current path, among those built in: `/device` is the virtual device,
/// anything else the console.
#[cfg(any(feature = "console", feature = "device"))]
#[component]
pub fn App() -> impl IntoView {
    let path = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_default();
    let wants_device = path.trim_end_matches('/').ends_with("/device");
    #[cfg(feature = "device")]
    if wants_device || cfg!(not(feature = "console")) {
        return view! { <device::DevicePage /> }.into_any();
    }
    let _ = wants_device;
    #[cfg(feature = "console")]
    return view! { <console::ConsolePage /> }.into_any();
    #[cfg(not(feature = "console"))]
    unreachable!()
}

/// Mounts the app into `el`. A build with one page mounts it directly: choosing at run time
/// needs a type-erased view, whose build and rebuild code the page would otherwise carry.
#[cfg(any(feature = "console", feature = "device"))]
#[wasm_bindgen]
pub fn mount(el: web_sys::HtmlElement) {
    #[cfg(all(feature = "device", not(feature = "console")))]
    leptos::mount::mount_to(el, device::DevicePage).forget();
    #[cfg(all(feature = "console", not(feature = "device")))]
    leptos::mount::mount_to(el, console::ConsolePage).forget();
    #[cfg(all(feature = "console", feature = "device"))]
    leptos::mount::mount_to(el, App).forget();
}

/// Mounts the chat widget into `el`, talking to the worker at `api` (its origin). Only in the
/// widget's own build (no page feature): the pages do not carry the widget's code.
#[cfg(not(any(feature = "console", feature = "device")))]
#[wasm_bindgen]
pub fn mount_widget(el: web_sys::HtmlElement, api: String, user: String) {
    let api = api.trim_end_matches('/').to_string();
    leptos::mount::mount_to(el, move || {
        view! {
            <div class="axon-widget" data-testid="widget">
                <chat::Chat api=api.clone() user=user.clone() voice=true />
            </div>
        }
    })
    .forget();
}
