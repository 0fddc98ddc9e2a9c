//! The worker's trust boundary against the real parts (Mosquitto, the demo home in device-sim,
//! `wrangler dev`): without a credential, with a wrong one and with a widget key, every route
//! that reads the home or acts on it is refused (401/403) and nothing runs on a device; the
//! owner's token works; a person's token reads only that person's memory and cannot approve;
//! the console's session cookie; rate limits answer 429 with Retry-After; `/healthz` tells a
//! stranger nothing private; pairing refuses wrong and reused codes and slows guessing.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axon_tests::{http_with, Broker, DeviceSim, SseStream, WranglerDev, DEMO_HOME_DEVICES};
use serde_json::{json, Value};

const WIDGET_KEY: &str = "pk_test_widget_7e2";
const SHOP: &str = "http://shop.example";

fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Value) {
    let (status, head, body) = http_with(port, method, path, headers, body).unwrap();
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, head, v)
}

/// What `mosquitto_sub` says when it connects as `user` and listens for a second: nothing when
/// the broker lets it in, the refusal otherwise.
fn broker_connect(port: u16, user: &str, password: &str) -> String {
    let out = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "5",
            "-W",
            "1",
        ])
        .args(["-u", user, "-i", user, "-t", "$mcp-server/hall-tab/#"])
        .args(["-P", password])
        .output()
        .expect("mosquitto_sub (scripts/setup.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // -W ends it after a second with "Timed out": that is a connection that was let in.
    text.lines()
        .filter(|l| !l.contains("Timed out"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The WebSocket handshake's status line for `/api/voice` with these extra header lines.
fn voice_status(port: u16, extra: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /api/voice HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn strangers_wrong_tokens_and_widget_keys_are_refused_and_nothing_runs() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
    let worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_WIDGET_KEY", WIDGET_KEY),
            ("AXON_ALLOWED_ORIGINS", SHOP),
        ],
    );
    let port = worker.port();
    worker.wait_for("/healthz", Duration::from_secs(60), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });
    let owner = format!("Bearer {}", worker.owner_token());

    // /healthz tells a stranger that the worker is up, and nothing about the home.
    let (status, _, health) = call(port, "GET", "/healthz", &[("authorization", "")], None);
    assert_eq!(status, 200);
    let text = health.to_string();
    for private in [
        "front-door",
        "broker_url",
        "ready",
        "llm",
        "devices",
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(private),
            "/healthz shows {private} to a stranger: {text}"
        );
    }

    let bearer_widget = format!("Bearer {WIDGET_KEY}");
    let strangers: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no credential", vec![("authorization", "")]),
        (
            "a wrong token",
            vec![("authorization", "Bearer not-the-token")],
        ),
        (
            "a widget key",
            vec![("authorization", bearer_widget.as_str()), ("origin", SHOP)],
        ),
        (
            "a widget key from no listed origin",
            vec![("authorization", bearer_widget.as_str())],
        ),
    ];
    let unlock = "/api/devices/front-door/tools/unlock";
    for (who, headers) in &strangers {
        let mut with_confirm = headers.clone();
        with_confirm.push(("x-axon-confirmed", "yes"));
        let mut refusals = vec![
            ("POST", unlock, with_confirm, Some("{}")),
            (
                "POST",
                "/api/confirm",
                headers.clone(),
                Some(r#"{"id":"t1.c1","approve":true}"#),
            ),
            ("GET", "/api/events", headers.clone(), None),
            ("GET", "/api/memory", headers.clone(), None),
            ("GET", "/api/memory?user=owner", headers.clone(), None),
            ("DELETE", "/api/memory", headers.clone(), None),
            ("GET", "/api/devices", headers.clone(), None),
            ("GET", "/api/devices/front-door", headers.clone(), None),
            ("GET", "/api/activity", headers.clone(), None),
            (
                "POST",
                "/api/people",
                headers.clone(),
                Some(r#"{"person":"mallory"}"#),
            ),
            ("GET", "/api/paired", headers.clone(), None),
            (
                "POST",
                "/api/pair/approve",
                headers.clone(),
                Some(r#"{"code":"0000-0000"}"#),
            ),
        ];
        if *who != "a widget key" {
            // A widget on a listed origin may chat: that is what it is for (below).
            refusals.push((
                "POST",
                "/api/chat",
                headers.clone(),
                Some(r#"{"text":"unlock the front door"}"#),
            ));
        }
        for (method, path, h, body) in refusals {
            let (status, _, v) = call(port, method, path, &h, body);
            // Wrong credentials are guesses: after 10 they are slowed down (429), still refused.
            assert!(
                status == 401 || status == 403 || status == 429,
                "{who}: {method} {path} answered {status} {v}"
            );
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{who}: {method} {path}: no message: {v}"
            );
        }
        let auth = headers
            .iter()
            .filter(|(k, v)| k.eq_ignore_ascii_case("authorization") && !v.is_empty())
            .map(|(_, v)| format!("Authorization: {v}\r\n"))
            .collect::<String>();
        let line = voice_status(port, &auth);
        assert!(
            line.contains(" 401") || line.contains(" 403") || line.contains(" 429"),
            "{who}: the voice socket answered {line:?}"
        );
    }
    // A widget on its listed origin chats, but cannot approve what it asked for.
    let mut turn = SseStream::open_with(
        port,
        "POST",
        "/api/chat",
        &[("authorization", bearer_widget.as_str()), ("origin", SHOP)],
        Some(r#"{"text":"unlock the front door"}"#),
    )
    .unwrap();
    assert_eq!(turn.status, 200);
    let events = turn.until("confirmation_required");
    let asked = events.last().unwrap();
    assert_eq!(asked.event, "confirmation_required", "{events:?}");
    let id = asked.data["id"].as_str().unwrap().to_string();
    let (status, _, v) = call(
        port,
        "POST",
        "/api/confirm",
        &[("authorization", bearer_widget.as_str()), ("origin", SHOP)],
        Some(&json!({"id": id, "approve": true}).to_string()),
    );
    assert_eq!(status, 403, "a widget approved its own unlock: {v}");
    let (status, _, _) = call(
        port,
        "POST",
        "/api/chat",
        &[("authorization", bearer_widget.as_str()), ("origin", SHOP)],
        Some(r#"{"text":"hello","user":"owner"}"#),
    );
    assert_eq!(status, 403, "a widget cannot speak as the owner");

    let (status, _, _) = call(
        port,
        "POST",
        "/api/confirm",
        &[],
        Some(&json!({"id": id, "approve": false}).to_string()),
    );
    assert_eq!(status, 200, "the owner declines");
    drop(turn);

    // Nothing ran on the lock.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim.tool_calls("front-door", "unlock"), 0);
    let (_, _, state) = call(
        port,
        "POST",
        "/api/devices/front-door/tools/get_state",
        &[],
        Some("{}"),
    );
    assert_eq!(state["structuredContent"]["locked"], true, "{state}");

    // The owner's yes unlocks; the header without the owner's credential does not.
    let (status, _, v) = call(
        port,
        "POST",
        unlock,
        &[("x-axon-confirmed", "yes")],
        Some("{}"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["structuredContent"]["locked"], false, "{v}");
    assert_eq!(sim.wait_tool_calls("front-door", "unlock", 1), 1);

    // People: ada's token chats and reads ada's memory only; it cannot approve.
    let (status, _, made) = call(
        port,
        "POST",
        "/api/people",
        &[],
        Some(r#"{"person":"ada"}"#),
    );
    assert_eq!(status, 200, "{made}");
    let ada = format!("Bearer {}", made["token"].as_str().unwrap());
    let as_ada = [("authorization", ada.as_str())];
    let (status, _, _) = call(
        port,
        "POST",
        "/api/chat",
        &as_ada,
        Some(r#"{"text":"turn on the kitchen lamp"}"#),
    );
    assert_eq!(status, 200);
    let (status, _, mem) = call(port, "GET", "/api/memory", &as_ada, None);
    assert_eq!(status, 200, "{mem}");
    let (status, _, v) = call(port, "GET", "/api/memory?user=owner", &as_ada, None);
    assert_eq!(status, 403, "ada read the owner's memory: {v}");
    let (status, _, _) = call(port, "DELETE", "/api/memory?user=bob", &as_ada, None);
    assert_eq!(status, 403);
    let (status, _, _) = call(
        port,
        "POST",
        "/api/chat",
        &as_ada,
        Some(r#"{"text":"hi","user":"bob"}"#),
    );
    assert_eq!(status, 403);
    let (status, _, v) = call(
        port,
        "POST",
        "/api/devices/front-door/tools/lock",
        &as_ada,
        Some("{}"),
    );
    assert_eq!(status, 200, "a person calls an auto tool by hand: {v}");
    let (status, _, v) = call(
        port,
        "POST",
        unlock,
        &[as_ada[0], ("x-axon-confirmed", "yes")],
        Some("{}"),
    );
    assert_eq!(status, 403, "only the owner approves: {v}");
    assert_eq!(sim.tool_calls("front-door", "unlock"), 1);
    // Removing ada ends her token.
    let (status, _, _) = call(port, "DELETE", "/api/people/ada", &[], None);
    assert_eq!(status, 200);
    let (status, _, _) = call(port, "GET", "/api/devices", &as_ada, None);
    assert!(status == 401 || status == 429, "{status}");

    // The activity log names who did what, refusals included; only the owner reads it.
    let (status, _, log) = call(port, "GET", "/api/activity", &[], None);
    assert_eq!(status, 200);
    let lines = log["activity"].as_array().unwrap();
    let has = |who: &str, tool: &str, outcome: &str| {
        lines
            .iter()
            .any(|l| l["who"] == who && l["tool"] == tool && l["outcome"] == outcome)
    };
    assert!(has("owner", "unlock", "ok"), "{log}");
    assert!(has("person:ada", "unlock", "refused"), "{log}");
    assert!(has("person:ada", "lock", "ok"), "{log}");

    // The console's session: the token once, then an HttpOnly, SameSite=Strict cookie.
    let (status, head, _) = call(
        port,
        "POST",
        "/api/session",
        &[("authorization", "")],
        Some(&json!({"token": worker.owner_token()}).to_string()),
    );
    assert_eq!(status, 200);
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_string();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let by_cookie = [("authorization", ""), ("cookie", cookie.as_str())];
    let (status, _, v) = call(port, "GET", "/api/devices", &by_cookie, None);
    assert_eq!(status, 200, "{v}");
    let (status, _, _) = call(port, "DELETE", "/api/session", &by_cookie, None);
    assert_eq!(status, 200);
    let (status, _, _) = call(port, "GET", "/api/devices", &by_cookie, None);
    assert!(
        status == 401 || status == 429,
        "a signed-out session answered {status}"
    );
    let (status, _, _) = call(
        port,
        "POST",
        "/api/session",
        &[("authorization", "")],
        Some(r#"{"token":"wrong"}"#),
    );
    assert!(status == 401 || status == 429, "{status}");

    // Pairing: a device asks; a wrong code and a reused one are refused and create nothing.
    let (status, _, ticket) = call(
        port,
        "POST",
        "/api/pair",
        &[("authorization", "")],
        Some(r#"{"device":"hall-tab","kind":"virtual"}"#),
    );
    assert_eq!(status, 200, "{ticket}");
    let (_, _, waiting) = call(port, "GET", "/api/pair", &[], None);
    assert_eq!(waiting["waiting"][0]["device"], "hall-tab", "{waiting}");
    assert!(
        !waiting
            .to_string()
            .contains(ticket["code"].as_str().unwrap()),
        "the list shows the code"
    );
    let (status, _, v) = call(
        port,
        "POST",
        "/api/pair/approve",
        &[],
        Some(r#"{"code":"ZZZZ-ZZZZ"}"#),
    );
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no device is waiting"),
        "{v}"
    );
    let collect = json!({"pair_id": ticket["pair_id"], "secret": ticket["secret"]}).to_string();
    let (status, _, v) = call(
        port,
        "POST",
        "/api/pair/collect",
        &[("authorization", "")],
        Some(&collect),
    );
    assert_eq!((status, &v["waiting"]), (200, &json!(true)), "{v}");
    let (status, _, v) = call(
        port,
        "POST",
        "/api/pair/collect",
        &[("authorization", "")],
        Some(&json!({"pair_id": ticket["pair_id"], "secret": "guess"}).to_string()),
    );
    assert_eq!(status, 404, "{v}");
    let (status, _, v) = call(
        port,
        "POST",
        "/api/pair/approve",
        &[],
        Some(&json!({"code": ticket["code"].as_str().unwrap().to_lowercase()}).to_string()),
    );
    assert_eq!(status, 200, "{v}");
    let (status, _, creds) = call(
        port,
        "POST",
        "/api/pair/collect",
        &[("authorization", "")],
        Some(&collect),
    );
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["device"], "hall-tab");
    let (status, _, _) = call(
        port,
        "POST",
        "/api/pair/collect",
        &[("authorization", "")],
        Some(&collect),
    );
    assert_eq!(status, 404, "credentials are handed over once");
    let (status, _, v) = call(
        port,
        "POST",
        "/api/pair/approve",
        &[],
        Some(&json!({"code": ticket["code"]}).to_string()),
    );
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{v}"
    );
    // Its broker account: the device connects as itself (user = client id = its id).
    let password = creds["password"].as_str().unwrap().to_string();
    let out = broker_connect(broker.tcp_port(), "hall-tab", &password);
    assert!(
        out.is_empty(),
        "the paired device cannot connect to the broker: {out}"
    );
    // The paired device's token talks, and nothing more.
    let tab = format!("Bearer {}", creds["token"].as_str().unwrap());
    let as_tab = [("authorization", tab.as_str())];
    let (status, _, v) = call(
        port,
        "POST",
        "/api/chat",
        &as_tab,
        Some(r#"{"text":"turn on the kitchen lamp"}"#),
    );
    assert_eq!(status, 200, "{v}");
    let (status, _, _) = call(port, "GET", "/api/devices", &as_tab, None);
    assert_eq!(status, 403);
    let (status, _, paired) = call(port, "GET", "/api/paired", &[], None);
    assert_eq!(paired["paired"], json!(["hall-tab"]), "{status} {paired}");
    let (status, _, _) = call(port, "DELETE", "/api/paired/hall-tab", &[], None);
    assert_eq!(status, 200);
    let (status, _, _) = call(port, "POST", "/api/chat", &as_tab, Some(r#"{"text":"hi"}"#));
    assert!(
        status == 401 || status == 429,
        "a revoked device still talks: {status}"
    );

    // Brute force: wrong codes are slowed down to 429 with Retry-After.
    let mut limited = None;
    for _ in 0..20 {
        let (status, head, _) = call(
            port,
            "POST",
            "/api/pair/approve",
            &[],
            Some(r#"{"code":"AAAA-AAAA"}"#),
        );
        if status == 429 {
            limited = Some(head);
            break;
        }
        assert_eq!(status, 404);
    }
    let head = limited.expect("20 wrong codes in a row were never slowed down");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");

    // Guessing tokens is slowed down too.
    let mut limited = false;
    for _ in 0..20 {
        let (status, head, _) = call(
            port,
            "GET",
            "/api/devices",
            &[("authorization", "Bearer guess")],
            None,
        );
        if status == 429 {
            assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
            limited = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(limited, "20 wrong tokens in a row were never slowed down");

    // And a runaway owner script: the per-credential limit answers 429, not a slow worker.
    let mut limited = false;
    for _ in 0..300 {
        let (status, head, _) = call(
            port,
            "GET",
            "/api/paired",
            &[("authorization", owner.as_str())],
            None,
        );
        if status == 429 {
            assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
            limited = true;
            break;
        }
        assert_eq!(status, 200);
    }
    assert!(limited, "300 requests in a row were never limited");
    assert_eq!(
        sim.tool_calls("front-door", "unlock"),
        1,
        "an unlock ran that nobody approved"
    );
}
