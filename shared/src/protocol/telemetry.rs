//! Telemetry and device events (docs/protocol.md §6.6): plain MQTT beside MCP.
//!
//! Owns the payload types of `axon/telemetry/{id}` and `axon/events/{id}`, their checks, the
//! duplicate filter for QoS 1 events, and a rolling window of samples per device for the
//! console. Timestamps here are the payload's wall-clock Unix milliseconds; nothing reads a
//! clock. It also owns what a metric's name says about it ([`MetricKey`]: the quantity and the
//! [`Unit`] its suffix carries), so the agent's answers and the console's plots read units
//! from one table and never show a key such as `current_c` to a person.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transport::link::{QoS, Subscription};

/// Most metrics one sample may carry.
pub const MAX_METRICS: usize = 64;
/// Longest string metric value.
pub const MAX_STRING_METRIC: usize = 64;
/// Earliest plausible `ts` in milliseconds (2001-09-09); smaller values are seconds by mistake.
const MIN_TS_MS: u64 = 1_000_000_000_000;

/// Why a telemetry or event payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// Not JSON, or not the expected shape.
    #[error("invalid payload: {0}")]
    Invalid(String),
    /// `ts` looks like seconds.
    #[error("ts {0} is not Unix milliseconds (it looks like seconds; multiply by 1000)")]
    TimestampNotMillis(u64),
    /// A metric name that is not snake_case.
    #[error("metric name {0:?} is not snake_case (e.g. temperature_c)")]
    MetricName(String),
    /// Too many metrics.
    #[error("{0} metrics exceed the limit of {MAX_METRICS}")]
    TooManyMetrics(usize),
    /// A string value too long.
    #[error("metric {name:?}: string of {len} characters exceeds {MAX_STRING_METRIC}")]
    StringTooLong {
        /// The metric.
        name: String,
        /// Its length.
        len: usize,
    },
}

/// A metric value: a number, a bool or a short string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    /// A bool (checked first: JSON `true` is not a number).
    Bool(bool),
    /// A number.
    Number(f64),
    /// A short string.
    Text(String),
}

impl MetricValue {
    /// The value as a number for plotting (`true` = 1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MetricValue::Number(n) => Some(*n),
            MetricValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            MetricValue::Text(_) => None,
        }
    }
}

/// The unit of a metric, read from its name's suffix: metric names are snake_case with a unit
/// suffix (`_c`, `_pct`, `_w`, `_wh`, `_lux`, `_dbm`, ...). Devices declare units nowhere else
/// (their tools have no output schemas), so the suffix is the one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// `_c`, `_celsius`: degrees Celsius.
    Celsius,
    /// `_pct`, `_percent`: per cent.
    Percent,
    /// `_w`: watts.
    Watts,
    /// `_wh`: watt-hours.
    WattHours,
    /// `_kwh`: kilowatt-hours.
    KilowattHours,
    /// `_lux`: illuminance.
    Lux,
    /// `_ppm`: parts per million (CO2, VOC).
    Ppm,
    /// `_dbm`: radio signal strength.
    Dbm,
    /// `_v`: volts.
    Volts,
    /// `_hz`: hertz.
    Hertz,
    /// `_ms`: milliseconds.
    Millis,
    /// `_s`: seconds.
    Seconds,
    /// No unit the name says (a count, a state, a mode).
    None,
}

/// Suffix to unit. A suffix must follow an underscore: `c` alone is a name, not a unit.
const SUFFIXES: [(&str, Unit); 14] = [
    ("c", Unit::Celsius),
    ("celsius", Unit::Celsius),
    ("pct", Unit::Percent),
    ("percent", Unit::Percent),
    ("w", Unit::Watts),
    ("wh", Unit::WattHours),
    ("kwh", Unit::KilowattHours),
    ("lux", Unit::Lux),
    ("ppm", Unit::Ppm),
    ("dbm", Unit::Dbm),
    ("v", Unit::Volts),
    ("hz", Unit::Hertz),
    ("ms", Unit::Millis),
    ("s", Unit::Seconds),
];

/// Names without a suffix that are levels from 0 to 100: the lamp's and the speaker's
/// `get_state` say `brightness` and `volume` where their telemetry says `brightness_pct` and
/// `volume_pct`.
const PERCENT_NAMES: [&str; 3] = ["brightness", "volume", "level"];

impl Unit {
    /// The symbol a person reads after the number (`"°C"`, `"%"`, `"W"`; empty for none).
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Celsius => "°C",
            Unit::Percent => "%",
            Unit::Watts => "W",
            Unit::WattHours => "Wh",
            Unit::KilowattHours => "kWh",
            Unit::Lux => "lux",
            Unit::Ppm => "ppm",
            Unit::Dbm => "dBm",
            Unit::Volts => "V",
            Unit::Hertz => "Hz",
            Unit::Millis => "ms",
            Unit::Seconds => "s",
            Unit::None => "",
        }
    }

    /// How finely a person is told a value, in tenths: temperatures to the half degree (a
    /// room is not 21.3 °C to anyone), percentages, light and counts whole, small powers and
    /// energies to a tenth.
    fn step_tenths(self, v: f64) -> i64 {
        match self {
            Unit::Celsius => 5,
            Unit::Watts | Unit::WattHours if v.abs() < 10.0 => 1,
            Unit::KilowattHours | Unit::Volts => 1,
            Unit::None if v.fract() != 0.0 => 1,
            _ => 10,
        }
    }

    /// `v` as a person reads it: rounded for the unit, with its symbol (`"21.5 °C"`, `"44%"`,
    /// `"300 lux"`, `"3"`).
    pub fn value_text(self, v: f64) -> String {
        self.with_symbol(decimal_text(v, self.step_tenths(v)))
    }

    /// A number already written (`"21.5"`) with the unit's symbol: `"21.5 °C"`, `"44%"`.
    pub fn with_symbol(self, number: String) -> String {
        match self {
            Unit::None => number,
            Unit::Percent => number + "%",
            u => format!("{number} {}", u.symbol()),
        }
    }
}

/// `v` rounded to a multiple of `step_tenths` tenths (5: halves, 10: wholes, 1: tenths), with
/// no trailing `.0` (`"21"`, `"21.5"`, `"-0.3"`). Integer arithmetic: float formatting would
/// weigh ~8 KB gzip on the web pages that share this (docs/web-size.md).
pub fn decimal_text(v: f64, step_tenths: i64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let step = step_tenths.max(1);
    let t = (v * 10.0 / step as f64).round() as i64 * step;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    if t % 10 == 0 {
        format!("{sign}{}", t / 10)
    } else {
        format!("{sign}{}.{}", t / 10, t % 10)
    }
}

/// What a metric's name says: the quantity (the name without its unit suffix, e.g.
/// `humidity` from `humidity_pct`) and the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricKey<'a> {
    /// The name without the unit suffix (`current` from `current_c`, `driver_temp` from
    /// `driver_temp_c`; the whole name when there is no known suffix).
    pub quantity: &'a str,
    /// The unit the suffix names.
    pub unit: Unit,
}

impl<'a> MetricKey<'a> {
    /// Reads a metric name (`temperature_c`, `power_w`, `on`, `photos_taken`).
    pub fn parse(name: &'a str) -> MetricKey<'a> {
        if let Some((quantity, suffix)) = name.rsplit_once('_') {
            if let Some((_, unit)) = SUFFIXES.iter().find(|(s, _)| *s == suffix) {
                if !quantity.is_empty() {
                    return MetricKey {
                        quantity,
                        unit: *unit,
                    };
                }
            }
        }
        let unit = if PERCENT_NAMES.contains(&name) {
            Unit::Percent
        } else {
            Unit::None
        };
        MetricKey {
            quantity: name,
            unit,
        }
    }

    /// The words for a true and a false value of a known switch-like metric (`on`/`off`,
    /// `locked`/`unlocked`); `None` for any other name.
    pub fn state_words(&self) -> Option<(&'static str, &'static str)> {
        Some(match self.quantity {
            "on" => ("on", "off"),
            "locked" => ("locked", "unlocked"),
            "open" => ("open", "closed"),
            "motion" => ("detected", "none"),
            "heating" => ("heating", "not heating"),
            "cooling" => ("cooling", "not cooling"),
            _ => return None,
        })
    }

    /// The quantity in words (`driver temperature` for `driver_temp`).
    pub fn words(&self) -> String {
        self.quantity
            .split('_')
            .map(|w| if w == "temp" { "temperature" } else { w })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One telemetry sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Unix time in milliseconds.
    pub ts: u64,
    /// Metric name (snake_case with a unit suffix) to value.
    pub metrics: BTreeMap<String, MetricValue>,
}

fn snake_case(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Telemetry {
    /// Reads and checks a payload.
    pub fn parse(bytes: &[u8]) -> Result<Telemetry, TelemetryError> {
        let t: Telemetry =
            serde_json::from_slice(bytes).map_err(|e| TelemetryError::Invalid(e.to_string()))?;
        if t.ts < MIN_TS_MS {
            return Err(TelemetryError::TimestampNotMillis(t.ts));
        }
        if t.metrics.len() > MAX_METRICS {
            return Err(TelemetryError::TooManyMetrics(t.metrics.len()));
        }
        for (name, value) in &t.metrics {
            if !snake_case(name) {
                return Err(TelemetryError::MetricName(name.clone()));
            }
            if let MetricValue::Text(s) = value {
                let len = s.chars().count();
                if len > MAX_STRING_METRIC {
                    return Err(TelemetryError::StringTooLong {
                        name: name.clone(),
                        len,
                    });
                }
            }
        }
        Ok(t)
    }

    /// The payload bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// The agent may act or tell the user.
    Warning,
    /// Act now.
    Critical,
}

/// Something that happened on a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// Unix time in milliseconds.
    pub ts: u64,
    /// `fault`, `fault_cleared`, `button`, `motion`, `battery_low`, `door`, `tamper`, ... (open set).
    pub kind: String,
    /// Severity.
    pub severity: Severity,
    /// For people.
    pub message: String,
    /// Lets the Hub drop QoS 1 duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Extra detail.
    #[serde(default = "empty_object")]
    pub data: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl DeviceEvent {
    /// Reads and checks a payload.
    pub fn parse(bytes: &[u8]) -> Result<DeviceEvent, TelemetryError> {
        let e: DeviceEvent =
            serde_json::from_slice(bytes).map_err(|e| TelemetryError::Invalid(e.to_string()))?;
        if e.ts < MIN_TS_MS {
            return Err(TelemetryError::TimestampNotMillis(e.ts));
        }
        if !snake_case(&e.kind) {
            return Err(TelemetryError::Invalid(format!(
                "event kind {:?} is not snake_case",
                e.kind
            )));
        }
        Ok(e)
    }

    /// The payload bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Remembers the last `capacity` event ids to drop QoS 1 redeliveries.
#[derive(Debug, Clone)]
pub struct DuplicateFilter {
    capacity: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl DuplicateFilter {
    /// A filter remembering `capacity` ids (e.g. 256).
    pub fn new(capacity: usize) -> Self {
        DuplicateFilter {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// True the first time an id is seen (and for events without an id).
    pub fn first_time(&mut self, event: &DeviceEvent) -> bool {
        let Some(id) = &event.id else { return true };
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.seen.insert(id.clone());
        true
    }
}

/// A rolling window of one device's samples, bounded by count and by age.
#[derive(Debug, Clone)]
pub struct TelemetryWindow {
    max_samples: usize,
    max_age_ms: u64,
    samples: VecDeque<Telemetry>,
}

impl TelemetryWindow {
    /// Keeps at most `max_samples`, none older than `max_age_ms` behind the newest.
    pub fn new(max_samples: usize, max_age_ms: u64) -> Self {
        TelemetryWindow {
            max_samples: max_samples.max(1),
            max_age_ms,
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample (out-of-order samples are placed by `ts`).
    pub fn push(&mut self, t: Telemetry) {
        let at = self
            .samples
            .iter()
            .rposition(|s| s.ts <= t.ts)
            .map_or(0, |i| i + 1);
        self.samples.insert(at, t);
        let newest = self.samples.back().map_or(0, |s| s.ts);
        while self.samples.len() > self.max_samples
            || self
                .samples
                .front()
                .is_some_and(|s| newest.saturating_sub(s.ts) > self.max_age_ms)
        {
            self.samples.pop_front();
        }
    }

    /// Drops the oldest samples past `n` (the store's share for this window at a big site).
    pub fn trim_to(&mut self, n: usize) {
        while self.samples.len() > n.max(1) {
            self.samples.pop_front();
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Telemetry> {
        self.samples.back()
    }

    /// Every sample, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Telemetry> {
        self.samples.iter()
    }

    /// `(ts, value)` points of one metric, for a plot.
    pub fn series(&self, metric: &str) -> Vec<(u64, f64)> {
        self.samples
            .iter()
            .filter_map(|s| Some((s.ts, s.metrics.get(metric)?.as_f64()?)))
            .collect()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// What a telemetry or event message meant to the Hub.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetryUpdate {
    /// A new sample (also the retained `/latest` one).
    Sample {
        /// Device id.
        device: String,
        /// The sample.
        sample: Telemetry,
    },
    /// A device event, the first time it is seen.
    Event {
        /// Device id.
        device: String,
        /// The event.
        event: DeviceEvent,
    },
}

/// The Hub's telemetry side: a window per device, recent events, duplicate filtering.
/// Bounded in devices, samples and events, so a noisy or hostile fleet cannot grow it.
#[derive(Debug, Clone)]
pub struct TelemetryStore {
    windows: std::collections::HashMap<String, TelemetryWindow>,
    events: VecDeque<(String, DeviceEvent)>,
    duplicates: DuplicateFilter,
    max_devices: usize,
    max_samples: usize,
    max_age_ms: u64,
    /// Samples kept across all devices.
    total_samples: usize,
}

/// Recent events the store keeps across all devices.
pub const RECENT_EVENTS: usize = 100;

/// Samples a store keeps across all its devices unless told otherwise: a big site shares them
/// (10,000 devices keep 5 each), so memory stays bounded however many devices send. At 120
/// each, 10,000 lamps would hold 1.2 million samples after ten minutes (docs/scale.md §3).
pub const TOTAL_SAMPLES: usize = 50_000;
/// Samples a device keeps however big the site.
const FEWEST_SAMPLES: usize = 2;

impl TelemetryStore {
    /// A store of `max_samples` samples over `max_age_ms` per device, for up to
    /// `max_devices` devices.
    pub fn new(max_devices: usize, max_samples: usize, max_age_ms: u64) -> Self {
        TelemetryStore {
            windows: Default::default(),
            events: VecDeque::new(),
            duplicates: DuplicateFilter::new(256),
            max_devices,
            max_samples,
            max_age_ms,
            total_samples: TOTAL_SAMPLES,
        }
    }

    /// The same store, keeping at most `total` samples across its devices.
    pub fn with_total_samples(mut self, total: usize) -> Self {
        self.total_samples = total;
        self
    }

    /// How many samples a device keeps now: its window, or its share of the total.
    fn share(&self) -> usize {
        (self.total_samples / self.windows.len().max(1))
            .clamp(FEWEST_SAMPLES, self.max_samples.max(FEWEST_SAMPLES))
    }

    /// What the Hub subscribes to (docs/protocol.md §3.2), with the QoS of each.
    ///
    /// Samples at QoS 0: a sample that is late is replaced by the next one, and at QoS 1 a
    /// site's telemetry would share the broker's in-flight window and queue for the Hub with
    /// presence and MCP answers, so a burst of samples held up (or, past the broker's queue,
    /// lost) the messages that discovery needs (docs/scale.md §3). Events stay QoS 1: each is
    /// said once.
    pub fn subscriptions() -> [Subscription; 3] {
        let sub = |filter: &str, qos| Subscription {
            filter: filter.to_string(),
            qos,
            no_local: false,
        };
        [
            sub("axon/telemetry/+", QoS::AtMostOnce),
            sub("axon/telemetry/+/latest", QoS::AtMostOnce),
            sub("axon/events/+", QoS::AtLeastOnce),
        ]
    }

    /// Reads one message. `Ok(None)` for topics that are not telemetry, repeats of a sample
    /// already held, and duplicate events.
    pub fn handle(
        &mut self,
        topic: &str,
        payload: &[u8],
    ) -> Result<Option<TelemetryUpdate>, TelemetryError> {
        use crate::protocol::mcp::topics::Topic;
        match Topic::parse(topic) {
            Some(Topic::Telemetry { device, .. }) => {
                let sample = Telemetry::parse(payload)?;
                if !self.windows.contains_key(device) && self.windows.len() >= self.max_devices {
                    return Err(TelemetryError::Invalid(format!(
                        "telemetry from more than {} devices; {device} ignored",
                        self.max_devices
                    )));
                }
                let w = self
                    .windows
                    .entry(device.to_string())
                    .or_insert_with(|| TelemetryWindow::new(self.max_samples, self.max_age_ms));
                // `/latest` repeats a sample the live topic already brought.
                if w.iter().any(|s| s == &sample) {
                    return Ok(None);
                }
                w.push(sample.clone());
                let share = self.share();
                if let Some(w) = self.windows.get_mut(device) {
                    w.trim_to(share);
                }
                Ok(Some(TelemetryUpdate::Sample {
                    device: device.to_string(),
                    sample,
                }))
            }
            Some(Topic::Events { device }) => {
                let event = DeviceEvent::parse(payload)?;
                if !self.duplicates.first_time(&event) {
                    return Ok(None);
                }
                if self.events.len() == RECENT_EVENTS {
                    self.events.pop_front();
                }
                self.events.push_back((device.to_string(), event.clone()));
                Ok(Some(TelemetryUpdate::Event {
                    device: device.to_string(),
                    event,
                }))
            }
            _ => Ok(None),
        }
    }

    /// One device's window.
    pub fn window(&self, device: &str) -> Option<&TelemetryWindow> {
        self.windows.get(device)
    }

    /// Recent events of one device, oldest first.
    pub fn events_of<'a>(&'a self, device: &'a str) -> impl Iterator<Item = &'a DeviceEvent> {
        self.events
            .iter()
            .filter(move |(d, _)| d == device)
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u64 = 1_790_000_000_123;

    #[test]
    fn telemetry_round_trips_and_checks() {
        let raw = format!(
            r#"{{"ts":{TS},"metrics":{{"temperature_c":21.5,"battery_pct":87,"motion":true,"mode":"heat"}}}}"#
        );
        let t = Telemetry::parse(raw.as_bytes()).unwrap();
        assert_eq!(t.metrics["motion"], MetricValue::Bool(true));
        assert_eq!(t.metrics["mode"], MetricValue::Text("heat".into()));
        assert_eq!(Telemetry::parse(&t.to_bytes()).unwrap(), t);
        assert_eq!(
            Telemetry::parse(br#"{"ts":1790000000,"metrics":{}}"#),
            Err(TelemetryError::TimestampNotMillis(1_790_000_000))
        );
        assert!(matches!(
            Telemetry::parse(format!(r#"{{"ts":{TS},"metrics":{{"Temp C":1}}}}"#).as_bytes()),
            Err(TelemetryError::MetricName(_))
        ));
        assert!(matches!(
            Telemetry::parse(b"nope"),
            Err(TelemetryError::Invalid(_))
        ));
        let long = "x".repeat(65);
        assert!(matches!(
            Telemetry::parse(format!(r#"{{"ts":{TS},"metrics":{{"s":"{long}"}}}}"#).as_bytes()),
            Err(TelemetryError::StringTooLong { .. })
        ));
    }

    #[test]
    fn metric_names_carry_their_unit_and_values_round_for_people() {
        let key = |n| {
            let k = MetricKey::parse(n);
            (k.quantity, k.unit)
        };
        // The names the device-sim profiles publish.
        assert_eq!(key("current_c"), ("current", Unit::Celsius));
        assert_eq!(key("temperature_c"), ("temperature", Unit::Celsius));
        assert_eq!(key("humidity_pct"), ("humidity", Unit::Percent));
        assert_eq!(key("light_lux"), ("light", Unit::Lux));
        assert_eq!(key("power_w"), ("power", Unit::Watts));
        assert_eq!(key("energy_wh"), ("energy", Unit::WattHours));
        assert_eq!(key("co2_ppm"), ("co2", Unit::Ppm));
        assert_eq!(key("room_celsius"), ("room", Unit::Celsius));
        assert_eq!(key("brightness"), ("brightness", Unit::Percent));
        assert_eq!(key("on"), ("on", Unit::None));
        assert_eq!(key("photos_taken"), ("photos_taken", Unit::None));
        assert_eq!(key("c"), ("c", Unit::None), "a bare suffix is a name");
        assert_eq!(key("_c"), ("_c", Unit::None));
        assert_eq!(
            MetricKey::parse("driver_temp_c").words(),
            "driver temperature"
        );

        assert_eq!(Unit::Celsius.value_text(21.0), "21 °C");
        assert_eq!(
            Unit::Celsius.value_text(21.3),
            "21.5 °C",
            "to the half degree"
        );
        assert_eq!(Unit::Celsius.value_text(21.2), "21 °C");
        assert_eq!(Unit::Celsius.value_text(-3.4), "-3.5 °C");
        assert_eq!(Unit::Percent.value_text(44.3), "44%");
        assert_eq!(Unit::Lux.value_text(312.4), "312 lux");
        assert_eq!(Unit::Watts.value_text(3.46), "3.5 W");
        assert_eq!(Unit::Watts.value_text(61.4), "61 W");
        assert_eq!(Unit::None.value_text(3.0), "3");
        assert_eq!(Unit::None.value_text(0.25), "0.3");
        assert_eq!(decimal_text(f64::NAN, 10), "0");
        assert_eq!(Unit::Lux.with_symbol("3.5".into()), "3.5 lux");
        assert_eq!(
            MetricKey::parse("locked").state_words(),
            Some(("locked", "unlocked"))
        );
        assert_eq!(MetricKey::parse("power_w").state_words(), None);
        assert_eq!(decimal_text(-0.04, 1), "0");
    }

    #[test]
    fn events_parse_and_duplicates_drop() {
        let raw = format!(
            r#"{{"ts":{TS},"kind":"fault","severity":"warning","message":"lamp driver overheating","id":"e1"}}"#
        );
        let e = DeviceEvent::parse(raw.as_bytes()).unwrap();
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.data, serde_json::json!({}));
        assert_eq!(DeviceEvent::parse(&e.to_bytes()).unwrap(), e);
        assert!(DeviceEvent::parse(
            format!(r#"{{"ts":{TS},"kind":"fault","severity":"meh","message":""}}"#).as_bytes()
        )
        .is_err());
        let mut f = DuplicateFilter::new(2);
        assert!(f.first_time(&e));
        assert!(!f.first_time(&e));
        let other = |id: &str| DeviceEvent {
            id: Some(id.into()),
            ..e.clone()
        };
        assert!(f.first_time(&other("e2")) && f.first_time(&other("e3")));
        assert!(f.first_time(&e), "e1 was evicted after two newer ids");
    }

    #[test]
    fn window_bounds_by_count_and_age() {
        let sample = |ts: u64, v: f64| Telemetry {
            ts,
            metrics: BTreeMap::from([("power_w".to_string(), MetricValue::Number(v))]),
        };
        let mut w = TelemetryWindow::new(3, 10_000);
        for i in 0..5 {
            w.push(sample(TS + i * 1000, i as f64));
        }
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.series("power_w").iter().map(|p| p.1).collect::<Vec<_>>(),
            [2.0, 3.0, 4.0]
        );
        w.push(sample(TS + 60_000, 9.0));
        assert_eq!(w.len(), 1, "older than 10 s behind the newest");
        w.push(sample(TS + 59_000, 8.0));
        assert_eq!(
            w.series("power_w"),
            vec![(TS + 59_000, 8.0), (TS + 60_000, 9.0)],
            "out-of-order samples are placed by ts"
        );
        assert_eq!(w.latest().unwrap().ts, TS + 60_000);
    }

    #[test]
    fn the_store_keeps_windows_drops_repeats_and_is_bounded() {
        let mut st = TelemetryStore::new(2, 10, 60_000);
        let s = br#"{"ts":1790000000000,"metrics":{"temperature_c":21.5}}"#;
        assert!(matches!(
            st.handle("axon/telemetry/a", s),
            Ok(Some(TelemetryUpdate::Sample { .. }))
        ));
        // The retained /latest repeats it: not a new point.
        assert_eq!(st.handle("axon/telemetry/a/latest", s), Ok(None));
        assert_eq!(st.window("a").unwrap().len(), 1);
        assert!(st.handle("axon/telemetry/a", b"{}").is_err());
        st.handle("axon/telemetry/b", s).unwrap();
        assert!(
            st.handle("axon/telemetry/c", s).is_err(),
            "over max_devices"
        );
        let e = br#"{"ts":1790000000456,"kind":"battery_low","severity":"warning","message":"12%","id":"e1"}"#;
        assert!(matches!(
            st.handle("axon/events/a", e),
            Ok(Some(TelemetryUpdate::Event { .. }))
        ));
        assert_eq!(st.handle("axon/events/a", e), Ok(None), "QoS 1 duplicate");
        assert_eq!(st.events_of("a").count(), 1);
        assert_eq!(st.handle("$mcp-server/presence/x/axon/lamp/x", s), Ok(None));
    }

    #[test]
    fn a_big_site_shares_the_stores_samples_and_a_small_one_keeps_its_windows() {
        let send = |st: &mut TelemetryStore, device: &str, n: u64| {
            for i in 0..n {
                let s = format!(
                    r#"{{"ts":{},"metrics":{{"on":true}}}}"#,
                    1_790_000_000_000 + i * 1000
                );
                st.handle(&format!("axon/telemetry/{device}"), s.as_bytes())
                    .unwrap();
            }
        };
        // Alone, a device keeps its whole window.
        let mut small = TelemetryStore::new(100, 120, 600_000);
        send(&mut small, "a", 200);
        assert_eq!(small.window("a").unwrap().len(), 120);
        // 50 devices over a total of 100 keep 2 each (the fewest), the newest.
        let mut big = TelemetryStore::new(100, 120, 600_000).with_total_samples(100);
        for d in 0..50 {
            send(&mut big, &format!("d{d}"), 30);
        }
        assert_eq!(big.window("d49").unwrap().len(), 2);
        let newest = big.window("d49").unwrap().latest().unwrap().ts;
        assert_eq!(newest, 1_790_000_000_000 + 29_000);
        // 4 devices over 100 keep 25 each.
        let mut some = TelemetryStore::new(100, 120, 600_000).with_total_samples(100);
        for d in 0..4 {
            send(&mut some, &format!("d{d}"), 60);
        }
        assert_eq!(some.window("d3").unwrap().len(), 25);
    }
}
