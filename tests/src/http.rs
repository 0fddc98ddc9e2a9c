//! The system tests' one HTTP client, on `ureq` (plain HTTP on 127.0.0.1, no TLS): whole
//! answers for the worker and the local AI server, and Server-Sent Events read as they arrive
//! (`/api/chat`, `/api/events`).
//!
//! Owns: sending a request and handing back the status, the response head and the de-chunked
//! body. Must never turn an HTTP status into an error (the tests assert on statuses, 4xx
//! included) nor reuse a connection: every request gets a fresh one, as a board or `curl`
//! would, so that a restarted worker on the same port is never reached through a dead socket
//! and the benches time the same thing from run to run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::Value;
use ureq::http::Request;
use ureq::{Agent, Body, BodyReader};

/// How long one read may wait for the next bytes, for the worker (`wrangler dev`).
pub const WORKER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer read to its end.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The status line (with the status's standard reason) and the headers, one `name: value`
    /// a line, names in lower case.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request to `http://127.0.0.1:{port}{path}`, read to the end. `headers` go out as
/// given; `read_timeout` bounds each wait for bytes. An error is a failure to connect, send or
/// read, never a status.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> std::io::Result<Reply> {
    let (status, head, body) = send(port, method, path, headers, body, read_timeout)?;
    let body = body
        .into_with_config()
        .read_to_vec()
        .map_err(|e| std::io::Error::other(format!("{method} {path}: reading the body: {e}")))?;
    Ok(Reply { status, head, body })
}

/// A minimal request to the worker: status and body as text.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http_with(port, method, path, &[], body).map(|(status, _, body)| (status, body))
}

/// As [`http`], with extra request headers (a `Content-Type` among them replaces the default
/// `application/json`); also returns the response head.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    let r = request(
        port,
        method,
        path,
        &json_by_default(headers),
        body.unwrap_or("").as_bytes(),
        WORKER_READ_TIMEOUT,
    )?;
    let text = r.text();
    Ok((r.status, r.head, text))
}

/// The owner tokens of the workers this test process started, by port: a request to such a
/// port that names no `Authorization` goes out as the owner, as the console and `curl` in the
/// README do. A test of refusals sends `("authorization", "")` to go without any credential.
static OWNER_TOKENS: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());

/// Registers the owner token of the worker on `port` (see [`OWNER_TOKENS`]).
pub fn register_owner_token(port: u16, token: &str) {
    let mut t = OWNER_TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    t.retain(|(p, _)| *p != port);
    t.push((port, token.to_string()));
}

/// The owner token registered for `port`.
pub fn owner_token(port: u16) -> Option<String> {
    let t = OWNER_TOKENS.lock().unwrap_or_else(|e| e.into_inner());
    t.iter().find(|(p, _)| *p == port).map(|(_, t)| t.clone())
}

/// Sends the request and reads the response head; the body is left to the caller.
fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> std::io::Result<(u16, String, Body)> {
    let fail = |e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("{method} http://127.0.0.1:{port}{path}: {e}"))
    };
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    let mut authorization_named = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("authorization") {
            authorization_named = true;
            if v.is_empty() {
                continue; // no credential at all, on purpose
            }
        }
        req = req.header(*k, *v);
    }
    if !authorization_named {
        if let Some(t) = owner_token(port) {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
    }
    let req = req.body(body).map_err(|e| fail(&e))?;
    let agent = agent();
    let req = agent
        .configure_request(req)
        .timeout_per_read(Some(read_timeout))
        .build();
    let res = agent.run(req).map_err(|e| match e {
        ureq::Error::Io(io) => std::io::Error::new(io.kind(), fail(&io).to_string()),
        e => fail(&e),
    })?;
    let (parts, body) = res.into_parts();
    let mut head = format!(
        "{:?} {} {}\r\n",
        parts.version,
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (k, v) in &parts.headers {
        head.push_str(&format!(
            "{k}: {}\r\n",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    Ok((parts.status.as_u16(), head, body))
}

/// `headers`, with `Content-Type: application/json` first unless they name one: what the
/// worker's routes read.
fn json_by_default<'a>(headers: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let named = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let default = (!named).then_some(("Content-Type", "application/json"));
    default.into_iter().chain(headers.iter().copied()).collect()
}

/// The agent every request goes through: statuses are answers, no proxy (loopback only), no
/// idle connections kept.
fn agent() -> &'static Agent {
    static AGENT: std::sync::OnceLock<Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent()
    })
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` name.
    pub event: String,
    /// The `data:` JSON.
    pub data: Value,
}

/// The names of `events`, in order.
pub fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// The data of the first event named `name`; panics with the names seen when there is none.
pub fn find<'a>(events: &'a [SseEvent], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|e| e.event == name)
        .unwrap_or_else(|| panic!("no {name} event in {:?}", names(events)))
        .data
}

/// A Server-Sent Events response read as it arrives.
pub struct SseStream {
    reader: BufReader<BodyReader<'static>>,
    pending: String,
    ready: VecDeque<SseEvent>,
    /// The HTTP status.
    pub status: u16,
}

impl SseStream {
    /// Sends the request to the worker and reads the response head.
    pub fn open(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<Self> {
        Self::open_with(port, method, path, &[], body)
    }

    /// As [`SseStream::open`], with extra request headers (a credential, an `Origin`).
    pub fn open_with(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Self> {
        let mut h = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        let (status, _, body) = send(
            port,
            method,
            path,
            &json_by_default(&h),
            body.unwrap_or("").as_bytes(),
            WORKER_READ_TIMEOUT,
        )?;
        Ok(SseStream {
            reader: BufReader::new(body.into_reader()),
            pending: String::new(),
            ready: VecDeque::new(),
            status,
        })
    }

    /// Reads the next line the server sent; `false` at the end, on a read timeout or a broken
    /// connection. Whole lines, so that a character is never cut between two reads.
    fn more(&mut self) -> bool {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => false,
            Ok(_) => {
                self.pending.push_str(&String::from_utf8_lossy(&line));
                true
            }
        }
    }

    /// The next event, or `None` when the stream ends.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            for e in axon_core::protocol::sse::drain_events(&mut self.pending) {
                self.ready.push_back(SseEvent {
                    data: serde_json::from_str(&e.data).unwrap_or(Value::String(e.data)),
                    event: e.event,
                });
            }
            if self.ready.is_empty() && !self.more() {
                return None;
            }
        }
    }

    /// The rest of the body as text (for the message when a stream was refused).
    pub fn rest(&mut self) -> String {
        let mut out = std::mem::take(&mut self.pending);
        while self.more() {
            out.push_str(&std::mem::take(&mut self.pending));
        }
        out
    }

    /// Events until one named `name` (included), or the end.
    pub fn until(&mut self, name: &str) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next_event() {
            let stop = e.event == name;
            out.push(e);
            if stop {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test fails loudly by design

    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    /// `data` as one chunk of a chunked body.
    fn chunk(data: &str) -> String {
        format!("{:x}\r\n{data}\r\n", data.len())
    }

    /// A one-connection server: hands the whole request to the test, then writes `parts` with
    /// a pause before each after the first, so that a reader that waits for the end shows.
    fn serve(parts: Vec<String>) -> (u16, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let complete = |got: &[u8]| {
                let text = String::from_utf8_lossy(got).to_ascii_lowercase();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    return false;
                };
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                body.len() >= len
            };
            while !complete(&got) {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before the request was whole");
                got.extend_from_slice(&buf[..n]);
            }
            tx.send(String::from_utf8_lossy(&got).into_owned()).unwrap();
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(300));
                }
                s.write_all(p.as_bytes()).unwrap();
            }
        });
        (port, rx)
    }

    #[test]
    fn an_error_status_is_an_answer_with_its_headers_and_de_chunked_body() {
        let (port, request) = serve(vec![
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
                .to_string()
                + &chunk("no to"),
            chunk("ken.") + "0\r\n\r\n",
        ]);
        let (status, head, body) = http_with(
            port,
            "POST",
            "/mcp",
            &[("Authorization", "Bearer x")],
            Some("{}"),
        )
        .unwrap();
        assert_eq!((status, body.as_str()), (401, "no token."));
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
        assert!(head.contains("www-authenticate: Bearer\r\n"), "{head}");
        let sent = request.recv().unwrap().to_ascii_lowercase();
        assert!(sent.starts_with("post /mcp http/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("content-type: application/json\r\n"),
            "{sent}"
        );
        assert!(sent.contains("authorization: bearer x\r\n"), "{sent}");
        assert!(sent.ends_with("\r\n\r\n{}"), "{sent}");
    }

    #[test]
    fn a_refused_connection_is_an_error_naming_the_request() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = http(port, "GET", "/healthz", None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        assert!(
            e.to_string()
                .contains(&format!("GET http://127.0.0.1:{port}/healthz")),
            "{e}"
        );
    }

    #[test]
    fn a_refused_stream_gives_its_status_and_body() {
        let (port, _request) = serve(vec![
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 27\r\n\r\n{\"error\":\"text is missing\"}"
                .to_string(),
        ]);
        let mut s = SseStream::open(port, "POST", "/api/chat", Some("{}")).unwrap();
        assert_eq!(s.status, 400);
        assert_eq!(s.rest(), r#"{"error":"text is missing"}"#);
    }

    #[test]
    fn sse_events_arrive_before_the_stream_ends() {
        let (port, request) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
                .to_string()
                + &chunk("event: turn\ndata: {\"n\":1}\n\n"),
            // One event cut across two chunks, a two-byte character in the second.
            chunk("event: done\nda"),
            chunk("ta: {\"t\":\"21 \u{b0}C\"}\n\n"),
        ]);
        let mut s = SseStream::open(port, "POST", "/api/chat", Some("{}")).unwrap();
        assert_eq!(s.status, 200);
        assert!(request
            .recv()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept: text/event-stream\r\n"));
        let t0 = std::time::Instant::now();
        let first = s.next_event().unwrap();
        assert_eq!(
            (first.event.as_str(), first.data["n"].as_u64()),
            ("turn", Some(1))
        );
        assert!(
            t0.elapsed() < Duration::from_millis(250),
            "the first event waited for the rest: {:?}",
            t0.elapsed()
        );
        let rest = s.until("done");
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert_eq!(rest[0].data["t"], "21 °C");
        // The server left without the last chunk: the stream ends, no hang.
        assert!(s.next_event().is_none());
    }
}
