//! Broker accounts on the native side: where credentials come from, fresh passwords, and
//! carrying a `trust::broker` batch to Mosquitto's dynamic security plugin over an admin
//! connection.
//!
//! Owns the I/O only (files, env, OS randomness, one MQTT round trip); every account and ACL
//! is decided by `axon_core::trust::broker`. Never prints or logs a password: `provision`'s
//! one output line is printed by main.rs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axon_core::transport::link::{account_refusal, Credentials};
use axon_core::trust::broker::{Batch, Secret, ADMIN_USERNAME, CONTROL_TOPIC, RESPONSE_TOPIC};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};

use crate::mqtt::BrokerAddr;
use crate::SimError;

/// Env var: the owner's username (default `axon-admin`).
pub const ENV_ADMIN_USERNAME: &str = "AXON_BROKER_ADMIN_USERNAME";
/// Env var: the owner's password.
pub const ENV_ADMIN_PASSWORD: &str = "AXON_BROKER_ADMIN_PASSWORD";
/// Where run.sh keeps the owner's credentials (git-ignored).
pub const BROKER_ENV_FILE: &str = ".axon/broker.env";
/// Where boards' credentials live, one JSON file per device (git-ignored).
pub const DEVICE_STATE_DIR: &str = ".axon/devices";

/// A fresh password: 24 bytes of OS randomness as 48 hex digits.
pub fn random_password() -> Result<Secret, SimError> {
    use std::io::Read;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| SimError::Accounts(format!("cannot read /dev/urandom: {e}")))?;
    Ok(Secret::new(
        b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
    ))
}

/// Reads `KEY=VALUE` lines (`#` comments, optional quotes) of an env file.
fn env_file_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// The owner's credentials: env `AXON_BROKER_ADMIN_USERNAME`/`AXON_BROKER_ADMIN_PASSWORD`,
/// else the file `.axon/broker.env` under `dir`; `None` when neither has a password.
pub fn admin_credentials(dir: &Path) -> Option<Credentials> {
    let file = dir.join(BROKER_ENV_FILE);
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| env_file_value(&file, k))
    };
    let password = get(ENV_ADMIN_PASSWORD)?;
    let username = get(ENV_ADMIN_USERNAME).unwrap_or_else(|| ADMIN_USERNAME.to_string());
    Some(Credentials::new(username, password))
}

/// A board's stored credentials (`{"username": .., "password": ..}`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    username: String,
    password: String,
}

/// The file that holds device `id`'s credentials under `state_dir`.
pub fn device_file(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(format!("{id}.json"))
}

/// Device `id`'s stored credentials, if any.
pub fn load_device(state_dir: &Path, id: &str) -> Result<Option<Credentials>, SimError> {
    let path = device_file(state_dir, id);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let s: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                SimError::Accounts(format!(
                    "cannot read {}: {e} (delete it and provision the device again)",
                    path.display()
                ))
            })?;
            Ok(Some(Credentials::new(s.username, s.password)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SimError::Accounts(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Stores device `id`'s credentials (file mode 0600).
pub fn store_device(state_dir: &Path, id: &str, c: &Credentials) -> Result<(), SimError> {
    let err = |e: std::io::Error| {
        SimError::Accounts(format!("cannot write {}: {e}", state_dir.display()))
    };
    std::fs::create_dir_all(state_dir).map_err(err)?;
    let s = Stored {
        username: c.username.clone(),
        password: c.password().to_string(),
    };
    let path = device_file(state_dir, id);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&s).unwrap_or_default()).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::fs::rename(&tmp, &path).map_err(err)
}

/// A short random id that tells this batch's answers apart.
pub fn batch_id() -> String {
    format!("axon-{:016x}", crate::mqtt::seed())
}

/// The message for a CONNACK that refused `username`.
pub fn refused(addr: &BrokerAddr, username: Option<&str>, reason_code: u8) -> SimError {
    let why = account_refusal(reason_code).unwrap_or("refused");
    SimError::Refused {
        addr: addr.to_string(),
        account: username.unwrap_or("(no username)").to_string(),
        why: format!("{why} (CONNACK 0x{reason_code:02x})"),
    }
}

/// The CONNACK code of a rumqttc refusal that is about the account.
pub fn refusal_code(e: &ConnectionError) -> Option<u8> {
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => Some(0x86),
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => Some(0x87),
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadAuthenticationMethod) => {
            Some(0x8C)
        }
        _ => None,
    }
}

/// Publishes `batch` to the dynamic security plugin as `admin` and waits (10 s) for its answer.
pub async fn apply(
    broker: &BrokerAddr,
    admin: &Credentials,
    batch: &Batch,
) -> Result<(), SimError> {
    let mut o = MqttOptions::new(batch_id(), broker.host.clone(), broker.port);
    o.set_credentials(admin.username.clone(), admin.password());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(Some(1 << 20));
    let (client, mut eventloop) = AsyncClient::new(o, 8);
    let work = async {
        let mut published = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .subscribe(RESPONSE_TOPIC, QoS::AtLeastOnce)
                        .await
                        .map_err(|e| SimError::Client(e.to_string()))?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) if !published => {
                    if ack.return_codes.iter().any(|c| {
                        !matches!(
                            c,
                            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                        )
                    }) {
                        return Err(SimError::Accounts(format!(
                            "{} may not read {RESPONSE_TOPIC}: is it the dynamic security admin?",
                            admin.username
                        )));
                    }
                    published = true;
                    client
                        .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, batch.payload())
                        .await
                        .map_err(|e| SimError::Client(e.to_string()))?;
                }
                Ok(Event::Incoming(Packet::Publish(p)))
                    if p.topic.as_ref() == RESPONSE_TOPIC.as_bytes() =>
                {
                    if batch
                        .check(&p.payload)
                        .map_err(axon_core::Error::from)?
                        .is_some()
                    {
                        let _ = client.disconnect().await;
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(match refusal_code(&e) {
                        Some(code) => refused(broker, Some(&admin.username), code),
                        None => SimError::Client(format!("admin connection to {broker}: {e}")),
                    })
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| SimError::Unreachable {
            addr: broker.to_string(),
            secs: 10,
        })?
}
