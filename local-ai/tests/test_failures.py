"""A model that fails mid-request: the client is told (or, mid-stream, cut off), and the server
keeps serving. In-process, with stand-in voices."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from axon_local_ai.server import App, make_server
from helpers import post_json, request


class BrokenVoice:
    engine, rate = "broken", 22_050

    def __init__(self, good_sentences: int):
        self.good = good_sentences

    def info(self):
        return {"engine": self.engine, "id": "broken", "sample_rate": self.rate}

    def sentences(self, text, speed):
        for _ in range(self.good):
            yield b"\x01\x00" * 2205
        raise RuntimeError("the voice fell over")


@pytest.fixture
def serve():
    servers = []

    def start(tts):
        s = make_server("127.0.0.1", 0, App(None, tts))
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
        return s.server_address[1]

    yield start
    for s in servers:
        s.shutdown()


def test_a_failure_before_any_audio_is_a_500_that_names_it(serve):
    port = serve(BrokenVoice(0))
    status, _, body = post_json(f"http://127.0.0.1:{port}/v1/audio/speech", {"input": "Hello."})
    e = json.loads(body)["error"]
    assert status == 500 and e["code"] == "internal_error"
    assert e["message"] == "RuntimeError: the voice fell over"
    assert request(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_a_failure_mid_stream_cuts_the_stream_short(serve):
    port = serve(BrokenVoice(1))
    body = json.dumps({"input": "One. Two.", "stream": True, "response_format": "pcm"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 200")
    # The first sentence came, and no terminating zero-length chunk: the client can tell.
    assert b"\r\n%x\r\n" % 4410 in raw and not raw.endswith(b"0\r\n\r\n")
    assert request(f"http://127.0.0.1:{port}/healthz")[0] == 200
