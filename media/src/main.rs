//! `axon-media`: the media endpoint's command line (docs/voice.md §6).

use std::process::ExitCode;
use std::time::Duration;

use axon_media::broker::{Account, BrokerAddr};
use axon_media::endpoint::{self, EndpointConfig};
use clap::Parser;

/// Answers devices' WebRTC calls (signalling over MQTT, EMQX's $webrtc/$message scheme) and
/// carries their audio into the Hub's voice session and the answer speech back.
#[derive(Parser)]
#[command(
    version,
    after_help = "Each call: the device offers on $webrtc/{id}/multimedia_proxy; the endpoint answers on\n\
    $webrtc/{id}, opens the Hub's /api/voice for that device, decodes the device's Opus to 16 kHz\n\
    for the Hub and encodes the answer speech back. Transcript and answer markers go to\n\
    $message/{id}. One JSON line per call event on stdout; logs on stderr (RUST_LOG).\n\n\
    Accounts: the broker account is created by `axon-device-sim provision --media`; the Hub\n\
    credential is AXON_MEDIA_TOKEN, set to the same value in the worker's environment.\n\n\
    Example:\n\
    \x20 AXON_MEDIA_BROKER_PASSWORD=... AXON_MEDIA_TOKEN=... axon-media --broker mqtt://127.0.0.1:1883"
)]
struct Args {
    /// The broker.
    #[arg(long, env = "AXON_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// The endpoint's broker username.
    #[arg(long, env = "AXON_MEDIA_BROKER_USERNAME", default_value = "axon-media")]
    username: String,
    /// The endpoint's broker password (prefer the env var: a command line is visible to others).
    #[arg(long, env = "AXON_MEDIA_BROKER_PASSWORD", hide_env_values = true)]
    password: String,
    /// The Hub: http://HOST:PORT.
    #[arg(long, env = "AXON_WORKER", default_value = "http://127.0.0.1:8787")]
    worker: String,
    /// The endpoint's Hub credential (AXON_MEDIA_TOKEN in the worker's environment too).
    #[arg(long, env = "AXON_MEDIA_TOKEN", hide_env_values = true)]
    token: String,
    /// The address calls' UDP sockets listen on (their ICE host candidate). Loopback by
    /// default: set the machine's LAN address to take calls from other hosts.
    #[arg(long, env = "AXON_MEDIA_BIND", default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Seconds a call may take from its offer to ICE connectivity.
    #[arg(long, default_value_t = 10)]
    ice_timeout_s: u64,
    /// Drop this percentage of each call's incoming audio packets (loss tests only).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=50))]
    drop_percent: u8,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "axon_media=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let broker = match BrokerAddr::parse(&a.broker) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = EndpointConfig {
        broker,
        account: Account {
            username: a.username,
            password: a.password,
        },
        worker: a.worker,
        token: a.token,
        bind: a.bind,
        ice_timeout: Duration::from_secs(a.ice_timeout_s.max(1)),
        drop_percent: a.drop_percent,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match endpoint::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
