//! Takeover: another client connects with a board's id.
//!
//! EMQX tells the old connection with DISCONNECT 0x8E, and then the board stops for good (the
//! session unit tests cover that path on the codec). Mosquitto 2.0.11 does not send 0x8E: it
//! closes the socket, which looks like any dropped link, so the board reconnects with backoff
//! and the two instances alternate. This test records that broker quirk, so a Mosquitto that
//! starts sending 0x8E shows up here.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axon_core::transport::link::Credentials;
use axon_tests::{Broker, DeviceSim};

/// A minimal MQTT 5 CONNECT for `client_id` (clean start, keep alive 60 s, no properties),
/// with a username and password when `account` is given.
fn connect_packet(client_id: &str, account: Option<&Credentials>) -> Vec<u8> {
    let flags: u8 = if account.is_some() { 0xC2 } else { 0x02 };
    let mut body = b"\x00\x04MQTT\x05".to_vec();
    body.extend_from_slice(&[flags, 0x00, 0x3c, 0x00]);
    let mut field = |b: &[u8]| {
        body.extend_from_slice(&(b.len() as u16).to_be_bytes());
        body.extend_from_slice(b);
    };
    field(client_id.as_bytes());
    if let Some(a) = account {
        field(a.username.as_bytes());
        field(a.password().as_bytes());
    }
    assert!(body.len() < 128, "one-byte remaining length");
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

#[test]
fn mosquitto_closes_a_taken_over_connection_without_disconnect_0x8e() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "lamp", "--fault-rate", "0"]);
    // A raw first connection with the id shows what the broker sends to the old one.
    // The owner's account is pinned to no client id, so it can connect twice with one id.
    let owner = broker.admin();
    let mut old = TcpStream::connect(("127.0.0.1", broker.tcp_port())).unwrap();
    old.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    old.write_all(&connect_packet("probe-dup", Some(&owner)))
        .unwrap();
    let mut connack = [0u8; 64];
    assert!(old.read(&mut connack).unwrap() > 0);
    assert_eq!(connack[3], 0, "CONNACK success for the owner");
    let mut new = TcpStream::connect(("127.0.0.1", broker.tcp_port())).unwrap();
    new.write_all(&connect_packet("probe-dup", Some(&owner)))
        .unwrap();
    let mut after = [0u8; 64];
    let n = old.read(&mut after).unwrap_or(0);
    assert_eq!(n, 0, "Mosquitto 2.0.11 closes without a DISCONNECT (got {:02x?}); if it now sends 0x8E, update docs/protocol-notes.md", &after[..n]);

    // With accounts on, a client without lamp-1's password cannot take its id: the broker
    // refuses the CONNECT (0x87) and the board stays connected.
    let mut stranger = TcpStream::connect(("127.0.0.1", broker.tcp_port())).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stranger.write_all(&connect_packet("lamp-1", None)).unwrap();
    let mut refused = [0u8; 64];
    assert!(stranger.read(&mut refused).unwrap() >= 4);
    assert_eq!(
        refused[3],
        0x87,
        "CONNACK for a stranger: {:02x?}",
        &refused[..8]
    );
    std::thread::sleep(Duration::from_millis(300));
    sim.drain();
    assert!(
        !sim.seen.iter().any(|v| v["event"] == "offline"),
        "a stranger knocked the board off"
    );

    // Whoever has the board's own credentials can: the board reconnects like after any drop
    // and comes back online.
    let mut intruder = TcpStream::connect(("127.0.0.1", broker.tcp_port())).unwrap();
    intruder
        .write_all(&connect_packet(
            "lamp-1",
            Some(&broker.stored_device("lamp-1")),
        ))
        .unwrap();
    sim.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "offline" && v["device"] == "lamp-1"
    });
    let online = sim.wait_count(Duration::from_secs(10), 2, |v| {
        v["event"] == "online" && v["device"] == "lamp-1"
    });
    assert_eq!(online, 2, "the board came back after the plain close");
}
