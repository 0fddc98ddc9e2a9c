"""Measures the local AI server and prints a Markdown table (the figures in local-ai/README.md).

    .venv-ai/bin/python local-ai/bench.py [--runs 10] [--threads 2]

Loads each model in this process (timed, as the server does at startup), then serves them on a
free loopback port and times the HTTP routes the Hub calls: ASR of a 2.0 s clip, and TTS time to
the first streamed chunk and real-time factor (synthesis time / audio length) for a short sentence.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from axon_local_ai.audio import RATE_16K, decode_wav, encode_wav, float_to_s16le, resample  # noqa: E402
from axon_local_ai.server import App, make_server  # noqa: E402

SENTENCE = "The kitchen lamp is on."
TWO = "The kitchen lamp is on. The hall light is off."


def timed(f):
    t = time.monotonic()
    v = f()
    return v, (time.monotonic() - t) * 1000


def clip_2s() -> bytes:
    """espeak-ng speech, at 16 kHz, padded or cut to exactly 2.0 s."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", "en-us"], input=b"turn on the kitchen lamp please",
                         capture_output=True, check=True).stdout
    x, rate = decode_wav(wav)
    x = resample(x, rate, RATE_16K)
    x = np.concatenate([x, np.zeros(max(0, 2 * RATE_16K - len(x)), np.float32)])[: 2 * RATE_16K]
    return encode_wav(float_to_s16le(x), RATE_16K)


def post(port: int, path: str, body: bytes, ctype: str) -> tuple[float, float, bytes]:
    """(ms to the first body bytes, ms to the end, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t = time.monotonic()
    c.request("POST", path, body, {"Content-Type": ctype})
    r = c.getresponse()
    first = r.read1(65536) if r.chunked else b""
    t_first = (time.monotonic() - t) * 1000
    rest = r.read()
    t_end = (time.monotonic() - t) * 1000
    assert r.status == 200, (r.status, first + rest)
    c.close()
    return t_first, t_end, first + rest


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    args = p.parse_args()

    rows: list[tuple[str, str]] = []
    from axon_local_ai.asr import Asr, default_model_dir
    from axon_local_ai.tts import EspeakTts, PiperTts, default_voice

    asr, ms = timed(lambda: Asr(default_model_dir(), args.threads))
    rows.append(("load Whisper tiny.en (faster-whisper, int8; with imports)", f"{ms:,.0f} ms"))
    piper, ms = timed(lambda: PiperTts(default_voice(), args.threads))
    rows.append(("load piper en_US-joe-medium (with imports)", f"{ms:,.0f} ms"))
    espeak, ms = timed(lambda: EspeakTts())
    rows.append(("start espeak-ng (one probe synthesis)", f"{ms:,.0f} ms"))

    app = App(asr, piper)
    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    wav = clip_2s()
    boundary = uuid.uuid4().hex
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n".encode()
            + wav + f"\r\n--{boundary}--\r\n".encode())
    ctype = f"multipart/form-data; boundary={boundary}"
    post(port, "/v1/audio/transcriptions", form, ctype)  # warm-up
    asr_ms = [post(port, "/v1/audio/transcriptions", form, ctype)[1] for _ in range(args.runs)]
    heard = json.loads(post(port, "/v1/audio/transcriptions", form, ctype)[2])["text"]
    rows.append((f"ASR, 2.0 s clip over HTTP, p50 / p90 of {args.runs}",
                 f"{statistics.median(asr_ms):,.0f} / {pct(asr_ms, 0.9):,.0f} ms (RTF {statistics.median(asr_ms) / 2000:.2f}; heard {heard!r})"))

    for name, tts in (("piper", piper), ("espeak-ng", espeak)):
        app.tts = tts
        for label, text in (("short sentence", SENTENCE), ("two sentences", TWO)):
            body = json.dumps({"input": text, "response_format": "pcm", "stream": True}).encode()
            post(port, "/v1/audio/speech", body, "application/json")  # warm-up
            runs = [post(port, "/v1/audio/speech", body, "application/json") for _ in range(args.runs)]
            first = statistics.median(r[0] for r in runs)
            total = statistics.median(r[1] for r in runs)
            audio_s = statistics.median(len(r[2]) / 2 / tts.rate for r in runs)
            rows.append((f"TTS {name}, {label} ({audio_s:.2f} s of audio), p50 of {args.runs}",
                         f"first chunk {first:,.0f} ms, all {total:,.0f} ms, RTF {total / 1000 / audio_s:.3f}"))
    gguf = os.environ.get("AXON_LOCAL_AI_LLM_MODEL")
    if gguf:
        from axon_local_ai.llm import Llm

        llm, ms = timed(lambda: Llm(Path(gguf), args.threads, 2048))
        rows.append((f"load {llm.name} (llama.cpp via xllamacpp; with imports)", f"{ms:,.0f} ms"))
        app.llm = llm
        body = json.dumps({"messages": [{"role": "user", "content": "Turn on the kitchen lamp."}],
                           "max_tokens": 32, "stream": True}).encode()
        post(port, "/v1/chat/completions", body, "application/json")  # warm-up
        runs = [post(port, "/v1/chat/completions", body, "application/json") for _ in range(args.runs)]
        first = statistics.median(r[0] for r in runs)
        tokens = statistics.median(r[2].count(b'"delta": {"content"') for r in runs)
        total = statistics.median(r[1] for r in runs)
        rows.append((f"chat {llm.name}, 32 tokens streamed, p50 of {args.runs}",
                     f"first chunk (the role only) {first:,.0f} ms, all {total:,.0f} ms ({tokens:.0f} content chunks, {tokens / total * 1000:.0f} tok/s)"))
    server.shutdown()

    load = os.getloadavg()[0]
    print(f"threads per model: {args.threads}; CPUs: {os.cpu_count()}; load average at the end: {load:.1f}\n")
    print("| what | measured |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
