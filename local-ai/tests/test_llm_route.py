"""`/v1/chat/completions`: the route over a stand-in model (in-process, no weights), and over a
real GGUF only when AXON_LOCAL_AI_LLM_MODEL names one (never downloaded by the tests)."""

from __future__ import annotations

import importlib.util
import json
import os
import threading

import pytest

from axon_local_ai.server import App, make_server
from conftest import Server
from helpers import post_json, request


class StandInLlm:
    """Answers like xllamacpp's Server does: dicts, chunks through a callback, ValueError."""

    name = "stand-in"

    def info(self):
        return {"engine": "stand-in", "model": self.name, "id": self.name}

    def _check(self, req):
        if req["messages"][-1].get("content") == "refuse":
            raise ValueError("Expected 'content' to be a string or an array")

    def complete(self, req):
        self._check(req)
        return {"object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo: " + req["messages"][-1]["content"]}}]}

    def stream(self, req, on_chunk):
        self._check(req)
        for word in ["The", " lamp", " is", " on."]:
            on_chunk({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]})


@pytest.fixture(scope="module")
def llm_url():
    server = make_server("127.0.0.1", 0, App(None, None, StandInLlm()))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def chat(url, content, **extra):
    return post_json(f"{url}/v1/chat/completions", {"model": "local", "messages": [{"role": "user", "content": content}], **extra})


def sse_data(body: bytes) -> list[str]:
    return [line[len("data: "):] for line in body.decode().split("\n\n") if line.startswith("data: ")]


def test_a_whole_answer_is_the_models_json(llm_url):
    status, _, body = chat(llm_url, "hello")
    assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "echo: hello"
    h = json.loads(request(f"{llm_url}/healthz")[2])
    assert h["llm"]["model"] == "stand-in"
    assert [m["id"] for m in json.loads(request(f"{llm_url}/v1/models")[2])["data"]] == ["stand-in"]


def test_a_stream_is_server_sent_events_ending_with_done(llm_url):
    status, headers, body = chat(llm_url, "hello", stream=True)
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    data = sse_data(body)
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"]["content"] for d in data[:-1])
    assert text == "The lamp is on."


def test_bad_requests_are_400(llm_url):
    status, _, body = post_json(f"{llm_url}/v1/chat/completions", {"messages": []})
    assert status == 400 and "non-empty 'messages'" in json.loads(body)["error"]["message"]
    status, _, body = chat(llm_url, "refuse")
    assert status == 400 and "Expected 'content'" in json.loads(body)["error"]["message"]
    status, _, body = chat(llm_url, "refuse", stream=True)
    data = sse_data(body)
    assert "Expected 'content'" in json.loads(data[0])["error"]["message"] and data[-1] == "[DONE]"


GGUF = os.environ.get("AXON_LOCAL_AI_LLM_MODEL")


@pytest.mark.skipif(not GGUF or importlib.util.find_spec("xllamacpp") is None,
                    reason="set AXON_LOCAL_AI_LLM_MODEL to a GGUF file and install requirements-llm.txt")
def test_a_real_gguf_answers_whole_and_streamed():
    s = Server("--asr", "none", "--tts", "none", "--llm-model", GGUF, "--llm-ctx", "1024")
    try:
        h = json.loads(request(f"{s.url}/healthz")[2])
        assert h["llm"]["engine"].startswith("llama.cpp"), h
        status, _, body = chat(s.url, "Say hello.", max_tokens=12)
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"].strip(), body
        status, _, body = chat(s.url, "Say hello.", max_tokens=12, stream=True)
        data = sse_data(body)
        assert status == 200 and data[-1] == "[DONE]" and len(data) > 3, data
    finally:
        s.stop()
