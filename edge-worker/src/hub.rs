//! The Hub Durable Object: one per site. It owns the site's broker connection (MQTT 5 over an
//! outbound WebSocket), drives `axon-core`'s MQTT session and MCP client, and answers the
//! worker's device routes from the client's registry.
//!
//! Protocol decisions stay in `axon-core`; this file only moves bytes, time and requests
//! between the WebSocket, timers and HTTP. A call that finds no broker fails at once with
//! `-32013`; one that finds no device fails with `-32010`; none waits longer than the
//! client's deadline.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use axon_core::jsonrpc::{code, ErrorObject};
use axon_core::mcp::client::{ClientConfig, ClientEvent, McpClient, RequestHandle};
use axon_core::mcp::types::Implementation;
use axon_core::mqtt::{Session, SessionConfig, SessionEvent, SessionState};
use axon_core::time::{earliest, Rng, Timestamp};
use futures_channel::{mpsc, oneshot};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebsocketEvent,
};

type Reply = oneshot::Sender<std::result::Result<Value, ErrorObject>>;

/// The Hub's live state, shared by the link loop and the request handlers (one thread).
struct Link {
    session: Session,
    client: McpClient,
    ws: Option<WebSocket>,
    waiting: HashMap<RequestHandle, Reply>,
    rng: Rng,
    site: String,
    last_error: Option<String>,
}

fn now() -> Timestamp {
    Timestamp::from_millis(js_sys::Date::now() as u64)
}

fn random_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64 ^ (js_sys::Date::now() as u64)
}

impl Link {
    fn new(site: String) -> Link {
        let mut rng = Rng::new(random_seed());
        let client = McpClient::new(Self::client_config(&site, &mut rng));
        let session = Session::new(SessionConfig::new(client.connect_options(), rng.next_u64()));
        Link {
            session,
            client,
            ws: None,
            waiting: HashMap::new(),
            rng,
            site,
            last_error: None,
        }
    }

    /// The Hub's client id is fresh for every connection (PROTOCOL.md §5.1).
    fn client_config(site: &str, rng: &mut Rng) -> ClientConfig {
        let mut c = ClientConfig::new(format!("axon-hub.{site}.{}", rng.hex(4)), rng.next_u64());
        c.site = site.to_string();
        c.client_info = Implementation {
            name: "axon-hub".into(),
            title: Some("Axon Hub".into()),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        c
    }

    /// Moves everything between the session, the client and the socket until all is quiet.
    /// Returns true if the session asked for a new transport.
    fn pump(&mut self) -> bool {
        let mut open = false;
        loop {
            let mut busy = false;
            while let Some(ev) = self.session.poll_event() {
                busy = true;
                let t = now();
                match ev {
                    SessionEvent::OpenTransport => open = true,
                    SessionEvent::CloseTransport => {
                        if let Some(ws) = self.ws.take() {
                            let _ = ws.close(Some(1000), Some("closing"));
                        }
                    }
                    SessionEvent::Connected { connack, .. } => {
                        self.last_error = None;
                        self.client.handle_connected(t, &connack);
                    }
                    SessionEvent::Message(m) => self.client.handle_message(t, &m),
                    SessionEvent::Subscribed {
                        token: Some(token), ..
                    } => self.client.handle_subscribed(t, token),
                    SessionEvent::Disconnected { reason, .. } => {
                        self.last_error = Some(reason);
                        self.client.handle_disconnected(t);
                        // A fresh client id for the next connection.
                        let cid = Self::client_config(&self.site, &mut self.rng).client_id;
                        self.client.set_client_id(cid);
                        self.session
                            .set_connect_options(self.client.connect_options());
                    }
                    SessionEvent::ConnectRefused { reason, .. } => {
                        self.last_error = Some(format!("broker refused the connection: {reason}"))
                    }
                    SessionEvent::PublishAcked { reason_code, .. } if reason_code >= 0x80 => {
                        self.last_error = Some(format!(
                            "broker refused a publish (reason 0x{reason_code:02x}): check the ACL"
                        ));
                    }
                    _ => {}
                }
            }
            while let Some(t) = self.client.poll_transmit() {
                busy = true;
                if let Err(e) = self.session.transmit(now(), t) {
                    self.last_error = Some(e.to_string());
                }
            }
            while let Some(ev) = self.client.poll_event() {
                busy = true;
                if let ClientEvent::Response { handle, outcome } = ev {
                    if let Some(reply) = self.waiting.remove(&handle) {
                        let _ = reply.send(outcome);
                    }
                }
            }
            while let Some(bytes) = self.session.poll_transmit() {
                busy = true;
                if let Some(ws) = &self.ws {
                    if ws.send_with_bytes(&bytes).is_err() {
                        self.ws = None;
                        self.session.handle_transport_closed(now());
                    }
                }
            }
            if !busy {
                return open;
            }
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        earliest(self.session.poll_timeout(), self.client.poll_timeout())
    }

    fn fire_timeouts(&mut self) {
        let t = now();
        if self.session.poll_timeout().is_some_and(|d| d <= t) {
            self.session.handle_timeout(t);
        }
        if self.client.poll_timeout().is_some_and(|d| d <= t) {
            self.client.handle_timeout(t);
        }
    }
}

/// The site's Hub.
#[durable_object]
pub struct Hub {
    env: Env,
    link: Rc<RefCell<Link>>,
    kick: RefCell<Option<mpsc::UnboundedSender<()>>>,
}

impl DurableObject for Hub {
    fn new(_state: State, env: Env) -> Self {
        let site = env
            .var("AXON_SITE")
            .map(|v| v.to_string())
            .unwrap_or_else(|_| "home".into());
        Hub {
            env,
            link: Rc::new(RefCell::new(Link::new(site))),
            kick: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.ensure_running();
        let path = req.path();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), parts.as_slice()) {
            (worker::Method::Get, ["healthz"]) => {
                let link = self.link.borrow();
                let devices = link.client.devices().count();
                let ready = link
                    .client
                    .devices()
                    .filter(|d| d.state == axon_core::mcp::client::DeviceState::Ready)
                    .count();
                Response::from_json(&json!({
                    "ok": true,
                    "broker": match link.session.state() {
                        SessionState::Connected => "connected",
                        SessionState::Connecting | SessionState::Opening => "connecting",
                        SessionState::WaitingToReconnect => "reconnecting",
                        SessionState::Closed => "closed",
                    },
                    "broker_url": self.broker_url(),
                    "last_error": link.last_error,
                    "devices": devices,
                    "ready": ready,
                    "llm": "offline",
                }))
            }
            (worker::Method::Get, ["api", "devices"]) => {
                let link = self.link.borrow();
                let devices: Vec<&axon_core::mcp::client::DeviceInfo> =
                    link.client.devices().collect();
                Response::from_json(&json!({ "devices": devices }))
            }
            (worker::Method::Get, ["api", "devices", id]) => {
                let link = self.link.borrow();
                match link.client.device(id) {
                    Some(d) => Response::from_json(d),
                    None => error_response(
                        404,
                        &ErrorObject::new(code::DEVICE_OFFLINE, format!("unknown device {id}")),
                    ),
                }
            }
            (worker::Method::Post, ["api", "devices", id, "tools", tool]) => {
                let text = req.text().await.unwrap_or_default();
                let args: Value = if text.trim().is_empty() {
                    json!({})
                } else {
                    match serde_json::from_str(&text) {
                        Ok(v) => v,
                        Err(e) => {
                            return error_response(
                                400,
                                &ErrorObject::new(
                                    code::PARSE_ERROR,
                                    format!("the body is not JSON: {e}"),
                                ),
                            )
                        }
                    }
                };
                let outcome = self.call_tool(id, tool, args).await;
                match outcome {
                    Ok(result) => Response::from_json(&result),
                    Err(e) => {
                        let status = match e.code {
                            code::DEVICE_OFFLINE => 404,
                            code::INVALID_PARAMS | code::INVALID_REQUEST | code::PARSE_ERROR => 400,
                            code::REQUEST_TIMEOUT => 504,
                            code::BROKER_UNAVAILABLE => 503,
                            _ => 502,
                        };
                        error_response(status, &e)
                    }
                }
            }
            _ => Response::error("not found", 404),
        }
    }
}

fn error_response(status: u16, e: &ErrorObject) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": e }))?.with_status(status))
}

impl Hub {
    fn broker_url(&self) -> String {
        self.env
            .var("AXON_BROKER_URL")
            .map(|v| v.to_string())
            .unwrap_or_else(|_| "ws://127.0.0.1:8083/mqtt".into())
    }

    /// Starts the link loop once per Durable Object instance.
    fn ensure_running(&self) {
        if self.kick.borrow().is_some() {
            return;
        }
        let (tx, rx) = mpsc::unbounded();
        *self.kick.borrow_mut() = Some(tx);
        let link = self.link.clone();
        let url = self.broker_url();
        wasm_bindgen_futures::spawn_local(run_link(link, url, rx));
    }

    async fn call_tool(
        &self,
        device: &str,
        tool: &str,
        args: Value,
    ) -> std::result::Result<Value, ErrorObject> {
        let rx = {
            let mut link = self.link.borrow_mut();
            let handle = link
                .client
                .call_tool(now(), device, tool, args, Default::default())?;
            let (tx, rx) = oneshot::channel();
            link.waiting.insert(handle, tx);
            link.pump();
            rx
        };
        // Wake the loop so it arms the new deadline.
        if let Some(k) = self.kick.borrow().as_ref() {
            let _ = k.unbounded_send(());
        }
        rx.await.unwrap_or_else(|_| {
            Err(ErrorObject::new(
                code::BROKER_UNAVAILABLE,
                "the Hub's link stopped",
            ))
        })
    }
}

/// The link loop: connect, feed bytes and time to the session, reconnect on loss.
async fn run_link(link: Rc<RefCell<Link>>, url: String, mut kick: mpsc::UnboundedReceiver<()>) {
    loop {
        let open = link.borrow_mut().pump();
        if !open {
            // Not connected: wait for the session's next deadline (the backoff) or a kick.
            let wait = wait_time(&link);
            futures_util::select! {
                _ = worker::Delay::from(wait).fuse() => {}
                _ = kick.next() => {}
            }
            link.borrow_mut().fire_timeouts();
            continue;
        }
        let parsed = match url.parse() {
            Ok(u) => u,
            Err(e) => {
                link.borrow_mut().last_error =
                    Some(format!("AXON_BROKER_URL {url:?} is not a URL: {e}"));
                return;
            }
        };
        let ws = match WebSocket::connect_with_protocols(parsed, Some(vec!["mqtt"])).await {
            Ok(ws) => ws,
            Err(e) => {
                let mut l = link.borrow_mut();
                l.last_error = Some(format!("cannot reach the broker at {url}: {e}"));
                l.session.handle_transport_closed(now());
                continue;
            }
        };
        if ws.accept().is_err() {
            link.borrow_mut().session.handle_transport_closed(now());
            continue;
        }
        let mut events = match ws.events() {
            Ok(e) => e,
            Err(_) => {
                link.borrow_mut().session.handle_transport_closed(now());
                continue;
            }
        };
        {
            let mut l = link.borrow_mut();
            l.ws = Some(ws.clone());
            l.session.handle_transport_open(now());
        }
        loop {
            link.borrow_mut().pump();
            if link.borrow().ws.is_none() {
                break; // the session closed it
            }
            let wait = wait_time(&link);
            futures_util::select! {
                ev = events.next().fuse() => match ev {
                    Some(Ok(WebsocketEvent::Message(m))) => {
                        if let Some(bytes) = m.bytes() {
                            link.borrow_mut().session.handle_input(now(), &bytes);
                        }
                    }
                    Some(Ok(WebsocketEvent::Close(_))) | Some(Err(_)) | None => {
                        let mut l = link.borrow_mut();
                        l.ws = None;
                        l.session.handle_transport_closed(now());
                        break;
                    }
                },
                _ = worker::Delay::from(wait).fuse() => link.borrow_mut().fire_timeouts(),
                _ = kick.next() => {}
            }
        }
    }
}

fn wait_time(link: &Rc<RefCell<Link>>) -> Duration {
    let t = now();
    match link.borrow().next_deadline() {
        Some(d) => d.saturating_since(t).max(Duration::from_millis(1)),
        None => Duration::from_secs(30),
    }
}
