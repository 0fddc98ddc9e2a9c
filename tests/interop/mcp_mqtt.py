"""Shared bits of the independent MCP-over-MQTT peers: topics, properties, JSON lines.

Written from the spec as docs/protocol.md §3–§5 states it (EMQX MCP over MQTT on MCP
2025-06-18), not from Axon's Rust code, so that interop tests compare two implementations of
the spec.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

COMPONENT = "MCP-COMPONENT-TYPE"
CLIENT_ID = "MCP-MQTT-CLIENT-ID"
META = "MCP-META"


def emit(**fields: Any) -> None:
    """One JSON line on stdout, flushed: the test reads these."""
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def publish_props(component: str, client_id: str | None) -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    props = [(COMPONENT, component)]
    if client_id is not None:
        props.append((CLIENT_ID, client_id))
    p.UserProperty = props
    return p


def user_props(msg: mqtt.MQTTMessage) -> dict[str, str]:
    props = getattr(msg, "properties", None)
    return dict(getattr(props, "UserProperty", []) or [])


def add_account_args(ap) -> None:
    """--username / --password for a broker with accounts (docs/security.md); the password
    defaults to env AXON_BROKER_PASSWORD so that it need not be on the command line."""
    ap.add_argument("--username", default=os.environ.get("AXON_BROKER_USERNAME"))
    ap.add_argument("--password", default=os.environ.get("AXON_BROKER_PASSWORD"))


def new_client(client_id: str, username: str | None = None, password: str | None = None) -> mqtt.Client:
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if username:
        c.username_pw_set(username, password)
    return c


def connect_props(component: str) -> Properties:
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = 0
    p.UserProperty = [(COMPONENT, component), (META, json.dumps({"version": "0.1", "implementation": "spec-peer"}))]
    return p


def parse_broker(addr: str) -> tuple[str, int]:
    addr = addr.removeprefix("mqtt://")
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


class SubackWaiter:
    """Maps SUBSCRIBE message ids to callbacks run when the SUBACK arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, Any] = {}
        self._early: set[int] = set()

    def expect(self, mid: int, then: Any) -> None:
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
                run = True
            else:
                self._waiting[mid] = then
                run = False
        if run:
            then()

    def acked(self, mid: int) -> None:
        with self._lock:
            then = self._waiting.pop(mid, None)
            if then is None:
                self._early.add(mid)
        if then is not None:
            then()
