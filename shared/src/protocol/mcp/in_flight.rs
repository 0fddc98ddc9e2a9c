//! What the MCP client has under way, indexed so that no message costs a scan of the fleet
//! (docs/scale.md §3): the requests waiting for an answer, the subscriptions waiting for their
//! SUBACK, and the initializations admitted into the window or waiting for a place in it.
//!
//! Owns only bookkeeping: every lookup, expiry and "who is next" is O(log n) or O(1) in the
//! number of devices. It never decides what a request means, sends anything, or changes a
//! device's state: `client.rs` does, and asks these.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::protocol::jsonrpc::RequestId;
use crate::protocol::mcp::topics::DeviceId;
use crate::time::Timestamp;
use crate::transport::link::SubscribeToken;

/// A request's key: the device it went to and its id.
pub(crate) type Key = (DeviceId, RequestId);

/// Requests waiting for an answer, by key, with their deadlines in order.
#[derive(Debug, Clone)]
pub(crate) struct Requests<P> {
    /// Ordered by device first: a device's requests are one range.
    by_key: BTreeMap<Key, (Timestamp, P)>,
    deadlines: BTreeSet<(Timestamp, Key)>,
}

impl<P> Default for Requests<P> {
    fn default() -> Self {
        Requests {
            by_key: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<P> Requests<P> {
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn insert(&mut self, key: Key, deadline: Timestamp, p: P) {
        if let Some((old, _)) = self.by_key.insert(key.clone(), (deadline, p)) {
            self.deadlines.remove(&(old, key.clone()));
        }
        self.deadlines.insert((deadline, key));
    }

    pub(crate) fn remove(&mut self, key: &Key) -> Option<P> {
        let (deadline, p) = self.by_key.remove(key)?;
        self.deadlines.remove(&(deadline, key.clone()));
        Some(p)
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&P> {
        self.by_key.get(key).map(|(_, p)| p)
    }

    /// Moves a request's deadline (progress extends it).
    pub(crate) fn set_deadline(&mut self, key: &Key, deadline: Timestamp) {
        if let Some((old, _)) = self.by_key.get_mut(key) {
            self.deadlines.remove(&(*old, key.clone()));
            *old = deadline;
            self.deadlines.insert((deadline, key.clone()));
        }
    }

    /// The keys of `device`'s requests.
    pub(crate) fn of_device(&self, device: &DeviceId) -> Vec<Key> {
        let from = (device.clone(), RequestId::Number(i64::MIN));
        self.by_key
            .range(from..)
            .take_while(|((d, _), _)| d == device)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The keys whose deadline is at or before `now`, earliest first.
    pub(crate) fn expired(&self, now: Timestamp) -> Vec<Key> {
        self.deadlines
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// The earliest deadline.
    pub(crate) fn earliest(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Everything, emptied.
    pub(crate) fn drain(&mut self) -> Vec<(Key, P)> {
        self.deadlines.clear();
        std::mem::take(&mut self.by_key)
            .into_iter()
            .map(|(k, (_, p))| (k, p))
            .collect()
    }
}

/// Subscriptions for one instance of a device (its server-id), waiting for their SUBACK.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subacks {
    by_token: HashMap<SubscribeToken, (DeviceId, String)>,
    by_device: HashMap<DeviceId, Vec<SubscribeToken>>,
}

impl Subacks {
    pub(crate) fn insert(&mut self, token: SubscribeToken, device: DeviceId, server_id: String) {
        self.by_device
            .entry(device.clone())
            .or_default()
            .push(token);
        self.by_token.insert(token, (device, server_id));
    }

    pub(crate) fn remove(&mut self, token: &SubscribeToken) -> Option<(DeviceId, String)> {
        let (device, server_id) = self.by_token.remove(token)?;
        if let Some(tokens) = self.by_device.get_mut(&device) {
            tokens.retain(|t| t != token);
            if tokens.is_empty() {
                self.by_device.remove(&device);
            }
        }
        Some((device, server_id))
    }

    /// Forgets every subscription of `device`.
    pub(crate) fn forget_device(&mut self, device: &DeviceId) {
        for t in self.by_device.remove(device).unwrap_or_default() {
            self.by_token.remove(&t);
        }
    }

    /// Whether `device`'s instance `server_id` waits for a SUBACK.
    pub(crate) fn awaits(&self, device: &DeviceId, server_id: &str) -> bool {
        self.by_device.get(device).is_some_and(|tokens| {
            tokens
                .iter()
                .any(|t| self.by_token.get(t).is_some_and(|(_, s)| s == server_id))
        })
    }

    pub(crate) fn clear(&mut self) {
        self.by_token.clear();
        self.by_device.clear();
    }
}

/// The initialization window: at most `limit` devices between their online message and their
/// first tool list at once; the others wait their turn in the order they came.
///
/// Why: a site's presence replays all at once (10,000 retained messages on one SUBSCRIBE).
/// Initializing every device at once puts 10,000 requests in flight into one Hub and one
/// broker session, and their deadlines run out before the answers can be read.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    limit: usize,
    admitted: HashSet<DeviceId>,
    waiting: VecDeque<DeviceId>,
    queued: HashSet<DeviceId>,
}

impl Window {
    pub(crate) fn new(limit: usize) -> Window {
        Window {
            limit: limit.max(1),
            admitted: HashSet::new(),
            waiting: VecDeque::new(),
            queued: HashSet::new(),
        }
    }

    /// Whether `device` holds a place.
    pub(crate) fn holds(&self, device: &DeviceId) -> bool {
        self.admitted.contains(device)
    }

    /// Queues `device` unless it holds a place or waits already.
    pub(crate) fn enqueue(&mut self, device: DeviceId) {
        if !self.admitted.contains(&device) && self.queued.insert(device.clone()) {
            self.waiting.push_back(device);
        }
    }

    /// `device` is done (ready, unreachable, offline or gone): its place is free.
    #[cfg(test)]
    pub(crate) fn release(&mut self, device: &DeviceId) {
        self.admitted.remove(device);
    }

    /// Frees the place of every admitted device that is no longer `initializing`.
    pub(crate) fn release_unless(&mut self, mut initializing: impl FnMut(&DeviceId) -> bool) {
        self.admitted.retain(|d| initializing(d));
    }

    /// The next waiting device if a place is free, taking the place; `still_wants` skips one
    /// that no longer needs initializing.
    pub(crate) fn admit_next(
        &mut self,
        mut still_wants: impl FnMut(&DeviceId) -> bool,
    ) -> Option<DeviceId> {
        while self.admitted.len() < self.limit {
            let device = self.waiting.pop_front()?;
            self.queued.remove(&device);
            if still_wants(&device) {
                self.admitted.insert(device.clone());
                return Some(device);
            }
        }
        None
    }

    /// How many hold a place, and how many wait.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.admitted.len(), self.waiting.len())
    }

    pub(crate) fn clear(&mut self) {
        self.admitted.clear();
        self.waiting.clear();
        self.queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(d: &str, n: i64) -> Key {
        (DeviceId::new(d).unwrap(), RequestId::Number(n))
    }

    #[test]
    fn requests_expire_in_deadline_order_and_a_device_is_one_range() {
        let t0 = Timestamp::ZERO;
        let mut r = Requests::default();
        r.insert(key("b", 1), t0 + Duration::from_secs(3), "b1");
        r.insert(key("a", 2), t0 + Duration::from_secs(1), "a2");
        r.insert(key("a", 3), t0 + Duration::from_secs(2), "a3");
        r.insert(key("ab", 4), t0 + Duration::from_secs(9), "ab4");
        assert_eq!(r.earliest(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            r.expired(t0 + Duration::from_secs(2)),
            vec![key("a", 2), key("a", 3)]
        );
        assert_eq!(
            r.of_device(&DeviceId::new("a").unwrap()),
            vec![key("a", 2), key("a", 3)]
        );
        // Progress moves a deadline: it no longer expires where it would have.
        r.set_deadline(&key("a", 2), t0 + Duration::from_secs(5));
        assert_eq!(r.expired(t0 + Duration::from_secs(2)), vec![key("a", 3)]);
        assert_eq!(r.remove(&key("a", 3)), Some("a3"));
        assert_eq!(r.remove(&key("a", 3)), None);
        assert_eq!(r.earliest(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(r.len(), 3);
        assert_eq!(r.drain().len(), 3);
        assert_eq!((r.len(), r.earliest()), (0, None));
    }

    #[test]
    fn the_window_admits_in_order_up_to_its_limit_and_skips_the_finished() {
        let id = |s: &str| DeviceId::new(s).unwrap();
        let mut w = Window::new(2);
        for d in ["a", "b", "c", "d", "a"] {
            w.enqueue(id(d));
        }
        assert_eq!(w.counts(), (0, 4), "a duplicate waits once");
        assert_eq!(w.admit_next(|_| true), Some(id("a")));
        assert_eq!(w.admit_next(|_| true), Some(id("b")));
        assert_eq!(w.admit_next(|_| true), None, "the window is full");
        w.enqueue(id("a"));
        assert_eq!(
            w.counts(),
            (2, 2),
            "one holding a place is not queued again"
        );
        w.release(&id("a"));
        // c went offline while it waited: d takes the place.
        assert_eq!(w.admit_next(|d| *d != id("c")), Some(id("d")));
        assert!(w.holds(&id("d")) && !w.holds(&id("a")));
        assert_eq!(w.counts(), (2, 0));
    }

    #[test]
    fn subacks_are_found_by_token_and_by_device() {
        let id = |s: &str| DeviceId::new(s).unwrap();
        let mut s = Subacks::default();
        s.insert(SubscribeToken(1), id("a"), "a-1".into());
        s.insert(SubscribeToken(2), id("a"), "a-2".into());
        s.insert(SubscribeToken(3), id("b"), "b".into());
        assert!(s.awaits(&id("a"), "a-2") && !s.awaits(&id("a"), "a-3"));
        assert_eq!(s.remove(&SubscribeToken(2)), Some((id("a"), "a-2".into())));
        assert!(!s.awaits(&id("a"), "a-2"));
        s.forget_device(&id("a"));
        assert_eq!(s.remove(&SubscribeToken(1)), None);
        assert!(s.awaits(&id("b"), "b"));
    }
}
