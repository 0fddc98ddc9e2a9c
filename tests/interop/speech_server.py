"""A local HTTP server that speaks OpenAI's audio wire format (`POST /v1/audio/transcriptions`,
multipart with a WAV; `POST /v1/audio/speech`, JSON in, WAV out), so the worker's real `openai`
ASR and TTS client code can be tested without a paid API.

It plays a small deterministic speech service: a transcription answers the next text given
with --heard (the last one repeats), after checking the form and the WAV as OpenAI would;
speech is a 24 kHz WAV tone, 50 ms per character, so the worker must resample it. Every
request is printed as one JSON line on stdout for the test to check.

usage: speech_server.py [--heard TEXT ...] [--key KEY] (prints {"port": N} first)
"""

import argparse
import io
import json
import math
import struct
import wave
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def say(**kw):
    print(json.dumps(kw), flush=True)


def tone_wav(seconds, rate=24_000):
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 220 * i / rate))) for i in range(n))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def make_handler(heard, key):
    queue = list(heard)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_body(self, status, body, content_type):
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, message):
            body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
            self.send_body(status, body, "application/json")

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            if key and self.headers.get("authorization") != f"Bearer {key}":
                say(request="refused", auth=self.headers.get("authorization"))
                return self.error(401, "Incorrect API key provided")
            if self.path == "/v1/audio/transcriptions":
                return self.transcribe(raw)
            if self.path == "/v1/audio/speech":
                return self.speech(raw)
            return self.error(404, f"no route {self.path}")

        def transcribe(self, raw):
            ctype = self.headers.get("content-type", "")
            if not ctype.startswith("multipart/form-data"):
                return self.error(400, f"expected multipart/form-data, got {ctype!r}")
            msg = BytesParser(policy=HTTP).parsebytes(b"content-type: " + ctype.encode() + b"\r\n\r\n" + raw)
            fields, wav_bytes, file_type = {}, None, None
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    wav_bytes, file_type = part.get_payload(decode=True), part.get_content_type()
                else:
                    fields[name] = part.get_content().strip()
            if wav_bytes is None or "model" not in fields:
                return self.error(400, "a transcription needs 'file' and 'model'")
            try:
                with wave.open(io.BytesIO(wav_bytes)) as w:
                    rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            except (wave.Error, EOFError) as e:
                return self.error(400, f"Invalid file format: {e}")
            text = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else "")
            say(request="transcription", model=fields.get("model"), language=fields.get("language"),
                prompt=fields.get("prompt"), response_format=fields.get("response_format"), file_type=file_type, rate=rate,
                channels=channels, width=width, ms=frames * 1000 // max(rate, 1), text=text)
            self.send_body(200, json.dumps({"text": text}).encode(), "application/json")

        def speech(self, raw):
            try:
                req = json.loads(raw)
            except ValueError as e:
                return self.error(400, f"bad JSON: {e}")
            text = req.get("input") or ""
            say(request="speech", model=req.get("model"), voice=req.get("voice"),
                response_format=req.get("response_format"), input=text)
            if not text.strip():
                return self.error(400, "input is empty")
            self.send_body(200, tone_wav(0.05 * len(text)), "audio/wav")

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heard", nargs="*", default=["turn on the kitchen lamp"])
    ap.add_argument("--key", default="sk-test")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args.heard, args.key))
    say(port=server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
