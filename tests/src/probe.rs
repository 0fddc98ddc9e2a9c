//! A raw MQTT 5 peer for tests: publishes hand-written bytes and collects what arrives, to
//! poke devices with malformed JSON, oversize payloads and the like.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
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
    subacks: mpsc::UnboundedReceiver<()>,
}

impl Probe {
    /// Connects as `client_id` to `127.0.0.1:port` (MQTT 5, max packet 2 MiB).
    pub async fn connect(port: u16, client_id: &str) -> Probe {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(2 << 20));
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (stx, subacks) = mpsc::unbounded_channel();
        let (ctx, mut connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = ctx.send(());
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = stx.send(());
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
                    Err(_) => return,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), connected.recv())
            .await
            .expect("probe connects within 5 s");
        Probe {
            client_id: client_id.to_string(),
            client,
            rx,
            subacks,
        }
    }

    /// Subscribes (optionally with No Local) and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, no_local: bool) {
        let mut f = Filter::new(filter, QoS::AtLeastOnce);
        f.nolocal = no_local;
        self.client.subscribe_many([f]).await.expect("subscribe");
        tokio::time::timeout(Duration::from_secs(5), self.subacks.recv())
            .await
            .expect("SUBACK within 5 s");
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
