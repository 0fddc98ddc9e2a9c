//! The worker's side of trust: finding the credential a request carries, the stored
//! credentials (people, sessions, paired devices) and the activity log, in the Hub's SQLite.
//!
//! Owns reading `Authorization: Bearer …`, the `axon_session` cookie and a WebSocket's
//! `axon-token.…` subprotocol, and the tables `credentials` and `activity`. Only digests of
//! credentials are stored. What a principal may do is `axon_core::trust::access`; this file
//! never decides it.

use axon_core::protocol::jsonrpc::ErrorObject;
use axon_core::trust::access::Principal;
use axon_core::trust::{digest, same_secret, secret_from};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Request, SqlStorage};

use crate::clock::now;
use crate::config::Config;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "axon_session";
/// A WebSocket carries its credential as a subprotocol `axon-token.{token}`: browsers cannot
/// set headers on a WebSocket, and a token in the URL would end up in logs.
pub const TOKEN_PROTOCOL: &str = "axon-token.";
/// How long a console session lasts.
pub const SESSION_MS: u64 = 30 * 24 * 3600 * 1000;

/// Draws `n` bytes from the platform's secure random source (Web Crypto).
pub fn random_bytes(n: usize) -> worker::Result<Vec<u8>> {
    use wasm_bindgen::JsCast;
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())
        .map_err(|_| worker::Error::RustError("no crypto in this runtime".into()))?;
    let get: js_sys::Function = js_sys::Reflect::get(&crypto, &"getRandomValues".into())
        .map_err(|_| worker::Error::RustError("no crypto.getRandomValues".into()))?
        .dyn_into()
        .map_err(|_| worker::Error::RustError("crypto.getRandomValues is no function".into()))?;
    let arr = js_sys::Uint8Array::new_with_length(n as u32);
    get.call1(&crypto, &arr)
        .map_err(|_| worker::Error::RustError("crypto.getRandomValues failed".into()))?;
    Ok(arr.to_vec())
}

/// A fresh secret: `prefix` and 32 hex digits.
pub fn new_secret(prefix: &str) -> worker::Result<String> {
    Ok(secret_from(prefix, &random_bytes(16)?))
}

/// The credential a request presents, and where.
#[derive(Debug, Clone, PartialEq)]
pub enum Presented {
    /// Nothing.
    None,
    /// `Authorization: Bearer` or a WebSocket subprotocol.
    Token(String),
    /// The console's cookie.
    Session(String),
}

/// Finds the request's credential.
pub fn presented(req: &Request) -> Presented {
    let h = req.headers();
    if let Some(auth) = h.get("authorization").ok().flatten() {
        let t = auth.trim();
        let token = t
            .strip_prefix("Bearer ")
            .or_else(|| t.strip_prefix("bearer "))
            .unwrap_or(t);
        return Presented::Token(token.trim().to_string());
    }
    if let Some(protocols) = h.get("sec-websocket-protocol").ok().flatten() {
        if let Some(t) = protocols
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL))
        {
            return Presented::Token(t.to_string());
        }
    }
    if let Some(cookies) = h.get("cookie").ok().flatten() {
        if let Some(s) = cookies.split(';').map(str::trim).find_map(|c| {
            c.strip_prefix(SESSION_COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
        }) {
            return Presented::Session(s.to_string());
        }
    }
    Presented::None
}

/// One stored credential.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    kind: String,
    subject: String,
    expires: Option<f64>,
}

/// The stored credentials and the activity log.
pub struct Store {
    sql: SqlStorage,
}

/// A kind of stored credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person's token, made by the owner.
    Person,
    /// A paired device's token (the same secret as its broker password).
    Device,
    /// A console session of the owner (`subject` = `owner`) or a person.
    Session,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Device => "device",
            Kind::Session => "session",
        }
    }
}

/// One line of the activity log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    /// Unix ms.
    pub ts: f64,
    /// `owner`, `person:ada`, `device:kitchen-tab`, `widget:https://…`, `mcp`.
    pub who: String,
    /// `agent`, `console` or `mcp`.
    pub via: String,
    /// The device.
    pub device: String,
    /// The tool.
    pub tool: String,
    /// `ok`, `error` or `refused`.
    pub outcome: String,
    /// The error or refusal, if any.
    pub detail: String,
}

/// Most activity lines kept (older ones are dropped).
const ACTIVITY_KEPT: u32 = 10_000;

impl Store {
    /// The tables, which [`Store::create_tables`] made when the Hub started.
    pub fn open(sql: SqlStorage) -> Store {
        Store { sql }
    }

    /// Creates the tables if they are missing (once per Hub instance).
    pub fn create_tables(sql: &SqlStorage) -> worker::Result<()> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS credentials (digest TEXT PRIMARY KEY, kind TEXT NOT NULL, \
             subject TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER)",
            None,
        )?;
        // Paired devices named outside the site's discovery filters: their names are
        // discovered as filters of their own (docs/security.md "Pairing").
        sql.exec(
            "CREATE TABLE IF NOT EXISTS paired_names (device TEXT PRIMARY KEY, server_name TEXT NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS activity (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             ts INTEGER NOT NULL, who TEXT NOT NULL, via TEXT NOT NULL, device TEXT NOT NULL, \
             tool TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL)",
            None,
        )?;
        Ok(())
    }

    /// Who presented `p`.
    pub fn principal(&self, config: &Config, p: &Presented, origin: Option<&str>) -> Principal {
        let (token, session) = match p {
            Presented::None => return Principal::Stranger,
            Presented::Token(t) => (t.as_str(), false),
            Presented::Session(s) => (s.as_str(), true),
        };
        if token.is_empty() || token.len() > 256 {
            return Principal::Invalid("it is empty or too long");
        }
        if !session {
            if let Some(owner) = &config.api_token {
                if same_secret(token, owner) {
                    return Principal::Owner;
                }
            }
            if let Some(media) = &config.media_token {
                if same_secret(token, media) {
                    return Principal::MediaEndpoint;
                }
            }
            if let Some(key) = &config.widget_key {
                if same_secret(token, key) {
                    return match origin {
                        Some(o) if config.allowed_origins.allows(o) => Principal::Widget {
                            origin: o.trim_end_matches('/').to_string(),
                        },
                        _ => Principal::Invalid(
                            "a widget key works only from a page on an origin listed in \
                             AXON_ALLOWED_ORIGINS",
                        ),
                    };
                }
            }
        }
        let rows: Vec<Row> = match self
            .sql
            .exec(
                "SELECT kind, subject, expires FROM credentials WHERE digest = ?",
                vec![digest(token).into()],
            )
            .and_then(|c| c.to_array())
        {
            Ok(r) => r,
            Err(_) => return Principal::Invalid("the credential store is unavailable"),
        };
        let Some(row) = rows.into_iter().next() else {
            return Principal::Invalid(if session {
                "the session has ended: sign in again"
            } else {
                "it is not a valid token (mistyped, revoked, or from another site)"
            });
        };
        if row.expires.is_some_and(|e| e as u64 <= now().as_millis()) {
            return Principal::Invalid("the session has ended: sign in again");
        }
        match (row.kind.as_str(), session) {
            ("session", true) if row.subject == axon_core::trust::access::OWNER => Principal::Owner,
            ("session", true) => Principal::Person(row.subject),
            ("person", false) => Principal::Person(row.subject),
            ("device", false) => Principal::Device(row.subject),
            _ => Principal::Invalid("this credential is not valid here"),
        }
    }

    /// Stores a credential.
    pub fn add(
        &self,
        secret: &str,
        kind: Kind,
        subject: &str,
        expires: Option<u64>,
    ) -> worker::Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO credentials (digest, kind, subject, created, expires) VALUES (?, ?, ?, ?, ?)",
            vec![
                digest(secret).into(),
                kind.as_str().into(),
                subject.into(),
                (now().as_millis() as f64).into(),
                match expires {
                    Some(e) => (e as f64).into(),
                    None => worker::SqlStorageValue::Null,
                },
            ],
        )?;
        Ok(())
    }

    /// Removes one credential (signing out).
    pub fn remove(&self, secret: &str) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM credentials WHERE digest = ?",
            vec![digest(secret).into()],
        )?;
        Ok(())
    }

    /// Removes every credential of a subject: a person's token and sessions, or a device's.
    /// Returns how many there were.
    pub fn revoke(&self, kinds: &[Kind], subject: &str) -> worker::Result<usize> {
        let mut n = 0;
        for k in kinds {
            #[derive(Deserialize)]
            struct C {
                n: f64,
            }
            let c: Vec<C> = self
                .sql
                .exec(
                    "SELECT COUNT(*) AS n FROM credentials WHERE kind = ? AND subject = ?",
                    vec![k.as_str().into(), subject.into()],
                )?
                .to_array()?;
            n += c.first().map(|c| c.n as usize).unwrap_or(0);
            self.sql.exec(
                "DELETE FROM credentials WHERE kind = ? AND subject = ?",
                vec![k.as_str().into(), subject.into()],
            )?;
        }
        Ok(n)
    }

    /// Remembers that paired device `device` is discovered by its own server name.
    pub fn add_paired_name(&self, device: &str, server_name: &str) -> worker::Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO paired_names (device, server_name) VALUES (?, ?)",
            vec![device.into(), server_name.into()],
        )?;
        Ok(())
    }

    /// Forgets device `device`'s own server name.
    pub fn remove_paired_name(&self, device: &str) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM paired_names WHERE device = ?",
            vec![device.into()],
        )?;
        Ok(())
    }

    /// Every paired device discovered by its own server name: (device, server name).
    pub fn paired_names(&self) -> worker::Result<Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct N {
            device: String,
            server_name: String,
        }
        let rows: Vec<N> = self
            .sql
            .exec(
                "SELECT device, server_name FROM paired_names ORDER BY device",
                None,
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|n| (n.device, n.server_name))
            .collect())
    }

    /// The subjects of one kind (people, paired devices), sorted.
    pub fn subjects(&self, kind: Kind) -> worker::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct S {
            subject: String,
        }
        let rows: Vec<S> = self
            .sql
            .exec(
                "SELECT DISTINCT subject FROM credentials WHERE kind = ? ORDER BY subject",
                vec![kind.as_str().into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(|s| s.subject).collect())
    }

    /// Appends to the activity log. A failed write is reported on the worker's console and
    /// never fails the call it records.
    pub fn record(
        &self,
        who: &str,
        via: &str,
        device: &str,
        tool: &str,
        outcome: std::result::Result<(), &ErrorObject>,
        refused: bool,
    ) {
        if let Err(e) = self.write(who, via, device, tool, outcome, refused) {
            worker::console_error!("activity log: {e}");
        }
    }

    fn write(
        &self,
        who: &str,
        via: &str,
        device: &str,
        tool: &str,
        outcome: std::result::Result<(), &ErrorObject>,
        refused: bool,
    ) -> worker::Result<()> {
        let (outcome, detail) = match outcome {
            Ok(()) => ("ok", String::new()),
            Err(e) if refused => ("refused", e.message.clone()),
            Err(e) => ("error", e.message.clone()),
        };
        let detail: String = detail.chars().take(300).collect();
        self.sql.exec(
            "INSERT INTO activity (ts, who, via, device, tool, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                (now().as_millis() as f64).into(),
                who.into(),
                via.into(),
                device.into(),
                tool.into(),
                outcome.into(),
                detail.into(),
            ],
        )?;
        self.sql.exec(
            "DELETE FROM activity WHERE id <= (SELECT MAX(id) FROM activity) - ?",
            vec![f64::from(ACTIVITY_KEPT).into()],
        )?;
        Ok(())
    }

    /// The newest `limit` lines, newest first.
    pub fn activity(&self, limit: u32) -> worker::Result<Vec<Activity>> {
        self.sql
            .exec(
                "SELECT ts, who, via, device, tool, outcome, detail FROM activity ORDER BY id DESC LIMIT ?",
                vec![f64::from(limit).into()],
            )?
            .to_array()
    }
}

/// The activity outcome of a tool call's result: a `CallToolResult` with `isError` counts as
/// an error too.
pub fn outcome_of(
    r: &std::result::Result<Value, ErrorObject>,
) -> (std::result::Result<(), ErrorObject>, bool) {
    use axon_core::protocol::jsonrpc::code;
    match r {
        Ok(v) if v.get("isError").and_then(Value::as_bool) == Some(true) => (
            Err(ErrorObject::new(
                code::INTERNAL_ERROR,
                "the tool reported an error",
            )),
            false,
        ),
        Ok(_) => (Ok(()), false),
        Err(e) => (Err(e.clone()), e.code == code::DENIED),
    }
}
