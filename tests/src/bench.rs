//! What the edge benchmarks share (`bench-edge`, `bench-scale`): percentiles, a series of
//! samples, and the two measured requests, a chat turn through `/api/chat` and a `tools/call`
//! through `/mcp`, each against a running `wrangler dev`.
//!
//! Owns timing and checking one request; never starts a part (the benchmarks do) and never
//! decides a goal (each benchmark says its own).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{http_with, SseStream};

/// The `p` quantile (0–1) of sorted samples, nearest rank.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds with two places.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Samples of one measure.
pub struct Series {
    /// What was measured, as the table says it.
    pub name: String,
    /// One per measured request.
    pub samples: Vec<Duration>,
}

impl Series {
    /// An empty series.
    pub fn new(name: impl Into<String>) -> Self {
        Series {
            name: name.into(),
            samples: Vec::new(),
        }
    }

    /// The samples in order.
    pub fn sorted(&self) -> Vec<Duration> {
        let mut s = self.samples.clone();
        s.sort();
        s
    }

    /// A quantile (0–1).
    pub fn at(&self, p: f64) -> Duration {
        pct(&self.sorted(), p)
    }
}

/// The gap between the starts of two chat turns: a person may ask 600 times a minute
/// (`trust::rate::Limit::PERSON`), and a benchmark past that measures refusals.
pub const TURN_EVERY: Duration = Duration::from_millis(100);

/// Waits until `TURN_EVERY` has passed since `last` (the previous turn's start), then returns
/// the new start.
pub fn pace(last: Option<Instant>) -> Instant {
    if let Some(last) = last {
        let next = last + TURN_EVERY;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    Instant::now()
}

/// One chat turn: `text` as `user` through `POST /api/chat`. Returns (until the tool finished,
/// until the turn was done); panics if no tool ran or it failed.
pub fn chat_turn(port: u16, user: &str, text: &str) -> (Duration, Duration) {
    let body = json!({"text": text, "user": user}).to_string();
    let t0 = Instant::now();
    let mut s = SseStream::open(port, "POST", "/api/chat", Some(&body)).expect("open /api/chat");
    assert_eq!(s.status, 200, "POST /api/chat {text:?}");
    let mut tool = None;
    let mut seen = Vec::new();
    while let Some(e) = s.next_event() {
        seen.push(format!("{} {}", e.event, e.data));
        if e.event == "tool_finished" {
            assert_eq!(e.data["ok"], true, "{}", e.data);
            tool = Some(t0.elapsed());
        }
        if e.event == "done" {
            break;
        }
    }
    let done = t0.elapsed();
    let Some(tool) = tool else {
        panic!("the turn on {text:?} ran no tool: {seen:#?}");
    };
    (tool, done)
}

/// An `/mcp` session: initialize with the bearer `token`; returns the session id.
pub fn mcp_session(port: u16, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
    let (status, head, _) = http_with(
        port,
        "POST",
        "/mcp",
        &[("Authorization", &auth)],
        Some(init),
    )
    .expect("POST /mcp initialize");
    assert_eq!(status, 200);
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("mcp-session-id")
                .then(|| v.trim().to_string())
        })
        .expect("an Mcp-Session-Id")
}

/// One `tools/call` of `tool` (`device.tool`) with `arguments` through `/mcp`; returns how
/// long it took and panics unless it succeeded.
pub fn mcp_call(
    port: u16,
    token: &str,
    session: &str,
    id: usize,
    tool: &str,
    arguments: Value,
) -> Duration {
    let auth = format!("Bearer {token}");
    let body = json!({"jsonrpc":"2.0","id": id,"method":"tools/call","params":{"name": tool,"arguments": arguments}}).to_string();
    let t0 = Instant::now();
    let (status, _, text) = http_with(
        port,
        "POST",
        "/mcp",
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", "2025-06-18"),
            ("Accept", "application/json, text/event-stream"),
        ],
        Some(&body),
    )
    .expect("POST /mcp tools/call");
    let took = t0.elapsed();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        status == 200 && v["result"]["isError"] == false,
        "{status} {text}"
    );
    took
}
