"""A local HTTP server that speaks the OpenAI Chat Completions wire format (streamed
`chat.completion.chunk`s with `tool_calls` fragments, whole answers, error objects), so the
worker's real `openai` provider client can be tested without a paid API.

It plays a small deterministic model: asked to switch a lamp, it calls the matching tool
(split across chunks, as OpenAI does); given tool results, it answers in several text deltas;
with "as text" in the request it writes the tool call as JSON in its text, as small local
models do. Every request is printed as one JSON line on stdout for the test to check.

usage: openai_server.py  (prints {"port": N} first)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-test"


def say(**kw):
    print(json.dumps(kw), flush=True)


def text_of(message):
    c = message.get("content")
    if isinstance(c, list):
        return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        if self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
        if self.headers.get("authorization") != f"Bearer {API_KEY}":
            say(request="refused", auth=self.headers.get("authorization"))
            return self.send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
        try:
            req = json.loads(raw)
        except ValueError as e:
            return self.send_json(400, {"error": {"message": f"bad JSON: {e}", "type": "invalid_request_error"}})
        messages = req.get("messages", [])
        tools = [t["function"]["name"] for t in req.get("tools", [])]
        last = messages[-1] if messages else {}
        say(request="chat", model=req.get("model"), stream=req.get("stream"), tools=tools,
            roles=[m.get("role") for m in messages], last=last)
        user = next((text_of(m) for m in reversed(messages) if m.get("role") == "user"), "")
        if last.get("role") == "tool":
            outcome = json.loads(last.get("content") or "{}")
            state = "on" if outcome.get("result", {}).get("on") else "off"
            return self.answer(req, text=["The kitchen ", "lamp is ", f"now {state}."])
        if "lamp" in user:
            name = next((t for t in tools if t.endswith("__set_power") and "kitchen-lamp" in t), None)
            if name is None:
                return self.answer(req, text=["I can't find that lamp."])
            on = "off" not in user
            if "as text" in user:
                call = json.dumps({"name": name, "arguments": {"on": on}})
                return self.answer(req, text=["Sure.\n```json\n", call, "\n```"])
            return self.answer(req, call=(name, ["{\"on\":", f" {'true' if on else 'false'}}}"]))
        return self.answer(req, text=["Hello ", "from the ", "test model."])

    def answer(self, req, text=None, call=None):
        if not req.get("stream"):
            message = {"role": "assistant", "content": "".join(text or []) or None}
            if call:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": call[0], "arguments": "".join(call[1])}}]
            return self.send_json(200, {"id": "cmpl-1", "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}]})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(delta, finish=None):
            obj = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": req.get("model"),
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.write(f"data: {json.dumps(obj)}\n\n")

        chunk({"role": "assistant", "content": ""})
        for piece in text or []:
            chunk({"content": piece})
        if call:
            name, parts = call
            chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": name, "arguments": ""}}]})
            for p in parts:
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
        chunk({}, "tool_calls" if call else "stop")
        self.write("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write(self, s):
        b = s.encode()
        self.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    say(port=server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
