//! The MQTT connection of the endpoint and of a board's call: address, account, options.
//!
//! Owns only the mapping to rumqttc (v5); what is published where is the callers'.

use std::time::Duration;

use rumqttc::v5::{AsyncClient, EventLoop, MqttOptions};

use crate::MediaError;

/// `host:port` of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddr {
    /// Reads `mqtt://HOST:PORT` (or `HOST:PORT`; the port defaults to 1883).
    pub fn parse(s: &str) -> Result<BrokerAddr, MediaError> {
        let bad = || MediaError::BrokerUrl(s.to_string());
        let rest = s.trim().strip_prefix("mqtt://").unwrap_or(s.trim());
        if rest.contains("://") || rest.is_empty() {
            return Err(bad());
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (rest, 1883),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(BrokerAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

/// A broker account. The password is never printed.
#[derive(Clone)]
pub struct Account {
    /// Username (and client id: Axon's accounts pin it).
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({:?}, password hidden)", self.username)
    }
}

/// A client for `account` (its username as the client id), clean start, and its event loop;
/// nothing is sent until the loop is polled.
pub fn connect(addr: &BrokerAddr, account: &Account) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(account.username.clone(), addr.host.clone(), addr.port);
    o.set_credentials(account.username.clone(), account.password.clone());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(true);
    // An SDP offer is a few KiB; signalling messages are capped at 64 KiB by the core.
    o.set_max_packet_size(Some(256 * 1024));
    AsyncClient::new(o, 64)
}

/// Why the broker refused a CONNECT, for a person.
pub fn refused(addr: &BrokerAddr, who: &str, code: impl std::fmt::Debug) -> MediaError {
    MediaError::Broker {
        addr: addr.to_string(),
        detail: format!(
            "refused {who} ({code:?}); check the username and password (the media endpoint's \
             account is created by `axon-device-sim provision --media`)"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn broker_addresses_parse_or_say_what_to_write() {
        assert_eq!(
            BrokerAddr::parse("mqtt://127.0.0.1:1884").unwrap(),
            BrokerAddr {
                host: "127.0.0.1".into(),
                port: 1884
            }
        );
        assert_eq!(BrokerAddr::parse("localhost").unwrap().port, 1883);
        for bad in ["mqtts://h:1", "", "h:notaport", "ws://h:1"] {
            let e = BrokerAddr::parse(bad).unwrap_err().to_string();
            assert!(e.contains("mqtt://HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_account_never_prints_its_password() {
        let a = Account {
            username: "axon-media".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
