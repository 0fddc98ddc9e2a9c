//! The worker's clock: the one place that reads time (milliseconds since the Unix epoch),
//! which `axon-core` takes as a [`Timestamp`]. On Workers the clock moves only after I/O, so
//! nothing here measures CPU time.

use axon_core::time::Timestamp;

/// Now, as `axon-core` wants it.
pub fn now() -> Timestamp {
    Timestamp::from_millis(js_sys::Date::now() as u64)
}
