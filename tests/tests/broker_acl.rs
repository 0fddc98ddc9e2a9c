//! Broker accounts against a real Mosquitto with dynamic security (docs/security.md "Broker
//! accounts"): who gets in, what each account may publish, subscribe to and receive, and what
//! revoking and rotating do. Denials are checked both ways: the broker's answer (CONNACK,
//! PUBACK, SUBACK 0x87) and non-delivery to an authorised observer.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::process::Command;
use std::time::Duration;

use axon_core::transport::link::Credentials;
use axon_tests::broker::Broker;
use axon_tests::device_sim::{binary, DeviceSim};
use axon_tests::probe::{Probe, ProbeEnd};

const SHORT: Duration = Duration::from_millis(400);

fn lamp(id: &str) -> String {
    format!("axon/lamp/{id}")
}

/// An observer that may see everything (the owner), subscribed to every Axon tree.
async fn observer(broker: &Broker) -> Probe {
    let mut o = Probe::connect_to(broker, "test-observer").await;
    for f in ["#", "$mcp-server/#", "$mcp-rpc/#", "$mcp-client/#"] {
        o.subscribe(f, false).await;
    }
    o
}

async fn device(broker: &Broker, c: &Credentials) -> Probe {
    Probe::connect_with(broker.tcp_port(), &c.username, Some(c))
        .await
        .expect("a provisioned device connects")
}

#[tokio::test]
async fn anonymous_wrong_password_and_foreign_client_id_are_refused() {
    let broker = Broker::start();
    let a = broker.provision_device("d-a", "x");
    // Mosquitto 2.0.11 answers all three with 0x87 (not 0x86), measured.
    let anon = Probe::connect_with(broker.tcp_port(), "anon", None).await;
    assert_eq!(anon.err(), Some(ProbeEnd::Refused(0x87)));
    let wrong = Credentials::new("d-a", "not-the-password");
    let bad = Probe::connect_with(broker.tcp_port(), "d-a", Some(&wrong)).await;
    assert_eq!(bad.err(), Some(ProbeEnd::Refused(0x87)));
    // The account is pinned to client id d-a.
    let other_id = Probe::connect_with(broker.tcp_port(), "not-d-a", Some(&a)).await;
    assert_eq!(other_id.err(), Some(ProbeEnd::Refused(0x87)));
    assert!(Probe::connect_with(broker.tcp_port(), "d-a", Some(&a))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_device_cannot_reach_another_devices_topics() {
    let broker = Broker::start();
    let a = broker.provision_device("d-a", "x");
    let b = broker.provision_device("d-b", "x");
    let mut obs = observer(&broker).await;
    let mut pa = device(&broker, &a).await;
    let _pb = device(&broker, &b).await;

    // Subscriptions to B's RPC, control and telemetry are refused.
    for f in [
        "$mcp-rpc/+/d-b/#",
        "$mcp-server/d-b/#",
        "axon/telemetry/d-b",
        "axon/telemetry/+",
        "$mcp-server/presence/+/axon/#",
    ] {
        assert_eq!(pa.try_subscribe(f).await, 0x87, "A subscribed to {f}");
    }
    // Publishing as B is refused and nothing reaches the observer.
    for t in [
        format!("$mcp-server/presence/d-b/{}", lamp("d-b")),
        format!("$mcp-server/capability/d-b/{}", lamp("d-b")),
        format!("$mcp-server/d-b/{}", lamp("d-b")),
        format!("$mcp-rpc/axon-hub.x.0001/d-b/{}", lamp("d-b")),
        "axon/telemetry/d-b".to_string(),
        "axon/events/d-b".to_string(),
    ] {
        assert_eq!(
            pa.publish_acked(&t, "forged").await,
            0x87,
            "A published {t}"
        );
        assert!(obs.next_on(&t, SHORT).await.is_none(), "{t} was delivered");
    }
    // Its own topics go through (so the refusals above are about the topic, not the account).
    let own = "axon/telemetry/d-a";
    assert!(pa.publish_acked(own, "{}").await < 0x80);
    assert!(obs.next_on(own, Duration::from_secs(2)).await.is_some());
    let presence = format!("$mcp-server/presence/d-a/{}", lamp("d-a"));
    assert!(pa.publish_acked(&presence, "{}").await < 0x80);
    assert!(obs
        .next_on(&presence, Duration::from_secs(2))
        .await
        .is_some());
}

#[tokio::test]
async fn a_hub_reaches_its_own_sites_devices_only() {
    let broker = Broker::start();
    let hub_x = broker.provision_hub("x");
    let _hub_y = broker.provision_hub("y");
    let a = broker.provision_device("d-a", "x");
    let c = broker.provision_device("d-c", "y");
    let mut obs = observer(&broker).await;
    let hub_id = "axon-hub.x.00000001";
    let mut hub = Probe::connect_with(broker.tcp_port(), hub_id, Some(&hub_x))
        .await
        .expect("hub-x connects with any client id");
    // The wildcard subscriptions the Hub makes are allowed...
    for f in [
        "$mcp-server/presence/+/axon/#",
        "axon/telemetry/+",
        "axon/events/+",
    ] {
        assert!(hub.try_subscribe(f).await < 0x80, "hub-x may subscribe {f}");
    }
    // ...but only its own site's devices come through them, retained presence included.
    let mut pa = device(&broker, &a).await;
    let mut pc = device(&broker, &c).await;
    let pres_a = format!("$mcp-server/presence/d-a/{}", lamp("d-a"));
    let pres_c = format!("$mcp-server/presence/d-c/{}", lamp("d-c"));
    assert!(pc.publish_acked(&pres_c, "{}").await < 0x80);
    assert!(pc.publish_acked("axon/telemetry/d-c", "{}").await < 0x80);
    assert!(pa.publish_acked(&pres_a, "{}").await < 0x80);
    assert!(pa.publish_acked("axon/telemetry/d-a", "{}").await < 0x80);
    // The observer (receives everything) proves both were delivered to someone.
    assert!(obs
        .next_on("axon/telemetry/d-c", Duration::from_secs(2))
        .await
        .is_some());
    let mut got = Vec::new();
    while let Some(m) = hub.next(SHORT).await {
        got.push(m.topic);
    }
    assert!(
        got.contains(&pres_a) && got.contains(&"axon/telemetry/d-a".to_string()),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|t| t.contains("d-c")),
        "hub-x received site y: {got:?}"
    );
    // It may call d-a but not d-c: control and RPC.
    let ctl_a = format!("$mcp-server/d-a/{}", lamp("d-a"));
    assert!(hub.publish_acked(&ctl_a, "{}").await < 0x80);
    for t in [
        format!("$mcp-server/d-c/{}", lamp("d-c")),
        format!("$mcp-rpc/{hub_id}/d-c/{}", lamp("d-c")),
    ] {
        assert_eq!(
            hub.publish_acked(&t, "{}").await,
            0x87,
            "hub-x published {t}"
        );
        assert!(obs.next_on(&t, SHORT).await.is_none(), "{t} was delivered");
    }
    // Nor may it subscribe to site y's RPC or capability.
    assert_eq!(hub.try_subscribe("$mcp-rpc/+/d-c/#").await, 0x87);
    assert_eq!(
        hub.try_subscribe(&format!("$mcp-server/capability/d-c/{}", lamp("d-c")))
            .await,
        0x87
    );
}

#[tokio::test]
async fn a_revoked_device_is_disconnected_and_cannot_come_back() {
    let broker = Broker::start();
    let hub_x = broker.provision_hub("x");
    let a = broker.provision_device("d-a", "x");
    let mut pa = device(&broker, &a).await;
    let mut hub = Probe::connect_with(broker.tcp_port(), "axon-hub.x.2", Some(&hub_x))
        .await
        .unwrap();
    hub.subscribe("axon/telemetry/+", false).await;
    broker.revoke_device("d-a", "x");
    let end = pa.ended(Duration::from_secs(3)).await;
    // DISCONNECT 0x98 (Administrative action) or a plain close, depending on timing.
    assert!(end.is_some(), "revoked device still connected");
    let again = Probe::connect_with(broker.tcp_port(), "d-a", Some(&a)).await;
    assert_eq!(again.err(), Some(ProbeEnd::Refused(0x87)));
    // Even if the owner publishes as d-a, the site no longer receives it.
    let mut obs = observer(&broker).await;
    assert!(obs.publish_acked("axon/telemetry/d-a", "{}").await < 0x80);
    assert!(hub.next_on("axon/telemetry/d-a", SHORT).await.is_none());
}

fn provision(broker: &Broker, state: &std::path::Path, device: &str) -> (String, String) {
    let out = Command::new(binary())
        .args(["provision", "--device", device, "--site", "x", "--broker"])
        .arg(broker.url())
        .env("AXON_DEVICE_STATE_DIR", state)
        .envs(broker.admin_env())
        .output()
        .expect("run provision");
    assert!(
        out.status.success(),
        "provision failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let mut parts = line.split_whitespace();
    let user = parts.next().expect("username").to_string();
    let pw = parts.next().expect("password").to_string();
    assert_eq!(parts.next(), None, "one line: USERNAME PASSWORD");
    (user, pw)
}

#[tokio::test]
async fn provision_rotation_invalidates_the_old_password() {
    let broker = Broker::start();
    let state = broker.dir().join("state");
    let (user, pw1) = provision(&broker, &state, "d-r");
    assert_eq!(user, "d-r");
    let old = Credentials::new("d-r", pw1.clone());
    let mut connected = device(&broker, &old).await;
    let (_, pw2) = provision(&broker, &state, "d-r");
    assert_ne!(pw1, pw2);
    // Rotating disconnects the client that used the old password...
    assert!(connected.ended(Duration::from_secs(3)).await.is_some());
    // ...which can no longer connect; the new one can, and is what the state dir holds.
    let again = Probe::connect_with(broker.tcp_port(), "d-r", Some(&old)).await;
    assert_eq!(again.err(), Some(ProbeEnd::Refused(0x87)));
    device(&broker, &Credentials::new("d-r", pw2.clone())).await;
    let stored = std::fs::read_to_string(state.join("d-r.json")).unwrap();
    assert!(stored.contains(&pw2) && !stored.contains(&pw1));
}

#[test]
fn a_board_with_a_wrong_password_stops_with_a_clear_error() {
    let broker = Broker::start();
    let mut sim = {
        let state = broker.dir().join("devices");
        std::fs::create_dir_all(&state).unwrap();
        broker.provision_device("lamp-1", "home");
        std::fs::write(
            state.join("lamp-1.json"),
            r#"{"username":"lamp-1","password":"stale"}"#,
        )
        .unwrap();
        DeviceSim::spawn(&broker, &["--profile", "lamp", "--fault-rate", "0"])
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = sim.exited() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the board kept retrying:\n{}",
            sim.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = sim.log();
    assert!(
        log.contains("refused account lamp-1") && log.contains("not authorised"),
        "{log}"
    );
    assert!(!log.contains("stale"), "the password was logged: {log}");
}

#[test]
fn no_password_appears_in_the_broker_or_device_sim_logs() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(
        &broker,
        &["--profile", "lamp", "--devices", "2", "--fault-rate", "0"],
    );
    // A wrong password too, so the refusal path is in the logs.
    let _ = std::process::Command::new(binary())
        .args([
            "ctl",
            "--broker",
            &broker.url(),
            "--username",
            "lamp-1",
            "list",
        ])
        .env("AXON_BROKER_PASSWORD", "wrong-password-xyz")
        .output();
    sim.interrupt();
    let mut secrets = vec![
        broker.admin().password().to_string(),
        "wrong-password-xyz".into(),
    ];
    for id in ["lamp-1", "lamp-2"] {
        let f = std::fs::read_to_string(broker.dir().join("devices").join(format!("{id}.json")))
            .expect("the board stored its credentials");
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        secrets.push(v["password"].as_str().unwrap().to_string());
    }
    let logs = format!("{}\n{}", broker.log(), sim.log());
    assert!(
        logs.contains("lamp-1"),
        "the logs hold nothing to search: {logs}"
    );
    for s in &secrets {
        assert!(s.len() >= 16);
        assert!(!logs.contains(s.as_str()), "a password is in the logs");
    }
}
