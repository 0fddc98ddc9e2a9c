//! The ACLs of trust::broker against what the device and Hub code actually put on the wire:
//! a whole session (discovery, initialize, calls, a Hub reconnect, a graceful leave and a
//! crash) through the in-memory broker, where every publish, subscription and delivery must
//! be one the account's ACL allows. The real broker's denials are in
//! tests/tests/broker_acl.rs.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::protocol::mcp::topics::DeviceId;
use axon_core::trust::broker::{
    allows, device_acls, site_base_acls, site_device_acls, Acl, AclType, DEFAULT_SERVER_NAME_FILTER,
};
use common::{Net, Node};
use serde_json::json;

const IDS: [&str; 2] = ["k1", "k2"];

fn acls_of(node: Node) -> Vec<Acl> {
    match node {
        Node::Device(i) => device_acls(&DeviceId::new(IDS[i]).unwrap()),
        Node::Hub => {
            let mut v = site_base_acls(&[DEFAULT_SERVER_NAME_FILTER.into()]);
            for id in IDS {
                v.extend(site_device_acls(&DeviceId::new(id).unwrap()));
            }
            v
        }
        Node::Probe => unreachable!("the probe is not used here"),
    }
}

#[test]
fn every_publish_subscription_and_delivery_of_a_session_is_allowed() {
    let mut net = Net::started(&IDS);
    assert!(net.ready("k1") && net.ready("k2"));
    net.call("k1", "set_brightness", json!({"level": 40}))
        .unwrap();
    net.call("k2", "get_state", json!({})).unwrap();
    net.drop_hub();
    net.hub.set_client_id("axon-hub.test.00000002");
    net.connect_hub();
    net.call("k1", "get_state", json!({})).unwrap();
    net.leave_device(0);
    net.kill_device(1);

    let mut checked = 0;
    for (node, p) in &net.wire {
        assert!(
            allows(&acls_of(*node), AclType::PublishClientSend, &p.topic),
            "{node:?} may not publish {}",
            p.topic
        );
        checked += 1;
    }
    for line in &net.trace {
        let Some(rest) = line.strip_prefix("SUB ") else {
            continue;
        };
        let (node, filter) = rest.split_once(' ').unwrap();
        let node = match node {
            "Hub" => Node::Hub,
            "Device(0)" => Node::Device(0),
            "Device(1)" => Node::Device(1),
            other => panic!("unexpected subscriber {other}"),
        };
        assert!(
            allows(&acls_of(node), AclType::SubscribePattern, filter),
            "{node:?} may not subscribe {filter}"
        );
        checked += 1;
    }
    for (node, topic) in &net.delivered {
        assert!(
            allows(&acls_of(*node), AclType::PublishClientReceive, topic),
            "{node:?} may not receive {topic}"
        );
        checked += 1;
    }
    // The session really happened: calls, presence, both sides' subscriptions.
    assert!(checked > 40, "only {checked} checks");
    assert!(net
        .wire
        .iter()
        .any(|(n, p)| *n == Node::Hub && p.topic.starts_with("$mcp-server/k1/")));
    assert!(net.delivered.iter().any(|(n, _)| *n == Node::Device(1)));
}

#[test]
fn a_device_account_cannot_do_what_the_other_device_does() {
    let net = Net::started(&IDS);
    let k1 = device_acls(&DeviceId::new("k1").unwrap());
    let k2_sends: Vec<&str> = net
        .wire
        .iter()
        .filter(|(n, _)| *n == Node::Device(1))
        .map(|(_, p)| p.topic.as_str())
        .collect();
    assert!(!k2_sends.is_empty());
    for t in k2_sends {
        assert!(
            !allows(&k1, AclType::PublishClientSend, t),
            "k1 may publish {t}"
        );
    }
    for t in net
        .delivered
        .iter()
        .filter(|(n, _)| *n == Node::Device(1))
        .map(|(_, t)| t)
    {
        let shared = t.starts_with("$mcp-client/");
        assert_eq!(allows(&k1, AclType::PublishClientReceive, t), shared, "{t}");
    }
}
