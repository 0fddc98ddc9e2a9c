//! The MCP-over-MQTT topic scheme and the user properties every publish carries
//! (docs/protocol.md §2, §3, §4.3).
//!
//! Owns building topic names from ids and reading ids back out of topics. Never decides what
//! to send; [`super::server`] and [`super::client`] do.

use std::fmt;

/// User property: the component type of the sender (`mcp-server` or `mcp-client`).
pub const PROP_COMPONENT_TYPE: &str = "MCP-COMPONENT-TYPE";
/// User property: the MQTT client id of the sender.
pub const PROP_CLIENT_ID: &str = "MCP-MQTT-CLIENT-ID";
/// CONNECT user property: a JSON object describing the implementation.
pub const PROP_META: &str = "MCP-META";
/// CONNACK user property: the server name the broker assigned.
pub const PROP_SERVER_NAME: &str = "MCP-SERVER-NAME";
/// CONNACK user property: the presence filters a client must use (JSON array).
pub const PROP_SERVER_NAME_FILTERS: &str = "MCP-SERVER-NAME-FILTERS";
/// `MCP-COMPONENT-TYPE` of a device.
pub const COMPONENT_SERVER: &str = "mcp-server";
/// `MCP-COMPONENT-TYPE` of the Hub and other clients.
pub const COMPONENT_CLIENT: &str = "mcp-client";

/// Axon's presence filter: every Axon device (docs/protocol.md §5.2).
pub const AXON_PRESENCE_FILTER: &str = "$mcp-server/presence/+/axon/#";

/// The longest topic name or filter MQTT carries (a two-byte length). Ids read from one topic
/// can make a longer one (`$mcp-rpc/{client}/{server}/{name}` holds all three).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The longest of `topics`, when it is over [`MAX_TOPIC_LEN`].
pub fn too_long<'a>(topics: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    topics
        .into_iter()
        .map(str::len)
        .max()
        .filter(|n| *n > MAX_TOPIC_LEN)
}

/// Why a name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A device id that breaks `^[a-z0-9][a-z0-9-]{0,31}$` or is reserved.
    #[error("invalid device id {0:?}: use 1-32 characters a-z, 0-9 and '-', starting with a letter or digit; 'presence' and 'capability' are reserved")]
    DeviceId(String),
    /// A tool name that breaks `^[a-z][a-z0-9_]{0,63}$`.
    #[error(
        "invalid tool name {0:?}: use 1-64 characters a-z, 0-9 and '_', starting with a letter"
    )]
    ToolName(String),
    /// A server name with a wildcard or an empty level.
    #[error("invalid server name {0:?}: it must not be empty or contain '+' or '#'")]
    ServerName(String),
    /// A server-name filter that is not an MQTT topic filter.
    #[error("invalid server-name filter {0:?}: use an MQTT topic filter over server names, e.g. axon/# or demo/+/#")]
    ServerNameFilter(String),
    /// A client id with `/`, `+` or `#`.
    #[error("invalid MQTT client id {0:?}: it must not be empty or contain '/', '+' or '#'")]
    ClientId(String),
}

/// A device's id; also its MQTT client id and MCP server-id (docs/protocol.md §2.1).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Checks `^[a-z0-9][a-z0-9-]{0,31}$` and the reserved words.
    pub fn new(id: impl Into<String>) -> Result<Self, NameError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && id.as_bytes()[0] != b'-'
            && id != "presence"
            && id != "capability";
        if ok {
            Ok(DeviceId(id))
        } else {
            Err(NameError::DeviceId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for DeviceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DeviceId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an Axon tool name, `^[a-z][a-z0-9_]{0,63}$`.
pub fn check_tool_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::ToolName(name.to_string()))
    }
}

/// Checks an MCP server name: non-empty, no wildcards, no empty levels.
pub fn check_server_name(name: &str) -> Result<(), NameError> {
    let ok =
        !name.is_empty() && !name.contains(['+', '#']) && name.split('/').all(|l| !l.is_empty());
    if ok {
        Ok(())
    } else {
        Err(NameError::ServerName(name.to_string()))
    }
}

/// Checks a server-name filter (`axon/#`, `demo/+/#`): no empty level, `#` only as the whole
/// last level, `+` only as a whole level.
pub fn check_server_name_filter(filter: &str) -> Result<(), NameError> {
    let levels: Vec<&str> = filter.split('/').collect();
    let bad = levels.iter().enumerate().any(|(i, l)| {
        l.is_empty()
            || (l.contains('#') && (*l != "#" || i + 1 != levels.len()))
            || (l.contains('+') && *l != "+")
    });
    if bad {
        Err(NameError::ServerNameFilter(filter.to_string()))
    } else {
        Ok(())
    }
}

/// Checks an MQTT client id used as server-id or mcp-client-id.
pub fn check_client_id(id: &str) -> Result<(), NameError> {
    if id.is_empty() || id.contains(['/', '+', '#']) {
        Err(NameError::ClientId(id.to_string()))
    } else {
        Ok(())
    }
}

/// An MCP publish: QoS 1, with the two user properties every MCP PUBLISH must carry
/// (`MCP-COMPONENT-TYPE` = `component`, `MCP-MQTT-CLIENT-ID` = the sender's client id).
pub fn mcp_publish(
    topic: String,
    payload: Vec<u8>,
    retain: bool,
    component: &str,
    sender: &str,
) -> crate::transport::link::Publish {
    crate::transport::link::Publish {
        topic,
        payload,
        qos: crate::transport::link::QoS::AtLeastOnce,
        retain,
        user_properties: vec![
            (PROP_COMPONENT_TYPE.into(), component.into()),
            (PROP_CLIENT_ID.into(), sender.into()),
        ],
    }
}

/// `axon/{kind}/{device_id}`.
pub fn axon_server_name(kind: &str, device: &DeviceId) -> String {
    format!("axon/{kind}/{device}")
}

/// `$mcp-server/{server-id}/{server-name}`: the device's control topic.
pub fn control(server_id: &str, server_name: &str) -> String {
    format!("$mcp-server/{server_id}/{server_name}")
}

/// `$mcp-server/capability/{server-id}/{server-name}`.
pub fn server_capability(server_id: &str, server_name: &str) -> String {
    format!("$mcp-server/capability/{server_id}/{server_name}")
}

/// `$mcp-server/presence/{server-id}/{server-name}` (retained).
pub fn server_presence(server_id: &str, server_name: &str) -> String {
    format!("$mcp-server/presence/{server_id}/{server_name}")
}

/// `$mcp-server/presence/+/{filter}`.
pub fn server_presence_filter(server_name_filter: &str) -> String {
    format!("$mcp-server/presence/+/{server_name_filter}")
}

/// Whether discovery through the server-name `filters` (such as `axon/#`) sees a server named
/// `server_name`. A paired device's name that none covers is discovered by name (the Hub's
/// pairing and `McpClient::add_paired_server_name`).
pub fn covered_by_filters(server_name: &str, filters: &[String]) -> bool {
    filters
        .iter()
        .any(|f| crate::transport::link::topic_matches(f, server_name))
}

/// `$mcp-client/presence/{mcp-client-id}`.
pub fn client_presence(client_id: &str) -> String {
    format!("$mcp-client/presence/{client_id}")
}

/// `$mcp-client/capability/{mcp-client-id}`.
pub fn client_capability(client_id: &str) -> String {
    format!("$mcp-client/capability/{client_id}")
}

/// `$mcp-rpc/{mcp-client-id}/{server-id}/{server-name}`.
pub fn rpc(client_id: &str, server_id: &str, server_name: &str) -> String {
    format!("$mcp-rpc/{client_id}/{server_id}/{server_name}")
}

/// `axon/telemetry/{device_id}`.
pub fn telemetry(device: &str) -> String {
    format!("axon/telemetry/{device}")
}

/// `axon/telemetry/{device_id}/latest` (retained).
pub fn telemetry_latest(device: &str) -> String {
    format!("axon/telemetry/{device}/latest")
}

/// `axon/events/{device_id}`.
pub fn events(device: &str) -> String {
    format!("axon/events/{device}")
}

/// A topic as MCP over MQTT understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `$mcp-server/presence/{server_id}/{server_name}`.
    ServerPresence {
        /// The server instance.
        server_id: &'a str,
        /// The logical server name.
        server_name: &'a str,
    },
    /// `$mcp-server/capability/{server_id}/{server_name}`.
    ServerCapability {
        /// The server instance.
        server_id: &'a str,
        /// The logical server name.
        server_name: &'a str,
    },
    /// `$mcp-server/{server_id}/{server_name}`.
    Control {
        /// The server instance.
        server_id: &'a str,
        /// The logical server name.
        server_name: &'a str,
    },
    /// `$mcp-client/presence/{client_id}`.
    ClientPresence {
        /// The client.
        client_id: &'a str,
    },
    /// `$mcp-client/capability/{client_id}`.
    ClientCapability {
        /// The client.
        client_id: &'a str,
    },
    /// `$mcp-rpc/{client_id}/{server_id}/{server_name}`.
    Rpc {
        /// The client.
        client_id: &'a str,
        /// The server instance.
        server_id: &'a str,
        /// The logical server name.
        server_name: &'a str,
    },
    /// `axon/telemetry/{device}` or `axon/telemetry/{device}/latest`.
    Telemetry {
        /// The device.
        device: &'a str,
        /// Whether it is the retained `/latest` topic.
        latest: bool,
    },
    /// `axon/events/{device}`.
    Events {
        /// The device.
        device: &'a str,
    },
}

impl<'a> Topic<'a> {
    /// Reads a topic name; `None` for topics outside the scheme or with empty parts.
    pub fn parse(topic: &'a str) -> Option<Topic<'a>> {
        let nonempty = |s: &str| !s.is_empty();
        let split2 = |rest: &'a str| -> Option<(&'a str, &'a str)> {
            let (a, b) = rest.split_once('/')?;
            (nonempty(a) && nonempty(b)).then_some((a, b))
        };
        if let Some(rest) = topic.strip_prefix("$mcp-server/") {
            if let Some(rest) = rest.strip_prefix("presence/") {
                let (server_id, server_name) = split2(rest)?;
                return Some(Topic::ServerPresence {
                    server_id,
                    server_name,
                });
            }
            if let Some(rest) = rest.strip_prefix("capability/") {
                let (server_id, server_name) = split2(rest)?;
                return Some(Topic::ServerCapability {
                    server_id,
                    server_name,
                });
            }
            let (server_id, server_name) = split2(rest)?;
            return Some(Topic::Control {
                server_id,
                server_name,
            });
        }
        if let Some(rest) = topic.strip_prefix("$mcp-client/") {
            if let Some(client_id) = rest.strip_prefix("presence/") {
                return (nonempty(client_id) && !client_id.contains('/'))
                    .then_some(Topic::ClientPresence { client_id });
            }
            if let Some(client_id) = rest.strip_prefix("capability/") {
                return (nonempty(client_id) && !client_id.contains('/'))
                    .then_some(Topic::ClientCapability { client_id });
            }
            return None;
        }
        if let Some(rest) = topic.strip_prefix("$mcp-rpc/") {
            let (client_id, rest) = split2(rest)?;
            let (server_id, server_name) = split2(rest)?;
            return Some(Topic::Rpc {
                client_id,
                server_id,
                server_name,
            });
        }
        if let Some(rest) = topic.strip_prefix("axon/telemetry/") {
            return match rest.split_once('/') {
                None if nonempty(rest) => Some(Topic::Telemetry {
                    device: rest,
                    latest: false,
                }),
                Some((device, "latest")) if nonempty(device) => Some(Topic::Telemetry {
                    device,
                    latest: true,
                }),
                _ => None,
            };
        }
        if let Some(device) = topic.strip_prefix("axon/events/") {
            return (nonempty(device) && !device.contains('/')).then_some(Topic::Events { device });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_filters_are_topic_filters() {
        for ok in ["axon/#", "demo/+/#", "#", "a/b", "+/x"] {
            assert_eq!(check_server_name_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["", "demo/#/x", "a//b", "a+/b", "a/#b", "/a"] {
            assert!(check_server_name_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_ids_follow_the_convention() {
        assert!(DeviceId::new("kitchen-1").is_ok());
        assert!(DeviceId::new("web-0a1b2c3d").is_ok());
        for bad in [
            "",
            "-a",
            "Kitchen",
            "a.b",
            "a/b",
            "presence",
            "capability",
            &"a".repeat(33),
        ] {
            assert!(DeviceId::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn tool_names_follow_the_convention() {
        assert!(check_tool_name("set_power").is_ok());
        for bad in ["", "1a", "Set", "a.b", "a-b", &"a".repeat(65)] {
            assert!(check_tool_name(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn topics_round_trip() {
        let name = "axon/lamp/kitchen-1";
        assert_eq!(
            Topic::parse(&rpc("axon-hub.home.0011aabb", "kitchen-1", name)),
            Some(Topic::Rpc {
                client_id: "axon-hub.home.0011aabb",
                server_id: "kitchen-1",
                server_name: name
            })
        );
        assert_eq!(
            Topic::parse(&server_presence("kitchen-1", name)),
            Some(Topic::ServerPresence {
                server_id: "kitchen-1",
                server_name: name
            })
        );
        assert_eq!(
            Topic::parse(&server_capability("kitchen-1", name)),
            Some(Topic::ServerCapability {
                server_id: "kitchen-1",
                server_name: name
            })
        );
        assert_eq!(
            Topic::parse(&control("kitchen-1", name)),
            Some(Topic::Control {
                server_id: "kitchen-1",
                server_name: name
            })
        );
        assert_eq!(
            Topic::parse(&client_presence("c1")),
            Some(Topic::ClientPresence { client_id: "c1" })
        );
        assert_eq!(
            Topic::parse(&telemetry_latest("s1")),
            Some(Topic::Telemetry {
                device: "s1",
                latest: true
            })
        );
        assert_eq!(
            Topic::parse(&events("s1")),
            Some(Topic::Events { device: "s1" })
        );
        for bad in [
            "",
            "$mcp-rpc/a/b",
            "$mcp-server/presence/x",
            "axon/telemetry/",
            "axon/telemetry/a/b",
            "other",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad:?}");
        }
    }
}
