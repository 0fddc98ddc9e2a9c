//! Telemetry and event payloads (placeholder: being written).
