#!/usr/bin/env python3
"""Runs the two independent peers against each other on a private Mosquitto.

Checks that the reference peers themselves follow the spec before they are used to judge
Axon's implementation. Bounded: every wait has a deadline. Prints "N passed, M failed".
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_broker() -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="axon-selftest-"))
    (d / "m.conf").write_text(f"per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
                              f"set_tcp_nodelay true\nlistener {port} 127.0.0.1\nprotocol mqtt\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "m.conf")], stderr=open(d / "m.log", "w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, d
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def start_device(port: int, sid: str, *extra: str) -> subprocess.Popen:
    p = subprocess.Popen([PY, str(HERE / "spec_device.py"), "--broker", f"127.0.0.1:{port}", "--server-id", sid,
                          "--server-name", f"axon/counter/{sid}", *extra], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # {"event":"online"}
    assert '"online"' in line, line
    return p


def run_client(port: int, sid: str, *extra: str, during=None) -> list[dict]:
    c = subprocess.Popen([PY, str(HERE / "spec_client.py"), "--broker", f"127.0.0.1:{port}", "--server-id", sid, "--timeout", "5", *extra],
                         stdout=subprocess.PIPE, text=True)
    steps = []
    for line in c.stdout:
        step = json.loads(line)
        steps.append(step)
        if step["step"] == "waiting_offline" and during:
            during()
    c.wait(timeout=15)
    return steps


def check(name: str, cond: bool, detail: object = "") -> bool:
    print(f"{'ok  ' if cond else 'FAIL'} {name}" + ("" if cond else f": {detail}"))
    return cond


def main() -> None:
    broker, port, d = start_broker()
    results = []
    try:
        dev = start_device(port, "c1")
        s = run_client(port, "c1", "--call", 'increment={"by":2}', "--call", "get_value", "--call", "fail", "--call", "nope", "--ping")
        calls = [x for x in s if x["step"] == "call"]
        results.append(check("plain: initialize, list, call", s[-1]["step"] == "done" and calls[1]["response"]["result"]["structuredContent"] == {"value": 2}, s))
        results.append(check("plain: tool failure is isError", calls[2]["response"]["result"]["isError"] is True, calls))
        results.append(check("plain: unknown tool is -32602", calls[3]["response"]["error"]["code"] == -32602, calls))
        results.append(check("plain: ping answers {}", next(x for x in s if x["step"] == "ping")["response"]["result"] == {}, s))
        s = run_client(port, "c1", "--qos0", "--string-ids", "--offer-version", "2024-11-05", "--call", "get_value")
        init = next(x for x in s if x["step"] == "initialized")
        results.append(check("quirks: qos0 + string ids + 2024-11-05 echoed", init["result"]["protocolVersion"] == "2024-11-05" and s[-1]["step"] == "done", s))
        s = run_client(port, "c1", "--strict-connack")
        results.append(check("quirk 1: a strict client refuses Mosquitto's CONNACK", s[-1]["step"] == "error" and "quirk 1" in s[-1]["message"], s))
        s = run_client(port, "c1", "--expect-offline", during=lambda: dev.send_signal(signal.SIGTERM))
        results.append(check("graceful leave clears presence", s[-1]["step"] == "done" and any(x["step"] == "offline" for x in s), s))
        dev.wait(timeout=5)
        dev2 = start_device(port, "c2")
        s = run_client(port, "c2", "--expect-offline", during=dev2.kill)
        results.append(check("kill -9: the will clears presence", any(x["step"] == "offline" for x in s), s))
    finally:
        for p in (broker,):
            p.kill()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
