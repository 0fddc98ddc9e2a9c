//! Which devices a turn offers the agent (docs/scale.md §3): the whole site while it is small,
//! and at a big site the devices the request names.
//!
//! Why: a turn's tools go to the model, and the planner reads the devices they belong to. At
//! 13 devices that is ~40 tools. At 10,000 it would be 30,000 tools copied and scanned on every
//! turn, and no model takes a prompt that size. So past [`WHOLE_SITE_UP_TO`] ready devices a
//! turn sees at most [`AT_MOST`]: those whose own words (id, title, room, kind) the request
//! uses most, and the device the person talks through.
//!
//! Owns the word index over the registry, kept up to date as devices come and go, so that
//! choosing costs the request's words, not the fleet. It never calls anything or decides what
//! a request means: the planner (or the model) does, among the devices chosen here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::agent::planner::words;
use crate::protocol::mcp::client::{DeviceInfo, DeviceState};

/// Up to this many ready devices, every turn offers all of them (as before there was a scope).
pub const WHOLE_SITE_UP_TO: usize = 200;
/// At a bigger site, a turn offers at most this many devices.
pub const AT_MOST: usize = 50;

/// The words of every ready device, and the devices of every word.
#[derive(Debug, Clone, Default)]
pub struct DeviceIndex {
    /// Ready devices and their words.
    ready: BTreeMap<String, Vec<String>>,
    /// Word → the ready devices that have it.
    by_word: HashMap<String, BTreeSet<String>>,
}

/// What a turn may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every ready device (a small site).
    WholeSite,
    /// These device ids, best match first.
    Devices(Vec<String>),
}

impl Scope {
    /// Whether `device` is in it.
    pub fn contains(&self, device: &str) -> bool {
        match self {
            Scope::WholeSite => true,
            Scope::Devices(ids) => ids.iter().any(|d| d == device),
        }
    }
}

/// A device's own words: its id's parts, title, room and kind.
fn device_words(d: &DeviceInfo) -> Vec<String> {
    let mut ws = words(&d.device_id.as_str().replace(['-', '_'], " "));
    for text in [
        d.meta.title.as_deref(),
        d.meta.room.as_deref(),
        Some(d.kind.as_str()),
    ]
    .into_iter()
    .flatten()
    {
        ws.extend(words(text));
    }
    ws.sort();
    ws.dedup();
    ws
}

impl DeviceIndex {
    /// An empty index.
    pub fn new() -> DeviceIndex {
        DeviceIndex::default()
    }

    /// How many devices are ready.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// `device` changed (ready, offline, renamed): indexed if ready, forgotten if not.
    pub fn update(&mut self, device: &DeviceInfo) {
        let id = device.device_id.as_str();
        self.forget(id);
        if device.state != DeviceState::Ready {
            return;
        }
        let ws = device_words(device);
        for w in &ws {
            self.by_word
                .entry(w.clone())
                .or_default()
                .insert(id.to_string());
        }
        self.ready.insert(id.to_string(), ws);
    }

    /// `device` is gone from the registry.
    pub fn forget(&mut self, device: &str) {
        let Some(ws) = self.ready.remove(device) else {
            return;
        };
        for w in ws {
            if let Some(set) = self.by_word.get_mut(&w) {
                set.remove(device);
                if set.is_empty() {
                    self.by_word.remove(&w);
                }
            }
        }
    }

    /// The devices a turn for `text` offers, for a person using `preferred`.
    ///
    /// Words that many devices share ("lamp" at a site of lamps) do not pick devices on their
    /// own; they rank the ones a rarer word picked. A request whose words are all common
    /// gets the first [`AT_MOST`] of the commonest match, so the planner can ask which one.
    pub fn scope(&self, text: &str, preferred: Option<&str>) -> Scope {
        if self.ready.len() <= WHOLE_SITE_UP_TO {
            return Scope::WholeSite;
        }
        let mut ws = words(text);
        ws.sort();
        ws.dedup();
        let mut sets: Vec<&BTreeSet<String>> =
            ws.iter().filter_map(|w| self.by_word.get(w)).collect();
        sets.sort_by_key(|s| s.len());
        // Candidates: every device a rare word names; else the smallest common set, cut.
        let mut candidates: BTreeSet<&str> = sets
            .iter()
            .filter(|s| s.len() <= WHOLE_SITE_UP_TO)
            .flat_map(|s| s.iter().map(String::as_str))
            .collect();
        if candidates.is_empty() {
            if let Some(s) = sets.first() {
                candidates = s.iter().take(AT_MOST).map(String::as_str).collect();
            }
        }
        let score = |id: &str| sets.iter().filter(|s| s.contains(id)).count();
        let mut ranked: Vec<(usize, &str)> =
            candidates.into_iter().map(|id| (score(id), id)).collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let best = ranked.first().map_or(0, |r| r.0);
        let mut ids: Vec<String> = ranked
            .into_iter()
            .take_while(|(s, _)| *s == best)
            .take(AT_MOST)
            .map(|(_, id)| id.to_string())
            .collect();
        if let Some(p) = preferred.filter(|p| self.ready.contains_key(*p)) {
            if !ids.iter().any(|d| d == p) {
                ids.push(p.to_string());
            }
        }
        Scope::Devices(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mcp::topics::DeviceId;

    fn device(id: &str, kind: &str, title: &str, room: Option<&str>) -> DeviceInfo {
        let mut d = crate::agent::test_home::device(id, kind, room.unwrap_or(""), title, &[]);
        d.meta.room = room.map(str::to_string);
        d.device_id = DeviceId::new(id).unwrap();
        d
    }

    fn big_site() -> DeviceIndex {
        let mut index = DeviceIndex::new();
        index.update(&device(
            "kitchen-lamp",
            "lamp",
            "Kitchen lamp",
            Some("kitchen"),
        ));
        index.update(&device(
            "bedroom-lamp",
            "lamp",
            "Bedroom lamp",
            Some("bedroom"),
        ));
        index.update(&device("tab-1", "tab", "Phone", None));
        for i in 1..=1000 {
            index.update(&device(
                &format!("scale-{i}"),
                "lamp",
                &format!("Lamp {i}"),
                None,
            ));
        }
        index
    }

    #[test]
    fn a_small_site_offers_every_device() {
        let mut index = DeviceIndex::new();
        for i in 0..WHOLE_SITE_UP_TO {
            index.update(&device(&format!("lamp-{i}"), "lamp", "Lamp", None));
        }
        assert_eq!(
            index.scope("turn on the kitchen lamp", None),
            Scope::WholeSite
        );
    }

    #[test]
    fn at_a_big_site_the_request_names_its_devices() {
        let index = big_site();
        assert_eq!(index.ready(), 1003);
        assert_eq!(
            index.scope("turn on the kitchen lamp", None),
            Scope::Devices(vec!["kitchen-lamp".into()])
        );
        assert_eq!(
            index.scope("turn off lamp 17", None),
            Scope::Devices(vec!["scale-17".into()])
        );
        // The person's own device is always there (for "take a photo", "say …").
        assert_eq!(
            index.scope("turn on the kitchen lamp", Some("tab-1")),
            Scope::Devices(vec!["kitchen-lamp".into(), "tab-1".into()])
        );
    }

    #[test]
    fn a_vague_request_at_a_big_site_gets_a_bounded_choice() {
        let index = big_site();
        let Scope::Devices(ids) = index.scope("turn on the lamp", None) else {
            panic!("a big site is scoped");
        };
        assert_eq!(ids.len(), AT_MOST);
        assert_eq!(index.scope("hello there", None), Scope::Devices(vec![]));
    }

    #[test]
    fn a_device_that_goes_offline_leaves_the_index() {
        let mut index = big_site();
        let mut d = device("kitchen-lamp", "lamp", "Kitchen lamp", Some("kitchen"));
        d.state = DeviceState::Offline;
        index.update(&d);
        assert_eq!(index.ready(), 1002);
        let Scope::Devices(ids) = index.scope("turn on the kitchen lamp", None) else {
            panic!("a big site is scoped");
        };
        assert!(!ids.contains(&"kitchen-lamp".to_string()));
        // Nothing is left under its words.
        assert!(!index.by_word.contains_key("kitchen"));
    }
}
