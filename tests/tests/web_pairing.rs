//! Pairing a virtual device in headless Chromium, end to end, against `wrangler dev` and real
//! Mosquitto: a fresh browser's device page (no session, no account) proposes its own id and
//! shows the worker's code; the owner, signed in to the console in another browser, enters it;
//! the tab is paired (its account in localStorage), comes online, talks over `/api/voice` with
//! its token as the subprotocol, reloads as the same device without a code, and the console
//! revokes it. Screenshots go to `test-output/web/`.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::path::PathBuf;
use std::time::Duration;

use axon_tests::peer::{browser_steps, step};
use axon_tests::{Broker, WranglerDev};
use serde_json::Value;

const OWNER_TOKEN: &str = "axon-pairing-owner-token";

#[test]
fn a_tab_pairs_by_its_code_in_the_console_and_is_revoked() {
    let broker = Broker::start();
    let worker = WranglerDev::start_with(&broker, &[("AXON_API_TOKEN", OWNER_TOKEN)]);
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["broker"] == "connected"
    });
    let base = format!("http://127.0.0.1:{}", worker.port());
    let ws = format!("ws://127.0.0.1:{}/mqtt", broker.ws_port());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("test-output/web");
    let lines = browser_steps(
        "e2e.mjs",
        &[
            "pairing",
            &base,
            &ws,
            &out.display().to_string(),
            OWNER_TOKEN,
        ],
        Duration::from_secs(180),
        || worker.log(),
    );

    let shown = step(&lines, "device_shows_a_code");
    let id = shown["id"].as_str().unwrap().to_string();
    assert!(
        id.len() == 12 && id.starts_with("web-"),
        "the tab proposes web-{{8 hex}}: {shown}"
    );
    assert!(
        shown["status"].as_str().unwrap().contains("enter the code"),
        "{shown}"
    );
    assert_eq!(
        step(&lines, "console_enters_the_code")["outcome"],
        format!("paired {id}")
    );
    let paired = step(&lines, "device_is_paired");
    assert_eq!(paired["code"], "", "the code is gone once paired: {paired}");
    assert_eq!(paired["account_device"], id.as_str(), "{paired}");
    assert_eq!(
        (&paired["has_password"], &paired["has_token"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{paired}"
    );
    assert_eq!(
        step(&lines, "paired_tab_talks_with_its_token")["voice_error"],
        ""
    );
    let reloaded = step(&lines, "reload_uses_the_stored_account");
    assert_eq!(
        (&reloaded["id"], &reloaded["code"]),
        (&Value::from(id.as_str()), &Value::from("")),
        "{reloaded}"
    );
    let revoked = step(&lines, "console_revokes_the_device");
    assert!(
        !revoked["paired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == id.as_str()),
        "{revoked}"
    );
}
