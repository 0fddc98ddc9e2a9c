//! Axon's browser app (Leptos CSR).
//!
//! Owns the browser UI: the virtual device (`/device`, [`device`]), the console (`/`,
//! [`console`]) and the embeddable chat widget ([`mount_widget`]). It drives `axon-core` for
//! the device's protocol and the worker's HTTP API for everything else (speech goes over
//! `/api/voice`, [`voice`], or a WebRTC call from the device page, [`call`]); it never talks to an LLM or holds a key.

pub mod call;
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

#[cfg(not(any(feature = "console", feature = "device")))]
use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

/// Mounts the page for the current path into `el`: `/device` is the virtual device, anything
/// else the console. A build with one page mounts it directly: choosing at run time needs a
/// type-erased view, whose build and rebuild code the page would otherwise carry.
#[cfg(any(feature = "console", feature = "device"))]
#[wasm_bindgen]
pub fn mount(el: web_sys::HtmlElement) {
    #[cfg(all(feature = "device", not(feature = "console")))]
    leptos::mount::mount_to(el, device::DevicePage).forget();
    #[cfg(all(feature = "console", not(feature = "device")))]
    console::mount(el);
    #[cfg(all(feature = "console", feature = "device"))]
    if web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .is_some_and(|p| p.trim_end_matches('/').ends_with("/device"))
    {
        leptos::mount::mount_to(el, device::DevicePage).forget();
    } else {
        console::mount(el);
    }
}

/// Mounts the chat widget into `el`, talking to the worker at `api` (its origin) with the
/// site's publishable widget key `key` (`AXON_WIDGET_KEY`; "" for none). Only in the widget's
/// own build (no page feature): the pages do not carry the widget's code. The key is the
/// page's one credential ([`util::set_token`]): widgets on one page share it.
#[cfg(not(any(feature = "console", feature = "device")))]
#[wasm_bindgen]
pub fn mount_widget(el: web_sys::HtmlElement, api: String, key: String) {
    let api = api.trim_end_matches('/').to_string();
    util::set_token((!key.is_empty()).then_some(key));
    leptos::mount::mount_to(el, move || {
        view! {
            <div class="axon-widget" data-testid="widget">
                <chat::Chat api=api.clone() voice=true />
            </div>
        }
    })
    .forget();
}
