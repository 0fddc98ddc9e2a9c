//! Who a discovered server is: its stable device id, its kind, and which device an address
//! names (docs/protocol.md §2.5).
//!
//! Owns the identity rule, once. A server-id is one connection of a server and may change on
//! every reconnect (EMQX's SDKs pick a random one), so it never names a device by itself:
//!
//! 1. `meta.axon.device_id`, when present and a valid [`DeviceId`];
//! 2. else, for `axon/{kind}/{last}`, the last level [`mapped`](map_name);
//! 3. else the whole server-name, mapped (`demo/counter/demo-7` → `demo-counter-demo-7`).
//!
//! The kind is `meta.axon.kind`, else the server-name's next-to-last level (`kind` in
//! `axon/{kind}/{id}`, `sub-type` in the spec's `type/sub-type/name`). A device is addressed by
//! its id, its full server-name, or its server-name's last level when no other device shares
//! that level ([`resolve`]).
//!
//! It never keeps state or sees the wire: the registry ([`super::client`]) applies it.

use serde_json::json;

use crate::protocol::jsonrpc::{code, ErrorObject};
use crate::protocol::mcp::client::DeviceInfo;
use crate::protocol::mcp::topics::DeviceId;
use crate::protocol::mcp::types::DeviceMeta;

/// The longest device id (docs/protocol.md §2.1).
const MAX_ID_LEN: usize = 32;
/// How much of a mapped name a hashed id keeps: 23 + `-` + 8 hex = 32.
const HASHED_PREFIX_LEN: usize = 23;

/// Where a device's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdSource {
    /// The device said it: `meta.axon.device_id`.
    Meta,
    /// Derived from the server-name.
    Name,
}

/// The stable identity of a server as the registry keys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The device id.
    pub device_id: DeviceId,
    /// Where the id came from.
    pub source: IdSource,
    /// The device's kind; empty when neither `meta` nor the name tell.
    pub kind: String,
}

/// The identity of the server named `server_name` that sent `meta` (docs/protocol.md §2.5).
pub fn identify(server_name: &str, meta: &DeviceMeta) -> Identity {
    let (device_id, source) = match DeviceId::new(meta.device_id.as_str()) {
        Ok(id) => (id, IdSource::Meta),
        // An absent or invalid id in `meta` is no id: the name is the identity then.
        Err(_) => (id_from_name(server_name), IdSource::Name),
    };
    let kind = if meta.kind.is_empty() {
        kind_from_name(server_name).unwrap_or_default().to_string()
    } else {
        meta.kind.clone()
    };
    Identity {
        device_id,
        source,
        kind,
    }
}

/// The device id a server-name stands for: the last level of `axon/{kind}/{last}`, else the
/// whole name, through [`map_name`].
pub fn id_from_name(server_name: &str) -> DeviceId {
    let levels: Vec<&str> = server_name.split('/').collect();
    match levels.as_slice() {
        ["axon", _, last] => map_name(last, server_name),
        _ => map_name(server_name, server_name),
    }
}

/// The kind a server-name tells: its next-to-last level, when that is a plain word
/// (`a-z`, `0-9`, `-`, `_`). `None` for a one-level name.
pub fn kind_from_name(server_name: &str) -> Option<&str> {
    let mut levels = server_name.rsplit('/');
    levels.next()?;
    let kind = levels.next()?;
    let plain = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    plain.then_some(kind)
}

/// Maps `text` (part or all of `server_name`) onto a valid device id:
/// ASCII letters are lowercased, every run of other characters (`/`, `.`, `_`, spaces,
/// non-ASCII) becomes one `-`, and `-` is trimmed from both ends. A result that is still not a
/// valid id (empty, over 32 characters, `presence`, `capability`) becomes [`hashed_id`] of
/// `server_name`. Deterministic, so a device keeps its id across reconnects and Hub restarts.
pub fn map_name(text: &str, server_name: &str) -> DeviceId {
    DeviceId::new(squash(text)).unwrap_or_else(|_| hashed_id(server_name))
}

/// `{mapped name, cut to 23}-{8 hex}`: the hex is the FNV-1a 32-bit hash of the whole
/// server-name. Used when a mapped name is not a valid id, and for the second of two servers
/// whose names map to the same id.
pub fn hashed_id(server_name: &str) -> DeviceId {
    let squashed = squash(server_name);
    let prefix = squashed[..squashed.len().min(HASHED_PREFIX_LEN)].trim_end_matches('-');
    let hash = fnv1a32(server_name.as_bytes());
    let id = if prefix.is_empty() {
        format!("d-{hash:08x}")
    } else {
        format!("{prefix}-{hash:08x}")
    };
    // Every character is a-z, 0-9 or '-', it starts with a letter or digit, it is at most
    // 32 long and it contains a '-': valid by construction.
    DeviceId::new(id).unwrap_or_else(|e| unreachable!("hashed ids are valid: {e}"))
}

/// Lowercase `a-z0-9`, runs of anything else as one `-`, no `-` at either end.
fn squash(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_ID_LEN * 2));
    let mut dash = false;
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The last level of a server-name.
pub fn last_level(server_name: &str) -> &str {
    server_name.rsplit('/').next().unwrap_or(server_name)
}

/// The device `address` names among `devices`: its device id, else its full server-name, else
/// its server-name's last level. Fails with `-32010` for no device, and with `-32602` listing
/// the candidates when a name or last level fits more than one device.
pub fn resolve<'a>(
    devices: impl IntoIterator<Item = &'a DeviceInfo>,
    address: &str,
) -> Result<&'a DeviceInfo, ErrorObject> {
    let devices: Vec<&DeviceInfo> = devices.into_iter().collect();
    if let Some(d) = devices.iter().find(|d| d.device_id.as_str() == address) {
        return Ok(d);
    }
    let by_name: Vec<&DeviceInfo> = devices
        .iter()
        .copied()
        .filter(|d| d.server_name == address)
        .collect();
    let candidates = if by_name.is_empty() {
        devices
            .iter()
            .copied()
            .filter(|d| last_level(&d.server_name) == address)
            .collect()
    } else {
        by_name
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(ErrorObject::with_data(
            code::DEVICE_OFFLINE,
            format!("unknown device {address}"),
            json!({"device": address}),
        )),
        many => {
            let listed: Vec<String> = many
                .iter()
                .map(|d| format!("{} ({})", d.device_id, d.server_name))
                .collect();
            Err(ErrorObject::with_data(
                code::INVALID_PARAMS,
                format!(
                    "device name {address:?} is ambiguous: it fits {}; use the device id or the full server-name",
                    listed.join(", ")
                ),
                json!({
                    "device": address,
                    "candidates": many
                        .iter()
                        .map(|d| json!({"device_id": d.device_id, "server_name": d.server_name}))
                        .collect::<Vec<_>>(),
                }),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(device_id: &str, kind: &str) -> DeviceMeta {
        DeviceMeta {
            device_id: device_id.into(),
            kind: kind.into(),
            ..DeviceMeta::default()
        }
    }

    #[test]
    fn the_id_in_meta_wins() {
        let i = identify("acme/things/whatever", &meta("kitchen-1", "lamp"));
        assert_eq!(i.device_id.as_str(), "kitchen-1");
        assert_eq!(i.source, IdSource::Meta);
        assert_eq!(i.kind, "lamp");
    }

    #[test]
    fn an_invalid_id_in_meta_falls_back_to_the_name() {
        for bad in ["Kitchen.1", "presence", "a/b", &"x".repeat(33)] {
            let i = identify("axon/lamp/kitchen-1", &meta(bad, ""));
            assert_eq!(i.device_id.as_str(), "kitchen-1", "{bad:?}");
            assert_eq!(i.source, IdSource::Name);
        }
    }

    #[test]
    fn an_axon_name_gives_its_last_level_and_kind() {
        let i = identify("axon/lamp/ref-lamp-1", &DeviceMeta::default());
        assert_eq!(i.device_id.as_str(), "ref-lamp-1");
        assert_eq!(i.source, IdSource::Name);
        assert_eq!(i.kind, "lamp");
        // A last level that needs mapping is mapped.
        assert_eq!(
            id_from_name("axon/lamp/Kitchen_Lamp.2").as_str(),
            "kitchen-lamp-2"
        );
    }

    #[test]
    fn another_name_gives_the_whole_name_mapped() {
        assert_eq!(
            id_from_name("demo/counter/demo-7").as_str(),
            "demo-counter-demo-7"
        );
        // `axon/` with more or fewer levels is not Axon's layout: the whole name counts.
        assert_eq!(id_from_name("axon/lamp").as_str(), "axon-lamp");
        assert_eq!(id_from_name("axon/a/b/c").as_str(), "axon-a-b-c");
        assert_eq!(id_from_name("lamp").as_str(), "lamp");
    }

    #[test]
    fn the_mapping_rule() {
        let cases = [
            ("Demo/Light/TS_Light.1", "demo-light-ts-light-1"),
            ("a//b", "a-b"),
            ("-a-/-b-", "a-b"),
            ("café/lamp", "caf-lamp"),
            ("x y/z", "x-y-z"),
        ];
        for (name, id) in cases {
            assert_eq!(id_from_name(name).as_str(), id, "{name:?}");
        }
        // Every mapped id is usable in topics and `/mcp` names: no '.', '/', '+', '#'.
        for (name, _) in cases {
            let id = id_from_name(name);
            assert!(!id.as_str().contains(['.', '/', '+', '#']));
        }
    }

    #[test]
    fn a_name_that_maps_to_no_valid_id_is_hashed() {
        let long = "vendor-with-a-long-name/building-1/floor-2/room-31/lamp-4";
        let id = id_from_name(long);
        assert_eq!(
            id.as_str(),
            "vendor-with-a-long-name-9ce96ce5",
            "docs/protocol.md §2.5"
        );
        assert_eq!(id, id_from_name(long), "deterministic");
        assert_ne!(id, id_from_name(&format!("{long}x")));
        // Reserved words and names without a single letter or digit.
        assert!(id_from_name("axon/lamp/presence")
            .as_str()
            .starts_with("axon-lamp-presence-"));
        let empty = id_from_name("__/..");
        assert!(empty.as_str().starts_with("d-"), "{empty}");
        assert_eq!(empty.as_str().len(), 10);
        // The hash itself is FNV-1a 32 (a known vector: "a" -> e40c292c).
        assert_eq!(hashed_id("a").as_str(), "a-e40c292c");
    }

    #[test]
    fn kind_from_meta_else_the_next_to_last_level() {
        assert_eq!(identify("axon/lamp/x", &meta("", "plug")).kind, "plug");
        assert_eq!(kind_from_name("axon/lamp/x"), Some("lamp"));
        assert_eq!(kind_from_name("demo/counter/demo-7"), Some("counter"));
        assert_eq!(kind_from_name("light/ts-light-1"), Some("light"));
        assert_eq!(kind_from_name("lamp-1"), None);
        assert_eq!(kind_from_name("acme/Big Lamps/x"), None, "not a plain word");
        assert_eq!(identify("lamp-1", &DeviceMeta::default()).kind, "");
    }
}
