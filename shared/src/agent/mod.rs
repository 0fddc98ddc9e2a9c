//! The agent: turning what a person says into device tool calls.
//!
//! Owns the offline planner today ([`planner`]): with no LLM and no network, it understands
//! everyday requests from the registry's devices, rooms and tool schemas. The LLM-driven turn
//! loop (with memory and permissions) lands next, using the same plan shape.

pub mod planner;
