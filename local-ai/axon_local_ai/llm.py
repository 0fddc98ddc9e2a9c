"""An optional local chat model: llama.cpp through xllamacpp, for `/v1/chat/completions`.

Owns: loading one GGUF file (given by path: nothing is looked up or fetched) and answering
OpenAI chat-completion requests with it, whole or as a stream of chunk objects.
Never does: download weights, or lock: llama.cpp's own server engine inside xllamacpp queues
requests on its slots (one slot here, so one answer at a time) and is thread-safe.
xllamacpp is not in requirements.txt (it is 34 MB and most setups use a remote model):
install it with requirements-llm.txt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


class Llm:
    def __init__(self, model: Path, threads: int, ctx: int):
        import xllamacpp

        if not model.is_file():
            raise FileNotFoundError(f"no GGUF model at {model}")
        params = xllamacpp.CommonParams()
        params.model.path = str(model)
        params.n_ctx = ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        started = time.monotonic()
        self._server = xllamacpp.Server(params)
        self.load_ms = round((time.monotonic() - started) * 1000)
        self.path, self.ctx = model, ctx
        self.name = model.name.removesuffix(".gguf")
        self.version = getattr(xllamacpp, "__version__", "?")

    def info(self) -> dict:
        return {
            "engine": "llama.cpp (xllamacpp)",
            "version": self.version,
            "model": self.name,
            "id": self.name,
            "path": str(self.path),
            "n_ctx": self.ctx,
            "load_ms": self.load_ms,
        }

    def complete(self, request: dict) -> dict:
        """The whole answer. A request llama.cpp refuses raises ValueError with its reason."""
        return self._server.handle_chat_completions(request)

    def stream(self, request: dict, on_chunk: Callable[[dict], None]) -> None:
        """Calls `on_chunk` with each `chat.completion.chunk` object, in this thread."""
        self._server.handle_chat_completions({**request, "stream": True}, on_chunk)
