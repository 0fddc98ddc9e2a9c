//! Discovery and initialize: devices that start before and after the Hub are found, initialized
//! and listed, in the order the spec demands, with the right properties on every publish.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use axon_core::endpoint::Endpoint;
use axon_core::protocol::mcp::client::{ClientEvent, DeviceState};
use axon_core::protocol::mcp::server::McpServer;
use axon_core::protocol::mcp::topics;
use axon_core::time::Timestamp;
use common::{Net, Node};

#[test]
fn devices_before_and_after_the_hub_are_discovered() {
    let mut net = Net::new(&["early-lamp", "late-lamp"]);
    net.connect_device(0);
    net.connect_hub();
    assert!(
        net.ready("early-lamp"),
        "retained presence replays to a Hub that starts later"
    );
    assert!(net.hub.device("late-lamp").is_none());
    net.connect_device(1);
    assert!(
        net.ready("late-lamp"),
        "live presence reaches a running Hub"
    );
    let d = net.hub.device("late-lamp").unwrap();
    assert_eq!(d.server_name, "axon/lamp/late-lamp");
    assert_eq!(d.meta.kind, "lamp");
    assert_eq!(d.kind, "lamp", "the kind the registry uses");
    assert_eq!(d.device_id, "late-lamp");
    assert_eq!(d.meta.room.as_deref(), Some("kitchen"));
    assert_eq!(d.tools.len(), 3);
    assert!(d.call_id_cache, "devices advertise the axon/call-id cache");
    assert_eq!(d.protocol_version.as_deref(), Some("2025-06-18"));
    let ready: Vec<_> = net
        .hub_events
        .iter()
        .filter(|e| matches!(e, ClientEvent::DeviceReady { .. }))
        .collect();
    assert_eq!(ready.len(), 2);
}

#[test]
fn online_message_follows_the_control_subscription_and_carries_meta() {
    let net = Net::started(&["k1"]);
    let sub = net
        .trace
        .iter()
        .position(|l| l == "SUB Device(0) $mcp-server/k1/axon/lamp/k1")
        .unwrap();
    let online = net
        .trace
        .iter()
        .position(|l| l == "PUB Device(0) $mcp-server/presence/k1/axon/lamp/k1")
        .unwrap();
    assert!(sub < online);
    let retained = net
        .retained("$mcp-server/presence/k1/axon/lamp/k1")
        .expect("online is retained");
    let v: serde_json::Value = serde_json::from_slice(&retained.payload).unwrap();
    assert_eq!(v["method"], "notifications/server/online");
    assert_eq!(v["params"]["server_name"], "axon/lamp/k1");
    assert!(v["params"]["description"].is_string());
    assert_eq!(v["params"]["meta"]["axon"]["device_id"], "k1");
    assert_eq!(v["params"]["meta"]["axon"]["kind"], "lamp");
    assert!(
        retained.payload.len() < 1024,
        "online message stays small (no tool schemas)"
    );
}

#[test]
fn both_sides_subscribe_before_initialize_and_before_answering() {
    let net = Net::started(&["k1"]);
    let hub = net.hub.client_id().to_string();
    let pos = |line: &str| {
        net.trace
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("missing {line}\n{:#?}", net.trace))
    };
    let rpc = topics::rpc(&hub, "k1", "axon/lamp/k1");
    let hub_rpc_sub = pos(&format!("SUB Hub {rpc}"));
    let hub_cap_sub = pos("SUB Hub $mcp-server/capability/k1/axon/lamp/k1");
    let initialize = pos("PUB Hub $mcp-server/k1/axon/lamp/k1");
    assert!(hub_rpc_sub < initialize && hub_cap_sub < initialize);
    let dev_rpc_sub = pos(&format!("SUB Device(0) {rpc}"));
    let dev_presence_sub = pos(&format!("SUB Device(0) $mcp-client/presence/{hub}"));
    let dev_cap_sub = pos(&format!("SUB Device(0) $mcp-client/capability/{hub}"));
    let answer = pos(&format!("PUB Device(0) {rpc}"));
    assert!(dev_rpc_sub < answer && dev_presence_sub < answer && dev_cap_sub < answer);
}

#[test]
fn every_publish_carries_component_type_and_sender_id() {
    let mut net = Net::started(&["k1"]);
    net.call("k1", "set_power", serde_json::json!({"on": true}))
        .unwrap();
    assert!(net.wire.len() > 4);
    for (from, p) in &net.wire {
        let (kind, id) = match from {
            Node::Hub => ("mcp-client", net.hub.client_id().to_string()),
            Node::Device(i) => ("mcp-server", net.devices[*i].server.device_id().to_string()),
            Node::Probe => continue,
        };
        let prop = |k: &str| {
            p.user_properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            prop("MCP-COMPONENT-TYPE").as_deref(),
            Some(kind),
            "{}",
            p.topic
        );
        assert_eq!(prop("MCP-MQTT-CLIENT-ID"), Some(id), "{}", p.topic);
    }
}

#[test]
fn a_paired_device_presents_its_broker_account_in_connect() {
    let mut config = common::lamp_config("k1");
    let account = axon_core::transport::link::Credentials::new("k1", "axd_secret");
    config.credentials = Some(account.clone());
    let server = McpServer::new(config).unwrap();
    assert!(server.connect_options().credentials == Some(account));
    // And the CONNECT on the wire carries them (user name and password flags set).
    let t0 = Timestamp::from_millis(0);
    let mut device = Endpoint::new(server, 1);
    while device.poll_event(t0).is_some() {}
    device.handle_transport_open(t0);
    let connect = device.poll_transmit(t0).unwrap();
    assert_eq!(connect[0], 0x10, "CONNECT first");
    let text = String::from_utf8_lossy(&connect);
    assert!(text.contains("axd_secret"), "{connect:?}");
}

#[test]
fn connect_options_follow_the_spec() {
    let net = Net::new(&["k1"]);
    let dev = net.devices[0].server.connect_options();
    assert!(dev.clean_start);
    assert_eq!(dev.session_expiry_s, 0);
    assert_eq!(dev.client_id, "k1");
    assert!(dev
        .user_properties
        .iter()
        .any(|(k, v)| k == "MCP-COMPONENT-TYPE" && v == "mcp-server"));
    let meta = dev
        .user_properties
        .iter()
        .find(|(k, _)| k == "MCP-META")
        .unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&meta.1)
        .unwrap()
        .is_object());
    let will = dev.will.unwrap();
    assert_eq!(will.topic, "$mcp-server/presence/k1/axon/lamp/k1");
    assert!(
        will.payload.is_empty() && will.retain,
        "server will: empty and retained"
    );
    assert_eq!(
        dev.credentials, None,
        "no account unless the config has one"
    );
    let hub = net.hub.connect_options();
    let will = hub.will.unwrap();
    assert_eq!(
        will.topic,
        format!("$mcp-client/presence/{}", net.hub.client_id())
    );
    assert!(String::from_utf8_lossy(&will.payload).contains("notifications/disconnected"));
    assert!(hub
        .user_properties
        .iter()
        .any(|(k, v)| k == "MCP-COMPONENT-TYPE" && v == "mcp-client"));
}

#[test]
fn rpc_subscriptions_use_no_local() {
    // The in-memory broker honours No Local; if either side forgot it, each would receive its
    // own requests/answers and the trace would show deliveries back to the sender. Check the
    // flags themselves through a fresh client's transmits.
    let mut net = Net::new(&["k1"]);
    net.connect_device(0);
    let now = net.now;
    net.hub.handle_connected(now, &Default::default());
    let presence_sub = net.hub.poll_transmit().unwrap();
    assert!(
        matches!(presence_sub, axon_core::transport::link::Transmit::Subscribe { ref subscriptions, .. }
        if subscriptions[0].filter == "$mcp-server/presence/+/axon/#")
    );
    net.hub_connected = true;
    // Feed the retained online message by hand and look at the subscription the hub makes.
    let online = net
        .retained("$mcp-server/presence/k1/axon/lamp/k1")
        .unwrap()
        .clone();
    net.hub.handle_message(now, &online);
    match net.hub.poll_transmit().unwrap() {
        axon_core::transport::link::Transmit::Subscribe { subscriptions, .. } => {
            let rpc = subscriptions
                .iter()
                .find(|s| s.filter.starts_with("$mcp-rpc/"))
                .unwrap();
            assert!(rpc.no_local);
        }
        other => panic!("expected a subscribe, got {other:?}"),
    }
    assert_eq!(
        net.hub.device("k1").unwrap().state,
        DeviceState::Initializing
    );
}

#[test]
fn broker_assigned_names_and_filters_are_used() {
    let mut net = Net::new(&["k1"]);
    let connack = axon_core::transport::link::Connack {
        user_properties: vec![("MCP-SERVER-NAME".into(), "site/a/lamp".into())],
    };
    let now = net.now;
    net.devices[0].connected = true;
    net.devices[0].server.handle_connected(now, &connack);
    net.settle();
    assert_eq!(net.devices[0].server.server_name(), "site/a/lamp");
    assert!(net
        .retained("$mcp-server/presence/k1/site/a/lamp")
        .is_some());
    // The default filter axon/# would not see it; the broker's filters would.
    let connack = axon_core::transport::link::Connack {
        user_properties: vec![("MCP-SERVER-NAME-FILTERS".into(), r#"["site/#"]"#.into())],
    };
    net.hub_connected = true;
    net.hub.handle_connected(now, &connack);
    net.settle();
    assert!(net.ready("k1"));
}

/// A device named outside the filters, by the broker's CONNACK (as a third-party name would be).
fn renamed_device(net: &mut Net, name: &str) {
    let connack = axon_core::transport::link::Connack {
        user_properties: vec![("MCP-SERVER-NAME".into(), name.into())],
    };
    let now = net.now;
    net.devices[0].connected = true;
    net.devices[0].server.handle_connected(now, &connack);
    net.settle();
}

#[test]
fn a_paired_server_name_joins_discovery_and_leaves_it_when_revoked() {
    let mut net = Net::new(&["k1"]);
    renamed_device(&mut net, "demo/lamp/k1");
    net.connect_hub();
    assert!(
        net.hub.device("k1").is_none(),
        "outside axon/# and not paired: invisible"
    );
    // Paired while connected: subscribed at once, the retained presence replays.
    net.hub.add_paired_server_name("demo/lamp/k1").unwrap();
    net.settle();
    assert!(net.ready("k1"));
    assert!(
        net.hub.add_paired_server_name("demo/+/k1").is_err(),
        "a pairing names one device, never a filter"
    );
    // Revoked: no presence of its will reach the Hub any more, so the Hub says it left.
    net.hub.remove_paired_server_name("demo/lamp/k1");
    net.settle();
    assert_eq!(net.hub.device("k1").unwrap().state, DeviceState::Offline);
    assert!(net
        .trace
        .iter()
        .any(|l| l.starts_with("UNSUB Hub") && l.contains("$mcp-server/presence/+/demo/lamp/k1")));
    assert!(net.hub_events.iter().any(
        |e| matches!(e, ClientEvent::DeviceOffline { device_id } if device_id.as_str() == "k1")
    ));
}

#[test]
fn a_paired_name_is_subscribed_on_every_connection_and_kept_when_the_filters_cover_it() {
    let mut net = Net::new(&["k1"]);
    renamed_device(&mut net, "demo/lamp/k1");
    net.hub.add_paired_server_name("demo/lamp/k1").unwrap();
    // Paired before the connection: the first SUBSCRIBE carries it, beside the filters.
    net.connect_hub();
    assert!(net.ready("k1"));
    // The broker's filters cover the name as well: revoking the pairing leaves the device.
    net.drop_hub();
    let connack = axon_core::transport::link::Connack {
        user_properties: vec![("MCP-SERVER-NAME-FILTERS".into(), r#"["demo/#"]"#.into())],
    };
    let now = net.now;
    net.hub_connected = true;
    net.hub.handle_connected(now, &connack);
    net.settle();
    assert!(net.ready("k1"));
    net.hub.remove_paired_server_name("demo/lamp/k1");
    net.settle();
    assert!(net.ready("k1"), "still inside the filters in force");
}

#[test]
fn a_site_that_comes_online_at_once_is_initialized_a_window_at_a_time() {
    // 300 retained online messages reach the Hub in one burst when it connects.
    let ids: Vec<String> = (0..300).map(|i| format!("lamp-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut net = Net::with_window(&ids, 16);
    for i in 0..net.devices.len() {
        net.connect_device(i);
    }
    // One device goes before the Hub ever gets to it: its place goes to the next one.
    net.leave_device(7);
    net.connect_hub();
    assert_eq!(
        net.most_initializing, 16,
        "never more than the window initializing, and the window used"
    );
    assert_eq!(net.hub.initializations(), (0, 0), "nothing left waiting");
    assert!(ids
        .iter()
        .enumerate()
        .all(|(i, id)| i == 7 || net.ready(id)));
    assert!(!net.ready("lamp-7"));
    // Initializations went in the order the Hub heard the devices' online messages.
    let lamp = |s: &str| s.split('/').next().map(str::to_string);
    let initialized: Vec<String> = net
        .trace
        .iter()
        .filter_map(|l| l.strip_prefix("SUB Hub $mcp-server/capability/"))
        .filter_map(lamp)
        .collect();
    let heard: Vec<String> = net
        .delivered
        .iter()
        .filter(|(node, _)| *node == common::Node::Hub)
        .filter_map(|(_, t)| t.strip_prefix("$mcp-server/presence/"))
        .filter_map(lamp)
        .filter(|id| id != "lamp-7")
        .collect();
    assert_eq!(initialized.len(), 299);
    assert_eq!(initialized, heard);
}
