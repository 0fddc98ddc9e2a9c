//! Live updates leaving the Hub as Server-Sent Events: `/api/events` (presence, telemetry,
//! device events, agent activity) and the `/mcp` GET stream (list-changed notifications).
//!
//! Owns SSE framing and the subscriber lists; a subscriber whose client went away is dropped
//! on the next send. It never decides what happens: the Hub tells it what to publish.

use futures_channel::mpsc;
use futures_util::StreamExt;
use serde_json::Value;
use worker::{Headers, Response, Result};

/// One SSE frame.
pub fn frame(event: &str, data: &Value) -> Vec<u8> {
    axon_core::protocol::sse::frame(event, &data.to_string()).into_bytes()
}

/// The subscribers of one kind of stream.
#[derive(Default)]
pub struct Broadcast {
    subscribers: Vec<mpsc::UnboundedSender<Vec<u8>>>,
}

impl Broadcast {
    /// A new subscriber's stream, with `first` frames sent at once.
    pub fn subscribe(&mut self, first: Vec<Vec<u8>>) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = mpsc::unbounded();
        for f in first {
            let _ = tx.unbounded_send(f);
        }
        self.subscribers.push(tx);
        rx
    }

    /// Sends the frame `make` writes to every subscriber; with none, `make` never runs (a
    /// big site's telemetry is thousands of frames a second that nobody may be watching).
    pub fn send(&mut self, make: impl FnOnce() -> Vec<u8>) {
        if self.subscribers.is_empty() {
            return;
        }
        let bytes = make();
        self.subscribers
            .retain(|s| s.unbounded_send(bytes.clone()).is_ok());
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }
}

/// An SSE response that streams whatever arrives on `rx`.
pub fn sse_response(rx: impl futures_util::Stream<Item = Vec<u8>> + 'static) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(Response::from_stream(rx.map(Ok::<Vec<u8>, worker::Error>))?.with_headers(headers))
}
