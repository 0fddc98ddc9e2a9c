//! `axon-device-sim`: simulated Axon boards, a small MCP-over-MQTT client, and the benchmark.

use std::process::ExitCode;
use std::time::Duration;

use std::path::{Path, PathBuf};

use axon_core::protocol::mcp::topics::DeviceId;
use axon_core::transport::link::Credentials;
use axon_core::trust::broker;
use clap::{Parser, Subcommand};
use device_sim::board::BoardReport;
use device_sim::ctl::{Controller, ControllerOptions};
use device_sim::mqtt::BrokerAddr;
use device_sim::{accounts, bench, fleet, voice, SimError};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

#[derive(Parser)]
#[command(
    name = "axon-device-sim",
    version,
    about = "Simulated Axon boards: MCP servers over MQTT 5, with telemetry, events and faults"
)]
#[command(after_help = "Examples:
  axon-device-sim run --broker mqtt://127.0.0.1:1883                      # the demo home (13 devices)
  axon-device-sim run --profile lamp --devices 100 --telemetry-interval-ms 1000
  axon-device-sim ctl list
  axon-device-sim ctl call kitchen-lamp set_power --args '{\"on\":true}'
  axon-device-sim bench --calls 2000 --rss-devices 1000
  espeak-ng -w in.wav \"turn on the kitchen lamp\"
  axon-device-sim say --worker http://127.0.0.1:8787 --device living-speaker --wav in.wav --out answer.wav

Logs go to stderr (RUST_LOG=debug for more); machine-readable lines go to stdout.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run simulated boards until Ctrl-C; each leaves gracefully (its presence is cleared).
    #[command(
        after_help = "Prints one JSON line per board when it is online, {\"event\":\"ready\",\"devices\":N} when all are,\n\
        one line per tool call, and {\"event\":\"stopped\"} after a graceful exit."
    )]
    Run {
        /// Broker address.
        #[arg(long, env = "AXON_BROKER", default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerAddr,
        /// `home` (the demo home: 13 devices in 4 rooms) or one kind: lamp, thermostat, plug, lock, sensor, speaker, camera.
        #[arg(long, default_value = "home")]
        profile: String,
        /// Number of boards for a single-kind profile.
        #[arg(long, default_value_t = 1)]
        devices: usize,
        /// Device id prefix for a single-kind profile (ids are PREFIX-1, PREFIX-2, ...; default: the kind).
        #[arg(long)]
        id_prefix: Option<String>,
        /// Site name, sent in MCP-META.
        #[arg(long, env = "AXON_SITE", default_value = "home")]
        site: String,
        /// Telemetry period in milliseconds.
        #[arg(long, default_value_t = 5000)]
        telemetry_interval_ms: u64,
        /// Chance per telemetry tick that a board develops a fault (0 to 1).
        #[arg(long, default_value_t = 0.01)]
        fault_rate: f64,
        /// Seed for reproducible telemetry and faults.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where boards keep their broker credentials, one JSON file per device. A board with
        /// none is provisioned when the owner's credentials are available.
        #[arg(long, env = "AXON_DEVICE_STATE_DIR", default_value = accounts::DEVICE_STATE_DIR)]
        state_dir: PathBuf,
        #[command(flatten)]
        account: AccountArgs,
        /// Run the boards on axon-core's own MQTT session instead of rumqttc: about half the
        /// memory a board (README "Memory"), for fleets of thousands on one machine. The same
        /// MCP server, profiles and reports.
        #[arg(long)]
        lean: bool,
    },
    /// A small MCP-over-MQTT client: list devices, call tools. It talks to devices directly, as
    /// their MCP client; the permission policy (confirm, deny) is the Hub's, so a `confirm` tool
    /// such as front-door unlock runs when you call it here.
    Ctl {
        /// Broker address.
        #[arg(long, env = "AXON_BROKER", default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerAddr,
        /// How long to wait for devices to be discovered and initialized.
        #[arg(long, default_value_t = 2000)]
        wait_ms: u64,
        /// Server-name filter for discovery; repeat for several (a device built on another SDK
        /// may be named outside `axon/`). The broker's MCP-SERVER-NAME-FILTERS wins if it sends one.
        #[arg(long = "filter", value_name = "FILTER", default_values_t = ["axon/#".to_string()])]
        filters: Vec<String>,
        #[command(flatten)]
        account: AccountArgs,
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Pair a board with the Hub (docs/security.md "Pairing"): show a code, wait until the
    /// owner enters it (console, or `ctl pair CODE`), keep the account where `run` finds it.
    Pair {
        /// The Hub (the edge worker): http://HOST:PORT.
        #[arg(long, env = "AXON_WORKER", default_value = "http://127.0.0.1:8787")]
        worker: String,
        /// The id the board proposes, e.g. porch-lamp.
        #[arg(long)]
        device: String,
        /// Its kind.
        #[arg(long, default_value = "lamp")]
        kind: String,
        /// Where boards keep their accounts (`run` reads them there).
        #[arg(long, env = "AXON_DEVICE_STATE_DIR", default_value = accounts::DEVICE_STATE_DIR)]
        state_dir: std::path::PathBuf,
        /// How long to wait for the owner.
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
    },
    /// Benchmark: tool-call round trip vs raw MQTT request/response, throughput, memory per board.
    Bench {
        /// Broker address (use a loopback broker).
        #[arg(long, env = "AXON_BROKER", default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerAddr,
        /// Sequential calls per latency measurement.
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// Boards for the memory measurement (0 to skip).
        #[arg(long, default_value_t = 1000)]
        rss_devices: usize,
        #[command(flatten)]
        account: AccountArgs,
    },
    /// Make a dynsec file written by `mosquitto_ctrl dynsec init FILE axon-admin PASSWORD` Axon's:
    /// default deny, and the owner role for axon-admin. Run it before the broker starts.
    BrokerSetup {
        /// The dynsec file (rewritten in place).
        #[arg(long)]
        dynsec: PathBuf,
    },
    /// Create or rotate a broker account with the owner's credentials (AXON_BROKER_ADMIN_USERNAME /
    /// AXON_BROKER_ADMIN_PASSWORD, else .axon/broker.env) and print `USERNAME PASSWORD` on one line.
    #[command(
        after_help = "A device's account may use only its own topics (docs/security.md); it is added to its site's role,\n\
        so that site's Hub can reach it. Its credentials are also stored under --state-dir for `run`.\n\
        --hub provisions the site's Hub (username hub-SITE); --media the media endpoint (axon-media). --revoke deletes a device's account (a connected\n\
        client is disconnected) and takes it out of its site.\n\n\
        Examples:\n  axon-device-sim provision --device kitchen-lamp\n  axon-device-sim provision --hub --site home"
    )]
    Provision {
        /// Broker address.
        #[arg(long, env = "AXON_BROKER", default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerAddr,
        /// The device whose account to create or rotate.
        #[arg(long, required_unless_present_any = ["hub", "media"], conflicts_with_all = ["hub", "media"])]
        device: Option<String>,
        /// Provision the site's Hub (hub-SITE) instead of a device.
        #[arg(long, conflicts_with = "media")]
        hub: bool,
        /// Provision the media endpoint (axon-media: it answers devices' WebRTC calls) instead.
        #[arg(long)]
        media: bool,
        /// The site the device belongs to, or whose Hub this is.
        #[arg(long, env = "AXON_SITE", default_value = "home")]
        site: String,
        /// For --hub: the server-name filters its presence subscription may use.
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        /// Delete the device's account instead.
        #[arg(long, requires = "device")]
        revoke: bool,
        /// Where device credentials are stored.
        #[arg(long, env = "AXON_DEVICE_STATE_DIR", default_value = accounts::DEVICE_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Speak to the Hub as a board would: stream a WAV over `/api/voice` and play (save) the answer.
    #[command(
        after_help = "The WAV (16-bit PCM, any rate, mono or stereo) is resampled to 16 kHz mono and sent in 20 ms\n\
        frames at real-time pace, then silence until the turn is done and its speech has played\n\
        (docs/voice.md). Every message from the Hub is printed as a JSON line on stdout; the answer audio is\n\
        summarised as {\"event\":\"audio_started\"} and {\"event\":\"said\"} lines, not printed.\n\
        Exit code 0: every turn was answered in speech; 1: a turn got no spoken answer or the Hub sent errors;\n\
        3: usage, the WAV, or the connection.\n\n\
        Example: espeak-ng -w in.wav \"turn on the kitchen lamp\" && axon-device-sim say --wav in.wav --out answer.wav"
    )]
    Say {
        /// The Hub (the edge worker): http://HOST:PORT or ws://HOST:PORT. TLS (https, wss) is not supported.
        #[arg(long, env = "AXON_WORKER", default_value = "http://127.0.0.1:8787")]
        worker: String,
        /// The device that speaks and listens; the agent prefers it for "say" and "show".
        #[arg(long)]
        device: Option<String>,
        /// The speech to send: a 16-bit PCM WAV file.
        #[arg(long)]
        wav: std::path::PathBuf,
        /// Where to write the answer audio (16 kHz mono WAV; every turn's answer, in order).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Whose conversation memory the turns use.
        #[arg(long)]
        user: Option<String>,
        /// hands_free (the Hub's VAD finds the utterance) or push_to_talk (ptt messages mark it).
        #[arg(long, default_value = "hands_free")]
        mode: device_sim::voice::Mode,
        /// How long one turn may take, from its first frame to its spoken answer.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
        /// Say it this many times, one turn after another in the same session.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// The Hub's credential: the owner token (AXON_API_TOKEN, in edge-worker/.dev.vars), a
        /// person's token or a paired device's.
        #[arg(long, env = "AXON_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Call the media endpoint over WebRTC instead (signalling over MQTT as the device, with
        /// its own broker account from --state-dir; Opus both ways). Needs --device.
        #[arg(long, requires = "device")]
        webrtc: bool,
        /// For --webrtc: the broker.
        #[arg(long, env = "AXON_BROKER", default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerAddr,
        /// For --webrtc: where the device's broker account is stored.
        #[arg(long, env = "AXON_DEVICE_STATE_DIR", default_value = accounts::DEVICE_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Hostile input at volume: feeds generated MQTT packets, JSON-RPC/MCP messages, tool
    /// arguments and topic names to the protocol core and checks each gets a clear outcome.
    #[command(after_help = "Families (inputs are dealt to them in turn):\n\
        \x20 mqtt     broker packets (random, and valid ones mutated) into the MQTT session\n\
        \x20 rpc      JSON-RPC/MCP payloads into a device (RPC and control topics) and the Hub (RPC topic)\n\
        \x20 args     tool arguments into schema validation, then into the simulated board\n\
        \x20 routing  topic names and user properties into a whole endpoint (session + MCP role)\n\n\
        Each input runs under catch_unwind and must end accepted, refused with a clear error (the\n\
        JSON-RPC code an independent reading of the input expects, a Rejected event, a protocol-error\n\
        close), or ignored where docs/protocol.md says so. Prints progress to stderr every 2 s and a\n\
        Markdown table to stdout.\n\n\
        Exit code 0: no panic and no unclear outcome; 1: there were some (each printed with its input\n\
        seed and a shrunken reproducer); 3: usage.\n\n\
        Examples:\n\
        \x20 axon-device-sim hostile                          # 1,000,000 inputs, seed 1 (use a release build)\n\
        \x20 axon-device-sim hostile --count 20000 --seed 7\n\
        \x20 axon-device-sim hostile --family rpc --input-seed 1234567   # one input again, from a failure report")]
    Hostile {
        /// Number of inputs over all families.
        #[arg(long, default_value_t = device_sim::hostile::DEFAULT_COUNT)]
        count: u64,
        /// Seed of the run: the same seed gives the same inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only this family: mqtt, rpc, args or routing.
        #[arg(long)]
        family: Option<String>,
        /// Run the single input with this seed (from a failure report) and print it; needs --family.
        #[arg(long, requires = "family")]
        input_seed: Option<u64>,
        /// Also print the outcome counts by kind (which error codes, which rules ignored what).
        #[arg(long)]
        kinds: bool,
    },
}

/// A broker account given on the command line or in the environment.
#[derive(clap::Args, Clone)]
struct AccountArgs {
    /// Broker username. Default for ctl and bench: the owner's (axon-admin); for run: each
    /// board's own account.
    #[arg(long, env = "AXON_BROKER_USERNAME", requires = "password")]
    username: Option<String>,
    /// Broker password (prefer the env var: a command line is visible to other users).
    #[arg(long, env = "AXON_BROKER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

impl AccountArgs {
    fn given(&self) -> Option<Credentials> {
        Some(Credentials::new(
            self.username.clone()?,
            self.password.clone()?,
        ))
    }

    /// The given account, else the owner's.
    fn or_owner(&self) -> Option<Credentials> {
        self.given()
            .or_else(|| accounts::admin_credentials(Path::new(".")))
    }
}

#[derive(Subcommand)]
enum CtlAction {
    /// Enter a pairing code a board or a tab shows (the owner's side; needs the owner token).
    Pair {
        /// The code, e.g. 7KQ3-M9ZD.
        code: String,
        /// The Hub (the edge worker): http://HOST:PORT.
        #[arg(long, env = "AXON_WORKER", default_value = "http://127.0.0.1:8787")]
        worker: String,
        /// The owner token (AXON_API_TOKEN in edge-worker/.dev.vars).
        #[arg(long, env = "AXON_API_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// List discovered devices with their state and tools.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call a tool. Exit code 0: success; 1: the tool failed (isError); 2: JSON-RPC error; 3: usage or connection.
    Call {
        /// The device: its id (kitchen-lamp), its server-name (axon/lamp/kitchen-lamp), or the
        /// server-name's last level when no other device shares it.
        device: String,
        /// Tool name, e.g. set_power.
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Timeout in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    if let Command::Hostile {
        count,
        seed,
        family,
        input_seed,
        kinds,
    } = cli.command
    {
        return hostile(count, seed, family.as_deref(), input_seed, kinds);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

/// `axon-device-sim hostile`.
fn hostile(
    count: u64,
    seed: u64,
    family: Option<&str>,
    input_seed: Option<u64>,
    kinds: bool,
) -> ExitCode {
    use device_sim::hostile::{self, Family, Outcome};
    let family = match family.map(Family::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    if let (Some(family), Some(input_seed)) = (family, input_seed) {
        let (input, result) = hostile::run_one(family, input_seed);
        println!("input: {}", input.describe());
        return match result {
            Err(p) => {
                println!("outcome: PANIC {p}");
                ExitCode::from(1)
            }
            Ok(Outcome::Unclear(u)) => {
                println!("outcome: UNCLEAR {u}");
                ExitCode::from(1)
            }
            Ok(o) => {
                println!("outcome: {o:?}");
                ExitCode::SUCCESS
            }
        };
    }
    eprintln!(
        "hostile: {count} inputs, seed {seed}{}",
        family
            .map(|f| format!(", family {}", f.name()))
            .unwrap_or_default()
    );
    let report = hostile::run_where(
        count,
        seed,
        |f| family.is_none_or(|only| only == f),
        &mut |done, r| {
            eprintln!(
                "hostile: {done}/{count} inputs, {:.0} s, {} panics or unclear",
                r.elapsed.as_secs_f64(),
                r.bad()
            )
        },
    );
    println!(
        "{} inputs, seed {}, {:.1} s wall on {} threads ({} build)\n",
        report.inputs(),
        report.seed,
        report.elapsed.as_secs_f64(),
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(16),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    print!("{}", report.table());
    if kinds {
        println!("\n{}", report.kinds());
    }
    if report.bad() == 0 {
        return ExitCode::SUCCESS;
    }
    println!(
        "\nFAILED: {} panics or unclear outcomes (seed {seed}); the first {}:",
        report.bad(),
        report.failures.len()
    );
    for f in &report.failures {
        println!(
            "\n- input {} ({}), --family {} --input-seed {}\n  {}\n  reproducer: {}",
            f.index,
            f.family.name(),
            f.family.name(),
            f.input_seed,
            f.what,
            f.reproducer
        );
    }
    ExitCode::from(1)
}

fn emit(v: Value) {
    device_sim::emit_line(v);
}

async fn run(cli: Cli) -> Result<ExitCode, SimError> {
    match cli.command {
        Command::Run {
            broker,
            profile,
            devices,
            id_prefix,
            site,
            telemetry_interval_ms,
            fault_rate,
            seed,
            state_dir,
            account,
            lean,
        } => {
            let site_for_accounts = site.clone();
            let options = fleet::FleetOptions {
                profile,
                devices,
                id_prefix,
                site,
                telemetry_interval: Duration::from_millis(telemetry_interval_ms.max(50)),
                fault_rate: fault_rate.clamp(0.0, 1.0),
                seed,
            };
            let mut specs = fleet::specs(&options)?;
            if let Some(warning) = device_sim::raise_open_file_limit(specs.len()) {
                tracing::warn!("{warning}");
            }
            for spec in &mut specs {
                spec.credentials = Some(match account.given() {
                    Some(c) => c,
                    None => {
                        board_credentials(&broker, &state_dir, &spec.id, &site_for_accounts).await?
                    }
                });
            }
            let total = specs.len();
            tracing::info!(boards = total, %broker, "starting");
            let (shutdown_tx, shutdown_rx) = watch::channel(false);
            let (reports_tx, mut reports) = mpsc::unbounded_channel();
            let link = if lean {
                fleet::Link::Lean
            } else {
                fleet::Link::Rumqttc
            };
            let handles = fleet::start(specs, &broker, reports_tx, shutdown_rx, link);
            let mut online = std::collections::HashSet::new();
            let mut ready_sent = false;
            let signal = shutdown_signal();
            tokio::pin!(signal);
            loop {
                tokio::select! {
                    r = reports.recv() => match r {
                        Some(BoardReport::Online { device, server_name }) => {
                            emit(json!({"event": "online", "device": device, "server_name": server_name}));
                            online.insert(device);
                            if !ready_sent && online.len() == total {
                                ready_sent = true;
                                emit(json!({"event": "ready", "devices": total}));
                            }
                        }
                        Some(BoardReport::ToolCall { device, tool, arguments, is_error }) => {
                            emit(json!({"event": "tool_call", "device": device, "tool": tool, "arguments": arguments, "is_error": is_error}));
                        }
                        Some(BoardReport::Offline { device, reason }) => emit(json!({"event": "offline", "device": device, "reason": reason})),
                        Some(BoardReport::Stopped { device, taken_over: true }) => emit(json!({"event": "taken_over", "device": device})),
                        Some(BoardReport::Stopped { .. }) => {}
                        None => break,
                    },
                    _ = &mut signal => {
                        tracing::info!("stopping: every board leaves gracefully");
                        let _ = shutdown_tx.send(true);
                        break;
                    }
                }
            }
            // A board the broker refused stops at once; its error is the exit status.
            let mut failed = None;
            for h in handles {
                if let Ok(Err(e)) = h.await {
                    failed.get_or_insert(e);
                }
            }
            emit(json!({"event": "stopped"}));
            match failed {
                Some(e) => Err(e),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Ctl {
            broker,
            wait_ms,
            filters,
            account,
            action,
        } => {
            if let CtlAction::Pair {
                code,
                worker,
                token,
            } = &action
            {
                // The worker's business: no broker connection needed.
                let v = device_sim::pairing::approve(worker, token, code).await?;
                emit(v);
                return Ok(ExitCode::SUCCESS);
            }
            let wait = Duration::from_millis(wait_ms);
            ctl(broker, wait, filters, account.or_owner(), action).await
        }
        Command::Pair {
            worker,
            device,
            kind,
            state_dir,
            timeout_s,
        } => {
            device_sim::pairing::pair(
                &worker,
                &device,
                &kind,
                &state_dir,
                Duration::from_secs(timeout_s.max(1)),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            broker,
            calls,
            rss_devices,
            account,
        } => {
            if let Some(warning) = device_sim::raise_open_file_limit(rss_devices + 8) {
                tracing::warn!("{warning}");
            }
            let o = bench::BenchOptions {
                calls: calls.max(10),
                rss_devices,
                concurrency: vec![1, 16, 64],
                credentials: account.or_owner(),
            };
            bench::run(&broker, &o).await?;
            Ok(ExitCode::SUCCESS)
        }
        // Runs before the runtime starts (see `main`): it needs no I/O.
        Command::Hostile { .. } => Ok(ExitCode::from(3)),
        Command::BrokerSetup { dynsec } => {
            let io = |e: std::io::Error| {
                SimError::Accounts(format!("cannot rewrite {}: {e}", dynsec.display()))
            };
            let init = std::fs::read_to_string(&dynsec).map_err(io)?;
            let ready = broker::prepare_config(&init).map_err(axon_core::Error::from)?;
            std::fs::write(&dynsec, ready).map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Provision {
            broker,
            device,
            hub,
            media,
            site,
            filters,
            revoke,
            state_dir,
        } => {
            let admin = accounts::admin_credentials(Path::new(".")).ok_or_else(|| {
                SimError::Accounts(format!(
                    "provision needs the owner's credentials: set {} (and {}), or run scripts/run.sh once to write {}",
                    accounts::ENV_ADMIN_PASSWORD,
                    accounts::ENV_ADMIN_USERNAME,
                    accounts::BROKER_ENV_FILE
                ))
            })?;
            let id = accounts::batch_id();
            match device {
                Some(d) if revoke => {
                    let d = DeviceId::new(d).map_err(axon_core::Error::from)?;
                    let batch = broker::revoke_device(id, &d, Some(&site))
                        .map_err(axon_core::Error::from)?;
                    accounts::apply(&broker, &admin, &batch).await?;
                    let _ = std::fs::remove_file(accounts::device_file(&state_dir, d.as_str()));
                    emit(json!({"event": "revoked", "device": d}));
                }
                Some(d) => {
                    let c = provision_device(&broker, &admin, &state_dir, &d, &site).await?;
                    println!("{} {}", c.username, c.password());
                }
                None if hub => {
                    let password = accounts::random_password()?;
                    let batch = broker::provision_hub(id, &site, password.clone(), &filters)
                        .map_err(axon_core::Error::from)?;
                    accounts::apply(&broker, &admin, &batch).await?;
                    println!("{} {}", broker::hub_username(&site), password.expose());
                }
                None if media => {
                    let password = accounts::random_password()?;
                    accounts::apply(
                        &broker,
                        &admin,
                        &broker::provision_media(id, password.clone()),
                    )
                    .await?;
                    println!("{} {}", broker::MEDIA_USERNAME, password.expose());
                }
                None => unreachable!("clap requires --device, --hub or --media"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Say {
            worker,
            device,
            wav,
            out,
            user,
            mode,
            timeout_s,
            repeat,
            token,
            webrtc,
            broker,
            state_dir,
        } => {
            if webrtc {
                let device = device.unwrap_or_default();
                return say_webrtc(
                    &broker,
                    &state_dir,
                    &device,
                    &wav,
                    out.as_deref(),
                    Duration::from_secs(timeout_s.max(1)),
                )
                .await;
            }
            let mut o = voice::VoiceOptions::new(&worker);
            o.token = token;
            o.device = device;
            o.user = user;
            o.mode = mode;
            say(
                o,
                &wav,
                out.as_deref(),
                Duration::from_secs(timeout_s.max(1)),
                repeat.max(1),
            )
            .await
        }
    }
}

async fn say(
    o: voice::VoiceOptions,
    wav: &std::path::Path,
    out: Option<&std::path::Path>,
    timeout: Duration,
    repeat: u32,
) -> Result<ExitCode, SimError> {
    let speech = voice::read_wav(wav)?;
    if voice::speech_span(&speech).is_none() {
        eprintln!(
            "note: {} holds no speech louder than {} dBFS; the Hub will likely hear nothing",
            wav.display(),
            voice::SPEECH_DBFS
        );
    }
    let mut session = voice::VoiceSession::connect(&o).await?;
    emit(session.ready().clone());
    let (mut answered, mut errors) = (0u32, 0usize);
    let mut answer_audio = Vec::new();
    let mut problems = Vec::new();
    for i in 0..repeat {
        let mut audio_started = false;
        let turn = session
            .turn(speech.clone(), timeout, &mut |inc| match &inc.msg {
                voice::Inbound::Json(v) => emit(v.clone()),
                voice::Inbound::Unparsed(text) => emit(json!({"event": "unparsed", "text": text})),
                voice::Inbound::Audio(_) if !audio_started => {
                    audio_started = true;
                    emit(json!({"event": "audio_started"}));
                }
                voice::Inbound::Audio(_) => {}
                voice::Inbound::Closed(reason) => {
                    emit(json!({"event": "closed", "reason": reason}))
                }
            })
            .await?;
        let turn_errors = turn.errors();
        errors += turn_errors.len();
        let end = match &turn.end {
            voice::TurnEnd::Timings => "timings".to_string(),
            voice::TurnEnd::Played => "played".to_string(),
            voice::TurnEnd::Failed(code) => format!("failed: {code}"),
            voice::TurnEnd::Timeout => format!("timeout after {} s", timeout.as_secs()),
            voice::TurnEnd::Closed(r) => format!(
                "closed: {}",
                r.clone().unwrap_or_else(|| "no reason given".into())
            ),
        };
        emit(json!({
            "event": "said",
            "turn": i + 1,
            "end": end,
            "transcript": turn.event("transcript").map(|v| v["text"].clone()),
            "answer": turn.event("answer").map(|v| v["text"].clone()),
            "audio_messages": turn.audio_messages,
            "audio_ms": turn.audio_ms(),
            "speech_end_to_first_audio_ms": turn.speech_end_to_first_audio_ms().map(|m| (m * 10.0).round() / 10.0),
            "errors": turn_errors.len(),
        }));
        if turn.audio.is_empty() {
            problems.push(format!("turn {}: no answer was spoken ({end})", i + 1));
        } else {
            answered += 1;
        }
        for e in turn_errors {
            problems.push(format!(
                "turn {}: the Hub reported {}: {}",
                i + 1,
                e["code"].as_str().unwrap_or("an error"),
                e["message"].as_str().unwrap_or("")
            ));
        }
        answer_audio.extend(turn.audio);
        if matches!(turn.end, voice::TurnEnd::Closed(_)) {
            break;
        }
    }
    session.close().await;
    if let Some(path) = out {
        let bytes = axon_core::media::audio::wav_encode(
            &answer_audio,
            axon_core::media::audio::SAMPLE_RATE,
        );
        if let Err(e) = std::fs::write(path, bytes) {
            eprintln!("error: cannot write the answer to {}: {e}", path.display());
            return Ok(ExitCode::from(3));
        }
    }
    if answered == repeat && errors == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    eprintln!("{answered} of {repeat} turns answered in speech; {errors} errors from the Hub");
    Ok(ExitCode::from(1))
}

/// `say --webrtc`: one spoken exchange over a WebRTC call to the media endpoint.
async fn say_webrtc(
    broker_addr: &BrokerAddr,
    state_dir: &Path,
    device: &str,
    wav: &Path,
    out: Option<&Path>,
    timeout: Duration,
) -> Result<ExitCode, SimError> {
    let d = DeviceId::new(device).map_err(axon_core::Error::from)?;
    let creds = accounts::load_device(state_dir, device)?
        .ok_or_else(|| SimError::NoCredentials(device.into()))?;
    let speech = voice::read_wav(wav)?;
    let o = axon_media::board::BoardOptions {
        broker: axon_media::broker::BrokerAddr {
            host: broker_addr.host.clone(),
            port: broker_addr.port,
        },
        account: axon_media::broker::Account {
            username: creds.username.clone(),
            password: creds.password().to_string(),
        },
        device: d,
        bind: std::net::Ipv4Addr::LOCALHOST.into(),
        timeout,
        lead_in: Duration::from_millis(300),
        barge_in: None,
    };
    let x = match axon_media::board::say(&o, &speech, &mut |t| {
        emit(serde_json::to_value(t).unwrap_or_default())
    })
    .await
    {
        Ok(x) => x,
        Err(e @ axon_media::MediaError::CallEnded(_))
        | Err(e @ axon_media::MediaError::Timeout(_)) => {
            emit(json!({"event": "said", "transport": "webrtc", "end": e.to_string()}));
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    emit(json!({
        "event": "said",
        "transport": "webrtc",
        "end": "played",
        "transcript": x.transcript(),
        "audio_ms": x.answer.len() as u64 * 1000 / u64::from(axon_core::media::audio::SAMPLE_RATE),
        "speech_end_to_first_audio_ms": x.speech_end_to_first_audio_ms,
        "connect_ms": x.connect_ms,
        "packets_out": x.stats.packets_out,
        "packets_in": x.stats.packets_in,
        "concealed": x.stats.concealed,
    }));
    if let Some(path) = out {
        let bytes =
            axon_core::media::audio::wav_encode(&x.answer, axon_core::media::audio::SAMPLE_RATE);
        if let Err(e) = std::fs::write(path, bytes) {
            eprintln!("error: cannot write the answer to {}: {e}", path.display());
            return Ok(ExitCode::from(3));
        }
    }
    if x.answer.is_empty() {
        eprintln!("error: the call ended without a spoken answer");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates or rotates device `d`'s account, stores its credentials and returns them.
async fn provision_device(
    broker_addr: &BrokerAddr,
    admin: &Credentials,
    state_dir: &Path,
    d: &str,
    site: &str,
) -> Result<Credentials, SimError> {
    let d = DeviceId::new(d).map_err(axon_core::Error::from)?;
    let password = accounts::random_password()?;
    let batch = broker::provision_device(accounts::batch_id(), &d, password.clone(), Some(site))
        .map_err(axon_core::Error::from)?;
    accounts::apply(broker_addr, admin, &batch).await?;
    let c = Credentials::new(d.as_str(), password.expose());
    accounts::store_device(state_dir, d.as_str(), &c)?;
    tracing::info!(device = %d, site, "provisioned a broker account");
    Ok(c)
}

/// A board's stored credentials, else a fresh account when the owner's credentials are
/// available, else an error that says what to do.
async fn board_credentials(
    broker_addr: &BrokerAddr,
    state_dir: &Path,
    id: &str,
    site: &str,
) -> Result<Credentials, SimError> {
    if let Some(c) = accounts::load_device(state_dir, id)? {
        return Ok(c);
    }
    match accounts::admin_credentials(Path::new(".")) {
        Some(admin) => provision_device(broker_addr, &admin, state_dir, id, site).await,
        None => Err(SimError::NoCredentials(id.to_string())),
    }
}

async fn ctl(
    broker: BrokerAddr,
    wait: Duration,
    filters: Vec<String>,
    credentials: Option<Credentials>,
    action: CtlAction,
) -> Result<ExitCode, SimError> {
    let options = ControllerOptions {
        filters,
        credentials,
        ..ControllerOptions::default()
    };
    let ctl = Controller::connect(&broker, options).await?;
    // Presence replays at once; give initialize a moment to finish for what was found.
    let settled = |s: &device_sim::ctl::Snapshot| {
        !s.devices.is_empty()
            && s.devices
                .iter()
                .all(|d| d.state != axon_core::protocol::mcp::client::DeviceState::Initializing)
    };
    let code = match action {
        // Answered before connecting (see `run`).
        CtlAction::Pair { .. } => ExitCode::SUCCESS,
        CtlAction::List { json } => {
            ctl.wait_until(wait, settled).await;
            let devices = ctl.devices();
            if json {
                emit(serde_json::to_value(&devices).unwrap_or_default());
            } else if devices.is_empty() {
                println!(
                    "no devices found on {broker} (is a simulator running? `axon-device-sim run`)"
                );
            } else {
                println!(
                    "{:<20} {:<11} {:<12} {:<12} tools",
                    "device", "kind", "room", "state"
                );
                for d in &devices {
                    let tools: Vec<_> = d.tools.iter().map(|t| t.name.as_str()).collect();
                    let state = serde_json::to_value(d.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    println!(
                        "{:<20} {:<11} {:<12} {:<12} {}",
                        d.device_id,
                        d.kind,
                        d.meta.room.as_deref().unwrap_or("-"),
                        state,
                        tools.join(", ")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        CtlAction::Call {
            device,
            tool,
            args,
            timeout_ms,
        } => {
            let args: Value = match serde_json::from_str(&args) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: --args is not JSON: {e}");
                    return Ok(ExitCode::from(3));
                }
            };
            if ctl
                .wait_for_devices(&[device.as_str()], wait)
                .await
                .is_err()
                && axon_core::protocol::mcp::identity::resolve(&ctl.devices(), &device)
                    .is_err_and(|e| e.code == axon_core::protocol::jsonrpc::code::DEVICE_OFFLINE)
            {
                eprintln!(
                    "note: device {device} was not discovered within {} ms",
                    wait.as_millis()
                );
            }
            match ctl
                .call_tool(
                    &device,
                    &tool,
                    args,
                    Some(Duration::from_millis(timeout_ms)),
                )
                .await
            {
                Ok(result) => {
                    let is_error = result["isError"].as_bool().unwrap_or(false);
                    emit(
                        result
                            .get("structuredContent")
                            .cloned()
                            .filter(|_| !is_error)
                            .unwrap_or(result),
                    );
                    if is_error {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("error {}: {}", e.code, e.message);
                    if let Some(d) = &e.data {
                        eprintln!("  {d}");
                    }
                    ExitCode::from(2)
                }
            }
        }
    };
    ctl.close().await;
    Ok(code)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The runtime: one thread unless AXON_SIM_THREADS says otherwise. A simulated fleet is I/O
/// bound, and on one thread the hops between a board's tasks are cheap same-thread wake-ups.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    match std::env::var("AXON_SIM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) if n > 1 => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}
