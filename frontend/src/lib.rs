#![recursion_limit = "256"]
//! Headroom's web app. Built twice: with `ssr` into the server (renders pages and
//! answers server functions) and with `hydrate` into WebAssembly (makes them live).

pub mod api;
pub mod app;
pub mod auth;
pub mod live;
pub mod pages;
pub mod status;

pub use app::{App, shell};

/// Entry point of the WebAssembly module: attaches the app to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
