//! Many boards in one process: the demo home, N boards of one kind, and the load generator.
//!
//! Owns which devices exist (ids, rooms, titles) and starting them staggered so a thousand
//! boards do not hit the broker in the same millisecond.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::board::{self, BoardReport, DeviceSpec};
use crate::mqtt::BrokerAddr;
use crate::SimError;

/// Options shared by every board of a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// `home` or a kind.
    pub profile: String,
    /// Boards for a single-kind profile.
    pub devices: usize,
    /// Id prefix for a single-kind profile (default: the kind).
    pub id_prefix: Option<String>,
    /// Site name.
    pub site: String,
    /// Telemetry period.
    pub telemetry_interval: Duration,
    /// Chance per tick of a fault.
    pub fault_rate: f64,
    /// Base seed.
    pub seed: u64,
}

/// The demo home: (id, kind, room, title).
pub const HOME: [(&str, &str, &str, &str); 13] = [
    ("kitchen-lamp", "lamp", "kitchen", "Kitchen lamp"),
    ("living-lamp", "lamp", "living room", "Living room lamp"),
    ("bedroom-lamp", "lamp", "bedroom", "Bedroom lamp"),
    ("hall-lamp", "lamp", "hall", "Hall lamp"),
    (
        "living-thermostat",
        "thermostat",
        "living room",
        "Living room thermostat",
    ),
    (
        "bedroom-thermostat",
        "thermostat",
        "bedroom",
        "Bedroom thermostat",
    ),
    ("kitchen-plug", "plug", "kitchen", "Coffee machine plug"),
    ("living-plug", "plug", "living room", "TV plug"),
    ("front-door", "lock", "hall", "Front door lock"),
    ("hall-sensor", "sensor", "hall", "Hall sensor"),
    ("bedroom-sensor", "sensor", "bedroom", "Bedroom sensor"),
    (
        "living-speaker",
        "speaker",
        "living room",
        "Living room speaker",
    ),
    ("hall-camera", "camera", "hall", "Hall camera"),
];

/// The boards a fleet consists of.
pub fn specs(o: &FleetOptions) -> Result<Vec<DeviceSpec>, SimError> {
    let spec =
        |i: usize, id: String, kind: &str, room: Option<&str>, title: Option<String>| DeviceSpec {
            id,
            kind: kind.into(),
            room: room.map(str::to_string),
            title,
            site: o.site.clone(),
            telemetry_interval: o.telemetry_interval,
            fault_rate: o.fault_rate,
            seed: o.seed.wrapping_add(i as u64 * 0x9E37_79B9),
            credentials: None,
        };
    if o.profile == "home" {
        return Ok(HOME
            .iter()
            .enumerate()
            .map(|(i, (id, kind, room, title))| {
                spec(i, id.to_string(), kind, Some(room), Some(title.to_string()))
            })
            .collect());
    }
    if !crate::profiles::KINDS.contains(&o.profile.as_str()) {
        return Err(SimError::Profile(o.profile.clone()));
    }
    let prefix = o.id_prefix.clone().unwrap_or_else(|| o.profile.clone());
    Ok((1..=o.devices.max(1))
        .map(|i| {
            let title = format!("{} {i}", capitalise(&o.profile));
            spec(i, format!("{prefix}-{i}"), &o.profile, None, Some(title))
        })
        .collect())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Which MQTT client a board runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    /// rumqttc ([`board::run`]): the reference board.
    #[default]
    Rumqttc,
    /// axon-core's own session over a tokio TCP stream ([`crate::lean::run`]): for fleets of
    /// thousands on one machine.
    Lean,
}

/// Starts every board on `link`; each runs until `shutdown` turns true, then leaves
/// gracefully.
pub fn start(
    specs: Vec<DeviceSpec>,
    broker: &BrokerAddr,
    reports: mpsc::UnboundedSender<BoardReport>,
    shutdown: watch::Receiver<bool>,
    link: Link,
) -> Vec<JoinHandle<Result<(), SimError>>> {
    let n = specs.len();
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let broker = broker.clone();
            let reports = reports.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                // Large fleets connect over about a second instead of all at once.
                if n > 50 {
                    tokio::time::sleep(Duration::from_micros((i as u64 * 1_000_000) / n as u64))
                        .await;
                }
                let stop = async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                };
                let id = spec.id.clone();
                let r = match link {
                    Link::Rumqttc => board::run(spec, broker, reports, stop).await,
                    Link::Lean => crate::lean::run(spec, broker, reports, stop).await,
                };
                if let Err(e) = &r {
                    tracing::error!(device = %id, error = %e, "board stopped");
                }
                r
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(profile: &str, devices: usize) -> FleetOptions {
        FleetOptions {
            profile: profile.into(),
            devices,
            id_prefix: None,
            site: "home".into(),
            telemetry_interval: Duration::from_secs(5),
            fault_rate: 0.0,
            seed: 1,
        }
    }

    #[test]
    fn home_has_every_kind_in_four_rooms() {
        let s = specs(&opts("home", 1)).unwrap();
        assert_eq!(s.len(), 13);
        for kind in crate::profiles::KINDS {
            assert!(s.iter().any(|d| d.kind == kind), "{kind}");
        }
        let mut rooms: Vec<_> = s.iter().filter_map(|d| d.room.clone()).collect();
        rooms.sort();
        rooms.dedup();
        assert_eq!(rooms, ["bedroom", "hall", "kitchen", "living room"]);
        for d in &s {
            axon_core::protocol::mcp::topics::DeviceId::new(d.id.clone()).unwrap();
        }
    }

    #[test]
    fn single_kind_fleets_number_their_devices() {
        let s = specs(&opts("lamp", 3)).unwrap();
        assert_eq!(
            s.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["lamp-1", "lamp-2", "lamp-3"]
        );
        assert!(specs(&opts("toaster", 1)).is_err());
    }
}
