//! Conversation memory in the Hub's Durable Object SQLite storage: recent messages and a
//! per-user summary, so a conversation survives restarts (`.wrangler/state` locally).
//!
//! Owns the tables and their queries. What is kept and how older messages fold into the
//! summary is axon-core's `agent::memory`; this file only stores.
//!
//! A turn only reads at its start and writes at its end: a Durable Object holds back its
//! outgoing messages (the tool call's WebSocket frame included) until a pending write is
//! durable, so a write before the tool call would add its latency to every turn.

use axon_core::agent::llm::{Message, Role};
use axon_core::agent::memory::{fold, split_recent};
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

pub struct Memory {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct Row {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct SummaryRow {
    summary: String,
}

impl Memory {
    /// Opens the tables, which [`Memory::create_tables`] made when the Hub started.
    pub fn open(sql: SqlStorage) -> worker::Result<Memory> {
        Ok(Memory { sql })
    }

    /// Creates the tables if they are missing (once per Hub instance).
    pub fn create_tables(sql: &SqlStorage) -> worker::Result<()> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             user TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, ts INTEGER NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE INDEX IF NOT EXISTS messages_by_user ON messages (user, id)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS summaries (user TEXT PRIMARY KEY, summary TEXT NOT NULL, \
             ts INTEGER NOT NULL)",
            None,
        )?;
        Ok(())
    }

    fn messages(&self, user: &str) -> worker::Result<Vec<Message>> {
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT role, content FROM messages WHERE user = ? ORDER BY id",
                vec![user.into()],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| match r.role.as_str() {
                "user" => Message::user(r.content),
                _ => Message::assistant(r.content),
            })
            .collect())
    }

    pub fn summary(&self, user: &str) -> worker::Result<String> {
        let rows: Vec<SummaryRow> = self
            .sql
            .exec(
                "SELECT summary FROM summaries WHERE user = ?",
                vec![user.into()],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .next()
            .map(|r| r.summary)
            .unwrap_or_default())
    }

    /// The summary and the recent messages for a new turn (reads only).
    pub fn recall(&self, user: &str) -> worker::Result<(String, Vec<Message>)> {
        let (_, recent) = split_recent(self.messages(user)?);
        Ok((self.summary(user)?, recent))
    }

    /// Stores a turn's messages, then folds what no longer fits into the summary.
    pub fn remember(&self, user: &str, messages: &[Message], now_ms: u64) -> worker::Result<()> {
        for m in messages {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
                _ => continue,
            };
            self.sql.exec(
                "INSERT INTO messages (user, role, content, ts) VALUES (?, ?, ?, ?)",
                vec![
                    user.into(),
                    role.into(),
                    m.text_content().into(),
                    ms(now_ms),
                ],
            )?;
        }
        let (older, recent) = split_recent(self.messages(user)?);
        if older.is_empty() {
            return Ok(());
        }
        let summary = fold(&self.summary(user)?, &older);
        self.sql.exec(
            "INSERT INTO summaries (user, summary, ts) VALUES (?, ?, ?) \
             ON CONFLICT(user) DO UPDATE SET summary = excluded.summary, ts = excluded.ts",
            vec![user.into(), summary.into(), ms(now_ms)],
        )?;
        self.sql.exec(
            "DELETE FROM messages WHERE user = ? AND id NOT IN \
             (SELECT id FROM messages WHERE user = ? ORDER BY id DESC LIMIT ?)",
            vec![
                user.into(),
                user.into(),
                SqlStorageValue::Integer(recent.len() as i64),
            ],
        )?;
        Ok(())
    }

    pub fn forget(&self, user: &str) -> worker::Result<()> {
        self.sql
            .exec("DELETE FROM messages WHERE user = ?", vec![user.into()])?;
        self.sql
            .exec("DELETE FROM summaries WHERE user = ?", vec![user.into()])?;
        Ok(())
    }

    /// What `/api/memory` shows.
    pub fn dump(&self, user: &str) -> worker::Result<serde_json::Value> {
        let messages: Vec<serde_json::Value> = self
            .messages(user)?
            .into_iter()
            .map(|m| serde_json::json!({"role": m.role, "text": m.text_content()}))
            .collect();
        Ok(serde_json::json!({"user": user, "summary": self.summary(user)?, "messages": messages}))
    }
}

fn ms(v: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(v.min(i64::MAX as u64) as i64)
}
