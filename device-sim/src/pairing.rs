//! A board's side of pairing (docs/security.md "Pairing"), and the owner's `ctl pair CODE`.
//!
//! Owns the two HTTP exchanges with the worker: the board asks for a code, shows it in its log
//! and polls until the owner enters it, then keeps the account in its state file (the one `run`
//! reads); the owner's side posts the code with the owner token. It never prints a password or
//! a token. What a code is and how long it lasts is the worker's (`axon_core::trust::pairing`).

use std::path::Path;
use std::time::{Duration, Instant};

use axon_core::transport::link::Credentials;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::accounts;
use crate::error::SimError;

/// One JSON POST: the status and the answer's JSON (`Null` when it is not JSON).
async fn post(
    worker: &str,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<(u16, Value), SimError> {
    let host = crate::voice::worker_host(worker)?;
    let fail = |e: String| SimError::Pairing(format!("POST {worker}{path}: {e}"));
    let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&host))
        .await
        .map_err(|_| fail("no answer within 10 s (is the worker running?)".into()))?
        .map_err(|e| {
            fail(format!(
                "{e} (is the worker running? scripts/run.sh starts one)"
            ))
        })?;
    let body = body.to_string();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{auth}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .map_err(|_| fail("the answer did not end within 30 s".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| fail(format!("not an HTTP answer: {head:?}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// A chunked body's data.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// The worker's refusal message, or the status.
fn refusal(status: u16, v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Pairs board `device` (of `kind`) with the Hub at `worker`: shows the code (on stderr and as
/// a JSON line), waits for the owner for at most `timeout`, and stores the account under
/// `state_dir` where `run` finds it. A code that expires is replaced by a new one.
pub async fn pair(
    worker: &str,
    device: &str,
    kind: &str,
    state_dir: &Path,
    timeout: Duration,
) -> Result<Credentials, SimError> {
    let deadline = Instant::now() + timeout;
    'ask: loop {
        let (status, ticket) = post(
            worker,
            "/api/pair",
            None,
            &json!({"device": device, "kind": kind}),
        )
        .await?;
        if status != 200 {
            return Err(SimError::Pairing(format!(
                "the worker refused: {}",
                refusal(status, &ticket)
            )));
        }
        let code = ticket["code"].as_str().unwrap_or_default();
        eprintln!(
            "pairing code for {device}: {code}   (enter it in the Axon console, or run: axon-device-sim ctl pair {code})"
        );
        crate::emit_line(
            json!({"event": "pairing_code", "device": device, "code": code, "expires_in_s": ticket["expires_in_s"]}),
        );
        let poll = json!({"pair_id": ticket["pair_id"], "secret": ticket["secret"]});
        loop {
            if Instant::now() >= deadline {
                return Err(SimError::Pairing(format!(
                    "nobody entered the code within {} s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (status, v) = post(worker, "/api/pair/collect", None, &poll).await?;
            match status {
                200 if v["password"].is_string() => {
                    let c = Credentials::new(
                        v["username"].as_str().unwrap_or(device),
                        v["password"].as_str().unwrap_or_default(),
                    );
                    accounts::store_device(state_dir, device, &c)?;
                    crate::emit_line(
                        json!({"event": "paired", "device": device, "site": v["site"]}),
                    );
                    return Ok(c);
                }
                200 | 429 => {}
                410 => {
                    eprintln!("the code expired: asking for a new one");
                    continue 'ask;
                }
                _ => {
                    return Err(SimError::Pairing(format!(
                        "the worker refused: {}",
                        refusal(status, &v)
                    )))
                }
            }
        }
    }
}

/// The owner enters `code` (`ctl pair CODE`): the answer, or the worker's refusal.
pub async fn approve(worker: &str, token: &str, code: &str) -> Result<Value, SimError> {
    let (status, v) = post(
        worker,
        "/api/pair/approve",
        Some(token),
        &json!({"code": code}),
    )
    .await?;
    if status == 200 {
        Ok(v)
    } else {
        Err(SimError::Pairing(refusal(status, &v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"), "{\"a\":1}");
    }
}
