//! The agent: turning what a person says into device tool calls and an answer.
//!
//! Owns a turn's state machine ([`turn`]), the OpenAI-compatible wire types every LLM
//! provider speaks ([`llm`]), the offline model that needs no network ([`offline`], on top of
//! the [`planner`]), how a device's state reads to a person ([`wording`]), and the memory
//! policy ([`memory`]). It performs no I/O: the worker sends the requests a turn asks for
//! and hands back what came of them.

pub mod llm;
pub mod memory;
pub mod offline;
pub mod planner;
pub mod scope;
#[cfg(test)]
pub(crate) mod test_home;
pub mod turn;
pub mod wording;
