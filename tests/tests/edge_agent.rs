//! The agent and the outside surfaces of the edge worker, against the real parts: Mosquitto,
//! the demo home in device-sim, `wrangler dev` (workerd), and the official MCP Python SDK.
//! Chat with the offline planner acts on a board and streams the turn; a `confirm` tool waits
//! for `/api/confirm`; a `deny` tool never reaches the board; `/api/events` carries presence,
//! telemetry and agent activity; memory survives a `wrangler dev` restart; `/mcp` serves an
//! outside MCP client behind a bearer token; bad input gets a 400 with a message.

#![allow(clippy::unwrap_used)] // a test fails loudly by design

use std::sync::mpsc;
use std::time::Duration;

use axon_tests::http::{find, names};
use axon_tests::{
    http_with, Broker, DeviceSim, SseEvent, SseStream, WranglerDev, DEMO_HOME_DEVICES,
};
use serde_json::{json, Value};

const TOKEN: &str = "test-token-5f1c";

fn chat(worker: &WranglerDev, body: Value) -> SseStream {
    worker.chat(&body)
}

#[test]
fn chat_confirm_deny_events_memory_and_mcp_against_the_demo_home() {
    let broker = Broker::start();
    let mut sim = DeviceSim::start(&broker, &["--profile", "home", "--fault-rate", "0"]);
    let mut worker = WranglerDev::start_with(
        &broker,
        &[
            ("AXON_PERMISSIONS", "kitchen-plug.set_power=deny"),
            ("AXON_MCP_TOKEN", TOKEN),
            // Small pages, so that the SDK's listing below follows `nextCursor`.
            ("AXON_MCP_PAGE_TOOLS", "8"),
            // `*` is refused (one rule, read once in config.rs); the listed origin counts.
            ("AXON_ALLOWED_ORIGINS", "*, http://shop.example"),
        ],
    );
    worker.wait_for("/healthz", Duration::from_secs(30), |v| {
        v["broker"] == "connected" && v["ready"] == DEMO_HOME_DEVICES
    });

    // /api/events, read by a thread for the whole test.
    let (events_tx, events_rx) = mpsc::channel::<SseEvent>();
    let port = worker.port();
    std::thread::spawn(move || {
        let mut s = SseStream::open(port, "GET", "/api/events", None).unwrap();
        while let Some(e) = s.next_event() {
            if events_tx.send(e).is_err() {
                break;
            }
        }
    });

    // Connected before the first turn, so the stream sees all of it.
    let hello = events_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["devices"].as_array().unwrap().len(), 13);

    // 1. Chat turns the kitchen lamp on; the stream carries the tool call and the answer.
    let turn = chat(
        &worker,
        json!({"text": "turn on the kitchen lamp", "user": "ada"}),
    )
    .until("done");
    assert_eq!(
        names(&turn),
        [
            "turn",
            "tool_started",
            "tool_finished",
            "text_delta",
            "answer",
            "done"
        ],
        "{turn:?}"
    );
    let started = find(&turn, "tool_started");
    assert_eq!(
        (started["device"].as_str(), started["tool"].as_str()),
        (Some("kitchen-lamp"), Some("set_power"))
    );
    assert_eq!(started["arguments"], json!({"on": true}));
    let finished = find(&turn, "tool_finished");
    assert_eq!(finished["ok"], true, "{finished}");
    assert!(finished["ms"].as_u64().unwrap() < 5000);
    assert_eq!(finished["result"]["structuredContent"]["on"], true);
    assert_eq!(find(&turn, "answer")["text"], "Kitchen lamp is on.");
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 1), 1);
    let (_, state) = worker.post("/api/devices/kitchen-lamp/tools/get_state", "");
    assert_eq!(state["structuredContent"]["on"], true);
    // The lamp's telemetry reaches the Hub's window and shows it on.
    let lamp = worker.wait_for("/api/devices/kitchen-lamp", Duration::from_secs(15), |v| {
        v["telemetry"]
            .as_array()
            .is_some_and(|s| s.iter().any(|t| t["metrics"]["on"] == true))
    });
    assert_eq!(lamp["permissions"]["set_power"], "auto");

    // 2. A confirm tool waits; nothing happens until the person approves.
    let mut s = chat(
        &worker,
        json!({"text": "unlock the front door", "user": "ada"}),
    );
    let asked = s.until("confirmation_required");
    let ask = find(&asked, "confirmation_required").clone();
    assert_eq!(ask["device"], "front-door");
    assert!(
        ask["prompt"].as_str().unwrap().contains("Front door lock"),
        "{ask}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sim.tool_calls("front-door", "unlock"),
        0,
        "nothing before approval"
    );
    let (status, e) = worker.post("/api/confirm", r#"{"id":"no-such-call","approve":true}"#);
    assert_eq!(status, 404, "{e}");
    let (status, e) = worker.post("/api/confirm", r#"{"id":"x"}"#);
    assert_eq!(status, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("approve"));
    let (status, _) = worker.post(
        "/api/confirm",
        &json!({"id": ask["id"], "approve": true}).to_string(),
    );
    assert_eq!(status, 200);
    let rest = s.until("done");
    assert_eq!(find(&rest, "tool_finished")["ok"], true);
    assert_eq!(
        find(&rest, "answer")["text"],
        "Front door lock is unlocked."
    );
    assert_eq!(sim.wait_tool_calls("front-door", "unlock", 1), 1);

    //    Declined: the turn answers and the lock is not touched again.
    let mut s = chat(
        &worker,
        json!({"text": "unlock the front door", "user": "ada"}),
    );
    let ask = find(&s.until("confirmation_required"), "confirmation_required").clone();
    worker.post(
        "/api/confirm",
        &json!({"id": ask["id"], "approve": false}).to_string(),
    );
    let rest = s.until("done");
    assert_eq!(find(&rest, "tool_finished")["error"]["code"], -32012);
    assert_eq!(
        find(&rest, "answer")["text"],
        "OK, I left the front door lock as it was."
    );
    assert_eq!(sim.tool_calls("front-door", "unlock"), 1);

    // 3. A deny tool (site policy) never reaches the board, from chat or from the console.
    let turn = chat(
        &worker,
        json!({"text": "switch on the coffee machine plug"}),
    )
    .until("done");
    assert_eq!(find(&turn, "tool_finished")["error"]["code"], -32012);
    assert_eq!(
        find(&turn, "answer")["text"],
        "I'm not allowed to do that on the coffee machine plug."
    );
    let (status, _) = worker.post(
        "/api/devices/kitchen-plug/tools/set_power",
        r#"{"on":true}"#,
    );
    assert_eq!(status, 403);
    assert_eq!(sim.tool_calls("kitchen-plug", "set_power"), 0);

    //    Not understood: said honestly, with what it can do.
    let turn = chat(&worker, json!({"text": "bake me a cake"})).until("done");
    let answer = find(&turn, "answer")["text"].as_str().unwrap().to_string();
    assert!(answer.starts_with("I didn't understand"), "{answer}");

    // 4. Bad input on /api: 400 with a message, nothing runs.
    for (body, needle) in [
        ("{oops", "not JSON"),
        ("", "empty"),
        ("[1]", "JSON object"),
        ("{}", "needs \"text\""),
        (r#"{"text": 5}"#, "must be a string"),
        (r#"{"text": "hi", "user": "no spaces please"}"#, "\"user\""),
        (
            r#"{"text": "hi", "image": "file:///etc/passwd"}"#,
            "\"image\"",
        ),
    ] {
        let (status, e) = worker.post("/api/chat", body);
        assert_eq!(status, 400, "{body}: {e}");
        let msg = e["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let (status, _) = worker.get("/api/nothing-here");
    assert_eq!(status, 404);

    // 5. /api/events carried presence (hello), telemetry, and the agent's activity.
    let mut seen: Vec<SseEvent> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ada_started = |seen: &[SseEvent]| {
        seen.iter().any(|e| {
            e.event == "agent"
                && e.data["event"]["type"] == "tool_started"
                && e.data["user"] == "ada"
        })
    };
    while std::time::Instant::now() < deadline
        && !(seen.iter().any(|e| e.event == "telemetry") && ada_started(&seen))
    {
        if let Ok(e) = events_rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(e);
        }
    }
    assert!(seen
        .iter()
        .any(|e| e.event == "telemetry" && e.data["metrics"].is_object()));
    assert!(ada_started(&seen), "{seen:?}");

    // 6. /mcp: the official MCP Python SDK lists the demo home and calls a tool.
    let url = format!("http://127.0.0.1:{}/mcp", worker.port());
    let lines =
        axon_tests::peer::mcp_sdk_client(&url, TOKEN, "kitchen-lamp.set_power", r#"{"on": false}"#);
    let step = |name: &str| lines.iter().find(|l| l["step"] == name).unwrap().clone();
    assert_eq!(step("initialize")["protocol"], "2025-06-18");
    assert_eq!(step("initialize")["list_changed"], true);
    let listed = step("list");
    let tool_names: Vec<&str> = listed["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tool_names.contains(&"kitchen-lamp.set_power"));
    assert!(tool_names.contains(&"front-door.unlock"));
    assert!(tool_names.len() >= 30, "{tool_names:?}");
    // Paged (8 tools a page, whole devices), and every tool listed once.
    assert!(listed["pages"].as_u64().unwrap() >= 3, "{listed}");
    let mut unique = tool_names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tool_names.len(), "{tool_names:?}");
    assert_eq!(
        listed["titles"]["kitchen-lamp.set_power"],
        "Kitchen lamp: Switch power"
    );
    let call = step("call");
    assert_eq!(call["is_error"], false, "{call}");
    assert_eq!(call["structured"]["on"], false);
    assert_eq!(sim.wait_tool_calls("kitchen-lamp", "set_power", 2), 2);
    let bad = step("bad_call");
    assert_eq!(bad["code"], -32602, "{bad}");
    assert_eq!(bad["data"]["field"], "arguments.on");
    assert!(
        bad["text"][0].as_str().unwrap().contains("arguments.on"),
        "{bad}"
    );
    assert_eq!(
        sim.tool_calls("kitchen-lamp", "set_power"),
        2,
        "bad arguments never reach the board"
    );

    //    No token or a wrong one: 401, nothing executed.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kitchen-lamp.set_power","arguments":{"on":true}}}"#;
    for auth in [None, Some("Bearer wrong-token"), Some("Basic abc")] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let (status, head, body) =
            http_with(worker.port(), "POST", "/mcp", &headers, Some(call)).unwrap();
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert!(head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"));
    }
    //    A good token without a session: told to initialize.
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = http_with(
        worker.port(),
        "POST",
        "/mcp",
        &[("Authorization", &auth)],
        Some(call),
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("initialize"));

    //    A page on another site cannot drive the home through a visitor's browser: a "simple"
    //    POST (no preflight) and a voice WebSocket from a foreign Origin get 403; the worker's
    //    own origin, and clients that send no Origin (boards, curl), pass.
    let evil = [
        ("Origin", "http://evil.example"),
        ("Content-Type", "text/plain"),
    ];
    let (status, _, body) = http_with(
        worker.port(),
        "POST",
        "/api/chat",
        &evil,
        Some(r#"{"text":"turn on the kitchen lamp"}"#),
    )
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AXON_ALLOWED_ORIGINS"), "{body}");
    //    `*` in AXON_ALLOWED_ORIGINS opens nothing and is reported; a listed origin gets CORS.
    let (_, health) = axon_tests::http::http(worker.port(), "GET", "/healthz", None).unwrap();
    assert!(
        health.contains("AXON_ALLOWED_ORIGINS may not be *"),
        "{health}"
    );
    let preflight = |origin: &str| {
        http_with(
            worker.port(),
            "OPTIONS",
            "/api/chat",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
        .unwrap()
    };
    let (status, _, body) = preflight("http://evil.example");
    assert_eq!(status, 403, "{body}");
    let (status, head, body) = preflight("http://shop.example");
    assert_eq!(status, 204, "{body}");
    assert!(
        head.to_lowercase()
            .contains("access-control-allow-origin: http://shop.example"),
        "{head}"
    );
    let upgrade = |origin: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", worker.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /api/voice?user=ada HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\
             Authorization: Bearer {}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            worker.port(),
            worker.owner_token()
        )
        .unwrap();
        // The status line is enough: an upgraded socket stays open.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).trim().to_string()
    };
    let foreign = upgrade("http://evil.example");
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    let own = upgrade(&format!("http://127.0.0.1:{}", worker.port()));
    assert!(own.starts_with("HTTP/1.1 101"), "{own}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sim.tool_calls("kitchen-lamp", "set_power"), 2);

    // 7. Device events reach the agent: a lamp that overheats (fault rate 1 while on) makes a
    //    warning, and the agent tells whoever watches /api/events.
    let mut porch = DeviceSim::start(
        &broker,
        &[
            "--profile",
            "lamp",
            "--id-prefix",
            "porch-lamp",
            "--fault-rate",
            "1",
            "--telemetry-interval-ms",
            "200",
        ],
    );
    worker.wait_for("/healthz", Duration::from_secs(20), |v| {
        v["ready"] == DEMO_HOME_DEVICES + 1
    });
    let turn = chat(
        &worker,
        json!({"text": "turn on porch lamp 1", "user": "ada"}),
    )
    .until("done");
    assert_eq!(find(&turn, "answer")["text"], "Lamp 1 is on.");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let notice = loop {
        let e = events_rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("an agent_notice within 10 s");
        if e.event == "agent_notice" && e.data["device"] == "porch-lamp-1" {
            break e.data;
        }
    };
    assert_eq!(notice["severity"], "warning");
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .contains("Lamp 1 reports fault: lamp driver overheating"),
        "{notice}"
    );

    //    A board that dies mid-call: the turn gets a clear error at once (its will), no hang.
    porch.freeze();
    let mut s = chat(
        &worker,
        json!({"text": "turn off porch lamp 1", "user": "ada"}),
    );
    let started = s.until("tool_started");
    assert_eq!(find(&started, "tool_started")["device"], "porch-lamp-1");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    porch.kill9();
    let rest = s.until("done");
    let finished = find(&rest, "tool_finished");
    assert_eq!(finished["error"]["code"], -32010, "{finished}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "failed by the will, not the 10 s timeout"
    );
    assert_eq!(find(&rest, "answer")["text"], "Lamp 1 is offline.");

    // 8. Memory survives a wrangler dev restart.
    let (_, before) = worker.get("/api/memory?user=ada");
    let texts = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(texts(&before)[0], "turn on the kitchen lamp");
    assert_eq!(texts(&before)[1], "Kitchen lamp is on.");
    assert_eq!(texts(&before).len(), 10);
    worker.restart();
    // The first request to a Hub that has just started is a chat: it waits for discovery
    // instead of answering that no devices are online.
    let turn = chat(
        &worker,
        json!({"text": "turn off the kitchen lamp", "user": "ada"}),
    )
    .until("done");
    assert_eq!(find(&turn, "answer")["text"], "Kitchen lamp is off.");
    let (status, after) = worker.get("/api/memory?user=ada");
    assert_eq!(status, 200);
    assert_eq!(
        texts(&after)[..10],
        texts(&before)[..],
        "what was remembered survived"
    );
    assert_eq!(texts(&after).len(), 12);
    let (status, _, _) =
        http_with(worker.port(), "DELETE", "/api/memory?user=ada", &[], None).unwrap();
    assert_eq!(status, 200);
    let (_, empty) = worker.get("/api/memory?user=ada");
    assert!(empty["messages"].as_array().unwrap().is_empty());
}
