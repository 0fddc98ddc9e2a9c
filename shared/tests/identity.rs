//! Stable identity for devices Axon did not build (docs/protocol.md §2.5): the Hub's client
//! against hand-driven servers that behave like EMQX's SDKs (no `meta.axon`, a random
//! server-id per connection), including a reboot under a new server-id and the old
//! instance's late tombstone.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashSet;

use axon_core::protocol::jsonrpc::{self, Message};
use axon_core::protocol::mcp::client::{
    ClientConfig, ClientEvent, DeviceInfo, DeviceState, McpClient, RequestHandle,
};
use axon_core::time::Timestamp;
use axon_core::transport::link::{Connack, Inbound, SubscribeToken, Transmit};
use serde_json::{json, Value};

const CID: &str = "axon-hub.home.00000001";

/// The Hub's client with the broker and the servers played by hand: every request a server
/// receives is answered by [`Site::serve`], and SUBACKs come at once unless `hold_subacks`.
struct Site {
    now: Timestamp,
    hub: McpClient,
    events: Vec<ClientEvent>,
    /// (topic, payload) of every publish the Hub sent.
    sent: Vec<(String, Value)>,
    answered: usize,
    unsubscribed: Vec<String>,
    hold_subacks: bool,
    held: Vec<SubscribeToken>,
    /// Servers that answer nothing (a call in flight stays in flight).
    silent: HashSet<String>,
}

impl Site {
    fn new() -> Site {
        let mut config = ClientConfig::new(CID, 7);
        config.server_name_filters = vec!["axon/#".into(), "demo/#".into()];
        let mut site = Site {
            now: Timestamp::from_millis(1_000),
            hub: McpClient::new(config),
            events: Vec::new(),
            sent: Vec::new(),
            answered: 0,
            unsubscribed: Vec::new(),
            hold_subacks: false,
            held: Vec::new(),
            silent: HashSet::new(),
        };
        site.hub.handle_connected(site.now, &Connack::default());
        site.settle();
        site
    }

    fn deliver(&mut self, topic: &str, payload: Vec<u8>) {
        let msg = Inbound {
            topic: topic.into(),
            payload,
            retain: false,
            user_properties: Vec::new(),
        };
        self.hub.handle_message(self.now, &msg);
        self.settle();
    }

    /// Moves the Hub's transmits and the servers' answers until nothing is left.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.hub.poll_transmit() {
                busy = true;
                match t {
                    Transmit::Publish(p) => self
                        .sent
                        .push((p.topic, serde_json::from_slice(&p.payload).unwrap())),
                    Transmit::Subscribe { token, .. } if self.hold_subacks => self.held.push(token),
                    Transmit::Subscribe { token, .. } => {
                        self.hub.handle_subscribed(self.now, token)
                    }
                    Transmit::Unsubscribe { filters } => self.unsubscribed.extend(filters),
                }
            }
            while let Some(e) = self.hub.poll_event() {
                self.events.push(e);
            }
            busy |= self.serve();
            if !busy {
                break;
            }
        }
    }

    /// Answers, as the server it was sent to, every request the Hub sent since the last call:
    /// `initialize`, `tools/list` (one tool, `power`) and `tools/call` (which says who served it).
    fn serve(&mut self) -> bool {
        let new: Vec<(String, Value)> = self.sent[self.answered..].to_vec();
        self.answered = self.sent.len();
        let mut busy = false;
        for (topic, msg) in new {
            let (Some(method), Some(id)) = (msg["method"].as_str(), msg.get("id")) else {
                continue;
            };
            // $mcp-server/{sid}/{name} (initialize) or $mcp-rpc/{cid}/{sid}/{name}.
            let (sid, name) = match topic.strip_prefix("$mcp-server/") {
                Some(rest) => rest.split_once('/').unwrap(),
                None => topic
                    .strip_prefix(&format!("$mcp-rpc/{CID}/"))
                    .unwrap()
                    .split_once('/')
                    .unwrap(),
            };
            if self.silent.contains(sid) {
                continue;
            }
            let result = match method {
                "initialize" => {
                    json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "emqx-sdk-lamp", "version": "1"}})
                }
                "tools/list" => {
                    json!({"tools": [{"name": "power", "inputSchema": {"type": "object"}}]})
                }
                "tools/call" => json!({"content": [], "structuredContent": {"served_by": sid}}),
                _ => json!({}),
            };
            let answer = Message::result(jsonrpc_id(id), result).to_bytes();
            let rpc = format!("$mcp-rpc/{CID}/{sid}/{name}");
            let msg = Inbound {
                topic: rpc,
                payload: answer,
                retain: false,
                user_properties: Vec::new(),
            };
            self.hub.handle_message(self.now, &msg);
            busy = true;
        }
        busy
    }

    /// A server's retained online message, with `axon` as its `meta.axon` when given.
    fn online(&mut self, server_id: &str, server_name: &str, axon: Option<Value>) {
        let mut params = json!({"server_name": server_name, "description": "a lamp"});
        if let Some(a) = axon {
            params["meta"] = json!({ "axon": a });
        }
        let msg = Message::notification("notifications/server/online", Some(params));
        self.deliver(
            &format!("$mcp-server/presence/{server_id}/{server_name}"),
            msg.to_bytes(),
        );
    }

    /// An empty presence: a tombstone or a will.
    fn tombstone(&mut self, server_id: &str, server_name: &str) {
        self.deliver(
            &format!("$mcp-server/presence/{server_id}/{server_name}"),
            Vec::new(),
        );
    }

    fn call(&mut self, address: &str) -> Result<RequestHandle, jsonrpc::ErrorObject> {
        let h = self
            .hub
            .call_tool(self.now, address, "power", json!({}), Default::default());
        self.settle();
        h
    }

    /// The result of a call that was answered.
    fn outcome(&self, h: RequestHandle) -> Option<&Result<Value, jsonrpc::ErrorObject>> {
        self.events.iter().find_map(|e| match e {
            ClientEvent::Response { handle, outcome } if *handle == h => Some(outcome),
            _ => None,
        })
    }

    /// Calls `power` on `address` and returns which server-id answered.
    fn served_by(&mut self, address: &str) -> String {
        let h = self.call(address).unwrap();
        let r = self.outcome(h).unwrap().as_ref().unwrap();
        r["structuredContent"]["served_by"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn device(&self, id: &str) -> &DeviceInfo {
        self.hub
            .device(id)
            .unwrap_or_else(|| panic!("no device {id}: {:?}", self.ids()))
    }

    fn ids(&self) -> Vec<String> {
        self.hub
            .devices()
            .map(|d| d.device_id.to_string())
            .collect()
    }

    fn offline_events(&self, id: &str) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, ClientEvent::DeviceOffline { device_id } if device_id == id))
            .count()
    }
}

fn jsonrpc_id(v: &Value) -> jsonrpc::RequestId {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn an_axon_device_is_keyed_by_the_id_in_its_meta() {
    let mut site = Site::new();
    site.online(
        "kitchen-1",
        "axon/lamp/kitchen-1",
        Some(json!({"device_id": "kitchen-1", "kind": "lamp"})),
    );
    let d = site.device("kitchen-1");
    assert_eq!(d.server_id, "kitchen-1");
    assert_eq!(d.kind, "lamp");
    assert_eq!(d.state, DeviceState::Ready);
    // The id in meta wins over the name: a server named otherwise is still that device.
    site.online(
        "sdk-4f2a",
        "vendor/lamps/anything",
        Some(json!({"device_id": "hall-2"})),
    );
    assert_eq!(site.ids(), vec!["hall-2", "kitchen-1"]);
    assert_eq!(
        site.device("hall-2").kind,
        "lamps",
        "no kind in meta: from the name"
    );
}

#[test]
fn a_third_party_lamp_is_named_by_its_server_name_not_its_server_id() {
    let mut site = Site::new();
    site.online("a81f03c2", "axon/lamp/ref-lamp-1", None);
    assert_eq!(site.ids(), vec!["ref-lamp-1"], "never the random server-id");
    let d = site.device("ref-lamp-1");
    assert_eq!(d.kind, "lamp", "the kind comes from the name");
    assert_eq!(d.server_id, "a81f03c2");
    assert_eq!(d.state, DeviceState::Ready);
    assert_eq!(site.served_by("ref-lamp-1"), "a81f03c2");
    assert_eq!(
        site.served_by("axon/lamp/ref-lamp-1"),
        "a81f03c2",
        "by full name"
    );
    assert!(
        site.hub.resolve("a81f03c2").is_err(),
        "the server-id is not an address"
    );
}

#[test]
fn a_name_outside_axon_is_mapped_and_reached_by_its_last_level() {
    let mut site = Site::new();
    site.online("sdk-1", "demo/counter/Demo_7", None);
    assert_eq!(site.ids(), vec!["demo-counter-demo-7"]);
    assert_eq!(site.device("demo-counter-demo-7").kind, "counter");
    assert_eq!(site.served_by("Demo_7"), "sdk-1", "unique last level");
    assert_eq!(site.served_by("demo/counter/Demo_7"), "sdk-1");
    assert_eq!(site.served_by("demo-counter-demo-7"), "sdk-1");
    let e = site.call("demo-7").unwrap_err();
    assert_eq!(e.code, -32010, "an unknown address: {e:?}");
    assert!(e.message.contains("unknown device demo-7"), "{}", e.message);
}

#[test]
fn an_ambiguous_last_level_lists_the_candidates() {
    let mut site = Site::new();
    site.online("s1", "demo/lamp/porch", None);
    site.online("s2", "demo/plug/porch", None);
    let e = site.call("porch").unwrap_err();
    assert_eq!(e.code, -32602);
    assert!(
        e.message.contains("demo-lamp-porch (demo/lamp/porch)")
            && e.message.contains("demo-plug-porch (demo/plug/porch)"),
        "{}",
        e.message
    );
    let candidates = &e.data.as_ref().unwrap()["candidates"];
    assert_eq!(candidates.as_array().unwrap().len(), 2, "{candidates}");
    // The full name or the id still reaches each one.
    assert_eq!(site.served_by("demo/plug/porch"), "s2");
    assert_eq!(site.served_by("demo-lamp-porch"), "s1");
}

#[test]
fn a_device_id_wins_over_another_devices_last_level() {
    let mut site = Site::new();
    site.online(
        "porch",
        "axon/lamp/porch",
        Some(json!({"device_id": "porch"})),
    );
    site.online("s2", "demo/plug/porch", None);
    assert_eq!(site.served_by("porch"), "porch");
}

#[test]
fn two_names_that_map_to_one_id_stay_two_devices() {
    let mut site = Site::new();
    site.online("s1", "axon/lamp/x", None);
    site.online("s2", "axon/plug/x", None);
    let ids = site.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"x".to_string()), "the first one seen keeps x");
    let other = ids.iter().find(|i| *i != "x").unwrap();
    assert!(other.starts_with("axon-plug-x-"), "{other}");
    assert_eq!(site.served_by(other), "s2");
    assert_eq!(site.served_by("axon/plug/x"), "s2");
    // Seen again (a reconnect of either), each keeps its id.
    site.online("s3", "axon/plug/x", None);
    site.online("s4", "axon/lamp/x", None);
    assert_eq!(site.ids(), ids);
}

#[test]
fn a_reboot_with_a_new_server_id_is_the_same_device_at_the_new_instance() {
    let mut site = Site::new();
    site.online("sdk-old", "axon/lamp/ref-lamp-1", None);
    site.silent.insert("sdk-old".into());
    let held = site.call("ref-lamp-1").unwrap();
    assert!(site.outcome(held).is_none(), "in flight");

    // The lamp reboots: EMQX's SDK connects under a fresh random server-id.
    site.online("sdk-new", "axon/lamp/ref-lamp-1", None);
    assert_eq!(site.ids(), vec!["ref-lamp-1"], "one device, same id");
    let d = site.device("ref-lamp-1");
    assert_eq!(d.server_id, "sdk-new");
    assert_eq!(d.state, DeviceState::Ready);
    let e = site.outcome(held).unwrap().as_ref().unwrap_err();
    assert_eq!(
        e.code, -32010,
        "what was in flight to the old instance fails at once"
    );
    assert_eq!(
        site.offline_events("ref-lamp-1"),
        0,
        "it never went offline"
    );
    // The old session is ended and no longer listened to.
    assert!(site.sent.iter().any(|(t, m)| t
        == &format!("$mcp-rpc/{CID}/sdk-old/axon/lamp/ref-lamp-1")
        && m["method"] == "notifications/disconnected"));
    assert!(site
        .unsubscribed
        .contains(&format!("$mcp-rpc/{CID}/sdk-old/axon/lamp/ref-lamp-1")));
    assert_eq!(site.served_by("ref-lamp-1"), "sdk-new");
}

#[test]
fn the_old_instances_late_tombstone_does_not_take_the_new_one_offline() {
    let mut site = Site::new();
    site.online("sdk-old", "axon/lamp/ref-lamp-1", None);
    site.online("sdk-new", "axon/lamp/ref-lamp-1", None);
    // The broker notices the old connection is gone only now and fires its will.
    site.tombstone("sdk-old", "axon/lamp/ref-lamp-1");
    assert_eq!(site.device("ref-lamp-1").state, DeviceState::Ready);
    assert_eq!(site.offline_events("ref-lamp-1"), 0);
    // A late goodbye from the old instance on its RPC topic is ignored too.
    let bye = Message::notification("notifications/disconnected", None).to_bytes();
    site.deliver(&format!("$mcp-rpc/{CID}/sdk-old/axon/lamp/ref-lamp-1"), bye);
    assert_eq!(site.device("ref-lamp-1").state, DeviceState::Ready);
    assert_eq!(site.served_by("ref-lamp-1"), "sdk-new");
    // The current instance's tombstone does take it offline.
    site.tombstone("sdk-new", "axon/lamp/ref-lamp-1");
    assert_eq!(site.device("ref-lamp-1").state, DeviceState::Offline);
    assert_eq!(site.offline_events("ref-lamp-1"), 1);
}

#[test]
fn a_device_back_after_going_offline_keeps_its_id() {
    let mut site = Site::new();
    site.online("sdk-1", "axon/lamp/ref-lamp-1", None);
    site.tombstone("sdk-1", "axon/lamp/ref-lamp-1");
    assert_eq!(site.device("ref-lamp-1").state, DeviceState::Offline);
    site.online("sdk-2", "axon/lamp/ref-lamp-1", None);
    assert_eq!(site.ids(), vec!["ref-lamp-1"]);
    assert_eq!(site.served_by("ref-lamp-1"), "sdk-2");
}

#[test]
fn a_late_suback_of_the_old_instance_does_not_initialize_the_new_one_early() {
    let mut site = Site::new();
    site.hold_subacks = true;
    site.online("sdk-old", "axon/lamp/ref-lamp-1", None);
    site.online("sdk-new", "axon/lamp/ref-lamp-1", None);
    let held = std::mem::take(&mut site.held);
    assert_eq!(held.len(), 2);
    // The old instance's SUBACK arrives: nothing may go to the new instance before its own.
    site.hub.handle_subscribed(site.now, held[0]);
    site.settle();
    assert!(
        !site.sent.iter().any(|(_, m)| m["method"] == "initialize"),
        "{:?}",
        site.sent
    );
    site.hub.handle_subscribed(site.now, held[1]);
    site.settle();
    let inits: Vec<&String> = site
        .sent
        .iter()
        .filter(|(_, m)| m["method"] == "initialize")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(inits, vec!["$mcp-server/sdk-new/axon/lamp/ref-lamp-1"]);
    assert_eq!(site.device("ref-lamp-1").state, DeviceState::Ready);
}

#[test]
fn a_hub_that_starts_again_gives_every_device_the_same_id() {
    let names = [
        ("s1", "axon/lamp/ref-lamp-1"),
        ("s2", "demo/counter/demo-7"),
        (
            "s3",
            "vendor-with-a-long-name/building-1/floor-2/room-31/lamp-4",
        ),
    ];
    let ids = |order: &[usize]| {
        let mut site = Site::new();
        for &i in order {
            site.online(names[i].0, names[i].1, None);
        }
        site.ids()
    };
    assert_eq!(ids(&[0, 1, 2]), ids(&[2, 1, 0]));
}
