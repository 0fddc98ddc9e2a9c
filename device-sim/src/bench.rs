//! The benchmark: MCP tool-call round trip against a raw MQTT 5 request/response on the same
//! broker in the same run, throughput at several concurrencies, and memory per board.
//!
//! Owns measuring and printing. Bounded in count and time; talks only to the broker it is
//! given (use a loopback broker).

use std::time::{Duration, Instant};

use axon_core::transport::link::Credentials;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::board::{BoardReport, DeviceSpec};
use crate::ctl::{Controller, ControllerOptions};
use crate::mqtt::BrokerAddr;
use crate::{fleet, SimError};

/// Rounds of the interleaved latency measurement.
const ROUNDS: usize = 5;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Sequential calls per latency measurement.
    pub calls: usize,
    /// Boards for the memory measurement (0 skips it).
    pub rss_devices: usize,
    /// Concurrency levels for the throughput table.
    pub concurrency: Vec<usize>,
    /// The account every connection of the benchmark uses (the owner's: it is pinned to no
    /// client id and reaches every topic, so a thousand boards need no accounts of their own).
    pub credentials: Option<Credentials>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .map(|d| d.as_secs_f64() * 1e6)
            .unwrap_or(f64::NAN)
    };
    Latency {
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Runs every measurement and prints Markdown tables to stdout.
pub async fn run(broker: &BrokerAddr, o: &BenchOptions) -> Result<(), SimError> {
    // Memory first: heap that later phases free would be reused by the new boards and hide
    // their cost (200 boards measured last once showed 0 KB).
    // The lean boards go first: the rumqttc fleet after them may reuse heap they freed, which
    // can only make the baseline look smaller and the ratio less flattering, never more.
    let mut memory = Vec::new();
    if o.rss_devices > 0 {
        for link in [fleet::Link::Lean, fleet::Link::Rumqttc] {
            progress(&format!(
                "memory: starting {} {} boards",
                o.rss_devices,
                link_name(link)
            ));
            memory.push(memory_per_board(broker, o.rss_devices, &o.credentials, link).await?);
        }
    }

    progress("starting 4 lamp boards and a client");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let specs: Vec<DeviceSpec> = (1..=4)
        .map(|i| bench_spec(&format!("bench-lamp-{i}"), &o.credentials))
        .collect();
    let handles = fleet::start(specs, broker, reports_tx, shutdown_rx, fleet::Link::Rumqttc);
    let options = ControllerOptions {
        credentials: o.credentials.clone(),
        ..ControllerOptions::default()
    };
    let ctl = Controller::connect(broker, options).await?;
    let ids = [
        "bench-lamp-1",
        "bench-lamp-2",
        "bench-lamp-3",
        "bench-lamp-4",
    ];
    ctl.wait_for_devices(&ids, Duration::from_secs(20)).await?;
    // Nobody reads the boards' reports from here on; an open receiver would pile them up.
    drop(reports);
    for _ in 0..50 {
        call(&ctl, ids[0]).await?; // warm up
    }

    // Interleave the two paths in rounds so that drift on a busy machine hits both alike.
    let per_round = o.calls.div_ceil(ROUNDS);
    let (mut raw_samples, mut mcp_samples) =
        (Vec::with_capacity(o.calls), Vec::with_capacity(o.calls));
    for round in 1..=ROUNDS {
        progress(&format!("round {round}/{ROUNDS}: {per_round} raw MQTT 5 request/responses, {per_round} MCP tools/calls"));
        raw_samples.extend(raw_request_response(broker, per_round, &o.credentials).await?);
        for _ in 0..per_round {
            let t = Instant::now();
            call(&ctl, ids[0]).await?;
            mcp_samples.push(t.elapsed());
        }
    }
    let raw = latency(raw_samples);
    let mcp = latency(mcp_samples);

    let mut throughput = Vec::new();
    for &c in &o.concurrency {
        progress(&format!("throughput at concurrency {c}"));
        let total = o.calls.max(c * 20);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..c {
            let ctl = ctl.clone();
            let n = total / c + usize::from(w < total % c);
            let dev = ids[w % ids.len()];
            tasks.push(tokio::spawn(async move {
                for _ in 0..n {
                    call(&ctl, dev).await?;
                }
                Ok::<_, SimError>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|e| SimError::Client(e.to_string()))??;
        }
        throughput.push((c, total as f64 / t.elapsed().as_secs_f64()));
    }
    ctl.close().await;
    let _ = shutdown_tx.send(true);
    for h in handles {
        let _ = h.await;
    }

    println!("\n### Tool-call round trip (loopback, QoS 1, same broker, same run, interleaved in {ROUNDS} rounds)\n");
    println!("| path | p50 (µs) | p99 (µs) | ratio p50 | ratio p99 |");
    println!("|---|---:|---:|---:|---:|");
    println!("| raw MQTT 5 request/response (response topic + correlation data) | {:.0} | {:.0} | 1.00× | 1.00× |", raw.p50_us, raw.p99_us);
    println!(
        "| MCP `tools/call` via axon-core client → device-sim board | {:.0} | {:.0} | {:.2}× | {:.2}× |",
        mcp.p50_us,
        mcp.p99_us,
        mcp.p50_us / raw.p50_us,
        mcp.p99_us / raw.p99_us
    );
    println!("\n### Throughput (`tools/call` to 4 boards over one client connection)\n");
    println!("| concurrency | calls/s |");
    println!("|---:|---:|");
    for (c, rate) in &throughput {
        println!("| {c} | {rate:.0} |");
    }
    if !memory.is_empty() {
        println!("\n### Memory (VmRSS of this process; goal ≤ 20 KB per board)\n");
        println!("| board | boards | when | RSS added | per board | ratio to rumqttc |");
        println!("|---|---:|---|---:|---:|---:|");
        let running = format!(
            "after {} s of telemetry every {} ms",
            MEMORY_RUN.as_secs(),
            MEMORY_TELEMETRY.as_millis()
        );
        let base = memory.iter().find(|m| m.link == fleet::Link::Rumqttc);
        for m in &memory {
            for (when, kb, base_kb) in [
                ("all online", m.online_kb, base.map(|b| b.online_kb)),
                (running.as_str(), m.running_kb, base.map(|b| b.running_kb)),
            ] {
                println!(
                    "| {} | {} | {when} | {:.1} MB | {:.1} KB | {} |",
                    link_name(m.link),
                    m.boards,
                    kb / 1024.0,
                    kb / m.boards as f64,
                    base_kb
                        .filter(|b| *b > 0.0)
                        .map(|b| format!("{:.2}×", kb / b))
                        .unwrap_or_else(|| "–".into()),
                );
            }
        }
    }
    Ok(())
}

fn bench_spec(id: &str, credentials: &Option<Credentials>) -> DeviceSpec {
    DeviceSpec {
        id: id.into(),
        kind: "lamp".into(),
        room: Some("lab".into()),
        title: Some(id.into()),
        site: "bench".into(),
        telemetry_interval: Duration::from_secs(3600),
        fault_rate: 0.0,
        seed: 7,
        credentials: credentials.clone(),
    }
}

async fn call(ctl: &Controller, device: &str) -> Result<(), SimError> {
    ctl.call_tool(device, "get_state", json!({}), None)
        .await
        .map(|_| ())
        .map_err(|e| SimError::Client(format!("call failed: {e}")))
}

/// Sequential QoS 1 request/response between two plain MQTT 5 clients.
async fn raw_request_response(
    broker: &BrokerAddr,
    calls: usize,
    credentials: &Option<Credentials>,
) -> Result<Vec<Duration>, SimError> {
    let opts = |id: &str| {
        let mut o = MqttOptions::new(id, broker.host.clone(), broker.port);
        if let Some(c) = credentials {
            o.set_credentials(c.username.clone(), c.password());
        }
        o.set_keep_alive(Duration::from_secs(30));
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        o
    };
    let (responder, mut rloop) = AsyncClient::new(opts("axon-bench-responder"), 64);
    let (requester, mut qloop) = AsyncClient::new(opts("axon-bench-requester"), 64);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<&'static str>();
    let r = responder.clone();
    let ready = ready_tx.clone();
    let responder_task = tokio::spawn(async move {
        loop {
            match rloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready.send("responder");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let props = p.properties.unwrap_or_default();
                    if let Some(topic) = props.response_topic {
                        let out = PublishProperties {
                            correlation_data: props.correlation_data,
                            ..Default::default()
                        };
                        let _ = r
                            .publish_with_properties(
                                topic,
                                QoS::AtLeastOnce,
                                false,
                                Bytes::from_static(br#"{"on":false,"brightness":80}"#),
                                out,
                            )
                            .await;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let (resp_tx, mut resp_rx) = mpsc::unbounded_channel::<Bytes>();
    let requester_task = tokio::spawn(async move {
        loop {
            match qloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send("requester");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = resp_tx.send(
                        p.properties
                            .and_then(|pr| pr.correlation_data)
                            .unwrap_or_default(),
                    );
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let fail = |e: rumqttc::v5::ClientError| SimError::Client(e.to_string());
    responder
        .subscribe_many([Filter::new("axon-bench/req", QoS::AtLeastOnce)])
        .await
        .map_err(fail)?;
    requester
        .subscribe_many([Filter::new("axon-bench/resp", QoS::AtLeastOnce)])
        .await
        .map_err(fail)?;
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), ready_rx.recv())
            .await
            .map_err(|_| SimError::Unreachable {
                addr: broker.to_string(),
                secs: 5,
            })?;
    }
    let payload = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_state","arguments":{}}}"#);
    let mut samples = Vec::with_capacity(calls);
    for i in 0..(calls + 50) {
        let corr = Bytes::from((i as u64).to_be_bytes().to_vec());
        let props = PublishProperties {
            response_topic: Some("axon-bench/resp".into()),
            correlation_data: Some(corr.clone()),
            ..Default::default()
        };
        let t = Instant::now();
        requester
            .publish_with_properties(
                "axon-bench/req",
                QoS::AtLeastOnce,
                false,
                payload.clone(),
                props,
            )
            .await
            .map_err(fail)?;
        loop {
            let got = tokio::time::timeout(Duration::from_secs(5), resp_rx.recv())
                .await
                .map_err(|_| SimError::Timeout {
                    secs: 5,
                    detail: "raw response".into(),
                })?;
            if got.as_ref() == Some(&corr) {
                break;
            }
        }
        if i >= 50 {
            samples.push(t.elapsed());
        }
    }
    let _ = requester.disconnect().await;
    let _ = responder.disconnect().await;
    responder_task.abort();
    requester_task.abort();
    Ok(samples)
}

fn vm_rss_kb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Boards in the memory measurement publish telemetry this often: buffers fill only once
/// traffic flows, so a board that has only just connected looks smaller than a running one.
const MEMORY_TELEMETRY: Duration = Duration::from_millis(200);
/// How long the boards run before the second memory reading.
const MEMORY_RUN: Duration = Duration::from_secs(5);

/// What the memory table calls a link.
fn link_name(link: fleet::Link) -> &'static str {
    match link {
        fleet::Link::Lean => "lean (axon-core session)",
        fleet::Link::Rumqttc => "rumqttc",
    }
}

/// RSS added by a fleet, in KB.
struct Memory {
    link: fleet::Link,
    boards: usize,
    /// When the last board reported online.
    online_kb: f64,
    /// After [`MEMORY_RUN`] of telemetry.
    running_kb: f64,
}

/// Starts `n` lamp boards, reads VmRSS once all are online and again after they ran a while.
async fn memory_per_board(
    broker: &BrokerAddr,
    n: usize,
    credentials: &Option<Credentials>,
    link: fleet::Link,
) -> Result<Memory, SimError> {
    let before = vm_rss_kb().unwrap_or(0.0);
    let options = fleet::FleetOptions {
        profile: "lamp".into(),
        devices: n,
        id_prefix: Some("rss".into()),
        site: "bench".into(),
        telemetry_interval: MEMORY_TELEMETRY,
        fault_rate: 0.0,
        seed: 11,
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let mut specs = fleet::specs(&options)?;
    for s in &mut specs {
        s.credentials = credentials.clone();
    }
    let handles = fleet::start(specs, broker, reports_tx, shutdown_rx, link);
    let mut online = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while online < n {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(BoardReport::Online { .. })) => {
                online += 1;
                if online % 250 == 0 {
                    progress(&format!("{online}/{n} boards online"));
                }
            }
            Ok(Some(_)) => {}
            _ => {
                return Err(SimError::Timeout {
                    secs: 60,
                    detail: format!("{online} of {n} boards online"),
                })
            }
        }
    }
    let online_kb = vm_rss_kb().unwrap_or(0.0) - before;
    progress(&format!(
        "memory: {n} boards online; running them for {} s",
        MEMORY_RUN.as_secs()
    ));
    // Keep reading reports meanwhile so they do not pile up and count as board memory.
    let _ = tokio::time::timeout(MEMORY_RUN, async {
        while reports.recv().await.is_some() {}
    })
    .await;
    let running_kb = vm_rss_kb().unwrap_or(0.0) - before;
    let _ = shutdown_tx.send(true);
    drop(reports);
    for h in handles {
        let _ = h.await;
    }
    Ok(Memory {
        link,
        boards: n,
        online_kb: online_kb.max(0.0),
        running_kb: running_kb.max(0.0),
    })
}
