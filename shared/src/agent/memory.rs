//! Conversation memory: which messages a turn sees and how older ones fold into a per-user
//! summary.
//!
//! Owns the policy (how many recent messages, how long a summary may grow, what a summary
//! line says). It never stores anything: the Hub keeps messages and summaries in its Durable
//! Object's SQLite storage and asks this module what to keep.

use crate::agent::llm::{Message, Role};

/// Recent messages a turn sees verbatim (user and assistant, oldest first).
pub const RECENT_MESSAGES: usize = 12;
/// Lines a summary keeps (newest last).
pub const SUMMARY_LINES: usize = 24;
/// Characters of one summary line.
const LINE_CHARS: usize = 160;

/// Splits a user's stored conversation into what is folded into the summary and what a turn
/// sees verbatim.
pub fn split_recent(messages: Vec<Message>) -> (Vec<Message>, Vec<Message>) {
    let mut messages = messages;
    let cut = messages.len().saturating_sub(RECENT_MESSAGES);
    let recent = messages.split_off(cut);
    (messages, recent)
}

/// The summary after folding `older` messages into `summary`: one line per message, the
/// oldest lines dropped beyond [`SUMMARY_LINES`].
pub fn fold(summary: &str, older: &[Message]) -> String {
    let mut lines: Vec<String> = summary
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    for m in older {
        let who = match m.role {
            Role::User => "The user said",
            Role::Assistant => "You answered",
            _ => continue,
        };
        let mut text: String = m
            .text_content()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if text.chars().count() > LINE_CHARS {
            text = text.chars().take(LINE_CHARS - 1).collect::<String>() + "…";
        }
        lines.push(format!("- {who}: {text}"));
    }
    let skip = lines.len().saturating_sub(SUMMARY_LINES);
    lines[skip..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_messages_fold_into_a_bounded_summary() {
        let msgs: Vec<Message> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    Message::user(format!("request {i}"))
                } else {
                    Message::assistant(format!("answer {i}"))
                }
            })
            .collect();
        let (older, recent) = split_recent(msgs);
        assert_eq!(recent.len(), RECENT_MESSAGES);
        assert_eq!(recent[0].text_content(), "request 28");
        let summary = fold("- The user said: my name is Ada", &older);
        assert_eq!(summary.lines().count(), SUMMARY_LINES);
        assert!(summary.ends_with("- You answered: answer 27"));
        // The oldest line went first.
        assert!(!summary.contains("Ada"));
        let long = fold("", &[Message::user("x".repeat(1000))]);
        assert!(long.chars().count() < LINE_CHARS + 30);
    }
}
