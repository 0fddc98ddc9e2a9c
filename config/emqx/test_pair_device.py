#!/usr/bin/env python3
"""Tests pair-device.sh against a stand-in for EMQX 5.8's HTTP API.

The stand-in answers the requests pair-device.sh makes with the status codes and shapes of
EMQX v5.8.9's handlers (emqx_authn_api.erl, emqx_authz_api_mnesia.erl,
emqx_mgmt_api_clients.erl, emqx_retainer_api.erl), keeps users, per-username rules,
connected clients and retained messages in memory, and records every request. It checks
what the script sends and that no secret reaches its output. It is not EMQX: whether EMQX
accepts these requests is for a first deployment to verify (README.md).

Run: python3 config/emqx/test_pair_device.py   (needs bash, curl and jq; stdlib only)
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "pair-device.sh")
KEY, SECRET = "axon-pairing", 'se"cr\\et-Zq81'
AUTHN = "/api/v5/authentication/password_based:built_in_database/users"
RULES = "/api/v5/authorization/sources/built_in_database/rules/users/"


class FakeEmqx:
    def __init__(self):
        self.users = {}  # user_id -> password
        self.rules = {}  # username -> [rule]
        self.clients = set()
        self.retained = {}
        self.log = []  # (method, raw path, decoded path, query, body)


def handler(state):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body=None):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self, method):
            raw = self.path
            split = urllib.parse.urlsplit(raw)
            path = urllib.parse.unquote(split.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode() if n else ""
            state.log.append((method, raw, path, query, body))
            want = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, {"code": "BAD_API_KEY_OR_SECRET", "message": "bad"})
            doc = json.loads(body) if body.strip() else None
            if method in ("POST", "PUT") and not isinstance(doc, dict):
                return self.reply(400, {"code": "BAD_REQUEST", "message": "body is not a JSON object"})
            if method == "POST" and path == AUTHN:
                if doc["user_id"] in state.users:
                    return self.reply(409, {"code": "ALREADY_EXISTS", "message": "User already exists"})
                state.users[doc["user_id"]] = doc["password"]
                return self.reply(201, {"user_id": doc["user_id"], "is_superuser": doc["is_superuser"]})
            if path.startswith(AUTHN + "/"):
                user = path[len(AUTHN) + 1:]
                if user not in state.users:
                    return self.reply(404, {"code": "NOT_FOUND", "message": "User not found"})
                if method == "GET":
                    return self.reply(200, {"user_id": user, "is_superuser": False})
                if method == "PUT":
                    state.users[user] = doc["password"]
                    return self.reply(200, {"user_id": user, "is_superuser": False})
                if method == "DELETE":
                    del state.users[user]
                    return self.reply(204)
            if path.startswith(RULES):
                user = path[len(RULES):]
                if method == "GET":
                    if user not in state.rules:
                        return self.reply(404, {"code": "NOT_FOUND", "message": "Not Found"})
                    # EMQX formats stored rules with their qos and retain defaults.
                    return self.reply(200, {"username": user, "rules": [
                        dict(r, qos=[0, 1, 2], retain="all") for r in state.rules[user]]})
                if method == "PUT":
                    # The handler only matches a body whose username equals the path's.
                    if doc.get("username") != user:
                        return self.reply(500, {"code": "INTERNAL_ERROR", "message": "function_clause"})
                    if len(doc["rules"]) > 1000:
                        return self.reply(400, {"code": "BAD_REQUEST",
                                                "message": "The rules length exceeds the maximum limit."})
                    state.rules[user] = [{k: r[k] for k in ("permission", "action", "topic")}
                                         for r in doc["rules"]]
                    return self.reply(204)
            if path.startswith("/api/v5/clients/"):
                rest = path[len("/api/v5/clients/"):]
                if method == "DELETE" and rest.endswith("/authorization/cache"):
                    client = rest[: -len("/authorization/cache")]
                    return self.reply(204 if client in state.clients else 404)
                if method == "DELETE":
                    if rest not in state.clients:
                        return self.reply(404, {"code": "CLIENTID_NOT_FOUND", "message": "Client ID not found"})
                    state.clients.discard(rest)
                    return self.reply(204)
            if method == "GET" and path == "/api/v5/mqtt/retainer/messages":
                f = query.get("topic", "")
                prefix = f[:-1] if f.endswith("#") else f
                data = [{"topic": t} for t in state.retained
                        if t.startswith(prefix) or t == prefix.rstrip("/")]
                return self.reply(200, {"data": data, "meta": {"page": 1, "limit": 1000, "hasnext": False}})
            if method == "DELETE" and path.startswith("/api/v5/mqtt/retainer/message/"):
                topic = path[len("/api/v5/mqtt/retainer/message/"):]
                if topic not in state.retained:
                    return self.reply(404, {"code": "NOT_FOUND", "message": "Viewed message doesn't exist"})
                del state.retained[topic]
                return self.reply(204)
            return self.reply(404, {"code": "NOT_FOUND", "message": f"no route {method} {path}"})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

    return H


class Run:
    def __init__(self, port, creds):
        self.port, self.creds, self.outputs = port, creds, []

    def __call__(self, *args, key=KEY, secret=SECRET, env=None):
        e = dict(os.environ, EMQX_API_URL=f"http://127.0.0.1:{self.port}/api/v5",
                 EMQX_API_KEY=key, EMQX_API_SECRET=secret, AXON_CREDENTIALS_DIR=self.creds)
        e.pop("AXON_DEVICE_PASSWORD", None)
        e.update(env or {})
        p = subprocess.run(["bash", SCRIPT, *args], env=e, capture_output=True, text=True, timeout=60)
        self.outputs.append(p.stdout + p.stderr)
        return p


def main():
    state = FakeEmqx()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    creds = tempfile.mkdtemp()
    run = Run(server.server_address[1], creds)
    results = []

    def check(name, cond, detail=""):
        results.append(cond)
        print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))

    def requests_since(n):
        return [(m, p) for (m, _, p, _, _) in state.log[n:]]

    # A site's Hub account.
    p = run("hub", "home")
    hub_file = os.path.join(creds, "hub-home.json")
    check("hub: creates hub-home", p.returncode == 0 and "hub-home" in state.users, p.stderr)
    check("hub: credentials file is mode 600 and holds the password",
          os.path.exists(hub_file) and (os.stat(hub_file).st_mode & 0o777) == 0o600
          and json.load(open(hub_file))["password"] == state.users.get("hub-home"))
    state.clients.add("hub-home")

    # Pairing a device.
    n = len(state.log)
    p = run("pair", "kitchen-lamp", "home")
    check("pair: exits 0", p.returncode == 0, p.stderr)
    check("pair: the device's account", "kitchen-lamp" in state.users)
    post = [json.loads(b) for (m, _, path, _, b) in state.log[n:] if m == "POST" and path == AUTHN]
    check("pair: POST users body is {user_id, password, is_superuser:false}",
          len(post) == 1 and set(post[0]) == {"user_id", "password", "is_superuser"}
          and post[0]["user_id"] == "kitchen-lamp" and post[0]["is_superuser"] is False
          and len(post[0]["password"]) >= 32, post)
    topics = [r["topic"] for r in state.rules.get("hub-home", [])]
    check("pair: the Hub's six rules for the device", topics == [
        "$mcp-server/kitchen-lamp/#", "$mcp-server/capability/kitchen-lamp/#",
        "$mcp-rpc/+/kitchen-lamp/#", "$mcp-server/presence/kitchen-lamp/#",
        "axon/telemetry/kitchen-lamp/#", "axon/events/kitchen-lamp"], topics)
    check("pair: clears the Hub's authorization cache",
          ("DELETE", "/api/v5/clients/hub-home/authorization/cache") in requests_since(n))
    raw_authn = [raw for (m, raw, path, _, _) in state.log[n:] if path.startswith(AUTHN)]
    check("pair: the authenticator id is URL-encoded",
          all("password_based%3Abuilt_in_database" in r for r in raw_authn), raw_authn)

    run("pair", "front-door", "home")
    check("pair: a second device adds its rules", len(state.rules["hub-home"]) == 12)

    # Pairing an existing device without --rotate fails and changes nothing.
    before = dict(state.users)
    p = run("pair", "kitchen-lamp", "home")
    check("pair again: refused with a hint", p.returncode != 0 and "--rotate" in p.stderr, p.stderr)
    check("pair again: password unchanged", state.users == before)

    # Rotation: new password, the client is kicked, the Hub's rules are not duplicated.
    state.clients.add("kitchen-lamp")
    old = state.users["kitchen-lamp"]
    p = run("pair", "kitchen-lamp", "home", "--rotate")
    check("rotate: new password", p.returncode == 0 and state.users["kitchen-lamp"] != old, p.stderr)
    check("rotate: the device is kicked", "kitchen-lamp" not in state.clients)
    check("rotate: rules not duplicated", len(state.rules["hub-home"]) == 12, len(state.rules["hub-home"]))

    # A password given by the caller is used and not written anywhere.
    p = run("pair", "hall-sensor", "home", env={"AXON_DEVICE_PASSWORD": "given-Password-123"})
    check("given password: used", state.users.get("hall-sensor") == "given-Password-123")
    check("given password: no credentials file",
          not os.path.exists(os.path.join(creds, "hall-sensor.json")))

    # Revocation.
    state.clients.add("kitchen-lamp")
    state.retained["$mcp-server/presence/kitchen-lamp/axon/lamp/kitchen-lamp"] = "online"
    state.retained["axon/telemetry/kitchen-lamp/latest"] = "{}"
    state.retained["axon/telemetry/front-door/latest"] = "{}"
    n = len(state.log)
    p = run("revoke", "kitchen-lamp", "home")
    check("revoke: exits 0", p.returncode == 0, p.stderr)
    check("revoke: account deleted", "kitchen-lamp" not in state.users)
    check("revoke: the Hub keeps only the other devices' rules",
          len(state.rules["hub-home"]) == 12
          and {r["topic"].split("/")[-2 if r["topic"].endswith("#") else -1]
               for r in state.rules["hub-home"]} == {"front-door", "hall-sensor"},
          state.rules["hub-home"])
    check("revoke: the device is kicked",
          ("DELETE", "/api/v5/clients/kitchen-lamp") in requests_since(n))
    check("revoke: its retained messages are cleared, not the others'",
          set(state.retained) == {"axon/telemetry/front-door/latest"}, state.retained)
    raw = [r for (m, r, _, _, _) in state.log[n:] if "retainer/message/" in r]
    check("revoke: retained topics are URL-encoded in the path",
          any("%24mcp-server%2Fpresence%2Fkitchen-lamp" in r for r in raw), raw)
    check("revoke: the local credentials file is gone",
          not os.path.exists(os.path.join(creds, "kitchen-lamp.json")))
    p = run("revoke", "kitchen-lamp", "home")
    check("revoke again: harmless", p.returncode == 0 and "did not exist" in p.stdout, p.stdout + p.stderr)

    # Refusals before any request.
    n = len(state.log)
    for bad in ("presence", "capability", "hub-home", "axon-admin", "Kitchen", "a/b", "a+b"):
        p = run("pair", bad, "home")
        check(f"refuses device id {bad!r}", p.returncode != 0)
    check("refusals send nothing", len(state.log) == n)
    p = run("pair", "lamp-2", "home", key="wrong")
    check("wrong API key: a clear message", p.returncode != 0 and "EMQX_API_KEY" in p.stderr, p.stderr)
    p = run("pair", "lamp-2", "home", key="", secret="")
    check("no API key: a clear message", p.returncode != 0 and "EMQX_API_KEY" in p.stderr, p.stderr)

    # No secret in anything the script printed.
    secrets = [SECRET] + list(state.users.values())
    printed = "\n".join(run.outputs)
    check("no secret in the script's output", not any(s in printed for s in secrets))

    server.shutdown()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
