//! A raw MQTT 5 peer for tests: publishes hand-written bytes and collects what arrives, to
//! poke devices with malformed JSON, oversize payloads and the like.

use std::time::Duration;

use axon_core::transport::link::Credentials;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Filter, Packet, PubAckReason, PublishProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use tokio::sync::mpsc;

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// RETAIN flag as delivered.
    pub retain: bool,
    /// User properties.
    pub user_properties: Vec<(String, String)>,
}

impl Received {
    /// The payload as JSON (panics with the text if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.payload))
        })
    }
}

/// A raw client.
pub struct Probe {
    client_id: String,
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Received>,
    subacks: mpsc::UnboundedReceiver<Vec<u8>>,
    pubacks: mpsc::UnboundedReceiver<u8>,
    ends: mpsc::UnboundedReceiver<String>,
}

/// How a probe's connection ended or was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEnd {
    /// CONNACK with this reason code (not success).
    Refused(u8),
    /// Anything else, in words.
    Other(String),
}

impl Probe {
    /// Connects as `client_id` to `broker`, as its owner when it has accounts (a probe plays
    /// whatever peer a test needs, so it may use every topic).
    pub async fn connect_to(broker: &crate::broker::Broker, client_id: &str) -> Probe {
        let creds = broker.has_accounts().then(|| broker.admin());
        Probe::connect_with(broker.tcp_port(), client_id, creds.as_ref())
            .await
            .unwrap_or_else(|e| panic!("probe {client_id} refused: {e:?}"))
    }

    /// Connects as `client_id` to `127.0.0.1:port` (MQTT 5, max packet 2 MiB) without an
    /// account (an anonymous broker).
    pub async fn connect(port: u16, client_id: &str) -> Probe {
        Probe::connect_with(port, client_id, None)
            .await
            .unwrap_or_else(|e| panic!("probe {client_id} refused: {e:?}"))
    }

    /// Connects with an account; `Err` with the CONNACK code when the broker refuses it.
    pub async fn connect_with(
        port: u16,
        client_id: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Probe, ProbeEnd> {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(2 << 20));
        if let Some(c) = credentials {
            o.set_credentials(c.username.clone(), c.password());
        }
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (stx, subacks) = mpsc::unbounded_channel();
        let (ptx, pubacks) = mpsc::unbounded_channel();
        let (etx, ends) = mpsc::unbounded_channel();
        let (ctx, mut connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = ctx.send(Ok(()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(a))) => {
                        let codes = a
                            .return_codes
                            .iter()
                            .map(|c| match c {
                                SubscribeReasonCode::Success(q) => *q as u8,
                                SubscribeReasonCode::NotAuthorized => 0x87,
                                _ => 0x80,
                            })
                            .collect();
                        let _ = stx.send(codes);
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let code = match a.reason {
                            PubAckReason::Success => 0,
                            PubAckReason::NoMatchingSubscribers => 0x10,
                            PubAckReason::NotAuthorized => 0x87,
                            _ => 0x80,
                        };
                        let _ = ptx.send(code);
                    }
                    Ok(Event::Incoming(Packet::Disconnect(d))) => {
                        let _ = etx.send(format!("DISCONNECT {:?}", d.reason_code));
                        return;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let r = Received {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            user_properties: p
                                .properties
                                .map(|pr| pr.user_properties)
                                .unwrap_or_default(),
                        };
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        let code = match code {
                            ConnectReturnCode::BadUserNamePassword => 0x86,
                            ConnectReturnCode::NotAuthorized => 0x87,
                            _ => 0x80,
                        };
                        let _ = ctx.send(Err(ProbeEnd::Refused(code)));
                        return;
                    }
                    Err(e) => {
                        let _ = ctx.send(Err(ProbeEnd::Other(e.to_string())));
                        let _ = etx.send(e.to_string());
                        return;
                    }
                }
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(5), connected.recv())
            .await
            .expect("probe gets an answer within 5 s")
            .expect("probe task answers");
        first?;
        Ok(Probe {
            client_id: client_id.to_string(),
            client,
            rx,
            subacks,
            pubacks,
            ends,
        })
    }

    /// Subscribes and returns the SUBACK reason code (0 or 1: granted QoS; 0x87: not authorised).
    pub async fn try_subscribe(&mut self, filter: &str) -> u8 {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let codes = tokio::time::timeout(Duration::from_secs(5), self.subacks.recv())
            .await
            .expect("SUBACK within 5 s")
            .expect("probe task alive");
        codes[0]
    }

    /// Publishes at QoS 1 and returns the PUBACK reason code (0, 0x10 no subscribers, 0x87 not
    /// authorised). Take it right after the publish: PUBACKs are read in order.
    pub async fn publish_acked(&mut self, topic: &str, payload: impl Into<Vec<u8>>) -> u8 {
        self.publish(topic, payload, false, &[]).await;
        tokio::time::timeout(Duration::from_secs(5), self.pubacks.recv())
            .await
            .expect("PUBACK within 5 s")
            .expect("probe task alive")
    }

    /// How the connection ended, if it did within `timeout`.
    pub async fn ended(&mut self, timeout: Duration) -> Option<String> {
        tokio::time::timeout(timeout, self.ends.recv())
            .await
            .ok()
            .flatten()
    }

    /// Subscribes (optionally with No Local) and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, no_local: bool) {
        let mut f = Filter::new(filter, QoS::AtLeastOnce);
        f.nolocal = no_local;
        self.client.subscribe_many([f]).await.expect("subscribe");
        let codes = tokio::time::timeout(Duration::from_secs(5), self.subacks.recv())
            .await
            .expect("SUBACK within 5 s")
            .expect("probe task alive");
        assert!(
            codes.iter().all(|c| *c < 0x80),
            "the broker refused subscription {filter} (SUBACK {codes:?}): check the account's ACL"
        );
    }

    /// Every message retained on `filter`, without waiting for silence: subscribes to `filter`,
    /// then to a retained fence of this probe's own. The broker handles SUBSCRIBEs in order and
    /// sends a subscription's retained messages right after its SUBACK, so once the fence
    /// arrives everything retained on `filter` has arrived before it. Use a fresh probe: only
    /// retained messages that match `filter` are kept.
    pub async fn retained(&mut self, filter: &str) -> Vec<Received> {
        let fence = format!("axon-test/fence/{}", self.client_id);
        self.publish(&fence, "fence", true, &[]).await;
        self.subscribe(filter, false).await;
        self.subscribe(&fence, false).await;
        let mut found = Vec::new();
        loop {
            let r = self
                .next(Duration::from_secs(5))
                .await
                .expect("the retained fence arrives within 5 s");
            if r.topic == fence {
                break;
            }
            if r.retain && axon_core::transport::link::topic_matches(filter, &r.topic) {
                found.push(r);
            }
        }
        // An empty retained message deletes the fence again.
        self.publish(&fence, "", true, &[]).await;
        found
    }

    /// Publishes with user properties.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        retain: bool,
        props: &[(&str, &str)],
    ) {
        let props = PublishProperties {
            user_properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload.into(), props)
            .await
            .expect("publish");
    }

    /// The next message within `timeout`, if any.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message on `topic` within `timeout`, skipping others.
    pub async fn next_on(&mut self, topic: &str, timeout: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()
                .flatten()?;
            if r.topic == topic {
                return Some(r);
            }
        }
    }

    /// Publishes as an MCP client would: both MCP user properties set.
    pub async fn publish_as_client(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        client_id: &str,
    ) {
        self.publish(
            topic,
            payload,
            false,
            &[
                ("MCP-COMPONENT-TYPE", "mcp-client"),
                ("MCP-MQTT-CLIENT-ID", client_id),
            ],
        )
        .await;
    }

    /// Disconnects.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}
