//! The plain MQTT messages that the MCP layer exchanges with whatever carries them.
//!
//! Owns the vocabulary between [`crate::protocol::mcp`] and an MQTT driver: [`Transmit`] going out,
//! [`Inbound`] coming in, [`ConnectOptions`] for CONNECT. A driver is either
//! [`crate::transport::mqtt::Session`] (browser tab, edge worker) or rumqttc (device-sim). Nothing here
//! knows about packets, packet ids or sockets.

use std::time::Duration;

/// MQTT quality of service. Axon never uses QoS 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QoS {
    /// Fire and forget.
    AtMostOnce,
    /// Acknowledged; may arrive twice.
    AtLeastOnce,
}

/// One MQTT 5 user property.
pub type UserProperty = (String, String);

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// Topic name (no wildcards).
    pub topic: String,
    /// Payload bytes (JSON for MCP; empty for a presence tombstone).
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// One subscription of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topic filter.
    pub filter: String,
    /// Maximum QoS.
    pub qos: QoS,
    /// MQTT 5 No Local: do not deliver our own publishes back to us.
    pub no_local: bool,
}

/// Identifies a SUBSCRIBE the MCP layer is waiting on; the driver reports its SUBACK with
/// the same token. Tokens are unique per state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscribeToken(pub u64);

/// What the MCP layer asks the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    /// Publish a message.
    Publish(Publish),
    /// Subscribe, then report the SUBACK through `handle_subscribed(token)`.
    Subscribe {
        /// Echoed back when the SUBACK arrives.
        token: SubscribeToken,
        /// The filters, sent in one SUBSCRIBE.
        subscriptions: Vec<Subscription>,
    },
    /// Unsubscribe from these filters.
    Unsubscribe {
        /// The filters.
        filters: Vec<String>,
    },
}

/// A message received from the broker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inbound {
    /// Topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// RETAIN as delivered (1 for a retained message replayed on subscribe).
    pub retain: bool,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<UserProperty>,
}

impl Inbound {
    /// The first value of user property `name`.
    pub fn user_property(&self, name: &str) -> Option<&str> {
        self.user_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What goes into CONNECT for an MCP component (docs/protocol.md §4.1).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOptions {
    /// MQTT client id (= server-id for devices, mcp-client-id for the Hub).
    pub client_id: String,
    /// Keep alive (Axon: 30 s).
    pub keep_alive: Duration,
    /// Clean Start (MCP over MQTT: always true).
    pub clean_start: bool,
    /// Session Expiry Interval in seconds (MCP over MQTT: always 0).
    pub session_expiry_s: u32,
    /// CONNECT user properties: `MCP-COMPONENT-TYPE` and `MCP-META`.
    pub user_properties: Vec<UserProperty>,
    /// The will.
    pub will: Option<Publish>,
    /// The broker account, if the broker wants one.
    pub credentials: Option<Credentials>,
}

/// A broker account's username and password. `Debug` hides the password, so CONNECT options
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The CONNECT username.
    pub username: String,
    password: String,
}

impl Credentials {
    /// An account.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The password, for the CONNECT packet only.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Why the broker refused an account, for a CONNACK reason code that refuses the account
/// itself (retrying with the same credentials cannot succeed); `None` for other codes.
///
/// Mosquitto 2.0.11 with dynamic security answers a wrong password, an unknown username, no
/// username and a client id the account is not pinned to all with 0x87 (measured), so 0x87
/// names every cause.
pub fn account_refusal(reason_code: u8) -> Option<&'static str> {
    match reason_code {
        0x86 => Some("bad username or password"),
        0x87 => Some(
            "not authorised (a wrong or missing username or password, or a client id the account does not allow)",
        ),
        0x8C => Some("bad authentication method"),
        _ => None,
    }
}

/// What the broker said in CONNACK that the MCP layer cares about.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connack {
    /// CONNACK user properties (`MCP-SERVER-NAME`, `MCP-SERVER-NAME-FILTERS`, `MCP-RBAC`).
    pub user_properties: Vec<UserProperty>,
}

impl Connack {
    /// The first value of user property `name`.
    pub fn user_property(&self, name: &str) -> Option<&str> {
        self.user_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether topic `name` matches subscription `filter` (MQTT 5 §4.7), including the rule that
/// a filter starting with a wildcard never matches a `$` topic.
pub fn topic_matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{account_refusal, topic_matches, Credentials};

    #[test]
    fn account_refusals_are_the_credential_codes_only() {
        assert!(account_refusal(0x86).unwrap().contains("password"));
        assert!(account_refusal(0x87).unwrap().contains("not authorised"));
        // Server busy, unavailable, banned... are not about the account's credentials.
        for code in [0x00, 0x80, 0x88, 0x89, 0x8A, 0x85] {
            assert_eq!(account_refusal(code), None, "{code:#x}");
        }
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials::new("lamp-1", "s3cret-value");
        let shown = format!("{c:?}");
        assert!(shown.contains("lamp-1") && !shown.contains("s3cret"));
        assert_eq!(c.password(), "s3cret-value");
    }

    #[test]
    fn wildcards_match_as_mqtt_says() {
        assert!(topic_matches(
            "$mcp-server/presence/+/axon/#",
            "$mcp-server/presence/k1/axon/lamp/k1"
        ));
        assert!(topic_matches("axon/telemetry/+", "axon/telemetry/k1"));
        assert!(!topic_matches(
            "axon/telemetry/+",
            "axon/telemetry/k1/latest"
        ));
        assert!(topic_matches("a/#", "a"));
        assert!(!topic_matches("#", "$mcp-server/x"));
        assert!(!topic_matches("+/x", "$SYS/x"));
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
    }
}
