"""A local HTTP server that speaks the OpenAI Chat Completions wire format with image input
(`image_url` content parts holding `data:` URLs), so the worker's real `openai` vision client
can be tested without a paid API.

It plays a small deterministic vision model: it finds the images in the request, checks each
is a `data:image/jpeg;base64,` URL whose bytes are a whole JPEG (SOI at the start, EOI at the
end), and describes the first one, naming its byte count so a test can tie the answer to the
photo that was sent. A request without an image gets HTTP 400 (the wrong model was asked).
Every request is printed as one JSON line on stdout for the test to check.

usage: vlm_server.py  (prints {"port": N} first)
"""

import base64
import binascii
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-vlm"


def say(**kw):
    print(json.dumps(kw), flush=True)


def images_in(messages):
    """(role, url) of every image_url part."""
    out = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            for p in c:
                if isinstance(p, dict) and p.get("type") == "image_url":
                    out.append((m.get("role"), (p.get("image_url") or {}).get("url", "")))
    return out


def check_jpeg(url):
    prefix = "data:image/jpeg;base64,"
    if not url.startswith(prefix):
        return {"data_url": False, "prefix": url[:30]}
    try:
        raw = base64.b64decode(url[len(prefix):], validate=True)
    except (binascii.Error, ValueError) as e:
        return {"data_url": True, "base64": False, "error": str(e)}
    return {"data_url": True, "base64": True, "bytes": len(raw),
            "jpeg": raw[:2] == b"\xff\xd8" and raw[-2:] == b"\xff\xd9"}


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
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
        if self.headers.get("authorization") != f"Bearer {API_KEY}":
            say(request="refused", auth=self.headers.get("authorization"))
            return self.send_json(401, {"error": {"message": "Incorrect API key provided",
                                                  "code": "invalid_api_key"}})
        try:
            req = json.loads(raw)
        except ValueError as e:
            return self.send_json(400, {"error": {"message": f"bad JSON: {e}"}})
        messages = req.get("messages", [])
        images = images_in(messages)
        checks = [dict(role=role, **check_jpeg(url)) for role, url in images]
        last = messages[-1] if messages else {}
        content = last.get("content")
        text = (" ".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text")
                if isinstance(content, list) else content)
        say(request="vision", model=req.get("model"), stream=req.get("stream"),
            tools=len(req.get("tools") or []), roles=[m.get("role") for m in messages],
            images=checks, text=text, body_bytes=len(raw))
        if not images:
            return self.send_json(400, {"error": {"message": "this vision model needs an image_url part"}})
        first = checks[0]
        if not first.get("jpeg"):
            return self.send_json(400, {"error": {"message": f"the image is not a JPEG data URL: {first}"}})
        words = ["I see a dim hallway ", "with a window and a door ", f"(a {first['bytes']}-byte JPEG)."]
        if not req.get("stream"):
            return self.send_json(200, {"id": "v-1", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(words)},
                 "finish_reason": "stop"}]})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i, w in enumerate(words):
            delta = {"content": w} if i else {"role": "assistant", "content": w}
            self.write("data: " + json.dumps({"object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": None}]}) + "\n\n")
        self.write("data: " + json.dumps({"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n")
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
