#!/usr/bin/env python3
"""An MCP-over-MQTT server ("their device"), written from the spec for interop tests.

A counter with three tools: increment {by: 1..10}, get_value {}, fail {} (isError). It follows
the spec's server flow: will = empty retained presence; subscribe to the control topic and
only then publish the retained online message; on initialize, subscribe to the client's
presence, capability and RPC (No Local) topics and answer after the SUBACK.

Switches reproduce habits of other SDKs (quirk numbers from docs/protocol.md §11):
  --qos0                   publish everything at QoS 0 (Python/C/ESP-IDF SDKs, quirks 5, 13)
  --omit-server-name       online params without server_name (Python server, quirk 9)
  --pong                   answer ping with {"pong": true} (TS server, quirk 7)
  --unknown-tool-code N    error code for an unknown tool, e.g. -32001 (TS server, quirk 11)
  --version V              always answer this protocolVersion, e.g. 2024-11-05 (TS server, quirk 6)
  --no-axon-meta           online params without `meta` (any SDK: only Axon devices send meta.axon)
  --random-server-id       a fresh random server-id for every connection, unrelated to the name
                           (EMQX's SDKs); --server-id is then ignored

Stdout: {"event":"online","server_id":..,...} once discoverable, then
{"event":"request","method":..,"id":..,"server_id":..} per request.
SIGTERM/SIGINT: tombstone (waits for PUBACK), then DISCONNECT.
SIGHUP: reboot. A new connection (a new server-id with --random-server-id) comes online first;
only then does the old connection's tombstone go out, as a will the broker fires late would,
and the old connection closes. The counter survives (it is the same device).
"""
from __future__ import annotations

import argparse
import json
import secrets
import signal
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from mcp_mqtt import (CLIENT_ID, SubackWaiter, add_account_args, connect_props, emit, log, new_client, parse_broker, publish_props, user_props)

SUPPORTED = ("2025-06-18", "2025-03-26", "2024-11-05")

TOOLS = [
    {"name": "increment", "description": "Add `by` to the counter",
     "inputSchema": {"type": "object", "properties": {"by": {"type": "integer", "minimum": 1, "maximum": 10}},
                     "required": ["by"], "additionalProperties": False},
     "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
     "_meta": {"axon/permission": "auto"}},
    {"name": "get_value", "description": "Read the counter", "inputSchema": {"type": "object", "properties": {}},
     "annotations": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True},
     "_meta": {"axon/permission": "auto"}},
    {"name": "fail", "description": "Always fails inside the tool", "inputSchema": {"type": "object", "properties": {}},
     "annotations": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True},
     "_meta": {"axon/permission": "auto"}},
]


class Device:
    """One connection (instance) of the device; `state` is what survives a reboot."""

    def __init__(self, args: argparse.Namespace, state: dict[str, int]) -> None:
        self.args = args
        self.sid: str = secrets.token_hex(8) if args.random_server_id else args.server_id
        self.name: str = args.server_name
        self.qos = 0 if args.qos0 else 1
        self.state = state
        self.sessions: dict[str, str] = {}  # client id -> rpc topic
        self.subacks = SubackWaiter()
        self.online = threading.Event()
        self.online_sent: mqtt.MQTTMessageInfo | None = None
        self.stopped = threading.Event()
        self.client = new_client(self.sid, args.username, args.password)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subacks.acked(mid)
        self.client.on_message = self.on_message
        self.client.will_set(self.presence_topic(), b"", qos=1, retain=True, properties=self.props_will())

    def props_will(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        p = Properties(PacketTypes.WILLMESSAGE)
        p.UserProperty = [("MCP-COMPONENT-TYPE", "mcp-server"), (CLIENT_ID, self.sid)]
        return p

    def presence_topic(self) -> str:
        return f"$mcp-server/presence/{self.sid}/{self.name}"

    def publish(self, topic: str, payload: Any, retain: bool = False) -> mqtt.MQTTMessageInfo:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(topic, data, qos=self.qos if not retain else 1, retain=retain,
                                   properties=publish_props("mcp-server", self.sid))

    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log(f"connect refused: {reason_code}")
            return
        assigned = dict(getattr(properties, "UserProperty", []) or []).get("MCP-SERVER-NAME")
        if assigned:
            self.name = assigned
        _, mid = client.subscribe([(f"$mcp-server/{self.sid}/{self.name}", SubscribeOptions(qos=1))])
        self.subacks.expect(mid, self.go_online)

    def go_online(self) -> None:
        params: dict[str, Any] = {"description": "Spec counter device"}
        if not self.args.no_axon_meta:
            params["meta"] = {"axon": {"device_id": self.sid, "kind": "counter"}}
        if not self.args.omit_server_name:
            params["server_name"] = self.name
        self.online_sent = self.publish(self.presence_topic(), {"jsonrpc": "2.0", "method": "notifications/server/online", "params": params}, retain=True)
        emit(event="online", server_id=self.sid, server_name=self.name)
        self.online.set()

    def on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic == f"$mcp-server/{self.sid}/{self.name}":
            self.on_control(msg)
        elif topic.startswith("$mcp-rpc/"):
            cid = topic.split("/")[1]
            self.on_rpc(cid, msg.payload)
        elif topic.startswith("$mcp-client/presence/"):
            cid = topic.split("/", 2)[2]
            try:
                if json.loads(msg.payload).get("method") == "notifications/disconnected":
                    self.drop(cid)
            except (ValueError, AttributeError):
                pass

    def on_control(self, msg: mqtt.MQTTMessage) -> None:
        cid = user_props(msg).get(CLIENT_ID)
        if not cid:
            log("initialize without MCP-MQTT-CLIENT-ID: ignored")
            return
        try:
            req = json.loads(msg.payload)
        except ValueError:
            return
        if req.get("method") != "initialize" or "id" not in req:
            return
        rpc = f"$mcp-rpc/{cid}/{self.sid}/{self.name}"
        self.sessions[cid] = rpc
        offered = (req.get("params") or {}).get("protocolVersion", "")
        version = self.args.version or (offered if offered in SUPPORTED else "2025-06-18")
        result = {"protocolVersion": version, "capabilities": {"tools": {"listChanged": True}},
                  "serverInfo": {"name": "spec-counter", "version": "1.0"}}
        answer = {"jsonrpc": "2.0", "id": req["id"], "result": result}
        emit(event="request", method="initialize", id=req["id"], client=cid, offered=offered)
        _, mid = self.client.subscribe([
            (f"$mcp-client/presence/{cid}", SubscribeOptions(qos=1)),
            (f"$mcp-client/capability/{cid}", SubscribeOptions(qos=1)),
            (rpc, SubscribeOptions(qos=1, noLocal=True)),
        ])
        self.subacks.expect(mid, lambda: self.publish(rpc, answer))

    def drop(self, cid: str) -> None:
        rpc = self.sessions.pop(cid, None)
        if rpc:
            self.client.unsubscribe([f"$mcp-client/presence/{cid}", f"$mcp-client/capability/{cid}", rpc])
            emit(event="client_left", client=cid)

    def on_rpc(self, cid: str, payload: bytes) -> None:
        rpc = self.sessions.get(cid)
        if rpc is None:
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            self.publish(rpc, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
            return
        if not isinstance(msg, dict) or "method" not in msg:
            return  # responses and junk
        method = msg["method"]
        if "id" not in msg:
            if method == "notifications/disconnected":
                self.drop(cid)
            return
        rid = msg["id"]
        emit(event="request", method=method, id=rid, client=cid, server_id=self.sid)
        params = msg.get("params") or {}
        try:
            result = self.dispatch(method, params)
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": result}
        except RpcError as e:
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": e.code, "message": e.message}}
        self.publish(rpc, reply)

    def dispatch(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "ping":
            return {"pong": True} if self.args.pong else {}
        if method == "tools/list":
            return {"tools": TOOLS}
        if method == "tools/call":
            name = params.get("name")
            args = params.get("arguments") or {}
            if name == "increment":
                by = args.get("by")
                if not isinstance(by, int) or isinstance(by, bool) or not 1 <= by <= 10:
                    raise RpcError(-32602, "by must be an integer 1..10")
                self.state["value"] += by
                return structured({"value": self.state["value"]})
            if name == "get_value":
                return structured({"value": self.state["value"]})
            if name == "fail":
                return {"content": [{"type": "text", "text": "the counter refuses"}], "isError": True}
            raise RpcError(self.args.unknown_tool_code, f"unknown tool {name}")
        raise RpcError(-32601, f"method not found: {method}")

    def start(self) -> None:
        host, port = parse_broker(self.args.broker)
        self.client.connect(host, port, keepalive=30, clean_start=True, properties=connect_props("mcp-server"))
        self.client.loop_start()

    def stop(self) -> None:
        """Tombstone (waits for the PUBACK), then DISCONNECT."""
        info = self.client.publish(self.presence_topic(), b"", qos=1, retain=True, properties=publish_props("mcp-server", self.sid))
        info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()


def run(args: argparse.Namespace) -> None:
    state = {"value": 0}
    stopped, reboot = threading.Event(), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    signal.signal(signal.SIGHUP, lambda *_: reboot.set())
    current = Device(args, state)
    current.start()
    while not stopped.wait(0.05):
        if not reboot.is_set():
            continue
        reboot.clear()
        new = Device(args, state)
        new.start()
        # Online means PUBACKed: the broker has passed the new online message on before the old
        # connection's tombstone reaches it, whichever client thread writes first.
        if not new.online.wait(10) or new.online_sent is None:
            log("reboot: the new connection did not come online")
        else:
            new.online_sent.wait_for_publish(timeout=5)
        # The old instance's tombstone after the new instance's online message: a late will.
        old_sid = current.sid
        current.stop()
        current = new
        emit(event="rebooted", old_server_id=old_sid, server_id=new.sid)
    current.stop()
    emit(event="stopped")


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def structured(value: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": json.dumps(value)}], "structuredContent": value, "isError": False}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    add_account_args(ap)
    ap.add_argument("--server-id", default="spec-counter")
    ap.add_argument("--server-name", default="axon/counter/spec-counter")
    ap.add_argument("--qos0", action="store_true")
    ap.add_argument("--omit-server-name", action="store_true")
    ap.add_argument("--pong", action="store_true")
    ap.add_argument("--unknown-tool-code", type=int, default=-32602)
    ap.add_argument("--version", default=None)
    ap.add_argument("--no-axon-meta", action="store_true")
    ap.add_argument("--random-server-id", action="store_true")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
