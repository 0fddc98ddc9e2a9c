//! `axon_core::transport::mqtt::Session` (the sans-I/O MQTT 5 client the browser and the worker use)
//! against a real Mosquitto over TCP: CONNECT properties, No Local, QoS 1 PUBACKs, retained
//! messages and tombstones, an absent Retain Available, and a broker restart with backoff.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axon_core::time::Timestamp;
use axon_core::transport::link::{ConnectOptions, Publish, QoS, Subscription};
use axon_core::transport::mqtt::{Session, SessionConfig, SessionEvent, SessionState};
use axon_tests::Broker;

/// A blocking shell for one session: the socket, the clock, the drain loop.
struct Shell {
    session: Session,
    port: u16,
    stream: Option<TcpStream>,
    origin: Instant,
    events: Vec<SessionEvent>,
    /// Events before this index were already matched by `until`.
    consumed: usize,
}

impl Shell {
    fn new(port: u16, client_id: &str, will_topic: Option<&str>) -> Shell {
        let will = will_topic.map(|t| Publish {
            topic: t.into(),
            payload: vec![],
            qos: QoS::AtLeastOnce,
            retain: true,
            user_properties: vec![],
        });
        let connect = ConnectOptions {
            client_id: client_id.into(),
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry_s: 0,
            user_properties: vec![
                ("MCP-COMPONENT-TYPE".into(), "mcp-client".into()),
                ("MCP-META".into(), "{}".into()),
            ],
            will,
            credentials: None,
        };
        Shell {
            session: Session::new(SessionConfig::new(connect, 7)),
            port,
            stream: None,
            origin: Instant::now(),
            events: Vec::new(),
            consumed: 0,
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.origin.elapsed().as_millis() as u64)
    }

    /// One turn of the drive loop.
    fn turn(&mut self) {
        let now = self.now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        while let Some(ev) = self.session.poll_event() {
            match &ev {
                SessionEvent::OpenTransport => match TcpStream::connect(("127.0.0.1", self.port)) {
                    Ok(s) => {
                        s.set_nodelay(true).unwrap();
                        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                        self.stream = Some(s);
                        self.session.handle_transport_open(self.now());
                    }
                    Err(_) => self.session.handle_transport_closed(self.now()),
                },
                SessionEvent::CloseTransport => {
                    self.flush();
                    self.stream = None;
                    self.session.handle_transport_closed(self.now());
                }
                _ => {}
            }
            self.events.push(ev);
        }
        self.flush();
        let mut buf = [0u8; 16 * 1024];
        let read = match self.stream.as_mut() {
            Some(s) => s.read(&mut buf),
            None => {
                std::thread::sleep(Duration::from_millis(5));
                return;
            }
        };
        match read {
            Ok(0) => {
                self.stream = None;
                self.session.handle_transport_closed(self.now());
            }
            Ok(n) => self.session.handle_input(self.now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                self.stream = None;
                self.session.handle_transport_closed(self.now());
            }
        }
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            if let Some(s) = self.stream.as_mut() {
                if s.write_all(&bytes).is_err() {
                    self.stream = None;
                }
            }
        }
    }

    /// Drives until an event matches (returns it) or the deadline passes (panics).
    fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&SessionEvent) -> bool,
    ) -> SessionEvent {
        let deadline = Instant::now() + timeout;
        let start = self.consumed;
        loop {
            if let Some(i) = self.events[self.consumed..].iter().position(&pred) {
                self.consumed += i + 1;
                return self.events[self.consumed - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; events: {:#?}",
                &self.events[start..]
            );
            self.turn();
        }
    }

    /// Drives for `d`, returning what arrived.
    fn run_for(&mut self, d: Duration) -> Vec<SessionEvent> {
        let start = self.events.len();
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.turn();
        }
        self.events[start..].to_vec()
    }

    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> Option<u16> {
        let now = self.now();
        let p = Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: QoS::AtLeastOnce,
            retain,
            user_properties: vec![("MCP-MQTT-CLIENT-ID".into(), "x".into())],
        };
        let pid = self.session.publish(now, p).unwrap();
        self.flush();
        pid
    }

    fn subscribe(&mut self, filter: &str, no_local: bool) {
        let now = self.now();
        let pid = self
            .session
            .subscribe(
                now,
                vec![Subscription {
                    filter: filter.into(),
                    qos: QoS::AtLeastOnce,
                    no_local,
                }],
            )
            .unwrap();
        self.until(
            "SUBACK",
            Duration::from_secs(5),
            |e| matches!(e, SessionEvent::Subscribed { packet_id, .. } if *packet_id == pid),
        );
    }
}

fn connected(e: &SessionEvent) -> bool {
    matches!(e, SessionEvent::Connected { .. })
}

fn message_on(topic: &'static str) -> impl Fn(&SessionEvent) -> bool {
    move |e| matches!(e, SessionEvent::Message(m) if m.topic == topic)
}

#[test]
fn connects_subscribes_with_no_local_and_publishes_qos1() {
    // MQTT-level behaviour of the session, unrelated to accounts (tests/tests/broker_acl.rs has those).
    let broker = Broker::start_anonymous();
    let mut a = Shell::new(
        broker.tcp_port(),
        "session-a",
        Some("$mcp-server/presence/session-a/axon/x/session-a"),
    );
    let mut b = Shell::new(broker.tcp_port(), "session-b", None);
    let ack = a.until("CONNACK", Duration::from_secs(5), connected);
    assert!(
        matches!(
            ack,
            SessionEvent::Connected {
                retain_available: true,
                ..
            }
        ),
        "Mosquitto omits Retain Available: absent means available"
    );
    b.until("CONNACK", Duration::from_secs(5), connected);
    a.subscribe("axon/test", true);
    b.subscribe("axon/test", false);
    let pid = a
        .publish("axon/test", b"hello", false)
        .expect("QoS 1 has a packet id");
    a.until("PUBACK", Duration::from_secs(5), |e| matches!(e, SessionEvent::PublishAcked { packet_id, reason_code } if *packet_id == pid && *reason_code < 0x80));
    let got = b.until(
        "the message",
        Duration::from_secs(5),
        message_on("axon/test"),
    );
    let SessionEvent::Message(m) = got else {
        unreachable!()
    };
    assert_eq!(m.payload, b"hello");
    assert_eq!(
        m.user_property("MCP-MQTT-CLIENT-ID"),
        Some("x"),
        "user properties travel"
    );
    let echoed = a.run_for(Duration::from_millis(200));
    assert!(
        !echoed.iter().any(message_on("axon/test")),
        "No Local: the sender does not get its own message back"
    );
}

#[test]
fn retained_messages_and_tombstones() {
    // MQTT-level behaviour of the session, unrelated to accounts (tests/tests/broker_acl.rs has those).
    let broker = Broker::start_anonymous();
    let mut a = Shell::new(broker.tcp_port(), "session-r", None);
    a.until("CONNACK", Duration::from_secs(5), connected);
    let pid = a
        .publish(
            "$mcp-server/presence/r1/axon/lamp/r1",
            b"{\"online\":true}",
            true,
        )
        .unwrap();
    a.until(
        "PUBACK",
        Duration::from_secs(5),
        |e| matches!(e, SessionEvent::PublishAcked { packet_id, .. } if *packet_id == pid),
    );
    let mut late = Shell::new(broker.tcp_port(), "session-late", None);
    late.until("CONNACK", Duration::from_secs(5), connected);
    late.subscribe("$mcp-server/presence/+/axon/#", false);
    let SessionEvent::Message(m) = late.until(
        "retained presence",
        Duration::from_secs(5),
        message_on("$mcp-server/presence/r1/axon/lamp/r1"),
    ) else {
        unreachable!()
    };
    assert!(m.retain, "a retained message replays with RETAIN = 1");
    a.publish("$mcp-server/presence/r1/axon/lamp/r1", b"", true);
    let SessionEvent::Message(m) = late.until(
        "the tombstone",
        Duration::from_secs(5),
        message_on("$mcp-server/presence/r1/axon/lamp/r1"),
    ) else {
        unreachable!()
    };
    assert!(m.payload.is_empty());
    let mut fresh = Shell::new(broker.tcp_port(), "session-fresh", None);
    fresh.until("CONNACK", Duration::from_secs(5), connected);
    fresh.subscribe("$mcp-server/presence/+/axon/#", false);
    assert!(
        !fresh
            .run_for(Duration::from_millis(200))
            .iter()
            .any(|e| matches!(e, SessionEvent::Message(_))),
        "the tombstone cleared it"
    );
}

#[test]
fn the_will_fires_when_the_connection_dies() {
    // MQTT-level behaviour of the session, unrelated to accounts (tests/tests/broker_acl.rs has those).
    let broker = Broker::start_anonymous();
    let mut watcher = Shell::new(broker.tcp_port(), "session-watch", None);
    watcher.until("CONNACK", Duration::from_secs(5), connected);
    watcher.subscribe("$mcp-server/presence/#", false);
    let mut dev = Shell::new(
        broker.tcp_port(),
        "session-dev",
        Some("$mcp-server/presence/session-dev/axon/x/session-dev"),
    );
    dev.until("CONNACK", Duration::from_secs(5), connected);
    dev.publish(
        "$mcp-server/presence/session-dev/axon/x/session-dev",
        b"{}",
        true,
    );
    watcher.until(
        "online",
        Duration::from_secs(5),
        message_on("$mcp-server/presence/session-dev/axon/x/session-dev"),
    );
    // Drop the socket without DISCONNECT, as a crash would.
    dev.stream = None;
    drop(dev);
    let SessionEvent::Message(m) = watcher.until("the will", Duration::from_secs(5), |e| matches!(e, SessionEvent::Message(m) if m.topic == "$mcp-server/presence/session-dev/axon/x/session-dev" && m.payload.is_empty())) else { unreachable!() };
    assert!(m.payload.is_empty());
}

#[test]
fn survives_a_broker_restart_with_backoff() {
    // MQTT-level behaviour of the session, unrelated to accounts (tests/tests/broker_acl.rs has those).
    let mut broker = Broker::start_anonymous();
    let mut a = Shell::new(broker.tcp_port(), "session-restart", None);
    a.until("CONNACK", Duration::from_secs(5), connected);
    broker.stop();
    let lost = a.until("the disconnect", Duration::from_secs(5), |e| {
        matches!(e, SessionEvent::Disconnected { .. })
    });
    assert!(matches!(
        lost,
        SessionEvent::Disconnected {
            reconnect_at: Some(_),
            ..
        }
    ));
    assert!(
        a.session
            .publish(
                a.now(),
                Publish {
                    topic: "t".into(),
                    payload: vec![],
                    qos: QoS::AtMostOnce,
                    retain: false,
                    user_properties: vec![]
                }
            )
            .is_err(),
        "a clear error while down"
    );
    // Failed attempts back off (the broker is still down for a moment).
    a.run_for(Duration::from_millis(300));
    assert_ne!(a.session.state(), SessionState::Connected);
    broker.restart();
    a.until("the reconnect", Duration::from_secs(20), connected);
    let pid = a.publish("t/after", b"x", false).unwrap();
    a.until(
        "PUBACK after the restart",
        Duration::from_secs(5),
        |e| matches!(e, SessionEvent::PublishAcked { packet_id, .. } if *packet_id == pid),
    );
}
