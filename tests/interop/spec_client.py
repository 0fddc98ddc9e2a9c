#!/usr/bin/env python3
"""An MCP-over-MQTT client ("their client"), written from the spec for interop tests.

Discovers one server by its retained presence, initializes it (capability and RPC topics
subscribed, No Local, before `initialize`), lists its tools (following nextCursor), makes
the calls given on the command line, then leaves (notifications/disconnected on its own
presence topic, then DISCONNECT).

Switches reproduce habits of other SDKs (quirk numbers from docs/protocol.md §11):
  --qos0                 publish at QoS 0 (quirk 5)
  --offer-version V      offer e.g. 2024-11-05 (TS client, quirk 6)
  --string-ids           nanoid-like string request ids (TS, quirk 8)
  --id-zero              the first request after initialize uses id 0 (quirk 8)
  --no-client-id-prop    omit MCP-MQTT-CLIENT-ID on every publish but initialize (a client that omits properties)
  --strict-connack       refuse a CONNACK without Retain Available / Wildcard Subscription
                         Available, like EMQX's Python SDK (quirk 1: fails against Mosquitto 2.0)
  --late-rpc-subscribe MS publish `initialize` first and subscribe to the RPC topic MS ms later,
                         like EMQX's TypeScript client (quirk 17): a fast answer reaches nobody

Stdout, one JSON line per step: discovered, initialized, tools, call, ping, waiting_offline,
offline, done; or {"step":"error","message":..} and exit status 1.
"""
from __future__ import annotations

import argparse
import itertools
import json
import queue
import secrets
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from mcp_mqtt import CLIENT_ID, SubackWaiter, add_account_args, connect_props, emit, log, new_client, parse_broker, publish_props


class Fail(Exception):
    pass


class SpecClient:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cid = f"spec-client-{secrets.token_hex(4)}"
        self.qos = 0 if args.qos0 else 1
        self.presence: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.responses: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self.connack_props: dict[str, Any] = {}
        self.subacks = SubackWaiter()
        self.ids = itertools.count(1)
        self.first_after_init = True
        self.client = new_client(self.cid, args.username, args.password)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subacks.acked(mid)
        self.client.on_message = self.on_message
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        will = Properties(PacketTypes.WILLMESSAGE)
        will.UserProperty = [("MCP-COMPONENT-TYPE", "mcp-client"), (CLIENT_ID, self.cid)]
        self.client.will_set(f"$mcp-client/presence/{self.cid}", json.dumps({"jsonrpc": "2.0", "method": "notifications/disconnected"}),
                             qos=1, retain=False, properties=will)

    # --- MQTT callbacks -------------------------------------------------------------------
    def on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack_props = {k: getattr(properties, k) for k in ("RetainAvailable", "WildcardSubscriptionAvailable") if hasattr(properties, k)}
        self.connected.set()

    def on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("$mcp-server/presence/"):
            self.presence.put((msg.topic, msg.payload))
        elif msg.topic.startswith("$mcp-rpc/"):
            try:
                m = json.loads(msg.payload)
            except ValueError:
                return
            if isinstance(m, dict) and ("result" in m or "error" in m):
                self.responses.put(m)

    # --- helpers ----------------------------------------------------------------------------
    def publish(self, topic: str, payload: dict[str, Any], with_id: bool = True) -> None:
        props = publish_props("mcp-client", self.cid if with_id else None)
        self.client.publish(topic, json.dumps(payload), qos=self.qos, properties=props)

    def subscribe_and_wait(self, subs: list[tuple[str, SubscribeOptions]]) -> None:
        done = threading.Event()
        _, mid = self.client.subscribe(subs)
        self.subacks.expect(mid, done.set)
        if not done.wait(self.args.timeout):
            raise Fail("no SUBACK")

    def next_id(self) -> int | str:
        if self.args.id_zero and self.first_after_init:
            self.first_after_init = False
            return 0
        n = next(self.ids)
        return f"req-{secrets.token_urlsafe(6)}-{n}" if self.args.string_ids else n

    def request(self, topic: str, method: str, params: dict[str, Any] | None, rid: int | str | None = None,
                before_wait=None) -> dict[str, Any]:
        rid = self.next_id() if rid is None else rid
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.publish(topic, msg, with_id=method == "initialize" or not self.args.no_client_id_prop)
        if before_wait is not None:
            before_wait()
        deadline = time.monotonic() + self.args.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"{method}: no response within {self.args.timeout} s")
            try:
                r = self.responses.get(timeout=left)
            except queue.Empty:
                continue
            if r.get("id") == rid:
                return r

    # --- the flow ---------------------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        host, port = parse_broker(a.broker)
        self.client.connect(host, port, keepalive=30, clean_start=True, properties=connect_props("mcp-client"))
        self.client.loop_start()
        if not self.connected.wait(a.timeout):
            raise Fail("no CONNACK")
        if a.strict_connack and (self.connack_props.get("RetainAvailable") != 1 or self.connack_props.get("WildcardSubscriptionAvailable") != 1):
            raise Fail(f"quirk 1: CONNACK lacks Retain Available / Wildcard Subscription Available (got {self.connack_props})")
        self.subscribe_and_wait([(f"$mcp-server/presence/+/{a.filter}", SubscribeOptions(qos=1))])
        name, online = self.wait_presence(a.server_id, online=True)
        emit(step="discovered", server_id=a.server_id, server_name=name, online=online)
        rpc = f"$mcp-rpc/{self.cid}/{a.server_id}/{name}"
        rpc_sub = (rpc, SubscribeOptions(qos=1, noLocal=True))
        late = a.late_rpc_subscribe is not None
        self.subscribe_and_wait([(f"$mcp-server/capability/{a.server_id}/{name}", SubscribeOptions(qos=1))]
                                + ([] if late else [rpc_sub]))

        def subscribe_late() -> None:
            # The habit of EMQX's TypeScript client: initialize out, RPC SUBSCRIBE afterwards.
            time.sleep(a.late_rpc_subscribe / 1000)
            self.subscribe_and_wait([rpc_sub])
            emit(step="rpc_subscribed", after_ms=a.late_rpc_subscribe)

        init = self.request(f"$mcp-server/{a.server_id}/{name}", "initialize",
                            {"protocolVersion": a.offer_version, "capabilities": {}, "clientInfo": {"name": "spec-client", "version": "1.0"}},
                            rid="init-1" if a.string_ids else 1, before_wait=subscribe_late if late else None)
        emit(step="initialized", result=init.get("result"), error=init.get("error"))
        if "result" not in init:
            raise Fail(f"initialize failed: {init}")
        self.publish(rpc, {"jsonrpc": "2.0", "method": "notifications/initialized"}, with_id=not a.no_client_id_prop)
        if a.ping:
            r = self.request(rpc, "ping", None)
            emit(step="ping", response=r)
        tools: list[dict[str, Any]] = []
        cursor = None
        while True:
            r = self.request(rpc, "tools/list", {"cursor": cursor} if cursor else {})
            if "result" not in r:
                raise Fail(f"tools/list failed: {r}")
            tools += r["result"].get("tools", [])
            cursor = r["result"].get("nextCursor")
            if not cursor:
                break
        emit(step="tools", tools=tools)
        for name_args in a.call:
            tool, _, raw = name_args.partition("=")
            args = json.loads(raw) if raw else {}
            r = self.request(rpc, "tools/call", {"name": tool, "arguments": args})
            emit(step="call", tool=tool, response=r)
        if a.raw:
            for raw in a.raw:
                self.publish(rpc, json.loads(raw))
        if a.expect_offline:
            emit(step="waiting_offline")
            self.wait_presence(a.server_id, online=False)
            emit(step="offline")
        self.client.publish(f"$mcp-client/presence/{self.cid}", json.dumps({"jsonrpc": "2.0", "method": "notifications/disconnected"}),
                            qos=1, properties=publish_props("mcp-client", self.cid)).wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        emit(step="done")

    def wait_presence(self, server_id: str, online: bool) -> tuple[str, Any]:
        deadline = time.monotonic() + self.args.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"server {server_id} did not go {'online' if online else 'offline'} within {self.args.timeout} s")
            try:
                topic, payload = self.presence.get(timeout=left)
            except queue.Empty:
                continue
            parts = topic.split("/", 3)
            if len(parts) < 4 or parts[2] != server_id:
                continue
            if online and payload:
                msg = json.loads(payload)
                # The name comes from the topic (quirk 9: some servers omit server_name).
                return parts[3], msg.get("params")
            if not online and not payload:
                return parts[3], None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    add_account_args(ap)
    ap.add_argument("--filter", default="axon/#")
    ap.add_argument("--server-id", required=True)
    ap.add_argument("--call", action="append", default=[], metavar="TOOL=JSON", help='e.g. set_power={"on":true}')
    ap.add_argument("--raw", action="append", default=[], metavar="JSON", help="publish this JSON on the RPC topic after the calls")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--expect-offline", action="store_true")
    ap.add_argument("--qos0", action="store_true")
    ap.add_argument("--offer-version", default="2025-06-18")
    ap.add_argument("--string-ids", action="store_true")
    ap.add_argument("--id-zero", action="store_true")
    ap.add_argument("--no-client-id-prop", action="store_true")
    ap.add_argument("--strict-connack", action="store_true")
    ap.add_argument("--late-rpc-subscribe", type=int, default=None, metavar="MS")
    ap.add_argument("--ping", action="store_true")
    args = ap.parse_args()
    try:
        SpecClient(args).run()
    except (Fail, OSError, ValueError) as e:
        emit(step="error", message=str(e))
        log(f"spec_client: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
