#![allow(clippy::unwrap_used)] // tests fail loudly by design

use serde_json::{json, Value};

use super::*;
use crate::protocol::mcp::topics;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn json_of(b: &Batch) -> Value {
    serde_json::from_slice(&b.payload()).unwrap()
}

#[test]
fn commands_have_the_shapes_in_mosquittos_dynsec_docs() {
    let b = provision_device("b1", &id("lamp-1"), Secret::new("pw"), Some("home")).unwrap();
    let v = json_of(&b);
    let cmds = v["commands"].as_array().unwrap();
    assert_eq!(
        cmds[0],
        json!({"command": "setDefaultACLAccess", "correlationData": "b1/0", "acls": [
            {"acltype": "publishClientSend", "allow": false},
            {"acltype": "publishClientReceive", "allow": false},
            {"acltype": "subscribe", "allow": false},
            {"acltype": "unsubscribe", "allow": true}]})
    );
    let create = cmds
        .iter()
        .find(|c| c["command"] == "createClient")
        .unwrap();
    assert_eq!(
        create,
        &json!({"command": "createClient", "correlationData": create["correlationData"],
            "username": "lamp-1", "password": "pw", "clientid": "lamp-1",
            "roles": [{"rolename": "device-lamp-1", "priority": 0}]})
    );
    let role = cmds
        .iter()
        .find(|c| c["command"] == "createRole" && c["rolename"] == "device-lamp-1")
        .unwrap();
    assert_eq!(
        role["acls"][0],
        json!({"acltype": "subscribePattern", "topic": "$mcp-server/lamp-1/#", "priority": 0, "allow": true})
    );
    let add = cmds.iter().find(|c| c["command"] == "addRoleACL").unwrap();
    assert_eq!(add["rolename"], "site-home");
    assert_eq!(add["acltype"], "publishClientReceive");
    assert_eq!(add["topic"], "$mcp-server/presence/lamp-1/#");
    assert_eq!(add["allow"], true);
    let rotate = cmds
        .iter()
        .find(|c| c["command"] == "setClientPassword")
        .unwrap();
    assert_eq!(rotate["username"], "lamp-1");
    assert_eq!(rotate["password"], "pw");

    let r = revoke_device("b2", &id("lamp-1"), Some("home")).unwrap();
    let v = json_of(&r);
    let cmds = v["commands"].as_array().unwrap();
    assert_eq!(
        cmds[0],
        json!({"command": "removeRoleACL", "correlationData": "b2/0", "rolename": "site-home",
            "acltype": "publishClientReceive", "topic": "$mcp-server/presence/lamp-1/#"})
    );
    let n = cmds.len();
    assert_eq!(
        cmds[n - 2],
        json!({"command": "deleteClient", "username": "lamp-1", "correlationData": format!("b2/{}", n - 2)})
    );
    assert_eq!(cmds[n - 1]["command"], "deleteRole");
    assert_eq!(cmds[n - 1]["rolename"], "device-lamp-1");
}

#[test]
fn the_hubs_account_is_not_pinned_to_a_client_id() {
    let b = provision_hub("h", "home", Secret::new("pw"), &[]).unwrap();
    let create = b
        .commands()
        .find(|c| matches!(c, Command::CreateClient { .. }))
        .unwrap();
    match create {
        Command::CreateClient {
            username,
            clientid,
            roles,
            ..
        } => {
            assert_eq!(username, "hub-home");
            assert_eq!(clientid, &None);
            assert_eq!(roles[0].rolename, "site-home");
        }
        _ => unreachable!(),
    }
    assert!(!String::from_utf8(b.payload()).unwrap().contains("clientid"));
}

#[test]
fn a_hubs_filters_reach_a_site_role_that_already_exists() {
    let b = provision_hub("h", "home", Secret::new("pw"), &["demo/#".into()]).unwrap();
    // createRole is answered "Role already exists" when a device came first; the filter must
    // still get in, through addRoleACL.
    assert!(b.commands().any(|c| matches!(c,
        Command::AddRoleAcl { rolename, acl }
            if rolename == "site-home"
                && acl.acltype == AclType::SubscribePattern
                && acl.topic == "$mcp-server/presence/+/demo/#")));
}

#[test]
fn requests_round_trip_through_serde() {
    let b = provision_hub("h", "home", Secret::new("pw"), &["lab/#".into()]).unwrap();
    let r = b.requests();
    let back: Requests = serde_json::from_slice(&b.payload()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn passwords_never_show_in_debug_or_display() {
    let b = provision_device("b", &id("d1"), Secret::new("hunter2-sekrit"), Some("home")).unwrap();
    assert!(!format!("{b:?}").contains("hunter2"));
    assert!(!format!("{:?}", b.requests()).contains("hunter2"));
    assert_eq!(Secret::new("x").to_string(), "***");
    // The payload does carry it: it is what dynsec needs.
    assert!(String::from_utf8(b.payload())
        .unwrap()
        .contains("hunter2-sekrit"));
}

#[test]
fn check_accepts_already_done_and_refuses_real_errors() {
    let b = provision_hub("x1", "home", Secret::new("pw"), &[]).unwrap();
    let n = b.commands().count();
    let answer = |errors: &[(usize, &str)]| {
        let responses: Vec<Value> = b
            .commands()
            .enumerate()
            .map(|(i, c)| {
                let mut r = json!({"command": c.name(), "correlationData": format!("x1/{i}")});
                if let Some((_, e)) = errors.iter().find(|(j, _)| *j == i) {
                    r["error"] = json!(e);
                }
                r
            })
            .collect();
        serde_json::to_vec(&json!({ "responses": responses })).unwrap()
    };
    assert_eq!(b.check(&answer(&[])), Ok(Some(())));
    // A second run finds the roles and the client already there: still done.
    assert_eq!(
        b.check(&answer(&[
            (1, "Role already exists"),
            (n - 2, "Client already exists")
        ])),
        Ok(Some(()))
    );
    assert_eq!(
        b.check(&answer(&[(n - 1, "Client not found")])),
        Err(BrokerAdminError::Refused {
            command: "setClientPassword".into(),
            error: "Client not found".into()
        })
    );
    // Another admin's answer on the shared response topic is not ours.
    let other = br#"{"responses":[{"command":"createClient","correlationData":"zz/0"}]}"#;
    assert_eq!(b.check(other), Ok(None));
    // An answer that leaves a command out is an error, not a success.
    let short = br#"{"responses":[{"command":"setDefaultACLAccess","correlationData":"x1/0"}]}"#;
    assert!(matches!(
        b.check(short),
        Err(BrokerAdminError::BadResponse(_))
    ));
    assert!(matches!(
        b.check(b"not json"),
        Err(BrokerAdminError::BadResponse(_))
    ));
}

#[test]
fn reserved_and_invalid_names_are_refused() {
    assert_eq!(
        provision_device("b", &id("hub-home"), Secret::new("p"), None),
        Err(BrokerAdminError::ReservedDeviceId("hub-home".into()))
    );
    assert!(provision_device("b", &id("axon-admin"), Secret::new("p"), None).is_err());
    assert_eq!(
        provision_hub("b", "Home/1", Secret::new("p"), &[]),
        Err(BrokerAdminError::Site("Home/1".into()))
    );
    assert!(provision_device("b", &id("d1"), Secret::new("p"), Some("a+b")).is_err());
    // A malformed filter would make dynsec refuse the whole role entry ("Invalid ACL topic").
    for bad in ["demo/#/x", "", "a//b", "a+/b"] {
        assert_eq!(
            provision_hub("b", "home", Secret::new("p"), &[bad.to_string()]),
            Err(BrokerAdminError::ServerNameFilter(bad.into())),
            "{bad:?}"
        );
    }
    assert!(provision_hub("b", "home", Secret::new("p"), &["demo/+/#".into()]).is_ok());
}

#[test]
fn filter_cover_follows_dynsec_subscribe_pattern() {
    assert!(filter_covers(
        "$mcp-server/d1/#",
        "$mcp-server/d1/axon/lamp/d1"
    ));
    assert!(filter_covers(
        "$mcp-rpc/+/d1/#",
        "$mcp-rpc/hub.x/d1/axon/lamp/d1"
    ));
    assert!(filter_covers(
        "$mcp-server/presence/+/axon/#",
        "$mcp-server/presence/+/axon/#"
    ));
    assert!(filter_covers("axon/telemetry/+", "axon/telemetry/+"));
    // A wildcard subscription is only covered by a wildcard entry.
    assert!(!filter_covers("$mcp-rpc/x/d1/#", "$mcp-rpc/+/d1/#"));
    assert!(!filter_covers("axon/telemetry/+", "axon/telemetry/#"));
    assert!(!filter_covers("#", "$mcp-server/d1/x"));
    assert!(!filter_covers("$mcp-server/d1/#", "$mcp-server/d2/x"));
}

/// Every topic the device code builds (topics.rs, used by server.rs) for device `d` and client
/// `c`, with what the device does with it.
fn device_traffic(d: &str, c: &str) -> Vec<(AclType, String)> {
    use AclType::*;
    let name = topics::axon_server_name("lamp", &id(d));
    vec![
        (SubscribePattern, topics::control(d, &name)),
        (PublishClientReceive, topics::control(d, &name)),
        (PublishClientSend, topics::server_presence(d, &name)),
        (PublishClientSend, topics::server_capability(d, &name)),
        (SubscribePattern, topics::rpc(c, d, &name)),
        (PublishClientReceive, topics::rpc(c, d, &name)),
        (PublishClientSend, topics::rpc(c, d, &name)),
        (SubscribePattern, topics::client_presence(c)),
        (PublishClientReceive, topics::client_presence(c)),
        (SubscribePattern, topics::client_capability(c)),
        (PublishClientReceive, topics::client_capability(c)),
        (PublishClientSend, topics::telemetry(d)),
        (PublishClientSend, topics::telemetry_latest(d)),
        (PublishClientSend, topics::events(d)),
        (SubscribePattern, format!("$webrtc/{d}")),
        (PublishClientReceive, format!("$webrtc/{d}")),
        (PublishClientSend, format!("$webrtc/{d}/multimedia_proxy")),
        (SubscribePattern, format!("$message/{d}")),
        (PublishClientReceive, format!("$message/{d}")),
        (PublishClientSend, format!("$message/{d}/multimedia_proxy")),
    ]
}

#[test]
fn a_device_may_do_what_its_code_does_and_nothing_for_another_device() {
    let acls = device_acls(&id("d1"));
    for (kind, topic) in device_traffic("d1", "axon-hub.home.ab12") {
        assert!(allows(&acls, kind, &topic), "d1 {kind:?} {topic}");
    }
    // Everything d2 does, d1 may not, except the client topics every device shares.
    for (kind, topic) in device_traffic("d2", "axon-hub.home.ab12") {
        let shared = topic.starts_with("$mcp-client/");
        assert_eq!(allows(&acls, kind, &topic), shared, "d1 {kind:?} {topic}");
    }
    // Nor can it act as a client: send initialize to a device or a client's presence.
    assert!(!allows(
        &acls,
        AclType::PublishClientSend,
        "$mcp-client/presence/x"
    ));
    assert!(!allows(
        &acls,
        AclType::SubscribePattern,
        "$mcp-server/presence/+/axon/#"
    ));
    assert!(!allows(
        &acls,
        AclType::SubscribePattern,
        "axon/telemetry/+"
    ));
    assert!(!allows(&acls, AclType::PublishClientSend, CONTROL_TOPIC));
}

#[test]
fn a_site_role_reaches_its_devices_only() {
    let mut site = site_base_acls(&[DEFAULT_SERVER_NAME_FILTER.into()]);
    site.extend(site_device_acls(&id("d1")));
    let hub = "axon-hub.home.ab12";
    let name = topics::axon_server_name("lamp", &id("d1"));
    use AclType::*;
    // What the Hub does (client.rs, hub.rs): wildcard subscriptions, per-device ones, sends.
    for (kind, topic) in [
        (SubscribePattern, topics::server_presence_filter("axon/#")),
        (SubscribePattern, "axon/telemetry/+".to_string()),
        (SubscribePattern, "axon/telemetry/+/latest".to_string()),
        (SubscribePattern, "axon/events/+".to_string()),
        (PublishClientSend, topics::client_presence(hub)),
        (PublishClientReceive, topics::server_presence("d1", &name)),
        (SubscribePattern, topics::server_capability("d1", &name)),
        (PublishClientReceive, topics::server_capability("d1", &name)),
        (SubscribePattern, topics::rpc(hub, "d1", &name)),
        (PublishClientReceive, topics::rpc(hub, "d1", &name)),
        (PublishClientSend, topics::rpc(hub, "d1", &name)),
        (PublishClientSend, topics::control("d1", &name)),
        (PublishClientReceive, topics::telemetry("d1")),
        (PublishClientReceive, topics::telemetry_latest("d1")),
        (PublishClientReceive, topics::events("d1")),
        (PublishClientSend, CONTROL_TOPIC.to_string()),
        (SubscribePattern, RESPONSE_TOPIC.to_string()),
        (PublishClientReceive, RESPONSE_TOPIC.to_string()),
    ] {
        assert!(allows(&site, kind, &topic), "{kind:?} {topic}");
    }
    let name2 = topics::axon_server_name("lamp", &id("d2"));
    for (kind, topic) in [
        (PublishClientReceive, topics::server_presence("d2", &name2)),
        (SubscribePattern, topics::server_capability("d2", &name2)),
        (PublishClientReceive, topics::rpc(hub, "d2", &name2)),
        (PublishClientSend, topics::rpc(hub, "d2", &name2)),
        (PublishClientSend, topics::control("d2", &name2)),
        (PublishClientReceive, topics::telemetry("d2")),
        (PublishClientReceive, topics::events("d2")),
        (PublishClientSend, topics::telemetry("d1")),
        (PublishClientSend, topics::server_presence("d1", &name)),
    ] {
        assert!(!allows(&site, kind, &topic), "{kind:?} {topic}");
    }
}

#[test]
fn the_owner_reaches_every_tree_including_dollar_topics() {
    let o = owner_acls();
    for t in [
        "axon/telemetry/d1",
        "$mcp-server/presence/d1/axon/lamp/d1",
        "$mcp-rpc/c/d1/axon/lamp/d1",
        "$mcp-client/presence/c",
    ] {
        assert!(allows(&o, AclType::PublishClientSend, t), "{t}");
        assert!(allows(&o, AclType::PublishClientReceive, t), "{t}");
    }
    assert!(allows(
        &o,
        AclType::SubscribePattern,
        "$mcp-server/presence/+/axon/#"
    ));
}

#[test]
fn prepare_config_gives_the_admin_the_owner_role_and_default_deny() {
    // The shape `mosquitto_ctrl dynsec init` writes (2.0.11), trimmed.
    let init = r#"{"clients":[{"username":"axon-admin","password":"h","salt":"s","iterations":101,
        "roles":[{"rolename":"admin"}]}],
        "roles":[{"rolename":"admin","acls":[]}],
        "defaultACLAccess":{"publishClientSend":false,"publishClientReceive":true,"subscribe":false,"unsubscribe":true}}"#;
    let out = prepare_config(init).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["defaultACLAccess"],
        json!({"publishClientSend": false, "publishClientReceive": false, "subscribe": false, "unsubscribe": true})
    );
    assert_eq!(
        v["clients"][0]["roles"],
        json!([{"rolename": "admin"}, {"rolename": "axon-owner"}])
    );
    let owner = v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rolename"] == OWNER_ROLE)
        .unwrap();
    let acls: Vec<Acl> = serde_json::from_value(owner["acls"].clone()).unwrap();
    assert_eq!(acls, owner_acls());
    // The password hash is left alone, and running it twice changes nothing.
    assert_eq!(v["clients"][0]["password"], "h");
    assert_eq!(prepare_config(&out).unwrap(), out);
    assert!(prepare_config(r#"{"clients":[{"username":"someone"}]}"#).is_err());
}

#[test]
fn a_paired_server_name_outside_the_filters_becomes_a_site_subscription() {
    // The Hub's site role grows one subscribe entry per paired device named outside its
    // filters, exactly the filter the Hub's client subscribes to, and loses it on revoke.
    let mut b = Batch::new("b");
    b.site_server_name("home", "demo/light/ts-light-1", false)
        .unwrap();
    let acl = match b.commands().next() {
        Some(Command::AddRoleAcl { rolename, acl }) => {
            assert_eq!(rolename, "site-home");
            acl.clone()
        }
        other => panic!("{other:?}"),
    };
    let filter = topics::server_presence_filter("demo/light/ts-light-1");
    assert!(allows(
        std::slice::from_ref(&acl),
        AclType::SubscribePattern,
        &filter
    ));
    assert!(!allows(
        &[acl],
        AclType::SubscribePattern,
        &topics::server_presence_filter("demo/#")
    ));
    let mut r = Batch::new("r");
    r.site_server_name("home", "demo/light/ts-light-1", true)
        .unwrap();
    assert!(matches!(
        r.commands().next(),
        Some(Command::RemoveRoleAcl { topic, .. }) if *topic == filter
    ));
    assert!(b.site_server_name("home", "demo/#", false).is_err());
    assert!(b.site_server_name("bad site", "demo/x", false).is_err());
}

#[test]
fn the_media_endpoint_answers_every_device_and_can_offer_for_none() {
    use AclType::*;
    let acls = media_acls();
    for d in ["d1", "kitchen-speaker"] {
        for (kind, topic) in [
            (SubscribePattern, "$webrtc/+/multimedia_proxy".to_string()),
            (SubscribePattern, "$message/+/multimedia_proxy".to_string()),
            (
                PublishClientReceive,
                format!("$webrtc/{d}/multimedia_proxy"),
            ),
            (
                PublishClientReceive,
                format!("$message/{d}/multimedia_proxy"),
            ),
            (PublishClientSend, format!("$webrtc/{d}")),
            (PublishClientSend, format!("$message/{d}")),
        ] {
            assert!(allows(&acls, kind, &topic), "media {kind:?} {topic}");
        }
        // It cannot speak as a device (offer, candidates, chat) nor hear what it sends.
        for (kind, topic) in [
            (PublishClientSend, format!("$webrtc/{d}/multimedia_proxy")),
            (PublishClientSend, format!("$message/{d}/multimedia_proxy")),
            (PublishClientReceive, format!("$webrtc/{d}")),
            (SubscribePattern, format!("$webrtc/{d}")),
        ] {
            assert!(!allows(&acls, kind, &topic), "media {kind:?} {topic}");
        }
    }
    for (kind, topic) in [
        (SubscribePattern, "#"),
        (SubscribePattern, "$mcp-server/#"),
        (PublishClientSend, "$mcp-server/d1/axon/lamp"),
        (PublishClientSend, "axon/telemetry/d1"),
        (PublishClientSend, CONTROL_TOPIC),
    ] {
        assert!(!allows(&acls, kind, topic), "media {kind:?} {topic}");
    }
    // And a device cannot take the endpoint's part for another device.
    let dev = device_acls(&id("d1"));
    assert!(!allows(&dev, PublishClientSend, "$webrtc/d2"));
    assert!(!allows(
        &dev,
        SubscribePattern,
        "$webrtc/+/multimedia_proxy"
    ));
    assert!(!allows(
        &dev,
        PublishClientSend,
        "$webrtc/d2/multimedia_proxy"
    ));
}

#[test]
fn the_media_account_is_pinned_and_rotatable() {
    let b = provision_media("m1", Secret::new("pw"));
    let v = json_of(&b);
    let cmds = v["commands"].as_array().unwrap();
    let client = cmds
        .iter()
        .find(|c| c["command"] == "createClient")
        .unwrap();
    assert_eq!(client["username"], MEDIA_USERNAME);
    assert_eq!(client["clientid"], MEDIA_USERNAME);
    assert_eq!(client["roles"][0]["rolename"], MEDIA_ROLE);
    assert!(cmds.iter().any(|c| c["command"] == "setClientPassword"));
}
